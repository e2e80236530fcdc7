//! Self-tests of the AWS-behaviour layer (`tests/support/aws_layer/`): each behaviour it adds
//! to moto, seen through the AWS SDK with its retries off (so that every injected answer
//! surfaces), and checked against moto directly where the point is what moto did.

mod support;

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, NatGatewayState, ResourceType, Tag, TagSpecification};
use aws_sdk_eks::types::{ClusterStatus, NodegroupStatus, VpcConfigRequest};
use support::aws_layer::{AwsLayer, Clock, Faults};
use support::{clients_for, eventually, Aws, Emulator};

const TRUST_EKS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// SDK clients through the layer, retries off.
fn through(layer: &AwsLayer) -> Aws {
    clients_for(&layer.url, RetryConfig::disabled())
}

fn error_code<E: ProvideErrorMetadata>(result: Result<impl std::fmt::Debug, E>) -> String {
    result
        .expect_err("the layer must have answered with an error")
        .code()
        .unwrap_or("no code")
        .to_string()
}

fn tagged(kind: ResourceType) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(Tag::builder().key("owner").value("layer-test").build())
        .build()
}

/// A VPC and two subnets, made in moto directly (outside the layer's clock).
fn network(aws: &Aws) -> (String, Vec<String>) {
    aws.run(async {
        let vpc = aws
            .ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let mut subnets = Vec::new();
        for (cidr, az) in [("10.0.1.0/24", "us-west-2a"), ("10.0.2.0/24", "us-west-2b")] {
            let s = aws
                .ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(cidr)
                .availability_zone(az)
                .send()
                .await
                .unwrap();
            subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
        }
        (vpc, subnets)
    })
}

async fn create_role(aws: &Aws, name: &str) -> String {
    let role = aws
        .iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(TRUST_EKS)
        .send()
        .await
        .unwrap();
    role.role().unwrap().arn().to_string()
}

async fn create_cluster(
    aws: &Aws,
    name: &str,
    role: &str,
    subnets: &[String],
) -> Result<aws_sdk_eks::types::Cluster, String> {
    aws.eks
        .create_cluster()
        .name(name)
        .role_arn(role)
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .set_subnet_ids(Some(subnets.to_vec()))
                .build(),
        )
        .send()
        .await
        .map(|out| out.cluster().unwrap().clone())
        .map_err(|e| format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or("")))
}

async fn create_node_group(
    aws: &Aws,
    cluster: &str,
    name: &str,
    role: &str,
    subnets: &[String],
) -> Result<NodegroupStatus, String> {
    aws.eks
        .create_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .node_role(role)
        .set_subnets(Some(subnets.to_vec()))
        .send()
        .await
        .map(|out| out.nodegroup().unwrap().status().unwrap().clone())
        .map_err(|e| format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or("")))
}

/// Waits until the node group `name` of `cluster` no longer describes; the error code it then
/// answers with.
async fn node_group_gone(aws: &Aws, cluster: &str, name: &str) -> String {
    eventually(
        format!("node group {name} gone"),
        Duration::from_secs(10),
        || async {
            let described = aws
                .eks
                .describe_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .send()
                .await;
            described.is_err().then(|| error_code(described))
        },
    )
    .await
}

async fn cluster_status(aws: &Aws, name: &str) -> aws_sdk_eks::types::Cluster {
    let out = aws.eks.describe_cluster().name(name).send().await.unwrap();
    out.cluster().unwrap().clone()
}

async fn node_group(aws: &Aws, cluster: &str, name: &str) -> aws_sdk_eks::types::Nodegroup {
    let out = aws
        .eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .unwrap();
    out.nodegroup().unwrap().clone()
}

fn only_clock(clock: Clock) -> (Emulator, AwsLayer) {
    let moto = Emulator::start();
    let layer = AwsLayer::start(&moto, Faults::default(), clock);
    (moto, layer)
}

