//! `route_table_association`: the link of a subnet to its route table, which decides where the
//! subnet's traffic goes (the internet gateway for public subnets, a NAT gateway for private
//! ones). Its id is the association id, `rtbassoc-…`.

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use serde_json::json;

use super::ec2::route_table;
use super::{adopt_on_conflict, classify, gone_is_fine, str_attr};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct RouteTableAssociation;

#[async_trait]
impl ResourceProvider for RouteTableAssociation {
    fn kind(&self) -> ResourceKind {
        ResourceKind::RouteTableAssociation
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let out = ctx
            .aws
            .ec2
            .describe_route_tables()
            .filters(
                Filter::builder()
                    .name("association.route-table-association-id")
                    .values(id)
                    .build(),
            )
            .send()
            .await
            .map_err(classify)?;
        let association = out
            .route_tables()
            .iter()
            .flat_map(|t| t.associations())
            .find(|a| a.route_table_association_id() == Some(id));
        Ok(association.and_then(|a| {
            json!({
                "route_table_id": a.route_table_id(),
                "subnet_id": a.subnet_id(),
            })
            .as_object()
            .cloned()
        }))
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let subnet_id = str_attr(desired, "subnet_id")?;
        let table = route_table(ctx, str_attr(desired, "route_table_id")?).await?;
        Ok(table.and_then(|t| {
            t.associations()
                .iter()
                .find(|a| a.subnet_id() == Some(subnet_id))
                .and_then(|a| a.route_table_association_id())
                .map(str::to_string)
        }))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let created = ctx
            .aws
            .ec2
            .associate_route_table()
            .route_table_id(str_attr(desired, "route_table_id")?)
            .subnet_id(str_attr(desired, "subnet_id")?)
            .send()
            .await
            .map_err(classify)
            .and_then(|out| {
                out.association_id.ok_or_else(|| {
                    ProviderError::fatal("AssociateRouteTable returned no association id")
                })
            });
        // A repeat after a lost answer meets the association it made: the subnet is already
        // associated with this very table (`find`), or the conflict stands.
        adopt_on_conflict(ctx, created, &["Resource.AlreadyAssociated"], || {
            self.find(ctx, desired)
        })
        .await
    }

    /// Both attributes force a replacement: there is never anything to change in place.
    async fn update(
        &self,
        _ctx: &Ctx<'_>,
        _id: &str,
        _prior: &Attrs,
        _desired: &Attrs,
    ) -> ProviderResult<()> {
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        gone_is_fine(
            ctx.aws
                .ec2
                .disassociate_route_table()
                .association_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}
