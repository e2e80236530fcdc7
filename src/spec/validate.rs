//! Checks a `RawSpec` against every rule that can be known before touching a cloud and builds
//! the typed `Spec`. Problems are collected, never thrown: the user sees all of them at once.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::names;
use super::raw::{self, S};
use super::*;
use crate::model::{Address, ResourceKind};
use crate::ui::diagnostic::{Diagnostic, SourceFile};

mod endpoints;
mod managed_addons;
mod node_ami;
mod security;

/// Tags mlops adds to a resource at most, counted against AWS's limit of 50 tags per resource
/// (`mlops:stack`, `mlops:address`, `Name`, and the two Kubernetes tags on subnets).
const RESERVED_TAGS: usize = 5;
const MAX_TAGS: usize = 50;

#[derive(Default)]
struct Problems(Vec<Diagnostic>);

impl Problems {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.0.push(Diagnostic::new(message, Some(span)));
    }

    fn hint(&mut self, span: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        self.0
            .push(Diagnostic::new(message, Some(span)).with_hint(hint));
    }

    /// Records the reason of a failed name check: `<what> `<value>` is not valid: <reason>`.
    fn name(&mut self, checked: Result<(), String>, what: &str, value: &S<String>) {
        if let Err(reason) = checked {
            self.at(
                value.span(),
                format!("{what} `{}` is not valid: {reason}", value.get_ref()),
            );
        }
    }

    /// A region of one of AWS's partitions, with the closest one as a hint when it is not.
    fn region(&mut self, value: &S<String>) {
        if let Err(reason) = names::region(value.get_ref()) {
            let hint = match names::closest_region(value.get_ref()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "regions are named like `us-west-2`, `eu-central-1`, `us-gov-west-1`; docs/spec.md lists them".to_string(),
            };
            self.hint(
                value.span(),
                format!("region `{}` is not valid: {reason}", value.get_ref()),
                hint,
            );
        }
    }

    /// One of a closed set of words; returns the index of the match.
    fn choice(&mut self, value: &S<String>, what: &str, allowed: &[&str]) -> Option<usize> {
        let found = allowed.iter().position(|a| a == value.get_ref());
        if found.is_none() {
            let list = allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.hint(
                value.span(),
                format!("`{}` is not a valid {what}", value.get_ref()),
                format!("use one of {list}"),
            );
        }
        found
    }

    fn cidr(&mut self, value: &S<String>, what: &str) -> Option<Ipv4Net> {
        let text = value.get_ref();
        match text.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() != net => {
                self.hint(
                    value.span(),
                    format!("{what} `{text}` has host bits set"),
                    format!("did you mean `{}`?", net.trunc()),
                );
                None
            }
            Ok(net) => Some(net),
            Err(_) => {
                self.hint(
                    value.span(),
                    format!("{what} `{text}` is not an IPv4 CIDR block"),
                    "write it as `a.b.c.d/n`, e.g. `10.0.0.0/16`",
                );
                None
            }
        }
    }
}

pub use managed_addons::EBS_CSI_DRIVER;

pub(super) fn validate(
    path: &Path,
    raw: raw::RawSpec,
    source: &SourceFile,
) -> Result<Spec, Vec<Diagnostic>> {
    let mut p = Problems::default();

    let stack = stack(&mut p, &raw.stack);
    let state = state(&mut p, raw.state.as_ref(), &stack);
    let mut vpc = vpc(&mut p, &raw.vpc, &stack.region);
    vpc.endpoints = endpoints::endpoints(&mut p, raw.vpc.get_ref(), vpc.nat);
    let mut eks = eks(&mut p, &raw.eks, &vpc);
    node_ami::choose(&mut p, raw.eks.get_ref(), &mut eks.node_groups);
    eks.log_types = security::log_types(&mut p, raw.eks.get_ref().log_types.as_ref());
    eks.secrets_key = security::secrets_key(&mut p, raw.eks.get_ref(), &stack.region);
    eks.managed_addons = managed_addons::managed_addons(&mut p, raw.eks.get_ref());
    let mut irsa = irsa(&mut p, &raw.irsa, &stack.name);
    security::irsa_scopes(
        &mut p,
        &raw.irsa,
        &raw.buckets,
        &raw.repositories,
        &mut irsa,
    );
    let buckets = buckets(&mut p, &raw.buckets);
    let repositories = repositories(&mut p, &raw.repositories);
    let addons = addons(&mut p, raw.addons.as_ref(), &eks.version);
    node_ami::check_device_plugin(&mut p, raw.eks.get_ref(), &eks.node_groups, addons.enabled);
    let moved = moved(&mut p, &raw.moved, source);
    let timeouts = timeouts(&mut p, raw.timeouts.as_ref());

    if !p.0.is_empty() {
        p.0.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
        return Err(p.0);
    }
    Ok(Spec {
        path: path.to_path_buf(),
        // Set by the caller, once it has read every file the stack names.
        digest: String::new(),
        stack,
        state,
        vpc,
        eks,
        irsa,
        buckets,
        repositories,
        addons,
        workloads: Vec::new(),
        moved,
        timeouts,
    })
}

