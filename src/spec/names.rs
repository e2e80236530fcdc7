//! Naming rules of AWS and Kubernetes, checked before any API call so that a bad name is a
//! located validation error instead of an AWS error half-way through an apply.
//! Each check returns the reason a name is refused, phrased to follow "X `name` is not valid: ".

/// EKS versions `mlops` accepts (standard and extended support in late 2026).
pub const SUPPORTED_EKS_VERSIONS: &[&str] = &["1.30", "1.31", "1.32", "1.33", "1.34", "1.35"];

type Check = Result<(), String>;

fn fail(reason: impl Into<String>) -> Check {
    Err(reason.into())
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z][a-z0-9-]{0,31}`: stack names become tags, state keys and parts of AWS names.
pub fn stack_name(name: &str) -> Check {
    if name.is_empty() || name.len() > 32 {
        return fail("it must be 1 to 32 characters long");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return fail("it must start with a lower-case letter");
    }
    if !name.chars().all(|c| is_lower_alnum(c) || c == '-') {
        return fail("only lower-case letters, digits and `-` are allowed");
    }
    Ok(())
}

/// The regions of each AWS partition, as the endpoint rules of the AWS SDK that `mlops` is built
/// with list them (`aws-sdk-eks`'s partitions, without the `*-global` pseudo-regions). A region
/// outside these has no endpoints: the first call would fail after others succeeded.
pub const PARTITION_REGIONS: &[(&str, &[&str])] = &[
    (
        "aws",
        &[
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    ),
    ("aws-cn", &["cn-north-1", "cn-northwest-1"]),
    ("aws-eusc", &["eusc-de-east-1"]),
    ("aws-iso", &["us-iso-east-1", "us-iso-west-1"]),
    ("aws-iso-b", &["us-isob-east-1", "us-isob-west-1"]),
    ("aws-iso-e", &["eu-isoe-west-1"]),
    ("aws-iso-f", &["us-isof-east-1", "us-isof-south-1"]),
    ("aws-us-gov", &["us-gov-east-1", "us-gov-west-1"]),
];

/// An AWS region code of one of the partitions, such as `us-west-2` or `us-gov-west-1`.
pub fn region(name: &str) -> Check {
    let known = PARTITION_REGIONS
        .iter()
        .any(|(_, regions)| regions.contains(&name));
    if known {
        Ok(())
    } else {
        fail("no AWS partition has this region")
    }
}

/// The region closest to a mistyped one, for a `did you mean` hint.
pub fn closest_region(wrong: &str) -> Option<&'static str> {
    let all = PARTITION_REGIONS
        .iter()
        .flat_map(|(_, regions)| regions.iter().copied());
    crate::ui::diagnostic::closest(wrong, all)
}

/// An availability zone of `region`: the region code followed by one letter (`us-west-2a`).
pub fn availability_zone(name: &str, region: &str) -> Check {
    match name.strip_prefix(region) {
        Some(suffix) if suffix.len() == 1 && suffix.chars().all(|c| c.is_ascii_lowercase()) => {
            Ok(())
        }
        _ => fail(format!(
            "it is not in the region `{region}` (zones of `{region}` are named `{region}a`, `{region}b`, ...)"
        )),
    }
}

/// AWS tag keys and values (the rules shared by EC2, IAM, EKS, S3 and ECR).
pub fn tag(key: &str, value: &str) -> Check {
    let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
    if key.is_empty() || key.chars().count() > 128 {
        return fail("a tag key must be 1 to 128 characters long");
    }
    if value.chars().count() > 256 {
        return fail("a tag value must be at most 256 characters long");
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return fail("tag keys starting with `aws:` are reserved by AWS");
    }
    if key.to_ascii_lowercase().starts_with("mlops:") {
        return fail("tag keys starting with `mlops:` are set by mlops itself");
    }
    if !key.chars().all(allowed) || !value.chars().all(allowed) {
        return fail("tags may use letters, digits, spaces and `_ . : / = + - @`");
    }
    Ok(())
}

/// EKS cluster names: 1-100 characters, alphanumerics, `-` and `_`, starting alphanumeric.
pub fn eks_cluster_name(name: &str) -> Check {
    if name.is_empty() || name.len() > 100 {
        return fail("it must be 1 to 100 characters long");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return fail("it must start with a letter or a digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return fail("only letters, digits, `-` and `_` are allowed");
    }
    Ok(())
}

/// EKS node group names: 1-63 characters, alphanumerics, `-` and `_`, starting alphanumeric.
pub fn node_group_name(name: &str) -> Check {
    // EKS allows 63; mlops appends `-` and 8 hex digits (NodeGroupSpec::eks_name).
    if name.len() > 54 {
        return fail("it must be at most 54 characters long (mlops appends `-` and 8 hex digits, and EKS allows 63)");
    }
    eks_cluster_name(name)
}

/// Keys used inside resource addresses (node groups, IRSA roles, buckets, repositories):
/// no dots, so that addresses stay unambiguous.
pub fn address_key(name: &str) -> Check {
    if name.is_empty() || name.len() > 64 {
        return fail("it must be 1 to 64 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return fail("only letters, digits, `-` and `_` are allowed");
    }
    Ok(())
}

/// EC2 instance types such as `t3.medium` or `g5.xlarge`.
pub fn instance_type(name: &str) -> Check {
    let mut parts = name.split('.');
    let (family, size) = (parts.next().unwrap_or(""), parts.next());
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| is_lower_alnum(c) || c == '-');
    match size {
        Some(size) if parts.next().is_none() && ok(family) && ok(size) => Ok(()),
        _ => fail("an instance type looks like `t3.medium`"),
    }
}

/// S3 bucket names, general purpose buckets (AWS "Bucket naming rules").
pub fn s3_bucket(name: &str) -> Check {
    if !(3..=63).contains(&name.len()) {
        return fail("it must be 3 to 63 characters long");
    }
    if !name
        .chars()
        .all(|c| is_lower_alnum(c) || c == '.' || c == '-')
    {
        return fail("only lower-case letters, digits, `.` and `-` are allowed");
    }
    if !name.starts_with(is_lower_alnum) || !name.ends_with(is_lower_alnum) {
        return fail("it must start and end with a letter or a digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return fail("it must not contain `..`, `.-` or `-.`");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("it must not look like an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return fail(format!("the prefix `{prefix}` is reserved by AWS"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return fail(format!("the suffix `{suffix}` is reserved by AWS"));
        }
    }
    Ok(())
}

/// ECR repository names: 2-256 characters, lower-case path segments separated by `/`, each
/// made of alphanumeric runs joined by single `.`, `_` or `-`.
pub fn ecr_repository(name: &str) -> Check {
    if !(2..=256).contains(&name.len()) {
        return fail("it must be 2 to 256 characters long");
    }
    for segment in name.split('/') {
        let mut previous_was_separator = true;
        for c in segment.chars() {
            let separator = matches!(c, '.' | '_' | '-');
            if !is_lower_alnum(c) && !separator {
                return fail("only lower-case letters, digits, `.`, `_`, `-` and `/` are allowed");
            }
            if separator && previous_was_separator {
                return fail("each `/`-separated part must start with a letter or a digit and separators may not repeat");
            }
            previous_was_separator = separator;
        }
        if previous_was_separator {
            return fail("each `/`-separated part must end with a letter or a digit");
        }
    }
    Ok(())
}

/// A Kubernetes DNS-1123 label (namespaces): at most 63 characters of `[a-z0-9-]`,
/// starting and ending alphanumeric.
pub fn dns_label(name: &str) -> Check {
    if name.is_empty() || name.len() > 63 {
        return fail("it must be 1 to 63 characters long");
    }
    if !name.chars().all(|c| is_lower_alnum(c) || c == '-') {
        return fail("only lower-case letters, digits and `-` are allowed");
    }
    if !name.starts_with(is_lower_alnum) || !name.ends_with(is_lower_alnum) {
        return fail("it must start and end with a letter or a digit");
    }
    Ok(())
}

/// A Kubernetes DNS-1123 subdomain (service accounts, most object names): at most 253
/// characters, dot-separated DNS labels.
pub fn dns_subdomain(name: &str) -> Check {
    if name.is_empty() || name.len() > 253 {
        return fail("it must be 1 to 253 characters long");
    }
    name.split('.').try_for_each(dns_label)
}

/// A Kubernetes label or taint key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters of alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
pub fn k8s_label_key(key: &str) -> Check {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            dns_subdomain(prefix).map_err(|r| format!("its prefix is not valid: {r}"))?;
            name
        }
        None => key,
    };
    k8s_label_value(name)?;
    if name.is_empty() {
        return fail("the name part must not be empty");
    }
    Ok(())
}

/// A Kubernetes label value: empty, or at most 63 characters of alphanumerics, `-`, `_` and `.`,
/// starting and ending alphanumeric.
pub fn k8s_label_value(value: &str) -> Check {
    if value.len() > 63 {
        return fail("it must be at most 63 characters long");
    }
    if value.is_empty() {
        return Ok(());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return fail("only letters, digits, `-`, `_` and `.` are allowed");
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !value.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return fail("it must start and end with a letter or a digit");
    }
    Ok(())
}

/// An IAM managed policy ARN: `arn:<partition>:iam::<aws | account id>:policy/<path and name>`.
pub fn iam_policy_arn(arn: &str) -> Check {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && (parts[4] == "aws"
            || (parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit())))
        && parts[5]
            .strip_prefix("policy/")
            .is_some_and(|n| !n.is_empty() && !n.ends_with('/'));
    if ok {
        Ok(())
    } else {
        fail("a policy ARN looks like `arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess`")
    }
}

/// An IAM role or user ARN: `arn:<partition>:iam::<account id>:role/<path and name>` (or `user/`).
pub fn iam_principal_arn(arn: &str) -> Check {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && ["role/", "user/"].iter().any(|p| {
            parts[5]
                .strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && !n.ends_with('/'))
        });
    if ok {
        Ok(())
    } else {
        fail("an admin ARN names an IAM role or user: `arn:aws:iam::123456789012:role/platform-admin`")
    }
}

/// The partition an ARN names (`aws` in `arn:aws:iam::...`), if it is an ARN at all.
pub fn arn_partition(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?.split(':').next()
}

/// A KMS key ARN: `arn:<partition>:kms:<region>:<account id>:key/<key id>`, or an alias ARN
/// (`...:alias/<name>`), which EKS also accepts.
pub fn kms_key_arn(arn: &str) -> Check {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "kms"
        && region(parts[3]).is_ok()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && ["key/", "alias/"].iter().any(|p| {
            parts[5]
                .strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && !n.contains('/'))
        });
    if ok {
        Ok(())
    } else {
        fail("a KMS key ARN looks like `arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab`")
    }
}

/// The name of a role or user ARN: its last path segment.
pub fn principal_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The last path segment of a policy ARN: the policy's name.
pub fn policy_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names() {
        assert!(stack_name("mlops").is_ok());
        assert!(stack_name("team-a1").is_ok());
        assert!(stack_name("Team").is_err());
        assert!(stack_name("1team").is_err());
        assert!(stack_name("team_a").is_err());
        assert!(stack_name(&"a".repeat(33)).is_err());
        assert!(stack_name("").is_err());
    }

    #[test]
    fn regions_and_zones() {
        assert!(region("us-west-2").is_ok());
        assert!(region("us-gov-west-1").is_ok());
        assert!(region("uswest2").is_err());
        assert!(region("us-west-").is_err());
        assert!(availability_zone("us-west-2a", "us-west-2").is_ok());
        assert!(availability_zone("us-east-1a", "us-west-2").is_err());
        assert!(availability_zone("us-west-2", "us-west-2").is_err());
        assert!(availability_zone("us-west-2ab", "us-west-2").is_err());
    }

    #[test]
    fn tags() {
        assert!(tag("env", "dev").is_ok());
        assert!(tag("team/owner", "a b@c").is_ok());
        assert!(tag("aws:foo", "x").is_err());
        assert!(tag("mlops:stack", "x").is_err());
        assert!(tag("", "x").is_err());
        assert!(tag("a", "#").is_err());
    }

    #[test]
    fn bucket_names() {
        assert!(s3_bucket("mlops-models-bucket").is_ok());
        assert!(s3_bucket("my.bucket.1").is_ok());
        for bad in [
            "ab",
            "Upper",
            "-start",
            "end-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "under_score",
        ] {
            assert!(s3_bucket(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn repository_names() {
        assert!(ecr_repository("wine-model").is_ok());
        assert!(ecr_repository("team/serving/wine_model.v2").is_ok());
        for bad in [
            "a",
            "Wine",
            "wine--model",
            "-wine",
            "wine/",
            "/wine",
            "wi ne",
        ] {
            assert!(ecr_repository(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn kubernetes_names() {
        assert!(dns_label("kserve-inference").is_ok());
        assert!(dns_label("Kserve").is_err());
        assert!(dns_label("-a").is_err());
        assert!(dns_subdomain("kserve-sa").is_ok());
        assert!(dns_subdomain("a.b-c").is_ok());
        assert!(dns_subdomain("a..b").is_err());
        assert!(k8s_label_key("workload").is_ok());
        assert!(k8s_label_key("nvidia.com/gpu").is_ok());
        assert!(k8s_label_key("nvidia.com/").is_err());
        assert!(k8s_label_key("bad key").is_err());
        assert!(k8s_label_value("").is_ok());
        assert!(k8s_label_value("general").is_ok());
        assert!(k8s_label_value("-x").is_err());
    }

    #[test]
    fn policy_arns() {
        assert!(iam_policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess").is_ok());
        assert!(iam_policy_arn("arn:aws:iam::123456789012:policy/team/ReadModels").is_ok());
        assert!(iam_policy_arn("arn:aws:iam::aws:role/Foo").is_err());
        assert!(iam_policy_arn("AmazonS3ReadOnlyAccess").is_err());
        assert!(iam_policy_arn("arn:aws:iam::12345:policy/X").is_err());
        assert_eq!(policy_name("arn:aws:iam::1:policy/a/b/Name"), "Name");
        assert!(iam_principal_arn("arn:aws:iam::123456789012:role/platform-admin").is_ok());
        assert!(kms_key_arn("arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab").is_ok());
        assert!(kms_key_arn("arn:aws-cn:kms:cn-north-1:123456789012:alias/eks").is_ok());
        assert!(kms_key_arn("arn:aws:kms:us-west-2:123456789012:key/").is_err());
        assert!(kms_key_arn("arn:aws:iam::123456789012:key/abc").is_err());
        assert!(kms_key_arn("1234abcd-12ab").is_err());
        assert_eq!(
            arn_partition("arn:aws-us-gov:iam::aws:policy/X"),
            Some("aws-us-gov")
        );
        assert_eq!(arn_partition("policy/X"), None);
        assert!(iam_principal_arn("arn:aws:iam::123456789012:user/ops/alice").is_ok());
        assert!(iam_principal_arn("arn:aws:iam::aws:role/x").is_err());
        assert!(iam_principal_arn("arn:aws:iam::123456789012:group/admins").is_err());
        assert_eq!(
            principal_name("arn:aws:iam::123456789012:user/ops/alice"),
            "alice"
        );
    }

    #[test]
    fn instance_types_and_node_groups() {
        assert!(instance_type("t3.medium").is_ok());
        assert!(instance_type("g5.12xlarge").is_ok());
        assert!(instance_type("t3").is_err());
        assert!(instance_type("t3.medium.x").is_err());
        assert!(node_group_name("gpu_spot-1").is_ok());
        assert!(node_group_name("_gpu").is_err());
        assert!(eks_cluster_name("mlops-cluster").is_ok());
        assert!(address_key("kserve-s3").is_ok());
        assert!(address_key("a.b").is_err());
    }
}
