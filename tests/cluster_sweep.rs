//! The sweep of what Kubernetes leaves in the VPC, run through the EKS cluster's delete against
//! the AWS emulator: exactly the deleted cluster's leftovers in its VPC go; the same kinds
//! tagged for another cluster, tagged `shared`, untagged, or in another VPC stay. Every check
//! goes through the AWS SDK. GuardDuty's endpoint and security group in the cluster's VPC go
//! too; those in another VPC, or not GuardDuty's, stay.

mod support;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum;
use mlops::base::{Op, Reporter};
use mlops::model::{Address, ResourceKind};
use mlops::providers::aws::{provider_for, Clients};
use mlops::providers::Ctx;
use serde_json::json;
use support::leftovers::{self, existing, leave, Leftovers};
use support::{Aws, Emulator};

/// Keeps what the sweep reports while it waits.
#[derive(Default)]
struct Recorder {
    waits: Mutex<Vec<String>>,
}

impl Reporter for Recorder {
    fn started(&self, _: &Address, _: Op) {}
    fn waiting(&self, _: &Address, what: &str) {
        self.waits.lock().unwrap().push(what.to_string());
    }
    fn retrying(&self, _: &Address, _: &str, _: Duration) {}
    fn adopted(&self, _: &Address, _: &str) {}
    fn finished(&self, _: &Address, _: Op, _: Duration) {}
    fn failed(&self, _: &Address, _: Op, _: &str) {}
    fn interrupted(&self, _: usize) {}
    fn warning(&self, _: &str) {}
}

