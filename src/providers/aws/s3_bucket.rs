//! `s3_bucket`: a model bucket. Whatever the spec says about versioning, every bucket gets
//! default encryption and all four public-access-block settings. A non-empty bucket is only
//! deleted with `force_destroy = true`, and then every object version goes first.

use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use serde_json::{json, Value};

use super::{
    adopt_on_conflict, bool_attr, classify, gone_as_none, gone_is_fine, on_new, str_attr,
    tagged_by_stack, tags_of, tags_value,
};
use crate::base::ProviderError;
use crate::model::{Attrs, Partition, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct S3Bucket;

/// The error code of a failed call, to tell "not configured" answers from real failures.
fn code_of(err: &ProviderError) -> &str {
    err.code.as_deref().unwrap_or_default()
}

async fn tags(ctx: &Ctx<'_>, bucket: &str) -> ProviderResult<Value> {
    match ctx
        .aws
        .s3
        .get_bucket_tagging()
        .bucket(bucket)
        .send()
        .await
        .map_err(classify)
    {
        Ok(out) => Ok(tags_value(
            out.tag_set().iter().map(|t| (t.key(), t.value())),
        )),
        Err(e) if code_of(&e) == "NoSuchTagSet" => Ok(json!({})),
        Err(e) => Err(e),
    }
}

/// The desired tags as S3 tags.
fn s3_tags(desired: &Attrs) -> ProviderResult<Vec<Tag>> {
    tags_of(desired)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ProviderError::fatal(format!("invalid tag: {e}")))
}

async fn put_tags(ctx: &Ctx<'_>, bucket: &str, desired: &Attrs) -> ProviderResult<()> {
    let tags = tags_of(desired);
    if tags.is_empty() {
        ctx.aws
            .s3
            .delete_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
            .map_err(classify)?;
        return Ok(());
    }
    let set = s3_tags(desired)?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(|e| ProviderError::fatal(format!("invalid tags: {e}")))?;
    ctx.aws
        .s3
        .put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

async fn put_versioning(ctx: &Ctx<'_>, bucket: &str, enabled: bool) -> ProviderResult<()> {
    let status = if enabled {
        BucketVersioningStatus::Enabled
    } else {
        BucketVersioningStatus::Suspended
    };
    ctx.aws
        .s3
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

async fn put_encryption(ctx: &Ctx<'_>, bucket: &str, algorithm: &str) -> ProviderResult<()> {
    let default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::from(algorithm))
        .build()
        .map_err(|e| ProviderError::fatal(format!("invalid encryption: {e}")))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(default)
        .build();
    let config = ServerSideEncryptionConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(|e| ProviderError::fatal(format!("invalid encryption: {e}")))?;
    ctx.aws
        .s3
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(config)
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

async fn put_public_access_block(ctx: &Ctx<'_>, bucket: &str, on: bool) -> ProviderResult<()> {
    let config = PublicAccessBlockConfiguration::builder()
        .block_public_acls(on)
        .ignore_public_acls(on)
        .block_public_policy(on)
        .restrict_public_buckets(on)
        .build();
    ctx.aws
        .s3
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(config)
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

/// Deletes every object version and delete marker, a thousand at a time.
async fn empty(ctx: &Ctx<'_>, bucket: &str) -> ProviderResult<()> {
    // A policy that denies deletes (e.g. TLS-only on an emulator) would block the emptying.
    let _ = ctx
        .aws
        .s3
        .delete_bucket_policy()
        .bucket(bucket)
        .send()
        .await;
    loop {
        let page = ctx
            .aws
            .s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(1000)
            .send()
            .await
            .map_err(classify)?;
        let versions = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            );
        let objects = versions
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key?)
                    .set_version_id(version.map(str::to_string))
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if objects.is_empty() {
            return Ok(());
        }
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| ProviderError::fatal(format!("DeleteObjects request: {e}")))?;
        let out = ctx
            .aws
            .s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(classify)?;
        if let Some(err) = out.errors().first() {
            return Err(ProviderError {
                class: crate::base::ErrorClass::Fatal,
                code: err.code().map(str::to_string),
                message: format!(
                    "could not delete `{}` while emptying the bucket: {}",
                    err.key().unwrap_or_default(),
                    err.message().unwrap_or_default()
                ),
            });
        }
    }
}

