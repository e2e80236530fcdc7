//! `mlops` against AWS as it really is: throttled, failing now and then, losing answers, and
//! running on its own clock, played by the AWS-behaviour layer (`tests/support/aws_layer/`) in
//! front of moto. Every result is checked through the AWS SDK against moto directly, never
//! through mlops' own state.
//!
//! The faults are drawn from a seed (`MLOPS_FAULT_SEED`, printed on failure), so that a failure
//! reproduces.

mod support;

use support::aws_layer::{AwsLayer, Clock, Faults};
use support::inventory::{inventory, nothing_left, reference_inventory};
use support::{example_as, Emulator, Project};

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

    let started = std::time::Instant::now();
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
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    let cluster = aws.run(async {
        let out = aws.eks.describe_cluster().name("stuck-cluster").send();
        out.await
            .map(|c| c.cluster().and_then(|c| c.name().map(str::to_string)))
    });
    assert_eq!(cluster.ok().flatten().as_deref(), Some("stuck-cluster"));
}
