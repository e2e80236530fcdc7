//! What the controllers of a cluster would do for the objects `mlops` installs, since the real
//! test API server runs none of them, and no more than they would: a background thread that,
//! every [`PERIOD`], plays
//! - the kubelet and the workload controllers ([`workloads`]): a Deployment, StatefulSet or
//!   DaemonSet becomes available only when every Secret, ConfigMap and ServiceAccount its pods
//!   mount or name exists ([`pods`]), one generation at a time, with `availableReplicas`
//!   equal to its replicas; a test can also hold one unavailable, as a pod that never starts;
//! - the endpoint controllers: a Service that selects a workload gets Endpoints and an
//!   EndpointSlice with one address (10.0.x.y), ready only while that workload is available;
//! - the pods behind those addresses ([`egress`]): the API server reaches a webhook's Service
//!   through the stand-in's proxy, which refuses the connection while the workload is not
//!   available and otherwise admits, over TLS that the API server checks against the
//!   configuration's `caBundle`;
//! - cert-manager ([`cert_manager`]) and what the add-ons' own controllers do for their
//!   webhooks and namespaces ([`add_ons`]);
//! - KServe's controller, with Knative Serving's under it, for InferenceServices ([`kserve`]);
//! - the service account controller: a `default` ServiceAccount in every namespace;
//! - the namespace controller: a namespace being deleted is emptied, then finalized;
//! - the AWS load balancer controller: a LoadBalancer Service first gets the
//!   `service.kubernetes.io/load-balancer-cleanup` finalizer, then after [`LB_DELAY`] its
//!   hostname; once deleted it keeps the finalizer another [`LB_DELAY`], while the load
//!   balancer is being "deleted".
//!
//! The API server itself does the rest: for example a custom resource with a finalizer keeps
//! its CRD `Terminating`, and the namespace lifecycle refuses objects in a namespace being
//! deleted.
//!
//! It writes as its own user, so the audit log's count of the client's writes leaves it out,
//! and only when something is not yet as it should be.

mod add_ons;
mod cert_manager;
pub mod egress;
mod kserve;
mod pods;
pub mod workloads;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ConfigMap, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Namespace, NamespaceSpec,
    Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{verbs, Discovery, Scope};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use egress::{Ca, Routes};
use workloads::{Kind, Standing};

const PERIOD: Duration = Duration::from_millis(250);
const FIELD_MANAGER: &str = "mlops-test-stand-in";
/// How long AWS takes, here, to make a load balancer and to delete one.
pub const LB_DELAY: Duration = Duration::from_secs(1);
pub const LB_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

/// `(namespace, name)` of an object.
pub type Key = (String, String);

