//! The step of a cluster upgrade, checked against the running cluster's version as the state
//! records it: EKS moves a control plane one minor version at a time and never back, so a skip
//! or a downgrade would fail only at apply time, after the plan was approved. Refused by `plan`,
//! and by `validate` when the state is a local file (`validate` never touches the cloud, so an
//! S3 state is left to `plan`), naming where `[eks] version` is written.

use super::Stack;
use crate::model::{Address, ResourceKind};
use crate::spec::{Spec, StateSpec};
use crate::state::State;
use crate::{Error, Result};

/// `validate`'s check of the version step, against the stack's state when it is a local file.
pub async fn check_local_version_step(stack: &Stack) -> Result<()> {
    if !matches!(stack.spec.state, StateSpec::Local { .. }) {
        return Ok(());
    }
    check_version_step(&stack.spec, &stack.state().await?)
}

/// A `major.minor` version as numbers; `None` for anything else.
fn minor(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Refuses a desired `[eks] version` more than one minor version after the cluster's, or
/// before it. Nothing to check without a cluster in the state.
pub(super) fn check_version_step(spec: &Spec, state: &State) -> Result<()> {
    let address = Address::of(ResourceKind::EksCluster.name(), &[]);
    let Some(running) = state
        .resources
        .get(&address)
        .and_then(|r| r.attrs.get("version"))
        .and_then(|v| v.as_str())
    else {
        return Ok(());
    };
    let wanted = spec.eks.version.as_str();
    let (Some(from), Some(to)) = (minor(running), minor(wanted)) else {
        return Ok(());
    };
    let at = &spec.eks.version_at;
    if to < from {
        return Err(Error::refused(
            format!("`[eks] version = \"{wanted}\"` ({at}) is older than the cluster's {running}: EKS cannot downgrade a cluster"),
            format!("keep `version = \"{running}\"`; a cluster on an older version is a new cluster (another `[eks] name`)"),
        ));
    }
    if to.0 != from.0 || to.1 > from.1 + 1 {
        let next = format!("{}.{}", from.0, from.1 + 1);
        return Err(Error::refused(
            format!("`[eks] version = \"{wanted}\"` ({at}) skips minor versions: the cluster runs {running}, and EKS upgrades one minor version at a time"),
            format!("set `version = \"{next}\"`, apply, and go on from there (docs/upgrades.md)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::state::ResourceState;

    const EXAMPLE: &str = include_str!("../../stacks/example.toml");

    fn spec(version: &str) -> Spec {
        let text = EXAMPLE.replace("version = \"1.33\"", &format!("version = \"{version}\""));
        crate::spec::parse(Path::new("stacks/example.toml"), text).unwrap()
    }

    fn running(version: &str) -> State {
        let mut state = State::new("mlops");
        state.resources.insert(
            Address::of("eks_cluster", &[]),
            ResourceState {
                kind: ResourceKind::EksCluster,
                id: "mlops-cluster".into(),
                attrs: json!({ "version": version }).as_object().cloned().unwrap(),
                deps: Vec::new(),
                pending: false,
            },
        );
        state
    }

    fn refusal(spec: &Spec, state: &State) -> (String, String) {
        match check_version_step(spec, state) {
            Err(Error::Refused { message, hint }) => (message, hint.unwrap_or_default()),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn one_minor_step_up_or_none_passes() {
        assert!(check_version_step(&spec("1.34"), &running("1.33")).is_ok());
        assert!(check_version_step(&spec("1.33"), &running("1.33")).is_ok());
        assert!(check_version_step(&spec("1.35"), &State::new("mlops")).is_ok());
    }

    #[test]
    fn a_skip_is_refused_at_the_line_of_the_version() {
        let (message, hint) = refusal(&spec("1.35"), &running("1.33"));
        let line = 1 + EXAMPLE
            .lines()
            .position(|l| l.starts_with("version = "))
            .unwrap();
        assert!(
            message.contains(&format!(
                "(stacks/example.toml:{line}:11) skips minor versions"
            )),
            "{message}"
        );
        assert!(message.contains("the cluster runs 1.33"), "{message}");
        assert!(hint.contains("`version = \"1.34\"`"), "{hint}");
    }

    #[test]
    fn a_downgrade_is_refused() {
        let (message, hint) = refusal(&spec("1.33"), &running("1.34"));
        assert!(
            message.contains("is older than the cluster's 1.34"),
            "{message}"
        );
        assert!(hint.contains("keep `version = \"1.34\"`"), "{hint}");
    }
}
