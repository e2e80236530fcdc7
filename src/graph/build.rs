//! From a validated `Spec` to the desired resources of the stack: every AWS object the stack
//! needs, including the ones the spec does not spell out (internet gateway, route tables, EIPs,
//! the cluster and node IAM roles and their policy attachments), with typed attributes, tags,
//! and dependency edges taken from the references between attributes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::addons::{render, Addon};
use crate::manifest::MANAGED_BY;
use crate::model::device_plugin::ATTR as DEVICE_PLUGIN_ATTR;
use crate::model::{
    canonical, initial, reference, references_in, zones::by_zone, Address, Attrs, Partition,
    Resource, ResourceKind,
};
use crate::spec::{KserveMode, NatMode, Spec};
use crate::workloads::{with_outputs, Output, Workload};

/// The AWS-managed policies the EKS control plane role needs, by name.
pub const CLUSTER_POLICIES: &[&str] = &["AmazonEKSClusterPolicy"];

/// The AWS-managed policies every node role needs, by name.
pub const NODE_POLICIES: &[&str] = &[
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
];

/// The EKS access policy given to `[eks] admin_arns`, in the stack's partition.
pub fn cluster_admin_policy(partition: Partition) -> String {
    format!(
        "arn:{}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        partition.name
    )
}

/// The audience IRSA tokens are issued for: EKS's pod identity webhook asks for this one in
/// every partition.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";

/// IAM role names of the stack.
pub fn cluster_role_name(stack: &str) -> String {
    format!("{stack}-eks-cluster")
}

pub fn node_role_name(stack: &str) -> String {
    format!("{stack}-eks-node")
}

pub use crate::spec::irsa_role_name;

pub(super) struct Builder<'a> {
    pub(super) spec: &'a Spec,
    pub(super) partition: Partition,
    resources: Vec<Resource>,
}

impl Builder<'_> {
    /// Adds a resource; its dependencies are the resources its attributes refer to plus `after`.
    pub(super) fn add(
        &mut self,
        kind: ResourceKind,
        parts: &[&str],
        attrs: Value,
        after: &[&Address],
    ) -> Address {
        let address = Address::of(kind.name(), parts);
        let Value::Object(mut attrs) = attrs else {
            unreachable!("resource attributes are built as objects")
        };
        if attrs.contains_key("tags") {
            let tags = self.tags(&address, attrs.get("tags"));
            attrs.insert("tags".into(), tags);
        }
        let attrs = canonical(attrs);
        let mut deps = Vec::new();
        references_in(&Value::Object(attrs.clone()), &mut deps);
        deps.extend(after.iter().map(|a| (*a).clone()));
        deps.sort();
        deps.dedup();
        self.resources.push(Resource {
            address: address.clone(),
            kind,
            attrs,
            deps,
            destroy_only: Vec::new(),
        });
        address
    }

    /// Orders the destroy of `address` before that of `others`, which its create does not need:
    /// they become dependencies that only a destroy follows (`Resource::destroy_only`).
    fn deleted_before(&mut self, address: &Address, others: &[&Address]) {
        let resource = self
            .resources
            .iter_mut()
            .find(|r| &r.address == address)
            .expect("added before");
        for other in others {
            if !resource.deps.contains(other) {
                resource.deps.push((*other).clone());
                resource.destroy_only.push((*other).clone());
            }
        }
        resource.deps.sort();
        resource.destroy_only.sort();
    }

    /// The user's tags, the resource's own extra tags, and the ownership markers.
    fn tags(&self, address: &Address, extra: Option<&Value>) -> Value {
        let mut tags: Attrs = self
            .spec
            .stack
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        if let Some(Value::Object(extra)) = extra {
            tags.extend(extra.clone());
        }
        tags.insert("mlops:stack".into(), json!(self.spec.stack.name));
        tags.insert("mlops:address".into(), json!(address.as_str()));
        Value::Object(tags)
    }

    /// An EC2 `Name` tag, shown in the AWS console.
    pub(super) fn name_tag(&self, suffix: &str) -> Value {
        json!({ "Name": format!("{}-{suffix}", self.spec.stack.name) })
    }
}

