//! The cluster's EKS managed add-ons as resources of the stack (`eks_addon.<name>`): each after
//! the node groups (coredns needs nodes to run on, and an upgrade moves add-ons after the nodes),
//! at the version pinned or EKS's default for the cluster's Kubernetes version, which the
//! provider asks `DescribeAddonVersions` for. The EBS CSI driver gets its own IRSA role with
//! AWS's managed policy for it.

use serde_json::{json, Value};

use super::build::{attachment, irsa_role, Builder};
use crate::model::{reference, Address, ResourceKind};
use crate::spec::EBS_CSI_DRIVER;

/// The service account the EBS CSI driver's controller runs as.
const EBS_CSI_SERVICE_ACCOUNT: (&str, &str) = ("kube-system", "ebs-csi-controller-sa");

/// The IAM role name of the EBS CSI driver.
fn ebs_csi_role_name(stack: &str) -> String {
    format!("{stack}-ebs-csi-driver")
}

pub(super) fn managed_addons(
    b: &mut Builder,
    cluster: &Address,
    provider: Option<&Address>,
    node_groups: &[Address],
) {
    let after: Vec<&Address> = node_groups.iter().collect();
    let addons = b.spec.eks.managed_addons.clone();
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
        b.add(
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
    }
}
