//! End to end against the AWS emulator (moto, started per test on 127.0.0.1): `mlops` builds,
//! re-plans, repairs, replaces and destroys real (emulated) AWS objects. Every check goes
//! through the AWS SDK, never through mlops' own state.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::apiserver::TestApiServer;
use support::inventory::*;
use support::{example_as, example_with_addons, leftovers, Aws, Emulator, Project};

#[test]
fn the_reference_stack_is_built_checked_replanned_and_destroyed() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "ref";
    let project = Project::new(&moto, stack, &example_as(stack));

    let applied = project.apply().ok();
    assert!(
        applied
            .stderr
            .contains("Apply complete: 33 added, 0 changed, 0 destroyed"),
        "{}",
        applied.stderr
    );
    assert_eq!(inventory(&aws, stack), reference_inventory());

    aws.run(async {
        // Network: the VPC, its subnets with the load-balancer tags, routes to the gateways.
        let vpc = aws
            .ec2
            .describe_vpcs()
            .filters(stack_filter(stack))
            .send()
            .await
            .unwrap();
        let vpc = &vpc.vpcs()[0];
        assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
        let subnets = aws
            .ec2
            .describe_subnets()
            .filters(stack_filter(stack))
            .send()
            .await
            .unwrap();
        let mut cidrs: Vec<(&str, &str, bool)> = subnets
            .subnets()
            .iter()
            .map(|s| {
                let elb = s
                    .tags()
                    .iter()
                    .any(|t| t.key() == Some("kubernetes.io/role/elb"));
                (s.cidr_block().unwrap(), s.availability_zone().unwrap(), elb)
            })
            .collect();
        cidrs.sort();
        assert_eq!(
            cidrs,
            vec![
                ("10.0.1.0/24", "us-west-2a", false),
                ("10.0.101.0/24", "us-west-2a", true),
                ("10.0.102.0/24", "us-west-2b", true),
                ("10.0.2.0/24", "us-west-2b", false),
            ]
        );
        let tables = aws
            .ec2
            .describe_route_tables()
            .filters(stack_filter(stack))
            .send()
            .await
            .unwrap();
        let defaults: Vec<(bool, bool)> = tables
            .route_tables()
            .iter()
            .flat_map(|t| t.routes())
            .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .map(|r| {
                (
                    r.gateway_id().is_some_and(|g| g.starts_with("igw-")),
                    r.nat_gateway_id().is_some(),
                )
            })
            .collect();
        assert_eq!(
            defaults.iter().filter(|(igw, _)| *igw).count(),
            1,
            "one public default route"
        );
        assert_eq!(
            defaults.iter().filter(|(_, nat)| *nat).count(),
            2,
            "two private default routes"
        );

        // The cluster, its node group, and IRSA.
        let cluster = aws
            .eks
            .describe_cluster()
            .name("ref-cluster")
            .send()
            .await
            .unwrap();
        let cluster = cluster.cluster().unwrap();
        assert_eq!(cluster.version(), Some("1.33"));
        let group = aws.node_group("ref-cluster", "default").await;
        let scaling = group.nodegroup().unwrap().scaling_config().unwrap();
        assert_eq!(
            (
                scaling.min_size(),
                scaling.desired_size(),
                scaling.max_size()
            ),
            (Some(1), Some(2), Some(3))
        );
        let node_policies = aws
            .iam
            .list_attached_role_policies()
            .role_name("ref-eks-node")
            .send()
            .await
            .unwrap();
        assert_eq!(node_policies.attached_policies().len(), 3);
        let irsa = aws
            .iam
            .get_role()
            .role_name("ref-irsa-kserve-s3")
            .send()
            .await
            .unwrap();
        let trust = irsa.role().unwrap().assume_role_policy_document().unwrap();
        assert!(
            trust.contains("system%3Aserviceaccount%3Akserve-inference%3Akserve-sa")
                || trust.contains("system:serviceaccount:kserve-inference:kserve-sa"),
            "{trust}"
        );

        // Storage.
        let versioning = aws
            .s3
            .get_bucket_versioning()
            .bucket("ref-models")
            .send()
            .await
            .unwrap();
        assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
        let block = aws
            .s3
            .get_public_access_block()
            .bucket("ref-models")
            .send()
            .await
            .unwrap();
        assert_eq!(
            block
                .public_access_block_configuration()
                .unwrap()
                .block_public_acls(),
            Some(true)
        );
        let policy = aws
            .ecr
            .get_lifecycle_policy()
            .repository_name("wine-model")
            .send()
            .await
            .unwrap();
        assert!(policy.lifecycle_policy_text().unwrap().contains("30"));
    });

    let replan = project.plan_exit_code();
    assert_eq!(
        replan.code, 0,
        "a second plan must find nothing to do:\n{}",
        replan.stdout
    );

    let output = project.mlops(&["output", stack, "--json"]).ok();
    let outputs: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert!(outputs["cluster_endpoint"].is_string(), "{outputs}");
    assert!(outputs["irsa_role_arns"]["kserve-s3"]
        .as_str()
        .unwrap()
        .ends_with("role/ref-irsa-kserve-s3"));
    assert!(outputs["repository_urls"]["wine-model"]
        .as_str()
        .unwrap()
        .ends_with("/wine-model"));

    let destroyed = project.destroy().ok();
    assert!(
        destroyed
            .stderr
            .contains("Destroy complete: 0 added, 0 changed, 33 destroyed"),
        "{}",
        destroyed.stderr
    );
    assert_eq!(inventory(&aws, stack), nothing_left());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.state_path(stack)).unwrap()).unwrap();
    assert_eq!(state["resources"], serde_json::json!({}));
}

