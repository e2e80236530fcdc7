//! `internet_gateway`: the internet gateway, attached to the VPC, through which the public
//! subnets reach the internet and the NAT gateways send the private subnets' traffic out.

use async_trait::async_trait;
use aws_sdk_ec2::types::{InternetGateway as Gateway, ResourceType};
use serde_json::json;

use super::ec2::{ids_filter, ids_of, owned_by, sync_tags, tag_spec, tags_attr, IDS_AT_ONCE};
use super::{
    classify, create_once, gone_as_none, gone_is_fine, in_order, no_sdk_retries, on_new, str_attr,
};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, Read, ResourceProvider};

pub struct InternetGateway;

/// The gateway `id`, or `None` when it no longer exists.
async fn describe(ctx: &Ctx<'_>, id: &str) -> ProviderResult<Option<Gateway>> {
    let out = gone_as_none(
        ctx.aws
            .ec2
            .describe_internet_gateways()
            .internet_gateway_ids(id)
            .send()
            .await
            .map_err(classify),
    )?;
    Ok(out.and_then(|o| o.internet_gateways.and_then(|g| g.into_iter().next())))
}

/// What the state keeps of `gateway`.
fn attrs_of(gateway: &Gateway) -> Attrs {
    let attrs = json!({
        "vpc_id": gateway.attachments().first().and_then(|a| a.vpc_id()),
        "tags": tags_attr(gateway.tags()),
    });
    attrs.as_object().cloned().unwrap_or_default()
}

async fn delete_gateway(ctx: &Ctx<'_>, id: &str) -> ProviderResult<()> {
    gone_is_fine(
        ctx.aws
            .ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(classify),
    )
}

/// Attaches the gateway `id` to `vpc_id`. `Resource.AlreadyAssociated` (the answer to a repeat
/// after a lost answer) is success when the gateway is attached to that VPC, and only then.
async fn attach(ctx: &Ctx<'_>, id: &str, vpc_id: &str) -> ProviderResult<()> {
    let attached = ctx
        .aws
        .ec2
        .attach_internet_gateway()
        .internet_gateway_id(id)
        .vpc_id(vpc_id)
        .send()
        .await
        .map(|_| ())
        .map_err(classify);
    match attached {
        Err(e) if e.code.as_deref() == Some("Resource.AlreadyAssociated") => {
            let gateway = describe(ctx, id).await?;
            let ours =
                gateway.is_some_and(|g| g.attachments().iter().any(|a| a.vpc_id() == Some(vpc_id)));
            if ours {
                Ok(())
            } else {
                Err(e)
            }
        }
        other => other,
    }
}

#[async_trait]
impl ResourceProvider for InternetGateway {
    fn kind(&self) -> ResourceKind {
        ResourceKind::InternetGateway
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        Ok(describe(ctx, id).await?.as_ref().map(attrs_of))
    }

    fn reads_at_once(&self) -> usize {
        IDS_AT_ONCE
    }

    /// One `DescribeInternetGateways` for them all.
    async fn read_many(
        &self,
        ctx: &Ctx<'_>,
        objects: &[Read<'_>],
    ) -> ProviderResult<Vec<Option<Attrs>>> {
        let out = ctx
            .aws
            .ec2
            .describe_internet_gateways()
            .filters(ids_filter("internet-gateway-id", ids_of(objects)))
            .send()
            .await
            .map_err(classify)?;
        let found = out
            .internet_gateways()
            .iter()
            .filter_map(|g| Some((g.internet_gateway_id()?.to_string(), attrs_of(g))))
            .collect();
        Ok(in_order(objects, found))
    }

    async fn find(&self, ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        let out = ctx
            .aws
            .ec2
            .describe_internet_gateways()
            .set_filters(Some(owned_by(ctx)))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .internet_gateways()
            .first()
            .and_then(|g| g.internet_gateway_id())
            .map(str::to_string))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let vpc_id = str_attr(desired, "vpc_id")?;
        // No client token: a repeat after a lost answer would make a second gateway.
        let id = create_once(
            ctx,
            || async {
                let out = ctx
                    .aws
                    .ec2
                    .create_internet_gateway()
                    .tag_specifications(tag_spec(ResourceType::InternetGateway, desired))
                    .customize()
                    .config_override(no_sdk_retries())
                    .send()
                    .await
                    .map_err(classify)?;
                out.internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ProviderError::fatal(
                            "CreateInternetGateway returned no internet gateway id",
                        )
                    })
            },
            || self.find(ctx, desired),
        )
        .await?;
        let attached = on_new(ctx, &id, || attach(ctx, &id, vpc_id)).await;
        if let Err(err) = attached {
            // A detached gateway is of no use, would be created again if the executor retries
            // this create, and could not be adopted later (its `vpc_id` would differ): remove it.
            return Err(match delete_gateway(ctx, &id).await {
                Ok(()) => err,
                Err(cleanup) => ProviderError::fatal(format!(
                    "AttachInternetGateway of {id} to {vpc_id} failed ({err}), and deleting the \
                     detached gateway failed too ({cleanup}): delete {id} by hand"
                )),
            });
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
        // Adopted from a run stopped between CreateInternetGateway and AttachInternetGateway.
        if prior.get("vpc_id").is_none_or(serde_json::Value::is_null) {
            attach(ctx, id, str_attr(desired, "vpc_id")?).await?;
        }
        sync_tags(ctx, id, prior, desired).await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        let Some(gateway) = describe(ctx, id).await? else {
            return Ok(());
        };
        // A gateway attached to a VPC cannot be deleted: detach it from wherever it is now.
        for vpc_id in gateway.attachments().iter().filter_map(|a| a.vpc_id()) {
            let detached = ctx
                .aws
                .ec2
                .detach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(vpc_id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify);
            match gone_is_fine(detached) {
                Err(e) if e.code.as_deref() == Some("Gateway.NotAttached") => {}
                other => other?,
            }
        }
        delete_gateway(ctx, id).await
    }
}
