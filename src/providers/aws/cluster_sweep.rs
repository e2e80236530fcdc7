//! What Kubernetes leaves in the VPC once its EKS cluster is gone. Controllers running in the
//! cluster create AWS objects that no state records: load balancers for Services and Ingresses,
//! their target groups and security groups, network interfaces for pods. Deleting the cluster
//! does not delete them, and they keep the subnets, the internet gateway and the VPC from being
//! deleted (`DependencyViolation`) until someone does. `eks_cluster`'s delete calls [`sweep`]
//! after the cluster is gone and before the executor deletes the network, which waits for it.
//!
//! Only objects in the cluster's VPC that the cluster's own controllers tagged as theirs are
//! touched. Who tags what:
//!
//! - the AWS Load Balancer Controller: ALBs and NLBs, their target groups, one frontend security
//!   group per load balancer and the shared backend group `k8s-traffic-<cluster>-<hash>`, all
//!   `elbv2.k8s.aws/cluster = <cluster>`;
//! - the in-tree service controller (cloud-provider-aws): a classic ELB per Service (an NLB with
//!   `service.beta.kubernetes.io/aws-load-balancer-type: nlb`, with its target groups) and its
//!   security group `k8s-elb-<name>`, all `kubernetes.io/cluster/<cluster> = owned`;
//! - the VPC CNI: the network interfaces it adds to nodes (and the branch interfaces of security
//!   groups for pods), `cluster.k8s.amazonaws.com/name = <cluster>`.
//!
//! `kubernetes.io/cluster/<cluster> = shared` means "used by the cluster, owned by someone else"
//! (the stack's own subnets carry it): such objects are never swept.
//!
//! GuardDuty, common in organisations, adds to a VPC with an EKS cluster (Runtime Monitoring
//! with automated agent management) an interface endpoint for `guardduty-data` and its
//! security group `GuardDutyManagedSecurityGroup-<vpc>`, both tagged `GuardDutyManaged =
//! true`. GuardDuty does not remove them when the cluster goes, and they hold the subnets and
//! the VPC, so the sweep deletes those of the cluster's VPC too (GuardDuty makes them again
//! for a cluster that comes later).
//!
//! A security group still in use (`DependencyViolation`) is retried with the executor's
//! backoff; every object deleted is reported through the reporter's `waiting`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, IpPermission, SecurityGroup, UserIdGroupPair};

use super::vpc_endpoint::VpcEndpoint;
use super::{classify, gone_is_fine, wait_for};
use crate::base::ProviderError;
use crate::base::RetryPolicy;
use crate::model::Attrs;
use crate::providers::{Ctx, ProviderResult, ResourceProvider};

/// The AWS Load Balancer Controller's tag; its value is the cluster name.
const LBC_TAG: &str = "elbv2.k8s.aws/cluster";
/// The VPC CNI's tag on network interfaces; its value is the cluster name.
const CNI_TAG: &str = "cluster.k8s.amazonaws.com/name";
/// The value of `kubernetes.io/cluster/<cluster>` on objects whose life ends with the cluster.
const OWNED: &str = "owned";
/// GuardDuty's tag (value `true`) on the VPC endpoint and the security group it adds.
const GUARDDUTY_TAG: &str = "GuardDutyManaged";

/// How long load balancers may take to release their network interfaces once deleted.
const RELEASE_LIMIT: Duration = Duration::from_secs(10 * 60);

/// Describe calls take at most this many names or ARNs at once.
const DESCRIBE_TAGS_BATCH: usize = 20;

/// `kubernetes.io/cluster/<cluster>`, the tag of the in-tree cloud provider.
fn cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// Whether `tags` mark an object as made by `cluster`'s controllers, for the cluster alone.
fn left_by<'a>(cluster: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    let own = cluster_tag(cluster);
    tags.into_iter().any(|(key, value)| {
        (key == own && value == OWNED) || ((key == LBC_TAG || key == CNI_TAG) && value == cluster)
    })
}