/// The resources of a protected kind (`ResourceKind::loses`) whose table in the spec says
/// `protect = false`: `[vpc]` for the VPC and its NAT gateways, `[eks]` for the cluster and its
/// OIDC provider, a node group's, a bucket's or a repository's own table for itself.
pub fn unprotected(spec: &Spec, resources: &[Resource]) -> BTreeSet<Address> {
    let key_is = |protects: Option<bool>| protects == Some(false);
    resources
        .iter()
        .filter(|r| match r.kind {
            ResourceKind::Vpc | ResourceKind::NatGateway => !spec.vpc.protect,
            ResourceKind::EksCluster | ResourceKind::IamOidcProvider => !spec.eks.protect,
            ResourceKind::EksNodeGroup => key_is(
                spec.eks
                    .node_groups
                    .get(r.address.instance())
                    .map(|g| g.protect),
            ),
            ResourceKind::S3Bucket => {
                key_is(spec.buckets.get(r.address.instance()).map(|b| b.protect))
            }
            ResourceKind::EcrRepository => key_is(
                spec.repositories
                    .get(r.address.instance())
                    .map(|e| e.protect),
            ),
            _ => false,
        })
        .map(|r| r.address.clone())
        .collect()
}

/// Builds the desired resources of a spec, in no particular order.
pub fn desired_resources(spec: &Spec) -> Vec<Resource> {
    let mut b = Builder {
        spec,
        partition: Partition::of(&spec.stack.region),
        resources: Vec::new(),
    };
    let stack = spec.stack.name.as_str();
    let net = network(&mut b);

    // IAM roles for the control plane and the nodes.
    let (cluster_role, mut cluster_attachments) = service_role(
        &mut b,
        "cluster",
        &cluster_role_name(stack),
        "eks",
        CLUSTER_POLICIES,
    );
    let (node_role, node_attachments) =
        service_role(&mut b, "node", &node_role_name(stack), "ec2", NODE_POLICIES);
    let secrets_key = super::security::secrets_key(&mut b, &cluster_role, &mut cluster_attachments);
    let cluster = control_plane(
        &mut b,
        &net,
        &cluster_role,
        &cluster_attachments,
        secrets_key,
    );
    access_entries(&mut b, &cluster);

    // Nodes reach AWS's APIs through the NAT routes or the endpoints.
    let private_ids: Vec<Value> = net
        .private_subnets
        .values()
        .map(|s| reference(s, "id"))
        .collect();
    let endpoints = super::endpoints::vpc_endpoints(
        &mut b,
        (&net.vpc, &cluster),
        &net.private_tables,
        &private_ids,
    );
    let mut after: Vec<&Address> = node_attachments.iter().collect();
    after.extend(net.private_routes.iter());
    after.extend(endpoints.iter());
    let node_groups = node_groups(&mut b, (&cluster, &node_role), &private_ids, &after);

    let (provider, irsa_roles) = irsa(&mut b, &cluster);
    let ebs_csi_addon =
        super::managed_addons::managed_addons(&mut b, &cluster, provider.as_ref(), &node_groups);
    if spec.addons.enabled {
        if let Some(ebs_csi) = &ebs_csi_addon {
            super::managed_addons::default_storage_class(&mut b, &cluster, ebs_csi);
        }
        cluster_bootstrap(&mut b, &cluster, &cluster_role, &node_groups, &irsa_roles);
    }
    storage(&mut b);
    b.resources
}

/// The network the rest of the stack is built in, as the later parts refer to it.
struct Network<'a> {
    vpc: Address,
    igw: Option<Address>,
    public_subnets: BTreeMap<&'a str, Address>,
    private_subnets: BTreeMap<&'a str, Address>,
    private_tables: Vec<Address>,
    /// The private subnets' default routes through a NAT gateway.
    private_routes: Vec<Address>,
}

