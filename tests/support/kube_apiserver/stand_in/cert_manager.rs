//! cert-manager's part, played only while cert-manager's own Deployments are available (as
//! the real controllers act only once they run):
//! - the controller (`app.kubernetes.io/component: controller`) marks an Issuer or
//!   ClusterIssuer `Ready` when it can issue (self-signed, or a CA whose Secret exists), and
//!   gives a Certificate its Secret (`tls.crt`, `tls.key`, `ca.crt`, signed by the stand-in's
//!   CA) only when its issuer exists and is Ready; until then the Certificate says why not;
//! - the webhook (`component: webhook`) makes its own CA Secret, `cert-manager-webhook-ca`;
//! - the cainjector (`component: cainjector`) fills the `caBundle` of every webhook of a
//!   configuration annotated `cert-manager.io/inject-ca-from: <ns>/<certificate>` (or
//!   `inject-ca-from-secret: <ns>/<secret>`) from that Secret's `ca.crt`, only once it exists.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use super::egress::{Ca, Issued};

const GROUP: &str = "cert-manager.io";
pub const INJECT_FROM: &str = "cert-manager.io/inject-ca-from";
pub const INJECT_FROM_SECRET: &str = "cert-manager.io/inject-ca-from-secret";
/// The namespace of a ClusterIssuer's Secrets (cert-manager's `--cluster-resource-namespace`).
const CLUSTER_RESOURCE_NAMESPACE: &str = "cert-manager";

/// Which of cert-manager's three Deployments are available (by their component label).
pub fn running(available: &[&Value]) -> BTreeSet<String> {
    available
        .iter()
        .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/instance"] == "cert-manager")
        .filter_map(|d| d["metadata"]["labels"]["app.kubernetes.io/component"].as_str())
        .map(str::to_string)
        .collect()
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, "v1", kind))
}

/// Lists a cert-manager kind; `None` when cert-manager's CRDs are not there.
async fn list(client: &Client, kind: &str) -> Result<Option<Vec<DynamicObject>>, kube::Error> {
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource(kind));
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// A `Ready` condition of a cert-manager object.
fn ready_condition(ready: bool, reason: &str, message: &str) -> Value {
    json!({"type": "Ready", "status": if ready { "True" } else { "False" },
           "reason": reason, "message": message,
           "lastTransitionTime": k8s_openapi::chrono::Utc::now().to_rfc3339()})
}

