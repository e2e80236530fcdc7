//! `mlops` against AWS as it really is: throttled, failing now and then, losing answers, and
//! running on its own clock, played by the AWS-behaviour layer (`tests/support/aws_layer/`) in
//! front of moto. Every result is checked through the AWS SDK against moto directly, never
//! through mlops' own state.
//!
//! The faults are drawn from a seed (`MLOPS_FAULT_SEED`, printed on failure), so that a failure
//! can be run again with the same faults (as far as the timing gives the same calls: see
//! `support::aws_layer`).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_ec2::types::Filter;
use aws_sdk_eks::types::{ClusterStatus, NodegroupStatus};
use support::aws_layer::{AwsLayer, Clock, Faults};
use support::inventory::{
    available_nat_gateways, inventory, nothing_left, private_default_routes, reference_inventory,
    stack_filter,
};
use support::{clients_for, example_as, Emulator, Project};

fn seed() -> u64 {
    std::env::var("MLOPS_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

/// Models AWS under load and on its clock: 30% of requests throttled (each service's own
/// throttling error), 5% answered with a 5xx, 10% of answers lost after AWS did the work
/// (`CreateVpc`, `CreateSubnet`, `AttachInternetGateway`... repeated by the SDK meet what they
/// made), and AWS's clock shortened: the cluster and node group CREATING and DELETING, the NAT
/// gateway pending and deleting, new roles refused by EKS, NotFound right after creates, the
/// cluster's subnets in use after it is gone. `apply`, a `plan` that finds nothing to do, and
/// `destroy` succeed, with exactly one of each object and nothing left.
#[test]
fn apply_plan_and_destroy_survive_throttling_errors_lost_answers_and_aws_clock() {
    let seed = seed();
    let moto = Emulator::start();
    let faults = Faults {
        seed,
        throttle: 0.30,
        server_error: 0.05,
        lost: 0.10,
        ..Faults::default()
    };
    let layer = AwsLayer::start(&moto, faults, Clock::shortened());
    let aws = moto.clients();
    let stack = "faults";
    let project = Project::at(&layer.url, stack, &example_as(stack));

    let applied = project.apply();
    assert_eq!(
        applied.code, 0,
        "apply failed (seed {seed}):\n{}",
        applied.stderr
    );
    assert_eq!(
        inventory(&aws, stack),
        reference_inventory(),
        "seed {seed}\n{}",
        applied.stderr
    );

    let plan = project.plan_exit_code();
    assert_eq!(
        plan.code, 0,
        "a plan after the apply must find nothing to do (seed {seed}):\n{}\n{}",
        plan.stdout, plan.stderr
    );

    let destroyed = project.destroy();
    assert_eq!(
        destroyed.code, 0,
        "destroy failed (seed {seed}):\n{}",
        destroyed.stderr
    );
    assert_eq!(inventory(&aws, stack), nothing_left(), "seed {seed}");

    let counts = layer.counts();
    assert!(
        counts.throttled > 0 && counts.server_errors > 0 && counts.lost > 0 && counts.refused > 0,
        "the faults must really have happened: {counts:?}"
    );
}

/// Models the answer to every create (and delete) lost once, after AWS did the work: the
/// SDK's repeat meets what the first call made (`InvalidSubnet.Conflict`,
/// `Resource.AlreadyAssociated`, `RouteAlreadyExists`, `EntityAlreadyExists`,
/// `BucketAlreadyOwnedByYou`, `RepositoryAlreadyExistsException`; a client token answered
/// with the first answer), or, for the creates AWS cannot recognise (`CreateVpc`,
/// `CreateInternetGateway`, `AllocateAddress`), mlops looks the object up by its tags before
/// sending the call again. Exactly one of each object, then nothing left.
#[test]
fn every_answer_lost_once_still_makes_exactly_one_of_each_object() {
    let moto = Emulator::start();
    let faults = Faults {
        lose_first: vec![
            "CreateVpc",
            "CreateSubnet",
            "CreateInternetGateway",
            "AttachInternetGateway",
            "AllocateAddress",
            "CreateRouteTable",
            "CreateRoute",
            "AssociateRouteTable",
            "CreateNatGateway",
            "CreateRole",
            "AttachRolePolicy",
            "CreateOpenIDConnectProvider",
            "CreateCluster",
            "CreateNodegroup",
            "CreateBucket",
            "CreateRepository",
            "DeleteNodegroup",
            "DeleteCluster",
            "DeleteNatGateway",
            "ReleaseAddress",
            "DetachInternetGateway",
            "DeleteSubnet",
            "DeleteRouteTable",
            "DeleteRole",
            "DeleteRepository",
            "DeleteVpc",
        ],
        ..Faults::default()
    };
    let layer = AwsLayer::start(&moto, faults, Clock::default());
    let aws = moto.clients();
    let stack = "lost";
    let project = Project::at(&layer.url, stack, &example_as(stack));

    let applied = project.apply();
    assert_eq!(applied.code, 0, "apply failed:\n{}", applied.stderr);
    assert_eq!(
        inventory(&aws, stack),
        reference_inventory(),
        "{}",
        applied.stderr
    );
    let plan = project.plan_exit_code();
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let destroyed = project.destroy();
    assert_eq!(destroyed.code, 0, "destroy failed:\n{}", destroyed.stderr);
    assert_eq!(inventory(&aws, stack), nothing_left());
    assert!(layer.counts().lost >= 20, "{:?}", layer.counts());
}

/// The end of a test: every object of the stack exactly once (through the SDK), and a plan
/// that finds nothing to do (nothing left `pending`, nothing failed).
fn converged(aws: &support::Aws, project: &Project, last: &support::Run) {
    assert_eq!(
        inventory(aws, &project.stack),
        reference_inventory(),
        "{}",
        last.stderr
    );
    let plan = project.plan_exit_code();
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
}

/// How a run is stopped while it waits.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    /// SIGKILL: an OOM killer, a CI job past its time limit; nothing runs after it.
    Kill,
    /// SIGTERM: what a CI service sends when the job is cancelled, before its SIGKILL.
    Term,
}

/// The EKS name the plan gives a resource's `name` attribute (node groups carry a digest).
fn planned_name(project: &Project, address: &str) -> String {
    let plan = project.mlops(&["plan", &project.stack, "--json"]).ok();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
        .and_then(|c| c["after"]["name"].as_str())
        .unwrap_or_else(|| panic!("no `{address}` in the plan"))
        .to_string()
}

/// Starts `mlops apply` and stops it (`how`) while it waits for the cluster to become ACTIVE,
/// as the layer's request log shows (a `DescribeCluster` after the `CreateCluster` that made
/// it); the rerun must resume that wait, and create the node group only once AWS's clock has
/// the cluster ACTIVE.
fn stopped_at_the_cluster_wait(stack: &str, how: Stop) {
    let moto = Emulator::start();
    let clock = Clock {
        cluster_create: Duration::from_secs(15),
        ..Clock::shortened()
    };
    let layer = AwsLayer::start(&moto, Faults::default(), clock);
    let aws = moto.clients();
    let cluster = format!("{stack}-cluster");
    let project = Project::at(&layer.url, stack, &example_as(stack));
    let log = project.dir.path().join("first-apply.log");
    let mut child = project
        .command(&["apply", stack, "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    let active_at = loop {
        let created = layer.effective_calls_of("CreateCluster").last().copied();
        let waiting =
            created.is_some_and(|c| layer.calls_of("DescribeCluster").iter().any(|d| *d > c));
        if let (true, Some(at)) = (waiting, layer.cluster_active_at(&cluster)) {
            break at;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "apply ended before it waited on the cluster:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(Instant::now() < deadline, "apply never reached the cluster");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        Instant::now() < active_at,
        "the cluster must still be CREATING"
    );
    match how {
        Stop::Kill => child.kill().unwrap(),
        Stop::Term => {
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
        }
    }
    let status = child.wait().unwrap();
    let stopped_at = Instant::now();
    let first = std::fs::read_to_string(&log).unwrap();
    if how == Stop::Term {
        // Handled like Ctrl-C: the wait is left for the next run (not sat out), the state
        // saved and the lock released.
        assert_eq!(status.code(), Some(130), "{first}");
        assert!(
            stopped_at < active_at,
            "SIGTERM must not wait for the cluster:\n{first}"
        );
        assert!(
            first.contains("`eks_cluster`: stopped waiting for it to be ready; the next apply resumes the wait"),
            "{first}"
        );
        let lock = project.state_path(stack).with_extension("json.lock");
        assert!(!lock.exists(), "the lock must be released:\n{first}");
    }
    assert!(layer.calls_of("CreateNodegroup").is_empty(), "{first}");

    // The next plan says that it resumes the wait.
    let plan = project.plan_exit_code();
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(
            "# eks_cluster will be updated in-place (resume the wait until it is ready (CREATING)"
        ),
        "{}",
        plan.stdout
    );

    // Every request counts: a CreateCluster sent again would be refused by moto (the cluster
    // exists) and adopted, so that only the count of requests shows it.
    let creates_before = layer.calls_of("CreateCluster").len();
    let again = project.apply();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        layer.calls_of("CreateCluster").len(),
        creates_before,
        "the rerun must not create the cluster again:\n{}",
        again.stderr
    );
    let node_group_creates = layer.calls_of("CreateNodegroup");
    assert!(!node_group_creates.is_empty());
    assert!(
        node_group_creates.iter().all(|at| *at >= active_at),
        "a node group was asked for before the cluster was ACTIVE:\n{}",
        again.stderr
    );
    // Through the layer, which reports AWS's status; through moto, exactly one of each object.
    let through_layer = clients_for(&layer.url, RetryConfig::standard());
    let status = through_layer.run(async {
        let out = through_layer
            .eks
            .describe_cluster()
            .name(&cluster)
            .send()
            .await
            .unwrap();
        out.cluster.unwrap().status.unwrap()
    });
    assert_eq!(status, ClusterStatus::Active);
    converged(&aws, &project, &again);
}

/// Models a run killed (SIGKILL) while EKS is still CREATING the cluster: the state records the
/// cluster with its wait unfinished, the next plan says it resumes that wait, and the next
/// apply waits until AWS reports the cluster ACTIVE before it asks for the node group (AWS
/// refuses `CreateNodegroup` on a cluster that is not ACTIVE). Checked through the layer's
/// record of requests and its clock, and the SDK: one cluster, ACTIVE, no second
/// `CreateCluster`, every object exactly once.
#[test]
fn an_apply_killed_at_the_cluster_wait_is_resumed_by_the_next_one() {
    stopped_at_the_cluster_wait("killwait", Stop::Kill);
}

/// Models a CI job cancelled (SIGTERM) while EKS is still CREATING the cluster: mlops stops
/// the wait at once rather than sitting out the 10-15 minutes of AWS (a CI service sends
/// SIGKILL after a short grace), saves the state, releases the lock and exits 130; the next
/// apply resumes the wait. Checked as above.
#[test]
fn sigterm_at_the_cluster_wait_stops_it_and_the_next_apply_resumes_it() {
    stopped_at_the_cluster_wait("termwait", Stop::Term);
}

/// Models a node group whose create fails on AWS (CREATE_FAILED, "InsufficientInstanceCapacity"
/// in its health issues): the apply fails with EKS's reason; the next plan replaces the group,
/// saying why, without `--allow-replace` (a group that never became ACTIVE ran no pod: nothing
/// is lost); the apply deletes it and makes it anew. Checked through the SDK: one node group,
/// ACTIVE, deleted once.
#[test]
fn a_node_group_that_failed_to_create_is_replaced() {
    let moto = Emulator::start();
    let layer = AwsLayer::start(&moto, Faults::default(), Clock::shortened());
    let aws = moto.clients();
    let stack = "ngfail";
    let project = Project::at(&layer.url, stack, &example_as(stack));
    let group = planned_name(&project, "eks_node_group.default");
    layer.fail_create(&group);

    let failed = project.apply();
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("is CREATE_FAILED: AsgInstanceLaunchFailures"),
        "{}",
        failed.stderr
    );

    let plan = project.mlops(&["plan", stack]).ok();
    assert!(
        plan.stdout.contains("# eks_node_group.default must be replaced (AWS reports its create failed: CREATE_FAILED: AsgInstanceLaunchFailures: Could not launch On-Demand Instances"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("# protected"), "{}", plan.stdout);
    // The failure stops the run from starting anything new, so how many of the resources that
    // do not need the group (IRSA policies) it had made by then depends on timing: those are
    // the creates. The group is the one thing destroyed, and nothing changes in place.
    let others: Vec<&str> = plan
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("# ") && !l.starts_with("# eks_node_group.default must be replaced")
        })
        .filter(|l| !l.ends_with(" will be created") && !l.ends_with(" attributes hidden)"))
        .collect();
    assert!(others.is_empty(), "{others:?}\n{}", plan.stdout);
    let creates = plan.stdout.matches(" will be created").count();
    assert!(
        plan.stdout.contains(&format!(
            "Plan: {} to add, 0 to change, 1 to destroy.",
            creates + 1
        )),
        "{}",
        plan.stdout
    );

    let replaced = project.apply();
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    assert_eq!(layer.calls_of("DeleteNodegroup").len(), 1);
    let through_layer = clients_for(&layer.url, RetryConfig::standard());
    let cluster = format!("{stack}-cluster");
    let (groups, status) = through_layer.run(async {
        let eks = &through_layer.eks;
        let list = eks
            .list_nodegroups()
            .cluster_name(&cluster)
            .send()
            .await
            .unwrap();
        let one = eks
            .describe_nodegroup()
            .cluster_name(&cluster)
            .nodegroup_name(&group)
            .send()
            .await
            .unwrap();
        (
            list.nodegroups().to_vec(),
            one.nodegroup.unwrap().status.unwrap(),
        )
    });
    assert_eq!(groups, vec![group.clone()]);
    assert_eq!(status, NodegroupStatus::Active);
    converged(&aws, &project, &replaced);
}