/// The VPC, its internet gateway when a zone has a public subnet, the subnets, their route
/// tables and the NAT gateways.
fn network<'a>(b: &mut Builder<'a>) -> Network<'a> {
    let vpc = b.add(
        ResourceKind::Vpc,
        &[],
        json!({
            "cidr_block": b.spec.vpc.cidr.to_string(),
            "enable_dns_hostnames": true,
            "enable_dns_support": true,
            "tags": b.name_tag("vpc"),
        }),
        &[],
    );
    let has_public = b.spec.vpc.zones.iter().any(|z| z.public_subnet.is_some());
    let igw = has_public.then(|| {
        b.add(
            ResourceKind::InternetGateway,
            &[],
            json!({ "vpc_id": reference(&vpc, "id"), "tags": b.name_tag("igw") }),
            &[],
        )
    });
    let (public_subnets, private_subnets) = subnets(b, &vpc);
    if let Some(igw) = &igw {
        public_routing(b, &vpc, igw, &public_subnets);
    }
    let nat_gateways = nat_gateways(b, igw.as_ref(), &public_subnets);
    let (private_tables, private_routes) =
        private_routing(b, &vpc, &private_subnets, &nat_gateways);
    Network {
        vpc,
        igw,
        public_subnets,
        private_subnets,
        private_tables,
        private_routes,
    }
}

/// The public (where the spec has one) and private subnet of each zone, tagged for the load
/// balancers Kubernetes makes.
fn subnets<'a>(
    b: &mut Builder<'a>,
    vpc: &Address,
) -> (BTreeMap<&'a str, Address>, BTreeMap<&'a str, Address>) {
    let cluster_tag = format!("kubernetes.io/cluster/{}", b.spec.eks.name);
    let mut public_subnets = BTreeMap::new();
    let mut private_subnets = BTreeMap::new();
    let spec = b.spec;
    for zone in &spec.vpc.zones {
        let az = zone.name.as_str();
        let subnets = [
            (zone.public_subnet, "public", "kubernetes.io/role/elb", true),
            (
                Some(zone.private_subnet),
                "private",
                "kubernetes.io/role/internal-elb",
                false,
            ),
        ];
        for (cidr, side, role_tag, public) in subnets {
            let Some(cidr) = cidr else {
                continue;
            };
            let mut tags = b.name_tag(&format!("{side}-{az}"));
            tags[role_tag] = json!("1");
            tags[&cluster_tag] = json!("shared");
            let subnet = b.add(
                ResourceKind::Subnet,
                &[side, az],
                json!({
                    "vpc_id": reference(vpc, "id"),
                    "cidr_block": cidr.to_string(),
                    "availability_zone": az,
                    "map_public_ip_on_launch": public,
                    "tags": tags,
                }),
                &[],
            );
            let subnets = if public {
                &mut public_subnets
            } else {
                &mut private_subnets
            };
            subnets.insert(az, subnet);
        }
    }
    (public_subnets, private_subnets)
}

/// The public route table: the default route through the internet gateway, and each public
/// subnet associated with it.
fn public_routing(
    b: &mut Builder,
    vpc: &Address,
    igw: &Address,
    public_subnets: &BTreeMap<&str, Address>,
) {
    let table = b.add(
        ResourceKind::RouteTable,
        &["public"],
        json!({ "vpc_id": reference(vpc, "id"), "tags": b.name_tag("public") }),
        &[],
    );
    b.add(
        ResourceKind::Route,
        &["public", "internet"],
        json!({
            "route_table_id": reference(&table, "id"),
            "destination_cidr_block": "0.0.0.0/0",
            "gateway_id": reference(igw, "id"),
            "nat_gateway_id": null,
        }),
        &[],
    );
    for (az, subnet) in public_subnets {
        b.add(
            ResourceKind::RouteTableAssociation,
            &["public", az],
            json!({
                "route_table_id": reference(&table, "id"),
                "subnet_id": reference(subnet, "id"),
            }),
            &[],
        );
    }
}

