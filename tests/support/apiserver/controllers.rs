//! What the rest of a cluster does to the objects, modelled just enough for an installer:
//! CRDs become Established, workloads become available, KServe InferenceServices and
//! Knative Services become Ready with a URL, Endpoints follow Services and available
//! workloads, load balancers get a hostname and take a moment to be released, webhook
//! configurations and APIServices get their caBundle once their Service is ready, and a
//! terminating namespace goes once it is empty. Each runs after a store or removal
//! (`react`) or when a timer it asked for fires (`fire`).

use base64::Engine as _;
use serde_json::{json, Value};

use super::resources::{crd_resource, Resource};
use super::selector::LabelSelector;
use super::state::{is_deleting, name_of, namespace_of, now, State};
use super::writes::{create, finish_namespace, set_or_remove, update_as, Target, Writer};

/// Work a controller does after a delay.
#[derive(Debug, Clone)]
pub enum Timer {
    EstablishCrd {
        name: String,
        uid: Value,
    },
    WorkloadReady {
        plural: String,
        namespace: String,
        name: String,
        generation: i64,
    },
    ServingReady {
        group: String,
        plural: String,
        namespace: String,
        name: String,
        generation: i64,
    },
    LoadBalancerReady {
        namespace: String,
        name: String,
        uid: Value,
    },
    LoadBalancerReleased {
        namespace: String,
        name: String,
        uid: Value,
    },
}

const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const LOAD_BALANCER_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
const WORKLOADS: [&str; 3] = ["deployments", "statefulsets", "daemonsets"];
/// The serving kinds whose controllers report `Ready` and a URL: (group, plural).
const SERVING: [(&str, &str); 2] = [
    ("serving.kserve.io", "inferenceservices"),
    ("serving.knative.dev", "services"),
];

/// A PEM that is not a certificate, base64-encoded as a caBundle: what an injector writes.
fn fake_ca_bundle() -> String {
    base64::engine::general_purpose::STANDARD
        .encode("-----BEGIN CERTIFICATE-----\nbWxvcHMgdGVzdCBDQQ==\n-----END CERTIFICATE-----\n")
}

/// Runs after every store or removal of an object.
pub fn react(state: &mut State, resource: &Resource, namespace: &str, name: &str) {
    match (resource.group.as_str(), resource.plural.as_str()) {
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd_changed(state, name),
        ("apps", plural) if WORKLOADS.contains(&plural) => {
            workload_changed(state, resource, namespace, name);
            update_endpoints(state, namespace);
        }
        ("", "services") => {
            service_changed(state, resource, namespace, name);
            update_endpoints(state, namespace);
        }
        (group, plural) if SERVING.contains(&(group, plural)) => {
            serving_changed(state, resource, namespace, name)
        }
        ("", "endpoints") => inject_ca_bundles(state),
        ("admissionregistration.k8s.io", _) | ("apiregistration.k8s.io", "apiservices") => {
            inject_ca_bundles(state)
        }
        _ => {}
    }
    if !namespace.is_empty() && state.get(resource, namespace, name).is_none() {
        finish_namespace(state, namespace);
    }
}

/// Runs a timer that has fired.
pub fn fire(state: &mut State, timer: Timer) {
    match timer {
        Timer::EstablishCrd { name, uid } => establish(state, &name, &uid),
        Timer::WorkloadReady {
            plural,
            namespace,
            name,
            generation,
        } => workload_ready(state, &plural, &namespace, &name, generation),
        Timer::ServingReady {
            group,
            plural,
            namespace,
            name,
            generation,
        } => serving_ready(state, &group, &plural, &namespace, &name, generation),
        Timer::LoadBalancerReady {
            namespace,
            name,
            uid,
        } => load_balancer_ready(state, &namespace, &name, &uid),
        Timer::LoadBalancerReleased {
            namespace,
            name,
            uid,
        } => {
            let services = state.catalogue.builtin("", "services");
            if let Some(service) = same_object(state, &services, &namespace, &name, &uid) {
                let released = without_lb_finalizer(service);
                update_as(state, &services, released, CONTROLLER_MANAGER, None);
            }
        }
    }
}

fn same_object(
    state: &State,
    resource: &Resource,
    namespace: &str,
    name: &str,
    uid: &Value,
) -> Option<Value> {
    state
        .get(resource, namespace, name)
        .filter(|o| o["metadata"]["uid"] == *uid)
        .map(|o| (**o).clone())
}

