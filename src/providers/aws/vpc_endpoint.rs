//! `vpc_endpoint`: a gateway endpoint (S3, on route tables) or an interface endpoint (ECR, STS,
//! EC2, CloudWatch Logs: network interfaces in subnets, with private DNS) of the stack's VPC,
//! so that nodes without a NAT gateway still reach the AWS APIs they need. Found again by its
//! tags; route tables and subnets change in place (`ModifyVpcEndpoint`).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, VpcEndpoint as Endpoint, VpcEndpointType};
use serde_json::json;

use super::ec2::{owned_by, sync_tags, tag_spec, tags_attr};
use super::{
    bool_attr, classify, gone_as_none, in_prior_order, str_attr, string_values, strings_attr,
    wait_for,
};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct VpcEndpoint;

const LIMIT: Duration = Duration::from_secs(10 * 60);

/// The endpoint's state in lower case. The EC2 API documents the values capitalized
/// (`Available`), which is how the SDK's `State` enum spells them, but EC2 (and moto) answer
/// them in lower case (`available`): the SDK then reports `State::Unknown`, so the enum's
/// variants never match.
fn state_of(endpoint: &Endpoint) -> Option<String> {
    endpoint.state().map(|s| s.as_str().to_ascii_lowercase())
}

/// The endpoint, `None` when it does not exist or is deleted.
async fn describe(ctx: &Ctx<'_>, id: &str) -> ProviderResult<Option<Endpoint>> {
    let out = gone_as_none(
        ctx.aws
            .ec2
            .describe_vpc_endpoints()
            .vpc_endpoint_ids(id)
            .send()
            .await
            .map_err(classify),
    )?;
    Ok(out
        .and_then(|o| o.vpc_endpoints.and_then(|e| e.into_iter().next()))
        .filter(|e| !matches!(state_of(e).as_deref(), Some("deleted" | "deleting"))))
}

/// Ids added and removed from `before` to `after`, for `ModifyVpcEndpoint`.
fn changes(before: &[String], after: &[String]) -> (Vec<String>, Vec<String>) {
    let add = after
        .iter()
        .filter(|i| !before.contains(i))
        .cloned()
        .collect();
    let remove = before
        .iter()
        .filter(|i| !after.contains(i))
        .cloned()
        .collect();
    (add, remove)
}

fn some(ids: Vec<String>) -> Option<Vec<String>> {
    (!ids.is_empty()).then_some(ids)
}

