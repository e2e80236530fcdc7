//! The sweep of what Kubernetes leaves in the VPC, run through the EKS cluster's delete against
//! the AWS emulator: exactly the deleted cluster's leftovers in its VPC go; the same kinds
//! tagged for another cluster, tagged `shared`, untagged, or in another VPC stay. Every check
//! goes through the AWS SDK.

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

#[test]
fn the_sweep_deletes_exactly_what_the_cluster_left_in_its_vpc() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let clients = Clients::from_config(&aws.config, "us-west-2", true);
    let recorder = Recorder::default();

    let (vpc, subnets, ours, others, nodes) = aws.run(async {
        let (vpc, subnets) = network(&aws, 0).await;
        let (other_vpc, other_subnets) = network(&aws, 1).await;
        aws.eks
            .create_cluster()
            .name("prod")
            .role_arn("arn:aws:iam::123456789012:role/prod-eks-cluster")
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .set_subnet_ids(Some(subnets.clone()))
                    .build(),
            )
            .send()
            .await
            .unwrap();
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

    let address = Address::new("eks_cluster");
    let kube = mlops::providers::kube::KubeEnv::unused();
    let ctx = Ctx {
        aws: &clients,
        kube: &kube,
        stack: "sweep",
        address: &address,
        reporter: &recorder,
    };
    let prior = json!({ "name": "prod", "subnet_ids": subnets })
        .as_object()
        .unwrap()
        .clone();
    aws.run(provider_for(ResourceKind::EksCluster).delete(&ctx, "prod", &prior))
        .expect("the cluster's delete and its sweep");

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

#[test]
fn a_cluster_whose_subnets_are_gone_has_nothing_to_sweep() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let clients = Clients::from_config(&aws.config, "us-west-2", true);
    let recorder = Recorder::default();
    let address = Address::new("eks_cluster");
    let kube = mlops::providers::kube::KubeEnv::unused();
    let ctx = Ctx {
        aws: &clients,
        kube: &kube,
        stack: "sweep",
        address: &address,
        reporter: &recorder,
    };
    let prior = json!({ "name": "gone", "subnet_ids": ["subnet-0123456789abcdef0"] })
        .as_object()
        .unwrap()
        .clone();
    aws.run(provider_for(ResourceKind::EksCluster).delete(&ctx, "gone", &prior))
        .expect("a cluster and subnets already gone are fine");
    assert!(recorder.waits.lock().unwrap().is_empty());
}
