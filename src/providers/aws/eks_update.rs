//! Awaiting an EKS update by the id EKS returned for it (`DescribeUpdate`): a cluster's version
//! or configuration, or a node group's version, which rolls every node. A failed or cancelled
//! update is an error with EKS's reasons.

use std::time::Duration;

use aws_sdk_eks::types::UpdateStatus;

use super::{classify, wait_for};
use crate::base::ProviderError;
use crate::providers::{Ctx, ProviderResult};

/// What of a cluster an update changes.
#[derive(Clone, Copy)]
pub(super) enum Of<'a> {
    Cluster,
    NodeGroup(&'a str),
    Addon(&'a str),
}

/// Waits until the update `id` of `cluster` (or of its node group or add-on) has finished.
pub(super) async fn wait(
    ctx: &Ctx<'_>,
    (cluster, of): (&str, Of<'_>),
    id: &str,
    (what, limit): (&str, Duration),
) -> ProviderResult<()> {
    let (nodegroup, addon) = match of {
        Of::Cluster => (None, None),
        Of::NodeGroup(g) => (Some(g), None),
        Of::Addon(a) => (None, Some(a)),
    };
    wait_for(ctx, what, limit, || async move {
        let out = ctx
            .aws
            .eks
            .describe_update()
            .name(cluster)
            .set_nodegroup_name(nodegroup.map(str::to_string))
            .set_addon_name(addon.map(str::to_string))
            .update_id(id)
            .send()
            .await
            .map_err(classify)?;
        let update = out
            .update()
            .ok_or_else(|| ProviderError::fatal("DescribeUpdate returned no update"))?;
        match update.status() {
            Some(UpdateStatus::Successful) => Ok(Some(())),
            Some(UpdateStatus::Failed | UpdateStatus::Cancelled) => {
                let reasons: Vec<String> = update
                    .errors()
                    .iter()
                    .map(|e| e.error_message().unwrap_or("no reason given").to_string())
                    .collect();
                let of = match of {
                    Of::Cluster => format!("cluster `{cluster}`"),
                    Of::NodeGroup(g) => format!("node group `{g}` of cluster `{cluster}`"),
                    Of::Addon(a) => format!("add-on `{a}` of cluster `{cluster}`"),
                };
                Err(ProviderError::fatal(format!(
                    "the EKS update `{id}` of {of} did not succeed: {}",
                    reasons.join("; ")
                )))
            }
            _ => Ok(None),
        }
    })
    .await
}
