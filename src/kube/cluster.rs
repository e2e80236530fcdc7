//! One connection to a cluster's API server, with what the installer asks of it: resolve a
//! kind through discovery (re-asked when a CRD has just been established), server-side apply,
//! get, list by label, delete. Every error names the object it concerns.
//!
//! Every call goes through [`Cluster::send`]: a transient error (429, 5xx, among them an
//! admission webhook that does not answer yet, a connection that broke: `EOF`, reset) is
//! retried with backoff by the project's one retry loop for [`RETRY`]'s budget, since every
//! call here can be repeated safely (server-side apply, get, list, delete). A connection that
//! cannot be made at all is a wrong endpoint and is said at once. To an EKS cluster, each
//! request carries a token minted by [`TokenMinter`], renewed once after a 401.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersion};
use kube::discovery::{self, ApiCapabilities, Scope};
use serde_json::Value;
use tokio::sync::Mutex;
use tower::buffer::BufferLayer;
use tower::filter::AsyncFilterLayer;

use super::auth::{Bearer, MintError, TokenMinter};
use super::error::KubeError;
use crate::base::{ErrorClass, RetryPolicy};
use crate::manifest::{field_manager, Object, ObjectRef};

/// How long to wait for a TCP connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Requests the token layer holds while they wait for the connection.
const IN_FLIGHT: usize = 1024;

/// How a call that met a transient error is retried: from 0.5 s doubling to 15 s (full
/// jitter), for up to 2 minutes; then the error stands.
pub const RETRY: RetryPolicy = RetryPolicy {
    first_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(15),
    budget: Duration::from_secs(120),
};

pub struct Cluster {
    client: kube::Client,
    /// Names the cluster in messages.
    pub name: String,
    /// What discovery said of each group/version, asked once each.
    served: Mutex<HashMap<String, Vec<(ApiResource, ApiCapabilities)>>>,
    /// Mints the token of an EKS cluster; `None` with a kubeconfig's own credentials.
    minter: Option<Arc<TokenMinter>>,
}

/// What an error of a call means for a retry: the API server busy or failing (429, 5xx,
/// which is also how it reports an admission webhook it could not call) or a connection that
/// broke is worth another try, for the budget, backing off as from throttling (a busy server
/// is not helped by a steady pace); anything else, a connection that could not be made and a
/// token that could not be minted included, is not.
fn class(e: &kube::Error) -> ErrorClass {
    let transient = match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::Service(inner) if inner.is::<MintError>() => false,
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            !super::token::error_chain(e).contains("client error (Connect)")
        }
        _ => false,
    };
    if transient {
        ErrorClass::Throttled
    } else {
        ErrorClass::Fatal
    }
}

/// How a kind is served.
#[derive(Clone)]
pub struct Served {
    resource: ApiResource,
    pub namespaced: bool,
}