/// The NAT gateways, with their Elastic IPs: one in the first zone, or one per zone, each in
/// its zone's public subnet; none without an internet gateway.
fn nat_gateways<'a>(
    b: &mut Builder<'a>,
    igw: Option<&Address>,
    public_subnets: &BTreeMap<&'a str, Address>,
) -> BTreeMap<&'a str, Address> {
    let zones = b.spec.vpc.zones.iter().map(|z| z.name.as_str());
    let nat_zones: Vec<&str> = match b.spec.vpc.nat {
        NatMode::None => Vec::new(),
        NatMode::Single => zones.take(1).collect(),
        NatMode::PerAz => zones.collect(),
    };
    let mut nat_gateways = BTreeMap::new();
    for az in nat_zones {
        let (Some(igw), Some(subnet)) = (igw, public_subnets.get(az)) else {
            continue;
        };
        let eip = b.add(
            ResourceKind::Eip,
            &[az],
            json!({ "domain": "vpc", "tags": b.name_tag(&format!("nat-{az}")) }),
            &[igw],
        );
        let nat = b.add(
            ResourceKind::NatGateway,
            &[az],
            json!({
                "subnet_id": reference(subnet, "id"),
                "allocation_id": reference(&eip, "id"),
                "connectivity_type": "public",
                "tags": b.name_tag(&format!("nat-{az}")),
            }),
            &[igw],
        );
        nat_gateways.insert(az, nat);
    }
    nat_gateways
}

/// A route table per private subnet, with its default route through the zone's NAT gateway
/// (or the one there is); the tables and the routes.
fn private_routing(
    b: &mut Builder,
    vpc: &Address,
    private_subnets: &BTreeMap<&str, Address>,
    nat_gateways: &BTreeMap<&str, Address>,
) -> (Vec<Address>, Vec<Address>) {
    let mut private_routes = Vec::new();
    let mut private_tables = Vec::new();
    for (az, subnet) in private_subnets {
        let table = b.add(
            ResourceKind::RouteTable,
            &["private", az],
            json!({ "vpc_id": reference(vpc, "id"), "tags": b.name_tag(&format!("private-{az}")) }),
            &[],
        );
        private_tables.push(table.clone());
        let nat = nat_gateways
            .get(az)
            .or_else(|| nat_gateways.values().next());
        if let Some(nat) = nat {
            let route = b.add(
                ResourceKind::Route,
                &["private", az, "nat"],
                json!({
                    "route_table_id": reference(&table, "id"),
                    "destination_cidr_block": "0.0.0.0/0",
                    "gateway_id": null,
                    "nat_gateway_id": reference(nat, "id"),
                }),
                &[],
            );
            private_routes.push(route);
        }
        b.add(
            ResourceKind::RouteTableAssociation,
            &["private", az],
            json!({
                "route_table_id": reference(&table, "id"),
                "subnet_id": reference(subnet, "id"),
            }),
            &[],
        );
    }
    (private_tables, private_routes)
}

/// The EKS cluster, its control plane's network interfaces in the private subnets of its
/// zones; deleted before the public subnets and the internet gateway.
fn control_plane(
    b: &mut Builder,
    net: &Network,
    cluster_role: &Address,
    cluster_attachments: &[Address],
    secrets_key: Value,
) -> Address {
    let eks = &b.spec.eks;
    // The control plane's subnets: those of its zones (`model::zones`). Zones the spec names
    // are taken as they are; by default every zone at creation, then those the cluster runs in.
    let control_plane_ids = by_zone(
        net.private_subnets
            .iter()
            .map(|(zone, s)| (*zone, reference(s, "id")))
            .collect(),
    );
    let zones = net.private_subnets.keys();
    let control_plane_zones = match &eks.zones {
        Some(named) => json!(zones
            .filter(|z| named.iter().any(|n| n == *z))
            .collect::<Vec<_>>()),
        None => initial(json!(zones.collect::<Vec<_>>())),
    };
    // The control plane needs its subnets, its role and the role's policies (CreateCluster
    // refuses a role without them), not the NAT routes: only its nodes do.
    let after: Vec<&Address> = cluster_attachments.iter().collect();
    let cluster = b.add(
        ResourceKind::EksCluster,
        &[],
        json!({
            "name": eks.name,
            "version": eks.version,
            "role_arn": reference(cluster_role, "arn"),
            "vpc_id": reference(&net.vpc, "id"),
            "subnet_ids": control_plane_ids,
            "availability_zones": control_plane_zones,
            "endpoint_public_access": eks.public_endpoint,
            "endpoint_private_access": eks.private_endpoint,
            "public_access_cidrs": eks.public_access_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "authentication_mode": "API_AND_CONFIG_MAP",
            "enabled_log_types": eks.log_types,
            "encryption_key_arn": secrets_key,
            "tags": {},
        }),
        &after,
    );
    // Load balancers that Kubernetes makes sit in the public subnets and hold public addresses
    // in the VPC: a destroy deletes the cluster, which sweeps them, before those subnets and
    // the internet gateway (whose detach fails while public addresses are mapped). The NAT
    // routes and gateways go once the node groups (which need them to create) are deleted,
    // while the control plane is being deleted: it never used them.
    let destroy_after: Vec<&Address> = net.public_subnets.values().chain(&net.igw).collect();
    b.deleted_before(&cluster, &destroy_after);
    cluster
}

