//! `eks_node_group`: a managed node group of the cluster, with its scaling, labels and taints.
//! Its id is `<cluster name>:<node group name>`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eks::types::{
    AmiTypes, CapacityTypes, Nodegroup, NodegroupScalingConfig, NodegroupStatus, Taint,
    TaintEffect, UpdateLabelsPayload, UpdateTaintsPayload,
};
use serde_json::{json, Value};

use super::eks_cluster::{managed_by, sync_tags, tags_attr};
use super::{adopt_on_conflict, health_phrase, in_prior_order, split_compound_id, string_values};
use super::{
    classify, gone_as_none, gone_is_fine, str_attr, strings_attr, tag_changes, tags_of, wait_for,
};
use crate::base::ProviderError;
use crate::model::device_plugin::{DevicePlugin, ATTR as DEVICE_PLUGIN_ATTR};
use crate::model::{Attrs, ResourceKind};
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

pub struct EksNodeGroup;

const ACTIVE_LIMIT: Duration = Duration::from_secs(40 * 60);
const DELETE_LIMIT: Duration = Duration::from_secs(30 * 60);

const SCALING_ATTRS: [&str; 3] = ["min_size", "max_size", "desired_size"];

fn node_group_id(cluster: &str, name: &str) -> String {
    format!("{cluster}:{name}")
}

/// The cluster name and the node group name of an id.
fn split_id(id: &str) -> ProviderResult<(&str, &str)> {
    split_compound_id(id, ':', "node group", "<cluster name>:<node group name>")
}

fn int_attr(attrs: &Attrs, name: &str) -> ProviderResult<i32> {
    attrs
        .get(name)
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| {
            ProviderError::fatal(format!(
                "attribute `{name}` is missing or not a small integer"
            ))
        })
}

/// Labels are a string map like tags, so the tag helpers serve for them too.
fn labels_as_tags(attrs: &Attrs) -> Attrs {
    Attrs::from_iter([(
        "tags".to_string(),
        attrs.get("labels").cloned().unwrap_or(Value::Null),
    )])
}

fn taints_of(attrs: &Attrs) -> Vec<Value> {
    attrs
        .get("taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A taint attribute (`{key, value, effect}`) as EKS takes it.
fn to_taint(taint: &Value) -> ProviderResult<Taint> {
    let field = |name| taint.get(name).and_then(Value::as_str);
    let (Some(key), Some(effect)) = (field("key"), field("effect")) else {
        return Err(ProviderError::fatal(format!(
            "taint {taint} needs a `key` and an `effect`"
        )));
    };
    Ok(Taint::builder()
        .key(key)
        .set_value(field("value").map(str::to_string))
        .effect(TaintEffect::from(effect))
        .build())
}

fn taint_value(taint: &Taint) -> Value {
    json!({
        "key": taint.key(),
        "value": taint.value(),
        "effect": taint.effect().map(TaintEffect::as_str),
    })
}

/// The taints to add or change and the ones to remove, from `prior` to `desired`. A node
/// carries one taint per key and effect, so a new value for those is a change, not a removal.
fn taint_changes(prior: &[Value], desired: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let same_slot =
        |a: &Value, b: &Value| a.get("key") == b.get("key") && a.get("effect") == b.get("effect");
    let set = desired
        .iter()
        .filter(|t| !prior.contains(t))
        .cloned()
        .collect();
    let remove = prior
        .iter()
        .filter(|p| !desired.iter().any(|d| same_slot(p, d)))
        .cloned()
        .collect();
    (set, remove)
}

fn scaling_config(desired: &Attrs) -> ProviderResult<NodegroupScalingConfig> {
    Ok(NodegroupScalingConfig::builder()
        .min_size(int_attr(desired, "min_size")?)
        .max_size(int_attr(desired, "max_size")?)
        .desired_size(int_attr(desired, "desired_size")?)
        .build())
}

/// The node group as EKS reports it now; `None` when it does not exist.
pub async fn describe(
    ctx: &Ctx<'_>,
    cluster: &str,
    name: &str,
) -> ProviderResult<Option<Nodegroup>> {
    let out = gone_as_none(
        ctx.aws
            .eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
            .map_err(classify),
    )?;
    out.map(|o| {
        o.nodegroup.ok_or_else(|| {
            ProviderError::fatal(format!(
                "DescribeNodegroup returned no node group for `{cluster}:{name}`"
            ))
        })
    })
    .transpose()
}

/// EKS's health issues of a node group, each as `<code>: <message> (<resource ids>)`.
pub fn health_issues(group: &Nodegroup) -> Vec<String> {
    group
        .health()
        .map(|h| h.issues())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            format!(
                "{}: {} ({})",
                i.code().map_or("unknown", |c| c.as_str()),
                i.message().unwrap_or("no message"),
                i.resource_ids().join(", ")
            )
        })
        .collect()
}

