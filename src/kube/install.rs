//! Staged server-side apply: the order and the waits that make a set of release manifests go in
//! without `no matches for kind` or `failed calling webhook`, and the reverse order that takes
//! them out without leaving custom resources stuck behind a deleted controller.
//!
//! Install, per set: namespaces; CRDs, then a wait until each is `Established` and served by
//! discovery; the other built-in kinds (helm's order) together with the custom resources of
//! kinds the cluster already serves (an earlier add-on's: cert-manager's Issuers and
//! Certificates, Istio's Gateways), since the set's Deployments may mount what those make (KServe's
//! controller mounts the Secret of its webhook's Certificate); a wait until the set's
//! Deployments, DaemonSets and StatefulSets are available; the webhook configurations and
//! APIServices, and a wait until each webhook's Service has ready endpoints and its `caBundle`
//! is filled; the custom resources of the set's own CRDs (a webhook still not serving, `failed
//! calling webhook` with `no endpoints available`, `connection refused`, ..., is retried by every
//! call, `cluster::RETRY`); and a wait until each KServe InferenceService and Knative Service
//! is `Ready`. An object annotated
//! `mlops.dev/wait: "false"` is not waited for to become ready or available;
//! `mlops.dev/wait-timeout` gives it its own time limit.
//!
//! Uninstall: custom resources first (their controllers still run and can clear finalizers), the
//! webhook configurations (so that they block no deletion), the rest, the CRDs (custom
//! resources of theirs that `mlops` did not create first freed of finalizers no controller is
//! left to clear, with a warning naming each), the namespaces.
//!
//! Prune, after an upgrade: an object is the same object across versions when its group, kind,
//! namespace and name are ([`ObjectRef::key`]), so a release that moves a kind to a new API
//! version (`v1beta1` to `v1`) has not dropped it, and pruning it would delete what was just
//! applied. Of what was dropped, only objects whose live copy still carries the add-on's label
//! are uninstalled: one that another add-on has taken over (labelled as its own) is left, with
//! a warning.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;

use super::cluster::Cluster;
use super::error::KubeError;
use crate::manifest::{
    Object, ObjectRef, ADDON_LABEL, MANAGED_BY, WAIT_ANNOTATION, WAIT_TIMEOUT_ANNOTATION,
};

/// How long each wait may take, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For each object to become ready or to go away.
    pub timeout: Duration,
    /// For a LoadBalancer Service to get its address; running out is only a warning, since AWS
    /// can take minutes to provision one.
    pub load_balancer_timeout: Duration,
    pub poll: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            timeout: Duration::from_secs(600),
            load_balancer_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(2),
        }
    }
}

/// How long to wait for `object` to become ready: `None` when it is annotated
/// `mlops.dev/wait: "false"`; its `mlops.dev/wait-timeout` when that is a duration, else `default`.
pub fn wait_timeout(object: &Value, default: Duration) -> Option<Duration> {
    let annotation = |name: &str| object["metadata"]["annotations"][name].as_str();
    if annotation(WAIT_ANNOTATION) == Some("false") {
        return None;
    }
    Some(
        annotation(WAIT_TIMEOUT_ANNOTATION)
            .and_then(|t| humantime::parse_duration(t).ok())
            .unwrap_or(default),
    )
}

/// Where the installer says what it is waiting for (the executor's reporter, in a run).
pub type Note<'a> = &'a dyn Progress;

/// What the installer tells the user while it works.
pub trait Progress: Sync {
    /// What a long wait is waiting for.
    fn waiting(&self, what: &str);
    /// Something that does not stop the run but should be known.
    fn warning(&self, message: &str);
}

/// Objects written at once.
const IN_FLIGHT: usize = 8;
/// The first pause of a wait.
const FIRST_POLL: Duration = Duration::from_millis(100);

/// API groups of Kubernetes itself; every other group is defined by a CRD.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
];

/// Built-in kinds in the order helm installs them; kinds not listed go after these.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
];

/// The stages of an install, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Namespace,
    Crd,
    Builtin,
    Admission,
    Custom,
}

