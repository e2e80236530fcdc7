//! What KServe's controller (with Knative Serving under it, in serverless mode) does for an
//! InferenceService, and no more, so that a model is `Ready` only when a real cluster would
//! serve it:
//! - nothing happens until `kserve/kserve-controller-manager` is available; in serverless mode
//!   (the isvc's `serving.kserve.io/deploymentMode` annotation, else `defaultDeploymentMode`
//!   of `inferenceservice-config`'s `deploy`) also Knative's `controller`, `activator`,
//!   `autoscaler` and `net-istio-controller` in `knative-serving`;
//! - the controller adds its finalizer `inferenceservice.finalizers` and removes it from an
//!   isvc being deleted (only while it runs: once it is gone, the finalizer stays);
//! - the predictor's runtime: the named one (`spec.predictor.model.runtime`), else a
//!   ServingRuntime of the namespace or a ClusterServingRuntime that is not disabled,
//!   auto-selects the model format (name, and version when given) and speaks the isvc's
//!   protocol (`v1` unless said); none: `PredictorReady`/`Ready` False, reason
//!   `NoSupportingRuntime`, as KServe refuses it;
//! - the storage initializer runs as `spec.predictor.serviceAccountName`: that ServiceAccount
//!   and every Secret it names must exist, or the predictor's pods are not created;
//! - then `Ready`, `PredictorReady` and `IngressReady` True (serverless: also
//!   `PredictorConfigurationReady` and `PredictorRouteReady`), and `status.url`:
//!   `http://<name>.<namespace>.<domain>`, the domain from Knative's `config-domain` (its first
//!   key other than `_example`; Knative's default `svc.cluster.local` when there is none), or
//!   in raw mode KServe's `ingress` `domainTemplate` with its `ingressDomain` and `urlScheme`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use super::Key;

const GROUP: &str = "serving.kserve.io";
pub const FINALIZER: &str = "inferenceservice.finalizers";
const DEPLOYMENT_MODE: &str = "serving.kserve.io/deploymentMode";
const KNATIVE_DEFAULT_DOMAIN: &str = "svc.cluster.local";
const KNATIVE_CONTROLLERS: [&str; 4] = [
    "controller",
    "activator",
    "autoscaler",
    "net-istio-controller",
];

fn resource(version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, version, kind))
}

/// Every object of a KServe kind; `None` when KServe's CRDs are not there.
async fn list(
    client: &Client,
    version: &str,
    kind: &str,
) -> Result<Option<Vec<DynamicObject>>, kube::Error> {
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource(version, kind));
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the controllers see of the cluster in one round.
pub struct Cluster<'a> {
    /// `(namespace, name)` of every available Deployment.
    pub available: &'a BTreeSet<Key>,
    pub secrets: &'a BTreeSet<Key>,
}

impl Cluster<'_> {
    fn runs(&self, namespace: &str, name: &str) -> bool {
        self.available
            .contains(&(namespace.to_string(), name.to_string()))
    }
}

/// One round of KServe's controller over every InferenceService.
pub async fn round(client: &Client, cluster: &Cluster<'_>, errors: &mut Vec<kube::Error>) {
    if let Err(e) = reconcile_all(client, cluster).await {
        errors.push(e);
    }
}

