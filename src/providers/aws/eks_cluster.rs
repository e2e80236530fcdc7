//! `eks_cluster`: the EKS control plane, with its endpoint access, authentication mode,
//! control-plane log types and the KMS key that envelope-encrypts its Secrets (which EKS can add
//! to a running cluster but never change or remove).
//! Also what the EKS kinds share: tags on an ARN and the ownership check.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eks::types::{
    AuthenticationMode, Cluster, ClusterStatus, CreateAccessConfigRequest, EncryptionConfig,
    LogSetup, LogType, Logging, Provider, Update, UpdateAccessConfigRequest, VpcConfigRequest,
};
use serde_json::{json, Value};

use super::{
    adopt_on_conflict, bool_attr, classify, cluster_sweep, gone_as_none, gone_is_fine,
    health_phrase, in_prior_order, str_attr, string_values, strings_attr, sync_tags_with, tags_of,
    tags_value, wait_for,
};
use crate::base::ProviderError;
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct EksCluster;

/// How long a cluster may take to become ACTIVE, after a create or an update.
const ACTIVE_LIMIT: Duration = Duration::from_secs(40 * 60);
const DELETE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// The attributes `UpdateClusterConfig` changes through the VPC configuration.
const ENDPOINT_ATTRS: [&str; 3] = [
    "endpoint_public_access",
    "endpoint_private_access",
    "public_access_cidrs",
];

/// EKS tags as the `tags` attribute.
pub(super) fn tags_attr(tags: Option<&HashMap<String, String>>) -> Value {
    tags_value(
        tags.into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// Whether EKS tags mark the object as created by `stack`.
pub(super) fn managed_by(tags: Option<&HashMap<String, String>>, stack: &str) -> bool {
    tags.and_then(|t| t.get("mlops:stack"))
        .is_some_and(|s| s == stack)
}

/// Sets and removes tags on the EKS object `arn` so that it carries the desired ones.
pub(super) async fn sync_tags(
    ctx: &Ctx<'_>,
    arn: &str,
    prior: &Attrs,
    desired: &Attrs,
) -> ProviderResult<()> {
    let eks = &ctx.aws.eks;
    sync_tags_with(
        prior,
        desired,
        async |set| {
            eks.tag_resource()
                .resource_arn(arn)
                .set_tags(Some(set.into_iter().collect()))
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        },
        async |remove| {
            eks.untag_resource()
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

/// `enabled_log_types` as EKS's logging setting: those on, every other type off.
fn logging(desired: &Attrs) -> Logging {
    let enabled = strings_attr(desired, "enabled_log_types");
    let setup = |on: bool| {
        let types = LogType::values()
            .iter()
            .filter(|t| enabled.iter().any(|e| e == *t) == on)
            .map(|t| LogType::from(*t))
            .collect();
        LogSetup::builder()
            .enabled(on)
            .set_types(Some(types))
            .build()
    };
    Logging::builder()
        .cluster_logging(setup(true))
        .cluster_logging(setup(false))
        .build()
}

/// The log types a cluster has on, sorted.
fn enabled_log_types(cluster: &Cluster) -> Value {
    let mut types: Vec<&str> = cluster
        .logging()
        .map(|l| l.cluster_logging())
        .unwrap_or_default()
        .iter()
        .filter(|setup| setup.enabled() == Some(true))
        .flat_map(|setup| setup.types().iter().map(LogType::as_str))
        .collect();
    types.sort_unstable();
    types.dedup();
    json!(types)
}

/// The `encryption_key_arn` attribute as EKS's encryption of Secrets.
fn encryption(desired: &Attrs) -> Option<Vec<EncryptionConfig>> {
    let key = desired.get("encryption_key_arn").and_then(Value::as_str)?;
    Some(vec![EncryptionConfig::builder()
        .provider(Provider::builder().key_arn(key).build())
        .build()])
}

pub(crate) async fn describe(ctx: &Ctx<'_>, name: &str) -> ProviderResult<Option<Cluster>> {
    let out = gone_as_none(
        ctx.aws
            .eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(classify),
    )?;
    out.map(|o| {
        o.cluster.ok_or_else(|| {
            ProviderError::fatal(format!("DescribeCluster returned no cluster for `{name}`"))
        })
    })
    .transpose()
}

/// Waits until an update EKS reported has finished (`DescribeUpdate`); a failed or cancelled
/// update is an error with EKS's reasons. Without an update to follow (an emulator answers
/// none), waits until the cluster is ACTIVE.
async fn wait_update(ctx: &Ctx<'_>, name: &str, update: Option<&Update>) -> ProviderResult<()> {
    let what = "for the EKS cluster update to finish (AWS takes 5-30 min)";
    let Some(id) = update.and_then(Update::id) else {
        return wait_active(ctx, name, what).await;
    };
    super::eks_update::wait(
        ctx,
        (name, super::eks_update::Of::Cluster),
        id,
        (what, ACTIVE_LIMIT),
    )
    .await
}

/// The zones of the cluster's subnets, sorted: EKS keeps a cluster in the zones it was made
/// with (`ResourceKind::replaces_for`). When the subnets cannot be read (one was deleted
/// outside mlops), the zones recorded before; when they are the subnets recorded with those
/// zones, the recorded zones without a second request (a subnet never changes zone).
async fn zones_of(ctx: &Ctx<'_>, subnet_ids: &Value, prior: &Attrs) -> ProviderResult<Value> {
    let recorded = || {
        prior
            .get("availability_zones")
            .cloned()
            .unwrap_or_else(|| json!([]))
    };
    let known = prior
        .get("availability_zones")
        .and_then(Value::as_array)
        .is_some_and(|zones| !zones.is_empty());
    if known && prior.get("subnet_ids") == Some(subnet_ids) {
        return Ok(recorded());
    }
    let ids: Vec<String> = subnet_ids
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(recorded());
    }
    let out = ctx
        .aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids))
        .send()
        .await
        .map_err(classify);
    // A subnet deleted outside mlops fails the whole call: keep what was recorded.
    let Some(out) = gone_as_none(out)? else {
        return Ok(recorded());
    };
    let zones: std::collections::BTreeSet<&str> = out
        .subnets()
        .iter()
        .filter_map(|s| s.availability_zone())
        .collect();
    Ok(json!(zones))
}

/// One UpdateClusterConfig of the cluster's VPC configuration, waited for.
async fn update_vpc_config(ctx: &Ctx<'_>, name: &str, vpc: VpcConfigRequest) -> ProviderResult<()> {
    let out = ctx
        .aws
        .eks
        .update_cluster_config()
        .name(name)
        .resources_vpc_config(vpc)
        .send()
        .await
        .map_err(classify)?;
    wait_update(ctx, name, out.update()).await
}

/// EKS's health issues of a cluster (why it FAILED), each as `<code>: <message>`.
fn health_issues(cluster: &Cluster) -> Vec<String> {
    cluster
        .health()
        .map(|h| h.issues())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            format!(
                "{}: {}",
                i.code().map_or("unknown", |c| c.as_str()),
                i.message().unwrap_or("no message")
            )
        })
        .collect()
}