/// Models EKS ending a cluster's create FAILED (its subnets without enough free addresses), with
/// the reason in the cluster's health issues: the apply fails at once with that reason, not at
/// the end of its wait; the next plan replaces the cluster, without the replacement gate (a
/// cluster that never became ACTIVE holds nothing), and the apply deletes the failed cluster
/// and makes a new one under the same name. Checked through the SDK: one cluster, ACTIVE, one
/// DeleteCluster, every object exactly once, and a plan with no changes.
#[test]
fn a_cluster_that_failed_to_create_is_replaced() {
    let moto = Emulator::start();
    let layer = AwsLayer::start(&moto, Faults::default(), Clock::shortened());
    let aws = moto.clients();
    let stack = "clfail";
    let project = Project::at(&layer.url, stack, &example_as(stack));
    let cluster = format!("{stack}-cluster");
    layer.fail_create(&cluster);

    let failed = project.apply();
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains(&format!(
            "the EKS cluster `{cluster}` FAILED: InsufficientFreeAddresses: The subnets of the cluster do not have enough free IP addresses"
        )),
        "{}",
        failed.stderr
    );
    assert!(layer.calls_of("CreateNodegroup").is_empty());

    let plan = project.mlops(&["plan", stack]).ok();
    assert!(
        plan.stdout.contains(
            "# eks_cluster must be replaced (AWS reports its create failed: FAILED: InsufficientFreeAddresses"
        ),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("# protected"), "{}", plan.stdout);

    let replaced = project.apply();
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    // Each apply made the cluster once; a CreateCluster that EKS refused because the new role
    // was still too young (models IAM's propagation, ~10 s on AWS) does not count.
    assert_eq!(layer.calls_of("DeleteCluster").len(), 1);
    assert_eq!(layer.effective_calls_of("CreateCluster").len(), 2);
    let through_layer = clients_for(&layer.url, RetryConfig::standard());
    let (clusters, status) = through_layer.run(async {
        let eks = &through_layer.eks;
        let list = eks.list_clusters().send().await.unwrap();
        let one = eks.describe_cluster().name(&cluster).send().await.unwrap();
        (
            list.clusters().to_vec(),
            one.cluster.unwrap().status.unwrap(),
        )
    });
    assert_eq!(clusters, vec![cluster.clone()]);
    assert_eq!(status, ClusterStatus::Active);
    converged(&aws, &project, &replaced);
}

