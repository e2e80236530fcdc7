//! Validation, rule by rule: the reference stack passes, and each mistake is reported with its
//! line and column, all of them at once.

use std::path::Path;

use super::*;

pub(super) const EXAMPLE: &str = include_str!("../../stacks/example.toml");

pub(super) fn parse_text(text: &str) -> Result<Spec, SpecError> {
    parse(Path::new("stacks/t.toml"), text.to_string())
}

/// Every problem as `(line, column, message)`.
pub(super) fn problems(text: &str) -> Vec<(usize, usize, String)> {
    match parse_text(text) {
        Ok(_) => Vec::new(),
        Err(SpecError::Invalid {
            file, diagnostics, ..
        }) => diagnostics
            .iter()
            .map(|d| {
                let (line, col) = file.line_col(d.span.clone().map_or(0, |s| s.start));
                (line, col, d.message.clone())
            })
            .collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// The example with `from` replaced by `to` (which must occur).
fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "the example has no `{from}`");
    EXAMPLE.replacen(from, to, 1)
}

pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1
}

/// Asserts exactly one problem, whose message contains `expect`, located on the line of `at`.
fn assert_one(text: &str, expect: &str, at: &str) {
    let found = problems(text);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    let (line, _, message) = &found[0];
    assert!(
        message.contains(expect),
        "`{message}` does not contain `{expect}`"
    );
    assert_eq!(*line, line_of(text, at), "wrong line for `{message}`");
}

#[test]
fn the_reference_stack_is_valid() {
    let spec = parse_text(EXAMPLE).unwrap();
    assert_eq!(spec.stack.name, "mlops");
    assert_eq!(spec.vpc.zones.len(), 2);
    assert_eq!(spec.vpc.zones[1].private_subnet.to_string(), "10.0.2.0/24");
    assert_eq!(spec.vpc.nat, NatMode::Single);
    assert_eq!(spec.eks.node_groups["default"].desired, 2);
    assert_eq!(spec.irsa["kserve-s3"].service_account, "kserve-sa");
    assert_eq!(spec.buckets["models"].encryption, "AES256");
    assert_eq!(spec.repositories["wine-model"].keep_last_images, Some(30));
    assert_eq!(
        spec.state,
        StateSpec::Local {
            path: "stacks/state/mlops.json".into(),
            legacy: "state/mlops.json".into(),
        }
    );
}

#[test]
fn safe_defaults_apply_when_keys_are_left_out() {
    let text = example_with("versioning = true\n", "")
        .replace("encryption = \"AES256\"             # \"AES256\" | \"aws:kms\"\n", "")
        .replace("force_destroy = false\n", "")
        .replace("[state]                           # optional; default: local file state/<name>.json\nbackend = \"local\"\npath = \"state/mlops.json\"\n", "");
    let spec = parse_text(&text).unwrap();
    let bucket = &spec.buckets["models"];
    assert!(bucket.versioning);
    assert_eq!(bucket.encryption, "AES256");
    assert!(!bucket.force_destroy);
    assert_eq!(
        spec.state,
        StateSpec::Local {
            path: "stacks/state/mlops.json".into(),
            legacy: "state/mlops.json".into(),
        }
    );
}

#[test]
fn stack_name_rules() {
    let text = example_with("name = \"mlops\"", "name = \"MLops\"");
    assert_one(&text, "stack name `MLops` is not valid", "name = \"MLops\"");
}

#[test]
fn region_and_zones_must_match() {
    let text = example_with("\"us-west-2b\"]", "\"us-east-1b\"]");
    assert_one(&text, "availability zone `us-east-1b`", "us-east-1b");
    let text = example_with("region = \"us-west-2\"", "region = \"uswest\"");
    let found = problems(&text);
    assert!(found.iter().any(|p| p.2.contains("region `uswest`")));
}

#[test]
fn eks_needs_two_zones() {
    let text = example_with(
        "azs = [\"us-west-2a\", \"us-west-2b\"]",
        "azs = [\"us-west-2a\"]",
    )
    .replace(
        "public_subnets = [\"10.0.101.0/24\", \"10.0.102.0/24\"]",
        "public_subnets = [\"10.0.101.0/24\"]",
    )
    .replace(
        "private_subnets = [\"10.0.1.0/24\", \"10.0.2.0/24\"]",
        "private_subnets = [\"10.0.1.0/24\"]",
    );
    assert_one(&text, "at least two availability zones", "azs = ");
}

