//! The VPC's endpoints (`vpc_endpoint.<service>`, `[vpc] endpoints`): S3 as a gateway endpoint
//! on the private route tables, the other services as interface endpoints in the private
//! subnets with private DNS, so that the SDKs on the nodes reach them by their usual names. The
//! interface endpoints use the cluster's security group, which EKS gives its managed nodes: no
//! rule is needed for the nodes to reach them, and the node groups wait for them.

use serde_json::{json, Value};

use super::build::Builder;
use crate::model::{reference, Address, ResourceKind};

/// An endpoint's service name: `com.amazonaws.<region>.<service>`; in China the prefix is `cn.`.
fn service_name(b: &Builder, service: &str) -> String {
    let region = &b.spec.stack.region;
    let prefix = if b.partition.name == "aws-cn" {
        "cn."
    } else {
        ""
    };
    format!("{prefix}com.amazonaws.{region}.{service}")
}

pub(super) fn vpc_endpoints(
    b: &mut Builder,
    (vpc, cluster): (&Address, &Address),
    private_tables: &[Address],
    private_subnets: &[Value],
) -> Vec<Address> {
    let services = b.spec.vpc.endpoints.clone();
    services
        .iter()
        .map(|service| {
            let gateway = service == "s3";
            let (tables, subnets, groups) = if gateway {
                let tables: Vec<Value> =
                    private_tables.iter().map(|t| reference(t, "id")).collect();
                (tables, Vec::new(), Vec::new())
            } else {
                let group = reference(cluster, "cluster_security_group_id");
                (Vec::new(), private_subnets.to_vec(), vec![group])
            };
            let name = b.name_tag(&format!("{}-endpoint", service.replace('.', "-")));
            b.add(
                ResourceKind::VpcEndpoint,
                &[&service.replace('.', "-")],
                json!({
                    "vpc_id": reference(vpc, "id"),
                    "service_name": service_name(b, service),
                    "vpc_endpoint_type": if gateway { "Gateway" } else { "Interface" },
                    "route_table_ids": tables,
                    "subnet_ids": subnets,
                    "security_group_ids": groups,
                    "private_dns_enabled": !gateway,
                    "tags": name,
                }),
                &[],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::graph::desired_resources;
    use crate::model::ResourceKind;

    const EXAMPLE: &str = include_str!("../../stacks/example.toml");

    /// `nat = "none"` plans an endpoint per service, and no NAT gateway or NAT route; the node
    /// groups wait for the endpoints.
    #[test]
    fn no_nat_plans_the_endpoints_the_nodes_need() {
        let text = EXAMPLE.replacen("nat = \"single\"", "nat = \"none\"", 1);
        let spec = crate::spec::parse(Path::new("stacks/example.toml"), text).unwrap();
        let all = desired_resources(&spec);
        let endpoints: Vec<&str> = all
            .iter()
            .filter(|r| r.kind == ResourceKind::VpcEndpoint)
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(
            endpoints,
            [
                "vpc_endpoint.ec2",
                "vpc_endpoint.ecr-api",
                "vpc_endpoint.ecr-dkr",
                "vpc_endpoint.logs",
                "vpc_endpoint.s3",
                "vpc_endpoint.sts"
            ]
        );
        assert!(!all.iter().any(|r| r.kind == ResourceKind::NatGateway));
        let s3 = all
            .iter()
            .find(|r| r.address.as_str() == "vpc_endpoint.s3")
            .unwrap();
        assert_eq!(s3.attrs["service_name"], "com.amazonaws.us-west-2.s3");
        assert_eq!(s3.attrs["vpc_endpoint_type"], "Gateway");
        assert_eq!(s3.attrs["route_table_ids"].as_array().unwrap().len(), 2);
        let ecr = all
            .iter()
            .find(|r| r.address.as_str() == "vpc_endpoint.ecr-dkr")
            .unwrap();
        assert_eq!(ecr.attrs["service_name"], "com.amazonaws.us-west-2.ecr.dkr");
        assert_eq!(ecr.attrs["private_dns_enabled"], true);
        assert_eq!(ecr.attrs["subnet_ids"].as_array().unwrap().len(), 2);
        let group = all
            .iter()
            .find(|r| r.address.as_str() == "eks_node_group.default")
            .unwrap();
        for endpoint in &endpoints {
            assert!(
                group.deps.iter().any(|d| d.as_str() == *endpoint),
                "{endpoint}"
            );
        }
    }
}
