//! What the controller manager and the kubelets of a cluster would do for the objects `mlops`
//! waits on, since the real test API server runs neither: a background thread that, every
//! 200 ms, marks Deployments available and DaemonSets ready in their status (as if their pods
//! ran), keeps the Endpoints of Services that select an available Deployment (a ready address
//! 10.0.0.x), gives LoadBalancer Services a hostname, and empties and finalizes namespaces
//! being deleted (else they would stay `Terminating`). A test can hold a Deployment
//! unavailable (its `Available` condition `False`, as a real one that never starts).
//!
//! It writes as its own user, so the audit log's count of the client's writes leaves it out,
//! and only when something is not yet as it should be.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, Deployment, DeploymentCondition, DeploymentStatus,
};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, LoadBalancerIngress,
    LoadBalancerStatus, Namespace, NamespaceSpec, Service, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::{verbs, Discovery, Scope};
use kube::{Api, Client, ResourceExt};

const PERIOD: Duration = Duration::from_millis(200);
const FIELD_MANAGER: &str = "mlops-test-stand-in";

/// `(namespace, name)` of a Deployment.
type Key = (String, String);

/// The running stand-in of one server; stops when dropped.
pub struct StandIn {
    held: Arc<Mutex<BTreeSet<Key>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    pub(super) fn start(kubeconfig: PathBuf) -> StandIn {
        let held = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("kube-stand-in".into())
            .spawn({
                let (held, stop) = (held.clone(), stop.clone());
                move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(run(kubeconfig, held, stop))
                }
            })
            .expect("start the stand-in thread");
        StandIn {
            held,
            stop,
            thread: Some(thread),
        }
    }

    /// Keeps Deployment `namespace/name` unavailable (now, or once it exists) until released:
    /// its status says `Available=False` with reason `MinimumReplicasUnavailable`, and its
    /// Services' endpoints are not ready.
    pub fn hold_unavailable(&self, namespace: &str, name: &str) {
        self.held
            .lock()
            .unwrap()
            .insert((namespace.to_string(), name.to_string()));
    }

    /// Lets a held Deployment become available.
    pub fn release(&self, namespace: &str, name: &str) {
        self.held
            .lock()
            .unwrap()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(kubeconfig: PathBuf, held: Arc<Mutex<BTreeSet<Key>>>, stop: Arc<AtomicBool>) {
    let client = super::client_from(&kubeconfig).await;
    // Each message printed once: the same failure would otherwise repeat 5 times a second.
    let mut reported = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        let held = held.lock().unwrap().clone();
        for e in round(&client, &held).await {
            // An object changed or deleted meanwhile: the next round sees it as it is now.
            let transient = matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
            // The test harness captures stderr: no pipe to lose.
            #[allow(clippy::disallowed_macros)]
            if !transient && reported.insert(e.to_string()) {
                eprintln!("kube stand-in: {e}");
            }
        }
        tokio::time::sleep(PERIOD).await;
    }
}

