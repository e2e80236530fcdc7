//! What a pod of a workload needs before it can run, as the kubelet and the ReplicaSet
//! controller see it: its ServiceAccount (without one the pod is not even created), every
//! Secret and ConfigMap it mounts (volumes, projected sources) or reads into its environment
//! (`envFrom`, `valueFrom`), unless marked `optional`. A pod that lacks one stays
//! `ContainerCreating` / `CreateContainerConfigError`, so its workload never becomes
//! available.

use std::collections::BTreeSet;

use serde_json::Value;

/// A kind (`secret`, `configmap`, `serviceaccount`), a namespace and a name.
pub type Ref = (&'static str, String, String);

/// The first thing the pod template of `workload` needs that is not in `existing`, as the
/// kubelet would report it (`secret "x" not found`).
pub fn missing(workload: &Value, existing: &BTreeSet<Ref>) -> Option<String> {
    let namespace = workload["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    needs(&workload["spec"]["template"]["spec"])
        .into_iter()
        .find(|(kind, name)| !existing.contains(&(*kind, namespace.to_string(), name.clone())))
        .map(|(kind, name)| format!("{kind} \"{name}\" not found"))
}

/// What a pod spec needs: `(kind, name)`.
fn needs(pod: &Value) -> Vec<(&'static str, String)> {
    let mut needs = Vec::new();
    let account = pod["serviceAccountName"]
        .as_str()
        .or(pod["serviceAccount"].as_str())
        .unwrap_or("default");
    needs.push(("serviceaccount", account.to_string()));
    let mut add = |kind: &'static str, source: &Value, name_key: &str| {
        if source["optional"] != true {
            if let Some(name) = source[name_key].as_str() {
                needs.push((kind, name.to_string()));
            }
        }
    };
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        add("secret", &volume["secret"], "secretName");
        add("configmap", &volume["configMap"], "name");
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add("secret", &source["secret"], "name");
            add("configmap", &source["configMap"], "name");
        }
    }
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod[k].as_array().cloned().unwrap_or_default());
    for container in containers {
        for from in container["envFrom"].as_array().into_iter().flatten() {
            add("secret", &from["secretRef"], "name");
            add("configmap", &from["configMapRef"], "name");
        }
        for env in container["env"].as_array().into_iter().flatten() {
            add("secret", &env["valueFrom"]["secretKeyRef"], "name");
            add("configmap", &env["valueFrom"]["configMapKeyRef"], "name");
        }
    }
    needs
}