/// AWS throttles each service in its own format: EC2 `RequestLimitExceeded` (503, query XML
/// `<Response><Errors>`), IAM/STS/ELB `Throttling` (`<ErrorResponse>`), S3 `SlowDown` (503),
/// EKS `ThrottlingException` (REST JSON, `x-amzn-ErrorType`), ECR `ThrottlingException`
/// (JSON 1.1 `__type`). The SDK must read each one's code, or it could not retry it.
#[test]
fn throttling_comes_in_each_services_own_wire_format() {
    let moto = Emulator::start();
    let faults = Faults {
        throttle: 1.0,
        ..Faults::default()
    };
    let layer = AwsLayer::start(&moto, faults, Clock::default());
    let aws = through(&layer);
    aws.run(async {
        assert_eq!(
            error_code(aws.ec2.describe_vpcs().send().await),
            "RequestLimitExceeded"
        );
        assert_eq!(error_code(aws.iam.list_roles().send().await), "Throttling");
        assert_eq!(
            error_code(aws.sts.get_caller_identity().send().await),
            "Throttling"
        );
        assert_eq!(error_code(aws.s3.list_buckets().send().await), "SlowDown");
        assert_eq!(
            error_code(aws.eks.list_clusters().send().await),
            "ThrottlingException"
        );
        assert_eq!(
            error_code(aws.ecr.describe_repositories().send().await),
            "ThrottlingException"
        );
        assert_eq!(
            error_code(aws.elb.describe_load_balancers().send().await),
            "Throttling"
        );
        assert_eq!(
            error_code(aws.elbv2.describe_load_balancers().send().await),
            "Throttling"
        );
    });
    let counts = layer.counts();
    assert_eq!((counts.requests, counts.throttled), (8, 8));
}

/// AWS's internal errors, per service: EC2 and S3 `InternalError`, IAM `ServiceFailure`,
/// EKS and ECR `ServerException`, all 500: retryable by the SDK, never reaching the service.
#[test]
fn server_errors_come_in_each_services_own_wire_format() {
    let moto = Emulator::start();
    let faults = Faults {
        server_error: 1.0,
        ..Faults::default()
    };
    let layer = AwsLayer::start(&moto, faults, Clock::default());
    let aws = through(&layer);
    aws.run(async {
        let vpc = aws.ec2.create_vpc().cidr_block("10.1.0.0/16").send().await;
        assert_eq!(error_code(vpc), "InternalError");
        assert_eq!(
            error_code(aws.iam.list_roles().send().await),
            "ServiceFailure"
        );
        assert_eq!(
            error_code(aws.s3.list_buckets().send().await),
            "InternalError"
        );
        assert_eq!(
            error_code(aws.eks.list_clusters().send().await),
            "ServerException"
        );
        assert_eq!(
            error_code(aws.ecr.describe_repositories().send().await),
            "ServerException"
        );
    });
    // Nothing reached moto.
    let direct = moto.clients();
    let vpcs = direct.run(async { direct.ec2.describe_vpcs().send().await.unwrap() });
    assert!(vpcs
        .vpcs()
        .iter()
        .all(|v| v.cidr_block() != Some("10.1.0.0/16")));
}

/// A lost answer: AWS did the work, the caller never heard (a dropped connection, a timeout).
/// The SDK gets no answer, moto has the object.
#[test]
fn a_lost_answer_reached_moto_but_the_caller_gets_no_reply() {
    let moto = Emulator::start();
    let faults = Faults {
        lost: 1.0,
        ..Faults::default()
    };
    let layer = AwsLayer::start(&moto, faults, Clock::default());
    let aws = through(&layer);
    let result = aws.run(async {
        aws.ec2
            .create_vpc()
            .cidr_block("10.2.0.0/16")
            .tag_specifications(tagged(ResourceType::Vpc))
            .send()
            .await
    });
    let err = result.expect_err("no answer");
    assert!(err.code().is_none(), "{err:?}");
    assert_eq!(layer.counts().lost, 1);
    let direct = moto.clients();
    let vpcs = direct.run(async {
        direct
            .ec2
            .describe_vpcs()
            .filters(
                Filter::builder()
                    .name("tag:owner")
                    .values("layer-test")
                    .build(),
            )
            .send()
            .await
            .unwrap()
    });
    assert_eq!(vpcs.vpcs().len(), 1, "moto made the VPC");
}