impl Cluster {
    /// The cluster a kubeconfig file's current context points at.
    pub async fn from_kubeconfig(path: &Path) -> Result<Cluster, KubeError> {
        let invalid = |message: String| KubeError::Kubeconfig {
            path: path.display().to_string(),
            message,
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| invalid(e.to_string()))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| invalid(e.to_string()))?;
        let name = format!("`{}` (kubeconfig `{}`)", config.cluster_url, path.display());
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        Cluster::new(config, name, None)
    }

    /// Where a kubeconfig file's current context points, as `plan` and `apply` name the cluster
    /// they will change: `` `https://...` (context `ctx`) ``.
    pub fn kubeconfig_target(path: &Path) -> Result<String, KubeError> {
        let invalid = |message: &str| KubeError::Kubeconfig {
            path: path.display().to_string(),
            message: message.to_string(),
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| invalid(&e.to_string()))?;
        let context = kubeconfig
            .current_context
            .as_deref()
            .ok_or_else(|| invalid("it has no current context"))?;
        let cluster = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .ok_or_else(|| invalid(&format!("it has no context `{context}`")))?;
        let server = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == cluster.cluster)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.as_deref())
            .ok_or_else(|| invalid(&format!("its cluster `{}` has no server", cluster.cluster)))?;
        Ok(format!("`{server}` (context `{context}`)"))
    }

    /// An EKS cluster: its endpoint, its CA (base64 PEM, as EKS gives it) and what mints its
    /// bearer tokens.
    pub async fn from_endpoint(
        cluster: &str,
        endpoint: &str,
        certificate_authority: &str,
        minter: Arc<TokenMinter>,
    ) -> Result<Cluster, KubeError> {
        let yaml = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority}}],
            "users": [{"name": "mlops", "user": {}}],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": "mlops"}}],
            "current-context": cluster,
        })
        .to_string();
        let invalid = |message: String| KubeError::Unreachable {
            cluster: format!("cluster `{cluster}`"),
            message,
        };
        let kubeconfig = Kubeconfig::from_yaml(&yaml).map_err(|e| invalid(e.to_string()))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| invalid(e.to_string()))?;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        Cluster::new(
            config,
            format!("cluster `{cluster}` ({endpoint})"),
            Some(minter),
        )
    }

    /// A client for `config`; with a `minter`, every request carries its current token.
    fn new(
        config: kube::Config,
        name: String,
        minter: Option<Arc<TokenMinter>>,
    ) -> Result<Cluster, KubeError> {
        // rustls has two crypto backends in this build (the AWS SDK's and kube's) and then
        // picks neither by itself; an `Err` means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let unreachable = |e: kube::Error| KubeError::Unreachable {
            cluster: name.clone(),
            message: e.to_string(),
        };
        let builder = ClientBuilder::try_from(config).map_err(unreachable)?;
        let client = match &minter {
            // The filter holds a clone of the service below it per request: a buffer
            // makes kube's boxed stack one that clones.
            Some(minter) => builder
                .with_layer(&BufferLayer::new(IN_FLIGHT))
                .with_layer(&AsyncFilterLayer::new(Bearer(minter.clone())))
                .build(),
            None => builder.build(),
        };
        Ok(Cluster {
            client,
            name,
            served: Mutex::new(HashMap::new()),
            minter,
        })
    }

    /// Makes one call to the API server (`call` sends it), retried as the module
    /// documentation says: transient errors for [`RETRY`]'s budget, a 401 once with a new
    /// token.
    async fn send<T, F, Fut>(&self, call: F) -> Result<T, kube::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let call = &call;
        let minter = self.minter.as_deref();
        RETRY
            .attempt(
                class,
                false,
                |_, _| {},
                move || async move {
                    let sent = SystemTime::now();
                    match (call().await, minter) {
                        (Err(kube::Error::Api(status)), Some(minter)) if status.code == 401 => {
                            minter.renew(sent).await;
                            call().await
                        }
                        (result, _) => result,
                    }
                },
            )
            .await
    }

    /// Turns a client error into one that names `object`.
    pub fn error(&self, action: &'static str, object: &ObjectRef, e: kube::Error) -> KubeError {
        match e {
            kube::Error::Api(status) if status.code == 401 => KubeError::Unauthorized {
                cluster: self.name.clone(),
                message: status.message,
            },
            kube::Error::Api(status) => KubeError::Api {
                action,
                object: object.short(),
                code: status.code,
                reason: status.reason,
                message: status.message,
            },
            other => KubeError::Unreachable {
                cluster: self.name.clone(),
                message: super::token::error_chain(&other),
            },
        }
    }

    /// How `api_version`/`kind` is served; `None` when the cluster does not serve it.
    /// `fresh` asks discovery again, for kinds of a CRD that has just been established.
    pub async fn served(
        &self,
        api_version: &str,
        kind: &str,
        fresh: bool,
    ) -> Result<Option<Served>, KubeError> {
        let mut served = self.served.lock().await;
        if fresh || !served.contains_key(api_version) {
            let gv: GroupVersion = api_version.parse().map_err(|_| KubeError::NotServed {
                object: format!("kind `{kind}`"),
                api_version: api_version.into(),
                kind: kind.into(),
            })?;
            let resources = match self
                .send(|| discovery::pinned_group(&self.client, &gv))
                .await
            {
                Ok(group) => group.versioned_resources(&gv.version),
                Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
                Err(e) => {
                    let id = ObjectRef {
                        api_version: api_version.into(),
                        kind: String::new(),
                        namespace: None,
                        name: "discovery".into(),
                    };
                    return Err(self.error("discover", &id, e));
                }
            };
            served.insert(api_version.to_string(), resources);
        }
        Ok(served[api_version]
            .iter()
            .find(|(r, _)| r.kind == kind)
            .map(|(resource, caps)| Served {
                resource: resource.clone(),
                namespaced: caps.scope == Scope::Namespaced,
            }))
    }

    /// How the object's kind is served, or a `NotServed` error naming the object.
    pub async fn served_for(&self, id: &ObjectRef, fresh: bool) -> Result<Served, KubeError> {
        self.served(&id.api_version, &id.kind, fresh)
            .await?
            .ok_or_else(|| KubeError::NotServed {
                object: id.short(),
                api_version: id.api_version.clone(),
                kind: id.kind.clone(),
            })
    }

    fn api(&self, served: &Served, namespace: Option<&str>) -> Api<DynamicObject> {
        match (served.namespaced, namespace) {
            // A namespaced object written without a namespace lives in `default`, as with kubectl.
            (true, ns) => Api::namespaced_with(
                self.client.clone(),
                ns.unwrap_or("default"),
                &served.resource,
            ),
            (false, _) => Api::all_with(self.client.clone(), &served.resource),
        }
    }

    /// Server-side apply of `object` (its field manager: [`field_manager`], forcing
    /// conflicts); returns the object as stored (or as it would be, with `dry_run`).
    pub async fn apply(&self, object: &Object, dry_run: bool) -> Result<Value, KubeError> {
        let served = self.served_for(&object.id, false).await?;
        let api = self.api(&served, object.id.namespace.as_deref());
        let mut params = PatchParams::apply(field_manager(object)).force();
        params.dry_run = dry_run;
        let patch = Patch::Apply(&object.body);
        let applied = self
            .send(|| api.patch(&object.id.name, &params, &patch))
            .await
            .map_err(|e| self.error("apply", &object.id, e))?;
        Ok(serde_json::to_value(applied).unwrap_or(Value::Null))
    }

    /// The live object, or `None` when it does not exist (or its kind is no longer served).
    pub async fn get(&self, id: &ObjectRef) -> Result<Option<Value>, KubeError> {
        let Some(served) = self.served(&id.api_version, &id.kind, false).await? else {
            return Ok(None);
        };
        let api = self.api(&served, id.namespace.as_deref());
        match self.send(|| api.get_opt(&id.name)).await {
            Ok(found) => Ok(found.map(|o| serde_json::to_value(o).unwrap_or(Value::Null))),
            Err(e) => Err(self.error("read", id, e)),
        }
    }

    /// Every object of a kind, in every namespace, that matches `selector` (may be empty).
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        selector: &str,
    ) -> Result<Vec<Value>, KubeError> {
        let Some(served) = self.served(api_version, kind, false).await? else {
            return Ok(Vec::new());
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &served.resource);
        let id = ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: None,
            name: "(list)".into(),
        };
        let params = ListParams::default().labels(selector);
        let list = self
            .send(|| api.list(&params))
            .await
            .map_err(|e| self.error("list", &id, e))?;
        Ok(list
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
            .collect())
    }

    /// Asks for the object's deletion; `false` when it was already gone.
    pub async fn delete(&self, id: &ObjectRef) -> Result<bool, KubeError> {
        let Some(served) = self.served(&id.api_version, &id.kind, false).await? else {
            return Ok(false);
        };
        let api = self.api(&served, id.namespace.as_deref());
        let params = DeleteParams::background();
        match self.send(|| api.delete(&id.name, &params)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(self.error("delete", id, e)),
        }
    }

    /// Removes the object's finalizers, so that a deletion blocked by a controller that is gone
    /// can finish.
    pub async fn strip_finalizers(&self, id: &ObjectRef) -> Result<(), KubeError> {
        let served = self.served_for(id, false).await?;
        let api = self.api(&served, id.namespace.as_deref());
        let patch = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
        let params = PatchParams::default();
        match self.send(|| api.patch(&id.name, &params, &patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(self.error("remove the finalizers of", id, e)),
        }
    }
}