pub fn stage(id: &ObjectRef) -> Stage {
    if id.is_namespace() {
        Stage::Namespace
    } else if id.is_crd() {
        Stage::Crd
    } else if !BUILTIN_GROUPS.contains(&id.group_version().0) {
        Stage::Custom
    } else if is_admission(id) {
        Stage::Admission
    } else {
        Stage::Builtin
    }
}

fn is_admission(id: &ObjectRef) -> bool {
    matches!(
        id.kind.as_str(),
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" | "APIService"
    )
}

/// The install order of `objects`: by stage, built-in kinds in helm's order, stable otherwise.
pub fn install_order(objects: &mut [Object]) {
    let rank = |id: &ObjectRef| {
        KIND_ORDER
            .iter()
            .position(|k| *k == id.kind)
            .unwrap_or(KIND_ORDER.len())
    };
    objects.sort_by_key(|o| (stage(&o.id), rank(&o.id)));
}

/// Creates each namespace of `names` that does not exist, labelled as made by `mlops`; one that
/// exists is left as it is.
pub async fn ensure_namespaces(cluster: &Cluster, names: &[&str]) -> Result<(), KubeError> {
    ensure_labelled_namespaces(cluster, names, &[MANAGED_BY]).await
}

/// [`ensure_namespaces`] with these labels on the namespaces it creates (an add-on's, so that
/// its uninstall knows the namespaces it made).
pub async fn ensure_labelled_namespaces(
    cluster: &Cluster,
    names: &[&str],
    labels: &[(&str, &str)],
) -> Result<(), KubeError> {
    for name in names {
        let mut namespace = Object::namespace(name);
        if cluster.get(&namespace.id).await?.is_none() {
            namespace.label(labels);
            cluster.apply(&namespace, false).await?;
        }
    }
    Ok(())
}

/// Applies `objects` in stages, waiting as the module documentation says.
pub fn install<'a>(
    cluster: &'a Cluster,
    mut objects: Vec<Object>,
    waits: &'a Waits,
    note: Note<'a>,
) -> BoxFuture<'a, Result<(), KubeError>> {
    // Boxed with one lifetime for every borrow: the `Send` check of the providers' futures
    // cannot prove this future general enough over several (rust-lang/rust#102211).
    async move {
        install_order(&mut objects);

        apply_all(cluster, &in_stage(&objects, Stage::Namespace)).await?;

        let crds = in_stage(&objects, Stage::Crd);
        if !crds.is_empty() {
            apply_all(cluster, &crds).await?;
            note.waiting(&format!(
                "{} CustomResourceDefinitions to be established",
                crds.len()
            ));
            // A loop, not a closure: see `bounded`.
            let mut established = Vec::with_capacity(crds.len());
            for crd in &crds {
                established.push(wait_established(cluster, crd, waits).boxed());
            }
            bounded(established).await?;
        }

        // Custom resources of kinds the cluster already serves (an earlier add-on's CRDs, such
        // as cert-manager's Certificates or Istio's Gateways) go in with the built-in objects:
        // the Deployments may need what they make (a Certificate's Secret, mounted).
        let (own, served): (Vec<&Object>, Vec<&Object>) = in_stage(&objects, Stage::Custom)
            .into_iter()
            .partition(|o| defines_kind(&crds, &o.id));
        let mut builtin = in_stage(&objects, Stage::Builtin);
        builtin.extend(served.iter().copied());
        apply_all(cluster, &builtin).await?;
        wait_workloads(cluster, &builtin, waits, note).await?;

        let admission = in_stage(&objects, Stage::Admission);
        if !admission.is_empty() {
            apply_all(cluster, &admission).await?;
            wait_webhooks(cluster, &admission, waits, note).await?;
        }

        if let Some(first) = own.first() {
            // A webhook that accepts a dry run of the first custom resource is serving.
            note.waiting(&format!(
                "the admission webhooks to accept {}",
                first.id.short()
            ));
            cluster.apply(first, true).await?;
            apply_all(cluster, &own).await?;
        }
        let custom: Vec<&Object> = served.into_iter().chain(own).collect();
        wait_ready(cluster, &custom, waits, note).await?;

        wait_load_balancers(cluster, &builtin, waits, note).await;
        Ok(())
    }
    .boxed()
}

