//! What the IAM kinds share: tags in IAM's shape, the ownership check of adoption, and the
//! managed policies attached to a role.

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::{classify, tags_value};
use crate::base::ProviderError;
use crate::providers::ProviderResult;

/// Tags as IAM takes them.
pub fn to_iam_tags(tags: impl IntoIterator<Item = (String, String)>) -> ProviderResult<Vec<Tag>> {
    tags.into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| ProviderError::fatal(format!("invalid IAM tag: {e}")))
}

/// IAM tags as the `tags` attribute.
pub fn tags_attr(tags: &[Tag]) -> Value {
    tags_value(tags.iter().map(|t| (t.key(), t.value())))
}

/// Whether IAM tags mark the object as created by `stack`.
pub fn managed_by(tags: &[Tag], stack: &str) -> bool {
    tags.iter()
        .any(|t| t.key() == "mlops:stack" && t.value() == stack)
}

/// The ARNs of the managed policies attached to `role`, every page of them. A missing role is
/// a `NotFound` error.
pub async fn attached_policy_arns(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> ProviderResult<Vec<String>> {
    let policies = iam
        .list_attached_role_policies()
        .role_name(role)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(classify)?;
    Ok(policies.into_iter().filter_map(|p| p.policy_arn).collect())
}