/// Each request takes at least the set latency (AWS's round trip).
#[test]
fn every_request_takes_the_set_latency() {
    let moto = Emulator::start();
    let faults = Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    };
    let layer = AwsLayer::start(&moto, faults, Clock::default());
    let aws = through(&layer);
    let started = Instant::now();
    aws.run(async {
        aws.ec2.describe_vpcs().send().await.unwrap();
        aws.iam.list_roles().send().await.unwrap();
    });
    assert!(started.elapsed() >= Duration::from_millis(600));
}

/// The same seed gives the same faults for the same calls, so that a failure reproduces; another
/// seed gives others.
#[test]
fn faults_are_drawn_from_the_seed() {
    let moto = Emulator::start();
    let outcomes = |seed| {
        let faults = Faults {
            seed,
            throttle: 0.5,
            ..Faults::default()
        };
        let layer = AwsLayer::start(&moto, faults, Clock::default());
        let aws = through(&layer);
        aws.run(async {
            let mut seen = Vec::new();
            for _ in 0..24 {
                seen.push(aws.ec2.describe_vpcs().send().await.is_ok());
            }
            seen
        })
    };
    let first = outcomes(7);
    assert_eq!(first, outcomes(7));
    assert_ne!(first, outcomes(8));
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
}

/// EKS: a new cluster is CREATING, without endpoint, CA or OIDC issuer, and refuses node groups
/// ("Cluster ... is not in ACTIVE status") until it is ACTIVE.
#[test]
fn a_new_cluster_is_creating_without_endpoint_then_active() {
    let (_moto, layer) = only_clock(Clock {
        cluster_create: Duration::from_millis(1500),
        ..Clock::default()
    });
    let aws = through(&layer);
    let (_, subnets) = network(&aws);
    aws.run(async {
        let role = create_role(&aws, "cluster-role").await;
        let created = create_cluster(&aws, "c1", &role, &subnets).await.unwrap();
        assert_eq!(created.status(), Some(&ClusterStatus::Creating));
        let creating = cluster_status(&aws, "c1").await;
        assert_eq!(creating.status(), Some(&ClusterStatus::Creating));
        assert_eq!(creating.endpoint(), None);
        assert_eq!(
            creating.certificate_authority().and_then(|c| c.data()),
            None
        );
        assert!(creating.identity().is_none());
        let refused = create_node_group(&aws, "c1", "ng", &role, &subnets).await;
        assert!(refused.unwrap_err().contains("is not in ACTIVE status"));

        tokio::time::sleep(Duration::from_millis(1600)).await;
        let active = cluster_status(&aws, "c1").await;
        assert_eq!(active.status(), Some(&ClusterStatus::Active));
        assert!(active.endpoint().is_some());
        assert!(active
            .identity()
            .and_then(|i| i.oidc())
            .and_then(|o| o.issuer())
            .is_some());
        assert_eq!(
            create_node_group(&aws, "c1", "ng", &role, &subnets).await,
            Ok(NodegroupStatus::Active)
        );
    });
}

