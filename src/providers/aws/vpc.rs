//! `vpc`: the VPC, with DNS support and host names on (EKS needs both).

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use serde_json::json;

use super::ec2::{owned_by, sync_tags, tag_spec, tags_attr};
use super::{
    bool_attr, classify, create_once, gone_as_none, gone_is_fine, no_sdk_retries, on_new, str_attr,
};
use crate::base::ProviderError;
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

/// The DNS attributes, one per call: that is what the API accepts.
const DNS_ATTRS: [&str; 2] = ["enable_dns_support", "enable_dns_hostnames"];

async fn set_dns(ctx: &Ctx<'_>, id: &str, name: &str, on: bool) -> ProviderResult<()> {
    let flag = AttributeBooleanValue::builder().value(on).build();
    let request = ctx.aws.ec2.modify_vpc_attribute().vpc_id(id);
    let request = match name {
        "enable_dns_hostnames" => request.enable_dns_hostnames(flag),
        _ => request.enable_dns_support(flag),
    };
    request.send().await.map_err(classify)?;
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
        let cidr = str_attr(desired, "cidr_block")?;
        // No client token: a repeat after a lost answer would make a second VPC.
        let id = create_once(
            ctx,
            || async {
                let out = ctx
                    .aws
                    .ec2
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(tag_spec(ResourceType::Vpc, desired))
                    .customize()
                    .config_override(no_sdk_retries())
                    .send()
                    .await
                    .map_err(classify)?;
                out.vpc()
                    .and_then(|v| v.vpc_id())
                    .map(str::to_string)
                    .ok_or_else(|| ProviderError::fatal("CreateVpc returned no VPC id"))
            },
            || self.find(ctx, desired),
        )
        .await?;
        for name in DNS_ATTRS {
            let on = bool_attr(desired, name);
            on_new(ctx, &id, || set_dns(ctx, &id, name, on)).await?;
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
        for name in DNS_ATTRS {
            if prior.get(name) != desired.get(name) {
                set_dns(ctx, id, name, bool_attr(desired, name)).await?;
            }
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