/// The running stand-in of one server; stops when dropped.
pub struct StandIn {
    held: Arc<Mutex<BTreeSet<Key>>>,
    reviews: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Starts the stand-in as the user of `kubeconfig`, its CA in `dir` and its proxy on
    /// `egress_socket` (where the server's egress selector sends cluster traffic).
    pub(super) fn start(kubeconfig: PathBuf, dir: PathBuf, egress_socket: PathBuf) -> StandIn {
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Arc::new(Ca::new(&dir));
        let held = Arc::new(Mutex::new(BTreeSet::new()));
        let reviews = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("kube-stand-in".into())
            .spawn({
                let (held, reviews, stop) = (held.clone(), reviews.clone(), stop.clone());
                move || {
                    let routes = Arc::new(Mutex::new(Routes::default()));
                    let proxy = egress::serve(
                        egress_socket,
                        ca.clone(),
                        routes.clone(),
                        reviews,
                        stop.clone(),
                    );
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(async {
                            tokio::join!(run(kubeconfig, ca, routes, held, stop), proxy)
                        });
                }
            })
            .expect("start the stand-in thread");
        StandIn {
            held,
            reviews,
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

    /// How many admission reviews the pods it plays have answered.
    pub fn reviews(&self) -> usize {
        self.reviews.load(Ordering::SeqCst)
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

/// What the stand-in remembers between rounds: when it first saw each workload generation and
/// each load balancer, and when it saw a load balancer's Service deleted.
#[derive(Default)]
struct Memory {
    generations: BTreeMap<(Kind, Key), (Value, Instant)>,
    load_balancers: BTreeMap<Key, Instant>,
    deleting: BTreeMap<Key, Instant>,
}

async fn run(
    kubeconfig: PathBuf,
    ca: Arc<Ca>,
    routes: Arc<Mutex<Routes>>,
    held: Arc<Mutex<BTreeSet<Key>>>,
    stop: Arc<AtomicBool>,
) {
    let client = super::client_from(&kubeconfig).await;
    let mut memory = Memory::default();
    // Each message printed once: the same failure would otherwise repeat 4 times a second.
    let mut reported = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        let held = held.lock().unwrap().clone();
        let mut round = Round {
            client: &client,
            ca: &ca,
            routes: &routes,
            held: &held,
            memory: &mut memory,
            notes: Vec::new(),
            errors: Vec::new(),
        };
        round.run().await;
        for note in round.notes {
            // The test harness captures stderr: no pipe to lose.
            #[allow(clippy::disallowed_macros)]
            if reported.insert(note.clone()) {
                eprintln!("kube stand-in: {note}");
            }
        }
        for e in round.errors {
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

fn workload_resource(kind: Kind) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind.name()))
}

/// Names of the objects of a kind, by namespace.
async fn names<K>(client: &Client) -> Result<BTreeSet<Key>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let list = Api::<K>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?;
    Ok(list.items.iter().map(key).collect())
}

struct Round<'a> {
    client: &'a Client,
    ca: &'a Ca,
    routes: &'a Mutex<Routes>,
    held: &'a BTreeSet<Key>,
    memory: &'a mut Memory,
    notes: Vec<String>,
    errors: Vec<kube::Error>,
}

impl Round<'_> {
    async fn run(&mut self) {
        if let Err(e) = self.pass().await {
            self.errors.push(e);
        }
    }

    async fn pass(&mut self) -> Result<(), kube::Error> {
        let client = self.client;
        let all = ListParams::default();
        let namespaces = Api::<Namespace>::all(client.clone())
            .list(&all)
            .await?
            .items;
        let (terminating, staying): (Vec<Namespace>, Vec<Namespace>) = namespaces
            .into_iter()
            .partition(|n| n.metadata.deletion_timestamp.is_some());
        // What is in a namespace being deleted is going too: no status, no endpoints for it.
        let going: BTreeSet<String> = terminating.iter().map(|n| n.name_any()).collect();
        let staying: Vec<String> = staying.iter().map(|n| n.name_any()).collect();
        if !terminating.is_empty() {
            let errors = finish_deletions(client, terminating).await;
            self.errors.extend(errors);
        }
        let secrets = names::<Secret>(client).await?;
        let config_maps = names::<ConfigMap>(client).await?;
        let accounts = names::<ServiceAccount>(client).await?;
        self.default_accounts(&staying, &accounts).await;
        let existing: BTreeSet<pods::Ref> = [
            ("secret", &secrets),
            ("configmap", &config_maps),
            ("serviceaccount", &accounts),
        ]
        .into_iter()
        .flat_map(|(kind, keys)| {
            keys.iter()
                .map(move |(ns, n)| (kind, ns.clone(), n.clone()))
        })
        .collect();

        let mut workloads = Vec::new();
        for kind in Kind::ALL {
            let api = Api::<DynamicObject>::all_with(client.clone(), &workload_resource(kind));
            for object in api.list(&all).await?.items {
                if !going.contains(&object.namespace().unwrap_or_default()) {
                    let value = serde_json::to_value(&object).unwrap();
                    workloads.push((kind, self.step(kind, value, &existing).await));
                }
            }
        }
        let listening = self.services(&going, &workloads).await?;

        // Listed objects carry no `kind`: the list they came from says it.
        let deployments: Vec<&Value> = workloads
            .iter()
            .filter(|(kind, w)| *kind == Kind::Deployment && workloads::is_available(*kind, w))
            .map(|(_, w)| w)
            .collect();
        let running = cert_manager::running(&deployments);
        let secret_keys = secrets.clone();
        cert_manager::round(client, self.ca, &running, &secret_keys, &mut self.errors).await;
        if let Err(e) = add_ons::own_webhook_cas(client, self.ca, &listening).await {
            self.errors.push(e);
        }
        let available: BTreeSet<Key> = deployments.iter().map(|d| value_key(d)).collect();
        let seen = kserve::Cluster {
            available: &available,
            secrets: &secrets,
        };
        kserve::round(client, &seen, &mut self.errors).await;
        if deployments
            .iter()
            .any(|d| d["metadata"]["labels"]["app"] == "istiod")
        {
            let result = add_ons::istio_root_certs(client, self.ca, &staying, &config_maps).await;
            self.errors.extend(result.err());
        }
        Ok(())
    }