/// Drift made outside mlops is shown and repaired, except a node group's desired size, which
/// EKS's cluster autoscaler moves within min and max: it is only the size at creation unless
/// the spec sets `manage_desired = true`, so an apply never scales the group back.
#[test]
fn drift_made_outside_mlops_is_shown_and_repaired() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "drift";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();

    aws.run(async {
        let group = aws.node_group("drift-cluster", "default").await;
        aws.eks
            .update_nodegroup_config()
            .cluster_name("drift-cluster")
            .nodegroup_name(group.nodegroup().unwrap().nodegroup_name().unwrap())
            .scaling_config(
                aws_sdk_eks::types::NodegroupScalingConfig::builder()
                    .min_size(1)
                    .desired_size(3)
                    .max_size(3)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        aws.ecr
            .delete_repository()
            .repository_name("wine-model")
            .force(true)
            .send()
            .await
            .unwrap();
        aws.s3
            .put_bucket_versioning()
            .bucket("drift-models")
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let vpc = aws
            .ec2
            .describe_vpcs()
            .filters(stack_filter(stack))
            .send()
            .await
            .unwrap();
        aws.ec2
            .delete_tags()
            .resources(vpc.vpcs()[0].vpc_id().unwrap())
            .tags(aws_sdk_ec2::types::Tag::builder().key("env").build())
            .send()
            .await
            .unwrap();
    });

    let plan = project.plan_exit_code();
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    for expected in [
        "# ecr_repository.wine-model will be created (deleted outside mlops)",
        "# s3_bucket.models will be updated in-place",
        "~ versioning = false -> true",
        "# vpc will be updated in-place",
        "+ \"env\"",
        "Plan: 1 to add, 2 to change, 0 to destroy.",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "plan lacks `{expected}`:\n{}",
            plan.stdout
        );
    }
    assert!(!plan.stdout.contains("eks_node_group"), "{}", plan.stdout);

    project.apply().ok();
    assert_eq!(project.plan_exit_code().code, 0);
    let desired_size = || {
        aws.run(async {
            let group = aws.node_group("drift-cluster", "default").await;
            group
                .nodegroup()
                .unwrap()
                .scaling_config()
                .unwrap()
                .desired_size()
        })
    };
    assert_eq!(desired_size(), Some(3), "the autoscaler's size is kept");
    // Asked for, the spec's size holds again.
    project.write_stack(
        &project
            .stack_text()
            .replace("desired = 2", "desired = 2\nmanage_desired = true"),
    );
    let plan = project.plan_exit_code();
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("~ desired_size = 3 -> 2"),
        "{}",
        plan.stdout
    );
    project.apply().ok();
    assert_eq!(desired_size(), Some(2));
    assert_eq!(project.plan_exit_code().code, 0);
    aws.run(async {
        let versioning = aws
            .s3
            .get_bucket_versioning()
            .bucket("drift-models")
            .send()
            .await
            .unwrap();
        assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
        assert!(aws
            .ecr
            .describe_repositories()
            .repository_names("wine-model")
            .send()
            .await
            .is_ok());
    });
    project.destroy().ok();
    assert_eq!(inventory(&aws, stack), nothing_left());
}

/// The status `groups_of` gives a group deleted between the list and its describe.
const DELETED_MEANWHILE: &str = "deleted meanwhile";

/// The node groups of `cluster` made for the spec's `key` (`<key>-` and 8 hex digits), each
/// with its EKS status, or `DELETED_MEANWHILE`.
fn groups_of(aws: &Aws, cluster: &str, key: &str) -> BTreeMap<String, String> {
    aws.run(async {
        let mut groups = BTreeMap::new();
        for name in aws.node_group_names(cluster, key).await {
            let status = match aws
                .eks
                .describe_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(&name)
                .send()
                .await
            {
                Ok(got) => got
                    .nodegroup()
                    .and_then(|g| g.status())
                    .map_or("", |s| s.as_str())
                    .to_string(),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    DELETED_MEANWHILE.to_string()
                }
                Err(e) => panic!("describe node group {name}: {e}"),
            };
            groups.insert(name, status);
        }
        groups
    })
}

