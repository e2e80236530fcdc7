//! `k8s.*`: one Kubernetes object of the stack (today the IRSA service accounts), applied with
//! server-side apply. Its namespace is created first when missing, and left in place on
//! delete: other objects may live in it.

use async_trait::async_trait;
use serde_json::Value;

use crate::kube::install;
use crate::kube::manifest::{self, Object, ObjectRef};
use crate::kube::KubeError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderError, ProviderResult, ResourceProvider};

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
    cluster
        .apply(&object, false)
        .await
        .map_err(ProviderError::from)?;
    Ok(object.id)
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
        let live = cluster
            .get(&id_of(id)?)
            .await
            .map_err(ProviderError::from)?;
        Ok(live.map(|_| prior.clone()))
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
        cluster
            .delete(&id_of(id)?)
            .await
            .map_err(ProviderError::from)?;
        Ok(())
    }
}