/// Whether `tags` mark an object as GuardDuty's own.
fn guardduty_managed<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    tags.any(|(key, value)| key == GUARDDUTY_TAG && value == "true")
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// `err` with the object it was about in front of its message; class and code stay.
fn about(what: &str, err: ProviderError) -> ProviderError {
    ProviderError {
        message: format!("{what}: {}", err.message),
        ..err
    }
}

/// Deletes what `cluster` left in the VPC of `subnet_ids` (the cluster's subnets, which outlive
/// it): load balancers and their target groups, then, once the load balancers' network
/// interfaces are released, detached network interfaces and security groups.
pub(super) async fn sweep(
    ctx: &Ctx<'_>,
    cluster: &str,
    subnet_ids: &[String],
) -> ProviderResult<()> {
    let Some(vpc) = vpc_of(ctx, subnet_ids).await? else {
        return Ok(());
    };
    let sweep = Sweep {
        ctx,
        cluster,
        vpc,
        retry: RetryPolicy::default(),
    };
    let mut interfaces = sweep.elbv2_load_balancers().await?;
    interfaces.extend(sweep.classic_load_balancers().await?);
    sweep.target_groups().await?;
    sweep.wait_released(interfaces).await?;
    sweep.network_interfaces().await?;
    sweep.guardduty_endpoints().await?;
    sweep.security_groups().await
}

/// The VPC of the first of `subnet_ids` that still exists; `None` when none does.
async fn vpc_of(ctx: &Ctx<'_>, subnet_ids: &[String]) -> ProviderResult<Option<String>> {
    if subnet_ids.is_empty() {
        return Ok(None);
    }
    // A filter, unlike `SubnetIds`, does not fail for a subnet that is gone.
    let out = ctx
        .aws
        .ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("subnet-id")
                .set_values(Some(subnet_ids.to_vec()))
                .build(),
        )
        .send()
        .await
        .map_err(classify)?;
    Ok(out
        .subnets()
        .iter()
        .find_map(|s| s.vpc_id().map(str::to_string)))
}

/// One sweep of one cluster's VPC.
struct Sweep<'a> {
    ctx: &'a Ctx<'a>,
    cluster: &'a str,
    vpc: String,
    /// For "not yet" errors: a security group still used by an interface being released, a
    /// target group by a load balancer being deleted. The sweep retries them itself: the
    /// executor's retries of the cluster's delete spend their budget while the cluster goes.
    retry: RetryPolicy,
}

