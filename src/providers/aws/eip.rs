//! `eip`: an Elastic IP address in the VPC domain, the fixed public address of a NAT gateway,
//! so that traffic from the private subnets leaves from an address that does not change.

use async_trait::async_trait;
use aws_sdk_ec2::types::{DomainType, ResourceType};
use serde_json::json;

use super::ec2::{owned_by, sync_tags, tag_spec, tags_attr};
use super::{classify, create_once, gone_as_none, gone_is_fine, no_sdk_retries, str_attr};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct Eip;

#[async_trait]
impl ResourceProvider for Eip {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Eip
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let out = gone_as_none(
            ctx.aws
                .ec2
                .describe_addresses()
                .allocation_ids(id)
                .send()
                .await
                .map_err(classify),
        )?;
        let Some(address) = out.and_then(|o| o.addresses.and_then(|a| a.into_iter().next())) else {
            return Ok(None);
        };
        let attrs = json!({
            "domain": address.domain().map(DomainType::as_str),
            "tags": tags_attr(address.tags()),
            "public_ip": address.public_ip(),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        let out = ctx
            .aws
            .ec2
            .describe_addresses()
            .set_filters(Some(owned_by(ctx)))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .addresses()
            .first()
            .and_then(|a| a.allocation_id())
            .map(str::to_string))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let domain = DomainType::from(str_attr(desired, "domain")?);
        // No client token: a repeat after a lost answer would allocate a second address.
        create_once(
            ctx,
            || async {
                let out = ctx
                    .aws
                    .ec2
                    .allocate_address()
                    .domain(domain.clone())
                    .tag_specifications(tag_spec(ResourceType::ElasticIp, desired))
                    .customize()
                    .config_override(no_sdk_retries())
                    .send()
                    .await
                    .map_err(classify)?;
                out.allocation_id.ok_or_else(|| {
                    ProviderError::fatal("AllocateAddress returned no allocation id")
                })
            },
            || self.find(ctx, desired),
        )
        .await
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
                .release_address()
                .allocation_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}