async fn reconcile_all(client: &Client, cluster: &Cluster<'_>) -> Result<(), kube::Error> {
    if !cluster.runs("kserve", "kserve-controller-manager") {
        return Ok(());
    }
    let Some(services) = list(client, "v1beta1", "InferenceService").await? else {
        return Ok(());
    };
    if services.is_empty() {
        return Ok(());
    }
    let runtimes = list(client, "v1alpha1", "ServingRuntime")
        .await?
        .unwrap_or_default();
    let cluster_runtimes = list(client, "v1alpha1", "ClusterServingRuntime")
        .await?
        .unwrap_or_default();
    let config = config_map(client, "kserve", "inferenceservice-config").await?;
    let domain = config_map(client, "knative-serving", "config-domain").await?;
    for isvc in services {
        let api = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &isvc.namespace().unwrap_or_default(),
            &resource("v1beta1", "InferenceService"),
        );
        if isvc.metadata.deletion_timestamp.is_some() {
            remove_finalizer(&api, &isvc).await?;
            continue;
        }
        let serverless = is_serverless(&isvc, config.as_ref());
        if serverless
            && !KNATIVE_CONTROLLERS
                .iter()
                .all(|name| cluster.runs("knative-serving", name))
        {
            continue;
        }
        if !isvc.finalizers().iter().any(|f| f == FINALIZER) {
            let mut with = isvc.finalizers().to_vec();
            with.push(FINALIZER.to_string());
            let patch = Patch::Merge(json!({"metadata": {"finalizers": with}}));
            api.patch(&isvc.name_any(), &PatchParams::default(), &patch)
                .await?;
        }
        let blocked = match runtime_for(&isvc, &runtimes, &cluster_runtimes) {
            Err(why) => Some(("NoSupportingRuntime", why)),
            Ok(()) => storage_missing(client, &isvc, cluster)
                .await?
                .map(|why| ("StorageNotReady", why)),
        };
        let url = url(&isvc, serverless, config.as_ref(), domain.as_ref());
        let status = status(&isvc, serverless, blocked, &url);
        if !same_status(&isvc.data["status"], &status) {
            let patch = Patch::Merge(json!({ "status": status }));
            api.patch_status(&isvc.name_any(), &PatchParams::default(), &patch)
                .await?;
        }
    }
    Ok(())
}

async fn remove_finalizer(
    api: &Api<DynamicObject>,
    isvc: &DynamicObject,
) -> Result<(), kube::Error> {
    if !isvc.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let rest: Vec<&String> = isvc
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let patch = Patch::Merge(json!({"metadata": {"finalizers": rest}}));
    api.patch(&isvc.name_any(), &PatchParams::default(), &patch)
        .await
        .map(drop)
}

async fn config_map(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<ConfigMap>, kube::Error> {
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
}

/// A JSON value of KServe's config (`deploy`, `ingress`); `Null` when absent or unreadable.
fn kserve_setting(config: Option<&ConfigMap>, key: &str) -> Value {
    config
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(key))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

fn is_serverless(isvc: &DynamicObject, config: Option<&ConfigMap>) -> bool {
    let mode = match isvc.annotations().get(DEPLOYMENT_MODE) {
        Some(mode) => mode.clone(),
        None => kserve_setting(config, "deploy")["defaultDeploymentMode"]
            .as_str()
            .unwrap_or("Serverless")
            .to_string(),
    };
    mode == "Serverless"
}

/// `Ok` when a runtime serves the predictor's model; else KServe's reason.
fn runtime_for(
    isvc: &DynamicObject,
    runtimes: &[DynamicObject],
    cluster_runtimes: &[DynamicObject],
) -> Result<(), String> {
    let model = &isvc.data["spec"]["predictor"]["model"];
    let format = &model["modelFormat"];
    let Some(format_name) = format["name"].as_str() else {
        return Err(
            "the predictor names no model format (`spec.predictor.model.modelFormat.name`)".into(),
        );
    };
    let protocol = model["protocolVersion"].as_str().unwrap_or("v1");
    let namespace = isvc.namespace().unwrap_or_default();
    let candidates = runtimes
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace.as_str()))
        .chain(cluster_runtimes);
    let named = model["runtime"].as_str();
    let serves = |runtime: &&DynamicObject| {
        let spec = &runtime.data["spec"];
        let formats = spec["supportedModelFormats"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let protocols = spec["protocolVersions"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![json!("v1")]);
        spec["disabled"] != true
            && protocols.iter().any(|p| p == protocol)
            && formats.iter().any(|f| {
                f["name"] == format_name
                    && (named.is_some() || f["autoSelect"] == true)
                    && (format["version"].is_null() || f["version"] == format["version"])
            })
    };
    let found = match named {
        Some(name) => candidates.filter(|r| r.name_any() == name).find(serves),
        None => candidates.into_iter().find(serves),
    };
    found.map(drop).ok_or_else(|| {
        format!(
            "No runtime found to support predictor with model type: {{{format_name} {}}} and protocol {protocol}",
            format["version"].as_str().unwrap_or("<nil>")
        )
    })
}