#[async_trait]
impl ResourceProvider for VpcEndpoint {
    fn kind(&self) -> ResourceKind {
        ResourceKind::VpcEndpoint
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(endpoint) = describe(ctx, id).await? else {
            return Ok(None);
        };
        let ordered =
            |items: &[String], attr: &str| in_prior_order(string_values(items), prior.get(attr));
        let groups: Vec<String> = endpoint
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect();
        let attrs = json!({
            "vpc_id": endpoint.vpc_id(),
            "service_name": endpoint.service_name(),
            "vpc_endpoint_type": endpoint.vpc_endpoint_type().map(VpcEndpointType::as_str),
            "route_table_ids": ordered(endpoint.route_table_ids(), "route_table_ids"),
            "subnet_ids": ordered(endpoint.subnet_ids(), "subnet_ids"),
            "security_group_ids": ordered(&groups, "security_group_ids"),
            "private_dns_enabled": endpoint.private_dns_enabled().unwrap_or(false),
            "tags": tags_attr(endpoint.tags()),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, _desired: &Attrs) -> ProviderResult<Option<String>> {
        let out = ctx
            .aws
            .ec2
            .describe_vpc_endpoints()
            .set_filters(Some(owned_by(ctx)))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .vpc_endpoints()
            .iter()
            .filter(|e| !matches!(state_of(e).as_deref(), Some("deleted" | "deleting")))
            .find_map(|e| e.vpc_endpoint_id())
            .map(str::to_string))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let gateway = str_attr(desired, "vpc_endpoint_type")? == "Gateway";
        let out = ctx
            .aws
            .ec2
            .create_vpc_endpoint()
            .vpc_id(str_attr(desired, "vpc_id")?)
            .service_name(str_attr(desired, "service_name")?)
            .vpc_endpoint_type(VpcEndpointType::from(str_attr(
                desired,
                "vpc_endpoint_type",
            )?))
            .set_route_table_ids(some(strings_attr(desired, "route_table_ids")))
            .set_subnet_ids(some(strings_attr(desired, "subnet_ids")))
            .set_security_group_ids(some(strings_attr(desired, "security_group_ids")))
            .set_private_dns_enabled((!gateway).then(|| bool_attr(desired, "private_dns_enabled")))
            .tag_specifications(tag_spec(ResourceType::VpcEndpoint, desired))
            .send()
            .await
            .map_err(classify)?;
        out.vpc_endpoint()
            .and_then(|e| e.vpc_endpoint_id())
            .map(str::to_string)
            .ok_or_else(|| ProviderError::fatal("CreateVpcEndpoint returned no endpoint id"))
    }

    async fn wait_ready(&self, ctx: &Ctx<'_>, id: &str) -> ProviderResult<()> {
        let what = "for the VPC endpoint to become available (AWS takes 1-3 min)";
        wait_for(ctx, what, LIMIT, || async move {
            let endpoint = describe(ctx, id)
                .await?
                .ok_or_else(|| ProviderError::fatal(format!("the VPC endpoint `{id}` vanished")))?;
            match state_of(&endpoint).as_deref() {
                Some("available") => Ok(Some(())),
                Some(state @ ("failed" | "rejected")) => Err(ProviderError::fatal(format!(
                    "the VPC endpoint `{id}` is {state}"
                ))),
                // AWS always reports one; an answer without it has nothing to wait for.
                None => Ok(Some(())),
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
        let diff = |attr: &str| changes(&strings_attr(prior, attr), &strings_attr(desired, attr));
        let (add_tables, remove_tables) = diff("route_table_ids");
        let (add_subnets, remove_subnets) = diff("subnet_ids");
        let (add_groups, remove_groups) = diff("security_group_ids");
        let dns = bool_attr(desired, "private_dns_enabled");
        let dns_changed = bool_attr(prior, "private_dns_enabled") != dns;
        let any = [
            &add_tables,
            &remove_tables,
            &add_subnets,
            &remove_subnets,
            &add_groups,
            &remove_groups,
        ]
        .iter()
        .any(|l| !l.is_empty());
        if any || dns_changed {
            ctx.aws
                .ec2
                .modify_vpc_endpoint()
                .vpc_endpoint_id(id)
                .set_add_route_table_ids(some(add_tables))
                .set_remove_route_table_ids(some(remove_tables))
                .set_add_subnet_ids(some(add_subnets))
                .set_remove_subnet_ids(some(remove_subnets))
                .set_add_security_group_ids(some(add_groups))
                .set_remove_security_group_ids(some(remove_groups))
                .set_private_dns_enabled(dns_changed.then_some(dns))
                .send()
                .await
                .map_err(classify)?;
        }
        sync_tags(ctx, id, prior, desired).await
    }

    /// Deletes the endpoint and waits until it is gone: an interface endpoint's network
    /// interfaces hold its subnets until then.
    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        gone_as_none(
            ctx.aws
                .ec2
                .delete_vpc_endpoints()
                .vpc_endpoint_ids(id)
                .send()
                .await
                .map_err(classify),
        )?;
        let what = "for the VPC endpoint to be deleted";
        wait_for(ctx, what, LIMIT, || async move {
            Ok(describe(ctx, id).await?.is_none().then_some(()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modifications_name_what_to_add_and_remove() {
        let ids = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            changes(&ids(&["a", "b"]), &ids(&["b", "c"])),
            (ids(&["c"]), ids(&["a"]))
        );
        assert_eq!(changes(&ids(&["a"]), &ids(&["a"])), (vec![], vec![]));
    }
}