/// EKS cannot change a managed node group's instance types: it needs a new group. Created
/// before the old one is deleted (create-before-destroy under a new name), the pods always
/// have nodes: polled through the SDK during the apply, some group is ACTIVE at every look,
/// and moto's record of the requests it received shows the CreateNodegroup of the successor
/// before the DeleteNodegroup of the old group.
#[test]
fn an_instance_type_change_makes_the_new_node_group_before_deleting_the_old() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "repl";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();
    let before = groups_of(&aws, "repl-cluster", "default");
    assert_eq!(before.len(), 1, "{before:?}");
    let old = before.keys().next().unwrap().clone();

    project.write_stack(
        &project
            .stack_text()
            .replace("[\"t3.medium\"]", "[\"m5.large\"]"),
    );
    let plan = project.mlops(&["plan", stack]).ok();
    assert!(
        plan.stdout.contains(
            "# eks_node_group.default must be replaced: the new one first, then the old one is deleted"
        ),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("+/- eks_node_group.default {"));
    assert!(plan.stdout.contains("# forces replacement"));
    // A node group is protected: its replacement needs the user's word.

    moto.start_recording();
    let mut child = project
        .command(&[
            "apply",
            stack,
            "--auto-approve",
            "--allow-replace",
            "eks_node_group.default",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut looks = 0;
    loop {
        let done = child.try_wait().unwrap().is_some();
        let groups = groups_of(&aws, "repl-cluster", "default");
        // A look in which the old group went between the list and its describe shows nothing
        // (moto makes the new one ACTIVE and deletes the old one at once): look again.
        let inconclusive = groups.values().any(|s| s == DELETED_MEANWHILE);
        assert!(
            inconclusive || groups.values().any(|s| s == "ACTIVE"),
            "no ACTIVE node group during the apply: {groups:?}"
        );
        looks += 1;
        if done {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 added, 0 changed, 1 destroyed"),
        "{stderr}"
    );
    assert!(looks > 1, "the apply was looked at while it ran");

    let after = groups_of(&aws, "repl-cluster", "default");
    assert_eq!(after.len(), 1, "{after:?}");
    let new = after.keys().next().unwrap().clone();
    assert_ne!(new, old, "a new group under a new name");
    aws.run(async {
        let group = aws.node_group("repl-cluster", "default").await;
        let group = group.nodegroup().unwrap();
        assert_eq!(group.instance_types(), ["m5.large".to_string()]);
        assert_eq!(group.status().map(|s| s.as_str()), Some("ACTIVE"));
    });
    let requests = moto.recorded_requests();
    let at = |wanted: &str| {
        requests
            .iter()
            .position(|r| r == wanted)
            .unwrap_or_else(|| panic!("no `{wanted}` among {requests:#?}"))
    };
    let created = at("POST /clusters/repl-cluster/node-groups");
    let deleted = at(&format!("DELETE /clusters/repl-cluster/node-groups/{old}"));
    assert!(created < deleted, "{requests:#?}");
    assert_eq!(project.plan_exit_code().code, 0);
    project.destroy().ok();
}

/// The example over three zones, `us-west-2a` to `us-west-2c`.
fn over_three_zones(text: &str) -> String {
    text.replace(
        "azs = [\"us-west-2a\", \"us-west-2b\"]",
        "azs = [\"us-west-2a\", \"us-west-2b\", \"us-west-2c\"]",
    )
    .replace(
        "public_subnets = [\"10.0.101.0/24\", \"10.0.102.0/24\"]",
        "public_subnets = [\"10.0.101.0/24\", \"10.0.102.0/24\", \"10.0.103.0/24\"]",
    )
    .replace(
        "private_subnets = [\"10.0.1.0/24\", \"10.0.2.0/24\"]",
        "private_subnets = [\"10.0.1.0/24\", \"10.0.2.0/24\", \"10.0.3.0/24\"]",
    )
}

/// The control plane of `text` kept in `us-west-2a` and `us-west-2b` (`eks.zones`).
fn control_plane_in_two_zones(text: &str) -> String {
    text.replace(
        "public_access_cidrs = [\"0.0.0.0/0\"]",
        "public_access_cidrs = [\"0.0.0.0/0\"]\nzones = [\"us-west-2a\", \"us-west-2b\"]",
    )
}

/// The cluster as EKS describes it: ARN, creation time and subnets.
fn cluster_of(aws: &Aws, name: &str) -> (String, Option<i64>, Vec<String>) {
    aws.run(async {
        let got = aws.eks.describe_cluster().name(name).send().await.unwrap();
        let c = got.cluster().unwrap();
        let subnets = c.resources_vpc_config().unwrap().subnet_ids().to_vec();
        (
            c.arn().unwrap().to_string(),
            c.created_at().map(|t| t.secs()),
            subnets,
        )
    })
}

/// The zones of `subnets`, sorted, as EC2 reports them.
fn zones_of(aws: &Aws, subnets: Vec<String>) -> Vec<String> {
    aws.run(async {
        let got = aws
            .ec2
            .describe_subnets()
            .set_subnet_ids(Some(subnets))
            .send()
            .await
            .unwrap();
        let mut zones: Vec<String> = got
            .subnets()
            .iter()
            .filter_map(|s| s.availability_zone().map(str::to_string))
            .collect();
        zones.sort();
        zones
    })
}

/// EKS moves a cluster to other subnets in place (UpdateClusterConfig) as long as they are in
/// the zones it was made with. A cluster over three zones whose control plane leaves one
/// (`eks.zones`) stays the same cluster (ARN, creation time), on the subnets of the two zones
/// left, checked through the SDK; moto's record shows the update and no delete. (moto keeps
/// only what the last UpdateClusterConfig sent, so the endpoint settings then read back as off,
/// which AWS does not do: this test does not re-plan after it.)
#[test]
fn the_control_plane_leaving_a_zone_updates_the_cluster_in_place() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "shrink";
    let three = over_three_zones(&example_as(stack));
    let project = Project::new(&moto, stack, &three);
    project.apply().ok();
    let (arn, created, subnets) = cluster_of(&aws, "shrink-cluster");
    assert_eq!(subnets.len(), 3);

    project.write_stack(&control_plane_in_two_zones(&three));
    let plan = project.mlops(&["plan", stack]).ok();
    assert!(
        plan.stdout
            .contains("# eks_cluster will be updated in-place"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("eks_node_group"), "{}", plan.stdout);
    moto.start_recording();
    project.apply().ok();
    let (arn_now, created_now, subnets_now) = cluster_of(&aws, "shrink-cluster");
    assert_eq!((arn_now, created_now), (arn, created), "the same cluster");
    assert_eq!(subnets_now.len(), 2, "{subnets_now:?}");
    assert!(subnets_now.iter().all(|s| subnets.contains(s)));
    assert_eq!(zones_of(&aws, subnets_now), ["us-west-2a", "us-west-2b"]);
    let requests = moto.recorded_requests();
    assert!(
        requests.contains(&"POST /clusters/shrink-cluster/update-config".to_string()),
        "{requests:#?}"
    );
    assert!(!requests.contains(&"DELETE /clusters/shrink-cluster".to_string()));
    project.destroy().ok();
}

/// Applies the stack as written (a third zone added to the VPC), allowing the replacement of
/// the node group, whose successor spreads to the new zone: the cluster `<stack>-cluster` is
/// sent neither an update nor a delete (moto's record) and is as `before` (DescribeCluster),
/// the node group runs in the three zones (the SDK), and a re-plan finds nothing to do.
fn spreads_to_a_third_zone(
    moto: &Emulator,
    project: &Project,
    before: &(String, Option<i64>, Vec<String>),
) {
    let aws = moto.clients();
    let cluster = format!("{}-cluster", project.stack);
    moto.start_recording();
    project
        .mlops(&[
            "apply",
            &project.stack,
            "--auto-approve",
            "--allow-replace",
            "eks_node_group.default",
        ])
        .ok();
    assert_eq!(&cluster_of(&aws, &cluster), before);
    let requests = moto.recorded_requests();
    assert!(
        !requests.iter().any(
            |r| r.starts_with(&format!("POST /clusters/{cluster}/update"))
                || *r == format!("DELETE /clusters/{cluster}")
        ),
        "{requests:#?}"
    );
    let group_subnets = aws.run(async {
        let group = aws.node_group(&cluster, "default").await;
        group.nodegroup().unwrap().subnets().to_vec()
    });
    assert_eq!(
        zones_of(&aws, group_subnets),
        ["us-west-2a", "us-west-2b", "us-west-2c"]
    );
    assert_eq!(project.plan_exit_code().code, 0);
}

/// A zone added to the VPC while the control plane stays in the zones it was made with
/// (`eks.zones`): the node group gets a subnet there (a new group, made before the old one is
/// deleted) and the cluster is sent nothing, neither an update nor a delete (moto's record):
/// the same cluster on the same subnets, the node group over all three zones (the SDK).
#[test]
fn an_added_zone_spreads_the_node_group_and_leaves_the_cluster() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "zone";
    let two = control_plane_in_two_zones(&example_as(stack));
    let project = Project::new(&moto, stack, &two);
    project.apply().ok();
    let before = cluster_of(&aws, "zone-cluster");

    project.write_stack(&over_three_zones(&two));
    let plan = project.mlops(&["plan", stack]).ok();
    assert!(!plan.stdout.contains("# eks_cluster"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("+/- eks_node_group.default {"),
        "{}",
        plan.stdout
    );
    spreads_to_a_third_zone(&moto, &project, &before);
    project.destroy().ok();
}

/// EKS keeps a cluster in the availability zones it was made with; without `[eks] zones` so
/// does mlops. A zone added to the VPC gets its subnets and the node group spreads to it (a new
/// group, allowed), while the cluster is sent nothing: the same cluster (ARN, creation time) on
/// the same subnets in its two zones, read through DescribeCluster and DescribeSubnets. A VPC
/// that then keeps only one of the cluster's zones needs a new cluster (EKS wants two): the
/// apply refuses it before any call and names the cause, and the cluster stays.
#[test]
fn an_added_zone_without_eks_zones_keeps_the_cluster() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "azs";
    let two = example_as(stack);
    let project = Project::new(&moto, stack, &two);
    project.apply().ok();
    let before = cluster_of(&aws, "azs-cluster");

    project.write_stack(&over_three_zones(&two));
    let plan = project.mlops(&["plan", stack]).ok();
    assert!(!plan.stdout.contains("# eks_cluster"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("# subnet.private.us-west-2c will be created"),
        "{}",
        plan.stdout
    );
    spreads_to_a_third_zone(&moto, &project, &before);
    assert_eq!(
        zones_of(&aws, before.2.clone()),
        ["us-west-2a", "us-west-2b"]
    );

    // Zone `b` leaves the VPC: only `a` of the cluster's zones is left.
    let without_b = over_three_zones(&two)
        .replace("\"us-west-2b\", ", "")
        .replace("\"10.0.102.0/24\", ", "")
        .replace("\"10.0.2.0/24\", ", "");
    project.write_stack(&without_b);
    let refused = project.apply();
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("`eks_cluster` would be replaced: EKS keeps a cluster in the zones it was made with (`us-west-2a`, `us-west-2b`) and needs two of them; only `us-west-2a` is left in the VPC"),
        "{}",
        refused.stderr
    );
    assert_eq!(cluster_of(&aws, "azs-cluster"), before);
    project.write_stack(&over_three_zones(&two));
    project.destroy().ok();
}

#[test]
fn a_lost_state_is_rebuilt_by_adopting_tagged_objects_without_duplicates() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "lost";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();
    // As if every state write after the cloud calls had been lost.
    std::fs::remove_file(project.state_path(stack)).unwrap();

    let again = project.apply().ok();
    assert!(again.stderr.contains("adopting it"), "{}", again.stderr);
    assert_eq!(inventory(&aws, stack), reference_inventory());
    assert_eq!(project.plan_exit_code().code, 0);
    project.destroy().ok();
    assert_eq!(inventory(&aws, stack), nothing_left());
}