/// Why the storage initializer cannot start: a missing ServiceAccount or Secret of it.
async fn storage_missing(
    client: &Client,
    isvc: &DynamicObject,
    cluster: &Cluster<'_>,
) -> Result<Option<String>, kube::Error> {
    let namespace = isvc.namespace().unwrap_or_default();
    let name = isvc.data["spec"]["predictor"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    let Some(account) = Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
        .get_opt(name)
        .await?
    else {
        return Ok(Some(format!("serviceaccount \"{name}\" not found")));
    };
    let missing: Vec<String> = account
        .secrets
        .iter()
        .flatten()
        .filter_map(|s| s.name.clone())
        .filter(|s| !cluster.secrets.contains(&(namespace.clone(), s.clone())))
        .collect();
    Ok((!missing.is_empty()).then(|| {
        format!(
            "secret \"{}\" of serviceaccount \"{name}\" not found",
            missing.join("\", \"")
        )
    }))
}

fn url(
    isvc: &DynamicObject,
    serverless: bool,
    config: Option<&ConfigMap>,
    domain: Option<&ConfigMap>,
) -> String {
    let name = isvc.name_any();
    let namespace = isvc.namespace().unwrap_or_default();
    if serverless {
        let domain = domain
            .and_then(|d| d.data.as_ref())
            .and_then(|d| d.keys().find(|k| *k != "_example").cloned())
            .unwrap_or_else(|| KNATIVE_DEFAULT_DOMAIN.to_string());
        return format!("http://{name}.{namespace}.{domain}");
    }
    let ingress = kserve_setting(config, "ingress");
    let text = |key: &str, default: &str| {
        ingress[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or(default)
            .to_string()
    };
    let host = text(
        "domainTemplate",
        "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}",
    )
    .replace("{{ .Name }}", &name)
    .replace("{{ .Namespace }}", &namespace)
    .replace(
        "{{ .IngressDomain }}",
        &text("ingressDomain", "example.com"),
    );
    format!("{}://{host}", text("urlScheme", "http"))
}

fn condition(kind: &str, blocked: Option<&(&str, String)>) -> Value {
    let now = k8s_openapi::chrono::Utc::now().to_rfc3339();
    match blocked {
        None => json!({"type": kind, "status": "True", "lastTransitionTime": now}),
        Some((reason, message)) => json!({"type": kind, "status": "False", "reason": reason,
                                           "message": message, "lastTransitionTime": now}),
    }
}

/// The status KServe writes: conditions, URLs and the model's state.
fn status(
    isvc: &DynamicObject,
    serverless: bool,
    blocked: Option<(&str, String)>,
    url: &str,
) -> Value {
    let blocked = blocked.as_ref();
    let mut kinds = vec!["IngressReady", "PredictorReady", "Ready"];
    if serverless {
        kinds.extend(["PredictorConfigurationReady", "PredictorRouteReady"]);
    }
    let conditions: Vec<Value> = kinds
        .into_iter()
        .map(|kind| {
            condition(
                kind,
                if kind == "IngressReady" {
                    None
                } else {
                    blocked
                },
            )
        })
        .collect();
    let mut status = json!({
        "observedGeneration": isvc.metadata.generation,
        "conditions": conditions,
        "modelStatus": {
            "states": {
                "activeModelState": if blocked.is_some() { "" } else { "Loaded" },
                "targetModelState": if blocked.is_some() { "Pending" } else { "Loaded" },
            },
            "transitionStatus": if blocked.is_some() { "InProgress" } else { "UpToDate" },
        },
    });
    if blocked.is_none() {
        status["url"] = url.into();
        status["address"] = json!({"url": format!(
            "http://{}-predictor.{}.svc.cluster.local",
            isvc.name_any(),
            isvc.namespace().unwrap_or_default()
        )});
    }
    status
}

/// Whether the live status already says what `wanted` says (times aside).
fn same_status(live: &Value, wanted: &Value) -> bool {
    let conditions = |s: &Value| -> Vec<(Value, Value, Value)> {
        s["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["type"].clone(), c["status"].clone(), c["message"].clone()))
            .collect()
    };
    conditions(live) == conditions(wanted)
        && live["url"] == wanted["url"]
        && live["observedGeneration"] == wanted["observedGeneration"]
}
