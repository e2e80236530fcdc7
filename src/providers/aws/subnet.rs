//! `subnet`: a public or private subnet in one availability zone. Public subnets give their
//! instances a public IP at launch; the EKS load balancer role tags come with the desired tags.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use serde_json::json;

use super::ec2::{owned_by, sync_tags, tag_spec, tags_attr};
use super::{adopt_on_conflict, bool_attr, classify, gone_as_none, gone_is_fine, on_new, str_attr};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct Subnet;

async fn set_map_public_ip(ctx: &Ctx<'_>, id: &str, on: bool) -> ProviderResult<()> {
    ctx.aws
        .ec2
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl ResourceProvider for Subnet {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Subnet
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let out = gone_as_none(
            ctx.aws
                .ec2
                .describe_subnets()
                .subnet_ids(id)
                .send()
                .await
                .map_err(classify),
        )?;
        let Some(subnet) = out.and_then(|o| o.subnets.and_then(|s| s.into_iter().next())) else {
            return Ok(None);
        };
        let attrs = json!({
            "vpc_id": subnet.vpc_id(),
            "cidr_block": subnet.cidr_block(),
            "availability_zone": subnet.availability_zone(),
            "map_public_ip_on_launch": subnet.map_public_ip_on_launch().unwrap_or(false),
            "tags": tags_attr(subnet.tags()),
            "arn": subnet.subnet_arn(),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        let out = ctx
            .aws
            .ec2
            .describe_subnets()
            .set_filters(Some(owned_by(ctx)))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .subnets()
            .first()
            .and_then(|s| s.subnet_id())
            .map(str::to_string))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let created = ctx
            .aws
            .ec2
            .create_subnet()
            .vpc_id(str_attr(desired, "vpc_id")?)
            .cidr_block(str_attr(desired, "cidr_block")?)
            .availability_zone(str_attr(desired, "availability_zone")?)
            .tag_specifications(tag_spec(ResourceType::Subnet, desired))
            .send()
            .await
            .map_err(classify)
            .and_then(|out| {
                out.subnet()
                    .and_then(|s| s.subnet_id())
                    .map(str::to_string)
                    .ok_or_else(|| ProviderError::fatal("CreateSubnet returned no subnet id"))
            });
        // The SDK's repeat of a create whose answer was lost meets the subnet it made.
        let id = adopt_on_conflict(ctx, created, &["InvalidSubnet.Conflict"], || {
            self.find(ctx, desired)
        })
        .await?;
        // New subnets never map public IPs: only the opposite needs a call.
        if bool_attr(desired, "map_public_ip_on_launch") {
            on_new(ctx, &id, || set_map_public_ip(ctx, &id, true)).await?;
        }
        Ok(id)
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let map_public_ip = bool_attr(desired, "map_public_ip_on_launch");
        if bool_attr(prior, "map_public_ip_on_launch") != map_public_ip {
            set_map_public_ip(ctx, id, map_public_ip).await?;
        }
        sync_tags(ctx, id, prior, desired).await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        gone_is_fine(
            ctx.aws
                .ec2
                .delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}
