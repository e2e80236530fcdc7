//! `nat_gateway`: a public NAT gateway in a public subnet, with its Elastic IP, through which
//! the private subnets (and so the EKS nodes) reach the internet without being reachable from it.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    ConnectivityType, Filter, NatGateway as Gateway, NatGatewayState, ResourceType,
};
use serde_json::json;

use super::ec2::{is_owned, owned_by, sync_tags, tag_spec, tags_attr};
use super::{classify, gone_as_none, gone_is_fine, str_attr, wait_for};
use crate::base::{ErrorClass, ProviderError};
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct NatGateway;

/// How long AWS may take to make a NAT gateway available, or to delete one.
const WAIT_LIMIT: Duration = Duration::from_secs(15 * 60);

/// The NAT gateway `id` as AWS lists it: deleted ones stay listed for about an hour (forever
/// in moto).
async fn describe(ctx: &Ctx<'_>, id: &str) -> ProviderResult<Option<Gateway>> {
    let out = gone_as_none(
        ctx.aws
            .ec2
            .describe_nat_gateways()
            .nat_gateway_ids(id)
            .send()
            .await
            .map_err(classify),
    )?;
    Ok(out.and_then(|o| o.nat_gateways.and_then(|g| g.into_iter().next())))
}

/// A NAT gateway on its way out, or one that never came up, no longer exists for the stack.
fn is_gone(gateway: &Gateway) -> bool {
    matches!(
        gateway.state(),
        Some(NatGatewayState::Deleted | NatGatewayState::Deleting | NatGatewayState::Failed)
    )
}

#[async_trait]
impl ResourceProvider for NatGateway {
    fn kind(&self) -> ResourceKind {
        ResourceKind::NatGateway
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(gateway) = describe(ctx, id).await?.filter(|g| !is_gone(g)) else {
            return Ok(None);
        };
        let attrs = json!({
            "subnet_id": gateway.subnet_id(),
            "allocation_id": gateway.nat_gateway_addresses().first().and_then(|a| a.allocation_id()),
            "connectivity_type": gateway.connectivity_type().map(ConnectivityType::as_str),
            "tags": tags_attr(gateway.tags()),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        let mut filters = owned_by(ctx);
        filters.push(
            Filter::builder()
                .name("state")
                .values(NatGatewayState::Pending.as_str())
                .values(NatGatewayState::Available.as_str())
                .build(),
        );
        let out = ctx
            .aws
            .ec2
            .describe_nat_gateways()
            .set_filter(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .nat_gateways()
            .iter()
            .find(|g| is_owned(ctx, g.tags()))
            .and_then(|g| g.nat_gateway_id())
            .map(str::to_string))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let out = ctx
            .aws
            .ec2
            .create_nat_gateway()
            .subnet_id(str_attr(desired, "subnet_id")?)
            .allocation_id(str_attr(desired, "allocation_id")?)
            .connectivity_type(ConnectivityType::from(str_attr(
                desired,
                "connectivity_type",
            )?))
            .tag_specifications(tag_spec(ResourceType::Natgateway, desired))
            .send()
            .await
            .map_err(classify)?;
        out.nat_gateway()
            .and_then(|g| g.nat_gateway_id())
            .map(str::to_string)
            .ok_or_else(|| ProviderError::fatal("CreateNatGateway returned no NAT gateway id"))
    }

    async fn wait_ready(&self, ctx: &Ctx<'_>, id: &str) -> ProviderResult<()> {
        let what = "for the NAT gateway to become available (AWS takes 1-3 min)";
        wait_for(ctx, what, WAIT_LIMIT, || async move {
            let gateway = describe(ctx, id).await?.ok_or_else(|| ProviderError {
                // EC2 may not know a gateway it has just created: `wait_for` polls on a while.
                class: ErrorClass::NotFound,
                code: None,
                message: format!("NAT gateway {id} vanished while being created"),
            })?;
            match gateway.state() {
                Some(NatGatewayState::Available) => Ok(Some(())),
                Some(NatGatewayState::Failed) => Err(ProviderError::fatal(format!(
                    "NAT gateway {id} failed to come up: {}: {}",
                    gateway.failure_code().unwrap_or("no failure code"),
                    gateway.failure_message().unwrap_or("no failure message"),
                ))),
                Some(state @ (NatGatewayState::Deleting | NatGatewayState::Deleted)) => {
                    Err(ProviderError::fatal(format!(
                        "NAT gateway {id} is {} while being created",
                        state.as_str()
                    )))
                }
                _ => Ok(None),
            }
        })
        .await
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        // Every other attribute forces a replacement: only the tags change in place.
        sync_tags(ctx, id, prior, desired).await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        gone_is_fine(
            ctx.aws
                .ec2
                .delete_nat_gateway()
                .nat_gateway_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )?;
        let what = "for the NAT gateway to be deleted (AWS takes about 1 min)";
        wait_for(ctx, what, WAIT_LIMIT, || async move {
            let deleted = describe(ctx, id).await?.is_none_or(|g| {
                matches!(
                    g.state(),
                    Some(NatGatewayState::Deleted | NatGatewayState::Failed)
                )
            });
            Ok(deleted.then_some(()))
        })
        .await
    }
}
