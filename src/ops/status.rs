//! `mlops status <STACK>`: where to send requests and whether serving works, read live and
//! returned as data (the CLI prints it, or writes it as JSON for pipelines): the ingress
//! gateway's load-balancer address, every KServe InferenceService in the cluster with its URL
//! and `Ready` condition, and the stack's managed node groups as EKS reports them now. Read
//! only: no lock, no write anywhere.

use futures::future::try_join_all;
use serde::Serialize;
use serde_json::Value;

use super::{connect, Session, Stack};
use crate::addons::render::is_internal;
use crate::kube::install::load_balancer_address;
use crate::kube::Cluster;
use crate::model::{Address, ResourceKind};
use crate::providers::aws::{describe_node_group, health_issues};
use crate::providers::kube::ingress_gateway;
use crate::state::{ResourceState, State};
use crate::{Error, Result};

/// The version of the `mlops status --json` document (`docs/workloads.md`); a change to its
/// shape is a breaking change.
pub const STATUS_FORMAT_VERSION: u32 = 1;

/// The API version InferenceServices are listed at: KServe serves `v1beta1` in every release
/// of the catalogue.
const INFERENCE_SERVICE_API_VERSION: &str = "serving.kserve.io/v1beta1";
const INFERENCE_SERVICE: &str = "InferenceService";

/// What `mlops status` reports, in the shape of its JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub format_version: u32,
    pub stack: String,
    /// The EKS cluster's name.
    pub cluster: String,
    /// Every node group ACTIVE, the gateway not waiting for its address, and every
    /// InferenceService Ready.
    pub ready: bool,
    /// Whether the cluster was asked: not with `[addons] enabled = false`, which keeps `mlops`
    /// out of the cluster.
    pub kubernetes_checked: bool,
    /// `None` when the cluster was not asked.
    pub ingress_gateway: Option<Gateway>,
    /// `None` when the cluster was not asked or does not serve InferenceServices (KServe is
    /// not installed); ordered by namespace and name.
    pub inference_services: Option<Vec<InferenceService>>,
    /// In the order of their addresses.
    pub node_groups: Vec<NodeGroup>,
}

/// Istio's ingress gateway: where requests to the models go.
#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    /// `istio-system/istio-ingressgateway`.
    pub service: String,
    pub state: GatewayState,
    /// The load balancer's hostname (or IP), once it has one.
    pub hostname: Option<String>,
    /// The load balancer is internal: reachable from inside the VPC only.
    pub internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayState {
    /// The load balancer has an address.
    Ready,
    /// The Service exists but its load balancer has no address yet.
    Pending,
    /// No such Service: Istio is not installed.
    NotInstalled,
}

