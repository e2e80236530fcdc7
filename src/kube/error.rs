//! Errors of the Kubernetes layer, typed so that every message names the object and the
//! cluster, and so that the hint fits the failure (what to retry is told from the client's own
//! error, `cluster::class`).

use std::time::Duration;

use crate::addons::AddonError;
use crate::base::{code_hint, ErrorClass, ProviderError};

use crate::manifest::ManifestError;

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
    /// AWS credentials that cannot be loaded, or a token that cannot be signed with them.
    #[error("{message}")]
    Credentials { message: String, hint: &'static str },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Addon(AddonError),
}

impl From<AddonError> for KubeError {
    /// A manifest that does not parse is the same error whether the add-ons' rendering or the
    /// cluster side met it.
    fn from(e: AddonError) -> Self {
        match e {
            AddonError::Manifest(e) => KubeError::Manifest(e),
            other => KubeError::Addon(other),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
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
            KubeError::Credentials { .. } => "KubeCredentials",
            _ => "Kube",
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            KubeError::Addon(e) => e.hint(),
            KubeError::Credentials { hint, .. } => Some(hint.to_string()),
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