#[async_trait]
impl ResourceProvider for S3Bucket {
    fn kind(&self) -> ResourceKind {
        ResourceKind::S3Bucket
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let s3 = &ctx.aws.s3;
        let exists = gone_as_none(s3.head_bucket().bucket(id).send().await.map_err(classify))?;
        if exists.is_none() {
            return Ok(None);
        }
        let versioning = s3
            .get_bucket_versioning()
            .bucket(id)
            .send()
            .await
            .map_err(classify)?;
        let encryption = match s3
            .get_bucket_encryption()
            .bucket(id)
            .send()
            .await
            .map_err(classify)
        {
            Ok(out) => out
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| json!(d.sse_algorithm().as_str())),
            Err(e) if code_of(&e) == "ServerSideEncryptionConfigurationNotFoundError" => None,
            Err(e) => return Err(e),
        };
        let blocked = match s3
            .get_public_access_block()
            .bucket(id)
            .send()
            .await
            .map_err(classify)
        {
            Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
                [
                    c.block_public_acls(),
                    c.ignore_public_acls(),
                    c.block_public_policy(),
                    c.restrict_public_buckets(),
                ]
                .iter()
                .all(|flag| *flag == Some(true))
            }),
            Err(e) if code_of(&e) == "NoSuchPublicAccessBlockConfiguration" => false,
            Err(e) => return Err(e),
        };
        let attrs = json!({
            "bucket": id,
            "versioning": versioning.status() == Some(&BucketVersioningStatus::Enabled),
            "encryption": encryption,
            "block_public_access": blocked,
            // Not an S3 setting: what mlops does on destroy, kept from the spec.
            "force_destroy": bool_attr(prior, "force_destroy"),
            "tags": tags(ctx, id).await?,
            "arn": Partition::of(&ctx.aws.region).bucket_arn(id, false),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let bucket = str_attr(desired, "bucket")?;
        let exists = gone_as_none(
            ctx.aws
                .s3
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(classify),
        )?;
        if exists.is_none() {
            return Ok(None);
        }
        let tags = tags(ctx, bucket).await?;
        if tagged_by_stack(Some(&tags), ctx.stack) {
            Ok(Some(bucket.to_string()))
        } else {
            Err(ProviderError::fatal(format!(
                "a bucket named `{bucket}` already exists in this account and is not managed by stack `{}`; choose another name",
                ctx.stack
            )))
        }
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let bucket = str_attr(desired, "bucket")?;
        // Tags with the create, so that a bucket whose create answer was lost is known as
        // this stack's.
        let mut configuration =
            CreateBucketConfiguration::builder().set_tags(Some(s3_tags(desired)?));
        // us-east-1 is the one region that takes no location constraint.
        if ctx.aws.region != "us-east-1" {
            configuration = configuration
                .location_constraint(BucketLocationConstraint::from(ctx.aws.region.as_str()));
        }
        let created = ctx
            .aws
            .s3
            .create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(configuration.build())
            .send()
            .await
            .map(|_| bucket.to_string())
            .map_err(classify);
        // A repeat after a lost answer meets the bucket it made: adopted when tagged as this
        // stack's (`find`), and only then.
        adopt_on_conflict(ctx, created, &["BucketAlreadyOwnedByYou"], || {
            self.find(ctx, desired)
        })
        .await?;
        // The tags again, for endpoints that do not take them with the create; first, as they
        // make the bucket ours if anything below fails.
        on_new(ctx, bucket, || put_tags(ctx, bucket, desired)).await?;
        let block = bool_attr(desired, "block_public_access");
        on_new(ctx, bucket, || put_public_access_block(ctx, bucket, block)).await?;
        let encryption = str_attr(desired, "encryption")?;
        on_new(ctx, bucket, || put_encryption(ctx, bucket, encryption)).await?;
        if bool_attr(desired, "versioning") {
            on_new(ctx, bucket, || put_versioning(ctx, bucket, true)).await?;
        }
        Ok(bucket.to_string())
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let changed = |name: &str| prior.get(name) != desired.get(name);
        if changed("versioning") {
            put_versioning(ctx, id, bool_attr(desired, "versioning")).await?;
        }
        if changed("encryption") {
            put_encryption(ctx, id, str_attr(desired, "encryption")?).await?;
        }
        if changed("block_public_access") {
            put_public_access_block(ctx, id, bool_attr(desired, "block_public_access")).await?;
        }
        if changed("tags") {
            put_tags(ctx, id, desired).await?;
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<()> {
        if bool_attr(prior, "force_destroy") {
            gone_is_fine(empty(ctx, id).await)?;
        }
        gone_is_fine(
            ctx.aws
                .s3
                .delete_bucket()
                .bucket(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}