#[test]
fn one_subnet_of_each_kind_per_zone() {
    let text = example_with(
        "private_subnets = [\"10.0.1.0/24\", \"10.0.2.0/24\"]",
        "private_subnets = [\"10.0.1.0/24\"]",
    );
    assert_one(
        &text,
        "1 private subnets for 2 availability zones",
        "private_subnets",
    );
    let text = example_with(
        "public_subnets = [\"10.0.101.0/24\", \"10.0.102.0/24\"]",
        "public_subnets = [\"10.0.101.0/24\"]",
    );
    assert_one(
        &text,
        "1 public subnets for 2 availability zones",
        "public_subnets",
    );
}

#[test]
fn subnets_inside_the_vpc_and_not_overlapping() {
    let text = example_with("\"10.0.102.0/24\"]", "\"10.9.1.0/24\"]");
    assert_one(
        &text,
        "subnet 10.9.1.0/24 is outside the VPC 10.0.0.0/16",
        "public_subnets",
    );
    let text = example_with(
        "\"10.0.1.0/24\", \"10.0.2.0/24\"]",
        "\"10.0.1.0/24\", \"10.0.0.0/23\"]",
    );
    assert_one(
        &text,
        "subnet 10.0.0.0/23 overlaps subnet 10.0.1.0/24",
        "private_subnets",
    );
}

#[test]
fn cidrs_must_parse_and_have_no_host_bits() {
    let text = example_with("cidr = \"10.0.0.0/16\"", "cidr = \"10.0.0.1/16\"");
    let found = problems(&text);
    assert!(found[0].2.contains("has host bits set"), "{found:?}");
    let text = example_with("cidr = \"10.0.0.0/16\"", "cidr = \"10.0.0.0/33\"");
    assert!(problems(&text)[0].2.contains("is not an IPv4 CIDR block"));
    let text = example_with("cidr = \"10.0.0.0/16\"", "cidr = \"10.0.0.0/8\"");
    assert!(problems(&text).iter().any(|p| p.2.contains("/8 prefix")));
}

#[test]
fn nat_needs_public_subnets() {
    let text = example_with(
        "public_subnets = [\"10.0.101.0/24\", \"10.0.102.0/24\"]   # one per AZ, same order\n",
        "",
    );
    assert_one(
        &text,
        "a NAT gateway needs public subnets",
        "nat = \"single\"",
    );
    let text = text.replace("nat = \"single\"", "nat = \"none\"");
    assert!(problems(&text).is_empty());
    let text = example_with("nat = \"single\"", "nat = \"every\"");
    assert_one(&text, "`every` is not a valid NAT mode", "nat = \"every\"");
}

#[test]
fn node_group_sizes_must_be_ordered() {
    let text = example_with("desired = 2", "desired = 5");
    assert_one(
        &text,
        "min 1 <= desired 5 <= max 3 does not hold",
        "desired = 5",
    );
    let text = example_with("min = 1", "min = -1");
    assert!(problems(&text)
        .iter()
        .any(|p| p.2.contains("`min` must not be negative")));
}

#[test]
fn node_group_names_are_unique_and_valid() {
    let text = format!(
        "{EXAMPLE}\n[eks.node_groups.gpu]\nname = \"default\"\ninstance_types = [\"g5.xlarge\"]\nmin = 0\nmax = 1\ndesired = 0\n"
    );
    assert_one(&text, "have the same name `default`", "name = \"default\"");
    let text = example_with(
        "instance_types = [\"t3.medium\"]",
        "instance_types = [\"t3\"]",
    );
    assert_one(&text, "instance type `t3` is not valid", "instance_types");
    let text = example_with("capacity = \"on_demand\"", "capacity = \"reserved\"");
    assert_one(&text, "`reserved` is not a valid capacity", "capacity = ");
}

#[test]
fn taints_and_labels_follow_kubernetes_rules() {
    let text = example_with(
        "taints = []",
        "taints = [{ key = \"nvidia.com/gpu\", value = \"true\", effect = \"NoSchedule\" }]",
    );
    assert_one(
        &text,
        "`NoSchedule` is not a valid taint effect",
        "taints = ",
    );
    let text = example_with(
        "labels = { workload = \"general\" }",
        "labels = { workload = \"-general\" }",
    );
    assert_one(&text, "label value `-general` is not valid", "labels = ");
}

