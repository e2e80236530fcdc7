//! `route_table`: a route table of the VPC: one for the public subnets (default route to the
//! internet gateway) and one per private subnet (default route to a NAT gateway), so that the
//! VPC's main table is never relied on.

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use serde_json::json;

use super::ec2::{owned_by, route_table, sync_tags, tag_spec, tags_attr};
use super::{classify, gone_is_fine, str_attr};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct RouteTable;

#[async_trait]
impl ResourceProvider for RouteTable {
    fn kind(&self) -> ResourceKind {
        ResourceKind::RouteTable
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(table) = route_table(ctx, id).await? else {
            return Ok(None);
        };
        let attrs = json!({
            "vpc_id": table.vpc_id(),
            "tags": tags_attr(table.tags()),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        let out = ctx
            .aws
            .ec2
            .describe_route_tables()
            .set_filters(Some(owned_by(ctx)))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .route_tables()
            .first()
            .and_then(|t| t.route_table_id())
            .map(str::to_string))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let out = ctx
            .aws
            .ec2
            .create_route_table()
            .vpc_id(str_attr(desired, "vpc_id")?)
            .tag_specifications(tag_spec(ResourceType::RouteTable, desired))
            .send()
            .await
            .map_err(classify)?;
        out.route_table()
            .and_then(|t| t.route_table_id())
            .map(str::to_string)
            .ok_or_else(|| ProviderError::fatal("CreateRouteTable returned no route table id"))
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        sync_tags(ctx, id, prior, desired).await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        gone_is_fine(
            ctx.aws
                .ec2
                .delete_route_table()
                .route_table_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}