impl Sweep<'_> {
    fn left<'t>(&self, tags: impl IntoIterator<Item = (&'t str, &'t str)>) -> bool {
        left_by(self.cluster, tags)
    }

    /// Reports `what` and deletes it with `call`; an object already gone counts as deleted.
    async fn delete<F, Fut>(&self, what: &str, mut call: F) -> ProviderResult<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ProviderResult<()>>,
    {
        self.ctx.waiting(&format!(
            "for {what}, left in `{}`, to be deleted",
            self.vpc
        ));
        self.retry
            .run(self.ctx.reporter, self.ctx.address, || {
                let deleted = call();
                async move { gone_is_fine(deleted.await).map_err(|e| about(what, e)) }
            })
            .await
    }

    /// Deletes the cluster's ALBs and NLBs; returns the descriptions of their network
    /// interfaces (`ELB app/<name>/<id>`, `ELB net/<name>/<id>`).
    async fn elbv2_load_balancers(&self) -> ProviderResult<Vec<String>> {
        let elbv2 = &self.ctx.aws.elbv2;
        let in_vpc: Vec<String> = elbv2
            .describe_load_balancers()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(classify)?
            .into_iter()
            .filter(|lb| lb.vpc_id() == Some(self.vpc.as_str()))
            .filter_map(|lb| lb.load_balancer_arn)
            .collect();
        let mut interfaces = Vec::new();
        for arn in self.elbv2_tagged(&in_vpc).await? {
            let name = arn
                .split_once(":loadbalancer/")
                .map_or(arn.as_str(), |(_, n)| n);
            self.delete(&format!("the load balancer `{name}`"), || async {
                elbv2
                    .delete_load_balancer()
                    .load_balancer_arn(&arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            })
            .await?;
            interfaces.push(format!("ELB {name}"));
        }
        Ok(interfaces)
    }

    /// Deletes the cluster's target groups; run after the load balancers, whose listeners use
    /// them.
    async fn target_groups(&self) -> ProviderResult<()> {
        let elbv2 = &self.ctx.aws.elbv2;
        let groups: BTreeMap<String, String> = elbv2
            .describe_target_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(classify)?
            .into_iter()
            .filter(|g| g.vpc_id() == Some(self.vpc.as_str()))
            .filter_map(|g| Some((g.target_group_arn?, g.target_group_name.unwrap_or_default())))
            .collect();
        let arns: Vec<String> = groups.keys().cloned().collect();
        for arn in self.elbv2_tagged(&arns).await? {
            self.delete(&format!("the target group `{}`", groups[&arn]), || async {
                elbv2
                    .delete_target_group()
                    .target_group_arn(&arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            })
            .await?;
        }
        Ok(())
    }

    /// Those of the ELBv2 objects `arns` that the cluster left.
    async fn elbv2_tagged(&self, arns: &[String]) -> ProviderResult<Vec<String>> {
        let mut tagged = Vec::new();
        for batch in arns.chunks(DESCRIBE_TAGS_BATCH) {
            let out = self
                .ctx
                .aws
                .elbv2
                .describe_tags()
                .set_resource_arns(Some(batch.to_vec()))
                .send()
                .await
                .map_err(classify)?;
            tagged.extend(
                out.tag_descriptions()
                    .iter()
                    .filter(|d| {
                        self.left(
                            d.tags().iter().map(|t| {
                                (t.key().unwrap_or_default(), t.value().unwrap_or_default())
                            }),
                        )
                    })
                    .filter_map(|d| d.resource_arn().map(str::to_string)),
            );
        }
        Ok(tagged)
    }

    /// Deletes the cluster's classic ELBs; returns the descriptions of their network
    /// interfaces (`ELB <name>`).
    async fn classic_load_balancers(&self) -> ProviderResult<Vec<String>> {
        let elb = &self.ctx.aws.elb;
        let in_vpc: Vec<String> = elb
            .describe_load_balancers()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(classify)?
            .into_iter()
            .filter(|lb| lb.vpc_id() == Some(self.vpc.as_str()))
            .filter_map(|lb| lb.load_balancer_name)
            .collect();
        let mut interfaces = Vec::new();
        for batch in in_vpc.chunks(DESCRIBE_TAGS_BATCH) {
            let out = elb
                .describe_tags()
                .set_load_balancer_names(Some(batch.to_vec()))
                .send()
                .await
                .map_err(classify)?;
            for description in out.tag_descriptions() {
                let tags = description
                    .tags()
                    .iter()
                    .map(|t| (t.key(), t.value().unwrap_or_default()));
                let Some(name) = description.load_balancer_name() else {
                    continue;
                };
                if !self.left(tags) {
                    continue;
                }
                self.delete(&format!("the classic load balancer `{name}`"), || async {
                    elb.delete_load_balancer()
                        .load_balancer_name(name)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(classify)
                })
                .await?;
                interfaces.push(format!("ELB {name}"));
            }
        }
        Ok(interfaces)
    }

    /// Waits until no network interface in the VPC has one of the `descriptions` of the
    /// deleted load balancers' interfaces: until then, their security groups are in use.
    async fn wait_released(&self, descriptions: Vec<String>) -> ProviderResult<()> {
        if descriptions.is_empty() {
            return Ok(());
        }
        let filters = vec![
            filter("vpc-id", &self.vpc),
            Filter::builder()
                .name("description")
                .set_values(Some(descriptions))
                .build(),
        ];
        let ec2 = &self.ctx.aws.ec2;
        wait_for(
            self.ctx,
            "for the deleted load balancers to release their network interfaces",
            RELEASE_LIMIT,
            || {
                let filters = filters.clone();
                async move {
                    let out = ec2
                        .describe_network_interfaces()
                        .set_filters(Some(filters))
                        .send()
                        .await
                        .map_err(classify)?;
                    Ok(out.network_interfaces().is_empty().then_some(()))
                }
            },
        )
        .await
    }

    /// Deletes the detached network interfaces the cluster left; attached ones belong to
    /// something still running. Tags are checked here rather than by a `tag-key` filter: moto
    /// matches only one of several `tag-key` values on interfaces.
    async fn network_interfaces(&self) -> ProviderResult<()> {
        let ec2 = &self.ctx.aws.ec2;
        let interfaces: Vec<_> = ec2
            .describe_network_interfaces()
            .filters(filter("vpc-id", &self.vpc))
            .filters(filter("status", "available"))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(classify)?;
        for interface in interfaces {
            let tags = interface
                .tag_set()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
            let Some(id) = interface.network_interface_id() else {
                continue;
            };
            if !self.left(tags) {
                continue;
            }
            self.delete(&format!("the network interface `{id}`"), || async {
                ec2.delete_network_interface()
                    .network_interface_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes GuardDuty's VPC endpoints in the VPC, each awaited until it is gone (its
    /// network interfaces hold the subnets until then), before its security group goes.
    async fn guardduty_endpoints(&self) -> ProviderResult<()> {
        let endpoints: Vec<String> = self
            .ctx
            .aws
            .ec2
            .describe_vpc_endpoints()
            .filters(filter("vpc-id", &self.vpc))
            .filters(filter(&format!("tag:{GUARDDUTY_TAG}"), "true"))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(classify)?
            .into_iter()
            .filter(|e| {
                let state = e.state().map(|s| s.as_str().to_ascii_lowercase());
                !matches!(state.as_deref(), Some("deleted" | "deleting"))
            })
            .filter_map(|e| e.vpc_endpoint_id)
            .collect();
        let recorded = Attrs::new();
        for id in endpoints {
            self.delete(&format!("GuardDuty's VPC endpoint `{id}`"), || {
                VpcEndpoint.delete(self.ctx, &id, &recorded)
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes the security groups the cluster (or GuardDuty) left, after revoking the rules
    /// of other groups in the VPC that refer to them (AWS refuses to delete a group that is
    /// referred to).
    async fn security_groups(&self) -> ProviderResult<()> {
        let ec2 = &self.ctx.aws.ec2;
        let groups: Vec<SecurityGroup> = ec2
            .describe_security_groups()
            .filters(filter("vpc-id", &self.vpc))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(classify)?;
        let doomed: BTreeMap<&str, &str> = groups
            .iter()
            .filter(|g| g.group_name() != Some("default"))
            .filter(|g| {
                let tags = || {
                    g.tags()
                        .iter()
                        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
                };
                self.left(tags()) || guardduty_managed(tags())
            })
            .filter_map(|g| Some((g.group_id()?, g.group_name().unwrap_or_default())))
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let ids: BTreeSet<&str> = doomed.keys().copied().collect();
        for group in &groups {
            revoke_references(self.ctx, group, &ids).await?;
        }
        for (id, name) in doomed {
            self.delete(&format!("the security group `{id}` (`{name}`)"), || async {
                ec2.delete_security_group()
                    .group_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            })
            .await?;
        }
        Ok(())
    }
}

/// Revokes the rules of `group` that refer to one of the groups `ids`, except to itself.
async fn revoke_references(
    ctx: &Ctx<'_>,
    group: &SecurityGroup,
    ids: &BTreeSet<&str>,
) -> ProviderResult<()> {
    let Some(group_id) = group.group_id() else {
        return Ok(());
    };
    let ec2 = &ctx.aws.ec2;
    let what = format!("the rules of the security group `{group_id}` that refer to the cluster's");
    // Ingress and egress apart: a rule already gone (`InvalidPermission.NotFound`) fails only
    // its own call.
    let ingress = referring(group.ip_permissions(), group_id, ids);
    if !ingress.is_empty() {
        gone_is_fine(
            ec2.revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(ingress))
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
        .map_err(|e| about(&what, e))?;
    }
    let egress = referring(group.ip_permissions_egress(), group_id, ids);
    if !egress.is_empty() {
        gone_is_fine(
            ec2.revoke_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(egress))
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        )
        .map_err(|e| about(&what, e))?;
    }
    Ok(())
}

/// The parts of `permissions` that name one of the groups `ids` (other than `own`) as source
/// or destination, one permission per referred group, as a revoke takes them.
fn referring(permissions: &[IpPermission], own: &str, ids: &BTreeSet<&str>) -> Vec<IpPermission> {
    permissions
        .iter()
        .flat_map(|p| {
            p.user_id_group_pairs()
                .iter()
                .filter_map(|pair| pair.group_id())
                .filter(|id| *id != own && ids.contains(id))
                .map(|id| {
                    IpPermission::builder()
                        .set_ip_protocol(p.ip_protocol().map(str::to_string))
                        .set_from_port(p.from_port())
                        .set_to_port(p.to_port())
                        .user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
                        .build()
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::base::ErrorClass;
    use crate::base::{Op, Reporter};
    use crate::model::Address;
    use crate::providers::aws::Clients;

    #[derive(Default)]
    struct Recorder {
        waits: Mutex<Vec<String>>,
        retries: Mutex<Vec<String>>,
    }

    impl Reporter for Recorder {
        fn started(&self, _: &Address, _: Op) {}
        fn waiting(&self, _: &Address, what: &str) {
            self.waits.lock().unwrap().push(what.to_string());
        }
        fn retrying(&self, _: &Address, error: &str, _: Duration) {
            self.retries.lock().unwrap().push(error.to_string());
        }
        fn adopted(&self, _: &Address, _: &str) {}
        fn finished(&self, _: &Address, _: Op, _: Duration) {}
        fn failed(&self, _: &Address, _: Op, _: &str) {}
        fn interrupted(&self, _: usize) {}
        fn warning(&self, _: &str) {}
    }

    fn error(class: ErrorClass, code: &str) -> ProviderError {
        ProviderError {
            class,
            code: Some(code.to_string()),
            message: "from AWS".to_string(),
        }
    }

    /// Runs `Sweep::delete` of a security group whose delete calls answer `answers` in turn;
    /// the result, the number of calls, and what was reported.
    async fn delete_answering(
        answers: Vec<ProviderResult<()>>,
    ) -> (ProviderResult<()>, usize, Recorder) {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-west-2"))
            .build();
        let clients = Clients::from_config(&config, "us-west-2", false);
        let recorder = Recorder::default();
        let address = Address::new("eks_cluster");
        let kube = crate::providers::kube::KubeEnv::unused();
        let ctx = Ctx {
            aws: &clients,
            kube: &kube,
            stack: "mlops",
            address: &address,
            reporter: &recorder,
        };
        let sweep = Sweep {
            ctx: &ctx,
            cluster: "prod",
            vpc: "vpc-1".to_string(),
            retry: RetryPolicy {
                first_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
                budget: Duration::from_secs(5),
            },
        };
        let answers = Mutex::new(answers.into_iter());
        let calls = Mutex::new(0);
        let result = sweep
            .delete("the security group `sg-1` (`k8s-elb-a1`)", || {
                *calls.lock().unwrap() += 1;
                let answer = answers.lock().unwrap().next().expect("no more calls");
                async move { answer }
            })
            .await;
        let calls = *calls.lock().unwrap();
        (result, calls, recorder)
    }

    #[tokio::test]
    async fn a_group_still_in_use_is_retried_until_it_goes() {
        let in_use = || Err(error(ErrorClass::Propagating, "DependencyViolation"));
        let (result, calls, recorder) = delete_answering(vec![in_use(), in_use(), Ok(())]).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(calls, 3);
        let retries = recorder.retries.lock().unwrap();
        assert_eq!(retries.len(), 2);
        assert!(
            retries[0].starts_with("DependencyViolation: the security group `sg-1` (`k8s-elb-a1`)"),
            "{retries:?}"
        );
        assert_eq!(
            *recorder.waits.lock().unwrap(),
            ["for the security group `sg-1` (`k8s-elb-a1`), left in `vpc-1`, to be deleted"]
        );
    }

    #[tokio::test]
    async fn a_group_already_gone_is_deleted_and_a_refusal_names_it() {
        let (result, calls, _) = delete_answering(vec![Err(error(
            ErrorClass::NotFound,
            "InvalidGroup.NotFound",
        ))])
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(calls, 1);

        let (result, calls, recorder) =
            delete_answering(vec![Err(error(ErrorClass::Fatal, "UnauthorizedOperation"))]).await;
        let err = result.unwrap_err();
        assert_eq!(err.code.as_deref(), Some("UnauthorizedOperation"));
        assert_eq!(
            err.message,
            "the security group `sg-1` (`k8s-elb-a1`): from AWS"
        );
        assert_eq!(calls, 1);
        assert!(recorder.retries.lock().unwrap().is_empty());
    }

    #[test]
    fn only_the_clusters_own_tags_mark_a_leftover() {
        let left = |tags: &[(&str, &str)]| left_by("prod", tags.iter().copied());
        assert!(left(&[("kubernetes.io/cluster/prod", "owned")]));
        assert!(left(&[("elbv2.k8s.aws/cluster", "prod")]));
        assert!(left(&[("cluster.k8s.amazonaws.com/name", "prod")]));
        assert!(left(&[("Name", "x"), ("elbv2.k8s.aws/cluster", "prod")]));

        assert!(!left(&[("kubernetes.io/cluster/prod", "shared")]));
        assert!(!left(&[("kubernetes.io/cluster/prod-2", "owned")]));
        assert!(!left(&[("elbv2.k8s.aws/cluster", "prod-2")]));
        assert!(!left(&[("cluster.k8s.amazonaws.com/name", "dev")]));
        assert!(!left(&[("kubernetes.io/role/elb", "1")]));
        assert!(!left(&[]));
    }

    #[test]
    fn only_rules_naming_a_doomed_group_are_revoked() {
        let pair = |id: &str| UserIdGroupPair::builder().group_id(id).build();
        let permissions = [
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(30080)
                .to_port(30080)
                .user_id_group_pairs(pair("sg-elb"))
                .user_id_group_pairs(pair("sg-other"))
                .build(),
            IpPermission::builder()
                .ip_protocol("-1")
                .user_id_group_pairs(pair("sg-node"))
                .build(),
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .build(),
        ];
        let ids: BTreeSet<&str> = ["sg-elb", "sg-node"].into();

        let from_node = referring(&permissions, "sg-node", &ids);
        assert_eq!(
            from_node,
            vec![IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(30080)
                .to_port(30080)
                .user_id_group_pairs(pair("sg-elb"))
                .build()],
            "a rule to itself stays, and so does the pair naming a group that stays"
        );
        assert_eq!(referring(&permissions, "sg-elb", &ids).len(), 1);
        assert!(referring(&permissions, "sg-x", &BTreeSet::new()).is_empty());
    }
}