fn is_ready_as(object: &DynamicObject, condition: &Value) -> bool {
    let live = object.data["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    live.is_some_and(|c| c["status"] == condition["status"] && c["message"] == condition["message"])
}

async fn set_ready(
    client: &Client,
    kind: &str,
    object: &DynamicObject,
    condition: Value,
) -> Result<(), kube::Error> {
    if is_ready_as(object, &condition) {
        return Ok(());
    }
    let api = match object.namespace() {
        Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &resource(kind)),
        None => Api::<DynamicObject>::all_with(client.clone(), &resource(kind)),
    };
    let patch = json!({"status": {"conditions": [condition]}});
    api.patch_status(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map(drop)
}

/// One pass of the controller, the webhook and the cainjector.
pub async fn round(
    client: &Client,
    ca: &Ca,
    running: &BTreeSet<String>,
    secrets: &BTreeSet<(String, String)>,
    errors: &mut Vec<kube::Error>,
) {
    if running.contains("webhook") {
        errors.extend(webhook_ca(client, ca, secrets).await.err());
    }
    if running.contains("controller") {
        if let Err(e) = issue(client, ca, secrets).await {
            errors.push(e);
        }
    }
    if running.contains("cainjector") {
        if let Err(e) = inject(client).await {
            errors.push(e);
        }
    }
}

/// The CA Secret cert-manager's webhook makes for itself when it starts.
async fn webhook_ca(
    client: &Client,
    ca: &Ca,
    secrets: &BTreeSet<(String, String)>,
) -> Result<(), kube::Error> {
    let key = (
        CLUSTER_RESOURCE_NAMESPACE.to_string(),
        "cert-manager-webhook-ca".to_string(),
    );
    if secrets.contains(&key) {
        return Ok(());
    }
    let issued = ca.issue(&["cert-manager-webhook-ca".to_string()]);
    create_secret(client, &key, &issued, &ca.pem, BTreeMap::new()).await
}

async fn create_secret(
    client: &Client,
    (namespace, name): &(String, String),
    issued: &Issued,
    ca: &str,
    annotations: BTreeMap<String, String>,
) -> Result<(), kube::Error> {
    let data = [
        ("tls.crt", issued.cert.as_str()),
        ("tls.key", issued.key.as_str()),
        ("ca.crt", ca),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    match Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        other => other.map(drop),
    }
}

/// Whether an issuer can issue, and why not.
fn can_issue(
    issuer: &DynamicObject,
    namespace: &str,
    secrets: &BTreeSet<(String, String)>,
) -> Result<(), String> {
    let spec = &issuer.data["spec"];
    if spec["selfSigned"].is_object() {
        return Ok(());
    }
    match spec["ca"]["secretName"].as_str() {
        Some(secret) if secrets.contains(&(namespace.to_string(), secret.to_string())) => Ok(()),
        Some(secret) => Err(format!(
            "Error getting keypair for CA issuer: secret \"{secret}\" not found"
        )),
        None => Err("the test stand-in issues only with selfSigned and CA issuers".into()),
    }
}

/// Marks issuers Ready, then gives each Certificate whose issuer is Ready its Secret.
async fn issue(
    client: &Client,
    ca: &Ca,
    secrets: &BTreeSet<(String, String)>,
) -> Result<(), kube::Error> {
    let (Some(issuers), Some(cluster_issuers), Some(certificates)) = (
        list(client, "Issuer").await?,
        list(client, "ClusterIssuer").await?,
        list(client, "Certificate").await?,
    ) else {
        return Ok(());
    };
    // `(kind, namespace, name)` of every issuer that can issue.
    let mut ready = BTreeSet::new();
    for (kind, list) in [("Issuer", &issuers), ("ClusterIssuer", &cluster_issuers)] {
        for issuer in list.iter() {
            let namespace = issuer
                .namespace()
                .unwrap_or_else(|| CLUSTER_RESOURCE_NAMESPACE.to_string());
            let condition = match can_issue(issuer, &namespace, secrets) {
                Ok(()) => {
                    ready.insert((
                        kind,
                        issuer.namespace().unwrap_or_default(),
                        issuer.name_any(),
                    ));
                    ready_condition(true, "IsReady", "Signing CA verified")
                }
                Err(why) => ready_condition(false, "ErrInitIssuer", &why),
            };
            set_ready(client, kind, issuer, condition).await?;
        }
    }
    for certificate in &certificates {
        let namespace = certificate.namespace().unwrap_or_default();
        let spec = &certificate.data["spec"];
        let issuer_kind = spec["issuerRef"]["kind"].as_str().unwrap_or("Issuer");
        let issuer_name = spec["issuerRef"]["name"].as_str().unwrap_or_default();
        let issuer_namespace = if issuer_kind == "ClusterIssuer" {
            String::new()
        } else {
            namespace.clone()
        };
        let kind = if issuer_kind == "ClusterIssuer" {
            "ClusterIssuer"
        } else {
            "Issuer"
        };
        let Some(secret) = spec["secretName"].as_str() else {
            continue;
        };
        let key = (namespace.clone(), secret.to_string());
        let condition = if !ready.contains(&(kind, issuer_namespace, issuer_name.to_string())) {
            ready_condition(
                false,
                "IssuerNotReady",
                &format!("Issuing certificate as Secret does not exist; {issuer_kind} \"{issuer_name}\" not found or not Ready"),
            )
        } else {
            if !secrets.contains(&key) {
                let mut names: Vec<String> = spec["dnsNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect();
                if names.is_empty() {
                    names.extend(spec["commonName"].as_str().map(str::to_string));
                }
                let issued = ca.issue(&names);
                let annotations = BTreeMap::from([
                    (
                        "cert-manager.io/certificate-name".to_string(),
                        certificate.name_any(),
                    ),
                    (
                        "cert-manager.io/issuer-name".to_string(),
                        issuer_name.to_string(),
                    ),
                    (
                        "cert-manager.io/issuer-kind".to_string(),
                        issuer_kind.to_string(),
                    ),
                ]);
                create_secret(client, &key, &issued, &ca.pem, annotations).await?;
            }
            ready_condition(
                true,
                "Ready",
                "Certificate is up to date and has not expired",
            )
        };
        set_ready(client, "Certificate", certificate, condition).await?;
    }
    Ok(())
}

/// The Secret whose `ca.crt` a configuration's annotations ask for, as `(namespace, name)`.
async fn injection_source(
    client: &Client,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<(String, String)>, kube::Error> {
    if let Some((ns, name)) = annotations
        .get(INJECT_FROM_SECRET)
        .and_then(|s| s.split_once('/'))
    {
        return Ok(Some((ns.to_string(), name.to_string())));
    }
    let Some((ns, name)) = annotations.get(INJECT_FROM).and_then(|s| s.split_once('/')) else {
        return Ok(None);
    };
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("Certificate"));
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|c| c.data["spec"]["secretName"].as_str().map(str::to_string))
        .map(|secret| (ns.to_string(), secret)))
}

/// The cainjector: each annotated webhook configuration gets its source Secret's `ca.crt`.
async fn inject(client: &Client) -> Result<(), kube::Error> {
    for (api, configuration) in super::webhook_configurations(client).await? {
        let Some((ns, name)) = injection_source(client, configuration.annotations()).await? else {
            continue;
        };
        let secret = Api::<Secret>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await?;
        let Some(ca) = secret.and_then(|s| s.data?.get("ca.crt").cloned()) else {
            continue;
        };
        super::set_ca_bundles(&api, configuration, &STANDARD.encode(&ca.0), |_| true).await?;
    }
    Ok(())
}