/// EKS gives every cluster an OIDC issuer of its own (moto gives all clusters of a region the
/// same one): two clusters made through the layer have two issuers, in AWS's form (32 hex
/// digits), the same in every answer, so that two stacks of one account can each own the OIDC
/// provider of their cluster.
#[test]
fn each_cluster_has_its_own_oidc_issuer() {
    let (_moto, layer) = only_clock(Clock::default());
    let aws = through(&layer);
    let (_, subnets) = network(&aws);
    let issuers = aws.run(async {
        let role = create_role(&aws, "cluster-role").await;
        let mut issuers = Vec::new();
        for name in ["c1", "c2", "c1"] {
            if name == "c2" || issuers.is_empty() {
                create_cluster(&aws, name, &role, &subnets).await.unwrap();
            }
            let cluster = cluster_status(&aws, name).await;
            let issuer = cluster
                .identity()
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer());
            issuers.push(issuer.unwrap().to_string());
        }
        issuers
    });
    assert_ne!(issuers[0], issuers[1], "{issuers:?}");
    assert_eq!(issuers[0], issuers[2], "{issuers:?}");
    for issuer in &issuers {
        let id = issuer
            .strip_prefix("https://oidc.eks.us-west-2.amazonaws.com/id/")
            .unwrap_or_else(|| panic!("{issuer}"));
        assert!(
            id.len() == 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_lowercase()),
            "{issuer}"
        );
    }
}

