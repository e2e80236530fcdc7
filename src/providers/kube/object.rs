//! `k8s.*`: one Kubernetes object of the stack (an IRSA service account, or an object of the
//! stack's workloads), applied with server-side apply through the staged installer, so that a
//! CRD is established before it counts as made and an InferenceService is `Ready`.
//!
//! Read compares the live object with a server-side dry run of what was last applied, field by
//! field over the fields `mlops` sets: a field someone changed reads back as its live value, so
//! the plan shows exactly that field; defaults and normalisation (`1000m` stored as `1`) do not
//! count as changes. Delete leaves alone an object that no longer carries the `managed-by`
//! label (someone else took it over), and waits until the object is gone.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::base::ProviderError;
use crate::kube::install;
use crate::kube::KubeError;
use crate::manifest::{self, Object, ObjectRef, MANAGED_BY};
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct KubeObject;

/// The object in the `manifest` attribute.
fn object(attrs: &Attrs) -> ProviderResult<Object> {
    let body = attrs.get("manifest").cloned().unwrap_or(Value::Null);
    let text = serde_json::to_string(&body).unwrap_or_default();
    let mut objects =
        manifest::parse_documents(&text, "the stack's manifest").map_err(KubeError::from)?;
    objects
        .pop()
        .ok_or_else(|| ProviderError::fatal("no manifest in the state for this object"))
}

fn id_of(id: &str) -> ProviderResult<ObjectRef> {
    id.parse().map_err(ProviderError::fatal)
}

async fn apply(ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<ObjectRef> {
    let cluster = ctx.kube.existing_cluster(ctx, desired).await?;
    let object = object(desired)?;
    if let Some(namespace) = &object.id.namespace {
        install::ensure_namespaces(&cluster, &[namespace])
            .await
            .map_err(ProviderError::from)?;
    }
    let id = object.id.clone();
    install::install(&cluster, vec![object], &ctx.kube.settings.waits, ctx)
        .await
        .map_err(ProviderError::from)?;
    Ok(id)
}

/// `applied` with, at each field it sets whose dry-run value differs from the live one, the live
/// value (`None` where the live object lacks the field).
fn with_drift(applied: &Value, dry_run: &Value, live: &Value) -> Value {
    match applied {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                let live_value = live.get(key);
                match (value, dry_run.get(key), live_value) {
                    (Value::Object(_), Some(dry), Some(live)) if live.is_object() => {
                        out.insert(key.clone(), with_drift(value, dry, live));
                    }
                    (_, Some(dry), Some(live)) if dry == live => {
                        out.insert(key.clone(), value.clone());
                    }
                    (_, None, None) => {
                        out.insert(key.clone(), value.clone());
                    }
                    (_, _, Some(live)) => {
                        out.insert(key.clone(), live.clone());
                    }
                    (_, _, None) => {}
                }
            }
            Value::Object(out)
        }
        other if dry_run == live => other.clone(),
        _ => live.clone(),
    }
}

#[async_trait]
impl ResourceProvider for KubeObject {
    fn kind(&self) -> ResourceKind {
        ResourceKind::KubeObject
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(cluster) = ctx.kube.cluster(ctx, prior).await? else {
            return Ok(None);
        };
        let Some(live) = cluster
            .get(&id_of(id)?)
            .await
            .map_err(ProviderError::from)?
        else {
            return Ok(None);
        };
        let applied = object(prior)?;
        let dry_run = cluster
            .apply(&applied, true)
            .await
            .map_err(ProviderError::from)?;
        let mut read = prior.clone();
        read.insert(
            "manifest".into(),
            with_drift(&applied.body, &dry_run, &live),
        );
        Ok(Some(read))
    }

    async fn find(&self, _ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        Ok(None) // server-side apply adopts an object that is already there
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        Ok(apply(ctx, desired).await?.to_string())
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        _id: &str,
        _prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        apply(ctx, desired).await.map(|_| ())
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<()> {
        let Some(cluster) = ctx.kube.cluster(ctx, prior).await? else {
            return Ok(());
        };
        let id = id_of(id)?;
        let Some(live) = cluster.get(&id).await.map_err(ProviderError::from)? else {
            return Ok(());
        };
        if live["metadata"]["labels"][MANAGED_BY.0] != MANAGED_BY.1 {
            install::Progress::warning(
                ctx,
                &format!(
                    "{} is left in place: it no longer has the label `{}: {}`",
                    id.short(),
                    MANAGED_BY.0,
                    MANAGED_BY.1
                ),
            );
            return Ok(());
        }
        install::uninstall(&cluster, &[id], &ctx.kube.settings.waits, ctx)
            .await
            .map_err(ProviderError::from)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::with_drift;

    #[test]
    fn drift_is_the_live_value_of_the_fields_mlops_sets_where_a_dry_run_differs() {
        let applied = json!({"kind": "ResourceQuota", "spec": {"hard": {"cpu": "1000m", "pods": "10"}}, "data": {"a": "1", "b": "2"}});
        // The server stores `1000m` as `1`: not a change. Someone set pods to 20 and removed `b`.
        let dry_run = json!({"kind": "ResourceQuota", "spec": {"hard": {"cpu": "1", "pods": "10"}}, "data": {"a": "1", "b": "2"}, "status": {}});
        let live = json!({"kind": "ResourceQuota", "spec": {"hard": {"cpu": "1", "pods": "20"}}, "data": {"a": "1"}, "status": {"used": {}}});
        assert_eq!(
            with_drift(&applied, &dry_run, &live),
            json!({"kind": "ResourceQuota", "spec": {"hard": {"cpu": "1000m", "pods": "20"}}, "data": {"a": "1"}})
        );
        assert_eq!(with_drift(&applied, &dry_run, &dry_run), applied);
    }
}
