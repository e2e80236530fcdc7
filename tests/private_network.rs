//! Private networking end to end against the AWS emulator (moto on 127.0.0.1): `nat = "none"`
//! makes the VPC endpoints the nodes need to reach AWS without a NAT gateway. Checked through
//! the AWS SDK, never through mlops' own state.
//!
//! What moto shows as AWS does: `CreateVpcEndpoint` of a gateway endpoint on route tables and
//! of interface endpoints in subnets, their service names, types, route tables, subnets and
//! tags, and `DeleteVpcEndpoints`. What it does not: its `DescribeCluster` has no
//! `clusterSecurityGroupId`, so the interface endpoints cannot be checked in the cluster's
//! security group here (the provider sends the group as the plan resolves it); it reports
//! `PrivateDnsEnabled` true for a gateway endpoint (it defaults the flag to true when the
//! request leaves it out, as it must for a gateway), where AWS reports false; and an endpoint is
//! `available` at once, where AWS shows `pending` for a minute or more, so the wait's polling is
//! not exercised (its first poll passes). The first two are why a re-plan after an apply against
//! moto may still show updates of `vpc_endpoint.*` (and of nothing else: `tests/safe_changes.rs`).

mod support;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use support::{example_as, Aws, Emulator, Project};

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The VPC of the stack (tagged `mlops:stack`), its id.
fn vpc_of(aws: &Aws, stack: &str) -> String {
    aws.run(async {
        let out = aws
            .ec2
            .describe_vpcs()
            .filters(filter("tag:mlops:stack", stack))
            .send()
            .await
            .unwrap();
        assert_eq!(out.vpcs().len(), 1, "one VPC of `{stack}`");
        out.vpcs()[0].vpc_id().unwrap().to_string()
    })
}

/// The ids whose `Name` tag contains `part` (`-private-`), sorted.
fn named(names: &BTreeMap<String, String>, part: &str) -> Vec<String> {
    let mut ids: Vec<String> = names
        .iter()
        .filter(|(_, name)| name.contains(part))
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    ids
}

/// Models AWS PrivateLink for a VPC without a NAT gateway: the nodes reach S3 through a gateway
/// endpoint on the private route tables, and ECR (api and dkr), STS, EC2 and CloudWatch Logs
/// through interface endpoints in the private subnets with private DNS on, so that the SDKs and
/// the kubelet reach them by their usual names. No NAT gateway and no route to the internet
/// from the private subnets. A destroy deletes the endpoints with the VPC.
#[test]
fn no_nat_makes_the_endpoints_the_nodes_need() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "pvt";
    let text = example_as(stack).replace("nat = \"single\"", "nat = \"none\"");
    let project = Project::new(&moto, stack, &text);
    project.apply().ok();

    let vpc = vpc_of(&aws, stack);
    aws.run(async {
        let by_vpc = || filter("vpc-id", &vpc);
        let name_of = |tags: &[aws_sdk_ec2::types::Tag]| {
            tags.iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_string()
        };
        let route_tables = aws
            .ec2
            .describe_route_tables()
            .filters(by_vpc())
            .send()
            .await
            .unwrap();
        let tables: BTreeMap<String, String> = route_tables
            .route_tables()
            .iter()
            .map(|t| (t.route_table_id().unwrap().to_string(), name_of(t.tags())))
            .collect();
        let subnets: BTreeMap<String, String> = aws
            .ec2
            .describe_subnets()
            .filters(by_vpc())
            .send()
            .await
            .unwrap()
            .subnets()
            .iter()
            .map(|s| (s.subnet_id().unwrap().to_string(), name_of(s.tags())))
            .collect();
        let private_tables = named(&tables, "-private-");
        let private_subnets = named(&subnets, "-private-");
        assert_eq!(private_tables.len(), 2, "{tables:?}");
        assert_eq!(private_subnets.len(), 2, "{subnets:?}");

        let endpoints = aws
            .ec2
            .describe_vpc_endpoints()
            .filters(by_vpc())
            .send()
            .await
            .unwrap();
        let mut services = BTreeMap::new();
        for endpoint in endpoints.vpc_endpoints() {
            let service = endpoint.service_name().unwrap();
            let mut tables: Vec<String> = endpoint.route_table_ids().to_vec();
            tables.sort();
            let mut subnets: Vec<String> = endpoint.subnet_ids().to_vec();
            subnets.sort();
            let kind = endpoint.vpc_endpoint_type().unwrap().as_str();
            if service.ends_with(".s3") {
                assert_eq!(kind, "Gateway");
                assert_eq!(tables, private_tables, "S3 on the private route tables");
                assert!(subnets.is_empty());
            } else {
                assert_eq!(kind, "Interface", "{service}");
                assert_eq!(subnets, private_subnets, "{service} in the private subnets");
                assert!(tables.is_empty(), "{service}");
                assert_eq!(endpoint.private_dns_enabled(), Some(true), "{service}");
            }
            assert!(
                endpoint
                    .tags()
                    .iter()
                    .any(|t| t.key() == Some("mlops:stack") && t.value() == Some(stack)),
                "{service}"
            );
            // Lower case, as EC2 answers it (the SDK's enum has it capitalized).
            let state = endpoint.state().map(|s| s.as_str().to_ascii_lowercase());
            assert_eq!(state.as_deref(), Some("available"), "{service}");
            services.insert(service.to_string(), kind.to_string());
        }
        let expected: Vec<String> = ["ec2", "ecr.api", "ecr.dkr", "logs", "s3", "sts"]
            .iter()
            .map(|s| format!("com.amazonaws.us-west-2.{s}"))
            .collect();
        assert_eq!(services.keys().cloned().collect::<Vec<_>>(), expected);

        let nats = aws
            .ec2
            .describe_nat_gateways()
            .filter(by_vpc())
            .send()
            .await
            .unwrap();
        assert!(nats.nat_gateways().is_empty(), "no NAT gateway");
        for table in route_tables.route_tables() {
            if private_tables.contains(&table.route_table_id().unwrap().to_string()) {
                assert!(
                    !table
                        .routes()
                        .iter()
                        .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")),
                    "no route to the internet from {:?}",
                    table.route_table_id()
                );
            }
        }
    });

    project.destroy().ok();
    aws.run(async {
        let left = aws
            .ec2
            .describe_vpc_endpoints()
            .filters(filter("tag:mlops:stack", stack))
            .send()
            .await
            .unwrap();
        let live: Vec<_> = left
            .vpc_endpoints()
            .iter()
            .filter(|e| {
                !matches!(
                    e.state()
                        .map(|s| s.as_str().to_ascii_lowercase())
                        .as_deref(),
                    Some("deleted" | "deleting")
                )
            })
            .collect();
        assert!(live.is_empty(), "{live:?}");
    });
}
