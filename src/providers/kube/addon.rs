//! `addon.<name>`: one release of an add-on, as one resource. Its attributes are the version
//! and the inventory (`objects`: each object's reference and digest), so the plan can show an
//! upgrade as objects added, changed and removed, and an unchanged add-on makes no call at all.
//! Create and update run the staged install; update then prunes what the new version dropped
//! (never a CRD, unless `--allow-crd-removal`); delete uninstalls in reverse order, with the
//! namespaces the install made for objects whose manifests do not create them (Istio's
//! `istio-system`). What counts as dropped, and what of it is pruned, is `kube::install::dropped`
//! and `prune`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::addons::{self, render};
use crate::base::ProviderError;
use crate::kube::install::{self, load_balancer_address};
use crate::kube::{Cluster, KubeError};
use crate::manifest::{Object, ObjectRef, ADDON_LABEL, MANAGED_BY};
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct Addon;

fn release(attrs: &Attrs) -> ProviderResult<&'static addons::Release> {
    render::release_of(attrs).ok_or_else(|| {
        let text = |key: &str| attrs.get(key).and_then(Value::as_str).unwrap_or_default();
        ProviderError::fatal(format!(
            "{} {} is not in the catalogue of this mlops",
            text("name"),
            text("version")
        ))
    })
}

/// Installs the desired release; the objects must be those the plan was made with.
async fn install(ctx: &Ctx<'_>, cluster: &Cluster, desired: &Attrs) -> ProviderResult<()> {
    {
        let release = release(desired)?;
        let objects = render::configured(release, &ctx.kube.settings.manifests, desired)
            .map_err(|e| ProviderError::from(KubeError::from(e)))?;
        if desired.get("objects") != Some(&json!(render::inventory(&objects))) {
            return Err(ProviderError::fatal(format!(
                "the manifests of {} {} differ from those the plan was made with; plan again",
                release.addon, release.version
            )));
        }
        let namespaces = render::namespaces_to_ensure(&objects);
        let namespaces: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        let labels = [MANAGED_BY, (ADDON_LABEL, release.addon.name())];
        install::ensure_labelled_namespaces(cluster, &namespaces, &labels)
            .await
            .map_err(ProviderError::from)?;
        install::install(cluster, objects, &ctx.kube.settings.waits, ctx)
            .await
            .map_err(ProviderError::from)
    }
}

#[async_trait]
impl ResourceProvider for Addon {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Addon
    }

    /// The inventory as the cluster has it: objects deleted by hand drop out of it, so that the
    /// plan re-applies the add-on.
    async fn read(&self, ctx: &Ctx<'_>, _id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(cluster) = ctx.kube.cluster(ctx, prior).await? else {
            return Ok(None);
        };
        let name = prior
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let selector = format!("{ADDON_LABEL}={name}");
        let kinds: BTreeSet<(String, String)> = render::inventory_refs(prior)
            .into_iter()
            .map(|r| (r.api_version, r.kind))
            .collect();
        let mut live = BTreeSet::new();
        for (api_version, kind) in &kinds {
            for object in cluster
                .list(api_version, kind, &selector)
                .await
                .map_err(ProviderError::from)?
            {
                let r = install::object_ref(api_version, kind, &object);
                live.insert((r.kind, r.namespace, r.name));
            }
        }
        let mut attrs = prior.clone();
        if let Some(Value::Object(objects)) = attrs.get_mut("objects") {
            // A namespaced object written without a namespace lives in `default`.
            objects.retain(|key, _| {
                key.parse::<ObjectRef>().is_ok_and(|r| {
                    let default = r.namespace.is_none().then(|| "default".to_string());
                    live.contains(&(r.kind.clone(), r.namespace, r.name.clone()))
                        || live.contains(&(r.kind, default, r.name))
                })
            });
        }
        let gateway = render::ingress_gateway();
        if render::inventory_refs(prior).contains(&gateway) {
            let address = cluster
                .get(&gateway)
                .await
                .map_err(ProviderError::from)?
                .and_then(|service| load_balancer_address(&service));
            attrs.insert("ingress_hostname".into(), json!(address));
        }
        Ok(Some(attrs))
    }

    async fn find(&self, _ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        // Server-side apply adopts whatever is there: a create after a crash simply re-applies.
        Ok(None)
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let cluster = ctx.kube.existing_cluster(ctx, desired).await?;
        install(ctx, &cluster, desired).await?;
        Ok(release(desired)?.addon.name().to_string())
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        _id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let cluster = ctx.kube.existing_cluster(ctx, desired).await?;
        let dropped = install::dropped(
            render::inventory_refs(prior),
            &render::inventory_refs(desired),
        );
        let crds: Vec<String> = dropped
            .iter()
            .filter(|r| r.is_crd())
            .map(|r| r.name.clone())
            .collect();
        if !crds.is_empty() && !ctx.kube.settings.allow_crd_removal {
            let addon = release(desired)?;
            return Err(KubeError::CrdRemoval {
                addon: format!("{} to {}", addon.addon, addon.version),
                crds,
            }
            .into());
        }
        install(ctx, &cluster, desired).await?;
        let name = desired.get("name").and_then(Value::as_str).unwrap_or("");
        install::prune(&cluster, name, &dropped, &ctx.kube.settings.waits, ctx)
            .await
            .map_err(ProviderError::from)
    }

    async fn delete(&self, ctx: &Ctx<'_>, _id: &str, prior: &Attrs) -> ProviderResult<()> {
        let Some(cluster) = ctx.kube.cluster(ctx, prior).await? else {
            return Ok(()); // the cluster and everything in it are gone
        };
        let mut objects = render::inventory_refs(prior);
        let name = prior
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let made = made_namespaces(&cluster, &objects, name)
            .await
            .map_err(ProviderError::from)?;
        objects.extend(made);
        install::uninstall(&cluster, &objects, &ctx.kube.settings.waits, ctx)
            .await
            .map_err(ProviderError::from)
    }
}

/// The namespaces that the install of add-on `name` made for its objects (labelled with
/// `mlops` and the add-on when created): they go with it. One that existed before, or that
/// another add-on made, stays.
async fn made_namespaces(
    cluster: &Cluster,
    objects: &[ObjectRef],
    name: &str,
) -> Result<Vec<ObjectRef>, KubeError> {
    let mut made = Vec::new();
    for namespace in render::namespaces_ensured(objects.iter()) {
        let id = Object::namespace(&namespace).id;
        let Some(live) = cluster.get(&id).await? else {
            continue;
        };
        let labels = &live["metadata"]["labels"];
        if labels[MANAGED_BY.0] == MANAGED_BY.1 && labels[ADDON_LABEL] == name {
            made.push(id);
        }
    }
    Ok(made)
}