#[derive(Debug, Clone, Serialize)]
pub struct InferenceService {
    pub namespace: String,
    pub name: String,
    /// `status.url`, once KServe has set it.
    pub url: Option<String>,
    /// Whether its `Ready` condition is `"True"`.
    pub ready: bool,
    /// The `Ready` condition's reason and message; both `None` when it has none (yet).
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeGroup {
    /// `eks_node_group.<key>`.
    pub address: String,
    /// The node group's name in EKS.
    pub name: String,
    /// As EKS reports it (`ACTIVE`, `CREATING`, `DEGRADED`...), or `NOT_FOUND` when the node
    /// group in the state no longer exists.
    pub status: String,
    pub min_size: Option<i32>,
    pub desired_size: Option<i32>,
    pub max_size: Option<i32>,
    /// EKS's health issues, each as `<code>: <message> (<resource ids>)`.
    pub issues: Vec<String>,
}

/// Reads the status of an applied stack: its state, the node groups from EKS, and (unless
/// `[addons] enabled = false`) the cluster, reached as `apply` reaches it.
pub async fn status(stack: &Stack, session: &Session) -> Result<Status> {
    let name = &stack.spec.stack.name;
    let file = stack.spec.path.display();
    let Some(state) = stack.store.load().await? else {
        return Err(Error::refused(
            format!(
                "stack `{name}` was never applied: there is no state at `{}`",
                stack.store.describe()
            ),
            format!("run `mlops apply {file}` to create it first"),
        ));
    };
    let Some(cluster_name) = state
        .attr(&Address::new("eks_cluster"), "name")
        .and_then(|v| v.as_str().map(str::to_string))
    else {
        return Err(Error::refused(
            format!("stack `{name}` has no EKS cluster in its state yet"),
            format!("run `mlops apply {file}` to create it first"),
        ));
    };
    let node_groups = node_groups(stack, session, &state).await?;
    let (ingress_gateway, inference_services) = if stack.spec.addons.enabled {
        let cluster = connect(
            stack,
            session,
            Some(Value::String(cluster_name.clone())),
            "read the status of the cluster",
        )
        .await?
        .ok_or_else(|| {
            Error::refused(
                format!("the EKS cluster `{cluster_name}` of stack `{name}` does not exist"),
                format!("`mlops plan {file}` shows what is missing; `mlops apply {file}` creates it again"),
            )
        })?;
        (
            Some(gateway(&cluster).await?),
            inference_services(&cluster).await?,
        )
    } else {
        (None, None)
    };
    let ready = node_groups.iter().all(|g| g.status == "ACTIVE")
        && ingress_gateway
            .as_ref()
            .is_none_or(|g| g.state != GatewayState::Pending)
        && inference_services.iter().flatten().all(|s| s.ready);
    Ok(Status {
        format_version: STATUS_FORMAT_VERSION,
        stack: name.clone(),
        cluster: cluster_name,
        ready,
        kubernetes_checked: stack.spec.addons.enabled,
        ingress_gateway,
        inference_services,
        node_groups,
    })
}

/// The node groups of the state, each described by EKS now (all at once).
async fn node_groups(stack: &Stack, session: &Session, state: &State) -> Result<Vec<NodeGroup>> {
    let env = session.env(&stack.spec).await;
    let env = &env;
    let reads = state
        .resources
        .iter()
        .filter(|(_, r)| r.kind == ResourceKind::EksNodeGroup)
        .map(|(address, resource)| async move {
            let text = |key: &str| {
                resource
                    .attrs
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (cluster, name) = (text("cluster_name"), text("name"));
            let group = describe_node_group(&env.ctx(address), &cluster, &name)
                .await
                .map_err(|e| Error::Refused {
                    hint: e.hint().map(str::to_string),
                    message: format!("cannot read the node group `{address}` from EKS: {e}"),
                })?;
            Ok::<_, Error>(node_group(address, resource, name, group))
        });
    try_join_all(reads).await
}

fn node_group(
    address: &Address,
    resource: &ResourceState,
    name: String,
    group: Option<aws_sdk_eks::types::Nodegroup>,
) -> NodeGroup {
    let Some(group) = group else {
        let size = |key: &str| {
            resource
                .attrs
                .get(key)
                .and_then(Value::as_i64)
                .and_then(|v| i32::try_from(v).ok())
        };
        // Gone from EKS: the sizes last recorded, for reference.
        return NodeGroup {
            address: address.to_string(),
            name,
            status: "NOT_FOUND".into(),
            min_size: size("min_size"),
            desired_size: size("desired_size"),
            max_size: size("max_size"),
            issues: Vec::new(),
        };
    };
    let scaling = group.scaling_config();
    NodeGroup {
        address: address.to_string(),
        name,
        status: group.status().map_or("UNKNOWN", |s| s.as_str()).to_string(),
        min_size: scaling.and_then(|s| s.min_size()),
        desired_size: scaling.and_then(|s| s.desired_size()),
        max_size: scaling.and_then(|s| s.max_size()),
        issues: health_issues(&group),
    }
}

async fn gateway(cluster: &Cluster) -> Result<Gateway> {
    let service = ingress_gateway();
    let live = cluster.get(&service).await?;
    let hostname = live.as_ref().and_then(load_balancer_address);
    let state = match (&live, &hostname) {
        (None, _) => GatewayState::NotInstalled,
        (Some(_), None) => GatewayState::Pending,
        (Some(_), Some(_)) => GatewayState::Ready,
    };
    Ok(Gateway {
        service: format!(
            "{}/{}",
            service.namespace.as_deref().unwrap_or_default(),
            service.name
        ),
        state,
        hostname,
        internal: live.as_ref().is_some_and(is_internal),
    })
}

/// Every InferenceService in every namespace; `None` when the kind is not served.
async fn inference_services(cluster: &Cluster) -> Result<Option<Vec<InferenceService>>> {
    if cluster
        .served(INFERENCE_SERVICE_API_VERSION, INFERENCE_SERVICE, false)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let mut services: Vec<InferenceService> = cluster
        .list(INFERENCE_SERVICE_API_VERSION, INFERENCE_SERVICE, "")
        .await?
        .iter()
        .map(inference_service)
        .collect();
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(Some(services))
}

fn inference_service(object: &Value) -> InferenceService {
    let text = |value: &Value| value.as_str().map(str::to_string);
    let condition = object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    InferenceService {
        namespace: text(&object["metadata"]["namespace"]).unwrap_or_default(),
        name: text(&object["metadata"]["name"]).unwrap_or_default(),
        url: text(&object["status"]["url"]),
        ready: condition["status"] == "True",
        reason: text(&condition["reason"]),
        message: text(&condition["message"]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::inference_service;

    #[test]
    fn an_inference_service_is_ready_only_with_its_ready_condition_true() {
        let object = |conditions: serde_json::Value| {
            json!({
                "metadata": {"namespace": "ns", "name": "m"},
                "status": {"url": "http://m.ns.example.com", "conditions": conditions},
            })
        };
        let ready = inference_service(&object(json!([
            {"type": "PredictorReady", "status": "False"},
            {"type": "Ready", "status": "True"},
        ])));
        assert!(ready.ready);
        assert_eq!(ready.url.as_deref(), Some("http://m.ns.example.com"));
        let failing = inference_service(&object(json!([
            {"type": "PredictorReady", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "RevisionMissing", "message": "no nodes"},
        ])));
        assert!(!failing.ready);
        assert_eq!(failing.reason.as_deref(), Some("RevisionMissing"));
        assert_eq!(failing.message.as_deref(), Some("no nodes"));
        let fresh = inference_service(&json!({"metadata": {"namespace": "ns", "name": "m"}}));
        assert!(!fresh.ready);
        assert_eq!((fresh.url, fresh.reason, fresh.message), (None, None, None));
        let unknown = inference_service(&object(json!([{"type": "Ready", "status": "Unknown"}])));
        assert!(!unknown.ready);
    }
}
