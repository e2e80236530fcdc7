//! `vpc`: the VPC, with DNS support and host names on (EKS needs both).

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use serde_json::json;

use super::ec2::{ids_filter, ids_of, owned_by, sync_tags, tag_spec, tags_attr, IDS_AT_ONCE};
use super::{
    bool_attr, classify, create_once, gone_as_none, gone_is_fine, in_order, no_sdk_retries, on_new,
    str_attr,
};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, Read, ResourceProvider};

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

/// The DNS host names and DNS support of the VPC `id`, asked at once.
async fn dns_attributes(ctx: &Ctx<'_>, id: &str) -> ProviderResult<(bool, bool)> {
    let (hostnames, support) = futures::join!(
        dns_attribute(ctx, id, VpcAttributeName::EnableDnsHostnames),
        dns_attribute(ctx, id, VpcAttributeName::EnableDnsSupport),
    );
    Ok((hostnames?, support?))
}

/// What the state keeps of `vpc`, with its DNS attributes.
fn attrs_of(vpc: &aws_sdk_ec2::types::Vpc, (hostnames, support): (bool, bool)) -> Attrs {
    let attrs = json!({
        "cidr_block": vpc.cidr_block(),
        "enable_dns_hostnames": hostnames,
        "enable_dns_support": support,
        "tags": tags_attr(vpc.tags()),
    });
    attrs.as_object().cloned().unwrap_or_default()
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
        // The three calls at once, not one after the other: none needs another's answer.
        let (out, dns) = futures::join!(
            async {
                ctx.aws
                    .ec2
                    .describe_vpcs()
                    .vpc_ids(id)
                    .send()
                    .await
                    .map_err(classify)
            },
            dns_attributes(ctx, id),
        );
        let vpc = gone_as_none(out)?.and_then(|o| o.vpcs.and_then(|v| v.into_iter().next()));
        // A VPC gone answers NotFound to the attributes too; one found must have them.
        vpc.map(|vpc| Ok(attrs_of(&vpc, dns?))).transpose()
    }

    fn reads_at_once(&self) -> usize {
        IDS_AT_ONCE
    }

    /// One `DescribeVpcs` for them all, and beside it each one's DNS attributes (one call per
    /// attribute and VPC: that is what the API accepts).
    async fn read_many(
        &self,
        ctx: &Ctx<'_>,
        objects: &[Read<'_>],
    ) -> ProviderResult<Vec<Option<Attrs>>> {
        let (out, dns) = futures::join!(
            async {
                ctx.aws
                    .ec2
                    .describe_vpcs()
                    .filters(ids_filter("vpc-id", ids_of(objects)))
                    .send()
                    .await
                    .map_err(classify)
            },
            futures::future::join_all(objects.iter().map(|o| dns_attributes(ctx, o.id))),
        );
        let mut dns: std::collections::BTreeMap<&str, _> = ids_of(objects).zip(dns).collect();
        // A VPC gone answers NotFound to the attributes too; one found must have them.
        let found = out?
            .vpcs()
            .iter()
            .filter_map(|v| {
                let id = v.vpc_id()?;
                Some(
                    dns.remove(id)?
                        .map(|dns| (id.to_string(), attrs_of(v, dns))),
                )
            })
            .collect::<ProviderResult<_>>()?;
        Ok(in_order(objects, found))
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