// --- CRDs ---

fn crd_changed(state: &mut State, name: &str) {
    let crds = state
        .catalogue
        .builtin("apiextensions.k8s.io", "customresourcedefinitions");
    let Some(crd) = state.get(&crds, "", name).cloned() else {
        if let Some(resource) = state.catalogue.defined_by(name) {
            state.catalogue.set_crd(name, None);
            state.remove_all(&resource);
        }
        return;
    };
    let Ok(resource) = crd_resource(&crd) else {
        return;
    };
    let established = condition_true(&crd, "Established");
    state.catalogue.set_crd(name, Some((resource, established)));
    if !established {
        let timer = Timer::EstablishCrd {
            name: name.to_string(),
            uid: crd["metadata"]["uid"].clone(),
        };
        state.schedule(state.options.crd_established_after, timer);
    }
}

fn establish(state: &mut State, name: &str, uid: &Value) {
    let crds = state
        .catalogue
        .builtin("apiextensions.k8s.io", "customresourcedefinitions");
    let Some(crd) = same_object(state, &crds, "", name, uid) else {
        return;
    };
    if condition_true(&crd, "Established") {
        return;
    }
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let mut updated = crd.clone();
    let conditions = &crd["status"]["conditions"];
    updated["status"] = json!({
        "acceptedNames": crd["spec"]["names"],
        "conditions": [
            condition(conditions, "NamesAccepted", true, "NoConflicts", "no conflicts found"),
            condition(conditions, "Established", true, "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": storage,
    });
    update_as(state, &crds, updated, "kube-apiserver", Some("status"));
}

fn condition_true(object: &Value, kind: &str) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// A condition; its lastTransitionTime kept from `previous` when its status did not change.
fn condition(previous: &Value, kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let since = previous
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["type"] == kind && c["status"] == status)
        })
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or_else(|| json!(now()));
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    })
}

// --- workloads ---

fn workload_changed(state: &mut State, resource: &Resource, namespace: &str, name: &str) {
    let Some(object) = state.get(resource, namespace, name) else {
        return;
    };
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    if object["status"]["observedGeneration"].as_i64() != Some(generation) {
        let timer = Timer::WorkloadReady {
            plural: resource.plural.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            generation,
        };
        state.schedule(state.options.workload_ready_after, timer);
    }
}

/// Reports a workload's status, if `generation` is still its latest.
fn workload_ready(state: &mut State, plural: &str, namespace: &str, name: &str, generation: i64) {
    let resource = state.catalogue.builtin("apps", plural);
    let Some(object) = state.get(&resource, namespace, name).cloned() else {
        return;
    };
    if object["metadata"]["generation"].as_i64() == Some(generation) {
        let mut updated = (*object).clone();
        updated["status"] = workload_status(state, &resource, &object);
        update_as(
            state,
            &resource,
            updated,
            CONTROLLER_MANAGER,
            Some("status"),
        );
    }
}

/// Re-evaluates a Deployment after its "never available" mark changed.
pub fn availability_changed(state: &mut State, namespace: &str, name: &str) {
    let deployments = state.catalogue.builtin("apps", "deployments");
    if let Some(object) = state.get(&deployments, namespace, name) {
        let timer = Timer::WorkloadReady {
            plural: "deployments".into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            generation: object["metadata"]["generation"].as_i64().unwrap_or(0),
        };
        state.schedule(state.options.workload_ready_after, timer);
    }
}

/// The status a workload controller and kubelets would report once the pods are up (or,
/// for a Deployment marked never available, while they never become ready).
fn workload_status(state: &State, resource: &Resource, object: &Value) -> Value {
    let generation = object["metadata"]["generation"].clone();
    let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let name = name_of(object);
    match resource.plural.as_str() {
        "deployments" => {
            let key = (
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                name.to_string(),
            );
            let previous = &object["status"]["conditions"];
            let replica_set = format!("{name}-5d4f8c7b9");
            if state.never_available.contains(&key) {
                json!({
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "unavailableReplicas": replicas,
                    "conditions": [
                        condition(previous, "Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                        condition(previous, "Progressing", true, "ReplicaSetUpdated", &format!("ReplicaSet \"{replica_set}\" is progressing.")),
                    ],
                })
            } else {
                json!({
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "conditions": [
                        condition(previous, "Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability."),
                        condition(previous, "Progressing", true, "NewReplicaSetAvailable", &format!("ReplicaSet \"{replica_set}\" has successfully progressed.")),
                    ],
                })
            }
        }
        "daemonsets" => json!({
            "observedGeneration": generation,
            "currentNumberScheduled": 1,
            "desiredNumberScheduled": 1,
            "numberAvailable": 1,
            "numberMisscheduled": 0,
            "numberReady": 1,
            "updatedNumberScheduled": 1,
        }),
        _ => json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": replicas,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "currentRevision": format!("{name}-7f9c6d5b8"),
            "updateRevision": format!("{name}-7f9c6d5b8"),
        }),
    }
}

