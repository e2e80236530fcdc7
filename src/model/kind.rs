//! The closed set of resource kinds and what the planner must know of each: its name in
//! addresses and state, and which attributes force a replacement. A replacement always deletes
//! the old object first: every kind here is named or addressed in a way two objects cannot share.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Vpc,
    InternetGateway,
    Subnet,
    Eip,
    NatGateway,
    RouteTable,
    Route,
    RouteTableAssociation,
    VpcEndpoint,
    IamRole,
    IamRolePolicyAttachment,
    IamRolePolicy,
    KmsKey,
    EksCluster,
    EksNodeGroup,
    EksAccessEntry,
    EksAddon,
    IamOidcProvider,
    S3Bucket,
    EcrRepository,
    Addon,
    KubeObject,
    ClusterCleanup,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 23] = [
        ResourceKind::Vpc,
        ResourceKind::InternetGateway,
        ResourceKind::Subnet,
        ResourceKind::Eip,
        ResourceKind::NatGateway,
        ResourceKind::RouteTable,
        ResourceKind::Route,
        ResourceKind::RouteTableAssociation,
        ResourceKind::VpcEndpoint,
        ResourceKind::IamRole,
        ResourceKind::IamRolePolicyAttachment,
        ResourceKind::IamRolePolicy,
        ResourceKind::KmsKey,
        ResourceKind::EksCluster,
        ResourceKind::EksNodeGroup,
        ResourceKind::EksAccessEntry,
        ResourceKind::EksAddon,
        ResourceKind::IamOidcProvider,
        ResourceKind::S3Bucket,
        ResourceKind::EcrRepository,
        ResourceKind::Addon,
        ResourceKind::KubeObject,
        ResourceKind::ClusterCleanup,
    ];

    /// The name used as the first segment of addresses and in the state file.
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Vpc => "vpc",
            ResourceKind::InternetGateway => "internet_gateway",
            ResourceKind::Subnet => "subnet",
            ResourceKind::Eip => "eip",
            ResourceKind::NatGateway => "nat_gateway",
            ResourceKind::RouteTable => "route_table",
            ResourceKind::Route => "route",
            ResourceKind::RouteTableAssociation => "route_table_association",
            ResourceKind::VpcEndpoint => "vpc_endpoint",
            ResourceKind::IamRole => "iam_role",
            ResourceKind::IamRolePolicyAttachment => "iam_role_policy_attachment",
            ResourceKind::IamRolePolicy => "iam_role_policy",
            ResourceKind::KmsKey => "kms_key",
            ResourceKind::EksCluster => "eks_cluster",
            ResourceKind::EksNodeGroup => "eks_node_group",
            ResourceKind::EksAccessEntry => "eks_access_entry",
            ResourceKind::EksAddon => "eks_addon",
            ResourceKind::IamOidcProvider => "iam_oidc_provider",
            ResourceKind::S3Bucket => "s3_bucket",
            ResourceKind::EcrRepository => "ecr_repository",
            ResourceKind::Addon => "addon",
            ResourceKind::KubeObject => "k8s",
            ResourceKind::ClusterCleanup => "cluster_cleanup",
        }
    }

    /// Attributes whose change cannot be made in place: the object must be replaced.
    /// Tags are never among them; every kind updates its tags in place.
    pub fn forces_replacement(self, attr: &str) -> bool {
        let attrs: &[&str] = match self {
            ResourceKind::Vpc => &["cidr_block"],
            ResourceKind::InternetGateway => &["vpc_id"],
            ResourceKind::Subnet => &["vpc_id", "cidr_block", "availability_zone"],
            ResourceKind::Eip => &[],
            ResourceKind::NatGateway => &["subnet_id", "allocation_id", "connectivity_type"],
            ResourceKind::RouteTable => &["vpc_id"],
            ResourceKind::Route => &["route_table_id", "destination_cidr_block"],
            ResourceKind::RouteTableAssociation => &["route_table_id", "subnet_id"],
            ResourceKind::VpcEndpoint => &["vpc_id", "service_name", "vpc_endpoint_type"],
            ResourceKind::IamRole => &["name", "path"],
            ResourceKind::IamRolePolicyAttachment => &["role_name", "policy_arn"],
            ResourceKind::IamRolePolicy => &["role_name", "policy_name"],
            // A new key could not decrypt what the old one encrypted: never replaced by a plan.
            ResourceKind::KmsKey => &[],
            ResourceKind::EksCluster => &["name", "role_arn", "subnet_ids"],
            ResourceKind::EksNodeGroup => &[
                "cluster_name",
                "name",
                "node_role_arn",
                "subnet_ids",
                "instance_types",
                "capacity_type",
                "ami_type",
                "disk_size",
            ],
            ResourceKind::EksAccessEntry => &["cluster_name", "principal_arn"],
            ResourceKind::EksAddon => &["cluster_name", "addon_name"],
            ResourceKind::IamOidcProvider => &["url"],
            ResourceKind::S3Bucket => &["bucket"],
            ResourceKind::EcrRepository => &["name"],
            ResourceKind::Addon | ResourceKind::KubeObject | ResourceKind::ClusterCleanup => &[],
        };
        attrs.contains(&attr)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ResourceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown resource kind `{s}`"))
    }
}
