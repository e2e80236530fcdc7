//! `ecr_repository`: an image repository for model servers, with scan on push, tag
//! mutability and an optional lifecycle rule that keeps the last N images.

use async_trait::async_trait;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability, Tag};
use serde_json::{json, Value};

use super::{
    adopt_on_conflict, bool_attr, classify, gone_as_none, gone_is_fine, on_new, str_attr,
    sync_tags_with, tagged_by_stack, tags_of, tags_value,
};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct EcrRepository;

/// What `keep_last_images` reads back as when the repository has a policy mlops did not write.
const FOREIGN_POLICY: &str = "<lifecycle policy not written by mlops>";

fn lifecycle_policy(keep: i64) -> String {
    json!({
        "rules": [{
            "rulePriority": 1,
            "description": format!("keep the last {keep} images"),
            "selection": { "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep },
            "action": { "type": "expire" }
        }]
    })
    .to_string()
}

/// The `keep_last_images` a policy text stands for: its count when it is the one rule mlops
/// writes, a marker otherwise (so the difference shows in a plan).
fn keep_from_policy(text: &str) -> Value {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let count = parsed.as_ref().and_then(|p| {
        let rules = p.get("rules")?.as_array()?;
        let [rule] = rules.as_slice() else {
            return None;
        };
        let keep = rule.pointer("/selection/countNumber")?.as_i64()?;
        let ours: Value = serde_json::from_str(&lifecycle_policy(keep)).ok()?;
        (&ours == p).then_some(keep)
    });
    count.map_or(json!(FOREIGN_POLICY), |k| json!(k))
}

fn to_ecr_tags(tags: impl IntoIterator<Item = (String, String)>) -> ProviderResult<Vec<Tag>> {
    tags.into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| ProviderError::fatal(format!("invalid tag: {e}")))
}

async fn put_lifecycle(ctx: &Ctx<'_>, name: &str, keep: Option<i64>) -> ProviderResult<()> {
    let ecr = &ctx.aws.ecr;
    match keep {
        Some(keep) => {
            ecr.put_lifecycle_policy()
                .repository_name(name)
                .lifecycle_policy_text(lifecycle_policy(keep))
                .send()
                .await
                .map_err(classify)?;
        }
        None => gone_is_fine(
            ecr.delete_lifecycle_policy()
                .repository_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
                .map_err(|e| match e.code.as_deref() {
                    // No policy to delete is what we want.
                    Some("LifecyclePolicyNotFoundException") => ProviderError {
                        class: crate::base::ErrorClass::NotFound,
                        ..e
                    },
                    _ => e,
                }),
        )?,
    }
    Ok(())
}

#[async_trait]
impl ResourceProvider for EcrRepository {
    fn kind(&self) -> ResourceKind {
        ResourceKind::EcrRepository
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let ecr = &ctx.aws.ecr;
        let out = gone_as_none(
            ecr.describe_repositories()
                .repository_names(id)
                .send()
                .await
                .map_err(classify),
        )?;
        let Some(repo) = out.and_then(|o| o.repositories.and_then(|r| r.into_iter().next())) else {
            return Ok(None);
        };
        let arn = repo
            .repository_arn()
            .ok_or_else(|| ProviderError::fatal("DescribeRepositories returned no ARN"))?;
        let tags = ecr
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(classify)?;
        let keep = match ecr
            .get_lifecycle_policy()
            .repository_name(id)
            .send()
            .await
            .map_err(classify)
        {
            Ok(out) => keep_from_policy(out.lifecycle_policy_text().unwrap_or_default()),
            Err(e) if e.code.as_deref() == Some("LifecyclePolicyNotFoundException") => Value::Null,
            Err(e) => return Err(e),
        };
        let attrs = json!({
            "name": id,
            "image_tag_mutability": repo.image_tag_mutability().map(|m| m.as_str()),
            "scan_on_push": repo.image_scanning_configuration().is_some_and(|c| c.scan_on_push()),
            "keep_last_images": keep,
            // Not an ECR setting: what mlops does on destroy, kept from the spec.
            "force_delete": bool_attr(prior, "force_delete"),
            "tags": tags_value(tags.tags().iter().map(|t| (t.key(), t.value()))),
            "arn": arn,
            "repository_url": repo.repository_uri(),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let name = str_attr(desired, "name")?;
        let Some(live) = self.read(ctx, name, desired).await? else {
            return Ok(None);
        };
        if tagged_by_stack(live.get("tags"), ctx.stack) {
            Ok(Some(name.to_string()))
        } else {
            Err(ProviderError::fatal(format!(
                "an ECR repository named `{name}` already exists and is not managed by stack `{}`",
                ctx.stack
            )))
        }
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let name = str_attr(desired, "name")?;
        let created = ctx
            .aws
            .ecr
            .create_repository()
            .repository_name(name)
            .image_tag_mutability(ImageTagMutability::from(str_attr(
                desired,
                "image_tag_mutability",
            )?))
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(bool_attr(desired, "scan_on_push"))
                    .build(),
            )
            .set_tags(Some(to_ecr_tags(tags_of(desired))?))
            .send()
            .await
            .map(|_| name.to_string())
            .map_err(classify);
        // A repeat after a lost answer meets the repository it made: adopted when tagged as
        // this stack's (`find`), and only then.
        adopt_on_conflict(ctx, created, &["RepositoryAlreadyExistsException"], || {
            self.find(ctx, desired)
        })
        .await?;
        let keep = desired.get("keep_last_images").and_then(Value::as_i64);
        if keep.is_some() {
            on_new(ctx, name, || put_lifecycle(ctx, name, keep)).await?;
        }
        Ok(name.to_string())
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let ecr = &ctx.aws.ecr;
        let changed = |name: &str| prior.get(name) != desired.get(name);
        if changed("image_tag_mutability") {
            ecr.put_image_tag_mutability()
                .repository_name(id)
                .image_tag_mutability(ImageTagMutability::from(str_attr(
                    desired,
                    "image_tag_mutability",
                )?))
                .send()
                .await
                .map_err(classify)?;
        }
        if changed("scan_on_push") {
            ecr.put_image_scanning_configuration()
                .repository_name(id)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(bool_attr(desired, "scan_on_push"))
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?;
        }
        if changed("keep_last_images") {
            put_lifecycle(
                ctx,
                id,
                desired.get("keep_last_images").and_then(Value::as_i64),
            )
            .await?;
        }
        let arn = str_attr(prior, "arn")?;
        sync_tags_with(
            prior,
            desired,
            async |set| {
                ecr.tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(to_ecr_tags(set)?))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
            async |remove| {
                ecr.untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            },
        )
        .await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<()> {
        gone_is_fine(
            ctx.aws
                .ecr
                .delete_repository()
                .repository_name(id)
                .force(bool_attr(prior, "force_delete"))
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_policy_round_trips_and_foreign_policies_show() {
        assert_eq!(keep_from_policy(&lifecycle_policy(30)), json!(30));
        let foreign = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;
        assert_eq!(keep_from_policy(foreign), json!(FOREIGN_POLICY));
        assert_eq!(keep_from_policy("not json"), json!(FOREIGN_POLICY));
    }
}
