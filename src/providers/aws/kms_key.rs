//! `kms_key`: the customer-managed KMS key that envelope-encrypts the cluster's Secrets, named
//! by an alias (`alias/<stack>-eks-secrets`) so that a lost state finds it again. Its id is the
//! key id. A destroy schedules the key's deletion with KMS's longest waiting period (30 days),
//! during which `aws kms cancel-key-deletion` brings it back: what it encrypted may be needed.

use async_trait::async_trait;
use aws_sdk_kms::types::{KeyMetadata, KeyState, Tag};
use serde_json::{json, Value};

use super::{bool_attr, classify, gone_as_none, gone_is_fine, str_attr, sync_tags_with, tags_of};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct KmsKey;

/// Days KMS waits before deleting a key scheduled for deletion: the most it allows.
const DELETION_WINDOW_DAYS: i32 = 30;

/// The key's metadata, `None` when it does not exist or is scheduled for deletion (gone, as
/// far as the stack is concerned).
async fn describe(ctx: &Ctx<'_>, key: &str) -> ProviderResult<Option<KeyMetadata>> {
    let out = gone_as_none(
        ctx.aws
            .kms
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(classify),
    )?;
    Ok(out
        .and_then(|o| o.key_metadata)
        .filter(|m| !matches!(m.key_state(), Some(KeyState::PendingDeletion))))
}

async fn tags(ctx: &Ctx<'_>, id: &str) -> ProviderResult<Vec<Tag>> {
    ctx.aws
        .kms
        .list_resource_tags()
        .key_id(id)
        .send()
        .await
        .map(|o| o.tags.unwrap_or_default())
        .map_err(classify)
}

fn to_kms_tags(tags: impl IntoIterator<Item = (String, String)>) -> ProviderResult<Vec<Tag>> {
    tags.into_iter()
        .map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| ProviderError::fatal(format!("invalid KMS tag: {e}")))
}

/// The key's alias among its aliases: `preferred` when it has it, else its first one.
async fn alias_of(ctx: &Ctx<'_>, id: &str, preferred: Option<&str>) -> ProviderResult<Value> {
    let aliases = ctx
        .aws
        .kms
        .list_aliases()
        .key_id(id)
        .send()
        .await
        .map_err(classify)?;
    let names: Vec<&str> = aliases
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    let alias = names
        .iter()
        .find(|n| Some(**n) == preferred)
        .or(names.first());
    Ok(json!(alias))
}

async fn set_alias(ctx: &Ctx<'_>, id: &str, alias: &str) -> ProviderResult<()> {
    ctx.aws
        .kms
        .create_alias()
        .alias_name(alias)
        .target_key_id(id)
        .send()
        .await
        .map(|_| ())
        .map_err(classify)
}

async fn delete_alias(ctx: &Ctx<'_>, alias: &str) -> ProviderResult<()> {
    gone_is_fine(
        ctx.aws
            .kms
            .delete_alias()
            .alias_name(alias)
            .send()
            .await
            .map(|_| ())
            .map_err(classify),
    )
}

async fn set_rotation(ctx: &Ctx<'_>, id: &str, enabled: bool) -> ProviderResult<()> {
    let kms = &ctx.aws.kms;
    if enabled {
        kms.enable_key_rotation()
            .key_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    } else {
        kms.disable_key_rotation()
            .key_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

#[async_trait]
impl ResourceProvider for KmsKey {
    fn kind(&self) -> ResourceKind {
        ResourceKind::KmsKey
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(key) = describe(ctx, id).await? else {
            return Ok(None);
        };
        let rotation = ctx
            .aws
            .kms
            .get_key_rotation_status()
            .key_id(id)
            .send()
            .await
            .map_err(classify)?;
        let tags = tags(ctx, id).await?;
        let attrs = json!({
            "alias": alias_of(ctx, id, prior.get("alias").and_then(Value::as_str)).await?,
            "description": key.description(),
            "enable_key_rotation": rotation.key_rotation_enabled(),
            "tags": super::tags_value(tags.iter().map(|t| (t.tag_key(), t.tag_value()))),
            "arn": key.arn(),
        });
        Ok(attrs.as_object().cloned())
    }

    /// The key the alias points to, when it carries this stack's tag.
    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let alias = str_attr(desired, "alias")?;
        let Some(key) = describe(ctx, alias).await? else {
            return Ok(None);
        };
        let id = key.key_id().to_string();
        let ours = tags(ctx, &id)
            .await?
            .iter()
            .any(|t| t.tag_key() == "mlops:stack" && t.tag_value() == ctx.stack);
        if !ours {
            return Err(ProviderError::fatal(format!(
                "the KMS alias `{alias}` names a key not managed by stack `{}`",
                ctx.stack
            )));
        }
        Ok(Some(id))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let out = ctx
            .aws
            .kms
            .create_key()
            .description(str_attr(desired, "description")?)
            .set_tags(Some(to_kms_tags(tags_of(desired))?))
            .send()
            .await
            .map_err(classify)?;
        let id = out
            .key_metadata()
            .map(|m| m.key_id().to_string())
            .ok_or_else(|| ProviderError::fatal("CreateKey returned no key"))?;
        // The alias first: it is how a run that stops here finds the key again.
        set_alias(ctx, &id, str_attr(desired, "alias")?).await?;
        set_rotation(ctx, &id, bool_attr(desired, "enable_key_rotation")).await?;
        Ok(id)
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let kms = &ctx.aws.kms;
        if prior.get("alias") != desired.get("alias") {
            set_alias(ctx, id, str_attr(desired, "alias")?).await?;
            if let Some(old) = prior.get("alias").and_then(Value::as_str) {
                delete_alias(ctx, old).await?;
            }
        }
        if prior.get("description") != desired.get("description") {
            kms.update_key_description()
                .key_id(id)
                .description(str_attr(desired, "description")?)
                .send()
                .await
                .map_err(classify)?;
        }
        if prior.get("enable_key_rotation") != desired.get("enable_key_rotation") {
            set_rotation(ctx, id, bool_attr(desired, "enable_key_rotation")).await?;
        }
        sync_tags_with(
            prior,
            desired,
            async |set| {
                kms.tag_resource()
                    .key_id(id)
                    .set_tags(Some(to_kms_tags(set)?))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
            async |remove| {
                kms.untag_resource()
                    .key_id(id)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
        )
        .await
    }

    /// Removes the alias and schedules the key's deletion; a key already scheduled is gone.
    async fn delete(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<()> {
        if let Some(alias) = prior.get("alias").and_then(Value::as_str) {
            delete_alias(ctx, alias).await?;
        }
        if describe(ctx, id).await?.is_none() {
            return Ok(());
        }
        gone_is_fine(
            ctx.aws
                .kms
                .schedule_key_deletion()
                .key_id(id)
                .pending_window_in_days(DELETION_WINDOW_DAYS)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}