fn in_stage(objects: &[Object], s: Stage) -> Vec<&Object> {
    objects.iter().filter(|o| stage(&o.id) == s).collect()
}

/// Whether one of `crds` defines the kind of `id` (else the cluster must already serve it).
fn defines_kind(crds: &[&Object], id: &ObjectRef) -> bool {
    let group = id.group_version().0;
    crds.iter().any(|crd| {
        crd.body["spec"]["group"] == group && crd.body["spec"]["names"]["kind"] == id.kind.as_str()
    })
}

/// Applies objects, several at once.
async fn apply_all<'a>(cluster: &'a Cluster, objects: &'a [&'a Object]) -> Result<(), KubeError> {
    // A loop, not a closure: see `bounded`.
    let mut applies = Vec::with_capacity(objects.len());
    for object in objects {
        applies.push(cluster.apply(object, false).boxed());
    }
    bounded(applies).await
}

/// Runs `futures` at most `IN_FLIGHT` at a time; the first error stops the rest.
/// The futures are boxed and made in loops rather than closures, for the `Send` check (see
/// `install`).
async fn bounded<T>(futures: Vec<BoxFuture<'_, Result<T, KubeError>>>) -> Result<(), KubeError> {
    stream::iter(futures)
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<T>>()
        .await
        .map(drop)
}

/// Polls `check` until it says ready (`Ok(None)`); `Some(text)` is the last state, reported if
/// the time runs out. The first looks come quickly (most things are ready within a second),
/// then the pause grows to `poll`.
async fn wait_for<F, Fut>(
    object: &ObjectRef,
    what: &'static str,
    timeout: Duration,
    poll: Duration,
    mut check: F,
) -> Result<(), KubeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<String>, KubeError>>,
{
    let started = Instant::now();
    let mut pause = FIRST_POLL.min(poll);
    loop {
        let last = match check().await? {
            None => return Ok(()),
            Some(last) => last,
        };
        if started.elapsed() >= timeout {
            return Err(KubeError::Timeout {
                object: object.short(),
                what,
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(poll);
    }
}

/// The condition `kind` of a status, as `(status, message)`.
fn condition<'a>(object: &'a Value, kind: &str) -> Option<(&'a str, &'a str)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or(""),
                c["message"].as_str().or(c["reason"].as_str()).unwrap_or(""),
            )
        })
}

async fn wait_established<'a>(
    cluster: &'a Cluster,
    crd: &'a Object,
    waits: &'a Waits,
) -> Result<(), KubeError> {
    wait_for(
        &crd.id,
        "established",
        waits.timeout,
        waits.poll,
        move || async move {
            let live = cluster.get(&crd.id).await?;
            Ok(
                match live.as_ref().and_then(|l| condition(l, "Established")) {
                    Some(("True", _)) => None,
                    Some((_, message)) => Some(format!("Established: {message}")),
                    None => Some("no Established condition yet".into()),
                },
            )
        },
    )
    .await?;
    // Served once discovery lists its kind.
    let group = crd.body["spec"]["group"].as_str().unwrap_or_default();
    let kind = crd.body["spec"]["names"]["kind"]
        .as_str()
        .unwrap_or_default();
    let versions: Vec<String> = crd.body["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["served"] != false)
                .filter_map(|v| v["name"].as_str())
                .map(|v| format!("{group}/{v}"))
                .collect()
        })
        .unwrap_or_default();
    for api_version in &versions {
        let api_version = api_version.as_str();
        wait_for(
            &crd.id,
            "served by discovery",
            waits.timeout,
            waits.poll,
            move || async move {
                Ok(match cluster.served(api_version, kind, true).await? {
                    Some(_) => None,
                    None => Some(format!("discovery does not list {api_version} {kind} yet")),
                })
            },
        )
        .await?;
    }
    Ok(())
}

