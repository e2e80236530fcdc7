//! Objects made to look like what Kubernetes' controllers leave in a VPC when its EKS cluster
//! is deleted (who tags what: `src/providers/aws/cluster_sweep.rs`), and the check, through the
//! SDK, of which of them still exist.
//!
//! The emulator (moto 5.1.22) creates no network interfaces for load balancers and enforces no
//! dependency between these objects: it deletes a security group that another group's rules or
//! an interface still use, and a subnet or a VPC that still holds load balancers, interfaces or
//! groups. So a test cannot see a delete blocked: it sees which objects are left.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{
    IpPermission, NetworkInterface, ResourceType, TagSpecification, UserIdGroupPair,
};
use aws_sdk_elasticloadbalancing::types::Listener as ClassicListener;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum,
};

use super::Aws;

/// What one cluster left: names of load balancers and target groups, ids of the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub load_balancers: BTreeSet<String>,
    pub classic_load_balancers: BTreeSet<String>,
    pub target_groups: BTreeSet<String>,
    pub security_groups: BTreeSet<String>,
    pub network_interfaces: BTreeSet<String>,
}

type Tags<'a> = &'a [(&'a str, &'a str)];

/// Tags to set at creation; none for no tags (EC2 refuses an empty specification).
fn ec2_tags(kind: ResourceType, tags: Tags<'_>) -> Option<Vec<TagSpecification>> {
    let mut spec = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        spec = spec.tags(aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build());
    }
    (!tags.is_empty()).then(|| vec![spec.build()])
}

fn elbv2_tags(tags: Tags<'_>) -> Vec<aws_sdk_elasticloadbalancingv2::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
        })
        .collect()
}

fn elb_tags(tags: Tags<'_>) -> Vec<aws_sdk_elasticloadbalancing::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_elasticloadbalancing::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .unwrap()
        })
        .collect()
}

/// A security group in `vpc`.
pub async fn security_group(aws: &Aws, vpc: &str, name: &str, tags: Tags<'_>) -> String {
    aws.ec2
        .create_security_group()
        .group_name(name)
        .description(format!("{name} (test)"))
        .vpc_id(vpc)
        .set_tag_specifications(ec2_tags(ResourceType::SecurityGroup, tags))
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string()
}

/// An interface endpoint in `subnets` of `vpc` for `service` (GuardDuty's is
/// `com.amazonaws.<region>.guardduty-data`), in the security group `group`; its id.
pub async fn interface_endpoint(
    aws: &Aws,
    vpc: &str,
    service: &str,
    (subnets, group): (&[String], &str),
    tags: Tags<'_>,
) -> String {
    aws.ec2
        .create_vpc_endpoint()
        .vpc_id(vpc)
        .service_name(service)
        .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::Interface)
        .set_subnet_ids(Some(subnets.to_vec()))
        .security_group_ids(group)
        .set_tag_specifications(ec2_tags(ResourceType::VpcEndpoint, tags))
        .send()
        .await
        .unwrap()
        .vpc_endpoint()
        .and_then(|e| e.vpc_endpoint_id())
        .unwrap()
        .to_string()
}

/// The VPC endpoints that exist (not `deleted`), by id, asked through the SDK.
pub async fn endpoints(aws: &Aws) -> BTreeSet<String> {
    aws.ec2
        .describe_vpc_endpoints()
        .send()
        .await
        .unwrap()
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().map(|s| s.as_str().to_ascii_lowercase()) != Some("deleted".into()))
        .filter_map(|e| e.vpc_endpoint_id().map(str::to_string))
        .collect()
}

/// A detached network interface in `subnet`.
pub async fn network_interface(
    aws: &Aws,
    subnet: &str,
    description: &str,
    tags: Tags<'_>,
) -> String {
    aws.ec2
        .create_network_interface()
        .subnet_id(subnet)
        .description(description)
        .set_tag_specifications(ec2_tags(ResourceType::NetworkInterface, tags))
        .send()
        .await
        .unwrap()
        .network_interface()
        .and_then(NetworkInterface::network_interface_id)
        .unwrap()
        .to_string()
}