/// Cluster admins beside the creator: access entries with the cluster-admin policy.
fn access_entries(b: &mut Builder, cluster: &Address) {
    for (name, arn) in &b.spec.eks.admin_arns {
        b.add(
            ResourceKind::EksAccessEntry,
            &[name],
            json!({
                "cluster_name": reference(cluster, "name"),
                "principal_arn": arn,
                "policy_arn": cluster_admin_policy(b.partition),
                "tags": {},
            }),
            &[],
        );
    }
}

/// The managed node groups in the private subnets, each created after `after` (the node
/// role's policies, and the NAT routes or endpoints through which nodes reach AWS).
fn node_groups(
    b: &mut Builder,
    (cluster, node_role): (&Address, &Address),
    private_ids: &[Value],
    after: &[&Address],
) -> Vec<Address> {
    let spec = b.spec;
    let eks = &spec.eks;
    let mut node_groups = Vec::new();
    for (key, group) in &eks.node_groups {
        let mut attrs = json!({
                "cluster_name": reference(cluster, "name"),
                "name": group.eks_name(&spec.vpc),
                "node_role_arn": reference(node_role, "arn"),
                "subnet_ids": private_ids,
                "instance_types": group.instance_types,
                "capacity_type": group.capacity.as_aws(),
                "ami_type": group.ami_type,
                // The cluster's version as written, not a reference: an update of the cluster
                // must show as an update of its node groups in the same plan.
                "version": eks.version,
                "release_version": group.release_version,
                "disk_size": group.disk_size,
                "min_size": group.min,
                "max_size": group.max,
                // Unless the spec manages it, the size at creation: an autoscaler moves it.
                "desired_size": if group.manage_desired {
                    json!(group.desired)
                } else {
                    initial(json!(group.desired))
                },
                "labels": group.labels,
                "taints": group.taints.iter().map(|t| json!({
                    "key": t.key, "value": t.value, "effect": t.effect,
                })).collect::<Vec<_>>(),
                "tags": {},
        });
        // Only GPU groups have one: other groups' attributes stay as they were.
        if let Some(plugin) = group.device_plugin() {
            attrs[DEVICE_PLUGIN_ATTR] = plugin.as_attr().into();
        }
        node_groups.push(b.add(ResourceKind::EksNodeGroup, &[key], attrs, after));
    }
    node_groups
}

/// An IRSA role of the spec: its key, its entry and its address.
type IrsaRole<'a> = (&'a String, &'a crate::spec::IrsaSpec, Address);

/// IRSA: the cluster's OIDC provider (when an `[irsa]` entry or the EBS CSI driver needs it)
/// and one role per entry, with its managed and scoped policies.
fn irsa<'a>(b: &mut Builder<'a>, cluster: &Address) -> (Option<Address>, Vec<IrsaRole<'a>>) {
    let spec = b.spec;
    let stack = spec.stack.name.as_str();
    let ebs_csi = spec
        .eks
        .managed_addons
        .contains_key(crate::spec::EBS_CSI_DRIVER);
    let provider = (!spec.irsa.is_empty() || ebs_csi).then(|| {
        b.add(
            ResourceKind::IamOidcProvider,
            &[],
            json!({
                "url": reference(cluster, "oidc_issuer"),
                "client_ids": [IRSA_AUDIENCE],
                "tags": {},
            }),
            &[],
        )
    });
    let mut irsa_roles = Vec::new();
    if let Some(provider) = &provider {
        for (key, irsa) in &spec.irsa {
            let name = irsa_role_name(stack, key);
            let subject = (irsa.namespace.as_str(), irsa.service_account.as_str());
            let role = irsa_role(b, &["irsa", key], &name, (provider, cluster), subject);
            for arn in &irsa.policy_arns {
                attachment(b, &["irsa", key], &name, &role, arn);
            }
            super::security::irsa_scoped_policy(b, key, irsa, &name, &role);
            irsa_roles.push((key, irsa, role));
        }
    }
    (provider, irsa_roles)
}

