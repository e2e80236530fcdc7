//! `iam_role_policy_attachment`: one managed policy attached to one role. Its id is
//! `<role name>/<policy ARN>`.

use async_trait::async_trait;
use serde_json::json;

use super::iam::attached_policy_arns;
use super::{classify, gone_as_none, gone_is_fine, in_order, split_compound_id, str_attr};
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, Read, ResourceProvider};

/// How many attachments one `read_many` reads: one `ListAttachedRolePolicies` per role answers
/// for every attachment of that role.
const READS_AT_ONCE: usize = 100;

pub struct IamRolePolicyAttachment;

fn attachment_id(role: &str, policy_arn: &str) -> String {
    format!("{role}/{policy_arn}")
}

/// The role name and the policy ARN of an id. Role names cannot hold a `/` but policy ARNs
/// do, so the id splits at its first one.
fn split_id(id: &str) -> ProviderResult<(&str, &str)> {
    split_compound_id(id, '/', "policy attachment", "<role name>/<policy ARN>")
}

/// Whether `policy_arn` is attached to `role`; `false` when the role is gone.
async fn is_attached(ctx: &Ctx<'_>, role: &str, policy_arn: &str) -> ProviderResult<bool> {
    let attached = gone_as_none(attached_policy_arns(&ctx.aws.iam, role).await)?;
    Ok(attached.is_some_and(|arns| arns.iter().any(|a| a == policy_arn)))
}

#[async_trait]
impl ResourceProvider for IamRolePolicyAttachment {
    fn kind(&self) -> ResourceKind {
        ResourceKind::IamRolePolicyAttachment
    }

    fn reads_at_once(&self) -> usize {
        READS_AT_ONCE
    }

    /// One `ListAttachedRolePolicies` per role, all at once.
    async fn read_many(
        &self,
        ctx: &Ctx<'_>,
        objects: &[Read<'_>],
    ) -> ProviderResult<Vec<Option<Attrs>>> {
        let mut roles = objects
            .iter()
            .map(|o| split_id(o.id).map(|(role, _)| role))
            .collect::<ProviderResult<Vec<_>>>()?;
        roles.sort_unstable();
        roles.dedup();
        let attached = futures::future::try_join_all(roles.into_iter().map(|role| async move {
            let arns = gone_as_none(attached_policy_arns(&ctx.aws.iam, role).await)?;
            Ok::<_, crate::providers::ProviderError>((role, arns.unwrap_or_default()))
        }))
        .await?;
        let found = attached
            .iter()
            .flat_map(|(role, arns)| arns.iter().map(move |arn| (*role, arn.as_str())))
            .filter_map(|(role, arn)| {
                let attrs = json!({ "role_name": role, "policy_arn": arn });
                Some((attachment_id(role, arn), attrs.as_object()?.clone()))
            })
            .collect();
        Ok(in_order(objects, found))
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let role = str_attr(desired, "role_name")?;
        let policy_arn = str_attr(desired, "policy_arn")?;
        Ok(is_attached(ctx, role, policy_arn)
            .await?
            .then(|| attachment_id(role, policy_arn)))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let role = str_attr(desired, "role_name")?;
        let policy_arn = str_attr(desired, "policy_arn")?;
        ctx.aws
            .iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .send()
            .await
            .map_err(classify)?;
        Ok(attachment_id(role, policy_arn))
    }

    /// Both attributes force a replacement: there is never anything to update.
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
        let (role, policy_arn) = split_id(id)?;
        gone_is_fine(
            ctx.aws
                .iam
                .detach_role_policy()
                .role_name(role)
                .policy_arn(policy_arn)
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
    fn ids_split_at_the_first_slash() {
        let arn = "arn:aws:iam::123456789012:policy/team/ml/ReadModels";
        let id = attachment_id("mlops-eks-node", arn);
        assert_eq!(split_id(&id).unwrap(), ("mlops-eks-node", arn));
    }

    #[test]
    fn an_id_without_a_slash_is_refused() {
        let err = split_id("mlops-eks-node").unwrap_err();
        assert!(err.message.contains("malformed"), "{err}");
    }
}