/// EKS refuses a role IAM has just created for a few seconds, with the messages AWS sends
/// for the cluster role and for the node role; then accepts it.
#[test]
fn eks_refuses_a_new_role_for_a_while() {
    let (_moto, layer) = only_clock(Clock {
        role_propagation: Duration::from_millis(1200),
        ..Clock::default()
    });
    let aws = through(&layer);
    let (_, subnets) = network(&aws);
    aws.run(async {
        let role = create_role(&aws, "young-role").await;
        let refused = create_cluster(&aws, "c2", &role, &subnets).await.unwrap_err();
        assert!(
            refused.starts_with("InvalidParameterException: The provided role doesn't have the Amazon EKS Managed Policies"),
            "{refused}"
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        create_cluster(&aws, "c2", &role, &subnets).await.unwrap();
        let node_role = create_role(&aws, "young-node-role").await;
        let refused = create_node_group(&aws, "c2", "ng", &node_role, &subnets).await;
        assert!(refused.unwrap_err().contains("were not found in the trust relationships of nodeRole"));
    });
}

/// Right after a create, EC2 and IAM answer NotFound to calls that name the new object
/// (eventual consistency); a search by tag finds nothing without an error; then all is normal.
#[test]
fn a_new_object_is_not_found_for_a_while() {
    let (_moto, layer) = only_clock(Clock {
        not_found_after_create: Duration::from_millis(800),
        ..Clock::default()
    });
    let aws = through(&layer);
    aws.run(async {
        let vpc = aws
            .ec2
            .create_vpc()
            .cidr_block("10.3.0.0/16")
            .send()
            .await
            .unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let describe = aws.ec2.describe_vpcs().vpc_ids(&vpc).send().await;
        assert_eq!(error_code(describe), "InvalidVpcID.NotFound");
        let modify = aws
            .ec2
            .modify_vpc_attribute()
            .vpc_id(&vpc)
            .enable_dns_hostnames(
                aws_sdk_ec2::types::AttributeBooleanValue::builder()
                    .value(true)
                    .build(),
            )
            .send()
            .await;
        assert_eq!(error_code(modify), "InvalidVpcID.NotFound");
        create_role(&aws, "fresh-role").await;
        let attach = aws
            .iam
            .attach_role_policy()
            .role_name("fresh-role")
            .policy_arn("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")
            .send()
            .await;
        assert_eq!(error_code(attach), "NoSuchEntity");

        tokio::time::sleep(Duration::from_millis(900)).await;
        let found = aws.ec2.describe_vpcs().vpc_ids(&vpc).send().await.unwrap();
        assert_eq!(found.vpcs().len(), 1);
        aws.iam
            .attach_role_policy()
            .role_name("fresh-role")
            .policy_arn("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")
            .send()
            .await
            .unwrap();
    });
}

/// A NAT gateway is `pending`, then `available`; deleted, it is `deleting`, and meanwhile its
/// Elastic IP cannot be released nor its subnet deleted.
#[test]
fn a_nat_gateway_is_pending_then_deleting_and_holds_its_subnet_and_address() {
    let (_moto, layer) = only_clock(Clock {
        nat_create: Duration::from_millis(800),
        nat_delete: Duration::from_millis(800),
        ..Clock::default()
    });
    let aws = through(&layer);
    let (_, subnets) = network(&aws);
    aws.run(async {
        let state = |id: String| {
            let ec2 = aws.ec2.clone();
            async move {
                let out = ec2
                    .describe_nat_gateways()
                    .nat_gateway_ids(id)
                    .send()
                    .await
                    .unwrap();
                out.nat_gateways()[0].state().unwrap().as_str().to_string()
            }
        };
        let eip = aws.ec2.allocate_address().send().await.unwrap();
        let allocation = eip.allocation_id().unwrap().to_string();
        let nat = aws
            .ec2
            .create_nat_gateway()
            .subnet_id(&subnets[0])
            .allocation_id(&allocation)
            .send()
            .await
            .unwrap();
        let nat = nat.nat_gateway().unwrap();
        assert_eq!(nat.state().unwrap().as_str(), "pending");
        let id = nat.nat_gateway_id().unwrap().to_string();
        assert_eq!(state(id.clone()).await, "pending");
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(state(id.clone()).await, "available");

        let deleted = Instant::now();
        aws.ec2
            .delete_nat_gateway()
            .nat_gateway_id(&id)
            .send()
            .await
            .unwrap();
        assert_eq!(state(id.clone()).await, "deleting");
        let release = aws
            .ec2
            .release_address()
            .allocation_id(&allocation)
            .send()
            .await;
        assert_eq!(error_code(release), "InvalidIPAddress.InUse");
        let subnet = aws.ec2.delete_subnet().subnet_id(&subnets[0]).send().await;
        assert_eq!(error_code(subnet), "DependencyViolation");
        eventually("the gateway deleted", Duration::from_secs(10), || async {
            (state(id.clone()).await == "deleted").then_some(())
        })
        .await;
        assert!(deleted.elapsed() >= Duration::from_millis(800));
        aws.ec2
            .release_address()
            .allocation_id(&allocation)
            .send()
            .await
            .unwrap();
        aws.ec2
            .delete_subnet()
            .subnet_id(&subnets[0])
            .send()
            .await
            .unwrap();
    });
}

/// Deleting a cluster: DELETING for a while (still listed), then gone; after it, its subnets
/// stay in use (the network interfaces EKS left linger) for a while.
#[test]
fn a_deleted_cluster_is_deleting_then_gone_and_its_subnets_stay_busy() {
    let (moto, layer) = only_clock(Clock {
        cluster_delete: Duration::from_millis(1000),
        in_use_after_cluster: Duration::from_millis(1000),
        ..Clock::default()
    });
    let aws = through(&layer);
    let (_, subnets) = network(&aws);
    let deleted = aws.run(async {
        let role = create_role(&aws, "role").await;
        create_cluster(&aws, "c3", &role, &subnets).await.unwrap();
        let deleted = Instant::now();
        let deleting = aws.eks.delete_cluster().name("c3").send().await.unwrap();
        assert_eq!(
            deleting.cluster().unwrap().status(),
            Some(&ClusterStatus::Deleting)
        );
        assert_eq!(
            cluster_status(&aws, "c3").await.status(),
            Some(&ClusterStatus::Deleting)
        );
        deleted
    });
    // moto still has it: the delete has not reached it.
    let direct = moto.clients();
    let listed = direct.run(async { direct.eks.list_clusters().send().await.unwrap() });
    assert_eq!(listed.clusters(), ["c3"]);
    aws.run(async {
        let gone = eventually("the cluster gone", Duration::from_secs(10), || async {
            let described = aws.eks.describe_cluster().name("c3").send().await;
            described.is_err().then(|| error_code(described))
        })
        .await;
        assert!(deleted.elapsed() >= Duration::from_millis(1000));
        assert_eq!(gone, "ResourceNotFoundException");
        let busy = aws.ec2.delete_subnet().subnet_id(&subnets[1]).send().await;
        assert_eq!(error_code(busy), "DependencyViolation");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        aws.ec2
            .delete_subnet()
            .subnet_id(&subnets[1])
            .send()
            .await
            .unwrap();
    });
}

/// Node groups: CREATING then ACTIVE, DELETING then gone; and the failures AWS reports with a
/// reason: CREATE_FAILED and DELETE_FAILED with a health issue, a cluster FAILED.
#[test]
fn node_groups_take_time_and_fail_when_told_to() {
    let (_moto, layer) = only_clock(Clock {
        node_group_create: Duration::from_millis(800),
        node_group_delete: Duration::from_millis(800),
        cluster_create: Duration::from_millis(300),
        ..Clock::default()
    });
    let aws = through(&layer);
    let (_, subnets) = network(&aws);
    layer.fail_create("broken");
    layer.fail_create("c-broken");
    layer.fail_delete("stuck");
    aws.run(async {
        let role = create_role(&aws, "role").await;
        create_cluster(&aws, "c4", &role, &subnets).await.unwrap();
        create_cluster(&aws, "c-broken", &role, &subnets)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let failed = cluster_status(&aws, "c-broken").await;
        assert_eq!(failed.status(), Some(&ClusterStatus::Failed));
        assert!(!failed.health().unwrap().issues().is_empty());

        for name in ["ok", "broken", "stuck"] {
            assert_eq!(
                create_node_group(&aws, "c4", name, &role, &subnets).await,
                Ok(NodegroupStatus::Creating)
            );
        }
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            node_group(&aws, "c4", "ok").await.status(),
            Some(&NodegroupStatus::Active)
        );
        let broken = node_group(&aws, "c4", "broken").await;
        assert_eq!(broken.status(), Some(&NodegroupStatus::CreateFailed));
        let issue = &broken.health().unwrap().issues()[0];
        assert!(issue
            .message()
            .unwrap()
            .contains("InsufficientInstanceCapacity"));

        let deleted = Instant::now();
        for name in ["ok", "stuck"] {
            aws.eks
                .delete_nodegroup()
                .cluster_name("c4")
                .nodegroup_name(name)
                .send()
                .await
                .unwrap();
            assert_eq!(
                node_group(&aws, "c4", name).await.status(),
                Some(&NodegroupStatus::Deleting)
            );
        }
        let gone = node_group_gone(&aws, "c4", "ok").await;
        assert!(deleted.elapsed() >= Duration::from_millis(800));
        assert_eq!(gone, "ResourceNotFoundException");
        let stuck = eventually(
            "the stuck group's delete over",
            Duration::from_secs(10),
            || async {
                let group = node_group(&aws, "c4", "stuck").await;
                (group.status() != Some(&NodegroupStatus::Deleting)).then_some(group)
            },
        )
        .await;
        assert_eq!(stuck.status(), Some(&NodegroupStatus::DeleteFailed));
        assert!(!stuck.health().unwrap().issues().is_empty());
    });
}

