//! `eks_addon`: one EKS managed add-on of the cluster (vpc-cni, coredns, kube-proxy, the EBS CSI
//! driver). Its id is `<cluster>:<add-on>`. Unless pinned, the version is EKS's default for the
//! cluster's Kubernetes version (`DescribeAddonVersions`), chosen at create and again when that
//! version changes: an upgrade moves the add-ons after the node groups. Conflicting fields that
//! someone changed in the cluster are overwritten, as EKS's `OVERWRITE` resolution does.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eks::types::{Addon, AddonStatus, ResolveConflicts};
use serde_json::{json, Value};

use super::eks_cluster::{managed_by, sync_tags, tags_attr};
use super::eks_update::{self, Of};
use super::{classify, gone_as_none, gone_is_fine, split_compound_id, str_attr, tags_of, wait_for};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct EksAddon;

const ACTIVE_LIMIT: Duration = Duration::from_secs(20 * 60);

fn addon_id(cluster: &str, name: &str) -> String {
    format!("{cluster}:{name}")
}

fn split_id(id: &str) -> ProviderResult<(&str, &str)> {
    split_compound_id(id, ':', "add-on", "<cluster>:<add-on>")
}

async fn describe(ctx: &Ctx<'_>, cluster: &str, name: &str) -> ProviderResult<Option<Addon>> {
    let out = gone_as_none(
        ctx.aws
            .eks
            .describe_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .send()
            .await
            .map_err(classify),
    )?;
    Ok(out.and_then(|o| o.addon))
}

/// The version to install: the pinned one, or EKS's default for the Kubernetes version.
async fn version_for(ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
    if let Some(pinned) = desired.get("addon_version").and_then(Value::as_str) {
        return Ok(pinned.to_string());
    }
    let name = str_attr(desired, "addon_name")?;
    let kubernetes = str_attr(desired, "kubernetes_version")?;
    let out = ctx
        .aws
        .eks
        .describe_addon_versions()
        .addon_name(name)
        .kubernetes_version(kubernetes)
        .send()
        .await
        .map_err(classify)?;
    out.addons()
        .iter()
        .flat_map(|a| a.addon_versions())
        .find(|v| {
            v.compatibilities()
                .iter()
                .any(|c| c.default_version() && c.cluster_version() == Some(kubernetes))
        })
        .and_then(|v| v.addon_version())
        .map(str::to_string)
        .ok_or_else(|| {
            ProviderError::fatal(format!(
                "EKS names no default version of the add-on `{name}` for Kubernetes {kubernetes}"
            ))
        })
}

fn role_arn(desired: &Attrs) -> Option<String> {
    desired
        .get("service_account_role_arn")
        .and_then(Value::as_str)
        .map(str::to_string)
}

async fn wait_active(ctx: &Ctx<'_>, cluster: &str, name: &str) -> ProviderResult<()> {
    let what = "for the EKS add-on to become ACTIVE";
    wait_for(ctx, what, ACTIVE_LIMIT, || async move {
        let addon = describe(ctx, cluster, name).await?.ok_or_else(|| {
            ProviderError::fatal(format!(
                "the add-on `{name}` of cluster `{cluster}` vanished"
            ))
        })?;
        match addon.status() {
            Some(AddonStatus::Active) => Ok(Some(())),
            Some(AddonStatus::CreateFailed | AddonStatus::Degraded) => {
                let issues: Vec<&str> = addon
                    .health()
                    .map(|h| h.issues())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i.message())
                    .collect();
                Err(ProviderError::fatal(format!(
                    "the add-on `{name}` of cluster `{cluster}` is {}: {}",
                    addon.status().map_or("", AddonStatus::as_str),
                    issues.join("; ")
                )))
            }
            _ => Ok(None),
        }
    })
    .await
}

#[async_trait]
impl ResourceProvider for EksAddon {
    fn kind(&self) -> ResourceKind {
        ResourceKind::EksAddon
    }

