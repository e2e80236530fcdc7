//! What the add-ons' own controllers do that their install depends on, once their Deployment
//! is available:
//! - a webhook that manages its own certificate (Knative's `webhook` and `net-istio-webhook`,
//!   istiod) fills the `caBundle` of the webhooks that call its Service, in configurations
//!   that cert-manager does not inject;
//! - istiod writes the ConfigMap `istio-ca-root-cert` into every namespace (the ingress
//!   gateway mounts it, not optionally).

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use super::cert_manager::{INJECT_FROM, INJECT_FROM_SECRET};
use super::egress::Ca;
use super::Key;

const ISTIO_ROOT_CERT: &str = "istio-ca-root-cert";

/// Fills the `caBundle` of each webhook that calls a Service in `listening`, in configurations
/// without a cert-manager injection annotation.
pub async fn own_webhook_cas(
    client: &Client,
    ca: &Ca,
    listening: &BTreeSet<Key>,
) -> Result<(), kube::Error> {
    let bundle = STANDARD.encode(&ca.pem);
    for (api, configuration) in super::webhook_configurations(client).await? {
        let annotations = configuration.annotations();
        if annotations.contains_key(INJECT_FROM) || annotations.contains_key(INJECT_FROM_SECRET) {
            continue;
        }
        super::set_ca_bundles(&api, configuration, &bundle, |webhook: &Value| {
            let service = &webhook["clientConfig"]["service"];
            let key = (
                service["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                service["name"].as_str().unwrap_or_default().to_string(),
            );
            listening.contains(&key)
        })
        .await?;
    }
    Ok(())
}

/// istiod's root certificate in every namespace of `namespaces` that lacks it.
pub async fn istio_root_certs(
    client: &Client,
    ca: &Ca,
    namespaces: &[String],
    config_maps: &BTreeSet<Key>,
) -> Result<(), kube::Error> {
    for namespace in namespaces {
        if config_maps.contains(&(namespace.clone(), ISTIO_ROOT_CERT.to_string())) {
            continue;
        }
        let config_map = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(ISTIO_ROOT_CERT.into()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            data: Some([("root-cert.pem".to_string(), ca.pem.clone())].into()),
            ..Default::default()
        };
        match Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &config_map)
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}