/// Real EC2 makes an internet gateway in two calls (create, then attach), and a run can be
/// killed between them: the next run finds the tagged gateway detached. It adopts that gateway
/// and attaches it, instead of refusing it or making a second one.
#[test]
fn an_internet_gateway_left_detached_by_a_stopped_run_is_adopted_and_attached() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "detached";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();
    std::fs::remove_file(project.state_path(stack)).unwrap();
    let (gateway, vpc) = aws.run(async {
        let out = aws
            .ec2
            .describe_internet_gateways()
            .filters(stack_filter(stack))
            .send()
            .await
            .unwrap();
        let gateway = &out.internet_gateways()[0];
        let id = gateway.internet_gateway_id().unwrap().to_string();
        let vpc = gateway.attachments()[0].vpc_id().unwrap().to_string();
        aws.ec2
            .detach_internet_gateway()
            .internet_gateway_id(&id)
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        (id, vpc)
    });

    let again = project.apply().ok();
    assert!(again.stderr.contains(&gateway), "{}", again.stderr);
    let attached_to = aws.run(async {
        let out = aws
            .ec2
            .describe_internet_gateways()
            .internet_gateway_ids(&gateway)
            .send()
            .await
            .unwrap();
        out.internet_gateways()[0]
            .attachments()
            .iter()
            .filter_map(|a| a.vpc_id().map(str::to_string))
            .collect::<Vec<_>>()
    });
    assert_eq!(attached_to, [vpc]);
    assert_eq!(inventory(&aws, stack), reference_inventory());
    assert_eq!(project.plan_exit_code().code, 0);
    project.destroy().ok();
    assert_eq!(inventory(&aws, stack), nothing_left());
}

/// A run killed mid-apply (SIGKILL, as by an OOM killer): the next apply takes its lock over
/// (the holder is dead on this host), adopts what it made and completes the stack.
#[test]
fn an_apply_killed_mid_run_is_completed_by_the_next_one() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "killed";
    let project = Project::new(&moto, stack, &example_as(stack));
    let mut child = project
        .command(&["apply", stack, "--auto-approve", "--parallelism", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few resources are recorded.
    let state_path = project.state_path(stack);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let serial = std::fs::read_to_string(&state_path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|s| s["serial"].as_u64())
            .unwrap_or(0);
        if serial >= 6 || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "apply made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap();
    // The lock of the killed run stays behind, as after a real crash; its holder is verifiably
    // dead on this host, so the next apply takes it over, with a warning naming it.
    let lock = project
        .dir
        .path()
        .join(format!("stacks/state/{stack}.json.lock"));
    let left_behind = lock.exists();
    let next = project.apply().ok();
    if left_behind {
        assert!(
            next.stderr.contains("took over the lock")
                && next.stderr.contains("is no longer running on this host"),
            "{}",
            next.stderr
        );
    }
    assert_eq!(inventory(&aws, stack), reference_inventory());
    assert_eq!(project.plan_exit_code().code, 0);
    project.destroy().ok();
    assert_eq!(inventory(&aws, stack), nothing_left());
}

#[test]
fn three_zones_with_a_nat_gateway_each() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "perz";
    let text = example_as(stack)
        .replace(
            "azs = [\"us-west-2a\", \"us-west-2b\"]",
            "azs = [\"us-west-2a\", \"us-west-2b\", \"us-west-2c\"]",
        )
        .replace(
            "[\"10.0.101.0/24\", \"10.0.102.0/24\"]",
            "[\"10.0.101.0/24\", \"10.0.102.0/24\", \"10.0.103.0/24\"]",
        )
        .replace(
            "[\"10.0.1.0/24\", \"10.0.2.0/24\"]",
            "[\"10.0.1.0/24\", \"10.0.2.0/24\", \"10.0.3.0/24\"]",
        )
        .replace("nat = \"single\"", "nat = \"per_az\"");
    let project = Project::new(&moto, stack, &text);
    project.apply().ok();
    let found = inventory(&aws, stack);
    assert_eq!(
        (
            found["subnet"],
            found["nat_gateway"],
            found["eip"],
            found["route_table"]
        ),
        (6, 3, 3, 4)
    );
    aws.run(async {
        // Each private route table sends its zone's traffic through that zone's NAT gateway.
        let nat_zone: BTreeMap<String, String> = available_nat_gateways(&aws, stack)
            .await
            .into_iter()
            .collect();
        let used: std::collections::BTreeSet<String> = private_default_routes(&aws, stack)
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(used.len(), 3, "three private tables, three NAT gateways");
        assert!(used.iter().all(|id| nat_zone.contains_key(id)));
    });
    assert_eq!(project.plan_exit_code().code, 0);
    project.destroy().ok();
    assert_eq!(inventory(&aws, stack).values().sum::<usize>(), 0);
}