/// Storage for models and images: the S3 buckets and the ECR repositories.
fn storage(b: &mut Builder) {
    let spec = b.spec;
    for (key, bucket) in &spec.buckets {
        b.add(
            ResourceKind::S3Bucket,
            &[key],
            json!({
                "bucket": bucket.name,
                "versioning": bucket.versioning,
                "encryption": bucket.encryption,
                "block_public_access": true,
                "force_destroy": bucket.force_destroy,
                "tags": {},
            }),
            &[],
        );
    }
    for (name, repo) in &spec.repositories {
        b.add(
            ResourceKind::EcrRepository,
            &[name],
            json!({
                "name": name,
                "image_tag_mutability": repo.tag_mutability,
                "scan_on_push": repo.scan_on_push,
                "keep_last_images": repo.keep_last_images,
                "force_delete": repo.force_delete,
                "tags": {},
            }),
            &[],
        );
    }
}

/// What goes into the cluster once its nodes are up: NVIDIA's device plugin where a node group
/// needs it, the add-ons in catalogue order (each after the one before), the IRSA service
/// accounts after them, the stack's workloads, and last the destroy-time cleanup of the load
/// balancers Kubernetes made, which a destroy therefore runs first. An add-on's `objects` (its inventory) are filled in by the caller, who reads the
/// manifests.
fn cluster_bootstrap(
    b: &mut Builder,
    cluster: &Address,
    cluster_role: &Address,
    node_groups: &[Address],
    irsa_roles: &[IrsaRole],
) {
    let cluster_name = reference(cluster, "name");
    let mut addons: Vec<Address> = node_groups.to_vec();
    let after: Vec<&Address> = node_groups.iter().collect();
    addons.extend(super::device_plugin::nvidia_device_plugin(
        b, cluster, &after,
    ));
    for (addon, release) in &b.spec.addons.releases {
        let mut attrs = json!({
            "cluster": cluster_name,
            "name": addon.name(),
            "version": release.version,
            "objects": {},
        });
        if *addon == Addon::Kserve && b.spec.addons.kserve_mode == KserveMode::Raw {
            attrs[render::DEPLOYMENT_MODE] = "RawDeployment".into();
        }
        render::ingress_attrs(*addon, &b.spec.addons.ingress, &mut attrs);
        let address = b.add(
            ResourceKind::Addon,
            &[addon.spec_key()],
            attrs,
            &addons.iter().collect::<Vec<_>>(),
        );
        addons.push(address);
    }
    let workloads = &b.spec.workloads;
    // The workloads' namespaces and CRDs come first: everything else of the set may need them.
    let namespace_of = |name: &str| {
        workloads
            .iter()
            .find(|w| w.object.id.is_namespace() && w.object.id.name == name)
            .map(Workload::address)
    };
    let mut service_accounts = Vec::new();
    for (_, irsa, role) in irsa_roles {
        let mut after = addons.clone();
        after.extend(namespace_of(&irsa.namespace));
        let address = b.add(
            ResourceKind::KubeObject,
            &irsa.service_account_parts(),
            json!({
                "cluster": cluster_name,
                "manifest": {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {
                        "name": irsa.service_account,
                        "namespace": irsa.namespace,
                        "labels": { MANAGED_BY.0: MANAGED_BY.1 },
                        "annotations": { IRSA_ROLE_ANNOTATION: reference(role, "arn") },
                    },
                },
            }),
            &after.iter().collect::<Vec<_>>(),
        );
        service_accounts.push(address);
    }
    let outputs = crate::spec::outputs(b.spec);
    let output = |name: &str| match outputs.get(name) {
        Some(Output::Literal(value)) => json!(value),
        Some(Output::RoleArn(key)) => {
            let role = irsa_roles.iter().find(|(k, _, _)| *k == key);
            role.map_or(Value::Null, |(_, _, role)| reference(role, "arn"))
        }
        Some(Output::RepositoryUri(key)) => reference(
            &Address::of(ResourceKind::EcrRepository.name(), &[key]),
            "repository_url",
        ),
        Some(Output::AccountId) => reference(cluster_role, "account_id"),
        None => Value::Null,
    };
    let crds: Vec<((&str, &str), Address)> = workloads
        .iter()
        .filter_map(|w| w.defines().map(|defines| (defines, w.address())))
        .collect();
    let mut all = addons.clone();
    all.extend(service_accounts.iter().cloned());
    for w in workloads {
        let id = &w.object.id;
        let mut after = addons.clone();
        if !id.is_namespace() && !id.is_crd() {
            after.extend(service_accounts.iter().cloned());
            after.extend(id.namespace.as_deref().and_then(namespace_of));
            let group = id.group_version().0;
            after.extend(
                crds.iter()
                    .filter(|((g, k), _)| *g == group && *k == id.kind)
                    .map(|(_, address)| address.clone()),
            );
        }
        let mut object = w.object.clone();
        object.label(&[MANAGED_BY]);
        let address = b.add(
            ResourceKind::KubeObject,
            &w.address_parts(),
            json!({
                "cluster": cluster_name,
                "manifest": with_outputs(&object.body, &output),
            }),
            &after.iter().collect::<Vec<_>>(),
        );
        all.push(address);
    }
    b.add(
        ResourceKind::ClusterCleanup,
        &[],
        json!({ "cluster": cluster_name }),
        &all.iter().collect::<Vec<_>>(),
    );
}