fn workload_available(object: &Value) -> bool {
    let status = &object["status"];
    condition_true(object, "Available")
        || status["numberAvailable"].as_i64().unwrap_or(0) > 0
        || (object["kind"] == "StatefulSet"
            && status["availableReplicas"].as_i64().unwrap_or(0) > 0)
}

// --- InferenceServices and Knative Services ---

fn serving_changed(state: &mut State, resource: &Resource, namespace: &str, name: &str) {
    let Some(object) = state.get(resource, namespace, name) else {
        return;
    };
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    if !is_deleting(object) && object["status"]["observedGeneration"].as_i64() != Some(generation) {
        schedule_serving(state, resource, namespace, name, generation);
    }
}

fn schedule_serving(
    state: &mut State,
    resource: &Resource,
    namespace: &str,
    name: &str,
    generation: i64,
) {
    let timer = Timer::ServingReady {
        group: resource.group.clone(),
        plural: resource.plural.clone(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        generation,
    };
    state.schedule(state.options.workload_ready_after, timer);
}

/// Re-evaluates an InferenceService or Knative Service after its "never ready" mark changed.
pub fn readiness_changed(state: &mut State, namespace: &str, name: &str) {
    for (group, plural) in SERVING {
        let Some(resource) = state.catalogue.defined(group, plural).cloned() else {
            continue;
        };
        if let Some(object) = state.get(&resource, namespace, name) {
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
            schedule_serving(state, &resource, namespace, name, generation);
        }
    }
}

/// Reports the status the KServe or Knative controller would, if `generation` is still
/// the object's latest.
fn serving_ready(
    state: &mut State,
    group: &str,
    plural: &str,
    namespace: &str,
    name: &str,
    generation: i64,
) {
    let Some(resource) = state.catalogue.defined(group, plural).cloned() else {
        return;
    };
    let Some(object) = state.get(&resource, namespace, name).cloned() else {
        return;
    };
    if is_deleting(&object) || object["metadata"]["generation"].as_i64() != Some(generation) {
        return;
    }
    let key = (namespace.to_string(), name.to_string());
    let ready = !state.never_ready.contains(&key);
    let mut updated = (*object).clone();
    updated["status"] = serving_status(&resource, &object, ready);
    let manager = if resource.plural == "inferenceservices" {
        "kserve-controller-manager"
    } else {
        "knative-serving-controller"
    };
    update_as(state, &resource, updated, manager, Some("status"));
}

/// Ready with its URL, or (never ready) not Ready because its revision cannot be scheduled,
/// in the words of KServe and Knative.
fn serving_status(resource: &Resource, object: &Value, ready: bool) -> Value {
    let (namespace, name) = (namespace_of(object), name_of(object));
    let previous = &object["status"]["conditions"];
    let inference = resource.plural == "inferenceservices";
    let revision = if inference {
        format!("{name}-predictor-00001")
    } else {
        format!("{name}-00001")
    };
    let component = if inference {
        "PredictorReady"
    } else {
        "ConfigurationsReady"
    };
    // A true condition of theirs has neither reason nor message.
    let bare = |mut condition: Value| {
        if let Some(fields) = condition.as_object_mut() {
            fields.retain(|field, _| field != "reason" && field != "message");
        }
        condition
    };
    let conditions = if ready {
        vec![
            bare(condition(previous, component, true, "", "")),
            bare(condition(previous, "Ready", true, "", "")),
        ]
    } else {
        let message =
            format!("Revision \"{revision}\" failed with message: 0/2 nodes are available: 2 Insufficient cpu.");
        vec![
            condition(previous, component, false, "RevisionMissing", &message),
            condition(previous, "Ready", false, "RevisionMissing", &message),
        ]
    };
    let mut status = json!({
        "observedGeneration": object["metadata"]["generation"],
        "conditions": conditions,
    });
    if ready {
        status["url"] = json!(format!("http://{name}.{namespace}.example.com"));
    }
    status
}

// --- services, endpoints, load balancers ---

fn is_load_balancer(service: &Value) -> bool {
    service["spec"]["type"] == "LoadBalancer"
}

fn without_lb_finalizer(mut service: Value) -> Value {
    if let Some(finalizers) = service["metadata"]["finalizers"].as_array_mut() {
        finalizers.retain(|f| f != LOAD_BALANCER_FINALIZER);
    }
    service
}

fn service_changed(state: &mut State, services: &Resource, namespace: &str, name: &str) {
    let Some(service) = state.get(services, namespace, name).map(|s| (**s).clone()) else {
        let endpoints = state.catalogue.builtin("", "endpoints");
        if state.get(&endpoints, namespace, name).is_some() {
            state.remove(&endpoints, namespace, name);
        }
        return;
    };
    let uid = service["metadata"]["uid"].clone();
    let finalizers = service["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has_finalizer = finalizers.iter().any(|f| f == LOAD_BALANCER_FINALIZER);
    let deleting = is_deleting(&service);
    let (namespace, name) = (namespace.to_string(), name.to_string());
    if deleting {
        if has_finalizer {
            let timer = Timer::LoadBalancerReleased {
                namespace,
                name,
                uid,
            };
            state.schedule(state.options.load_balancer_released_after, timer);
        }
    } else if is_load_balancer(&service) {
        if !has_finalizer {
            let mut updated = service.clone();
            let mut list = finalizers;
            list.push(json!(LOAD_BALANCER_FINALIZER));
            updated["metadata"]["finalizers"] = Value::Array(list);
            update_as(state, services, updated, CONTROLLER_MANAGER, None);
        }
        let provisioned = service["status"]["loadBalancer"]["ingress"]
            .as_array()
            .is_some_and(|i| !i.is_empty());
        if !provisioned {
            let timer = Timer::LoadBalancerReady {
                namespace,
                name,
                uid,
            };
            state.schedule(state.options.load_balancer_after, timer);
        }
    } else if has_finalizer {
        update_as(
            state,
            services,
            without_lb_finalizer(service),
            CONTROLLER_MANAGER,
            None,
        );
    }
}

fn load_balancer_ready(state: &mut State, namespace: &str, name: &str, uid: &Value) {
    let services = state.catalogue.builtin("", "services");
    let Some(mut service) = same_object(state, &services, namespace, name, uid) else {
        return;
    };
    if is_load_balancer(&service) && !is_deleting(&service) {
        let hostname = format!("{name}-{namespace}.elb.test");
        service["status"]["loadBalancer"] = json!({"ingress": [{"hostname": hostname}]});
        update_as(
            state,
            &services,
            service,
            CONTROLLER_MANAGER,
            Some("status"),
        );
    }
}

/// Keeps the Endpoints of every Service with a selector in `namespace` in line with the
/// available workloads whose pod template labels match it.
fn update_endpoints(state: &mut State, namespace: &str) {
    let services = state.catalogue.builtin("", "services");
    let endpoints = state.catalogue.builtin("", "endpoints");
    let workloads: Vec<_> = WORKLOADS
        .iter()
        .flat_map(|plural| state.list(&state.catalogue.builtin("apps", plural), Some(namespace)))
        .filter(|w| workload_available(w))
        .collect();
    for service in state.list(&services, Some(namespace)) {
        let Some(selector) = service["spec"]["selector"]
            .as_object()
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let selector =
            LabelSelector::from_object(&json!({"matchLabels": selector})).unwrap_or_default();
        let backing = workloads
            .iter()
            .find(|w| selector.matches(w["spec"]["template"]["metadata"]["labels"].as_object()));
        let name = name_of(&service).to_string();
        let mut desired = json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace},
        });
        if let Some(labels) = service["metadata"].get("labels") {
            desired["metadata"]["labels"] = labels.clone();
        }
        if let Some(workload) = backing {
            desired["subsets"] = json!([{
                "addresses": [{"ip": pod_ip(namespace, name_of(workload))}],
                "ports": endpoint_ports(&service, workload),
            }]);
        }
        match state.get(&endpoints, namespace, &name).cloned() {
            None => {
                let target = Target {
                    resource: &endpoints,
                    version: "v1",
                    namespace,
                };
                let writer = Writer {
                    manager: CONTROLLER_MANAGER,
                    subresource: None,
                    dry_run: false,
                };
                // A namespace being deleted refuses new content: then there is nothing to do.
                let _ = create(state, target, desired, writer);
            }
            Some(current) => {
                let mut updated = (*current).clone();
                set_or_remove(
                    &mut updated["metadata"],
                    "labels",
                    desired["metadata"].get("labels").cloned(),
                );
                set_or_remove(&mut updated, "subsets", desired.get("subsets").cloned());
                if updated != *current {
                    update_as(state, &endpoints, updated, CONTROLLER_MANAGER, None);
                }
            }
        }
    }
}