#[test]
fn two_node_groups_one_spot_and_three_irsa_roles() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "multi";
    let text = example_as(stack)
        + "\n[eks.node_groups.gpu]\ninstance_types = [\"g5.xlarge\"]\ncapacity = \"spot\"\nmin = 0\nmax = 2\ndesired = 1\n\
           taints = [{ key = \"nvidia.com/gpu\", value = \"true\", effect = \"NO_SCHEDULE\" }]\n\
           \n[irsa.mlflow]\nnamespace = \"mlflow\"\nservice_account = \"mlflow\"\npolicy_arns = [\"arn:aws:iam::aws:policy/AmazonS3FullAccess\"]\n\
           \n[irsa.ecr-pull]\nnamespace = \"kserve-inference\"\nservice_account = \"puller\"\npolicy_arns = [\"arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly\"]\n";
    let project = Project::new(&moto, stack, &text);
    project.apply().ok();
    assert_eq!(
        inventory(&aws, stack)["iam_role"],
        5,
        "cluster, node and three IRSA roles"
    );
    aws.run(async {
        let gpu = aws.node_group("multi-cluster", "gpu").await;
        let gpu = gpu.nodegroup().unwrap();
        assert_eq!(gpu.capacity_type().map(|c| c.as_str()), Some("SPOT"));
        assert_eq!(gpu.taints().len(), 1);
        // Chosen from the instance type: an AMI with NVIDIA's driver and device plugin.
        assert_eq!(
            gpu.ami_type().map(|a| a.as_str()),
            Some("BOTTLEROCKET_x86_64_NVIDIA")
        );
        for (role, subject) in [
            ("multi-irsa-mlflow", "system:serviceaccount:mlflow:mlflow"),
            (
                "multi-irsa-ecr-pull",
                "system:serviceaccount:kserve-inference:puller",
            ),
            (
                "multi-irsa-kserve-s3",
                "system:serviceaccount:kserve-inference:kserve-sa",
            ),
        ] {
            let got = aws.iam.get_role().role_name(role).send().await.unwrap();
            let doc = got
                .role()
                .unwrap()
                .assume_role_policy_document()
                .unwrap()
                .replace("%3A", ":");
            assert!(doc.contains(subject), "{role}: {doc}");
            assert!(doc.contains("sts.amazonaws.com"));
        }
    });
    assert_eq!(project.plan_exit_code().code, 0);
    project.destroy().ok();
    assert_eq!(inventory(&aws, stack).values().sum::<usize>(), 0);
}

#[test]
fn a_bucket_with_objects_is_only_destroyed_with_force_destroy() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "full";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();
    aws.run(async {
        for version in ["v1", "v2"] {
            aws.s3
                .put_object()
                .bucket("full-models")
                .key("wine-model/model.joblib")
                .body(version.as_bytes().to_vec().into())
                .send()
                .await
                .unwrap();
        }
    });

    let refused = project.destroy();
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("`s3_bucket.models`: destroy failed: BucketNotEmpty"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("force_destroy = true"),
        "{}",
        refused.stderr
    );
    let left = inventory(&aws, stack);
    assert_eq!(left["s3_bucket"], 1, "the bucket and its objects stay");
    let state = std::fs::read_to_string(project.state_path(stack)).unwrap();
    assert!(
        state.contains("\"s3_bucket.models\""),
        "the state still holds the bucket"
    );

    project.write_stack(
        &project
            .stack_text()
            .replace("force_destroy = false", "force_destroy = true"),
    );
    project.apply().ok();
    project.destroy().ok();
    assert_eq!(inventory(&aws, stack).values().sum::<usize>(), 0);
}

#[test]
fn a_stack_tag_change_updates_every_kind_in_place() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "retag";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();
    project.write_stack(&project.stack_text().replace(
        "tags = { env = \"dev\" }",
        "tags = { env = \"prod\", team = \"a\" }",
    ));
    // The emulator cannot tag node groups (TagResource answers ResourceNotFoundException for
    // their ARNs), so the node group is left out; every other kind is retagged.
    let targets = [
        "iam_role.irsa.kserve-s3",
        "iam_oidc_provider",
        "ecr_repository.wine-model",
        "s3_bucket.models",
        "eks_cluster",
    ];
    let mut args = vec!["apply", stack, "--auto-approve"];
    for t in &targets {
        args.extend(["--target", t]);
    }
    let applied = project.mlops(&args).ok();
    assert!(applied.stderr.contains("0 added"), "{}", applied.stderr);
    assert!(
        applied.stderr.contains("0 destroyed"),
        "a tag change replaces nothing: {}",
        applied.stderr
    );

    aws.run(async {
        let role = role_tags(&aws, "retag-irsa-kserve-s3").await;
        assert_eq!((role["env"].as_str(), role["team"].as_str()), ("prod", "a"));

        let providers = aws
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .unwrap();
        let arn = providers.open_id_connect_provider_list()[0].arn().unwrap();
        assert_eq!(oidc_provider_tags(&aws, arn).await["team"], "a");

        let repo = aws
            .ecr
            .describe_repositories()
            .repository_names("wine-model")
            .send()
            .await
            .unwrap();
        let repo_arn = repo.repositories()[0].repository_arn().unwrap();
        assert_eq!(repository_tags(&aws, repo_arn).await["env"], "prod");

        assert_eq!(bucket_tags(&aws, "retag-models").await["team"], "a");

        let cluster = aws
            .eks
            .describe_cluster()
            .name("retag-cluster")
            .send()
            .await
            .unwrap();
        let tags = cluster.cluster().unwrap().tags().unwrap();
        assert_eq!(tags.get("env").map(String::as_str), Some("prod"));

        let vpc = aws
            .ec2
            .describe_vpcs()
            .filters(stack_filter(stack))
            .send()
            .await
            .unwrap();
        assert!(vpc.vpcs()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("team") && t.value() == Some("a")));
    });
    // What the targets left out is still to be retagged, in place.
    let plan = project.mlops(&["plan", stack, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2);
    assert!(plan
        .stdout
        .contains("# eks_node_group.default will be updated in-place"));
    assert!(plan.stdout.contains("Plan: 0 to add,"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains(" to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    for target in targets {
        assert!(
            !plan.stdout.contains(&format!("# {target} will")),
            "{target} is done"
        );
    }
}

#[test]
fn a_saved_plan_applies_exactly_once() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "saved";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.mlops(&["plan", stack, "--out", "plan.json"]).ok();
    let applied = project.mlops(&["apply", "plan.json"]).ok();
    assert!(
        applied.stderr.contains("Apply complete: 33 added"),
        "{}",
        applied.stderr
    );
    assert_eq!(inventory(&aws, stack), reference_inventory());
    let again = project.mlops(&["apply", "plan.json"]);
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains("the state changed since the plan was made"),
        "{}",
        again.stderr
    );
    assert_eq!(
        inventory(&aws, stack),
        reference_inventory(),
        "a refused plan changes nothing"
    );
    project.destroy().ok();
}