/// The annotation that makes EKS give a pod of the service account the role's credentials.
pub const IRSA_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// A role trusted by an AWS service (`eks`, `ec2`: its principal is in the stack's partition),
/// with its managed-policy attachments (`policies` by name).
fn service_role(
    b: &mut Builder,
    key: &str,
    name: &str,
    service: &str,
    policies: &[&str],
) -> (Address, Vec<Address>) {
    let role = b.add(
        ResourceKind::IamRole,
        &[key],
        json!({
            "name": name,
            "path": "/",
            "trust_service": b.partition.service_principal(service),
            "oidc_provider_arn": null,
            "oidc_issuer": null,
            "oidc_subject": null,
            "oidc_audience": null,
            "permissions_boundary": b.spec.stack.permissions_boundary,
            "tags": {},
        }),
        &[],
    );
    let attachments = policies
        .iter()
        .map(|policy| {
            let arn = b.partition.managed_policy(policy);
            attachment(b, &[key], name, &role, &arn)
        })
        .collect();
    (role, attachments)
}

/// A role assumable by one Kubernetes service account (`subject`: namespace and name) through
/// the cluster's OIDC provider, with the stack's permissions boundary.
pub(super) fn irsa_role(
    b: &mut Builder,
    parts: &[&str],
    name: &str,
    (provider, cluster): (&Address, &Address),
    (namespace, service_account): (&str, &str),
) -> Address {
    b.add(
        ResourceKind::IamRole,
        parts,
        json!({
            "name": name,
            "path": "/",
            "trust_service": null,
            "oidc_provider_arn": reference(provider, "arn"),
            "oidc_issuer": reference(cluster, "oidc_issuer"),
            "oidc_subject": format!("system:serviceaccount:{namespace}:{service_account}"),
            "oidc_audience": IRSA_AUDIENCE,
            "permissions_boundary": b.spec.stack.permissions_boundary,
            "tags": {},
        }),
        &[],
    )
}

pub(super) fn attachment(
    b: &mut Builder,
    parts: &[&str],
    role_name: &str,
    role: &Address,
    arn: &str,
) -> Address {
    let policy = crate::spec::policy_name(arn);
    let mut parts = parts.to_vec();
    parts.push(policy);
    b.add(
        ResourceKind::IamRolePolicyAttachment,
        &parts,
        json!({ "role_name": role_name, "policy_arn": arn }),
        &[role],
    )
}