/// `None` when a Deployment, DaemonSet or StatefulSet is available, else its last state.
pub fn unavailable(kind: &str, live: &Value) -> Option<String> {
    let status = &live["status"];
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let generation = int(&live["metadata"]["generation"]);
    if int(&status["observedGeneration"]) < generation {
        return Some("the controller has not seen the latest change yet".into());
    }
    match kind {
        "Deployment" => {
            let wanted = live["spec"]["replicas"].as_i64().unwrap_or(1);
            match condition(live, "Available") {
                Some(("True", _)) if int(&status["updatedReplicas"]) >= wanted => None,
                Some((_, message)) if !message.is_empty() => Some(message.to_string()),
                _ => Some(format!(
                    "{} of {wanted} replicas updated and available",
                    int(&status["availableReplicas"])
                )),
            }
        }
        "DaemonSet" => {
            let wanted = int(&status["desiredNumberScheduled"]);
            (int(&status["numberReady"]) < wanted
                || int(&status["updatedNumberScheduled"]) < wanted)
                .then(|| format!("{} of {wanted} pods ready", int(&status["numberReady"])))
        }
        _ => {
            let wanted = live["spec"]["replicas"].as_i64().unwrap_or(1);
            (int(&status["readyReplicas"]) < wanted).then(|| {
                format!(
                    "{} of {wanted} replicas ready",
                    int(&status["readyReplicas"])
                )
            })
        }
    }
}

async fn wait_workloads<'a>(
    cluster: &'a Cluster,
    objects: &'a [&'a Object],
    waits: &'a Waits,
    note: Note<'a>,
) -> Result<(), KubeError> {
    let workloads: Vec<(&ObjectRef, Duration)> = objects
        .iter()
        .filter(|o| o.id.group_version().0 == "apps")
        .filter(|o| {
            matches!(
                o.id.kind.as_str(),
                "Deployment" | "DaemonSet" | "StatefulSet"
            )
        })
        .filter_map(|o| Some((&o.id, wait_timeout(&o.body, waits.timeout)?)))
        .collect();
    if workloads.is_empty() {
        return Ok(());
    }
    note.waiting(&format!(
        "{} workloads to become available",
        workloads.len()
    ));
    // A loop, not a closure: see `bounded`.
    let mut available = Vec::with_capacity(workloads.len());
    for (id, timeout) in workloads {
        available.push(
            wait_live(cluster, id, "available", timeout, waits.poll, |id, live| {
                unavailable(&id.kind, live)
            })
            .boxed(),
        );
    }
    bounded(available).await
}

/// Waits until `state` of the live object says it is `what` (`None`), or the time runs out.
async fn wait_live<'a>(
    cluster: &'a Cluster,
    id: &'a ObjectRef,
    what: &'static str,
    timeout: Duration,
    poll: Duration,
    state: fn(&ObjectRef, &Value) -> Option<String>,
) -> Result<(), KubeError> {
    wait_for(id, what, timeout, poll, move || async move {
        Ok(match cluster.get(id).await? {
            Some(live) => state(id, &live),
            None => Some("it does not exist".into()),
        })
    })
    .await
}

/// Kinds whose controller reports a `Ready` condition worth waiting for: what serves a model.
fn reports_ready(id: &ObjectRef) -> bool {
    matches!(
        (id.group_version().0, id.kind.as_str()),
        ("serving.kserve.io", "InferenceService") | ("serving.knative.dev", "Service")
    )
}

/// `None` when the object's `Ready` condition is true, else its last state.
pub fn not_ready(live: &Value) -> Option<String> {
    let generation = live["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = live["status"]["observedGeneration"].as_i64();
    match condition(live, "Ready") {
        _ if observed.is_some_and(|o| o < generation) => {
            Some("the controller has not seen the latest change yet".into())
        }
        Some(("True", _)) => None,
        Some((status, message)) if !message.is_empty() => {
            Some(format!("Ready {status}: {message}"))
        }
        Some((status, _)) => Some(format!("Ready {status}")),
        None => Some("no Ready condition yet".into()),
    }
}

/// Waits until each InferenceService and Knative Service of `objects` is `Ready`.
async fn wait_ready<'a>(
    cluster: &'a Cluster,
    objects: &'a [&'a Object],
    waits: &'a Waits,
    note: Note<'a>,
) -> Result<(), KubeError> {
    let serving: Vec<(&ObjectRef, Duration)> = objects
        .iter()
        .filter(|o| reports_ready(&o.id))
        .filter_map(|o| Some((&o.id, wait_timeout(&o.body, waits.timeout)?)))
        .collect();
    for (id, timeout) in serving {
        note.waiting(&format!("{} to be Ready", id.short()));
        wait_live(cluster, id, "Ready", timeout, waits.poll, |_, live| {
            not_ready(live)
        })
        .await?;
    }
    Ok(())
}