fn stack(p: &mut Problems, raw: &raw::RawStack) -> StackSpec {
    p.name(
        names::stack_name(raw.name.get_ref()),
        "stack name",
        &raw.name,
    );
    p.region(&raw.region);
    let mut tags = BTreeMap::new();
    let empty = BTreeMap::new();
    let raw_tags = raw.tags.as_ref().map_or(&empty, |t| t.get_ref());
    for (key, value) in raw_tags {
        if let Err(reason) = names::tag(key, value.get_ref()) {
            p.at(value.span(), format!("tag `{key}` is not valid: {reason}"));
        }
        tags.insert(key.clone(), value.get_ref().clone());
    }
    if let Some(raw_tags) = raw
        .tags
        .as_ref()
        .filter(|_| tags.len() > MAX_TAGS - RESERVED_TAGS)
    {
        p.hint(
            raw_tags.span(),
            format!("{} tags are too many", tags.len()),
            format!(
                "AWS allows {MAX_TAGS} tags per resource and mlops sets up to {RESERVED_TAGS} itself"
            ),
        );
    }
    StackSpec {
        name: raw.name.get_ref().clone(),
        region: raw.region.get_ref().clone(),
        tags,
        permissions_boundary: security::permissions_boundary(
            p,
            raw.permissions_boundary.as_ref(),
            raw.region.get_ref(),
        ),
    }
}

fn state(p: &mut Problems, raw: Option<&raw::RawState>, stack: &StackSpec) -> StateSpec {
    let default_path = || PathBuf::from(format!("state/{}.json", stack.name));
    // `path` is resolved against the stack file's folder by the caller, which knows the files.
    let local = |path: PathBuf| StateSpec::Local {
        legacy: path.clone(),
        path,
    };
    let Some(raw) = raw else {
        return local(default_path());
    };
    if let Some(backend) = &raw.backend {
        if p.choice(backend, "state backend", &["local", "s3"]) == Some(1) {
            return s3_state(p, raw, backend, stack);
        }
    }
    // Keys of the S3 backend have no meaning for a local file.
    for (key, value) in [
        ("bucket", &raw.bucket),
        ("key", &raw.key),
        ("region", &raw.region),
        ("lock_lease", &raw.lock_lease),
        ("encryption", &raw.encryption),
    ] {
        if let Some(value) = value {
            p.hint(
                value.span(),
                format!("`{key}` applies to the S3 state backend only"),
                "add `backend = \"s3\"` to keep the state in S3, or remove the key",
            );
        }
    }
    let path = match &raw.path {
        Some(path) if path.get_ref().trim().is_empty() => {
            p.at(path.span(), "the state path must not be empty");
            default_path()
        }
        Some(path) => PathBuf::from(path.get_ref()),
        None => default_path(),
    };
    local(path)
}

/// The smallest lease a lock may have: a holder renews it three times per lease.
const MIN_LOCK_LEASE: std::time::Duration = std::time::Duration::from_secs(1);

fn s3_state(
    p: &mut Problems,
    raw: &raw::RawState,
    backend: &S<String>,
    stack: &StackSpec,
) -> StateSpec {
    if let Some(path) = &raw.path {
        p.hint(
            path.span(),
            "`path` applies to the local state backend only",
            "the S3 backend takes `bucket` and `key`",
        );
    }
    let bucket = match &raw.bucket {
        Some(bucket) => {
            p.name(
                names::s3_bucket(bucket.get_ref()),
                "state bucket name",
                bucket,
            );
            bucket.get_ref().clone()
        }
        None => {
            p.hint(
                backend.span(),
                "the S3 state backend needs a `bucket`",
                "add `bucket = \"<name>\"` to `[state]`; `mlops backend create` makes the bucket",
            );
            String::new()
        }
    };
    let key = match &raw.key {
        Some(key) => {
            let text = key.get_ref();
            if text.is_empty() || text.starts_with('/') || text.ends_with('/') || text.len() > 1000
            {
                p.hint(
                    key.span(),
                    format!("the state key `{text}` is not valid"),
                    "a key is 1 to 1000 characters, neither starting nor ending with `/`, e.g. `mlops/team-a.json`",
                );
            }
            text.clone()
        }
        None => format!("mlops/{}.json", stack.name),
    };
    let region = match &raw.region {
        Some(region) => {
            p.region(region);
            region.get_ref().clone()
        }
        None => stack.region.clone(),
    };
    let lock_lease = match &raw.lock_lease {
        Some(lease) => match duration(p, lease) {
            Some(d) if d >= MIN_LOCK_LEASE => d,
            Some(_) => {
                p.hint(
                    lease.span(),
                    format!("the lock lease `{}` is too short", lease.get_ref()),
                    "a lease is at least `1s`; the default is `5m`",
                );
                MIN_LOCK_LEASE
            }
            None => DEFAULT_LOCK_LEASE,
        },
        None => DEFAULT_LOCK_LEASE,
    };
    let encryption = raw
        .encryption
        .as_ref()
        .and_then(|e| p.choice(e, "state bucket encryption", &ENCRYPTIONS))
        .map_or("AES256", |i| ENCRYPTIONS[i]);
    StateSpec::S3(S3StateSpec {
        bucket,
        key,
        region,
        lock_lease,
        encryption: encryption.to_string(),
    })
}