/// Waits until the cluster is ACTIVE; a FAILED cluster, or one that vanishes, is an error.
async fn wait_active(ctx: &Ctx<'_>, name: &str, what: &str) -> ProviderResult<()> {
    wait_for(ctx, what, ACTIVE_LIMIT, || async move {
        let cluster = describe(ctx, name).await?.ok_or_else(|| {
            ProviderError::fatal(format!(
                "the EKS cluster `{name}` vanished while waiting for it to become ACTIVE"
            ))
        })?;
        match cluster.status() {
            Some(ClusterStatus::Active) => Ok(Some(())),
            Some(ClusterStatus::Failed) => Err(ProviderError::fatal(format!(
                "the EKS cluster `{name}` FAILED: {}",
                health_phrase(&health_issues(&cluster))
            ))),
            _ => Ok(None),
        }
    })
    .await
}

impl EksCluster {
    /// Adds envelope encryption of Secrets to a running cluster (`AssociateEncryptionConfig`);
    /// EKS refuses to change or remove it, so such a change is an error before any call.
    async fn encrypt_secrets(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        live: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let (before, after) = (
            live.get("encryption_key_arn").filter(|v| !v.is_null()),
            desired.get("encryption_key_arn").filter(|v| !v.is_null()),
        );
        match (before, encryption(desired)) {
            (None, None) => Ok(()),
            (Some(b), _) if Some(b) == after => Ok(()),
            (None, Some(config)) => {
                let out = ctx
                    .aws
                    .eks
                    .associate_encryption_config()
                    .cluster_name(id)
                    .set_encryption_config(Some(config))
                    .send()
                    .await
                    .map_err(classify)?;
                wait_update(ctx, id, out.update()).await
            }
            (Some(b), _) => Err(ProviderError::fatal(format!(
                "the Secrets of EKS cluster `{id}` are encrypted with `{}`, which EKS can neither change nor remove; keep `[eks] kms_key_arn` (or `encrypt_secrets`) as it was, or replace the cluster",
                b.as_str().unwrap_or_default()
            ))),
        }
    }
}

