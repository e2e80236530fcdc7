//! The limit the benchmark measures `mlops` against: the waits AWS imposes on the example stack
//! and the round trips that cannot be avoided, as a critical path. Written here from what AWS
//! requires (its documentation, and the AWS-behaviour layer's clock that plays it), NOT from
//! `mlops`' own graph, so that a needless edge in `graph/build.rs` shows as time lost.
//!
//! Each step is a sequence of requests that depend on each other (one round trip each), then a
//! wait on AWS's clock; it starts once every step it names has finished. The example stack
//! without add-ons: two zones, one NAT gateway, a cluster with Secrets encrypted by a key of
//! the stack, one node group, an IRSA role, a bucket and a repository.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::aws_layer::Clock;

/// One step: `rounds` requests one after the other, then `wait` on AWS's clock.
pub struct Step {
    pub name: &'static str,
    pub after: &'static [&'static str],
    pub rounds: u32,
    pub wait: Duration,
}

fn step(name: &'static str, after: &'static [&'static str], rounds: u32, wait: Duration) -> Step {
    Step {
        name,
        after,
        rounds,
        wait,
    }
}

/// What creating the example stack requires, in order.
pub fn apply(clock: &Clock) -> Vec<Step> {
    let now = Duration::ZERO;
    vec![
        // CreateVpc, then its two DNS attributes (one ModifyVpcAttribute each, at once).
        step("vpc", &[], 2, now),
        step("internet_gateway", &["vpc"], 2, now),
        // CreateSubnet, then ModifySubnetAttribute (public IPs on launch) for the public ones.
        step("subnet.public", &["vpc"], 2, now),
        step("subnet.private", &["vpc"], 1, now),
        step("eip", &[], 1, now),
        // A public NAT gateway needs its subnet, its address and the VPC's internet gateway;
        // then DescribeNatGateways until `available`.
        step(
            "nat_gateway",
            &["subnet.public", "eip", "internet_gateway"],
            1,
            clock.nat_create,
        ),
        step("nat_gateway.seen", &["nat_gateway"], 1, now),
        step("route_table", &["vpc"], 1, now),
        step("route.public", &["route_table", "internet_gateway"], 1, now),
        step(
            "route.private",
            &["route_table", "nat_gateway.seen"],
            1,
            now,
        ),
        step(
            "association",
            &["route_table", "subnet.public", "subnet.private"],
            1,
            now,
        ),
        // CreateRole; EKS cannot use a new role for a while (IAM propagation).
        step("iam_role.cluster", &[], 1, now),
        step(
            "iam_role.cluster.usable",
            &["iam_role.cluster"],
            0,
            clock.role_propagation,
        ),
        step("attachment.cluster", &["iam_role.cluster"], 1, now),
        step("kms_key", &[], 1, now),
        step("policy.secrets", &["iam_role.cluster", "kms_key"], 1, now),
        // The control plane needs its subnets, its role (usable, with its policies) and the key;
        // then DescribeCluster until ACTIVE.
        step(
            "eks_cluster",
            &[
                "subnet.private",
                "iam_role.cluster.usable",
                "attachment.cluster",
                "policy.secrets",
            ],
            1,
            clock.cluster_create,
        ),
        step("eks_cluster.seen", &["eks_cluster"], 1, now),
        step("iam_role.node", &[], 1, now),
        step(
            "iam_role.node.usable",
            &["iam_role.node"],
            0,
            clock.role_propagation,
        ),
        step("attachment.node", &["iam_role.node"], 1, now),
        // Nodes need an ACTIVE cluster, their role and a way out (the NAT routes).
        step(
            "eks_node_group",
            &[
                "eks_cluster.seen",
                "iam_role.node.usable",
                "attachment.node",
                "route.private",
                "association",
            ],
            1,
            clock.node_group_create,
        ),
        step("eks_node_group.seen", &["eks_node_group"], 1, now),
        step("iam_oidc_provider", &["eks_cluster.seen"], 1, now),
        step("iam_role.irsa", &["iam_oidc_provider"], 1, now),
        // CreateBucket (tagged), then its versioning, encryption and public access block at once.
        step("s3_bucket", &[], 2, now),
        step("policy.irsa", &["iam_role.irsa", "s3_bucket"], 1, now),
        // CreateRepository, then its lifecycle policy.
        step("ecr_repository", &[], 2, now),
    ]
}

/// What deleting the example stack requires, in order.
pub fn destroy(clock: &Clock) -> Vec<Step> {
    let now = Duration::ZERO;
    vec![
        // DeleteNodegroup, DELETING for a while, then DescribeNodegroup finds it gone.
        step("eks_node_group", &[], 1, clock.node_group_delete),
        step("eks_node_group.gone", &["eks_node_group"], 1, now),
        // EKS refuses to delete a cluster that still has node groups.
        step(
            "eks_cluster",
            &["eks_node_group.gone"],
            1,
            clock.cluster_delete,
        ),
        step("eks_cluster.gone", &["eks_cluster"], 1, now),
        // The network interfaces EKS left keep the cluster's subnets busy for a while.
        step(
            "eks_cluster.enis",
            &["eks_cluster"],
            0,
            clock.in_use_after_cluster,
        ),
        step("policy.irsa", &[], 1, now),
        step("iam_role.irsa", &["policy.irsa"], 1, now),
        step("iam_oidc_provider", &[], 1, now),
        // DetachRolePolicy / DeleteRolePolicy at once, then DeleteRole.
        step("iam_role.node", &["eks_node_group.gone"], 2, now),
        step("iam_role.cluster", &["eks_cluster.gone"], 2, now),
        step("kms_key", &["eks_cluster.gone"], 1, now),
        // DeleteNatGateway, deleting for a while (its address and subnet held), then seen gone.
        step("nat_gateway", &[], 1, clock.nat_delete),
        step("nat_gateway.gone", &["nat_gateway"], 1, now),
        step("eip", &["nat_gateway.gone"], 1, now),
        // Routes go with their tables; a table goes once its associations are removed.
        step("association", &[], 1, now),
        step("route_table", &["association"], 1, now),
        step(
            "subnet.private",
            &["eks_cluster.gone", "eks_cluster.enis", "association"],
            1,
            now,
        ),
        step(
            "subnet.public",
            &["nat_gateway.gone", "association"],
            1,
            now,
        ),
        // The gateway detaches once no public address is mapped in the VPC (the NAT's).
        step("internet_gateway", &["nat_gateway.gone", "eip"], 2, now),
        step(
            "vpc",
            &[
                "subnet.private",
                "subnet.public",
                "internet_gateway",
                "route_table",
            ],
            1,
            now,
        ),
        // ListObjectVersions, then DeleteBucket.
        step("s3_bucket", &[], 2, now),
        step("ecr_repository", &[], 1, now),
    ]
}

/// The length of the critical path of `steps` with `latency` per request, and the steps on it.
pub fn critical_path(steps: &[Step], latency: Duration) -> (Duration, Vec<&'static str>) {
    let by_name: BTreeMap<&str, &Step> = steps.iter().map(|s| (s.name, s)).collect();
    let mut finish: BTreeMap<&str, (Duration, Option<&'static str>)> = BTreeMap::new();
    fn visit(
        name: &'static str,
        by_name: &BTreeMap<&str, &Step>,
        latency: Duration,
        finish: &mut BTreeMap<&'static str, (Duration, Option<&'static str>)>,
    ) -> Duration {
        if let Some((at, _)) = finish.get(name) {
            return *at;
        }
        let step = by_name
            .get(name)
            .unwrap_or_else(|| panic!("the model names `{name}`, which it does not define"));
        let mut start = Duration::ZERO;
        let mut via = None;
        for before in step.after {
            let at = visit(before, by_name, latency, finish);
            if at >= start {
                start = at;
                via = Some(*before);
            }
        }
        let end = start + latency * step.rounds + step.wait;
        finish.insert(name, (end, via));
        end
    }
    for step in steps {
        visit(step.name, &by_name, latency, &mut finish);
    }
    let (last, (length, _)) = finish
        .iter()
        .max_by_key(|(_, (at, _))| *at)
        .map(|(n, v)| (*n, *v))
        .expect("steps");
    let mut path = vec![last];
    while let Some((_, Some(before))) = finish.get(path.last().unwrap()) {
        path.push(before);
    }
    path.reverse();
    (length, path)
}
