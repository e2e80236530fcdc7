//! What the EC2 kinds share: tags at create time, ownership filters for adoption, tag
//! updates, and the route table lookup of the routing kinds.

use aws_sdk_ec2::types::{Filter, ResourceType, RouteTable, Tag, TagSpecification};

use super::{classify, gone_as_none, sync_tags_with, tags_of, tags_value};
use crate::model::Attrs;
use crate::providers::{Ctx, ProviderResult, Read};
use serde_json::Value;

/// The tags of `attrs`, to be set when the object is created.
pub fn tag_spec(kind: ResourceType, attrs: &Attrs) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(to_ec2(tags_of(attrs))))
        .build()
}

fn to_ec2(tags: impl IntoIterator<Item = (String, String)>) -> Vec<Tag> {
    tags.into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Filters that match the objects this resource created: its stack and address tags.
pub fn owned_by(ctx: &Ctx<'_>) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name("tag:mlops:stack")
            .values(ctx.stack)
            .build(),
        Filter::builder()
            .name("tag:mlops:address")
            .values(ctx.address.as_str())
            .build(),
    ]
}

/// Whether `tags` mark the object as this resource's, for APIs that ignore tag filters (moto's
/// DescribeNatGateways).
pub fn is_owned(ctx: &Ctx<'_>, tags: &[Tag]) -> bool {
    let has = |key: &str, value: &str| {
        tags.iter()
            .any(|t| t.key() == Some(key) && t.value() == Some(value))
    };
    has("mlops:stack", ctx.stack) && has("mlops:address", ctx.address.as_str())
}

/// EC2 tags as the `tags` attribute.
pub fn tags_attr(tags: &[Tag]) -> Value {
    tags_value(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

/// Sets and removes tags so that `id` carries the desired ones.
pub async fn sync_tags(
    ctx: &Ctx<'_>,
    id: &str,
    prior: &Attrs,
    desired: &Attrs,
) -> ProviderResult<()> {
    let ec2 = &ctx.aws.ec2;
    sync_tags_with(
        prior,
        desired,
        async |set| {
            ec2.create_tags()
                .resources(id)
                .set_tags(Some(to_ec2(set)))
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        },
        async |remove| {
            let keys = remove.into_iter().map(|k| Tag::builder().key(k).build());
            ec2.delete_tags()
                .resources(id)
                .set_tags(Some(keys.collect()))
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        },
    )
    .await
}

/// How many ids one describe takes in a filter: EC2 takes up to 200 values in one.
pub const IDS_AT_ONCE: usize = 200;

/// A filter of a describe on `name` (`subnet-id`, `route-table-id`...) with `ids`. Unlike a
/// describe by ids, which fails whole when one of them is gone, a describe with this filter
/// answers for those that exist and leaves the others out, so many objects are read with one
/// request.
pub fn ids_filter<'a>(name: &str, ids: impl IntoIterator<Item = &'a str>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(ids.into_iter().map(str::to_string).collect()))
        .build()
}

/// The ids of `objects`.
pub fn ids_of<'a>(objects: &'a [Read<'_>]) -> impl Iterator<Item = &'a str> {
    objects.iter().map(|o| o.id)
}

/// The route tables `ids` that exist, with one request.
pub async fn route_tables<'a>(
    ctx: &Ctx<'_>,
    ids: impl IntoIterator<Item = &'a str>,
) -> ProviderResult<Vec<RouteTable>> {
    let out = ctx
        .aws
        .ec2
        .describe_route_tables()
        .filters(ids_filter("route-table-id", ids))
        .send()
        .await
        .map_err(classify)?;
    Ok(out.route_tables.unwrap_or_default())
}

/// The route table `id`, or `None` when it no longer exists. By id, not by filter: EC2 answers
/// NotFound for a table it has not caught up with yet, which the read-back after a create
/// retries, so that no later call names a table EC2 does not know.
pub async fn route_table(ctx: &Ctx<'_>, id: &str) -> ProviderResult<Option<RouteTable>> {
    let out = gone_as_none(
        ctx.aws
            .ec2
            .describe_route_tables()
            .route_table_ids(id)
            .send()
            .await
            .map_err(classify),
    )?;
    Ok(out.and_then(|o| o.route_tables.and_then(|t| t.into_iter().next())))
}
