//! `cluster_cleanup`: the step of a destroy that deletes every LoadBalancer Service and Ingress
//! in the cluster, and waits until they are gone, before the add-ons and the cluster go. The
//! AWS load balancers Kubernetes made for them would otherwise keep network interfaces in the
//! subnets, and the subnet and VPC deletions would fail. Creating it does nothing.

use async_trait::async_trait;

use crate::base::ProviderError;
use crate::kube::install;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct ClusterCleanup;

#[async_trait]
impl ResourceProvider for ClusterCleanup {
    fn kind(&self) -> ResourceKind {
        ResourceKind::ClusterCleanup
    }

    async fn read(
        &self,
        _ctx: &Ctx<'_>,
        _id: &str,
        prior: &Attrs,
    ) -> ProviderResult<Option<Attrs>> {
        Ok(Some(prior.clone()))
    }

    async fn find(&self, _ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        Ok(None)
    }

    async fn create(&self, _ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<String> {
        Ok("load-balancers".into())
    }

    async fn update(
        &self,
        _ctx: &Ctx<'_>,
        _id: &str,
        _prior: &Attrs,
        _desired: &Attrs,
    ) -> ProviderResult<()> {
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx<'_>, _id: &str, prior: &Attrs) -> ProviderResult<()> {
        let Some(cluster) = ctx.kube.cluster(ctx, prior).await? else {
            return Ok(());
        };
        ctx.waiting("the cluster's LoadBalancer Services and Ingresses to be deleted");
        install::delete_load_balancers(&cluster, &ctx.kube.settings.waits, ctx)
            .await
            .map(|_| ())
            .map_err(ProviderError::from)
    }
}