/// A VPC with a subnet in each of two zones.
async fn network(aws: &Aws, cidr: u8) -> (String, Vec<String>) {
    let vpc = aws
        .ec2
        .create_vpc()
        .cidr_block(format!("10.{cidr}.0.0/16"))
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let mut subnets = Vec::new();
    for (i, zone) in ["us-west-2a", "us-west-2b"].iter().enumerate() {
        let subnet = aws
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.{cidr}.{i}.0/24"))
            .availability_zone(*zone)
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    (vpc, subnets)
}

/// The EKS cluster `prod` on `subnets`.
async fn cluster_on(aws: &Aws, subnets: &[String]) {
    aws.eks
        .create_cluster()
        .name("prod")
        .role_arn("arn:aws:iam::123456789012:role/prod-eks-cluster")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .set_subnet_ids(Some(subnets.to_vec()))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The delete of the cluster `name` on `subnets` (its sweep with it), as the executor calls it.
fn delete_cluster(
    aws: &Aws,
    recorder: &Recorder,
    name: &str,
    subnets: &[String],
) -> Result<(), mlops::base::ProviderError> {
    let clients = Clients::from_config(&aws.config, "us-west-2", true);
    let address = Address::new("eks_cluster");
    let kube = mlops::providers::kube::KubeEnv::unused();
    let ctx = Ctx {
        aws: &clients,
        kube: &kube,
        stack: "sweep",
        address: &address,
        reporter: recorder,
    };
    let prior = json!({ "name": name, "subnet_ids": subnets })
        .as_object()
        .unwrap()
        .clone();
    aws.run(provider_for(ResourceKind::EksCluster).delete(&ctx, name, &prior))
}

#[test]
fn the_sweep_deletes_exactly_what_the_cluster_left_in_its_vpc() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let recorder = Recorder::default();

    let (vpc, subnets, ours, others, nodes) = aws.run(async {
        let (vpc, subnets) = network(&aws, 0).await;
        let (other_vpc, other_subnets) = network(&aws, 1).await;
        cluster_on(&aws, &subnets).await;
        let nodes = leftovers::security_group(&aws, &vpc, "prod-nodes", &[]).await;
        let other_nodes = leftovers::security_group(&aws, &other_vpc, "nodes", &[]).await;

        let ours = leave(&aws, "prod", "p", &vpc, &subnets, &nodes).await;
        // A cluster whose name starts with this one's, in the same VPC.
        let mut others = leave(&aws, "prod-2", "q", &vpc, &subnets, &nodes).await;
        // The same cluster name in another VPC: not this cluster's VPC, not swept.
        let elsewhere = leave(&aws, "prod", "r", &other_vpc, &other_subnets, &other_nodes).await;
        // Used by the cluster, owned by someone else.
        let shared = leftovers::security_group(
            &aws,
            &vpc,
            "shared-with-prod",
            &[("kubernetes.io/cluster/prod", "shared")],
        )
        .await;
        // Nobody's.
        let untagged_group = leftovers::security_group(&aws, &vpc, "untagged", &[]).await;
        let untagged_interface =
            leftovers::network_interface(&aws, &subnets[1], "hand-made", &[]).await;
        leftovers::elbv2_load_balancer(
            &aws,
            LoadBalancerTypeEnum::Application,
            "hand-made",
            "hand-made",
            &vpc,
            &subnets,
            std::slice::from_ref(&untagged_group),
            &[],
        )
        .await;

        others.load_balancers.extend(elsewhere.load_balancers);
        others.load_balancers.insert("hand-made".into());
        others
            .classic_load_balancers
            .extend(elsewhere.classic_load_balancers);
        others.target_groups.extend(elsewhere.target_groups);
        others.target_groups.insert("hand-made".into());
        others.security_groups.extend(elsewhere.security_groups);
        others
            .security_groups
            .extend([shared, untagged_group, nodes.clone(), other_nodes]);
        others
            .network_interfaces
            .extend(elsewhere.network_interfaces);
        others.network_interfaces.insert(untagged_interface);
        (vpc, subnets, ours, others, nodes)
    });
    assert_eq!(aws.run(existing(&aws, &ours)), ours, "all made");
    assert_eq!(aws.run(existing(&aws, &others)), others, "all made");
    let before = aws.run(leftovers::sources(&aws, &nodes));
    assert_eq!(before.len(), 4, "{before:?}");

    delete_cluster(&aws, &recorder, "prod", &subnets).expect("the cluster's delete and its sweep");

    assert_eq!(aws.run(existing(&aws, &ours)), Leftovers::default());
    assert_eq!(aws.run(existing(&aws, &others)), others);
    assert!(aws
        .run(aws.eks.describe_cluster().name("prod").send())
        .is_err());
    // The nodes' rules that let the swept groups in are gone; prod-2's stay.
    let after = aws.run(leftovers::sources(&aws, &nodes));
    let kept: BTreeSet<String> = before
        .into_iter()
        .filter(|g| !ours.security_groups.contains(g))
        .collect();
    assert_eq!(after, kept);
    assert_eq!(after.len(), 2);

    // Each swept object was reported, with the VPC.
    let waits = recorder.waits.lock().unwrap().join("\n");
    for name in ours
        .load_balancers
        .iter()
        .chain(&ours.classic_load_balancers)
        .chain(&ours.target_groups)
        .chain(&ours.security_groups)
        .chain(&ours.network_interfaces)
    {
        assert!(
            waits
                .lines()
                .any(|l| l.contains(name.as_str()) && l.contains(vpc.as_str())),
            "`{name}` not reported:\n{waits}"
        );
    }
    for name in others.load_balancers.iter().chain(&others.security_groups) {
        assert!(
            !waits.contains(name.as_str()),
            "`{name}` reported:\n{waits}"
        );
    }
}

/// GuardDuty's security group in `vpc`, as GuardDuty names and tags it.
async fn guardduty_group(aws: &Aws, vpc: &str) -> String {
    let name = format!("GuardDutyManagedSecurityGroup-{vpc}");
    leftovers::security_group(aws, vpc, &name, &[("GuardDutyManaged", "true")]).await
}

/// GuardDuty Runtime Monitoring adds an interface endpoint (`guardduty-data`) and its security
/// group, tagged `GuardDutyManaged = true`, to every VPC with an EKS cluster, and leaves them
/// when the cluster goes: in AWS they then hold the subnets and the VPC (moto enforces neither,
/// so the test checks which objects are left). The cluster's delete removes those of its VPC,
/// the endpoint's network interfaces with it; another VPC's, a hand-made endpoint and a group
/// tagged `GuardDutyManaged = false` stay.
#[test]
fn guardduty_s_endpoint_and_group_in_the_cluster_s_vpc_are_swept() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let recorder = Recorder::default();
    let guardduty = "com.amazonaws.us-west-2.guardduty-data";
    let managed: &[(&str, &str)] = &[("GuardDutyManaged", "true")];

    let (vpc, subnets, swept, kept) = aws.run(async {
        let (vpc, subnets) = network(&aws, 0).await;
        let (other_vpc, other_subnets) = network(&aws, 1).await;
        cluster_on(&aws, &subnets).await;
        let ours = guardduty_group(&aws, &vpc).await;
        let theirs = guardduty_group(&aws, &other_vpc).await;
        let not_managed =
            leftovers::security_group(&aws, &vpc, "x", &[("GuardDutyManaged", "false")]).await;
        let endpoint =
            leftovers::interface_endpoint(&aws, &vpc, guardduty, (&subnets, &ours), managed).await;
        let other_endpoint = leftovers::interface_endpoint(
            &aws,
            &other_vpc,
            guardduty,
            (&other_subnets, &theirs),
            managed,
        )
        .await;
        let hand_made = leftovers::interface_endpoint(
            &aws,
            &vpc,
            "com.amazonaws.us-west-2.ecr.api",
            (&subnets, &not_managed),
            &[],
        )
        .await;
        let swept = BTreeSet::from([endpoint, ours]);
        let kept = BTreeSet::from([other_endpoint, hand_made, theirs, not_managed]);
        (vpc, subnets, swept, kept)
    });
    let existing = || {
        aws.run(async {
            let mut all = leftovers::endpoints(&aws).await;
            let groups = aws.ec2.describe_security_groups().send().await.unwrap();
            all.extend(
                groups
                    .security_groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string)),
            );
            all
        })
    };
    let interfaces = || {
        aws.run(async {
            let out = aws.ec2.describe_network_interfaces().send().await.unwrap();
            out.network_interfaces().len()
        })
    };
    let before = existing();
    assert!(
        swept.is_subset(&before) && kept.is_subset(&before),
        "all made"
    );
    // One interface per subnet for each of the three endpoints.
    assert_eq!(interfaces(), 6);

    delete_cluster(&aws, &recorder, "prod", &subnets).expect("the cluster's delete and its sweep");

    let after = existing();
    assert!(swept.is_disjoint(&after), "{swept:?} left in {after:?}");
    assert!(kept.is_subset(&after), "{kept:?} not all in {after:?}");
    assert_eq!(interfaces(), 4, "the swept endpoint's interfaces are gone");
    let waits = recorder.waits.lock().unwrap().join("\n");
    for id in &swept {
        assert!(
            waits
                .lines()
                .any(|l| l.contains(id.as_str()) && l.contains(vpc.as_str())),
            "`{id}` not reported:\n{waits}"
        );
    }
}

#[test]
fn a_cluster_whose_subnets_are_gone_has_nothing_to_sweep() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let recorder = Recorder::default();
    delete_cluster(
        &aws,
        &recorder,
        "gone",
        &["subnet-0123456789abcdef0".to_string()],
    )
    .expect("a cluster and subnets already gone are fine");
    assert!(recorder.waits.lock().unwrap().is_empty());
}