/// Waits until the node group is ACTIVE. Any state but CREATING and UPDATING on the way (a
/// failed create, a degraded group) is an error that carries EKS's health issues.
async fn wait_active(ctx: &Ctx<'_>, cluster: &str, name: &str, what: &str) -> ProviderResult<()> {
    wait_for(ctx, what, ACTIVE_LIMIT, || async move {
        let group = describe(ctx, cluster, name).await?.ok_or_else(|| {
            ProviderError::fatal(format!(
                "the node group `{name}` of cluster `{cluster}` vanished while waiting for it to become ACTIVE"
            ))
        })?;
        match group.status() {
            Some(NodegroupStatus::Active) => Ok(Some(())),
            Some(NodegroupStatus::Creating | NodegroupStatus::Updating) | None => Ok(None),
            Some(status) => {
                Err(ProviderError::fatal(format!(
                    "the node group `{name}` of cluster `{cluster}` is {}: {}",
                    status.as_str(),
                    health_phrase(&health_issues(&group))
                )))
            }
        }
    })
    .await
}

/// How long a node group's rolling upgrade may take: EKS replaces every node.
const UPGRADE_LIMIT: Duration = Duration::from_secs(90 * 60);

/// The pinned AMI release, if any.
fn release_version(attrs: &Attrs) -> Option<String> {
    attrs
        .get("release_version")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Moves a node group to the desired Kubernetes version and AMI release
/// (`UpdateNodegroupVersion`, the latest release unless one is pinned) and waits for that
/// update by its id.
async fn upgrade(
    ctx: &Ctx<'_>,
    (cluster, name): (&str, &str),
    desired: &Attrs,
) -> ProviderResult<()> {
    let out = ctx
        .aws
        .eks
        .update_nodegroup_version()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .version(str_attr(desired, "version")?)
        .set_release_version(release_version(desired))
        .send()
        .await
        .map_err(classify)?;
    let what = "for the node group's rolling upgrade to finish (AWS takes 10-60 min)";
    match out.update().and_then(|u| u.id()) {
        Some(id) => {
            let of = super::eks_update::Of::NodeGroup(name);
            super::eks_update::wait(ctx, (cluster, of), id, (what, UPGRADE_LIMIT)).await
        }
        None => wait_active(ctx, cluster, name, what).await,
    }
}

#[async_trait]
impl ResourceProvider for EksNodeGroup {
    fn kind(&self) -> ResourceKind {
        ResourceKind::EksNodeGroup
    }

    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let (cluster, name) = split_id(id)?;
        let Some(group) = describe(ctx, cluster, name).await? else {
            return Ok(None);
        };
        let scaling = group.scaling_config();
        let labels: BTreeMap<&str, &str> = group
            .labels()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let attrs = json!({
            "cluster_name": cluster,
            "name": name,
            "node_role_arn": group.node_role(),
            "subnet_ids": in_prior_order(string_values(group.subnets()), prior.get("subnet_ids")),
            "instance_types": group.instance_types(),
            "capacity_type": group.capacity_type().map(CapacityTypes::as_str),
            "ami_type": group.ami_type().map(AmiTypes::as_str),
            "version": group.version(),
            // Compared only when pinned: otherwise EKS picks the latest release, which moves.
            "release_version": prior
                .get("release_version")
                .filter(|v| !v.is_null())
                .and(group.release_version()),
            "disk_size": group.disk_size(),
            "min_size": scaling.and_then(|s| s.min_size()),
            "max_size": scaling.and_then(|s| s.max_size()),
            "desired_size": scaling.and_then(|s| s.desired_size()),
            "labels": labels,
            "taints": in_prior_order(
                group.taints().iter().map(taint_value).collect(),
                prior.get("taints"),
            ),
            "tags": tags_attr(group.tags()),
            "arn": group.nodegroup_arn(),
            // Where the group is in its life, and why it failed: the planner replaces a group
            // whose create failed (`ResourceKind::failed_create`).
            "status": group.status().map(NodegroupStatus::as_str),
            "health_issues": health_issues(&group),
        });
        let mut attrs = attrs.as_object().cloned().unwrap_or_default();
        // Where the device plugin comes from, as the live AMI type says (the planner's rule).
        if let Some(plugin) = group.ami_type().and_then(|t| DevicePlugin::of(t.as_str())) {
            attrs.insert(DEVICE_PLUGIN_ATTR.into(), plugin.as_attr().into());
        }
        Ok(Some(attrs))
    }

    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>> {
        let cluster = str_attr(desired, "cluster_name")?;
        let name = str_attr(desired, "name")?;
        let Some(group) = describe(ctx, cluster, name).await? else {
            return Ok(None);
        };
        if !managed_by(group.tags(), ctx.stack) {
            return Err(ProviderError::fatal(format!(
                "a node group named `{name}` already exists in the EKS cluster `{cluster}` and is not managed by stack `{}`",
                ctx.stack
            )));
        }
        // A group still CREATING (a run killed during the create) is waited for by the
        // executor, which adopts it as pending.
        Ok(Some(node_group_id(cluster, name)))
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let cluster = str_attr(desired, "cluster_name")?;
        let name = str_attr(desired, "name")?;
        let labels = tags_of(&labels_as_tags(desired));
        let taints = taints_of(desired)
            .iter()
            .map(to_taint)
            .collect::<ProviderResult<Vec<_>>>()?;
        let created = ctx
            .aws
            .eks
            .create_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .node_role(str_attr(desired, "node_role_arn")?)
            .set_subnets(Some(strings_attr(desired, "subnet_ids")))
            .set_instance_types(Some(strings_attr(desired, "instance_types")))
            .capacity_type(CapacityTypes::from(str_attr(desired, "capacity_type")?))
            .ami_type(AmiTypes::from(str_attr(desired, "ami_type")?))
            .version(str_attr(desired, "version")?)
            .set_release_version(release_version(desired))
            .disk_size(int_attr(desired, "disk_size")?)
            .scaling_config(scaling_config(desired)?)
            .set_labels((!labels.is_empty()).then(|| labels.into_iter().collect()))
            .set_taints((!taints.is_empty()).then_some(taints))
            .set_tags(Some(tags_of(desired).into_iter().collect()))
            .send()
            .await
            .map(|_| node_group_id(cluster, name))
            .map_err(classify);
        // A repeat after a lost answer that EKS did not recognise by its client token meets
        // the node group it made: adopted when tagged as this stack's (`find`), and only then.
        adopt_on_conflict(ctx, created, &["ResourceInUseException"], || {
            self.find(ctx, desired)
        })
        .await
    }

    async fn wait_ready(&self, ctx: &Ctx<'_>, id: &str) -> ProviderResult<()> {
        let (cluster, name) = split_id(id)?;
        wait_active(
            ctx,
            cluster,
            name,
            "for the node group to become ACTIVE (AWS takes 3-5 min)",
        )
        .await
    }

    /// Compares with the live node group rather than `prior`, so that a retry after a
    /// partial update does not repeat the changes already made.
    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        _prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        let (cluster, name) = split_id(id)?;
        let live = self.read(ctx, id, desired).await?.ok_or_else(|| {
            ProviderError::fatal(format!(
                "the node group `{name}` of cluster `{cluster}` vanished before its update"
            ))
        })?;
        let differs = |attr: &str| live.get(attr) != desired.get(attr);
        // After the control plane (the executor runs the cluster's update first), before any
        // other change: EKS refuses the cluster's next upgrade while a group lags behind.
        if differs("version") || differs("release_version") {
            upgrade(ctx, (cluster, name), desired).await?;
        }
        let mut request = ctx
            .aws
            .eks
            .update_nodegroup_config()
            .cluster_name(cluster)
            .nodegroup_name(name);
        let mut changed = false;
        if SCALING_ATTRS.iter().any(|a| differs(a)) {
            request = request.scaling_config(scaling_config(desired)?);
            changed = true;
        }
        if differs("labels") {
            let (set, remove) = tag_changes(&labels_as_tags(&live), &labels_as_tags(desired));
            let payload = UpdateLabelsPayload::builder()
                .set_add_or_update_labels((!set.is_empty()).then(|| set.into_iter().collect()))
                .set_remove_labels((!remove.is_empty()).then_some(remove))
                .build();
            request = request.labels(payload);
            changed = true;
        }
        if differs("taints") {
            let (set, remove) = taint_changes(&taints_of(&live), &taints_of(desired));
            let to_taints = |list: Vec<Value>| -> ProviderResult<Option<Vec<Taint>>> {
                let taints = list
                    .iter()
                    .map(to_taint)
                    .collect::<ProviderResult<Vec<_>>>()?;
                Ok((!taints.is_empty()).then_some(taints))
            };
            let payload = UpdateTaintsPayload::builder()
                .set_add_or_update_taints(to_taints(set)?)
                .set_remove_taints(to_taints(remove)?)
                .build();
            request = request.taints(payload);
            changed = true;
        }
        if changed {
            request.send().await.map_err(classify)?;
            wait_active(ctx, cluster, name, "for the node group update to finish").await?;
        }
        sync_tags(ctx, str_attr(&live, "arn")?, &live, desired).await
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _prior: &Attrs) -> ProviderResult<()> {
        let (cluster, name) = split_id(id)?;
        gone_is_fine(
            ctx.aws
                .eks
                .delete_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )?;
        // A group EKS could not delete (DELETE_FAILED) stays so: said at once, with EKS's reason.
        wait_for(
            ctx,
            "for the node group to be deleted (AWS takes 3-5 min)",
            DELETE_LIMIT,
            || async move {
                match describe(ctx, cluster, name).await? {
                    None => Ok(Some(())),
                    Some(group) if group.status() == Some(&NodegroupStatus::DeleteFailed) => {
                        Err(ProviderError::fatal(format!(
                            "EKS could not delete the node group `{name}` of cluster `{cluster}` (DELETE_FAILED): {}",
                            health_phrase(&health_issues(&group))
                        )))
                    }
                    Some(_) => Ok(None),
                }
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_eks::operation::describe_nodegroup::DescribeNodegroupOutput;
    use aws_sdk_eks::operation::update_nodegroup_version::UpdateNodegroupVersionOutput;
    use aws_sdk_eks::types::Update;
    use aws_sdk_eks::Client;
    use aws_smithy_mocks::mock;

    use super::*;
    use crate::providers::aws::mocks;

    /// A running group on Kubernetes 1.31, as `DescribeNodegroup` shows it.
    fn running_group() -> Nodegroup {
        Nodegroup::builder()
            .nodegroup_name("default")
            .cluster_name("mlops-cluster")
            .version("1.31")
            .release_version("1.31.3-20250103")
            .status(NodegroupStatus::Active)
            .nodegroup_arn("arn:aws:eks:us-west-2:123456789012:nodegroup/mlops-cluster/default/1")
            .tags("mlops:stack", "mlops")
            .build()
    }

    /// moto has no `UpdateNodegroupVersion` (nor a cluster upgrade): with `aws-smithy-mocks`,
    /// a group behind the desired version is moved with the pinned release, and the rolling
    /// upgrade is awaited by its update id (`DescribeUpdate` of the node group), as EKS reports
    /// it; the configuration of the group is left alone when it does not differ.
    #[tokio::test]
    async fn a_group_behind_the_cluster_is_upgraded_and_awaited_by_update_id() {
        let describe = mock!(Client::describe_nodegroup).then_output(|| {
            DescribeNodegroupOutput::builder()
                .nodegroup(running_group())
                .build()
        });
        let upgrade = mock!(Client::update_nodegroup_version)
            .match_requests(|r| {
                r.cluster_name() == Some("mlops-cluster")
                    && r.nodegroup_name() == Some("default")
                    && r.version() == Some("1.32")
                    && r.release_version() == Some("1.32.1-20250301")
            })
            .then_output(|| {
                UpdateNodegroupVersionOutput::builder()
                    .update(Update::builder().id("u-9").build())
                    .build()
            });
        let update = mock!(Client::describe_update)
            .match_requests(|r| {
                r.name() == Some("mlops-cluster")
                    && r.nodegroup_name() == Some("default")
                    && r.update_id() == Some("u-9")
            })
            .then_output(|| mocks::update_succeeded("u-9"));
        let clients = mocks::eks_clients(&[&describe, &upgrade, &update]);
        let mut desired = attrs(json!({
            "cluster_name": "mlops-cluster",
            "name": "default",
            "labels": {},
            "taints": [],
            "tags": { "mlops:stack": "mlops" },
            "version": "1.32",
            "release_version": "1.32.1-20250301",
        }));
        for a in SCALING_ATTRS {
            desired.insert(a.into(), Value::Null);
        }
        mocks::with_ctx(&clients, "eks_node_group.default", async |ctx| {
            EksNodeGroup
                .update(ctx, "mlops-cluster:default", &desired, &desired)
                .await
        })
        .await
        .unwrap();
        assert_eq!(
            (
                describe.num_calls(),
                upgrade.num_calls(),
                update.num_calls()
            ),
            (1, 1, 1)
        );
    }

    fn attrs(value: Value) -> Attrs {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn ids_split_into_cluster_and_group() {
        let id = node_group_id("mlops-cluster", "default");
        assert_eq!(id, "mlops-cluster:default");
        assert_eq!(split_id(&id).unwrap(), ("mlops-cluster", "default"));
        assert!(split_id("mlops-cluster").is_err());
    }

    #[test]
    fn label_changes_set_new_and_changed_and_remove_dropped() {
        let prior = attrs(json!({ "labels": { "keep": "1", "change": "a", "drop": "x" } }));
        let desired = attrs(json!({ "labels": { "keep": "1", "change": "b", "add": "y" } }));
        let (set, remove) = tag_changes(&labels_as_tags(&prior), &labels_as_tags(&desired));
        assert_eq!(
            set,
            BTreeMap::from([
                ("add".to_string(), "y".to_string()),
                ("change".to_string(), "b".to_string()),
            ])
        );
        assert_eq!(remove, vec!["drop".to_string()]);
    }

    #[test]
    fn a_new_taint_value_is_a_change_not_a_removal() {
        let gpu = |value: &str| json!({ "key": "gpu", "value": value, "effect": "NO_SCHEDULE" });
        let spot = json!({ "key": "spot", "value": null, "effect": "NO_EXECUTE" });
        let dedicated = json!({ "key": "dedicated", "value": "ml", "effect": "NO_SCHEDULE" });
        let (set, remove) = taint_changes(
            &[gpu("true"), spot.clone()],
            &[gpu("false"), dedicated.clone()],
        );
        assert_eq!(set, vec![gpu("false"), dedicated]);
        assert_eq!(remove, vec![spot]);
    }

    #[test]
    fn taints_convert_both_ways() {
        let with_value = json!({ "key": "gpu", "value": "true", "effect": "NO_SCHEDULE" });
        let without = json!({ "key": "spot", "value": null, "effect": "PREFER_NO_SCHEDULE" });
        for taint in [with_value, without] {
            assert_eq!(taint_value(&to_taint(&taint).unwrap()), taint);
        }
        assert!(to_taint(&json!({ "key": "gpu" })).is_err());
    }
}