    /// The service account controller's `default` account in each namespace that lacks one.
    async fn default_accounts(&mut self, namespaces: &[String], accounts: &BTreeSet<Key>) {
        for namespace in namespaces {
            if accounts.contains(&(namespace.clone(), "default".into())) {
                continue;
            }
            let account = ServiceAccount {
                metadata: kube::api::ObjectMeta {
                    name: Some("default".into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let created = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
                .create(&PostParams::default(), &account)
                .await;
            self.errors.extend(created.err());
        }
    }

    /// Writes the workload's next status, if it changes; the workload as it then is.
    async fn step(
        &mut self,
        kind: Kind,
        mut workload: Value,
        existing: &BTreeSet<pods::Ref>,
    ) -> Value {
        let (namespace, name) = value_key(&workload);
        let generation = workload["metadata"]["generation"].clone();
        let since = match self
            .memory
            .generations
            .get(&(kind, (namespace.clone(), name.clone())))
        {
            Some((seen, since)) if *seen == generation => *since,
            _ => {
                let now = Instant::now();
                self.memory
                    .generations
                    .insert((kind, (namespace.clone(), name.clone())), (generation, now));
                now
            }
        };
        let blocked = if self.held.contains(&(namespace.clone(), name.clone())) {
            Some("held unavailable by the test".to_string())
        } else {
            pods::missing(&workload, existing)
        };
        if let Some(why) = &blocked {
            self.notes.push(format!(
                "{} {namespace}/{name}: pods not ready: {why}",
                kind.name()
            ));
        }
        let standing = Standing { since, blocked };
        if let Some(status) = workloads::next_status(kind, &workload, &standing) {
            let api = Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                &namespace,
                &workload_resource(kind),
            );
            let patch = Patch::Merge(json!({ "status": status }));
            match api
                .patch_status(&name, &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => workload["status"] = status,
                Err(e) => self.errors.push(e),
            }
        }
        workload
    }

    /// Load balancers, Endpoints and EndpointSlices, and the proxy's routes; the Services
    /// whose endpoints are ready.
    async fn services(
        &mut self,
        going: &BTreeSet<String>,
        workloads: &[(Kind, Value)],
    ) -> Result<BTreeSet<Key>, kube::Error> {
        let client = self.client;
        let all = ListParams::default();
        let services = Api::<Service>::all(client.clone()).list(&all).await?.items;
        let endpoints: BTreeMap<Key, Option<Vec<EndpointSubset>>> =
            Api::<Endpoints>::all(client.clone())
                .list(&all)
                .await?
                .items
                .into_iter()
                .map(|e| (key(&e), e.subsets))
                .collect();
        let ours = ListParams::default().labels(&format!("{MANAGED_BY}={FIELD_MANAGER}"));
        let slices: BTreeMap<Key, (Vec<Endpoint>, Option<Vec<SlicePort>>)> =
            Api::<EndpointSlice>::all(client.clone())
                .list(&ours)
                .await?
                .items
                .into_iter()
                .map(|s| (key(&s), (s.endpoints, s.ports)))
                .collect();
        let mut listening = BTreeSet::new();
        for service in services {
            if is_load_balancer(&service) {
                self.load_balancer(&service).await;
            }
            if going.contains(&service.namespace().unwrap_or_default()) {
                continue;
            }
            let Some((ready, ports)) = selected(&service, workloads) else {
                continue;
            };
            let service_key = key(&service);
            let address = {
                let mut routes = self.routes.lock().unwrap();
                let address = routes.address(&service_key);
                routes.set_listening(&address, ready);
                address
            };
            if ready {
                listening.insert(service_key.clone());
            }
            let subsets = endpoint_subsets(&address, ready, &ports);
            if endpoints.get(&service_key) != Some(&Some(subsets.clone())) {
                self.errors
                    .extend(apply_endpoints(client, &service, subsets).await.err());
            }
            let slice = endpoint_slice(&service, &address, ready, &ports);
            let slice_key = key(&slice);
            if slices.get(&slice_key) != Some(&(slice.endpoints.clone(), slice.ports.clone())) {
                self.errors.extend(
                    apply(client, &slice_key.0, &slice_key.1, &slice)
                        .await
                        .err(),
                );
            }
        }
        Ok(listening)
    }

    /// The load balancer controller's part for one LoadBalancer Service.
    async fn load_balancer(&mut self, service: &Service) {
        let service_key = key(service);
        let api = Api::<Service>::namespaced(self.client.clone(), &service_key.0);
        let name = &service_key.1;
        let finalizers = service.finalizers().to_vec();
        let has_finalizer = finalizers.iter().any(|f| f == LB_FINALIZER);
        if service.metadata.deletion_timestamp.is_some() {
            let since = *self
                .memory
                .deleting
                .entry(service_key.clone())
                .or_insert_with(Instant::now);
            if has_finalizer && since.elapsed() >= LB_DELAY {
                let rest: Vec<&String> = finalizers.iter().filter(|f| *f != LB_FINALIZER).collect();
                let patch = Patch::Merge(json!({"metadata": {"finalizers": rest}}));
                self.errors
                    .extend(api.patch(name, &PatchParams::default(), &patch).await.err());
            }
            return;
        }
        if !has_finalizer {
            let mut with = finalizers.clone();
            with.push(LB_FINALIZER.to_string());
            let patch = Patch::Merge(json!({"metadata": {"finalizers": with}}));
            self.errors
                .extend(api.patch(name, &PatchParams::default(), &patch).await.err());
        }
        let since = *self
            .memory
            .load_balancers
            .entry(service_key.clone())
            .or_insert_with(Instant::now);
        if !has_lb_ingress(service) && since.elapsed() >= LB_DELAY {
            let hostname = format!("{name}-{}.elb.mlops.test", service_key.0);
            let patch = Patch::Merge(
                json!({"status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}}}),
            );
            self.errors.extend(
                api.patch_status(name, &PatchParams::default(), &patch)
                    .await
                    .err(),
            );
        }
    }
}

/// Every webhook configuration, validating and mutating, with the API it was listed from.
async fn webhook_configurations(
    client: &Client,
) -> Result<Vec<(Api<DynamicObject>, DynamicObject)>, kube::Error> {
    let mut all = Vec::new();
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            kind,
        ));
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        for configuration in api.list(&ListParams::default()).await?.items {
            all.push((api.clone(), configuration));
        }
    }
    Ok(all)
}

/// Sets `caBundle` to `bundle` in each webhook of `configuration` that `pick` chooses and
/// that calls a Service; writes the configuration if that changed anything.
async fn set_ca_bundles(
    api: &Api<DynamicObject>,
    mut configuration: DynamicObject,
    bundle: &str,
    pick: impl Fn(&Value) -> bool,
) -> Result<(), kube::Error> {
    let mut changed = false;
    for webhook in configuration.data["webhooks"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let calls_service = webhook["clientConfig"]["service"].is_object();
        if calls_service && pick(webhook) && webhook["clientConfig"]["caBundle"] != bundle {
            webhook["clientConfig"]["caBundle"] = bundle.into();
            changed = true;
        }
    }
    if changed {
        let name = configuration.name_any();
        api.replace(&name, &PostParams::default(), &configuration)
            .await?;
    }
    Ok(())
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

fn value_key(object: &Value) -> Key {
    let text = |field: &str| {
        object["metadata"][field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    (text("namespace"), text("name"))
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

/// A Service port as its endpoints give it: its name (empty when unnamed), the pods' port
/// and the protocol.
type Port = (String, i32, String);

/// Whether a workload in the Service's namespace whose pod template its selector matches is
/// available, and the Service's ports at the pods; `None` when no workload matches.
fn selected(service: &Service, workloads: &[(Kind, Value)]) -> Option<(bool, Vec<Port>)> {
    let spec = service.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let namespace = service.namespace().unwrap_or_default();
    let matching: Vec<&(Kind, Value)> = workloads
        .iter()
        .filter(|(_, w)| w["metadata"]["namespace"] == namespace.as_str())
        .filter(|(_, w)| {
            let labels = &w["spec"]["template"]["metadata"]["labels"];
            selector.iter().all(|(k, v)| labels[k] == v.as_str())
        })
        .collect();
    if matching.is_empty() {
        return None;
    }
    let ready = matching
        .iter()
        .any(|(kind, w)| workloads::is_available(*kind, w));
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                target_port(p.target_port.as_ref(), &matching).unwrap_or(p.port),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            )
        })
        .collect();
    Some((ready, ports))
}

/// A numeric target port, or a named one looked up in the containers of the workloads.
fn target_port(target: Option<&IntOrString>, workloads: &[&(Kind, Value)]) -> Option<i32> {
    match target? {
        IntOrString::Int(port) => Some(*port),
        IntOrString::String(name) => workloads
            .iter()
            .flat_map(|(_, w)| {
                w["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_i64())
            .map(|p| p as i32),
    }
}

fn endpoint_subsets(address: &str, ready: bool, ports: &[Port]) -> Vec<EndpointSubset> {
    let addresses = vec![EndpointAddress {
        ip: address.to_string(),
        ..Default::default()
    }];
    let (addresses, not_ready_addresses) = if ready {
        (Some(addresses), None)
    } else {
        (None, Some(addresses))
    };
    let ports = ports
        .iter()
        .map(|(name, port, protocol)| EndpointPort {
            name: Some(name.clone()).filter(|n| !n.is_empty()),
            port: *port,
            protocol: Some(protocol.clone()),
            ..Default::default()
        })
        .collect();
    vec![EndpointSubset {
        addresses,
        not_ready_addresses,
        ports: Some(ports),
    }]
}

/// The EndpointSlice the API server resolves a webhook's Service with.
fn endpoint_slice(service: &Service, address: &str, ready: bool, ports: &[Port]) -> EndpointSlice {
    let (namespace, name) = key(service);
    EndpointSlice {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}-stand-in")),
            namespace: Some(namespace),
            labels: Some(
                [
                    ("kubernetes.io/service-name".to_string(), name),
                    (MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: vec![Endpoint {
            addresses: vec![address.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            ..Default::default()
        }],
        ports: Some(
            ports
                .iter()
                .map(|(name, port, protocol)| SlicePort {
                    name: Some(name.clone()),
                    port: Some(*port),
                    protocol: Some(protocol.clone()),
                    ..Default::default()
                })
                .collect(),
        ),
    }
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
    apply(client, &namespace, &name, &endpoints).await
}

/// Server-side apply of a namespaced built-in object as the stand-in.
async fn apply<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    object: &K,
) -> Result<K, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let mut body = serde_json::to_value(object).unwrap();
    body["apiVersion"] = <K as k8s_openapi::Resource>::API_VERSION.into();
    body["kind"] = <K as k8s_openapi::Resource>::KIND.into();
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
}