/// One pass over every Deployment, DaemonSet, Service and namespace being deleted; the errors
/// of the pass (one failed object does not keep the others waiting).
async fn round(client: &Client, held: &BTreeSet<Key>) -> Vec<kube::Error> {
    let all = ListParams::default();
    let (d, ds, s, e, n) = (
        Api::<Deployment>::all(client.clone()),
        Api::<DaemonSet>::all(client.clone()),
        Api::<Service>::all(client.clone()),
        Api::<Endpoints>::all(client.clone()),
        Api::<Namespace>::all(client.clone()),
    );
    let lists = tokio::try_join!(
        d.list(&all),
        ds.list(&all),
        s.list(&all),
        e.list(&all),
        n.list(&all)
    );
    let (deployments, daemon_sets, services, endpoints, namespaces) = match lists {
        Ok(lists) => lists,
        Err(e) => return vec![e],
    };
    let terminating: Vec<Namespace> = namespaces
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .collect();
    // What is in a namespace being deleted is going too: no status, no Endpoints for it.
    let going: BTreeSet<String> = terminating.iter().map(|n| n.name_any()).collect();
    let staying = |namespace: Option<String>| !going.contains(&namespace.unwrap_or_default());
    let mut errors = Vec::new();
    if !terminating.is_empty() {
        errors.extend(finish_deletions(client, terminating).await);
    }
    let deployments: Vec<Deployment> = deployments
        .into_iter()
        .filter(|d| staying(d.namespace()))
        .collect();
    for d in &deployments {
        let available = !held.contains(&key(d));
        if !deployment_marked(d, available) {
            let mut marked = d.clone();
            marked.status = Some(deployment_status(d, available));
            errors.extend(replace_status(client, &marked).await.err());
        }
    }
    for ds in daemon_sets.into_iter().filter(|ds| staying(ds.namespace())) {
        let generation = ds.metadata.generation;
        if ds.status.as_ref().and_then(|s| s.observed_generation) != generation {
            let mut marked = ds.clone();
            marked.status = Some(daemon_set_status(generation));
            errors.extend(replace_status(client, &marked).await.err());
        }
    }
    let endpoints: BTreeMap<Key, Option<Vec<EndpointSubset>>> = endpoints
        .into_iter()
        .map(|e| (key(&e), e.subsets))
        .collect();
    for service in services.into_iter().filter(|s| staying(s.namespace())) {
        if is_load_balancer(&service) && !has_lb_ingress(&service) {
            let mut marked = service.clone();
            marked.status = Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        hostname: Some(lb_hostname(&service)),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            });
            errors.extend(replace_status(client, &marked).await.err());
        }
        if let Some(subsets) = endpoint_subsets(&service, &deployments, held) {
            if endpoints.get(&key(&service)) != Some(&Some(subsets.clone())) {
                errors.extend(apply_endpoints(client, &service, subsets).await.err());
            }
        }
    }
    errors
}

/// The namespace controller's part: delete what is in each namespace being deleted and, once
/// nothing is left, remove its `kubernetes` finalizer so that the server deletes it.
async fn finish_deletions(client: &Client, namespaces: Vec<Namespace>) -> Vec<kube::Error> {
    let discovery = match Discovery::new(client.clone()).run().await {
        Ok(discovery) => discovery,
        Err(e) => return vec![e],
    };
    let resources: Vec<ApiResource> = discovery
        .groups()
        .flat_map(|group| group.recommended_resources())
        .filter(|(_, caps)| {
            caps.scope == Scope::Namespaced && caps.supports_operation(verbs::DELETE_COLLECTION)
        })
        .map(|(resource, _)| resource)
        .collect();
    let mut errors = Vec::new();
    for mut namespace in namespaces {
        let name = namespace.name_any();
        let mut empty = true;
        for resource in &resources {
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), &name, resource);
            let left = match api
                .delete_collection(&DeleteParams::background(), &ListParams::default())
                .await
            {
                Ok(_) => api.list(&ListParams::default().limit(1)).await,
                Err(e) => Err(e),
            };
            match left {
                Ok(list) => empty &= list.items.is_empty(),
                Err(e) => {
                    empty = false;
                    errors.push(e);
                }
            }
        }
        if empty {
            namespace.spec = Some(NamespaceSpec {
                finalizers: Some(Vec::new()),
            });
            let body = serde_json::to_vec(&namespace).unwrap();
            errors.extend(
                Api::<Namespace>::all(client.clone())
                    .replace_subresource("finalize", &name, &PostParams::default(), body)
                    .await
                    .err(),
            );
        }
    }
    errors
}

fn key<K: ResourceExt>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

async fn replace_status<K>(client: &Client, object: &K) -> Result<K, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api = Api::<K>::namespaced(client.clone(), &object.namespace().unwrap_or_default());
    let body = serde_json::to_vec(object).expect("serialize a Kubernetes object");
    api.replace_status(&object.name_any(), &PostParams::default(), body)
        .await
}

fn available_condition(d: &Deployment) -> Option<&DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Available")
}

/// The status already says what the stand-in would write for this generation.
fn deployment_marked(d: &Deployment, available: bool) -> bool {
    let observed = d.status.as_ref().and_then(|s| s.observed_generation);
    let wanted = if available { "True" } else { "False" };
    observed == d.metadata.generation && available_condition(d).is_some_and(|c| c.status == wanted)
}

