//! `route`: one route of a route table, the default route of the public table to the internet
//! gateway or of a private table to a NAT gateway. AWS gives routes neither an id nor tags: a
//! route is known by its table and destination, and its id here is
//! `<route_table_id>_<destination_cidr_block>`.

use async_trait::async_trait;
use aws_sdk_ec2::types::Route as AwsRoute;
use serde_json::{json, Value};

use super::ec2::route_table;
use super::{adopt_on_conflict, classify, gone_is_fine, str_attr};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct Route;

fn route_id(table_id: &str, destination: &str) -> String {
    format!("{table_id}_{destination}")
}

/// The route table id and destination of a route id.
fn parse_id(id: &str) -> ProviderResult<(&str, &str)> {
    id.split_once('_').ok_or_else(|| {
        ProviderError::fatal(format!(
            "route id `{id}` is not of the form `<route_table_id>_<destination_cidr_block>`"
        ))
    })
}

/// The route of `table_id` to `destination`, or `None` when the table or the route is gone.
async fn lookup(
    ctx: &Ctx<'_>,
    table_id: &str,
    destination: &str,
) -> ProviderResult<Option<AwsRoute>> {
    Ok(route_table(ctx, table_id).await?.and_then(|t| {
        t.routes.and_then(|r| {
            r.into_iter()
                .find(|r| r.destination_cidr_block() == Some(destination))
        })
    }))
}

/// The gateway a route sends its traffic to: `gateway_id` or `nat_gateway_id`, the other being
/// null.
fn target(desired: &Attrs, name: &str) -> Option<String> {
    desired
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[async_trait]
impl ResourceProvider for Route {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Route
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let (table_id, destination) = parse_id(id)?;
        let Some(route) = lookup(ctx, table_id, destination).await? else {
            return Ok(None);
        };
        let attrs = json!({
            "route_table_id": table_id,
            "destination_cidr_block": destination,
            "gateway_id": route.gateway_id(),
            "nat_gateway_id": route.nat_gateway_id(),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let table_id = str_attr(desired, "route_table_id")?;
        let destination = str_attr(desired, "destination_cidr_block")?;
        Ok(lookup(ctx, table_id, destination)
            .await?
            .map(|_| route_id(table_id, destination)))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let table_id = str_attr(desired, "route_table_id")?;
        let destination = str_attr(desired, "destination_cidr_block")?;
        let (gateway, nat) = (
            target(desired, "gateway_id"),
            target(desired, "nat_gateway_id"),
        );
        let created = ctx
            .aws
            .ec2
            .create_route()
            .route_table_id(table_id)
            .destination_cidr_block(destination)
            .set_gateway_id(gateway.clone())
            .set_nat_gateway_id(nat.clone())
            .send()
            .await
            .map(|_| route_id(table_id, destination))
            .map_err(classify);
        // A repeat after a lost answer meets the route it made: adopted when it leads where
        // this one would, and only then.
        adopt_on_conflict(ctx, created, &["RouteAlreadyExists"], || async {
            let route = lookup(ctx, table_id, destination).await?;
            let ours = route.is_some_and(|r| {
                r.gateway_id().map(str::to_string) == gateway
                    && r.nat_gateway_id().map(str::to_string) == nat
            });
            Ok(ours.then(|| route_id(table_id, destination)))
        })
        .await
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        _prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let (table_id, destination) = parse_id(id)?;
        ctx.aws
            .ec2
            .replace_route()
            .route_table_id(table_id)
            .destination_cidr_block(destination)
            .set_gateway_id(target(desired, "gateway_id"))
            .set_nat_gateway_id(target(desired, "nat_gateway_id"))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        let (table_id, destination) = parse_id(id)?;
        gone_is_fine(
            ctx.aws
                .ec2
                .delete_route()
                .route_table_id(table_id)
                .destination_cidr_block(destination)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}