/// An ALB or NLB in `subnets` with a listener forwarding to a new target group in `vpc`;
/// both carry `tags`.
#[allow(clippy::too_many_arguments)]
pub async fn elbv2_load_balancer(
    aws: &Aws,
    kind: LoadBalancerTypeEnum,
    name: &str,
    target_group: &str,
    vpc: &str,
    subnets: &[String],
    security_groups: &[String],
    tags: Tags<'_>,
) {
    let protocol = if kind == LoadBalancerTypeEnum::Application {
        ProtocolEnum::Http
    } else {
        ProtocolEnum::Tcp
    };
    let lb = aws
        .elbv2
        .create_load_balancer()
        .name(name)
        .r#type(kind)
        .set_subnets(Some(subnets.to_vec()))
        .set_security_groups((!security_groups.is_empty()).then(|| security_groups.to_vec()))
        .set_tags(Some(elbv2_tags(tags)))
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap();
    let tg = aws
        .elbv2
        .create_target_group()
        .name(target_group)
        .protocol(protocol.clone())
        .port(30080)
        .vpc_id(vpc)
        .set_tags(Some(elbv2_tags(tags)))
        .send()
        .await
        .unwrap();
    let tg_arn = tg.target_groups()[0].target_group_arn().unwrap();
    aws.elbv2
        .create_listener()
        .load_balancer_arn(lb_arn)
        .protocol(protocol)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(tg_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A classic ELB in `subnets` behind `security_group`.
pub async fn classic_load_balancer(
    aws: &Aws,
    name: &str,
    subnets: &[String],
    security_group: &str,
    tags: Tags<'_>,
) {
    aws.elb
        .create_load_balancer()
        .load_balancer_name(name)
        .listeners(
            ClassicListener::builder()
                .protocol("TCP")
                .load_balancer_port(80)
                .instance_port(30081)
                .build()
                .unwrap(),
        )
        .set_subnets(Some(subnets.to_vec()))
        .security_groups(security_group)
        .set_tags(Some(elb_tags(tags)))
        .send()
        .await
        .unwrap();
}

/// Lets `source` reach `group` on `port`, as controllers open the nodes to load balancers.
pub async fn allow_from(aws: &Aws, group: &str, source: &str, port: i32) {
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Leaves in `vpc` what `cluster`'s controllers would: from the AWS Load Balancer Controller
/// an ALB with its frontend group, the shared backend group and a target group; from the
/// in-tree service controller an NLB with its target group and a classic ELB with its group;
/// from the VPC CNI a detached interface. `node_group` (the nodes' security group, not
/// tagged) gets the rules that let the load balancers' groups in. `prefix` (at most 8
/// characters) keeps names unique in the region; `subnets` are two subnets of `vpc` in
/// different zones.
pub async fn leave(
    aws: &Aws,
    cluster: &str,
    prefix: &str,
    vpc: &str,
    subnets: &[String],
    node_group: &str,
) -> Leftovers {
    let lbc: &[(&str, &str)] = &[("elbv2.k8s.aws/cluster", cluster)];
    let in_tree_key = format!("kubernetes.io/cluster/{cluster}");
    let in_tree: &[(&str, &str)] = &[
        (&in_tree_key, "owned"),
        ("kubernetes.io/service-name", "default/web"),
    ];

    let backend = security_group(
        aws,
        vpc,
        &format!("k8s-traffic-{prefix}"),
        &[lbc[0], ("elbv2.k8s.aws/resource", "backend-sg")],
    )
    .await;
    let frontend = security_group(aws, vpc, &format!("k8s-default-{prefix}"), lbc).await;
    let alb = format!("k8s-default-{prefix}");
    let alb_group = format!("k8s-default-{prefix}-tg");
    elbv2_load_balancer(
        aws,
        LoadBalancerTypeEnum::Application,
        &alb,
        &alb_group,
        vpc,
        subnets,
        &[frontend.clone(), backend.clone()],
        lbc,
    )
    .await;
    allow_from(aws, node_group, &backend, 8080).await;

    let nlb = format!("a{prefix}nlb");
    let nlb_group = format!("k8s-web-{prefix}");
    elbv2_load_balancer(
        aws,
        LoadBalancerTypeEnum::Network,
        &nlb,
        &nlb_group,
        vpc,
        subnets,
        &[],
        in_tree,
    )
    .await;

    let classic = format!("a{prefix}elb");
    let classic_group = security_group(aws, vpc, &format!("k8s-elb-{classic}"), in_tree).await;
    classic_load_balancer(aws, &classic, subnets, &classic_group, in_tree).await;
    allow_from(aws, node_group, &classic_group, 30081).await;

    let interface = network_interface(
        aws,
        &subnets[0],
        "aws-K8S-i-0123456789abcdef0",
        &[
            ("cluster.k8s.amazonaws.com/name", cluster),
            ("node.k8s.amazonaws.com/instance_id", "i-0123456789abcdef0"),
        ],
    )
    .await;

    Leftovers {
        load_balancers: [alb, nlb].into(),
        classic_load_balancers: [classic].into(),
        target_groups: [alb_group, nlb_group].into(),
        security_groups: [backend, frontend, classic_group].into(),
        network_interfaces: [interface].into(),
    }
}

/// Which of `of` still exist, asked through the SDK.
pub async fn existing(aws: &Aws, of: &Leftovers) -> Leftovers {
    let keep = |all: BTreeSet<String>, wanted: &BTreeSet<String>| -> BTreeSet<String> {
        all.intersection(wanted).cloned().collect()
    };
    let load_balancers = aws
        .elbv2
        .describe_load_balancers()
        .send()
        .await
        .unwrap()
        .load_balancers()
        .iter()
        .filter_map(|lb| lb.load_balancer_name().map(str::to_string))
        .collect();
    let classic = aws
        .elb
        .describe_load_balancers()
        .send()
        .await
        .unwrap()
        .load_balancer_descriptions()
        .iter()
        .filter_map(|lb| lb.load_balancer_name().map(str::to_string))
        .collect();
    let target_groups = aws
        .elbv2
        .describe_target_groups()
        .send()
        .await
        .unwrap()
        .target_groups()
        .iter()
        .filter_map(|g| g.target_group_name().map(str::to_string))
        .collect();
    let groups = aws
        .ec2
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    let interfaces = aws
        .ec2
        .describe_network_interfaces()
        .send()
        .await
        .unwrap()
        .network_interfaces()
        .iter()
        .filter_map(|i| i.network_interface_id().map(str::to_string))
        .collect();
    Leftovers {
        load_balancers: keep(load_balancers, &of.load_balancers),
        classic_load_balancers: keep(classic, &of.classic_load_balancers),
        target_groups: keep(target_groups, &of.target_groups),
        security_groups: keep(groups, &of.security_groups),
        network_interfaces: keep(interfaces, &of.network_interfaces),
    }
}

/// The groups the inbound rules of `group` let in.
pub async fn sources(aws: &Aws, group: &str) -> BTreeSet<String> {
    aws.ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap()
        .security_groups()
        .iter()
        .flat_map(|g| g.ip_permissions())
        .flat_map(|p| p.user_id_group_pairs())
        .filter_map(|pair| pair.group_id().map(str::to_string))
        .collect()
}