/// A lock not renewed for this long is stale.
/// A duration written as `5m`, `90s` or `1h`; `None` (with the problem noted) otherwise.
fn duration(p: &mut Problems, value: &S<String>) -> Option<std::time::Duration> {
    let parsed = humantime::parse_duration(value.get_ref()).ok();
    if parsed.is_none() {
        p.hint(
            value.span(),
            format!("`{}` is not a duration", value.get_ref()),
            "write it as `5m`, `90s` or `1h`",
        );
    }
    parsed
}

/// `[timeouts]`: `<kind> = "<duration>"`, for the kinds of AWS objects (a delete of the
/// cluster's add-ons and objects never meets "in use").
fn timeouts(
    p: &mut Problems,
    raw: Option<&S<BTreeMap<String, S<String>>>>,
) -> BTreeMap<ResourceKind, std::time::Duration> {
    let aws_kinds = || {
        ResourceKind::ALL.into_iter().filter(|k| {
            !matches!(
                k,
                ResourceKind::Addon | ResourceKind::KubeObject | ResourceKind::ClusterCleanup
            )
        })
    };
    let mut timeouts = BTreeMap::new();
    for (key, value) in raw.map(|t| t.get_ref()).into_iter().flatten() {
        let Some(kind) = aws_kinds().find(|k| k.name() == key) else {
            let hint =
                match crate::ui::diagnostic::closest(key, aws_kinds().map(ResourceKind::name)) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                        "a key is the kind of an AWS object: {}",
                        aws_kinds()
                            .map(ResourceKind::name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
            p.hint(
                value.span(),
                format!("`[timeouts] {key}`: `{key}` is not a kind of AWS object"),
                hint,
            );
            continue;
        };
        match duration(p, value) {
            Some(d) if d.is_zero() => p.hint(
                value.span(),
                format!("`[timeouts] {key}` is zero"),
                "a delete then never waits for what still uses the object; give at least `1s`",
            ),
            Some(d) => {
                timeouts.insert(kind, d);
            }
            None => {}
        }
    }
    timeouts
}

const DEFAULT_LOCK_LEASE: std::time::Duration = std::time::Duration::from_secs(300);

/// Default encryptions S3 offers, for model buckets and the state bucket.
const ENCRYPTIONS: [&str; 2] = ["AES256", "aws:kms"];

fn vpc(p: &mut Problems, raw: &S<raw::RawVpc>, region: &str) -> VpcSpec {
    let v = raw.get_ref();
    let cidr = p.cidr(&v.cidr, "the VPC CIDR");
    if let Some(net) = cidr {
        if !(16..=28).contains(&net.prefix_len()) {
            p.hint(
                v.cidr.span(),
                format!("the VPC CIDR `{net}` has a /{} prefix", net.prefix_len()),
                "AWS allows VPC prefixes from /16 to /28",
            );
        }
    }

    let azs = v.azs.get_ref();
    let mut seen = BTreeSet::new();
    for az in azs {
        if let Err(reason) = names::availability_zone(az.get_ref(), region) {
            p.at(
                az.span(),
                format!(
                    "availability zone `{}` is not valid: {reason}",
                    az.get_ref()
                ),
            );
        }
        if !seen.insert(az.get_ref()) {
            p.at(
                az.span(),
                format!("availability zone `{}` is listed twice", az.get_ref()),
            );
        }
    }
    if azs.len() < 2 {
        p.hint(
            v.azs.span(),
            "EKS needs subnets in at least two availability zones",
            "list two or more zones in `vpc.azs`",
        );
    }

    let no_subnets = Vec::new();
    let public = v
        .public_subnets
        .as_ref()
        .map_or(&no_subnets, |s| s.get_ref());
    let private = v.private_subnets.get_ref();
    let public_span = v.public_subnets.as_ref().map_or(v.azs.span(), |s| s.span());
    if !public.is_empty() && public.len() != azs.len() {
        p.hint(
            public_span.clone(),
            format!(
                "{} public subnets for {} availability zones",
                public.len(),
                azs.len()
            ),
            "give one public subnet per zone, in the order of `vpc.azs`, or none",
        );
    }
    if private.len() != azs.len() {
        p.hint(
            v.private_subnets.span(),
            format!(
                "{} private subnets for {} availability zones",
                private.len(),
                azs.len()
            ),
            "give one private subnet per zone, in the order of `vpc.azs`",
        );
    }

    let mut subnets: Vec<Ipv4Net> = Vec::new();
    let mut parse_subnets = |p: &mut Problems, list: &[S<String>], kind: &str| {
        list.iter()
            .map(|s| {
                let net = p.cidr(s, &format!("{kind} subnet"))?;
                if let Some(vpc_net) = cidr {
                    if !vpc_net.contains(&net) {
                        p.hint(
                            s.span(),
                            format!("subnet {net} is outside the VPC {vpc_net}"),
                            format!("pick a block inside `{vpc_net}`"),
                        );
                    }
                }
                if net.prefix_len() > 28 {
                    p.hint(
                        s.span(),
                        format!("subnet {net} is too small"),
                        "AWS subnets are /28 or larger",
                    );
                }
                if let Some(other) = subnets
                    .iter()
                    .find(|o| o.contains(&net) || net.contains(*o))
                {
                    p.hint(
                        s.span(),
                        format!("subnet {net} overlaps subnet {other}"),
                        "subnets of one VPC must not overlap",
                    );
                }
                subnets.push(net);
                Some(net)
            })
            .collect::<Vec<_>>()
    };
    let public_nets = parse_subnets(p, public, "public");
    let private_nets = parse_subnets(p, private, "private");

    let nat = match &v.nat {
        None => NatMode::Single,
        Some(nat) => match p.choice(nat, "NAT mode", &["none", "single", "per_az"]) {
            Some(0) => NatMode::None,
            Some(2) => NatMode::PerAz,
            _ => NatMode::Single,
        },
    };
    if nat != NatMode::None && public.is_empty() {
        let span = v.nat.as_ref().map_or(public_span, |n| n.span());
        p.hint(
            span,
            "a NAT gateway needs public subnets",
            "add `vpc.public_subnets`, or set `nat = \"none\"`",
        );
    }

    let zones = azs
        .iter()
        .enumerate()
        .map(|(i, az)| ZoneSpec {
            name: az.get_ref().clone(),
            public_subnet: public_nets.get(i).copied().flatten(),
            private_subnet: private_nets.get(i).copied().flatten().unwrap_or_default(),
        })
        .collect();
    VpcSpec {
        cidr: cidr.unwrap_or_default(),
        zones,
        nat,
        protect: v.protect.unwrap_or(true),
        // Set by `validate`, from `endpoints` and `nat`.
        endpoints: Vec::new(),
    }
}

fn eks(p: &mut Problems, raw: &S<raw::RawEks>, vpc: &VpcSpec) -> EksSpec {
    let e = raw.get_ref();
    let zones = control_plane_zones(p, e.zones.as_ref(), vpc);
    p.name(
        names::eks_cluster_name(e.name.get_ref()),
        "EKS cluster name",
        &e.name,
    );
    if !SUPPORTED_EKS_VERSIONS.contains(&e.version.get_ref().as_str()) {
        p.hint(
            e.version.span(),
            format!("EKS version `{}` is not supported", e.version.get_ref()),
            format!("supported versions: {}", SUPPORTED_EKS_VERSIONS.join(", ")),
        );
    }
    let public_endpoint = e.public_endpoint.unwrap_or(true);
    let private_endpoint = e.private_endpoint.unwrap_or(true);
    if !public_endpoint && !private_endpoint {
        p.hint(
            e.name.span(),
            "the cluster endpoint must be public, private or both",
            "set `public_endpoint` or `private_endpoint` to true",
        );
    }
    let public_access_cidrs = match &e.public_access_cidrs {
        Some(list) => {
            if list.get_ref().is_empty() {
                p.hint(
                    list.span(),
                    "`public_access_cidrs` is empty",
                    if public_endpoint {
                        "list at least one block, e.g. `[\"0.0.0.0/0\"]`, or set `public_endpoint = false`"
                    } else {
                        "remove `public_access_cidrs`: the public endpoint is off"
                    },
                );
            }
            if list.get_ref().len() > MAX_PUBLIC_ACCESS_CIDRS {
                p.hint(
                    list.span(),
                    format!(
                        "`public_access_cidrs` lists {} blocks",
                        list.get_ref().len()
                    ),
                    format!("EKS allows at most {MAX_PUBLIC_ACCESS_CIDRS} public access CIDR blocks per cluster"),
                );
            }
            if !public_endpoint && !list.get_ref().is_empty() {
                p.hint(
                    list.span(),
                    "`public_access_cidrs` is set but the public endpoint is off",
                    "remove `public_access_cidrs` or set `public_endpoint = true`",
                );
            }
            list.get_ref()
                .iter()
                .filter_map(|c| p.cidr(c, "public access CIDR"))
                .collect()
        }
        None if public_endpoint => vec!["0.0.0.0/0".parse().expect("literal CIDR")],
        None => Vec::new(),
    };

    let mut admin_arns = BTreeMap::new();
    for arn in &e.admin_arns {
        p.name(names::iam_principal_arn(arn.get_ref()), "admin ARN", arn);
        let name = names::principal_name(arn.get_ref()).to_string();
        if let Err(reason) = names::address_key(&name) {
            p.at(
                arn.span(),
                format!(
                    "admin ARN `{}` ends in a name mlops cannot address: {reason}",
                    arn.get_ref()
                ),
            );
        }
        if let Some(first) = admin_arns.insert(name.clone(), arn.get_ref().clone()) {
            p.hint(
                arn.span(),
                format!(
                    "admin ARNs `{first}` and `{}` both end in `{name}`",
                    arn.get_ref()
                ),
                "each admin's access entry is addressed by that name; list each principal once",
            );
        }
    }

    let no_groups = BTreeMap::new();
    let groups = e.node_groups.as_ref().map_or(&no_groups, |g| g.get_ref());
    if groups.is_empty() {
        p.hint(
            e.node_groups.as_ref().map_or(raw.span(), |g| g.span()),
            "the cluster has no node group",
            "add a table `[eks.node_groups.default]`",
        );
    }
    let mut node_groups = BTreeMap::new();
    let mut eks_names: BTreeMap<String, String> = BTreeMap::new();
    for (key, group) in groups {
        let g = group.get_ref();
        if let Err(reason) = names::address_key(key) {
            p.at(
                group.span(),
                format!("node group key `{key}` is not valid: {reason}"),
            );
        }
        let name = g.name.as_ref().map_or(key.clone(), |n| n.get_ref().clone());
        let name_span = g.name.as_ref().map_or(group.span(), |n| n.span());
        if let Err(reason) = names::node_group_name(&name) {
            p.at(
                name_span.clone(),
                format!("node group name `{name}` is not valid: {reason}"),
            );
        }
        if let Some(first) = eks_names.insert(name.clone(), key.clone()) {
            p.hint(
                name_span,
                format!("node groups `{first}` and `{key}` have the same name `{name}`"),
                "node group names must be unique within a cluster",
            );
        }
        node_groups.insert(key.clone(), node_group(p, key, g, name));
    }

    EksSpec {
        name: e.name.get_ref().clone(),
        version: e.version.get_ref().clone(),
        // Set by `spec::parse`, which knows the files.
        version_at: String::new(),
        public_endpoint,
        private_endpoint,
        public_access_cidrs,
        admin_arns,
        // Set by `validate`, from `[eks] log_types`, `encrypt_secrets` and `kms_key_arn`.
        log_types: Vec::new(),
        secrets_key: None,
        managed_addons: BTreeMap::new(),
        node_groups,
        protect: e.protect.unwrap_or(true),
        zones,
    }
}

/// `[eks] zones`: zones of the VPC, at least two (EKS's minimum), in the order of `vpc.azs`;
/// `None` when the spec leaves them out.
fn control_plane_zones(
    p: &mut Problems,
    raw: Option<&S<Vec<S<String>>>>,
    vpc: &VpcSpec,
) -> Option<Vec<String>> {
    let raw = raw?;
    let all: Vec<String> = vpc.zones.iter().map(|z| z.name.clone()).collect();
    for zone in raw.get_ref() {
        if !all.contains(zone.get_ref()) {
            p.hint(
                zone.span(),
                format!("`{}` is not a zone of the VPC", zone.get_ref()),
                format!(
                    "the control plane's zones are among `vpc.azs`: {}",
                    all.join(", ")
                ),
            );
        }
    }
    let chosen: Vec<String> = all
        .into_iter()
        .filter(|z| raw.get_ref().iter().any(|r| r.get_ref() == z))
        .collect();
    if chosen.len() < 2 {
        p.hint(
            raw.span(),
            "the control plane needs subnets in at least two zones",
            "list two or more zones of `vpc.azs` in `eks.zones`, or leave it out for all of them",
        );
    }
    Some(chosen)
}

fn node_group(p: &mut Problems, key: &str, g: &raw::RawNodeGroup, name: String) -> NodeGroupSpec {
    if g.instance_types.get_ref().is_empty() {
        p.at(
            g.instance_types.span(),
            format!("node group `{key}` lists no instance type"),
        );
    }
    for t in g.instance_types.get_ref() {
        p.name(names::instance_type(t.get_ref()), "instance type", t);
    }
    let capacity = match &g.capacity {
        Some(c) => match p.choice(c, "capacity", &["on_demand", "spot"]) {
            Some(1) => Capacity::Spot,
            _ => Capacity::OnDemand,
        },
        None => Capacity::OnDemand,
    };
    let disk_size = match &g.disk_size {
        Some(d) if !(1..=16384).contains(d.get_ref()) => {
            p.hint(
                d.span(),
                format!("disk size {} GiB is out of range", d.get_ref()),
                "EKS accepts 1 to 16384 GiB",
            );
            *d.get_ref()
        }
        Some(d) => *d.get_ref(),
        None => 50,
    };
    let (min, max, desired) = (*g.min.get_ref(), *g.max.get_ref(), *g.desired.get_ref());
    if min < 0 {
        p.at(
            g.min.span(),
            format!("node group `{key}`: `min` must not be negative"),
        );
    }
    if max < 1 {
        p.at(
            g.max.span(),
            format!("node group `{key}`: `max` must be at least 1"),
        );
    }
    for (name, value) in [("min", &g.min), ("max", &g.max), ("desired", &g.desired)] {
        if *value.get_ref() > MAX_NODES_PER_GROUP {
            p.hint(
                value.span(),
                format!(
                    "node group `{key}`: `{name}` {} is more nodes than EKS allows in one managed node group",
                    value.get_ref()
                ),
                format!(
                    "EKS's quota `Nodes per managed node group` is {MAX_NODES_PER_GROUP}; spread the nodes over several node groups"
                ),
            );
        }
    }
    if min > desired || desired > max {
        p.hint(
            g.desired.span(),
            format!(
                "node group `{key}`: min {min} <= desired {desired} <= max {max} does not hold"
            ),
            "EKS requires `min <= desired <= max`",
        );
    }
    let mut labels = BTreeMap::new();
    for (k, v) in &g.labels {
        if let Err(reason) = names::k8s_label_key(k) {
            p.at(v.span(), format!("label key `{k}` is not valid: {reason}"));
        }
        p.name(names::k8s_label_value(v.get_ref()), "label value", v);
        labels.insert(k.clone(), v.get_ref().clone());
    }
    let mut taints = Vec::new();
    for t in &g.taints {
        let t = t.get_ref();
        p.name(names::k8s_label_key(t.key.get_ref()), "taint key", &t.key);
        if let Some(v) = &t.value {
            p.name(names::k8s_label_value(v.get_ref()), "taint value", v);
        }
        const EFFECTS: [&str; 3] = ["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"];
        let effect = p
            .choice(&t.effect, "taint effect", &EFFECTS)
            .map_or("NO_SCHEDULE", |i| EFFECTS[i]);
        taints.push(Taint {
            key: t.key.get_ref().clone(),
            value: t.value.as_ref().map(|v| v.get_ref().clone()),
            effect: effect.to_string(),
        });
    }
    NodeGroupSpec {
        name,
        instance_types: g
            .instance_types
            .get_ref()
            .iter()
            .map(|t| t.get_ref().clone())
            .collect(),
        capacity,
        // Set by `validate` from `ami_type` and the instance types.
        ami_type: String::new(),
        release_version: release_version(p, g.release_version.as_ref()),
        disk_size,
        min,
        max,
        desired,
        manage_desired: g.manage_desired.unwrap_or(false),
        labels,
        taints,
        protect: g.protect.unwrap_or(true),
    }
}

/// EKS's quota `Public endpoint access CIDR ranges per cluster`, which cannot be raised.
const MAX_PUBLIC_ACCESS_CIDRS: usize = 40;

/// EKS's quota `Nodes per managed node group` (docs: Amazon EKS service quotas): a larger
/// `max` is refused by CreateNodegroup, after everything the apply made before it.
const MAX_NODES_PER_GROUP: i64 = 450;

/// A pinned AMI release: the version EKS names it by (`1.31.3-20250103`, Bottlerocket's
/// `1.29.0-c3bb6bf0`), checked for its shape only; EKS knows which exist.
fn release_version(p: &mut Problems, raw: Option<&S<String>>) -> Option<String> {
    let v = raw?;
    let text = v.get_ref();
    let shape = !text.is_empty()
        && text.len() <= 100
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
    if !shape {
        p.hint(
            v.span(),
            format!("`release_version = \"{text}\"` is not an AMI release version"),
            "write it as EKS names it, e.g. `1.31.3-20250103`; leave it out for the latest",
        );
    }
    Some(text.clone())
}

/// The IAM role name of an IRSA entry; IAM role names are at most 64 characters.
pub fn irsa_role_name(stack: &str, key: &str) -> String {
    format!("{stack}-irsa-{key}")
}

fn irsa(
    p: &mut Problems,
    raw: &BTreeMap<String, S<raw::RawIrsa>>,
    stack: &str,
) -> BTreeMap<String, IrsaSpec> {
    let mut accounts: BTreeMap<(String, String), &str> = BTreeMap::new();
    raw.iter()
        .map(|(key, entry)| {
            let e = entry.get_ref();
            if let Err(reason) = names::address_key(key) {
                p.at(
                    entry.span(),
                    format!("IRSA key `{key}` is not valid: {reason}"),
                );
            }
            let role = irsa_role_name(stack, key);
            if role.len() > 64 {
                p.hint(
                    entry.span(),
                    format!("the IAM role name `{role}` is longer than 64 characters"),
                    "use a shorter IRSA key or stack name",
                );
            }
            p.name(
                names::dns_label(e.namespace.get_ref()),
                "namespace",
                &e.namespace,
            );
            p.name(
                names::dns_subdomain(e.service_account.get_ref()),
                "service account name",
                &e.service_account,
            );
            let account = (
                e.namespace.get_ref().clone(),
                e.service_account.get_ref().clone(),
            );
            if let Some(first) = accounts.insert(account.clone(), key) {
                p.hint(
                    e.service_account.span(),
                    format!(
                        "IRSA entries `{first}` and `{key}` both use service account `{}/{}`",
                        account.0, account.1
                    ),
                    "one service account can be bound to one role; merge the policy lists",
                );
            }
            let mut seen_names = BTreeSet::new();
            for arn in &e.policy_arns {
                p.name(names::iam_policy_arn(arn.get_ref()), "policy ARN", arn);
                if !seen_names.insert(names::policy_name(arn.get_ref())) {
                    p.at(
                        arn.span(),
                        format!(
                            "IRSA entry `{key}` attaches two policies named `{}`",
                            names::policy_name(arn.get_ref())
                        ),
                    );
                }
            }
            let spec = IrsaSpec {
                namespace: e.namespace.get_ref().clone(),
                service_account: e.service_account.get_ref().clone(),
                policy_arns: e.policy_arns.iter().map(|a| a.get_ref().clone()).collect(),
                // Set by `validate`, which checks them against the stack's buckets and repositories.
                s3_read: Vec::new(),
                s3_write: Vec::new(),
                ecr_pull: Vec::new(),
            };
            (key.clone(), spec)
        })
        .collect()
}

fn buckets(
    p: &mut Problems,
    raw: &BTreeMap<String, S<raw::RawBucket>>,
) -> BTreeMap<String, BucketSpec> {
    let mut names_seen: BTreeMap<String, &str> = BTreeMap::new();
    raw.iter()
        .map(|(key, bucket)| {
            let b = bucket.get_ref();
            if let Err(reason) = names::address_key(key) {
                p.at(
                    bucket.span(),
                    format!("bucket key `{key}` is not valid: {reason}"),
                );
            }
            p.name(names::s3_bucket(b.name.get_ref()), "bucket name", &b.name);
            if let Some(first) = names_seen.insert(b.name.get_ref().clone(), key) {
                p.at(
                    b.name.span(),
                    format!(
                        "buckets `{first}` and `{key}` have the same name `{}`",
                        b.name.get_ref()
                    ),
                );
            }
            let encryption = b
                .encryption
                .as_ref()
                .and_then(|e| p.choice(e, "bucket encryption", &ENCRYPTIONS))
                .map_or("AES256", |i| ENCRYPTIONS[i]);
            let spec = BucketSpec {
                name: b.name.get_ref().clone(),
                versioning: b.versioning.unwrap_or(true),
                encryption: encryption.to_string(),
                force_destroy: b.force_destroy.unwrap_or(false),
                protect: b.protect.unwrap_or(true),
            };
            (key.clone(), spec)
        })
        .collect()
}

fn repositories(
    p: &mut Problems,
    raw: &BTreeMap<String, S<raw::RawRepository>>,
) -> BTreeMap<String, RepositorySpec> {
    raw.iter()
        .map(|(name, repo)| {
            let r = repo.get_ref();
            if let Err(reason) = names::ecr_repository(name) {
                p.at(
                    repo.span(),
                    format!("repository name `{name}` is not valid: {reason}"),
                );
            }
            if name.contains('.') {
                p.hint(
                    repo.span(),
                    format!("repository name `{name}` contains `.`"),
                    "mlops uses the name in resource addresses; use `-` or `_` instead",
                );
            }
            const MUTABILITY: [&str; 2] = ["MUTABLE", "IMMUTABLE"];
            let tag_mutability = r
                .tag_mutability
                .as_ref()
                .and_then(|m| p.choice(m, "tag mutability", &MUTABILITY))
                .map_or("MUTABLE", |i| MUTABILITY[i]);
            if let Some(keep) = &r.keep_last_images {
                if !(1..=10000).contains(keep.get_ref()) {
                    p.hint(
                        keep.span(),
                        format!("`keep_last_images = {}` is out of range", keep.get_ref()),
                        "keep between 1 and 10000 images",
                    );
                }
            }
            let spec = RepositorySpec {
                tag_mutability: tag_mutability.to_string(),
                scan_on_push: r.scan_on_push.unwrap_or(true),
                keep_last_images: r.keep_last_images.as_ref().map(|k| *k.get_ref()),
                force_delete: r.force_delete.unwrap_or(false),
                protect: r.protect.unwrap_or(true),
            };
            (name.clone(), spec)
        })
        .collect()
}

/// `[[moved]]`: each `from` and `to` an address of a known kind, both of the same kind, each
/// address moved from or to once. Whether `to` is a resource of the stack is checked with the
/// graph (`ops::Stack::open`).
fn moved(p: &mut Problems, raw: &[S<raw::RawMoved>], source: &SourceFile) -> Vec<MovedSpec> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for entry in raw {
        let m = entry.get_ref();
        let mut kinds = Vec::new();
        for end in [&m.from, &m.to] {
            let address = Address::new(end.get_ref().as_str());
            match address.kind_name().parse::<ResourceKind>() {
                Ok(kind) => kinds.push(kind),
                Err(reason) => p.hint(
                    end.span(),
                    format!("`{}` is not a resource address: {reason}", end.get_ref()),
                    "addresses are as `mlops state list` prints them, e.g. `s3_bucket.models`",
                ),
            }
            if !seen.insert(end.get_ref().as_str()) {
                p.at(
                    end.span(),
                    format!(
                        "`{}` is named by more than one `[[moved]]` entry",
                        end.get_ref()
                    ),
                );
            }
        }
        if m.from.get_ref() == m.to.get_ref() {
            p.at(m.to.span(), "`from` and `to` are the same address");
        }
        if let [from, to] = kinds[..] {
            if from != to {
                p.hint(
                    m.to.span(),
                    format!("a `{from}` cannot move to a `{to}`"),
                    "a move renames an address; the kind of the object stays",
                );
            }
        }
        out.push(MovedSpec {
            from: Address::new(m.from.get_ref().as_str()),
            to: Address::new(m.to.get_ref().as_str()),
            location: source.location(entry.span().start),
        });
    }
    out
}