#[test]
fn eks_version_must_be_supported() {
    let text = example_with("version = \"1.33\"", "version = \"1.21\"");
    assert_one(
        &text,
        "EKS version `1.21` is not supported",
        "version = \"1.21\"",
    );
}

/// Knative Serving refuses to start on a Kubernetes older than its minimum (1.21 needs 1.33):
/// the spec that pairs them is refused at the add-on's version, naming both versions, with the
/// catalogue's version that runs there as a way out.
#[test]
fn an_addon_version_needs_its_minimum_kubernetes() {
    let text = example_with("version = \"1.33\"", "version = \"1.31\"");
    assert_one(
        &text,
        "knative-serving 1.21.1 needs Kubernetes 1.33 or newer, but `[eks] version` is 1.31",
        "knative_serving = ",
    );
    let Err(SpecError::Invalid { diagnostics, .. }) = parse_text(&text) else {
        panic!("the pair was accepted");
    };
    assert_eq!(
        diagnostics[0].hint.as_deref(),
        Some("set `[eks] version` to 1.33 or newer, or a knative-serving version that runs on it: `1.16.2`")
    );
    let older = example_with(
        "knative_serving = \"1.21.1\"",
        "knative_serving = \"1.16.2\"",
    );
    let older = older.replacen("version = \"1.33\"", "version = \"1.31\"", 1);
    assert!(problems(&older).is_empty(), "{:#?}", problems(&older));
    // Istio's supported releases: 1.29 on Kubernetes 1.31 to 1.35, 1.24 from 1.28.
    let istio = older.replacen("version = \"1.31\"", "version = \"1.30\"", 1);
    assert_one(
        &istio,
        "istio 1.29.1 needs Kubernetes 1.31 or newer, but `[eks] version` is 1.30",
        "istio = ",
    );
}

#[test]
fn irsa_names_follow_kubernetes_rules() {
    let text = example_with("namespace = \"kserve-inference\"", "namespace = \"KServe\"");
    assert_one(&text, "namespace `KServe` is not valid", "namespace = ");
    let text = example_with(
        "service_account = \"kserve-sa\"",
        "service_account = \"kserve_sa\"",
    );
    assert_one(
        &text,
        "service account name `kserve_sa` is not valid",
        "service_account",
    );
    let text = example_with(
        "s3_read = [\"models\"]",
        "policy_arns = [\"AmazonS3ReadOnlyAccess\"]",
    );
    assert_one(
        &text,
        "policy ARN `AmazonS3ReadOnlyAccess` is not valid",
        "policy_arns",
    );
}

#[test]
fn two_irsa_roles_cannot_share_a_service_account() {
    let text = format!(
        "{EXAMPLE}\n[irsa.again]\nnamespace = \"kserve-inference\"\nservice_account = \"kserve-sa\"\n"
    );
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]
        .2
        .contains("both use service account `kserve-inference/kserve-sa`"));
}

#[test]
fn bucket_and_repository_names_follow_aws_rules() {
    let text = example_with("name = \"mlops-models-bucket\"", "name = \"MLops_Models\"");
    assert_one(
        &text,
        "bucket name `MLops_Models` is not valid",
        "MLops_Models",
    );
    let text = example_with("[repositories.wine-model]", "[repositories.Wine--Model]");
    assert_one(
        &text,
        "repository name `Wine--Model` is not valid",
        "[repositories.Wine--Model]",
    );
    let text = example_with("encryption = \"AES256\"", "encryption = \"DES\"");
    assert_one(
        &text,
        "`DES` is not a valid bucket encryption",
        "encryption = \"DES\"",
    );
    let text = example_with(
        "tag_mutability = \"MUTABLE\"",
        "tag_mutability = \"mutable\"",
    );
    assert_one(
        &text,
        "`mutable` is not a valid tag mutability",
        "tag_mutability",
    );
}

#[test]
fn two_buckets_cannot_share_a_name() {
    let text = format!("{EXAMPLE}\n[buckets.copy]\nname = \"mlops-models-bucket\"\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]
        .2
        .contains("have the same name `mlops-models-bucket`"));
}

