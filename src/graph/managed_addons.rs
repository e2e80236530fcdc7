//! The cluster's EKS managed add-ons as resources of the stack (`eks_addon.<name>`): each after
//! the node groups (coredns needs nodes to run on, and an upgrade moves add-ons after the nodes),
//! at the version pinned or EKS's default for the cluster's Kubernetes version, which the
//! provider asks `DescribeAddonVersions` for. The EBS CSI driver gets its own IRSA role with
//! AWS's managed policy for it, and, where mlops reaches the cluster, a default `gp3`
//! StorageClass it provisions, so that a PersistentVolumeClaim without a class binds.

use serde_json::{json, Value};

use super::build::{attachment, irsa_role, Builder};
use crate::manifest::MANAGED_BY;
use crate::model::{reference, Address, ResourceKind};
use crate::spec::EBS_CSI_DRIVER;

/// The service account the EBS CSI driver's controller runs as.
const EBS_CSI_SERVICE_ACCOUNT: (&str, &str) = ("kube-system", "ebs-csi-controller-sa");

/// The IAM role name of the EBS CSI driver.
fn ebs_csi_role_name(stack: &str) -> String {
    format!("{stack}-ebs-csi-driver")
}

/// The managed add-ons; returns the EBS CSI driver's address when the stack keeps it.
pub(super) fn managed_addons(
    b: &mut Builder,
    cluster: &Address,
    provider: Option<&Address>,
    node_groups: &[Address],
) -> Option<Address> {
    let after: Vec<&Address> = node_groups.iter().collect();
    let addons = b.spec.eks.managed_addons.clone();
    let mut ebs_csi = None;
    for (name, pinned) in &addons {
        let role_arn = match provider {
            Some(provider) if name == EBS_CSI_DRIVER => {
                let role_name = ebs_csi_role_name(&b.spec.stack.name);
                let role = irsa_role(
                    b,
                    &["ebs-csi-driver"],
                    &role_name,
                    (provider, cluster),
                    EBS_CSI_SERVICE_ACCOUNT,
                );
                let policy = b
                    .partition
                    .managed_policy("service-role/AmazonEBSCSIDriverPolicy");
                attachment(b, &["ebs-csi-driver"], &role_name, &role, &policy);
                reference(&role, "arn")
            }
            _ => Value::Null,
        };
        let address = b.add(
            ResourceKind::EksAddon,
            &[name],
            json!({
                "cluster_name": reference(cluster, "name"),
                "addon_name": name,
                "addon_version": pinned,
                // What an unpinned version is chosen for; a change moves the add-on to EKS's
                // default version for the new Kubernetes version.
                "kubernetes_version": b.spec.eks.version,
                "service_account_role_arn": role_arn,
                "tags": {},
            }),
            &after,
        );
        if name == EBS_CSI_DRIVER {
            ebs_csi = Some(address);
        }
    }
    ebs_csi
}

/// `k8s.StorageClass.gp3`: encrypted gp3 volumes of the EBS CSI driver, created when a pod
/// first uses them (in its zone), marked as the cluster's default class.
pub(super) fn default_storage_class(b: &mut Builder, cluster: &Address, ebs_csi: &Address) {
    b.add(
        ResourceKind::KubeObject,
        &["StorageClass", "gp3"],
        json!({
            "cluster": reference(cluster, "name"),
            "manifest": {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": "gp3",
                    "labels": { MANAGED_BY.0: MANAGED_BY.1 },
                    "annotations": { "storageclass.kubernetes.io/is-default-class": "true" },
                },
                "provisioner": "ebs.csi.aws.com",
                "parameters": { "type": "gp3", "encrypted": "true" },
                "volumeBindingMode": "WaitForFirstConsumer",
                "allowVolumeExpansion": true,
                "reclaimPolicy": "Delete",
            },
        }),
        &[ebs_csi],
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::graph::desired_resources;

    const EXAMPLE: &str = include_str!("../../stacks/example.toml");

    fn addresses(text: &str) -> Vec<String> {
        let spec = crate::spec::parse(Path::new("stacks/example.toml"), text.into()).unwrap();
        desired_resources(&spec)
            .into_iter()
            .map(|r| r.address.as_str().to_string())
            .collect()
    }

    /// The EBS CSI driver brings its role and the default gp3 class, which waits for it;
    /// without managed add-ons there is neither.
    #[test]
    fn the_ebs_csi_driver_brings_its_role_and_the_default_storage_class() {
        let all = addresses(EXAMPLE);
        for address in [
            "eks_addon.aws-ebs-csi-driver",
            "iam_role.ebs-csi-driver",
            "iam_role_policy_attachment.ebs-csi-driver.AmazonEBSCSIDriverPolicy",
            "k8s.StorageClass.gp3",
        ] {
            assert!(all.iter().any(|a| a == address), "{address}");
        }
        let none = addresses(&EXAMPLE.replacen(
            "\n[eks.node_groups.default]",
            "managed_addons = []\n\n[eks.node_groups.default]",
            1,
        ));
        assert!(!none
            .iter()
            .any(|a| a.starts_with("eks_addon.") || a == "k8s.StorageClass.gp3"));
    }
}