/// AWS honours idempotency tokens (moto does not): a create sent again with the same client
/// token, as the SDK does after a lost answer, gets the first answer and makes nothing new.
#[test]
fn a_repeated_client_token_gets_the_first_answer() {
    let (moto, layer) = only_clock(Clock::default());
    let aws = through(&layer);
    let (vpc, _) = network(&aws);
    let tables: Vec<String> = aws.run(async {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let out = aws
                .ec2
                .create_route_table()
                .vpc_id(&vpc)
                .client_token("same-token")
                .send()
                .await
                .unwrap();
            ids.push(
                out.route_table()
                    .unwrap()
                    .route_table_id()
                    .unwrap()
                    .to_string(),
            );
        }
        ids
    });
    assert_eq!(tables[0], tables[1]);
    let direct = moto.clients();
    let all = direct.run(async {
        direct
            .ec2
            .describe_route_tables()
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .send()
            .await
            .unwrap()
    });
    // The VPC's main table and the one created.
    assert_eq!(all.route_tables().len(), 2);
}

/// A NAT gateway replaced with the same Elastic IP: while the old one is deleting the address
/// is still associated (`Resource.AlreadyAssociated`); once its delete is over AWS has
/// disassociated it (moto alone never does), and a new gateway takes it.
#[test]
fn a_deleted_nat_gateway_gives_its_address_back() {
    let (_moto, layer) = only_clock(Clock {
        nat_delete: Duration::from_millis(800),
        ..Clock::default()
    });
    let aws = through(&layer);
    let (_, subnets) = network(&aws);
    aws.run(async {
        let eip = aws.ec2.allocate_address().send().await.unwrap();
        let allocation = eip.allocation_id().unwrap().to_string();
        let create = || {
            aws.ec2
                .create_nat_gateway()
                .subnet_id(&subnets[0])
                .allocation_id(&allocation)
                .send()
        };
        let old = create().await.unwrap();
        let old_id = old.nat_gateway().unwrap().nat_gateway_id().unwrap();
        let deleted = Instant::now();
        aws.ec2
            .delete_nat_gateway()
            .nat_gateway_id(old_id)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(create().await), "Resource.AlreadyAssociated");
        eventually(
            "the old gateway deleted",
            Duration::from_secs(10),
            || async {
                let out = aws
                    .ec2
                    .describe_nat_gateways()
                    .nat_gateway_ids(old_id)
                    .send()
                    .await
                    .unwrap();
                let state = out.nat_gateways()[0].state().cloned();
                (state == Some(NatGatewayState::Deleted)).then_some(())
            },
        )
        .await;
        assert!(deleted.elapsed() >= Duration::from_millis(800));
        let new = create().await.unwrap();
        assert_ne!(
            new.nat_gateway().unwrap().nat_gateway_id(),
            old.nat_gateway().unwrap().nat_gateway_id()
        );
    });
}