#[test]
fn reserved_tags_are_refused() {
    let text = example_with(
        "tags = { env = \"dev\" }",
        "tags = { \"mlops:stack\" = \"x\" }",
    );
    assert_one(&text, "tag `mlops:stack` is not valid", "tags = ");
}

#[test]
fn unknown_keys_wrong_types_and_broken_toml_are_located() {
    let text = example_with("nat = \"single\"", "nat = \"single\"\nnat_gateways = 2");
    let found = problems(&text);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].2.contains("unknown field `nat_gateways`"),
        "{found:?}"
    );
    assert_eq!(found[0].0, line_of(&text, "nat_gateways"));

    let text = example_with("disk_size = 50", "disk_size = \"50\"");
    let found = problems(&text);
    assert!(found[0].2.contains("invalid type"), "{found:?}");
    assert_eq!(found[0].0, line_of(&text, "disk_size"));

    let truncated = &EXAMPLE[..EXAMPLE.find("private_subnets").unwrap() + 22];
    let found = problems(truncated);
    assert_eq!(found.len(), 1, "{found:?}");

    assert!(!problems("[stack\nname = 1").is_empty());
}

#[test]
fn several_mistakes_are_all_reported_in_file_order() {
    let text = example_with("name = \"mlops\"", "name = \"Bad Name\"")
        .replace("desired = 2", "desired = 9")
        .replace("\"10.0.102.0/24\"]", "\"192.168.0.0/24\"]")
        .replace("name = \"mlops-models-bucket\"", "name = \"Bad_Bucket\"");
    let found = problems(&text);
    assert_eq!(found.len(), 4, "{found:#?}");
    let lines: Vec<usize> = found.iter().map(|p| p.0).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    let report = parse_text(&text).unwrap_err().report().unwrap();
    assert!(report.contains("has 4 problems"));
    assert!(report.contains("--> stacks/t.toml:"));
}

#[test]
fn stack_argument_resolution() {
    assert_eq!(stack_path("team-a"), Path::new("stacks/team-a.toml"));
    assert_eq!(stack_path("x/y.toml"), Path::new("x/y.toml"));
    assert_eq!(stack_path("y.toml"), Path::new("y.toml"));
    assert_eq!(stack_path("./dir/team"), Path::new("./dir/team"));
}

#[test]
fn addon_versions_come_from_the_catalogue() {
    let spec = parse_text(EXAMPLE).unwrap();
    assert_eq!(spec.addons.releases.len(), 4);
    assert_eq!(
        spec.addons.releases[&crate::addons::Addon::Kserve].version,
        "v0.16.0"
    );
    let text = example_with("kserve = \"v0.16.0\"", "kserve = \"v0.14.1\"");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]
        .2
        .contains("kserve `v0.14.1` is not in the add-on catalogue"));
    assert_eq!(found[0].0, line_of(&text, "kserve = \"v0.14.1\""));
    let report = parse_text(&text).unwrap_err().report().unwrap();
    assert!(
        report.contains("known versions: `v0.15.0`, `v0.16.0`"),
        "{report}"
    );
}

#[test]
fn addon_dependencies_must_be_listed() {
    let text = example_with("knative_serving = \"1.21.1\"\n", "");
    assert_one(
        &text,
        "kserve in `serverless` mode needs knative-serving",
        "kserve = ",
    );
    let raw = text.replace("kserve_mode = \"serverless\"", "kserve_mode = \"raw\"");
    assert!(problems(&raw).is_empty());
    let text = example_with("cert_manager = \"v1.19.4\"\n", "");
    assert_one(&text, "kserve needs cert-manager", "kserve = ");
    let text = example_with("istio = \"1.29.1\"\n", "");
    assert_one(&text, "knative-serving needs istio", "knative_serving");
    let text = example_with("kserve_mode = \"serverless\"", "kserve_mode = \"fast\"");
    assert_one(&text, "`fast` is not a valid KServe mode", "kserve_mode");
}

