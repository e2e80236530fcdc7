//! `eks_access_entry`: cluster-admin access for a principal of `[eks] admin_arns`, as an EKS
//! access entry with `AmazonEKSClusterAdminPolicy` on the whole cluster. The cluster's creator
//! is admin already (`bootstrapClusterCreatorAdminPermissions`); this gives others the same
//! without editing the `aws-auth` ConfigMap.
//!
//! The id is the principal's ARN; the cluster comes from the attributes.

use async_trait::async_trait;
use aws_sdk_eks::types::{AccessScope, AccessScopeType};
use serde_json::{json, Value};

use super::eks_cluster::{managed_by, sync_tags, tags_attr};
use super::{adopt_on_conflict, classify, gone_as_none, gone_is_fine, on_new, str_attr, tags_of};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct EksAccessEntry;

/// Whether `policy` is associated with the entry of `principal`.
async fn has_policy(
    ctx: &Ctx<'_>,
    cluster: &str,
    principal: &str,
    policy: &str,
) -> ProviderResult<bool> {
    let mut pages = ctx
        .aws
        .eks
        .list_associated_access_policies()
        .cluster_name(cluster)
        .principal_arn(principal)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(classify)?;
        if page
            .associated_access_policies()
            .iter()
            .any(|p| p.policy_arn() == Some(policy))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn associate(
    ctx: &Ctx<'_>,
    cluster: &str,
    principal: &str,
    policy: &str,
) -> ProviderResult<()> {
    ctx.aws
        .eks
        .associate_access_policy()
        .cluster_name(cluster)
        .principal_arn(principal)
        .policy_arn(policy)
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Cluster)
                .build(),
        )
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl ResourceProvider for EksAccessEntry {
    fn kind(&self) -> ResourceKind {
        ResourceKind::EksAccessEntry
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let cluster = str_attr(prior, "cluster_name")?;
        let out = gone_as_none(
            ctx.aws
                .eks
                .describe_access_entry()
                .cluster_name(cluster)
                .principal_arn(id)
                .send()
                .await
                .map_err(classify),
        )?;
        let Some(entry) = out.and_then(|o| o.access_entry) else {
            return Ok(None);
        };
        let wanted = str_attr(prior, "policy_arn")?;
        let policy = if has_policy(ctx, cluster, id, wanted).await? {
            json!(wanted)
        } else {
            Value::Null
        };
        let attrs = json!({
            "cluster_name": cluster,
            "principal_arn": id,
            "policy_arn": policy,
            "tags": tags_attr(entry.tags()),
            "arn": entry.access_entry_arn(),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let principal = str_attr(desired, "principal_arn")?;
        let out = gone_as_none(
            ctx.aws
                .eks
                .describe_access_entry()
                .cluster_name(str_attr(desired, "cluster_name")?)
                .principal_arn(principal)
                .send()
                .await
                .map_err(classify),
        )?;
        match out.and_then(|o| o.access_entry) {
            None => Ok(None),
            Some(entry) if managed_by(entry.tags(), ctx.stack) => Ok(Some(principal.to_string())),
            Some(_) => Err(ProviderError::fatal(format!(
                "the cluster already has an access entry for `{principal}` that stack `{}` did not create; delete it or remove the ARN from `admin_arns`",
                ctx.stack
            ))),
        }
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let cluster = str_attr(desired, "cluster_name")?;
        let principal = str_attr(desired, "principal_arn")?;
        let created = ctx
            .aws
            .eks
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .set_tags(Some(tags_of(desired).into_iter().collect()))
            .send()
            .await
            .map(|_| principal.to_string())
            .map_err(classify);
        // A repeat after a lost answer meets the entry it made: adopted when tagged as this
        // stack's (`find`), and only then.
        adopt_on_conflict(ctx, created, &["ResourceInUseException"], || {
            self.find(ctx, desired)
        })
        .await?;
        let policy = str_attr(desired, "policy_arn")?;
        // EKS may not know the new entry yet: `AssociateAccessPolicy` retries NotFound.
        on_new(ctx, principal, || {
            associate(ctx, cluster, principal, policy)
        })
        .await?;
        Ok(principal.to_string())
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let cluster = str_attr(desired, "cluster_name")?;
        if prior.get("policy_arn") != desired.get("policy_arn") {
            associate(ctx, cluster, id, str_attr(desired, "policy_arn")?).await?;
        }
        if prior.get("tags") != desired.get("tags") {
            sync_tags(ctx, str_attr(prior, "arn")?, prior, desired).await?;
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<()> {
        // Deleting the entry removes its policy associations with it.
        gone_is_fine(
            ctx.aws
                .eks
                .delete_access_entry()
                .cluster_name(str_attr(prior, "cluster_name")?)
                .principal_arn(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
    }
}

/// The calls against stubbed EKS responses: the AWS emulator has no access entries, so these
/// tests check the requests mlops sends and how it reads the answers.
#[cfg(test)]
mod tests {

    use aws_sdk_eks::operation::associate_access_policy::AssociateAccessPolicyOutput;
    use aws_sdk_eks::operation::create_access_entry::CreateAccessEntryOutput;
    use aws_sdk_eks::operation::delete_access_entry::DeleteAccessEntryOutput;
    use aws_sdk_eks::operation::describe_access_entry::{
        DescribeAccessEntryError, DescribeAccessEntryOutput,
    };
    use aws_sdk_eks::operation::list_associated_access_policies::ListAssociatedAccessPoliciesOutput;
    use aws_sdk_eks::types::error::ResourceNotFoundException;
    use aws_sdk_eks::types::{AccessEntry, AssociatedAccessPolicy};
    use aws_sdk_eks::Client;
    use aws_smithy_mocks::{mock, Rule};

    use super::*;
    use crate::providers::aws::{mocks, Clients};

    const CLUSTER: &str = "mlops-cluster";
    const ADMIN: &str = "arn:aws:iam::123456789012:role/platform-admin";
    const POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";

    fn clients(rules: &[&Rule]) -> Clients {
        mocks::eks_clients(rules)
    }

    fn desired() -> Attrs {
        json!({
            "cluster_name": CLUSTER,
            "principal_arn": ADMIN,
            "policy_arn": POLICY,
            "tags": { "mlops:stack": "mlops", "mlops:address": "eks_access_entry.platform-admin" },
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn entry(stack: &str) -> AccessEntry {
        AccessEntry::builder()
            .principal_arn(ADMIN)
            .access_entry_arn(
                "arn:aws:eks:us-west-2:123456789012:access-entry/mlops-cluster/role/x",
            )
            .tags("mlops:stack", stack)
            .build()
    }

    async fn with_ctx<T>(clients: &Clients, f: impl AsyncFnOnce(&Ctx<'_>) -> T) -> T {
        mocks::with_ctx(clients, "eks_access_entry.platform-admin", f).await
    }

    #[tokio::test]
    async fn create_makes_the_entry_then_gives_it_cluster_admin_on_the_whole_cluster() {
        let create = mock!(Client::create_access_entry)
            .match_requests(|r| {
                r.cluster_name() == Some(CLUSTER)
                    && r.principal_arn() == Some(ADMIN)
                    && r.tags()
                        .and_then(|t| t.get("mlops:stack"))
                        .map(String::as_str)
                        == Some("mlops")
            })
            .then_output(|| CreateAccessEntryOutput::builder().build());
        let associate = mock!(Client::associate_access_policy)
            .match_requests(|r| {
                r.policy_arn() == Some(POLICY)
                    && r.access_scope().and_then(|s| s.r#type()) == Some(&AccessScopeType::Cluster)
            })
            .then_output(|| AssociateAccessPolicyOutput::builder().build());
        let clients = clients(&[&create, &associate]);
        let id = with_ctx(&clients, async |ctx| {
            EksAccessEntry.create(ctx, &desired()).await
        })
        .await
        .unwrap();
        assert_eq!(id, ADMIN);
        assert_eq!((create.num_calls(), associate.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn read_reports_a_missing_policy_and_a_gone_entry() {
        let describe = mock!(Client::describe_access_entry).then_output(|| {
            DescribeAccessEntryOutput::builder()
                .access_entry(entry("mlops"))
                .build()
        });
        let policies = mock!(Client::list_associated_access_policies).then_output(|| {
            ListAssociatedAccessPoliciesOutput::builder()
                .associated_access_policies(
                    AssociatedAccessPolicy::builder()
                        .policy_arn("arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")
                        .build(),
                )
                .build()
        });
        let clients = clients(&[&describe, &policies]);
        let live = with_ctx(&clients, async |ctx| {
            EksAccessEntry.read(ctx, ADMIN, &desired()).await
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            live["policy_arn"],
            Value::Null,
            "only a view policy is associated"
        );
        assert_eq!(live["tags"]["mlops:stack"], "mlops");

        // As the SDK builds it from a 404 answer: the code travels in the error metadata.
        let gone = mock!(Client::describe_access_entry).then_error(|| {
            let meta = aws_smithy_types::error::ErrorMetadata::builder()
                .code("ResourceNotFoundException")
                .message("no entry")
                .build();
            DescribeAccessEntryError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("no entry")
                    .meta(meta)
                    .build(),
            )
        });
        let clients = self::clients(&[&gone]);
        let live = with_ctx(&clients, async |ctx| {
            EksAccessEntry.read(ctx, ADMIN, &desired()).await
        })
        .await;
        assert_eq!(live.unwrap(), None);
    }

    #[tokio::test]
    async fn an_entry_made_by_someone_else_is_not_adopted() {
        let describe = mock!(Client::describe_access_entry).then_output(|| {
            DescribeAccessEntryOutput::builder()
                .access_entry(entry("other"))
                .build()
        });
        let clients = clients(&[&describe]);
        let err = with_ctx(&clients, async |ctx| {
            EksAccessEntry.find(ctx, &desired()).await
        })
        .await
        .unwrap_err();
        assert!(
            err.message.contains("that stack `mlops` did not create"),
            "{err}"
        );

        let ours = mock!(Client::describe_access_entry).then_output(|| {
            DescribeAccessEntryOutput::builder()
                .access_entry(entry("mlops"))
                .build()
        });
        let clients = self::clients(&[&ours]);
        let found = with_ctx(&clients, async |ctx| {
            EksAccessEntry.find(ctx, &desired()).await
        })
        .await;
        assert_eq!(found.unwrap().as_deref(), Some(ADMIN));
    }

    #[tokio::test]
    async fn delete_removes_the_entry_of_the_right_cluster() {
        let delete = mock!(Client::delete_access_entry)
            .match_requests(|r| {
                r.cluster_name() == Some(CLUSTER) && r.principal_arn() == Some(ADMIN)
            })
            .then_output(|| DeleteAccessEntryOutput::builder().build());
        let clients = clients(&[&delete]);
        with_ctx(&clients, async |ctx| {
            EksAccessEntry.delete(ctx, ADMIN, &desired()).await
        })
        .await
        .unwrap();
        assert_eq!(delete.num_calls(), 1);
    }
}
