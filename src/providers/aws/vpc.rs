//! `vpc`: the VPC, with DNS support and host names on (EKS needs both).

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use serde_json::json;

use super::ec2::{owned_by, sync_tags, tag_spec, tags_attr};
use super::{bool_attr, classify, gone_as_none, gone_is_fine, str_attr};
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct Vpc;

async fn dns_attribute(ctx: &Ctx<'_>, id: &str, name: VpcAttributeName) -> ProviderResult<bool> {
    let out = ctx
        .aws
        .ec2
        .describe_vpc_attribute()
        .vpc_id(id)
        .attribute(name.clone())
        .send()
        .await
        .map_err(classify)?;
    let value = match name {
        VpcAttributeName::EnableDnsHostnames => out.enable_dns_hostnames(),
        _ => out.enable_dns_support(),
    };
    Ok(value.and_then(|v| v.value()).unwrap_or(false))
}

async fn set_dns(ctx: &Ctx<'_>, id: &str, desired: &Attrs) -> ProviderResult<()> {
    // One attribute per call: that is what the API accepts.
    let flag = |name| {
        AttributeBooleanValue::builder()
            .value(bool_attr(desired, name))
            .build()
    };
    ctx.aws
        .ec2
        .modify_vpc_attribute()
        .vpc_id(id)
        .enable_dns_support(flag("enable_dns_support"))
        .send()
        .await
        .map_err(classify)?;
    ctx.aws
        .ec2
        .modify_vpc_attribute()
        .vpc_id(id)
        .enable_dns_hostnames(flag("enable_dns_hostnames"))
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl ResourceProvider for Vpc {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Vpc
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let out = gone_as_none(
            ctx.aws
                .ec2
                .describe_vpcs()
                .vpc_ids(id)
                .send()
                .await
                .map_err(classify),
        )?;
        let Some(vpc) = out.and_then(|o| o.vpcs.and_then(|v| v.into_iter().next())) else {
            return Ok(None);
        };
        let hostnames = dns_attribute(ctx, id, VpcAttributeName::EnableDnsHostnames).await?;
        let support = dns_attribute(ctx, id, VpcAttributeName::EnableDnsSupport).await?;
        let attrs = json!({
            "cidr_block": vpc.cidr_block(),
            "enable_dns_hostnames": hostnames,
            "enable_dns_support": support,
            "tags": tags_attr(vpc.tags()),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        let out = ctx
            .aws
            .ec2
            .describe_vpcs()
            .set_filters(Some(owned_by(ctx)))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id())
            .map(str::to_string))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let out = ctx
            .aws
            .ec2
            .create_vpc()
            .cidr_block(str_attr(desired, "cidr_block")?)
            .tag_specifications(tag_spec(ResourceType::Vpc, desired))
            .send()
            .await
            .map_err(classify)?;
        let id = out
            .vpc()
            .and_then(|v| v.vpc_id())
            .ok_or_else(|| crate::providers::ProviderError::fatal("CreateVpc returned no VPC id"))?
            .to_string();
        set_dns(ctx, &id, desired).await?;
        Ok(id)
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        if prior.get("enable_dns_hostnames") != desired.get("enable_dns_hostnames")
            || prior.get("enable_dns_support") != desired.get("enable_dns_support")
        {
            set_dns(ctx, id, desired).await?;
        }
        sync_tags(ctx, id, prior, desired).await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        gone_is_fine(
            ctx.aws
                .ec2
                .delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}
