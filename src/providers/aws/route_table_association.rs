//! `route_table_association`: the link of a subnet to its route table, which decides where the
//! subnet's traffic goes (the internet gateway for public subnets, a NAT gateway for private
//! ones). Its id is the association id, `rtbassoc-…`.

use async_trait::async_trait;
use serde_json::json;

use super::ec2::{ids_filter, ids_of, route_table, IDS_AT_ONCE};
use super::{adopt_on_conflict, classify, gone_is_fine, in_order, str_attr};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, Read, ResourceProvider};

pub struct RouteTableAssociation;

#[async_trait]
impl ResourceProvider for RouteTableAssociation {
    fn kind(&self) -> ResourceKind {
        ResourceKind::RouteTableAssociation
    }

    fn reads_at_once(&self) -> usize {
        IDS_AT_ONCE
    }

    /// One `DescribeRouteTables` for the tables that hold them all.
    async fn read_many(
        &self,
        ctx: &Ctx<'_>,
        objects: &[Read<'_>],
    ) -> ProviderResult<Vec<Option<Attrs>>> {
        let out = ctx
            .aws
            .ec2
            .describe_route_tables()
            .filters(ids_filter(
                "association.route-table-association-id",
                ids_of(objects),
            ))
            .send()
            .await
            .map_err(classify)?;
        let found = out
            .route_tables()
            .iter()
            .flat_map(|t| t.associations())
            .filter_map(|a| {
                let attrs = json!({
                    "route_table_id": a.route_table_id(),
                    "subnet_id": a.subnet_id(),
                });
                Some((
                    a.route_table_association_id()?.to_string(),
                    attrs.as_object()?.clone(),
                ))
            })
            .collect();
        Ok(in_order(objects, found))
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