/// Models a public subnet's CIDR changed on AWS's clock: EC2 cannot change a subnet's block, so
/// the subnet is replaced, and with it the NAT gateway inside it (a NAT gateway lives in one
/// subnet); the old gateway holds its subnet and its Elastic IP until its delete is over (the
/// layer refuses `DeleteSubnet` and `ReleaseAddress` meanwhile); the private routes through it
/// are updated in place to the new gateway. The replacement gate still asks for
/// `--allow-replace` for the gateway. Checked through the SDK: the old subnet gone, one
/// subnet with the new block, exactly one NAT gateway available, in it, every private default
/// route through it, every object exactly once.
#[test]
fn a_public_subnet_cidr_change_replaces_its_nat_gateway_and_updates_the_routes() {
    let moto = Emulator::start();
    let layer = AwsLayer::start(&moto, Faults::default(), Clock::shortened());
    let aws = moto.clients();
    let stack = "cidr";
    let project = Project::at(&layer.url, stack, &example_as(stack));
    project.apply().ok();
    let subnet_of = |address: &str| -> Vec<(String, String)> {
        aws.run(async {
            let out = aws
                .ec2
                .describe_subnets()
                .filters(stack_filter(stack))
                .filters(
                    Filter::builder()
                        .name("tag:mlops:address")
                        .values(address)
                        .build(),
                )
                .send()
                .await
                .unwrap();
            out.subnets()
                .iter()
                .map(|s| {
                    (
                        s.subnet_id().unwrap().to_string(),
                        s.cidr_block().unwrap().to_string(),
                    )
                })
                .collect()
        })
    };
    let old = subnet_of("subnet.public.us-west-2a");
    assert_eq!(old.len(), 1);

    project.write_stack(
        &project
            .stack_text()
            .replace("\"10.0.101.0/24\"", "\"10.0.111.0/24\""),
    );
    let plan = project.mlops(&["plan", stack]).ok();
    for line in [
        "# subnet.public.us-west-2a must be replaced",
        "# nat_gateway.us-west-2a must be replaced",
        "# route.private.us-west-2a.nat will be updated in-place",
        "# route.private.us-west-2b.nat will be updated in-place",
    ] {
        assert!(plan.stdout.contains(line), "{line}\n{}", plan.stdout);
    }
    let refused = project.apply();
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("`--allow-replace nat_gateway.us-west-2a`"),
        "{}",
        refused.stderr
    );

    let applied = project.mlops(&[
        "apply",
        stack,
        "--auto-approve",
        "--allow-replace",
        "nat_gateway.us-west-2a",
    ]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);

    let new = subnet_of("subnet.public.us-west-2a");
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].1, "10.0.111.0/24");
    assert_ne!(new[0].0, old[0].0);
    let (old_exists, nats, routes) = aws.run(async {
        let old_exists = aws
            .ec2
            .describe_subnets()
            .subnet_ids(&old[0].0)
            .send()
            .await
            .is_ok_and(|o| !o.subnets().is_empty());
        let nats = available_nat_gateways(&aws, stack).await;
        let routes = private_default_routes(&aws, stack).await;
        (old_exists, nats, routes)
    });
    assert!(!old_exists, "the old subnet must be gone");
    assert_eq!(nats.len(), 1, "{nats:?}");
    assert_eq!(
        nats[0].1, new[0].0,
        "the NAT gateway must be in the new subnet"
    );
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(
        routes
            .iter()
            .all(|r| r.as_deref() == Some(nats[0].0.as_str())),
        "{routes:?} must all go through {}",
        nats[0].0
    );
    converged(&aws, &project, &applied);
}

