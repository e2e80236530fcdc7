//! One connection to a cluster's API server, with what the installer asks of it: resolve a
//! kind through discovery (re-asked when a CRD has just been established), server-side apply,
//! get, list by label, delete. Every error names the object it concerns.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersion};
use kube::discovery::{self, ApiCapabilities, Scope};
use serde_json::Value;
use tokio::sync::Mutex;

use super::error::KubeError;
use super::manifest::{Object, ObjectRef, FIELD_MANAGER};

/// How long to wait for a TCP connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Cluster {
    client: kube::Client,
    /// Names the cluster in messages.
    pub name: String,
    /// What discovery said of each group/version, asked once each.
    served: Mutex<HashMap<String, Vec<(ApiResource, ApiCapabilities)>>>,
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
        Cluster::new(config, name)
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

    /// An EKS cluster: its endpoint, its CA (base64 PEM, as EKS gives it) and a bearer token.
    pub async fn from_endpoint(
        cluster: &str,
        endpoint: &str,
        certificate_authority: &str,
        token: &str,
    ) -> Result<Cluster, KubeError> {
        let yaml = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority}}],
            "users": [{"name": "mlops", "user": {"token": token}}],
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
        Cluster::new(config, format!("cluster `{cluster}` ({endpoint})"))
    }

    fn new(config: kube::Config, name: String) -> Result<Cluster, KubeError> {
        // rustls has two crypto backends in this build (the AWS SDK's and kube's) and then
        // picks neither by itself; an `Err` means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = kube::Client::try_from(config).map_err(|e| KubeError::Unreachable {
            cluster: name.clone(),
            message: e.to_string(),
        })?;
        Ok(Cluster {
            client,
            name,
            served: Mutex::new(HashMap::new()),
        })
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
            let resources = match discovery::pinned_group(&self.client, &gv).await {
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

    /// Server-side apply of `object` (field manager `mlops`, forcing conflicts); returns the
    /// object as stored (or as it would be, with `dry_run`).
    pub async fn apply(&self, object: &Object, dry_run: bool) -> Result<Value, KubeError> {
        let served = self.served_for(&object.id, false).await?;
        let api = self.api(&served, object.id.namespace.as_deref());
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        let applied = api
            .patch(&object.id.name, &params, &Patch::Apply(&object.body))
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
        match api.get_opt(&id.name).await {
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
        let list = api
            .list(&ListParams::default().labels(selector))
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
        match api.delete(&id.name, &DeleteParams::background()).await {
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
        let patch = serde_json::json!({"metadata": {"finalizers": null}});
        match api
            .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(self.error("remove the finalizers of", id, e)),
        }
    }
}