/// `[addons.knative] domain` and `[addons.ingress_gateway]`: defaults that need no DNS and
/// keep the gateway's load balancer as Istio makes it; each bad value located at its line.
#[test]
fn the_domain_and_the_gateways_load_balancer_are_checked() {
    let spec = parse_text(EXAMPLE).unwrap();
    assert_eq!(spec.addons.ingress, IngressSpec::default());
    assert_eq!(spec.addons.ingress.domain, "example.com");
    let with = |tables: &str| {
        example_with(
            "kserve = \"v0.16.0\"\n",
            &format!("kserve = \"v0.16.0\"\n\n{tables}\n"),
        )
    };
    let text = with(
        "[addons.knative]\ndomain = \"models.example.org\"\n[addons.ingress_gateway]\nload_balancer = \"nlb\"\nscheme = \"internal\"",
    );
    let ingress = parse_text(&text).unwrap().addons.ingress;
    assert_eq!(ingress.domain, "models.example.org");
    assert_eq!(ingress.load_balancer, LoadBalancerType::Network);
    assert!(ingress.internal);
    let text = with("[addons.knative]\ndomain = \"Models_example.org\"");
    assert_one(
        &text,
        "domain `Models_example.org` is not valid",
        "domain =",
    );
    let text = with("[addons.ingress_gateway]\nload_balancer = \"alb\"");
    assert_one(
        &text,
        "`alb` is not a valid load balancer type",
        "load_balancer =",
    );
    let text = with("[addons.ingress_gateway]\nscheme = \"public\"");
    assert_one(
        &text,
        "`public` is not a valid load balancer scheme",
        "scheme =",
    );
}

#[test]
fn admin_arns_are_iam_principals_named_once() {
    let text = example_with(
        "public_access_cidrs = [\"0.0.0.0/0\"]",
        "public_access_cidrs = [\"0.0.0.0/0\"]\nadmin_arns = [\"arn:aws:iam::123456789012:role/platform-admin\", \"arn:aws:iam::123456789012:user/ops/alice\"]",
    );
    let spec = parse_text(&text).unwrap();
    assert_eq!(
        spec.eks.admin_arns.keys().collect::<Vec<_>>(),
        vec!["alice", "platform-admin"]
    );
    let text = example_with(
        "public_access_cidrs = [\"0.0.0.0/0\"]",
        "public_access_cidrs = [\"0.0.0.0/0\"]\nadmin_arns = [\"arn:aws:iam::123456789012:role/admin\", \"arn:aws:iam::123456789012:user/admin\", \"admins\"]",
    );
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p.2.contains("both end in `admin`")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.2.contains("admin ARN `admins` is not valid")),
        "{found:?}"
    );
}

const LOCAL_STATE: &str = "backend = \"local\"\npath = \"state/mlops.json\"\n";

#[test]
fn s3_state_defaults_to_the_stack_name_region_and_a_five_minute_lease() {
    let text = example_with(
        LOCAL_STATE,
        "backend = \"s3\"\nbucket = \"acme-mlops-state\"\n",
    );
    let spec = parse_text(&text).unwrap();
    assert_eq!(
        spec.state,
        StateSpec::S3(S3StateSpec {
            bucket: "acme-mlops-state".into(),
            key: "mlops/mlops.json".into(),
            region: "us-west-2".into(),
            lock_lease: std::time::Duration::from_secs(300),
            encryption: "AES256".into(),
        })
    );
    assert_eq!(
        spec.state.describe(),
        "the state object `s3://acme-mlops-state/mlops/mlops.json`"
    );
    let text = example_with(
        LOCAL_STATE,
        "backend = \"s3\"\nbucket = \"acme-mlops-state\"\nkey = \"teams/a.json\"\nregion = \"eu-west-1\"\nlock_lease = \"90s\"\nencryption = \"aws:kms\"\n",
    );
    let StateSpec::S3(s3) = parse_text(&text).unwrap().state else {
        panic!("an S3 state");
    };
    assert_eq!(s3.key, "teams/a.json");
    assert_eq!(s3.region, "eu-west-1");
    assert_eq!(s3.lock_lease, std::time::Duration::from_secs(90));
    assert_eq!(s3.encryption, "aws:kms");
}