/// A stable made-up pod IP for a workload.
fn pod_ip(namespace: &str, workload: &str) -> String {
    let hash = format!("{namespace}/{workload}")
        .bytes()
        .fold(2166136261u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(16777619)
        });
    format!("10.244.{}.{}", (hash >> 8) % 256, hash % 254 + 1)
}

/// The Service's ports with their target ports resolved against the workload's containers.
fn endpoint_ports(service: &Value, workload: &Value) -> Value {
    let containers = workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let ports = service["spec"]["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let resolved: Vec<Value> = ports
        .iter()
        .map(|port| {
            let number = match &port["targetPort"] {
                Value::Number(n) => n.as_i64(),
                Value::String(named) => containers
                    .iter()
                    .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                    .find(|p| p["name"] == named.as_str())
                    .and_then(|p| p["containerPort"].as_i64()),
                _ => None,
            }
            .or_else(|| port["port"].as_i64());
            let mut entry = json!({
                "port": number,
                "protocol": port["protocol"].as_str().unwrap_or("TCP"),
            });
            if let Some(name) = port.get("name") {
                entry["name"] = name.clone();
            }
            entry
        })
        .collect();
    Value::Array(resolved)
}

/// Whether the Endpoints of a Service have a ready address.
pub fn service_ready(state: &State, namespace: &str, name: &str) -> bool {
    let endpoints = state.catalogue.builtin("", "endpoints");
    state.get(&endpoints, namespace, name).is_some_and(|e| {
        e["subsets"].as_array().is_some_and(|subsets| {
            subsets
                .iter()
                .any(|s| s["addresses"].as_array().is_some_and(|a| !a.is_empty()))
        })
    })
}

// --- caBundle injection ---

/// Fills the empty caBundles of webhook configurations and APIServices whose Service is
/// ready, as cert-manager's cainjector (or the webhook itself) does.
fn inject_ca_bundles(state: &mut State) {
    for plural in [
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    ] {
        let resource = state
            .catalogue
            .builtin("admissionregistration.k8s.io", plural);
        for configuration in state.list(&resource, None) {
            let webhooks = configuration["webhooks"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let missing: Vec<usize> = (0..webhooks.len())
                .filter(|&i| {
                    let config = &webhooks[i]["clientConfig"];
                    needs_ca_bundle(state, config, &config["service"])
                })
                .collect();
            if missing.is_empty() {
                continue;
            }
            let mut updated = (*configuration).clone();
            for i in missing {
                updated["webhooks"][i]["clientConfig"]["caBundle"] = json!(fake_ca_bundle());
            }
            update_as(state, &resource, updated, "cainjector", None);
        }
    }
    let apiservices = state
        .catalogue
        .builtin("apiregistration.k8s.io", "apiservices");
    for apiservice in state.list(&apiservices, None) {
        let spec = &apiservice["spec"];
        if spec["insecureSkipTLSVerify"] != true && needs_ca_bundle(state, spec, &spec["service"]) {
            let mut updated = (*apiservice).clone();
            updated["spec"]["caBundle"] = json!(fake_ca_bundle());
            update_as(state, &apiservices, updated, "cainjector", None);
        }
    }
}

fn needs_ca_bundle(state: &State, holder: &Value, service: &Value) -> bool {
    let empty = holder["caBundle"].as_str().unwrap_or("").is_empty();
    let (Some(namespace), Some(name)) = (service["namespace"].as_str(), service["name"].as_str())
    else {
        return false;
    };
    empty && service_ready(state, namespace, name)
}
