//! The closed set of resource kinds and what the planner must know of each: its name in
//! addresses and state, and which attributes force a replacement. A replacement deletes
//! the old object first, as every kind here is named or addressed in a way two objects cannot
//! share, unless the replacement has a new name and the kind allows two at once (node groups).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
            // Subnets change in place within the zones the cluster was made with (`replaces_for`).
            ResourceKind::EksCluster => &["name", "role_arn", "vpc_id", "availability_zones"],
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

    /// For the stateful or expensive kinds, what deleting or replacing an object loses: such a
    /// change is protected, and `apply` makes it only when the user names it
    /// (`--allow-replace ADDR`, or `protect = false` in the spec). `None` for the kinds that
    /// are cheap to make again.
    pub fn loses(self) -> Option<&'static str> {
        match self {
            ResourceKind::EksCluster => Some("the control plane and everything in the cluster: add-ons, workloads, and with them the node groups and the OIDC provider; 10 to 15 minutes without a cluster"),
            ResourceKind::EksNodeGroup => Some("its nodes and every pod running on them"),
            ResourceKind::Vpc => Some("the network and everything in it: subnets, NAT gateways and the cluster"),
            ResourceKind::NatGateway => Some("its public IP address and the private subnets' way out to the internet until a new one is available"),
            ResourceKind::S3Bucket => Some("every object in the bucket (or, without `force_destroy`, the apply fails on a bucket that is not empty)"),
            ResourceKind::EcrRepository => Some("every image in the repository"),
            ResourceKind::IamOidcProvider => Some("IRSA: the AWS access of every service account of the cluster, until the new provider and its roles are in place"),
            _ => None,
        }
    }

    /// The attributes that name an object in AWS, for the kinds addressed by name (a bucket's
    /// name, a role's name): two resources of such a kind with the same values are the same
    /// object. Empty for kinds found by their tags.
    pub fn identity_attrs(self) -> &'static [&'static str] {
        match self {
            ResourceKind::S3Bucket => &["bucket"],
            ResourceKind::EcrRepository | ResourceKind::IamRole | ResourceKind::EksCluster => {
                &["name"]
            }
            ResourceKind::EksNodeGroup => &["cluster_name", "name"],
            ResourceKind::EksAccessEntry => &["cluster_name", "principal_arn"],
            ResourceKind::IamOidcProvider => &["url"],
            _ => &[],
        }
    }
}

impl ResourceKind {
    /// Whether a change of `attr` from `before` to `after` (`None`: not known yet) needs a new
    /// object: an attribute that forces replacement, with the cluster's exceptions. EKS moves
    /// a cluster to other subnets of its VPC in place (UpdateClusterConfig), within the zones
    /// it was made with: its zones may shrink in place, not grow. A subnet of its own that is
    /// replaced still replaces it: the old subnet must be deleted before its successor exists
    /// (the same block), and the cluster cannot leave it before.
    pub fn replaces_for(self, attr: &str, before: Option<&Value>, after: Option<&Value>) -> bool {
        match (self, attr) {
            (ResourceKind::EksCluster, "availability_zones") => {
                let had = before
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                !after
                    .and_then(Value::as_array)
                    .is_some_and(|now| now.iter().all(|z| had.contains(z)))
            }
            (ResourceKind::EksCluster, "subnet_ids") => {
                let mut pending = Vec::new();
                if let Some(after) = after {
                    crate::model::pending_paths(after, "", &mut pending);
                }
                after.is_none() || !pending.is_empty()
            }
            _ => self.forces_replacement(attr),
        }
    }

    /// AWS's word, in the `status` and `health_issues` its read reports, that an object failed
    /// to be created and never will be ready (a cluster `FAILED`, a node group
    /// `CREATE_FAILED`), with AWS's reason. EKS reports these states only for a create that
    /// failed: such an object never served, so replacing it loses nothing.
    pub fn failed_create(self, attrs: &super::Attrs) -> Option<String> {
        let failed = match self {
            ResourceKind::EksCluster => "FAILED",
            ResourceKind::EksNodeGroup => "CREATE_FAILED",
            _ => return None,
        };
        let status = attrs.get("status").and_then(Value::as_str)?;
        if status != failed {
            return None;
        }
        let issues: Vec<&str> = attrs
            .get("health_issues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        Some(if issues.is_empty() {
            format!("{status}, AWS gives no reason")
        } else {
            format!("{status}: {}", issues.join("; "))
        })
    }

    /// How long AWS typically takes to make or delete an object of this kind (EKS's and VPC's
    /// documentation and their consoles' estimates); the waits' polls are paced on it, so that
    /// a wait ends within max(2 s, 5% of it) of AWS finishing. Zero for the kinds AWS makes at
    /// once.
    pub fn typical_wait(self) -> Duration {
        let minutes = match self {
            ResourceKind::EksCluster => 10.0,
            ResourceKind::EksNodeGroup => 4.0,
            ResourceKind::NatGateway | ResourceKind::VpcEndpoint => 2.0,
            ResourceKind::EksAddon => 1.0,
            _ => 0.0,
        };
        Duration::from_secs_f64(minutes * 60.0)
    }

    /// How long a delete of this kind keeps retrying while AWS answers that the object is still
    /// in use (`DependencyViolation`, `ResourceInUseException`), when it is longer than the
    /// executor's default for "not yet" errors: a subnet, an internet gateway or a VPC stays busy
    /// while the network interfaces of a deleted cluster's load balancers and pods linger (up to
    /// 20 minutes, and 45 for Lambda's), and EKS refuses a cluster's delete while an update of it
    /// runs (up to an hour for a version update). `[timeouts]` in the spec overrides it.
    pub fn in_use_budget(self) -> Option<Duration> {
        let minutes = match self {
            ResourceKind::Subnet | ResourceKind::InternetGateway | ResourceKind::Vpc => 20,
            ResourceKind::EksCluster => 60,
            _ => return None,
        };
        Some(Duration::from_secs(minutes * 60))
    }

    /// Whether a replacement under a new name may be made before the old object is deleted: the
    /// two coexist for a while, and nothing goes down in between. A node group's name carries a
    /// digest of what forces its replacement, so a new one has a new name (graph/build.rs).
    pub fn coexists_under_new_name(self) -> bool {
        self == ResourceKind::EksNodeGroup
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