#[test]
fn s3_state_needs_a_valid_bucket_key_and_lease() {
    let text = example_with(LOCAL_STATE, "backend = \"s3\"\n");
    assert_one(
        &text,
        "the S3 state backend needs a `bucket`",
        "backend = \"s3\"",
    );
    let text = example_with(LOCAL_STATE, "backend = \"s3\"\nbucket = \"Bad_Bucket\"\n");
    assert_one(
        &text,
        "state bucket name `Bad_Bucket` is not valid",
        "Bad_Bucket",
    );
    let text = example_with(
        LOCAL_STATE,
        "backend = \"s3\"\nbucket = \"acme-state\"\nkey = \"teams/\"\n",
    );
    assert_one(&text, "the state key `teams/` is not valid", "key = ");
    let text = example_with(
        LOCAL_STATE,
        "backend = \"s3\"\nbucket = \"acme-state\"\nlock_lease = \"soon\"\n",
    );
    assert_one(&text, "`soon` is not a duration", "lock_lease");
    let text = example_with(
        LOCAL_STATE,
        "backend = \"s3\"\nbucket = \"acme-state\"\nlock_lease = \"10ms\"\n",
    );
    assert_one(&text, "the lock lease `10ms` is too short", "lock_lease");
    let text = example_with(
        LOCAL_STATE,
        "backend = \"s3\"\nbucket = \"acme-state\"\npath = \"x.json\"\n",
    );
    assert_one(
        &text,
        "`path` applies to the local state backend only",
        "path = ",
    );
    let text = example_with(LOCAL_STATE, "backend = \"dynamo\"\n");
    assert_one(&text, "`dynamo` is not a valid state backend", "backend = ");
}

#[test]
fn s3_keys_are_refused_for_a_local_state() {
    let text = example_with(
        LOCAL_STATE,
        "backend = \"local\"\nbucket = \"acme-state\"\nlock_lease = \"5m\"\n",
    );
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0]
        .2
        .contains("`bucket` applies to the S3 state backend only"));
    assert!(found[1]
        .2
        .contains("`lock_lease` applies to the S3 state backend only"));
}

/// EKS's quota of 450 nodes per managed node group, at the value's line and column: a `max` of
/// 2^32 must never reach CreateNodegroup.
#[test]
fn node_group_sizes_stop_at_what_eks_allows() {
    let text = example_with("max = 3", "max = 4294967296");
    let found = problems(&text);
    assert_eq!(
        found,
        vec![(
            line_of(&text, "max = 4294967296"),
            7,
            "node group `default`: `max` 4294967296 is more nodes than EKS allows in one managed node group".to_string()
        )]
    );
    assert!(problems(&example_with("max = 3", "max = 450")).is_empty());
    let found = problems(&example_with("min = 1", "min = 451"));
    assert!(
        found
            .iter()
            .any(|p| p.2.contains("`min` 451 is more nodes")),
        "{found:?}"
    );
}

/// A region no partition has is refused with the closest one; the zones then follow it.
#[test]
fn regions_come_from_the_partitions_with_a_suggestion() {
    let text = EXAMPLE
        .replace("region = \"us-west-2\"", "region = \"us-wset-2\"")
        .replace("us-west-2a", "us-wset-2a")
        .replace("us-west-2b", "us-wset-2b");
    let Err(SpecError::Invalid { diagnostics, .. }) = parse_text(&text) else {
        panic!("an unknown region must be refused");
    };
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(
        diagnostics[0].message,
        "region `us-wset-2` is not valid: no AWS partition has this region"
    );
    assert_eq!(
        diagnostics[0].hint.as_deref(),
        Some("did you mean `us-west-2`?")
    );
    for region in [
        "us-gov-west-1",
        "cn-north-1",
        "eu-central-2",
        "ap-southeast-7",
    ] {
        assert!(names::region(region).is_ok(), "{region}");
    }
}

/// A NUL or another control character is named at its place, before the TOML parser reports
/// it as something else.
#[test]
fn control_characters_are_named_where_they_are() {
    let text = example_with("name = \"mlops-cluster\"", "name = \"mlops\u{0}cluster\"")
        .replace("env = \"dev\"", "env = \"d\u{1b}v\"");
    assert_eq!(
        problems(&text),
        vec![
            (
                line_of(&text, "env = "),
                18,
                "the file has the control character U+001B here".to_string()
            ),
            (
                line_of(&text, "mlops\u{0}cluster"),
                14,
                "the file has a NUL byte (U+0000) here".to_string()
            ),
        ]
    );
}