/// EKS refuses to delete a cluster that still has node groups, deleting ones included
/// (`ResourceInUseException`, "Cluster has nodegroups attached"), at the call, not at the end of
/// a DELETING it never enters: a destroy must delete the node groups and wait for them to go
/// before it asks for the cluster. Shown in that wrong order, then in the right one.
#[test]
fn a_cluster_with_node_groups_cannot_be_deleted() {
    let (_moto, layer) = only_clock(Clock {
        node_group_delete: Duration::from_millis(500),
        ..Clock::default()
    });
    let aws = through(&layer);
    let (_, subnets) = network(&aws);
    aws.run(async {
        let role = create_role(&aws, "role").await;
        create_cluster(&aws, "c6", &role, &subnets).await.unwrap();
        create_node_group(&aws, "c6", "workers", &role, &subnets)
            .await
            .unwrap();
        let delete_cluster = || aws.eks.delete_cluster().name("c6").send();
        assert_eq!(error_code(delete_cluster().await), "ResourceInUseException");
        aws.eks
            .delete_nodegroup()
            .cluster_name("c6")
            .nodegroup_name("workers")
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(delete_cluster().await), "ResourceInUseException");
        assert_eq!(
            node_group_gone(&aws, "c6", "workers").await,
            "ResourceNotFoundException"
        );
        let deleting = delete_cluster().await.unwrap();
        assert_eq!(
            deleting.cluster().unwrap().status(),
            Some(&ClusterStatus::Deleting)
        );
    });
}