/// Waits until every webhook of these configurations that calls a Service has ready endpoints
/// behind it and a `caBundle` to check it with.
async fn wait_webhooks<'a>(
    cluster: &'a Cluster,
    objects: &'a [&'a Object],
    waits: &'a Waits,
    note: Note<'a>,
) -> Result<(), KubeError> {
    let services: BTreeSet<(String, String)> = objects
        .iter()
        .flat_map(|o| o.body["webhooks"].as_array().cloned().unwrap_or_default())
        .filter_map(|w| {
            let service = &w["clientConfig"]["service"];
            Some((
                service["namespace"].as_str()?.to_string(),
                service["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    for (namespace, name) in &services {
        let endpoints = ObjectRef {
            api_version: "v1".into(),
            kind: "Endpoints".into(),
            namespace: Some(namespace.clone()),
            name: name.clone(),
        };
        note.waiting(&format!(
            "Service {namespace}/{name} to have ready endpoints"
        ));
        let endpoints = &endpoints;
        wait_for(
            endpoints,
            "ready",
            waits.timeout,
            waits.poll,
            move || async move {
                let live = cluster.get(endpoints).await?;
                let ready = live
                    .as_ref()
                    .and_then(|l| l["subsets"].as_array())
                    .is_some_and(|subsets| {
                        subsets
                            .iter()
                            .any(|s| s["addresses"].as_array().is_some_and(|a| !a.is_empty()))
                    });
                Ok((!ready).then(|| "no ready address".to_string()))
            },
        )
        .await?;
    }
    for config in objects
        .iter()
        .filter(|o| o.id.kind.ends_with("WebhookConfiguration"))
    {
        wait_for(
            &config.id,
            "given its caBundle",
            waits.timeout,
            waits.poll,
            move || async move {
                let live = cluster.get(&config.id).await?.unwrap_or(Value::Null);
                let missing: Vec<&str> = live["webhooks"]
                    .as_array()
                    .map(|ws| {
                        ws.iter()
                            .filter(|w| w["clientConfig"]["service"].is_object())
                            .filter(|w| {
                                w["clientConfig"]["caBundle"]
                                    .as_str()
                                    .unwrap_or("")
                                    .is_empty()
                            })
                            .filter_map(|w| w["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(
                    (!missing.is_empty())
                        .then(|| format!("no caBundle for {}", missing.join(", "))),
                )
            },
        )
        .await?;
    }
    Ok(())
}

/// Waits for the address of each LoadBalancer Service; a warning, not an error, when AWS is
/// slower than the timeout.
async fn wait_load_balancers<'a>(
    cluster: &'a Cluster,
    objects: &'a [&'a Object],
    waits: &'a Waits,
    note: Note<'a>,
) {
    // Collected first: an iterator adapter's closure held across an await breaks the `Send`
    // check (see `install`).
    let services: Vec<&&Object> = objects
        .iter()
        .filter(|o| o.id.kind == "Service" && o.body["spec"]["type"] == "LoadBalancer")
        .filter(|o| wait_timeout(&o.body, waits.timeout).is_some())
        .collect();
    for service in services {
        note.waiting(&format!(
            "{} to get a load balancer address",
            service.id.short()
        ));
        let waited = wait_for(
            &service.id,
            "given an address",
            waits.load_balancer_timeout,
            waits.poll,
            move || async move {
                let live = cluster.get(&service.id).await?.unwrap_or(Value::Null);
                Ok(load_balancer_address(&live)
                    .is_none()
                    .then(|| "no address yet".to_string()))
            },
        )
        .await;
        if let Err(e) = waited {
            note.warning(&format!(
                "{e}; `mlops output` shows it once AWS has made it"
            ));
        }
    }
}

/// The hostname (or IP) of a LoadBalancer Service.
pub fn load_balancer_address(service: &Value) -> Option<String> {
    let ingress = service["status"]["loadBalancer"]["ingress"]
        .as_array()?
        .first()?;
    ingress["hostname"]
        .as_str()
        .or(ingress["ip"].as_str())
        .map(str::to_string)
}

/// Deletes objects in the order the module documentation gives, waiting for custom resources
/// and CRDs to be gone. A custom resource still there at the timeout has its finalizers
/// removed, with a warning naming it.
pub fn uninstall<'a>(
    cluster: &'a Cluster,
    objects: &'a [ObjectRef],
    waits: &'a Waits,
    note: Note<'a>,
) -> BoxFuture<'a, Result<(), KubeError>> {
    // Boxed with one lifetime for every borrow: the `Send` check of the providers' futures
    // cannot prove this future general enough over several (rust-lang/rust#102211).
    async move {
        let of = |pick: &dyn Fn(&ObjectRef) -> bool| -> Vec<&ObjectRef> {
            objects.iter().filter(|o| pick(o)).collect()
        };
        let custom = of(&|o| stage(o) == Stage::Custom);
        delete_and_wait(cluster, &custom, waits, note, true).await?;
        delete_all(cluster, &of(&|o| stage(o) == Stage::Admission)).await?;
        // A load balancer's Service or Ingress is waited for: AWS must release it first.
        let fronts = of(&|o| stage(o) == Stage::Builtin && fronts_load_balancer(o));
        delete_and_wait(cluster, &fronts, waits, note, false).await?;
        delete_all(
            cluster,
            &of(&|o| stage(o) == Stage::Builtin && !fronts_load_balancer(o)),
        )
        .await?;
        let crds = of(&|o| stage(o) == Stage::Crd);
        free_custom_resources(cluster, &crds, note).await?;
        delete_and_wait(cluster, &crds, waits, note, false).await?;
        delete_and_wait(
            cluster,
            &of(&|o| stage(o) == Stage::Namespace),
            waits,
            note,
            false,
        )
        .await
    }
    .boxed()
}

/// The objects of `prior` that `desired` no longer has, by group, kind, namespace and name.
pub fn dropped(prior: Vec<ObjectRef>, desired: &[ObjectRef]) -> Vec<ObjectRef> {
    let wanted: BTreeSet<_> = desired.iter().map(ObjectRef::key).collect();
    prior
        .into_iter()
        .filter(|r| !wanted.contains(&r.key()))
        .collect()
}

/// Uninstalls the objects of `dropped` that are still labelled as the add-on `addon`'s; a
/// warning names each one labelled as another's (or no add-on's); one already gone is skipped.
pub async fn prune(
    cluster: &Cluster,
    addon: &str,
    dropped: &[ObjectRef],
    waits: &Waits,
    note: Note<'_>,
) -> Result<(), KubeError> {
    let mut ours = Vec::with_capacity(dropped.len());
    for id in dropped {
        let Some(live) = cluster.get(id).await? else {
            continue;
        };
        match live["metadata"]["labels"][ADDON_LABEL].as_str() {
            Some(owner) if owner == addon => ours.push(id.clone()),
            Some(owner) => note.warning(&format!(
                "{} is not pruned: it is `{owner}`'s now (label `{ADDON_LABEL}`)",
                id.short()
            )),
            None => note.warning(&format!(
                "{} is not pruned: it no longer has the label `{ADDON_LABEL}: {addon}`",
                id.short()
            )),
        }
    }
    if ours.is_empty() {
        return Ok(());
    }
    note.waiting(&format!(
        "{} objects the new version no longer has to be pruned",
        ours.len()
    ));
    uninstall(cluster, &ours, waits, note).await
}

/// The custom resources of `crds`' kinds still there once the add-on's own were deleted and
/// its controllers are gone: ones `mlops` did not create (a model applied with kubectl). Their
/// finalizers are removed, with a warning naming each, since nothing runs any more to clear
/// them, and they would keep their CRD, and their namespace, terminating; the CRD's deletion
/// then takes them.
async fn free_custom_resources(
    cluster: &Cluster,
    crds: &[&ObjectRef],
    note: Note<'_>,
) -> Result<(), KubeError> {
    for crd in crds {
        let Some(live) = cluster.get(crd).await? else {
            continue;
        };
        let spec = &live["spec"];
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        let Some(version) = versions
            .iter()
            .find(|v| v["storage"] == true)
            .and_then(|v| v["name"].as_str())
        else {
            continue;
        };
        let api_version = format!("{}/{version}", spec["group"].as_str().unwrap_or_default());
        let kind = spec["names"]["kind"].as_str().unwrap_or_default();
        for object in cluster.list(&api_version, kind, "").await? {
            let finalizers = &object["metadata"]["finalizers"];
            if finalizers.as_array().is_none_or(Vec::is_empty) {
                continue;
            }
            let id = object_ref(&api_version, kind, &object);
            note.warning(&format!(
                "removing the finalizers {finalizers} of {}, which `mlops` did not create: its controller is gone, and it would keep {} from being deleted",
                id.short(),
                crd.short()
            ));
            cluster.strip_finalizers(&id).await?;
        }
    }
    Ok(())
}

/// Services and Ingresses: objects that may stand for an AWS load balancer.
fn fronts_load_balancer(id: &ObjectRef) -> bool {
    matches!(
        (id.group_version().0, id.kind.as_str()),
        ("", "Service") | ("networking.k8s.io", "Ingress")
    )
}

async fn delete_all<'a>(cluster: &'a Cluster, ids: &'a [&'a ObjectRef]) -> Result<(), KubeError> {
    bounded(ids.iter().map(|id| cluster.delete(id).boxed()).collect()).await
}

async fn delete_and_wait<'a>(
    cluster: &'a Cluster,
    ids: &'a [&'a ObjectRef],
    waits: &'a Waits,
    note: Note<'a>,
    strip_finalizers: bool,
) -> Result<(), KubeError> {
    if ids.is_empty() {
        return Ok(());
    }
    delete_all(cluster, ids).await?;
    note.waiting(&format!("{} objects to be deleted", ids.len()));
    for id in ids {
        let gone = wait_for(
            id,
            "deleted",
            waits.timeout,
            waits.poll,
            move || async move {
                Ok(cluster.get(id).await?.map(|live| {
                    let finalizers = live["metadata"]["finalizers"].to_string();
                    format!("still there, finalizers {finalizers}")
                }))
            },
        )
        .await;
        match gone {
            Err(KubeError::Timeout { .. }) if strip_finalizers => {
                note.warning(&format!(
                    "removing the finalizers of {}, which its controller did not clear",
                    id.short()
                ));
                cluster.strip_finalizers(id).await?;
            }
            other => other?,
        }
    }
    Ok(())
}

/// Deletes every LoadBalancer Service and Ingress in the cluster and waits until they are gone,
/// so that the AWS load balancers behind them no longer hold network interfaces in the VPC.
pub async fn delete_load_balancers(
    cluster: &Cluster,
    waits: &Waits,
    note: Note<'_>,
) -> Result<usize, KubeError> {
    let mut ids = Vec::new();
    for service in cluster.list("v1", "Service", "").await? {
        if service["spec"]["type"] == "LoadBalancer" {
            ids.push(object_ref("v1", "Service", &service));
        }
    }
    for ingress in cluster.list("networking.k8s.io/v1", "Ingress", "").await? {
        ids.push(object_ref("networking.k8s.io/v1", "Ingress", &ingress));
    }
    let refs: Vec<&ObjectRef> = ids.iter().collect();
    delete_and_wait(cluster, &refs, waits, note, false).await?;
    Ok(ids.len())
}

/// The reference of a live object of a known kind.
pub fn object_ref(api_version: &str, kind: &str, live: &Value) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: live["metadata"]["namespace"].as_str().map(str::to_string),
        name: live["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}
