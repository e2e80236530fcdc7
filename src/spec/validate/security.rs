//! The settings a security team asks for, checked apart from the rest of the spec: the
//! permissions boundary of every role, control-plane logging, envelope encryption of Secrets,
//! and IRSA policies scoped to the stack's own buckets and repositories (each key must name one
//! of them, so a typo cannot quietly grant nothing, or something else).

use std::collections::{BTreeMap, BTreeSet};

use super::{names, raw, Problems, S};
use crate::model::Partition;
use crate::spec::{IrsaSpec, SecretsKey};

/// The control-plane log types EKS can send to CloudWatch Logs.
pub const LOG_TYPES: [&str; 5] = [
    "api",
    "audit",
    "authenticator",
    "controllerManager",
    "scheduler",
];

/// An ARN of another partition than the stack's region is refused by IAM and EKS.
fn same_partition(p: &mut Problems, arn: &S<String>, what: &str, region: &str) {
    let want = Partition::of(region).name;
    if let Some(got) = names::arn_partition(arn.get_ref()).filter(|got| *got != want) {
        p.hint(
            arn.span(),
            format!("{what} `{}` is in the partition `{got}`", arn.get_ref()),
            format!("the region `{region}` is in the partition `{want}`: use `arn:{want}:...`"),
        );
    }
}

/// `[stack] permissions_boundary`: a managed policy ARN of the stack's partition.
pub(super) fn permissions_boundary(
    p: &mut Problems,
    raw: Option<&S<String>>,
    region: &str,
) -> Option<String> {
    let arn = raw?;
    p.name(
        names::iam_policy_arn(arn.get_ref()),
        "permissions boundary",
        arn,
    );
    same_partition(p, arn, "the permissions boundary", region);
    Some(arn.get_ref().clone())
}

/// `[eks] log_types`: a set of EKS's log types, sorted; none by default.
pub(super) fn log_types(p: &mut Problems, raw: Option<&S<Vec<S<String>>>>) -> Vec<String> {
    let mut types = BTreeSet::new();
    for t in raw.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
        if p.choice(t, "control-plane log type", &LOG_TYPES).is_some()
            && !types.insert(t.get_ref().clone())
        {
            p.at(
                t.span(),
                format!("log type `{}` is listed twice", t.get_ref()),
            );
        }
    }
    types.into_iter().collect()
}

/// `[eks] encrypt_secrets` and `kms_key_arn`: a key of the stack, a given key, or none.
pub(super) fn secrets_key(p: &mut Problems, eks: &raw::RawEks, region: &str) -> Option<SecretsKey> {
    let encrypt = eks.encrypt_secrets.as_ref();
    match (&eks.kms_key_arn, encrypt.map(|e| *e.get_ref())) {
        (Some(arn), Some(false)) => {
            p.hint(
                arn.span(),
                "`kms_key_arn` is set but `encrypt_secrets` is false",
                "remove `kms_key_arn`, or `encrypt_secrets = false`",
            );
            None
        }
        (Some(arn), _) => {
            p.name(names::kms_key_arn(arn.get_ref()), "KMS key ARN", arn);
            same_partition(p, arn, "the KMS key", region);
            Some(SecretsKey::Arn(arn.get_ref().clone()))
        }
        (None, Some(true)) => Some(SecretsKey::Stack),
        (None, _) => None,
    }
}

/// The scoped grants of each `[irsa.<key>]`: `s3_read` and `s3_write` name keys of
/// `[buckets]`, `ecr_pull` names of `[repositories]`.
pub(super) fn irsa_scopes(
    p: &mut Problems,
    raw: &BTreeMap<String, S<raw::RawIrsa>>,
    buckets: &BTreeMap<String, S<raw::RawBucket>>,
    repositories: &BTreeMap<String, S<raw::RawRepository>>,
    irsa: &mut BTreeMap<String, IrsaSpec>,
) {
    for (key, entry) in raw {
        let e = entry.get_ref();
        let Some(spec) = irsa.get_mut(key) else {
            continue;
        };
        spec.s3_read = grants(p, (key, "s3_read"), &e.s3_read, ("bucket", buckets));
        spec.s3_write = grants(p, (key, "s3_write"), &e.s3_write, ("bucket", buckets));
        spec.ecr_pull = grants(
            p,
            (key, "ecr_pull"),
            &e.ecr_pull,
            ("repository", repositories),
        );
    }
}