fn addons(p: &mut Problems, raw: Option<&raw::RawAddons>, kubernetes: &str) -> AddonsSpec {
    let Some(a) = raw else {
        return AddonsSpec {
            enabled: false,
            releases: BTreeMap::new(),
            versions_at: BTreeMap::new(),
            kserve_mode: KserveMode::Serverless,
            ingress: IngressSpec::default(),
        };
    };
    let kserve_mode = match &a.kserve_mode {
        Some(m) => match p.choice(m, "KServe mode", &["serverless", "raw"]) {
            Some(1) => KserveMode::Raw,
            _ => KserveMode::Serverless,
        },
        None => KserveMode::Serverless,
    };
    let mut releases = BTreeMap::new();
    let mut spans = BTreeMap::new();
    for (addon, version) in a.versions() {
        let Some(version) = version else { continue };
        spans.insert(addon, version.span());
        match addon.release(version.get_ref()) {
            Some(release) => {
                // An EKS version that is not supported has its own error.
                if SUPPORTED_EKS_VERSIONS.contains(&kubernetes) && !release.runs_on(kubernetes) {
                    let min = release.min_kubernetes.unwrap_or_default();
                    let runs_here: Vec<String> = addon
                        .versions()
                        .filter(|r| r.runs_on(kubernetes))
                        .map(|r| format!("`{}`", r.version))
                        .collect();
                    let other = if runs_here.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", or a {addon} version that runs on it: {}",
                            runs_here.join(", ")
                        )
                    };
                    p.hint(
                        version.span(),
                        format!(
                            "{addon} {} needs Kubernetes {min} or newer, but `[eks] version` is {kubernetes}",
                            release.version
                        ),
                        format!("set `[eks] version` to {min} or newer{other}"),
                    );
                }
                releases.insert(addon, release);
            }
            None => {
                let known: Vec<String> = addon
                    .versions()
                    .map(|r| format!("`{}`", r.version))
                    .collect();
                p.hint(
                    version.span(),
                    format!(
                        "{addon} `{}` is not in the add-on catalogue",
                        version.get_ref()
                    ),
                    format!(
                        "known versions: {}; `mlops addons list` shows them all",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    // What each add-on needs installed with it.
    let mut needs = vec![
        (Addon::Kserve, Addon::CertManager),
        (Addon::KnativeServing, Addon::Istio),
    ];
    if kserve_mode == KserveMode::Serverless {
        needs.push((Addon::Kserve, Addon::KnativeServing));
    }
    for (addon, needed) in needs {
        if spans.contains_key(&addon) && !spans.contains_key(&needed) {
            let why = if addon == Addon::Kserve && needed == Addon::KnativeServing {
                " in `serverless` mode"
            } else {
                ""
            };
            p.hint(
                spans[&addon].clone(),
                format!("{addon}{why} needs {needed}, which `[addons]` leaves out"),
                format!(
                    "add `{} = \"...\"`{}",
                    needed.spec_key(),
                    if why.is_empty() {
                        ""
                    } else {
                        ", or set `kserve_mode = \"raw\"`"
                    }
                ),
            );
        }
    }
    AddonsSpec {
        enabled: a.enabled.unwrap_or(true),
        releases,
        // Filled in by the caller, who has the source.
        versions_at: BTreeMap::new(),
        kserve_mode,
        ingress: ingress(p, a),
    }
}

/// `[addons.knative] domain` and `[addons.ingress_gateway]`, each key with its default.
fn ingress(p: &mut Problems, a: &raw::RawAddons) -> IngressSpec {
    let mut ingress = IngressSpec::default();
    if let Some(domain) = a.knative.as_ref().and_then(|k| k.domain.as_ref()) {
        p.name(names::dns_subdomain(domain.get_ref()), "domain", domain);
        ingress.domain = domain.get_ref().clone();
    }
    let gateway = a.ingress_gateway.as_ref();
    if let Some(kind) = gateway.and_then(|g| g.load_balancer.as_ref()) {
        if p.choice(kind, "load balancer type", &["clb", "nlb"]) == Some(1) {
            ingress.load_balancer = LoadBalancerType::Network;
        }
    }
    if let Some(scheme) = gateway.and_then(|g| g.scheme.as_ref()) {
        ingress.internal = p.choice(
            scheme,
            "load balancer scheme",
            &["internet-facing", "internal"],
        ) == Some(1);
    }
    ingress
}