#[async_trait]
impl ResourceProvider for EksCluster {
    fn kind(&self) -> ResourceKind {
        ResourceKind::EksCluster
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let Some(cluster) = describe(ctx, id).await? else {
            return Ok(None);
        };
        let vpc = cluster.resources_vpc_config();
        let subnets = vpc.map(|v| v.subnet_ids()).unwrap_or_default();
        let subnet_ids = if subnets.is_empty() {
            // moto's UpdateClusterConfig replaces the whole VPC configuration with what it is
            // sent, subnets included; AWS never has a cluster without subnets, so an empty list
            // only means the emulator forgot them.
            prior
                .get("subnet_ids")
                .cloned()
                .unwrap_or_else(|| json!([]))
        } else {
            in_prior_order(string_values(subnets), prior.get("subnet_ids"))
        };
        let authentication_mode = match cluster
            .access_config()
            .and_then(|a| a.authentication_mode())
        {
            Some(mode) => json!(mode.as_str()),
            // moto accepts `accessConfig` but neither stores nor returns it; AWS always does.
            None => prior
                .get("authentication_mode")
                .cloned()
                .unwrap_or(Value::Null),
        };
        let availability_zones = zones_of(ctx, &subnet_ids, prior).await?;
        let attrs = json!({
            "name": id,
            "version": cluster.version(),
            "role_arn": cluster.role_arn(),
            "vpc_id": vpc.and_then(|v| v.vpc_id()).map_or_else(
                // moto does not report the VPC of a cluster; AWS always does.
                || prior.get("vpc_id").cloned().unwrap_or(Value::Null),
                |id| json!(id),
            ),
            "subnet_ids": subnet_ids,
            "availability_zones": availability_zones,
            "endpoint_public_access": vpc.is_some_and(|v| v.endpoint_public_access()),
            "endpoint_private_access": vpc.is_some_and(|v| v.endpoint_private_access()),
            "public_access_cidrs": in_prior_order(
                string_values(vpc.map(|v| v.public_access_cidrs()).unwrap_or_default()),
                prior.get("public_access_cidrs"),
            ),
            "authentication_mode": authentication_mode,
            "enabled_log_types": enabled_log_types(&cluster),
            "encryption_key_arn": cluster
                .encryption_config()
                .iter()
                .find_map(|c| c.provider().and_then(|p| p.key_arn())),
            "tags": tags_attr(cluster.tags()),
            "arn": cluster.arn(),
            "endpoint": cluster.endpoint(),
            "certificate_authority": cluster.certificate_authority().and_then(|c| c.data()),
            "oidc_issuer": cluster.identity().and_then(|i| i.oidc()).and_then(|o| o.issuer()),
            // The security group EKS gives the control plane and the managed nodes, which the
            // VPC's interface endpoints use: the nodes reach them as members of it.
            "cluster_security_group_id": vpc.and_then(|v| v.cluster_security_group_id()),
            // Where the cluster is in its life, and why it FAILED: the planner replaces a
            // cluster whose create failed (`ResourceKind::failed_create`).
            "status": cluster.status().map(ClusterStatus::as_str),
            "health_issues": health_issues(&cluster),
        });
        Ok(attrs.as_object().cloned())
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let name = str_attr(desired, "name")?;
        let Some(cluster) = describe(ctx, name).await? else {
            return Ok(None);
        };
        if !managed_by(cluster.tags(), ctx.stack) {
            return Err(ProviderError::fatal(format!(
                "an EKS cluster named `{name}` already exists and is not managed by stack `{}`",
                ctx.stack
            )));
        }
        // A cluster still CREATING (a run killed during the long create) is waited for by
        // the executor, which adopts it as pending.
        Ok(Some(name.to_string()))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let name = str_attr(desired, "name")?;
        let vpc = VpcConfigRequest::builder()
            .set_subnet_ids(Some(strings_attr(desired, "subnet_ids")))
            .endpoint_public_access(bool_attr(desired, "endpoint_public_access"))
            .endpoint_private_access(bool_attr(desired, "endpoint_private_access"))
            .set_public_access_cidrs(Some(strings_attr(desired, "public_access_cidrs")))
            .build();
        let access = CreateAccessConfigRequest::builder()
            .authentication_mode(AuthenticationMode::from(str_attr(
                desired,
                "authentication_mode",
            )?))
            .bootstrap_cluster_creator_admin_permissions(true)
            .build();
        let created = ctx
            .aws
            .eks
            .create_cluster()
            .name(name)
            .version(str_attr(desired, "version")?)
            .role_arn(str_attr(desired, "role_arn")?)
            .resources_vpc_config(vpc)
            .access_config(access)
            .logging(logging(desired))
            .set_encryption_config(encryption(desired))
            .set_tags(Some(tags_of(desired).into_iter().collect()))
            .send()
            .await
            .map(|_| name.to_string())
            .map_err(classify);
        // A repeat after a lost answer that EKS did not recognise by its client token meets
        // the cluster it made: adopted when tagged as this stack's (`find`), and only then.
        adopt_on_conflict(ctx, created, &["ResourceInUseException"], || {
            self.find(ctx, desired)
        })
        .await
    }

