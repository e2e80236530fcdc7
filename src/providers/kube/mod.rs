//! The providers of what `mlops` puts inside the cluster: add-ons (`addon.*`, a whole release
//! per resource, installed with the staged apply of `kube::install`), single Kubernetes objects
//! (`k8s.*`: the IRSA service accounts), and the destroy-time removal of the load balancers
//! Kubernetes made (`cluster_cleanup`). They reach the API server through [`KubeEnv`], which
//! connects on first use: to the kubeconfig given with `--kubeconfig`, or to the stack's EKS
//! cluster with tokens made like `aws eks get-token`, minted again as they age
//! (`kube::auth`).

mod addon;
mod cleanup;
mod object;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Mutex;

pub use crate::addons::render::ingress_gateway;
pub use addon::Addon;
pub use cleanup::ClusterCleanup;
pub use object::KubeObject;

use super::{Ctx, ProviderResult};
use crate::addons::ManifestSource;
use crate::base::ProviderError;
use crate::kube::auth::TokenMinter;
use crate::kube::install::{self, Waits};
use crate::kube::{token, Cluster};
use crate::model::Attrs;

/// The installer reports through the run's reporter, on the resource's line.
impl install::Progress for Ctx<'_> {
    fn waiting(&self, what: &str) {
        Ctx::waiting(self, what);
    }

    fn warning(&self, message: &str) {
        self.reporter
            .warning(&format!("{}: {message}", self.address));
    }
}

/// How the cluster side of a run is set up.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// Talk to the cluster of this kubeconfig instead of the stack's EKS cluster.
    pub kubeconfig: Option<PathBuf>,
    pub manifests: ManifestSource,
    pub waits: Waits,
    /// Let an add-on upgrade delete CRDs its new version no longer has.
    pub allow_crd_removal: bool,
}

/// The connection to the cluster, made on first use.
pub struct KubeEnv {
    pub settings: KubeSettings,
    connection: Mutex<Option<Arc<Cluster>>>,
}

impl KubeEnv {
    pub fn new(settings: KubeSettings) -> Self {
        KubeEnv {
            settings,
            connection: Mutex::new(None),
        }
    }

    /// For code that never reaches the cluster (making the state bucket, the tests of the AWS
    /// side): any use fails naming a kubeconfig that does not exist.
    pub fn unused() -> Self {
        KubeEnv::new(KubeSettings {
            kubeconfig: Some(PathBuf::from("/nonexistent/kubeconfig")),
            manifests: ManifestSource::Bundle(PathBuf::from("/nonexistent")),
            waits: Waits::default(),
            allow_crd_removal: false,
        })
    }

    /// The cluster named by the resource's `cluster` attribute (or the kubeconfig's);
    /// `None` when that EKS cluster does not exist.
    pub async fn cluster(
        &self,
        ctx: &Ctx<'_>,
        attrs: &Attrs,
    ) -> ProviderResult<Option<Arc<Cluster>>> {
        let mut connection = self.connection.lock().await;
        if let Some(cluster) = connection.as_ref() {
            return Ok(Some(cluster.clone()));
        }
        let cluster = match &self.settings.kubeconfig {
            Some(path) => Cluster::from_kubeconfig(path).await?,
            None => {
                let name = attrs
                    .get("cluster")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ProviderError::fatal(
                            "the cluster's name is not known; did its creation fail?",
                        )
                    })?;
                let Some(eks) = crate::providers::aws::describe_cluster(ctx, name).await? else {
                    return Ok(None);
                };
                let endpoint = eks.endpoint().unwrap_or_default();
                let ca = eks
                    .certificate_authority()
                    .and_then(|c| c.data())
                    .unwrap_or_default();
                let region = &ctx.aws.region;
                let credentials = token::credentials_provider(region)
                    .await
                    .map_err(|e| ProviderError::fatal(e.to_string()))?;
                let minter = TokenMinter::new(credentials, region, name, token::TOKEN_LIFETIME);
                Cluster::from_endpoint(name, endpoint, ca, minter).await?
            }
        };
        let cluster = Arc::new(cluster);
        *connection = Some(cluster.clone());
        Ok(Some(cluster))
    }

    /// The cluster, which must exist for a create or an update.
    pub async fn existing_cluster(
        &self,
        ctx: &Ctx<'_>,
        attrs: &Attrs,
    ) -> ProviderResult<Arc<Cluster>> {
        self.cluster(ctx, attrs).await?.ok_or_else(|| {
            ProviderError::fatal(format!(
                "the EKS cluster `{}` does not exist",
                attrs.get("cluster").and_then(Value::as_str).unwrap_or("?")
            ))
        })
    }
}
