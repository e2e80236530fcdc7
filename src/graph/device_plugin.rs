//! NVIDIA's device plugin as an add-on of the stack (`addon.nvidia_device_plugin`), when a node
//! group's AMI has the NVIDIA driver but no device plugin (AL2023's NVIDIA AMIs): without it the
//! nodes never advertise `nvidia.com/gpu`. Its DaemonSet runs on those groups only (their EKS
//! names, the label EKS gives their nodes) and tolerates their taints, so that it reaches nodes
//! that GPU workloads reach and no other: the Bottlerocket NVIDIA variants run their own plugin,
//! and a second one would fight it over the GPUs.

use std::collections::BTreeSet;

use serde_json::json;

use super::build::Builder;
use crate::addons::{render, Addon};
use crate::model::device_plugin::DevicePlugin;
use crate::model::{reference, Address, ResourceKind};

/// A Kubernetes taint effect as EKS spells it (`NO_SCHEDULE`) in Kubernetes' spelling.
fn kubernetes_effect(eks: &str) -> &'static str {
    match eks {
        "NO_EXECUTE" => "NoExecute",
        "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
        _ => "NoSchedule",
    }
}

/// The add-on, after `after`, when some node group needs it.
pub(super) fn nvidia_device_plugin(
    b: &mut Builder,
    cluster: &Address,
    after: &[&Address],
) -> Option<Address> {
    let spec = b.spec;
    let groups: Vec<_> = spec
        .eks
        .node_groups
        .values()
        .filter(|g| g.device_plugin() == Some(DevicePlugin::Addon))
        .collect();
    if groups.is_empty() {
        return None;
    }
    let release = Addon::NvidiaDevicePlugin.versions().last()?;
    let names: Vec<String> = groups.iter().map(|g| g.eks_name(&spec.vpc)).collect();
    let taints: BTreeSet<(&str, &str)> = groups
        .iter()
        .flat_map(|g| &g.taints)
        .map(|t| (t.key.as_str(), kubernetes_effect(&t.effect)))
        .collect();
    let tolerations: Vec<_> = taints
        .into_iter()
        .map(|(key, effect)| json!({"key": key, "operator": "Exists", "effect": effect}))
        .collect();
    Some(b.add(
        ResourceKind::Addon,
        &[Addon::NvidiaDevicePlugin.spec_key()],
        json!({
            "cluster": reference(cluster, "name"),
            "name": Addon::NvidiaDevicePlugin.name(),
            "version": release.version,
            "objects": {},
            render::NODE_GROUPS: names,
            render::TOLERATIONS: tolerations,
        }),
        after,
    ))
}
