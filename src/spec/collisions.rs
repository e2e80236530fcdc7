//! Checks across stacks: what two stacks must never share when a pipeline applies them side by
//! side in one account. Pure: it compares validated specs.

use std::collections::BTreeMap;

use super::Spec;

/// What two stacks collide on: errors that would break an apply, and warnings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collisions {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

fn name(spec: &Spec) -> String {
    format!("`{}` ({})", spec.stack.name, spec.path.display())
}

/// Every pair of stacks that shares a stack name, a state file or object, a cluster or ECR repository
/// name in one region, or a bucket name (S3 names are global); overlapping VPC CIDRs in one
/// region are a warning (they rule out peering the VPCs later).
pub fn collisions(specs: &[Spec]) -> Collisions {
    let mut found = Collisions::default();
    let mut claim =
        |what: String, key: String, spec: &Spec, seen: &mut BTreeMap<String, String>| {
            if let Some(first) = seen.insert(key, name(spec)) {
                found
                    .errors
                    .push(format!("stacks {first} and {} both use {what}", name(spec)));
            }
        };
    let mut seen: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for spec in specs {
        let region = &spec.stack.region;
        claim(
            format!("the stack name `{}`", spec.stack.name),
            spec.stack.name.clone(),
            spec,
            seen.entry("stack").or_default(),
        );
        claim(
            spec.state.describe(),
            spec.state.describe(),
            spec,
            seen.entry("state").or_default(),
        );
        claim(
            format!("the EKS cluster name `{}` in {region}", spec.eks.name),
            format!("{region}/{}", spec.eks.name),
            spec,
            seen.entry("cluster").or_default(),
        );
        for bucket in spec.buckets.values() {
            claim(
                format!("the S3 bucket name `{}`", bucket.name),
                bucket.name.clone(),
                spec,
                seen.entry("bucket").or_default(),
            );
        }
        for repository in spec.repositories.keys() {
            claim(
                format!("the ECR repository name `{repository}` in {region}"),
                format!("{region}/{repository}"),
                spec,
                seen.entry("repository").or_default(),
            );
        }
    }
    for (i, a) in specs.iter().enumerate() {
        for b in &specs[i + 1..] {
            let (x, y) = (a.vpc.cidr, b.vpc.cidr);
            if a.stack.region == b.stack.region && (x.contains(&y) || y.contains(&x)) {
                found.warnings.push(format!(
                    "stacks {} and {} have overlapping VPC CIDRs {x} and {y} in {}: their VPCs can never be peered",
                    name(a),
                    name(b),
                    a.stack.region
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const EXAMPLE: &str = include_str!("../../stacks/example.toml");

    fn team(name: &str, edit: impl Fn(String) -> String) -> Spec {
        let text = EXAMPLE
            .replace("name = \"mlops\"", &format!("name = \"{name}\""))
            .replace(
                "path = \"state/mlops.json\"",
                &format!("path = \"state/{name}.json\""),
            )
            .replace("mlops-models-bucket", &format!("{name}-models"))
            .replace(
                "name = \"mlops-cluster\"",
                &format!("name = \"{name}-cluster\""),
            )
            .replace(
                "[repositories.wine-model]",
                &format!("[repositories.{name}-wine]"),
            )
            .replace("10.0.", "10.{N}.");
        let n = name.len().to_string();
        let text = edit(text.replace("{N}", &n));
        crate::spec::parse(Path::new(&format!("stacks/{name}.toml")), text).unwrap()
    }

    #[test]
    fn distinct_stacks_do_not_collide() {
        let found = collisions(&[team("a", |t| t), team("bb", |t| t)]);
        assert_eq!(found, Collisions::default());
    }

    #[test]
    fn shared_names_are_errors_naming_both_stacks() {
        let a = team("a", |t| t);
        let b = team("bb", |t| {
            t.replace("bb-models", "a-models")
                .replace("bb-cluster", "a-cluster")
        });
        let found = collisions(&[a, b]);
        assert_eq!(found.errors.len(), 2, "{found:?}");
        assert!(found.errors[0].contains("stacks `a` (stacks/a.toml) and `bb` (stacks/bb.toml) both use the EKS cluster name `a-cluster` in us-west-2"));
        assert!(found.errors[1].contains("both use the S3 bucket name `a-models`"));
    }

    #[test]
    fn a_cluster_name_may_repeat_in_another_region() {
        let a = team("a", |t| t);
        let b = team("bb", |t| {
            t.replace("bb-cluster", "a-cluster")
                .replace("us-west-2", "eu-west-1")
        });
        assert!(collisions(&[a, b]).errors.is_empty());
    }

    #[test]
    fn overlapping_vpcs_in_one_region_are_a_warning() {
        let a = team("a", |t| t);
        let b = team("c", |t| t);
        let found = collisions(&[a, b]);
        assert!(found.errors.is_empty());
        assert_eq!(found.warnings.len(), 1);
        assert!(found.warnings[0].contains("overlapping VPC CIDRs 10.1.0.0/16 and 10.1.0.0/16"));
    }

    #[test]
    fn two_stacks_cannot_share_a_state_object() {
        let s3 = |key: &str| {
            let key = key.to_string();
            move |t: String| {
                t.replace(
                    "backend = \"local\"\npath = \"state/",
                    &format!("backend = \"s3\"\nbucket = \"acme-state\"\n{key}# state/"),
                )
            }
        };
        let a = team("a", s3("key = \"shared.json\"\n"));
        let b = team("bb", s3("key = \"shared.json\"\n"));
        let found = collisions(&[a, b]);
        assert_eq!(found.errors.len(), 1, "{found:?}");
        assert!(found.errors[0].contains("both use the state object `s3://acme-state/shared.json`"));
        // By default each stack has its own key in a shared bucket.
        let found = collisions(&[team("a", s3("")), team("bb", s3(""))]);
        assert!(found.errors.is_empty(), "{found:?}");
    }
}