/// Deletes the NAT route of a private route table of `stack` behind mlops' back (through the
/// SDK, straight to moto); returns the stack's route tables as they were before.
fn delete_nat_route(aws: &support::Aws, stack: &str) -> Vec<aws_sdk_ec2::types::RouteTable> {
    let tables = aws
        .run(
            aws.ec2
                .describe_route_tables()
                .filters(stack_filter(stack))
                .send(),
        )
        .unwrap()
        .route_tables
        .unwrap_or_default();
    let routed = tables
        .iter()
        .find(|t| t.routes().iter().any(|r| r.nat_gateway_id().is_some()))
        .expect("a private route table with its NAT route");
    aws.run(
        aws.ec2
            .delete_route()
            .route_table_id(routed.route_table_id().unwrap())
            .destination_cidr_block("0.0.0.0/0")
            .send(),
    )
    .unwrap();
    tables
}

/// Models a refresh against AWS's request-per-object cost: a `plan` reads the objects of one
/// kind with one request where the API describes many (one `DescribeSubnets` for every subnet,
/// one `DescribeRouteTables` per routing kind, one `DescribeNatGateways`, one
/// `DescribeAddresses`, one `ListAttachedRolePolicies` per role for all its attachments),
/// counted by the layer; and such a batched read still tells what is gone: a private NAT
/// route and a subnet's route table association removed behind mlops' back (through the SDK,
/// straight to moto) are planned again, and nothing else is.
#[test]
fn a_refresh_reads_each_kind_with_one_request_and_sees_what_is_gone() {
    let moto = Emulator::start();
    let layer = AwsLayer::start(&moto, Faults::default(), Clock::default());
    let aws = moto.clients();
    let stack = "batched";
    let project = Project::at(&layer.url, stack, &example_as(stack));
    let applied = project.apply();
    assert_eq!(applied.code, 0, "apply failed:\n{}", applied.stderr);

    let tables = delete_nat_route(&aws, stack);
    let association = tables
        .iter()
        .flat_map(|t| t.associations())
        .find(|a| a.subnet_id().is_some())
        .expect("a subnet's association");
    aws.run(
        aws.ec2
            .disassociate_route_table()
            .association_id(association.route_table_association_id().unwrap())
            .send(),
    )
    .unwrap();

    let started = Instant::now();
    let plan = project.plan_exit_code();
    let ended = Instant::now();
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let creates: Vec<&str> = plan
        .stdout
        .lines()
        .filter(|l| l.contains("will be created"))
        .collect();
    assert_eq!(creates.len(), 2, "{}", plan.stdout);
    assert!(
        creates.iter().any(|l| l.contains("route.private.")),
        "{}",
        plan.stdout
    );
    assert!(
        creates
            .iter()
            .any(|l| l.contains("route_table_association.")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 2 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );

    let during = |operation: &str| layer.calls_between(operation, started..ended);
    assert_eq!(during("DescribeSubnets"), 1);
    assert_eq!(
        during("DescribeRouteTables"),
        3,
        "tables, routes, associations"
    );
    assert_eq!(during("DescribeNatGateways"), 1);
    assert_eq!(during("DescribeAddresses"), 1);
    assert_eq!(
        during("ListAttachedRolePolicies"),
        2,
        "the cluster's and the nodes' roles"
    );
}

/// Models the nightly drift check of many stacks in one account against EC2's throttling,
/// which counts each API action (a bucket of 100 requests, 20 more a second): `plan --all`
/// reads a kind's objects of every stack of the region with one request, so two stacks cost
/// one `DescribeSubnets`, not two (counted by the layer); each stack still sees exactly its own
/// objects: a route removed behind one stack's back (through the SDK, straight to moto) is
/// planned again in that stack and in no other. The two stacks are distinct, applied through
/// the layer, which gives each cluster its own OIDC issuer as AWS does.
#[test]
fn stacks_planned_together_share_each_kinds_read() {
    let moto = Emulator::start();
    let layer = AwsLayer::start(&moto, Faults::default(), Clock::default());
    let aws = moto.clients();
    let project = Project::at(&layer.url, "one", &example_as("one"));
    let two = example_as("two").replace("[repositories.wine-model]", "[repositories.two-model]");
    std::fs::write(project.dir.path().join("stacks/two.toml"), two).unwrap();
    let applied = project.mlops(&["apply", "--all", "--auto-approve"]);
    assert_eq!(applied.code, 0, "apply failed:\n{}", applied.stderr);
    let unchanged = project.mlops(&["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(
        unchanged.code, 0,
        "{}\n{}",
        unchanged.stdout, unchanged.stderr
    );

    delete_nat_route(&aws, "two");

    let started = Instant::now();
    let plan = project.mlops(&["plan", "--all", "--detailed-exitcode"]);
    let ended = Instant::now();
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let (one, two) = plan
        .stdout
        .split_once("== stack `two`")
        .expect("stack two's plan after stack one's");
    assert!(one.contains("No changes."), "{one}");
    assert!(two.contains("route.private."), "{two}");
    assert!(
        two.contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "{two}"
    );

    let during = |operation: &str| layer.calls_between(operation, started..ended);
    for operation in [
        "DescribeVpcs",
        "DescribeSubnets",
        "DescribeInternetGateways",
        "DescribeNatGateways",
        "DescribeAddresses",
    ] {
        assert_eq!(during(operation), 1, "{operation} for both stacks");
    }
    assert_eq!(
        during("DescribeRouteTables"),
        3,
        "tables, routes, associations"
    );
    assert_eq!(
        during("DescribeVpcAttribute"),
        4,
        "two attributes of two VPCs"
    );
    assert_eq!(during("DescribeCluster"), 2, "one cluster each");
}

/// Models EKS giving up on a node group's delete: DELETE_FAILED, with the health issue EKS
/// reports (a security group with a dependent object), which moto never shows. `destroy`
/// stops at the first describe that says so, long before the delete's 30-minute limit, names
/// the group and EKS's reason, exits 1, and leaves the cluster (DescribeCluster).
#[test]
fn a_node_group_eks_cannot_delete_is_reported_at_once_with_eks_reason() {
    let moto = Emulator::start();
    let layer = AwsLayer::start(&moto, Faults::default(), Clock::default());
    let aws = moto.clients();
    let stack = "stuck";
    let project = Project::at(&layer.url, stack, &example_as(stack));
    project.apply().ok();
    let groups = aws.run(async {
        let out = aws
            .eks
            .list_nodegroups()
            .cluster_name("stuck-cluster")
            .send();
        out.await.unwrap().nodegroups().to_vec()
    });
    assert_eq!(groups.len(), 1, "{groups:?}");
    layer.fail_delete(&groups[0]);

    let started = Instant::now();
    let destroyed = project.destroy();
    assert_eq!(destroyed.code, 1, "{}", destroyed.stderr);
    assert!(
        destroyed.stderr.contains(&format!(
            "EKS could not delete the node group `{}` of cluster `stuck-cluster` (DELETE_FAILED): Ec2SecurityGroupDeletionFailure: DependencyViolation - resource has a dependent object",
            groups[0]
        )),
        "{}",
        destroyed.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    let cluster = aws.run(async {
        let out = aws.eks.describe_cluster().name("stuck-cluster").send();
        out.await
            .map(|c| c.cluster().and_then(|c| c.name().map(str::to_string)))
    });
    assert_eq!(cluster.ok().flatten().as_deref(), Some("stuck-cluster"));
}