/// At most 40 public access CIDRs per cluster; the control plane's zones are zones of the
/// VPC, at least two.
#[test]
fn cluster_limits_and_zones() {
    let many: Vec<String> = (0..41).map(|i| format!("\"10.{i}.0.0/16\"")).collect();
    let text = example_with(
        "public_access_cidrs = [\"0.0.0.0/0\"]",
        &format!("public_access_cidrs = [{}]", many.join(", ")),
    );
    assert_eq!(
        problems(&text)[0].2,
        "`public_access_cidrs` lists 41 blocks"
    );
    let text = example_with(
        "public_access_cidrs = [\"0.0.0.0/0\"]",
        "public_access_cidrs = [\"0.0.0.0/0\"]\nzones = [\"us-west-2c\"]",
    );
    let found: Vec<String> = problems(&text).into_iter().map(|p| p.2).collect();
    assert_eq!(
        found,
        vec![
            "the control plane needs subnets in at least two zones",
            "`us-west-2c` is not a zone of the VPC",
        ]
    );
    let text = example_with(
        "public_access_cidrs = [\"0.0.0.0/0\"]",
        "public_access_cidrs = [\"0.0.0.0/0\"]\nzones = [\"us-west-2b\", \"us-west-2a\"]",
    );
    assert_eq!(
        parse_text(&text).unwrap().eks.zones,
        Some(vec!["us-west-2a".to_string(), "us-west-2b".to_string()])
    );
    assert_eq!(parse_text(EXAMPLE).unwrap().eks.zones, None);
}

/// A local state path is relative to the stack file that writes it; the old rule's place is
/// kept as `legacy`, relative to the working folder.
#[test]
fn a_local_state_path_is_relative_to_the_stack_file() {
    // Without `[workloads]`, whose files are not under `/p`.
    let text = EXAMPLE.split("[workloads]").next().unwrap();
    let spec = parse(Path::new("/p/stacks/t.toml"), text.to_string()).unwrap();
    assert_eq!(
        spec.state,
        StateSpec::Local {
            path: "/p/stacks/state/mlops.json".into(),
            legacy: "state/mlops.json".into(),
        }
    );
    let absolute = example_with(
        "path = \"state/mlops.json\"",
        "path = \"/var/mlops/s.json\"",
    );
    let spec = parse(Path::new("stacks/t.toml"), absolute).unwrap();
    assert_eq!(
        spec.state,
        StateSpec::Local {
            path: "/var/mlops/s.json".into(),
            legacy: "/var/mlops/s.json".into(),
        }
    );
}

/// `[timeouts]` names kinds of AWS objects and durations; a wrong kind, a wrong duration or zero
/// is refused at its line.
#[test]
fn timeouts_override_the_in_use_budget_of_a_kind() {
    use crate::model::ResourceKind;
    let text = format!("{EXAMPLE}\n[timeouts]\nsubnet = \"45m\"\neks_cluster = \"2h\"\n");
    let spec = parse(Path::new("stacks/example.toml"), text).unwrap();
    assert_eq!(
        spec.timeouts,
        BTreeMap::from([
            (
                ResourceKind::Subnet,
                std::time::Duration::from_secs(45 * 60)
            ),
            (
                ResourceKind::EksCluster,
                std::time::Duration::from_secs(2 * 3600)
            ),
        ])
    );
    assert!(parse(Path::new("stacks/example.toml"), EXAMPLE.to_string())
        .unwrap()
        .timeouts
        .is_empty());

    let wrong_kind = format!("{EXAMPLE}\n[timeouts]\nsubnets = \"45m\"\n");
    assert_one(
        &wrong_kind,
        "`subnets` is not a kind of AWS object",
        "subnets = \"45m\"",
    );
    let not_aws = format!("{EXAMPLE}\n[timeouts]\naddon = \"45m\"\n");
    assert_one(
        &not_aws,
        "`addon` is not a kind of AWS object",
        "addon = \"45m\"",
    );
    let wrong_duration = format!("{EXAMPLE}\n[timeouts]\nvpc = \"forty\"\n");
    assert_one(
        &wrong_duration,
        "`forty` is not a duration",
        "vpc = \"forty\"",
    );
    let zero = format!("{EXAMPLE}\n[timeouts]\nvpc = \"0s\"\n");
    assert_one(&zero, "`[timeouts] vpc` is zero", "vpc = \"0s\"");
}