fn condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = Time(k8s_openapi::chrono::Utc::now());
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time: Some(now.clone()),
        last_update_time: Some(now),
    }
}

/// The status the deployment controller writes once every replica runs, or while none does.
fn deployment_status(d: &Deployment, available: bool) -> DeploymentStatus {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let running = if available { replicas } else { 0 };
    let conditions = if available {
        vec![
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            ),
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!(
                    "ReplicaSet \"{}\" has successfully progressed.",
                    d.name_any()
                ),
            ),
        ]
    } else {
        vec![condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )]
    };
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(replicas),
        ready_replicas: Some(running),
        available_replicas: Some(running),
        unavailable_replicas: Some(replicas - running),
        conditions: Some(conditions),
        ..Default::default()
    }
}

/// Ready on the one node the stand-in pretends there is.
fn daemon_set_status(generation: Option<i64>) -> DaemonSetStatus {
    DaemonSetStatus {
        observed_generation: generation,
        desired_number_scheduled: 1,
        current_number_scheduled: 1,
        updated_number_scheduled: Some(1),
        number_ready: 1,
        number_available: Some(1),
        number_misscheduled: 0,
        ..Default::default()
    }
}

fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

fn has_lb_ingress(service: &Service) -> bool {
    let status = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref());
    status
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|ingress| !ingress.is_empty())
}

/// What AWS would give the load balancer, made up: `<name>-<namespace>.elb.mlops.test`.
fn lb_hostname(service: &Service) -> String {
    let (namespace, name) = key(service);
    format!("{name}-{namespace}.elb.mlops.test")
}

/// The endpoints of a Service whose selector matches the pod template of Deployments in its
/// namespace: one address, ready when one of them is available; `None` when none matches.
fn endpoint_subsets(
    service: &Service,
    deployments: &[Deployment],
    held: &BTreeSet<Key>,
) -> Option<Vec<EndpointSubset>> {
    let spec = service.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let namespace = service.namespace();
    let matching: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| d.namespace() == namespace)
        .filter(|d| {
            let labels = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref());
            labels.is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
        })
        .collect();
    if matching.is_empty() {
        return None;
    }
    let ready = matching.iter().any(|d| !held.contains(&key(*d)));
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| EndpointPort {
            name: p.name.clone(),
            port: target_port(p.target_port.as_ref(), &matching).unwrap_or(p.port),
            protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
            ..Default::default()
        })
        .collect();
    let address = vec![EndpointAddress {
        ip: pod_ip(service),
        ..Default::default()
    }];
    let (addresses, not_ready_addresses) = if ready {
        (Some(address), None)
    } else {
        (None, Some(address))
    };
    Some(vec![EndpointSubset {
        addresses,
        not_ready_addresses,
        ports: Some(ports),
    }])
}

/// A numeric target port, or a named one looked up in the containers of the Deployments.
fn target_port(target: Option<&IntOrString>, deployments: &[&Deployment]) -> Option<i32> {
    match target? {
        IntOrString::Int(port) => Some(*port),
        IntOrString::String(name) => deployments
            .iter()
            .filter_map(|d| d.spec.as_ref()?.template.spec.as_ref())
            .flat_map(|pod| &pod.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// `10.0.0.x`, stable for a Service.
fn pod_ip(service: &Service) -> String {
    let mut hasher = DefaultHasher::new();
    key(service).hash(&mut hasher);
    format!("10.0.0.{}", hasher.finish() % 254 + 1)
}

async fn apply_endpoints(
    client: &Client,
    service: &Service,
    subsets: Vec<EndpointSubset>,
) -> Result<Endpoints, kube::Error> {
    let (namespace, name) = key(service);
    let endpoints = Endpoints {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        subsets: Some(subsets),
    };
    let mut body = serde_json::to_value(&endpoints).unwrap();
    body["apiVersion"] = "v1".into();
    body["kind"] = "Endpoints".into();
    Api::<Endpoints>::namespaced(client.clone(), &namespace)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
}