    /// The live add-on; its version is compared only when pinned, and the Kubernetes version it
    /// was chosen for is carried over (EKS does not report it).
    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let (cluster, name) = split_id(id)?;
        let Some(addon) = describe(ctx, cluster, name).await? else {
            return Ok(None);
        };
        let pinned = prior.get("addon_version").is_some_and(|v| !v.is_null());
        let attrs = json!({
            "cluster_name": cluster,
            "addon_name": name,
            "addon_version": if pinned { json!(addon.addon_version()) } else { Value::Null },
            "kubernetes_version": prior.get("kubernetes_version").cloned().unwrap_or(Value::Null),
            "service_account_role_arn": addon.service_account_role_arn(),
            "tags": tags_attr(addon.tags()),
            "arn": addon.addon_arn(),
            "installed_version": addon.addon_version(),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let cluster = str_attr(desired, "cluster_name")?;
        let name = str_attr(desired, "addon_name")?;
        match describe(ctx, cluster, name).await? {
            None => Ok(None),
            Some(addon) if managed_by(addon.tags(), ctx.stack) => {
                wait_active(ctx, cluster, name).await?;
                Ok(Some(addon_id(cluster, name)))
            }
            Some(_) => Err(ProviderError::fatal(format!(
                "the EKS add-on `{name}` of cluster `{cluster}` exists and is not managed by stack `{}`",
                ctx.stack
            ))),
        }
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let cluster = str_attr(desired, "cluster_name")?;
        let name = str_attr(desired, "addon_name")?;
        ctx.aws
            .eks
            .create_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .addon_version(version_for(ctx, desired).await?)
            .set_service_account_role_arn(role_arn(desired))
            .resolve_conflicts(ResolveConflicts::Overwrite)
            .set_tags(Some(tags_of(desired).into_iter().collect()))
            .send()
            .await
            .map_err(classify)?;
        Ok(addon_id(cluster, name))
    }

    async fn wait_ready(&self, ctx: &Ctx<'_>, id: &str) -> ProviderResult<()> {
        let (cluster, name) = split_id(id)?;
        wait_active(ctx, cluster, name).await
    }

    /// A new version (pinned, or the default of a new Kubernetes version) or role:
    /// `UpdateAddon`, awaited by its update id.
    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let (cluster, name) = split_id(id)?;
        let differs = |a: &str| prior.get(a) != desired.get(a);
        if [
            "addon_version",
            "kubernetes_version",
            "service_account_role_arn",
        ]
        .iter()
        .any(|a| differs(a))
        {
            let out = ctx
                .aws
                .eks
                .update_addon()
                .cluster_name(cluster)
                .addon_name(name)
                .addon_version(version_for(ctx, desired).await?)
                .set_service_account_role_arn(role_arn(desired))
                .resolve_conflicts(ResolveConflicts::Overwrite)
                .send()
                .await
                .map_err(classify)?;
            let what = ("for the EKS add-on update to finish", ACTIVE_LIMIT);
            match out.update().and_then(|u| u.id()) {
                Some(update) => {
                    eks_update::wait(ctx, (cluster, Of::Addon(name)), update, what).await?
                }
                None => wait_active(ctx, cluster, name).await?,
            }
        }
        sync_tags(ctx, str_attr(prior, "arn")?, prior, desired).await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        let (cluster, name) = split_id(id)?;
        gone_is_fine(
            ctx.aws
                .eks
                .delete_addon()
                .cluster_name(cluster)
                .addon_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )?;
        wait_for(
            ctx,
            "for the EKS add-on to be deleted",
            ACTIVE_LIMIT,
            || async move { Ok(describe(ctx, cluster, name).await?.is_none().then_some(())) },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_eks::operation::create_addon::CreateAddonOutput;
    use aws_sdk_eks::operation::describe_addon_versions::DescribeAddonVersionsOutput;
    use aws_sdk_eks::operation::update_addon::UpdateAddonOutput;
    use aws_sdk_eks::types::{AddonInfo, AddonVersionInfo, Compatibility, Update};
    use aws_sdk_eks::Client;
    use aws_smithy_mocks::{mock, Rule};

    use super::*;
    use crate::providers::aws::mocks;

    const ROLE: &str = "arn:aws:iam::123456789012:role/mlops-ebs-csi-driver";

    fn desired(kubernetes: &str) -> Attrs {
        json!({
            "cluster_name": "mlops-cluster",
            "addon_name": "aws-ebs-csi-driver",
            "addon_version": null,
            "kubernetes_version": kubernetes,
            "service_account_role_arn": ROLE,
            "tags": { "mlops:stack": "mlops" },
            "arn": "arn:aws:eks:us-west-2:123456789012:addon/mlops-cluster/aws-ebs-csi-driver/1",
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    /// `DescribeAddonVersions` as EKS answers it for `kubernetes`: two versions, the older the
    /// default for that Kubernetes version.
    fn versions(kubernetes: &'static str, default: &'static str) -> Rule {
        mock!(Client::describe_addon_versions)
            .match_requests(move |r| {
                r.addon_name() == Some("aws-ebs-csi-driver")
                    && r.kubernetes_version() == Some(kubernetes)
            })
            .then_output(move || {
                let version = |v: &str, is_default: bool| {
                    AddonVersionInfo::builder()
                        .addon_version(v)
                        .compatibilities(
                            Compatibility::builder()
                                .cluster_version(kubernetes)
                                .default_version(is_default)
                                .build(),
                        )
                        .build()
                };
                DescribeAddonVersionsOutput::builder()
                    .addons(
                        AddonInfo::builder()
                            .addon_name("aws-ebs-csi-driver")
                            .addon_versions(version("v1.99.0-eksbuild.1", false))
                            .addon_versions(version(default, true))
                            .build(),
                    )
                    .build()
            })
    }

    /// moto has no EKS add-ons: with `aws-smithy-mocks`, an unpinned add-on is created at EKS's
    /// default version for the cluster's Kubernetes version, with its IRSA role and conflicts
    /// overwritten.
    #[tokio::test]
    async fn create_installs_the_default_version_for_the_clusters_kubernetes() {
        let versions = versions("1.31", "v1.38.1-eksbuild.1");
        let create = mock!(Client::create_addon)
            .match_requests(|r| {
                r.addon_version() == Some("v1.38.1-eksbuild.1")
                    && r.service_account_role_arn() == Some(ROLE)
                    && r.resolve_conflicts() == Some(&ResolveConflicts::Overwrite)
            })
            .then_output(|| CreateAddonOutput::builder().build());
        let clients = mocks::eks_clients(&[&versions, &create]);
        let id = mocks::with_ctx(&clients, "eks_addon.aws-ebs-csi-driver", async |ctx| {
            EksAddon.create(ctx, &desired("1.31")).await
        })
        .await
        .unwrap();
        assert_eq!(id, "mlops-cluster:aws-ebs-csi-driver");
        assert_eq!((versions.num_calls(), create.num_calls()), (1, 1));
    }

    /// After the cluster's upgrade, the add-on moves to the new Kubernetes version's default
    /// (`UpdateAddon`), awaited by the update's id (`DescribeUpdate` with the add-on's name).
    #[tokio::test]
    async fn a_new_kubernetes_version_moves_the_addon_to_its_default() {
        let versions = versions("1.32", "v1.40.0-eksbuild.1");
        let update = mock!(Client::update_addon)
            .match_requests(|r| r.addon_version() == Some("v1.40.0-eksbuild.1"))
            .then_output(|| {
                UpdateAddonOutput::builder()
                    .update(Update::builder().id("u-7").build())
                    .build()
            });
        let wait = mock!(Client::describe_update)
            .match_requests(|r| {
                r.addon_name() == Some("aws-ebs-csi-driver") && r.update_id() == Some("u-7")
            })
            .then_output(|| mocks::update_succeeded("u-7"));
        let clients = mocks::eks_clients(&[&versions, &update, &wait]);
        mocks::with_ctx(&clients, "eks_addon.aws-ebs-csi-driver", async |ctx| {
            EksAddon
                .update(
                    ctx,
                    "mlops-cluster:aws-ebs-csi-driver",
                    &desired("1.31"),
                    &desired("1.32"),
                )
                .await
        })
        .await
        .unwrap();
        assert_eq!(
            (versions.num_calls(), update.num_calls(), wait.num_calls()),
            (1, 1, 1)
        );
    }
}
