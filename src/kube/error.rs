//! Errors of the Kubernetes layer, typed so that the installer can tell what to retry (a
//! webhook that is not serving yet) from what to stop on, and so that every message names the
//! object and the cluster.

use std::time::Duration;

use crate::addons::AddonError;
use crate::base::{code_hint, ErrorClass, ProviderError};

use super::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read the kubeconfig `{path}`: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("cannot reach the Kubernetes API server of {cluster}: {message}")]
    Unreachable { cluster: String, message: String },
    #[error("the Kubernetes API server of {cluster} refused the credentials: {message}")]
    Unauthorized { cluster: String, message: String },
    #[error("the cluster does not serve `{api_version}` kind `{kind}`, needed by {object}")]
    NotServed {
        object: String,
        api_version: String,
        kind: String,
    },
    #[error("{action} {object}: {message} ({reason}, HTTP {code})")]
    Api {
        action: &'static str,
        object: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{object} is not {what} after {}: {last}", humantime::format_duration(*waited))]
    Timeout {
        object: String,
        what: &'static str,
        waited: Duration,
        last: String,
    },
    #[error("upgrading {addon} would delete the CustomResourceDefinition{} {}, and with {} every custom resource of {}", plural(crds.len()), crds.join(", "), if crds.len() == 1 { "it" } else { "them" }, if crds.len() == 1 { "its kind" } else { "their kinds" })]
    CrdRemoval { addon: String, crds: Vec<String> },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Addon(#[from] AddonError),
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Webhook failures that mean "its server is not up yet", as the API server words them.
const WEBHOOK_NOT_READY: &[&str] = &[
    "no endpoints available",
    "connection refused",
    "x509: certificate signed by unknown authority",
    "context deadline exceeded",
];

impl KubeError {
    /// A call refused by an admission webhook whose server is not serving yet: worth retrying.
    pub fn is_webhook_not_ready(&self) -> bool {
        match self {
            KubeError::Api { message, .. } => {
                message.contains("failed calling webhook")
                    && WEBHOOK_NOT_READY.iter().any(|m| message.contains(m))
            }
            _ => false,
        }
    }
}

impl KubeError {
    /// The code a provider error carries for it; hints are looked up by code.
    fn code(&self) -> &'static str {
        match self {
            KubeError::Unreachable { .. } => "KubeUnreachable",
            KubeError::Unauthorized { .. } => "KubeUnauthorized",
            KubeError::NotServed { .. } => "KubeNotServed",
            KubeError::Timeout { .. } => "KubeTimeout",
            KubeError::CrdRemoval { .. } => "KubeCrdRemoval",
            KubeError::Addon(_) => "AddonManifest",
            _ => "Kube",
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            KubeError::Addon(e) => e.hint(),
            other => code_hint(other.code()).map(str::to_string),
        }
    }
}

impl From<KubeError> for ProviderError {
    fn from(e: KubeError) -> Self {
        ProviderError {
            class: ErrorClass::Fatal,
            code: Some(e.code().into()),
            message: e.to_string(),
        }
    }
}
