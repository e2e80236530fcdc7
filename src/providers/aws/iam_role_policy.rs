//! `iam_role_policy`: one inline policy of one role, whose document the stack writes (an IRSA
//! role's access to the stack's own buckets and repositories, the cluster role's use of the
//! Secrets key). Its id is `<role name>/<policy name>`; an inline policy lives and dies with its
//! role, so adopting one that exists is safe.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::iam_role::percent_decode;
use super::{classify, gone_as_none, gone_is_fine, split_compound_id, str_attr};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct IamRolePolicy;

fn policy_id(role: &str, name: &str) -> String {
    format!("{role}/{name}")
}

/// The role name and the policy name of an id; neither can hold a `/`.
fn split_id(id: &str) -> ProviderResult<(&str, &str)> {
    split_compound_id(id, '/', "inline policy", "<role name>/<policy name>")
}

/// The live document of the policy, `None` when it or its role is gone. A document that does
/// not decode reads as its text, which differs from any desired one.
async fn document(ctx: &Ctx<'_>, role: &str, name: &str) -> ProviderResult<Option<Value>> {
    let out = gone_as_none(
        ctx.aws
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .map_err(classify),
    )?;
    Ok(out.map(|o| {
        let text = percent_decode(o.policy_document()).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(json!(text))
    }))
}

async fn put(ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
    let role = str_attr(desired, "role_name")?;
    let name = str_attr(desired, "policy_name")?;
    let policy = desired
        .get("policy")
        .ok_or_else(|| ProviderError::fatal("attribute `policy` is missing"))?;
    ctx.aws
        .iam
        .put_role_policy()
        .role_name(role)
        .policy_name(name)
        .policy_document(policy.to_string())
        .send()
        .await
        .map_err(classify)?;
    Ok(policy_id(role, name))
}

#[async_trait]
impl ResourceProvider for IamRolePolicy {
    fn kind(&self) -> ResourceKind {
        ResourceKind::IamRolePolicy
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let (role, name) = split_id(id)?;
        let Some(policy) = document(ctx, role, name).await? else {
            return Ok(None);
        };
        let attrs = json!({ "role_name": role, "policy_name": name, "policy": policy });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let role = str_attr(desired, "role_name")?;
        let name = str_attr(desired, "policy_name")?;
        Ok(document(ctx, role, name)
            .await?
            .map(|_| policy_id(role, name)))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        put(ctx, desired).await
    }

    /// `PutRolePolicy` replaces the document whole.
    async fn update(
        &self,
        ctx: &Ctx<'_>,
        _id: &str,
        _prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        put(ctx, desired).await.map(|_| ())
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        let (role, name) = split_id(id)?;
        gone_is_fine(
            ctx.aws
                .iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(name)
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
    fn ids_split_into_role_and_policy() {
        let id = policy_id("mlops-irsa-kserve-s3", "mlops-scoped");
        assert_eq!(
            split_id(&id).unwrap(),
            ("mlops-irsa-kserve-s3", "mlops-scoped")
        );
        assert!(split_id("no-slash").is_err());
    }
}