#[test]
fn plan_all_refreshes_every_stack_for_the_nightly_drift_check() {
    let moto = Emulator::start();
    let built = Project::new(&moto, "nightly-a", &example_as("nightly-a"));
    built.apply().ok();
    std::fs::write(
        built.dir.path().join("stacks/nightly-b.toml"),
        example_as("nightly-b").replace("10.0.", "10.1."),
    )
    .unwrap();
    let run = built.mlops(&["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let table = run.stderr;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("nightly-a  no changes    0       0        0")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("nightly-b  changes      33")),
        "{table}"
    );
    built.destroy().ok();
}

/// Ctrl-C in the middle of an apply: what is in flight finishes, the state is saved, the lock
/// released, exit 130; the next apply completes the stack without duplicates.
#[test]
fn ctrl_c_finishes_what_is_in_flight_saves_and_exits_130() {
    interrupted_by("-INT", "sigint");
}

/// SIGTERM, what a CI service sends when it cancels a job, is handled like Ctrl-C.
#[test]
fn sigterm_is_handled_like_ctrl_c() {
    interrupted_by("-TERM", "sigterm");
}

/// Interrupts an apply with `signal` once it has saved a few operations, then checks what
/// Ctrl-C promises: exit 130, the lock released, the finished work kept.
fn interrupted_by(signal: &str, stack: &str) {
    let moto = Emulator::start();
    let aws = moto.clients();
    let project = Project::new(&moto, stack, &example_as(stack));
    let child = project
        .command(&["apply", stack, "--auto-approve", "--parallelism", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let state_path = project.state_path(stack);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let serial = std::fs::read_to_string(&state_path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|s| s["serial"].as_u64())
            .unwrap_or(0);
        if serial >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "apply made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(0) {
        // The apply won the race and finished first: nothing left to interrupt.
        assert!(stderr.contains("Apply complete"), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert!(
            stderr.contains("run the same command again to continue"),
            "{stderr}"
        );
    }
    let lock = project
        .dir
        .path()
        .join(format!("stacks/state/{stack}.json.lock"));
    assert!(!lock.exists(), "the lock is released on Ctrl-C");
    // What finished is in the state: the next apply completes the stack with no duplicates.
    project.apply().ok();
    assert_eq!(inventory(&aws, stack), reference_inventory());
    project.destroy().ok();
}

/// Every stdout line of a `--json` run, parsed.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn apply_and_destroy_json_print_one_event_per_line_and_a_result() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "events";
    let project = Project::new(&moto, stack, &example_as(stack));
    let applied = project
        .mlops(&["apply", stack, "--auto-approve", "--json"])
        .ok();
    let lines = json_lines(&applied.stdout);
    assert_eq!(lines[0]["type"], "plan");
    assert_eq!(lines[0]["plan"]["summary"]["add"], 33);
    let count = |kind: &str| lines.iter().filter(|l| l["type"] == kind).count();
    assert_eq!((count("started"), count("finished")), (33, 33));
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "result");
    assert_eq!(last["result"], "ok");
    assert_eq!(last["summary"]["add"], 33);
    assert_eq!(last["format_version"], "1.0");
    assert!(lines.iter().all(|l| l["time"].is_string()));

    aws.run(async {
        aws.s3
            .put_object()
            .bucket("events-models")
            .key("model.bin")
            .body(b"weights".to_vec().into())
            .send()
            .await
            .unwrap();
    });
    let refused = project.mlops(&["destroy", stack, "--auto-approve", "--json"]);
    assert_eq!(refused.code, 1);
    let last = json_lines(&refused.stdout).pop().unwrap();
    assert_eq!(last["result"], "error");
    assert_eq!(last["errors"][0]["address"], "s3_bucket.models");
    assert_eq!(last["errors"][0]["code"], "BucketNotEmpty");

    // The partial destroy removed what came before the bucket: bring it back, then a run
    // with nothing to do still ends with a result line.
    project
        .mlops(&["apply", stack, "--auto-approve", "--json"])
        .ok();
    let nothing = project
        .mlops(&["apply", stack, "--auto-approve", "--json"])
        .ok();
    let last = json_lines(&nothing.stdout).pop().unwrap();
    assert_eq!(
        (last["result"].as_str(), last["changes"].as_bool()),
        (Some("ok"), Some(false))
    );
}

/// `HH:MM:SS.mmm` as milliseconds of the day.
fn millis_of_day(clock: &str) -> u64 {
    let parts: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    ((parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1000.0) as u64
}

#[test]
fn apply_all_builds_every_stack_at_once_and_destroy_all_removes_them() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let project = Project::new(&moto, "fleet-a", &example_as("fleet-a"));
    // Fleet B has its own repository name (one region), and no IRSA: the emulator gives every
    // cluster the same OIDC issuer, so two stacks cannot both own a provider for it there.
    let irsa = support::EXAMPLE
        .split("\n\n")
        .find(|table| table.starts_with("[irsa.kserve-s3]"))
        .map(|table| format!("{table}\n"))
        .unwrap();
    let fleet_b = example_as("fleet-b")
        .replace("10.0.", "10.1.")
        .replace("[repositories.wine-model]", "[repositories.beer-model]");
    assert!(fleet_b.contains(&irsa));
    std::fs::write(
        project.dir.path().join("stacks/fleet-b.toml"),
        fleet_b.replace(&irsa, ""),
    )
    .unwrap();
    let refused = project.mlops(&["apply", "--all"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("runs with `--auto-approve`"),
        "{}",
        refused.stderr
    );

    let run = project.mlops(&["apply", "--all", "--auto-approve"]).ok();
    assert!(
        run.stderr.contains("[fleet-a] "),
        "progress lines name their stack"
    );
    assert!(run
        .stdout
        .contains("== stack `fleet-b` (stacks/fleet-b.toml)"));
    let rows: Vec<Vec<&str>> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("fleet-"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{}", run.stderr);
    assert_eq!(&rows[0][1..5], &["done", "33", "0", "0"], "{rows:?}");
    assert_eq!(&rows[1][1..5], &["done", "30", "0", "0"], "{rows:?}");
    let span = |row: &Vec<&str>| (millis_of_day(row[5]), millis_of_day(row[6]));
    let ((a_start, a_end), (b_start, b_end)) = (span(&rows[0]), span(&rows[1]));
    assert!(
        a_start < b_end && b_start < a_end,
        "the two applies overlap in time: {rows:?}"
    );
    assert_eq!(inventory(&aws, "fleet-a"), reference_inventory());
    let mut fleet_b = reference_inventory();
    fleet_b.insert("iam_role", 2);
    fleet_b.insert("iam_oidc_provider", 0);
    assert_eq!(inventory(&aws, "fleet-b"), fleet_b);

    project.mlops(&["destroy", "--all", "--auto-approve"]).ok();
    assert_eq!(inventory(&aws, "fleet-a"), nothing_left());
    assert_eq!(inventory(&aws, "fleet-b"), nothing_left());
}

/// The index of the first write that created or changed `namespace`'s Namespace object.
fn first_write_of_namespace(server: &TestApiServer, namespace: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .position(|r| {
            r.kind.as_deref() == Some("Namespace") && r.name.as_deref() == Some(namespace)
        })
        .unwrap_or_else(|| panic!("no write of namespace {namespace}"))
}

/// Issue 5's end-to-end: one `apply` against the emulator builds the AWS side, installs the four
/// add-ons in order into the test API server, and creates the IRSA service account annotated
/// with the role the emulator made; a second plan exits 0 and a second apply writes nothing to
/// the cluster; `destroy` deletes the gateway's load balancer first, uninstalls no add-on (the
/// cluster's deletion takes them) and leaves nothing in AWS tagged with the stack.
#[test]
fn apply_installs_the_addons_in_order_and_destroy_leaves_nothing() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let server = TestApiServer::start();
    let kubeconfig = server.kubeconfig().to_str().unwrap().to_string();
    let stack = "boot";
    let project = Project::new(&moto, stack, &example_with_addons(stack));
    let with_cluster = |args: &[&str]| project.mlops_in_cluster(&kubeconfig, args);

    let applied = with_cluster(&["apply", stack, "--auto-approve"]).ok();
    assert!(
        applied.stderr.contains("Apply complete: 39 added"),
        "{}",
        applied.stderr
    );
    assert_eq!(inventory(&aws, stack), reference_inventory());

    // In order, and no custom resource before its CRD was served.
    let order: Vec<usize> = ["cert-manager", "istio-system", "knative-serving", "kserve"]
        .iter()
        .map(|ns| first_write_of_namespace(&server, ns))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "namespaces written in the order {order:?}"
    );
    let unserved: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.is_unserved())
        .map(|r| r.to_string())
        .collect();
    assert!(
        unserved.is_empty(),
        "sent before their kind was served: {unserved:?}"
    );
    for (api_version, kind, namespace, name) in [
        (
            "apps/v1",
            "Deployment",
            "cert-manager",
            "cert-manager-webhook",
        ),
        ("apps/v1", "Deployment", "istio-system", "istiod"),
        ("v1", "Service", "istio-system", "istio-ingressgateway"),
        ("apps/v1", "Deployment", "knative-serving", "controller"),
        (
            "apps/v1",
            "Deployment",
            "kserve",
            "kserve-controller-manager",
        ),
    ] {
        let object = server.object(api_version, kind, Some(namespace), name);
        let object = object.unwrap_or_else(|| panic!("{kind} {namespace}/{name} is missing"));
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "mlops"
        );
    }
    let role_arn = aws.role_arn("boot-irsa-kserve-s3");
    let account = server
        .object(
            "v1",
            "ServiceAccount",
            Some("kserve-inference"),
            "kserve-sa",
        )
        .expect("the IRSA service account");
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        role_arn.as_str()
    );

    // Nothing changed: the plan says so, and a re-apply makes no write to the cluster.
    let mark = server.mark();
    let plan = with_cluster(&["plan", stack, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    with_cluster(&["apply", stack, "--auto-approve"]).ok();
    let writes: Vec<String> = server
        .writes_since(mark)
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(
        writes.is_empty(),
        "writes with nothing to change: {writes:?}"
    );

    // An add-on object deleted by hand is noticed and put back.
    let client_side = server
        .object(
            "apps/v1",
            "Deployment",
            Some("kserve"),
            "kserve-controller-manager",
        )
        .unwrap();
    // By hand, as kubectl would.
    aws.run(async {
        let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(server.client().await, "kserve");
        deployments
            .delete("kserve-controller-manager", &Default::default())
            .await
            .unwrap();
    });
    let plan = with_cluster(&["plan", stack, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("addon.kserve"), "{}", plan.stdout);
    with_cluster(&["apply", stack, "--auto-approve"]).ok();
    let back = server.object(
        "apps/v1",
        "Deployment",
        Some("kserve"),
        "kserve-controller-manager",
    );
    assert_eq!(
        back.map(|d| d["spec"].clone()),
        Some(client_side["spec"].clone())
    );

    // Destroy: load balancers first, then AWS; the add-ons are not uninstalled, as EKS's
    // deletion of the cluster takes them (the test server is not deleted with moto's cluster).
    let mark = server.mark();
    with_cluster(&["destroy", stack, "--auto-approve"]).ok();
    let deletes: Vec<_> = server
        .writes_since(mark)
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    let first_delete = |kind: &str, name: &str| {
        deletes
            .iter()
            .position(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{kind} {name} was not deleted"))
    };
    assert_eq!(
        first_delete("Service", "istio-ingressgateway"),
        0,
        "the load balancer goes first"
    );
    let addon_deletes: Vec<_> = deletes
        .iter()
        .filter(|r| {
            r.kind.as_deref() == Some("Namespace") || r.kind.as_deref() == Some("Deployment")
        })
        .collect();
    assert!(addon_deletes.is_empty(), "{addon_deletes:#?}");
    assert!(server
        .object(
            "apps/v1",
            "Deployment",
            Some("cert-manager"),
            "cert-manager"
        )
        .is_some());
    assert_eq!(inventory(&aws, stack), nothing_left());
}

/// From the first fixture set to the second (with `--allow-version-skip`: the fixtures hold no
/// version in between): the plan shows each add-on's object counts, the apply prunes what the
/// new versions dropped, and a Deployment that never becomes available fails the run naming it.
#[test]
fn an_upgrade_prunes_what_the_new_versions_dropped() {
    let moto = Emulator::start();
    let server = TestApiServer::start();
    let kubeconfig = server.kubeconfig().to_str().unwrap().to_string();
    let stack = "upgrade";
    let newer = example_with_addons(stack);
    let older = newer
        .replace("\"v1.19.4\"", "\"v1.16.1\"")
        .replace("\"1.29.1\"", "\"1.24.3\"")
        .replace("\"1.21.1\"", "\"1.16.2\"")
        .replace("\"v0.16.0\"", "\"v0.15.0\"");
    assert_ne!(older, newer);
    let project = Project::new(&moto, stack, &older);
    let with_cluster = |args: &[&str]| project.mlops_in_cluster(&kubeconfig, args);
    with_cluster(&["apply", stack, "--auto-approve"]).ok();
    // Dropped by cert-manager v1.19.4 and Istio 1.29.1 (read from the fixtures).
    let dropped = [
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "cert-manager",
            "cert-manager-cert-manager-tokenrequest",
        ),
        ("policy/v1", "PodDisruptionBudget", "istio-system", "istiod"),
    ];
    for (api_version, kind, ns, name) in dropped {
        assert!(
            server.object(api_version, kind, Some(ns), name).is_some(),
            "{kind} {ns}/{name} before"
        );
    }

    project.write_stack(&newer);
    let plan = with_cluster(&["plan", stack, "--allow-version-skip"]).ok();
    assert!(
        plan.stdout
            .contains("~ version = \"v1.16.1\" -> \"v1.19.4\""),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("to remove (49 objects -> 49 objects)"),
        "{}",
        plan.stdout
    );

    // KServe's controller never comes up: the run stops naming it, the rest stays applied.
    server.set_never_available("kserve", "kserve-controller-manager");
    let failed = with_cluster(&[
        "apply",
        stack,
        "--auto-approve",
        "--allow-version-skip",
        "--wait-timeout",
        "5s",
    ]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("Deployment kserve/kserve-controller-manager is not available after 5s"),
        "{}",
        failed.stderr
    );
    server.clear_never_available("kserve", "kserve-controller-manager");
    with_cluster(&["apply", stack, "--auto-approve", "--allow-version-skip"]).ok();
    for (api_version, kind, ns, name) in dropped {
        assert!(
            server.object(api_version, kind, Some(ns), name).is_none(),
            "{kind} {ns}/{name} was not pruned"
        );
    }
    let labels = server
        .object(
            "apps/v1",
            "Deployment",
            Some("kserve"),
            "kserve-controller-manager",
        )
        .unwrap()["metadata"]["labels"]
        .clone();
    assert_eq!(labels["mlops.dev/version"], "v0.16.0");
    with_cluster(&["destroy", stack, "--auto-approve"]).ok();
}

#[test]
fn destroy_sweeps_what_kubernetes_left_in_the_vpc() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "swept";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();

    // What the cluster's controllers would leave: load balancers in the public subnets, their
    // groups let into a group of the nodes, an interface of the VPC CNI in a private subnet.
    let leftovers = aws.run(async {
        let subnets = aws
            .ec2
            .describe_subnets()
            .filters(stack_filter(stack))
            .send()
            .await
            .unwrap();
        let mut public: Vec<(String, String)> = subnets
            .subnets()
            .iter()
            .filter(|s| s.map_public_ip_on_launch() == Some(true))
            .map(|s| {
                (
                    s.availability_zone().unwrap().to_string(),
                    s.subnet_id().unwrap().to_string(),
                )
            })
            .collect();
        public.sort();
        let public: Vec<String> = public.into_iter().map(|(_, id)| id).collect();
        let vpc = subnets.subnets()[0].vpc_id().unwrap().to_string();
        let nodes = leftovers::security_group(
            &aws,
            &vpc,
            "swept-nodes",
            &[("kubernetes.io/cluster/swept-cluster", "owned")],
        )
        .await;
        let mut left = leftovers::leave(&aws, "swept-cluster", "s", &vpc, &public, &nodes).await;
        left.security_groups.insert(nodes);
        left
    });
    assert_eq!(aws.run(leftovers::existing(&aws, &leftovers)), leftovers);

    let destroyed = project.destroy().ok();
    assert!(
        destroyed
            .stderr
            .contains("Destroy complete: 0 added, 0 changed, 33 destroyed"),
        "{}",
        destroyed.stderr
    );
    assert_eq!(inventory(&aws, stack), nothing_left());
    assert_eq!(
        aws.run(leftovers::existing(&aws, &leftovers)),
        leftovers::Leftovers::default()
    );
    for swept in ["classic load balancer `aselb`", "`swept-nodes`"] {
        assert!(
            destroyed
                .stderr
                .lines()
                .any(|l| l.contains("eks_cluster: waiting for") && l.contains(swept)),
            "{swept} not reported:\n{}",
            destroyed.stderr
        );
    }
}

/// A cluster that does not serve `autoscaling/v2` (as Kubernetes before 1.23 did not; here the
/// real kube-apiserver started with that version switched off), which today's add-ons use: the
/// plan refuses, naming the API and the object, before anything is applied.
#[test]
fn addons_that_need_apis_the_cluster_lacks_are_refused_at_plan_time() {
    let moto = Emulator::start();
    let server = support::kube_apiserver::RealApiServer::start_with(&[
        "--runtime-config=autoscaling/v2=false",
    ]);
    let stack = "old";
    let project = Project::new(&moto, stack, &example_with_addons(stack));
    let kubeconfig = server.kubeconfig.to_str().unwrap();
    let plan = project.mlops(&["plan", stack, "--kubeconfig", kubeconfig]);
    assert_eq!(plan.code, 1, "{}\n{}", plan.stdout, plan.stderr);
    // The first object of the first add-on that needs one (Istio's, in inventory order).
    assert!(
        plan.stderr.contains("error: the cluster does not serve `autoscaling/v2` kind `HorizontalPodAutoscaler`, needed by HorizontalPodAutoscaler istio-system/")
            && plan.stderr.contains(" of `addon.istio`"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr
            .contains("hint: this add-on version needs a newer Kubernetes"),
        "{}",
        plan.stderr
    );
    assert!(
        !project.state_path(stack).exists(),
        "a refused plan wrote a state"
    );
}