/// The names of one grant list (`[irsa.<key>] <what>`), each checked to be a key of the
/// stack's `kind` (`bucket`, `repository`) and listed once.
fn grants<T>(
    p: &mut Problems,
    (irsa, what): (&str, &str),
    list: &[S<String>],
    (kind, known): (&str, &BTreeMap<String, T>),
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    for name in list {
        let text = name.get_ref();
        if !known.contains_key(text) {
            let keys: Vec<String> = known.keys().map(|k| format!("`{k}`")).collect();
            p.hint(
                name.span(),
                format!(
                    "`[irsa.{irsa}] {what}` names `{text}`, which is not a {kind} of the stack"
                ),
                if keys.is_empty() {
                    format!("the stack has no {kind}")
                } else {
                    format!("the stack's {kind} keys: {}", keys.join(", "))
                },
            );
        } else if !seen.insert(text.clone()) {
            p.at(
                name.span(),
                format!("`[irsa.{irsa}] {what}` lists `{text}` twice"),
            );
        }
    }
    seen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use crate::spec::tests::{line_of, parse_text, problems, EXAMPLE};
    use crate::spec::SecretsKey;

    fn with(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "the example has no `{from}`");
        EXAMPLE.replacen(from, to, 1)
    }

    #[test]
    fn the_example_encrypts_secrets_logs_and_scopes_its_irsa_role() {
        let spec = parse_text(EXAMPLE).unwrap();
        assert_eq!(spec.eks.secrets_key, Some(SecretsKey::Stack));
        assert_eq!(spec.eks.log_types, ["api", "audit", "authenticator"]);
        let irsa = &spec.irsa["kserve-s3"];
        assert_eq!(irsa.s3_read, ["models"]);
        assert!(irsa.policy_arns.is_empty());
        assert_eq!(spec.stack.permissions_boundary, None);
    }

    #[test]
    fn a_boundary_must_be_a_policy_arn_of_the_stacks_partition() {
        let tags = "tags = { env = \"dev\" }";
        let good = with(
            tags,
            "tags = { env = \"dev\" }\npermissions_boundary = \"arn:aws:iam::123456789012:policy/boundary\"",
        );
        assert_eq!(
            parse_text(&good)
                .unwrap()
                .stack
                .permissions_boundary
                .as_deref(),
            Some("arn:aws:iam::123456789012:policy/boundary")
        );
        for (boundary, expect) in [
            ("boundary", "permissions boundary `boundary` is not valid"),
            (
                "arn:aws-cn:iam::123456789012:policy/b",
                "is in the partition `aws-cn`",
            ),
        ] {
            let bad = with(
                tags,
                &format!("{tags}\npermissions_boundary = \"{boundary}\""),
            );
            let found = problems(&bad);
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(found[0].2.contains(expect), "{found:#?}");
            assert_eq!(found[0].0, line_of(&bad, "permissions_boundary"));
        }
    }

    #[test]
    fn log_types_are_eks_s_and_listed_once() {
        let text = with(
            "log_types = [\"api\", \"audit\", \"authenticator\"]",
            "log_types = [\"api\", \"audits\", \"api\"]",
        );
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0]
            .2
            .contains("`audits` is not a valid control-plane log type"));
        assert!(found[1].2.contains("log type `api` is listed twice"));
        assert!(found.iter().all(|f| f.0 == line_of(&text, "log_types")));
    }

    #[test]
    fn a_kms_key_arn_is_checked_and_conflicts_with_encrypt_secrets_false() {
        let arn = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab";
        let given = with(
            "encrypt_secrets = true",
            &format!("kms_key_arn = \"{arn}\""),
        );
        assert_eq!(
            parse_text(&given).unwrap().eks.secrets_key,
            Some(SecretsKey::Arn(arn.into()))
        );
        let off = with(
            "encrypt_secrets = true",
            "encrypt_secrets = false\nkms_key_arn = \"arn:aws:kms:us-west-2:123456789012:key/k\"",
        );
        let found = problems(&off);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].2.contains("`encrypt_secrets` is false"));
        assert_eq!(found[0].0, line_of(&off, "kms_key_arn"));
        let bad = with("encrypt_secrets = true", "kms_key_arn = \"my-key\"");
        let found = problems(&bad);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].2.contains("KMS key ARN `my-key` is not valid"));
        let none = with("encrypt_secrets = true", "encrypt_secrets = false");
        assert_eq!(parse_text(&none).unwrap().eks.secrets_key, None);
    }

    #[test]
    fn scoped_grants_name_the_stacks_own_buckets_and_repositories() {
        let text = with(
            "s3_read = [\"models\"]",
            "s3_read = [\"modles\"]\ns3_write = [\"models\", \"models\"]\necr_pull = [\"wine-model\", \"beer-model\"]",
        );
        let found = problems(&text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].2.contains(
            "`[irsa.kserve-s3] s3_read` names `modles`, which is not a bucket of the stack"
        ));
        assert_eq!(found[0].0, line_of(&text, "s3_read"));
        assert!(found[1]
            .2
            .contains("`[irsa.kserve-s3] s3_write` lists `models` twice"));
        assert_eq!(found[1].0, line_of(&text, "s3_write"));
        assert!(found[2].2.contains("names `beer-model`"));
        assert_eq!(found[2].0, line_of(&text, "ecr_pull"));
    }
}