    async fn wait_ready(&self, ctx: &Ctx<'_>, id: &str) -> ProviderResult<()> {
        wait_active(
            ctx,
            id,
            "for the EKS cluster to become ACTIVE (AWS takes 10-15 min)",
        )
        .await
    }

    /// Compares with the live cluster rather than `prior`, so that a retry after a partial
    /// update does not repeat the changes already made.
    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        _prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let live = self.read(ctx, id, desired).await?.ok_or_else(|| {
            ProviderError::fatal(format!("the EKS cluster `{id}` vanished before its update"))
        })?;
        let eks = &ctx.aws.eks;
        if live.get("version") != desired.get("version") {
            let out = eks
                .update_cluster_version()
                .name(id)
                .version(str_attr(desired, "version")?)
                .send()
                .await
                .map_err(classify)?;
            wait_update(ctx, id, out.update()).await?;
        }
        // Subnets within the zones the cluster was made with: EKS moves its network interfaces.
        // EKS takes one kind of update per call ("Only one type of update - VpcConfigUpdate,
        // LoggingUpdate or EndpointAccessUpdate can be allowed"): the subnets go alone.
        if live.get("subnet_ids") != desired.get("subnet_ids") {
            let vpc = VpcConfigRequest::builder()
                .set_subnet_ids(Some(strings_attr(desired, "subnet_ids")))
                .build();
            update_vpc_config(ctx, id, vpc).await?;
        }
        if ENDPOINT_ATTRS
            .iter()
            .any(|a| live.get(*a) != desired.get(*a))
        {
            let vpc = VpcConfigRequest::builder()
                .endpoint_public_access(bool_attr(desired, "endpoint_public_access"))
                .endpoint_private_access(bool_attr(desired, "endpoint_private_access"))
                .set_public_access_cidrs(Some(strings_attr(desired, "public_access_cidrs")))
                .build();
            update_vpc_config(ctx, id, vpc).await?;
        }
        if live.get("authentication_mode") != desired.get("authentication_mode") {
            let access = UpdateAccessConfigRequest::builder()
                .authentication_mode(AuthenticationMode::from(str_attr(
                    desired,
                    "authentication_mode",
                )?))
                .build();
            let out = eks
                .update_cluster_config()
                .name(id)
                .access_config(access)
                .send()
                .await
                .map_err(classify)?;
            wait_update(ctx, id, out.update()).await?;
        }
        if live.get("enabled_log_types") != desired.get("enabled_log_types") {
            let out = eks
                .update_cluster_config()
                .name(id)
                .logging(logging(desired))
                .send()
                .await
                .map_err(classify)?;
            wait_update(ctx, id, out.update()).await?;
        }
        self.encrypt_secrets(ctx, id, &live, desired).await?;
        sync_tags(ctx, str_attr(&live, "arn")?, &live, desired).await
    }

    /// Once the cluster is gone, also deletes what Kubernetes left in its VPC
    /// (`cluster_sweep`), so that the subnets and the VPC can go next.
    async fn delete(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<()> {
        // While node groups are still being deleted this fails with ResourceInUseException,
        // which the executor retries.
        gone_is_fine(
            ctx.aws
                .eks
                .delete_cluster()
                .name(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )?;
        // A delete that EKS gives up on leaves the cluster FAILED: said at once, with EKS's
        // reason, rather than after the wait's limit.
        wait_for(
            ctx,
            "for the EKS cluster to be deleted (AWS takes 5-10 min)",
            DELETE_LIMIT,
            || async move {
                match describe(ctx, id).await? {
                    None => Ok(Some(())),
                    Some(cluster) if cluster.status() == Some(&ClusterStatus::Failed) => {
                        Err(ProviderError::fatal(format!(
                            "EKS could not delete the cluster `{id}` (FAILED): {}",
                            health_phrase(&health_issues(&cluster))
                        )))
                    }
                    Some(_) => Ok(None),
                }
            },
        )
        .await?;
        cluster_sweep::sweep(ctx, id, &strings_attr(prior, "subnet_ids")).await
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_eks::operation::associate_encryption_config::AssociateEncryptionConfigOutput;
    use aws_sdk_eks::operation::delete_cluster::DeleteClusterOutput;
    use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
    use aws_sdk_eks::types::{ClusterHealth, ClusterIssue, ClusterIssueCode};
    use aws_sdk_eks::Client;
    use aws_smithy_mocks::mock;

    use super::*;
    use crate::providers::aws::mocks;

    const KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/k1";

    /// A running cluster as `DescribeCluster` shows it, its Secrets encrypted with `key`.
    fn cluster(key: Option<&str>) -> Cluster {
        let mut cluster = Cluster::builder()
            .name("mlops-cluster")
            .version("1.31")
            .arn("arn:aws:eks:us-west-2:123456789012:cluster/mlops-cluster")
            .status(ClusterStatus::Active)
            .tags("mlops:stack", "mlops");
        if let Some(key) = key {
            cluster = cluster.encryption_config(
                EncryptionConfig::builder()
                    .provider(Provider::builder().key_arn(key).build())
                    .build(),
            );
        }
        cluster.build()
    }

    /// The attributes of `cluster(key)`, as the spec would ask for them.
    fn desired(key: &str) -> Attrs {
        json!({
            "name": "mlops-cluster",
            "version": "1.31",
            "subnet_ids": [],
            "endpoint_public_access": false,
            "endpoint_private_access": false,
            "public_access_cidrs": [],
            "authentication_mode": null,
            "enabled_log_types": [],
            "encryption_key_arn": key,
            "tags": { "mlops:stack": "mlops" },
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    /// EKS's `AssociateEncryptionConfig`, which moto lacks: a running cluster without a key gets
    /// one, and the update is awaited by its id (`DescribeUpdate`), as with every cluster update.
    #[tokio::test]
    async fn a_key_is_associated_with_a_running_cluster_and_awaited() {
        let describe = mock!(Client::describe_cluster).then_output(|| {
            DescribeClusterOutput::builder()
                .cluster(cluster(None))
                .build()
        });
        let associate = mock!(Client::associate_encryption_config)
            .match_requests(|r| {
                r.cluster_name() == Some("mlops-cluster")
                    && r.encryption_config()
                        .first()
                        .and_then(|c| c.provider())
                        .and_then(|p| p.key_arn())
                        == Some(KEY)
            })
            .then_output(|| {
                AssociateEncryptionConfigOutput::builder()
                    .update(Update::builder().id("u-1").build())
                    .build()
            });
        let update = mock!(Client::describe_update)
            .match_requests(|r| r.update_id() == Some("u-1"))
            .then_output(|| mocks::update_succeeded("u-1"));
        let clients = mocks::eks_clients(&[&describe, &associate, &update]);
        mocks::with_ctx(&clients, "eks_cluster", async |ctx| {
            EksCluster
                .update(ctx, "mlops-cluster", &desired(KEY), &desired(KEY))
                .await
        })
        .await
        .unwrap();
        assert_eq!(
            (
                describe.num_calls(),
                associate.num_calls(),
                update.num_calls()
            ),
            (1, 1, 1)
        );
    }

    /// EKS can neither change nor remove the key of a cluster's Secrets: the update says so
    /// before it calls anything that changes the cluster.
    #[tokio::test]
    async fn another_key_is_refused_without_a_call() {
        let describe = mock!(Client::describe_cluster).then_output(|| {
            DescribeClusterOutput::builder()
                .cluster(cluster(Some(KEY)))
                .build()
        });
        let associate = mock!(Client::associate_encryption_config)
            .then_output(|| AssociateEncryptionConfigOutput::builder().build());
        let clients = mocks::eks_clients(&[&describe, &associate]);
        let other = "arn:aws:kms:us-west-2:123456789012:key/k2";
        let err = mocks::with_ctx(&clients, "eks_cluster", async |ctx| {
            EksCluster
                .update(ctx, "mlops-cluster", &desired(KEY), &desired(other))
                .await
        })
        .await
        .unwrap_err();
        assert!(
            err.message.contains("EKS can neither change nor remove"),
            "{}",
            err.message
        );
        assert!(err.message.contains(KEY), "{}", err.message);
        assert_eq!(associate.num_calls(), 0);
    }

    /// A delete EKS gives up on leaves the cluster FAILED (EKS has no DELETE_FAILED for a
    /// cluster), which moto cannot show: the wait ends at the first describe that says so,
    /// with EKS's reason, instead of after its 30-minute limit (aws-smithy-mocks).
    #[tokio::test]
    async fn a_cluster_eks_cannot_delete_is_reported_at_once_with_eks_reason() {
        let delete =
            mock!(Client::delete_cluster).then_output(|| DeleteClusterOutput::builder().build());
        let describe = mock!(Client::describe_cluster).then_output(|| {
            let mut failed = cluster(None);
            failed.status = Some(ClusterStatus::Failed);
            failed.health = Some(
                ClusterHealth::builder()
                    .issues(
                        ClusterIssue::builder()
                            .code(ClusterIssueCode::Other)
                            .message("The cluster's network interfaces are still in use")
                            .build(),
                    )
                    .build(),
            );
            DescribeClusterOutput::builder().cluster(failed).build()
        });
        let clients = mocks::eks_clients(&[&delete, &describe]);
        let err = mocks::with_ctx(&clients, "eks_cluster", async |ctx| {
            EksCluster.delete(ctx, "mlops-cluster", &desired(KEY)).await
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.message,
            "EKS could not delete the cluster `mlops-cluster` (FAILED): Other: The cluster's network interfaces are still in use"
        );
        assert_eq!((delete.num_calls(), describe.num_calls()), (1, 1));
    }

    #[test]
    fn a_reordered_list_keeps_the_prior_order() {
        let prior = json!(["subnet-b", "subnet-a", "subnet-c"]);
        let live = string_values(&["subnet-a".into(), "subnet-c".into(), "subnet-b".into()]);
        assert_eq!(in_prior_order(live, Some(&prior)), prior);
    }

    #[test]
    fn a_changed_list_comes_back_as_live() {
        let prior = json!(["subnet-a", "subnet-b"]);
        for live in [
            vec![json!("subnet-a")],
            vec![json!("subnet-a"), json!("subnet-c")],
            vec![json!("subnet-a"), json!("subnet-a")],
            vec![json!("subnet-b"), json!("subnet-a"), json!("subnet-b")],
        ] {
            assert_eq!(
                in_prior_order(live.clone(), Some(&prior)),
                Value::Array(live)
            );
        }
    }

    #[test]
    fn without_a_prior_list_the_live_order_stays() {
        let live = vec![json!("b"), json!("a")];
        assert_eq!(
            in_prior_order(live.clone(), None),
            Value::Array(live.clone())
        );
        assert_eq!(
            in_prior_order(live.clone(), Some(&Value::Null)),
            Value::Array(live)
        );
    }

    #[test]
    fn objects_compare_as_a_whole() {
        let prior = json!([{ "key": "b", "effect": "NO_SCHEDULE" }, { "key": "a", "effect": "NO_EXECUTE" }]);
        let live = vec![
            json!({ "key": "a", "effect": "NO_EXECUTE" }),
            json!({ "key": "b", "effect": "NO_SCHEDULE" }),
        ];
        assert_eq!(in_prior_order(live, Some(&prior)), prior);
    }

    #[test]
    fn only_the_stack_tag_marks_ownership() {
        let tags: HashMap<String, String> =
            [("mlops:stack".to_string(), "prod".to_string())].into();
        assert!(managed_by(Some(&tags), "prod"));
        assert!(!managed_by(Some(&tags), "dev"));
        assert!(!managed_by(None, "prod"));
    }
}
