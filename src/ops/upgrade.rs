//! The step of a cluster upgrade, checked against the running cluster's version as the state
//! records it: EKS moves a control plane one minor version at a time and never back, so a skip
//! or a downgrade would fail only at apply time, after the plan was approved. Refused by `plan`,
//! and by `validate` when the state is a local file (`validate` never touches the cloud, so an
//! S3 state is left to `plan`), naming where `[eks] version` is written. The same holds for the
//! add-ons whose projects upgrade one minor version at a time (the catalogue says which): a skip
//! is refused unless the run says `--allow-version-skip`.

use super::Stack;
use crate::addons::catalogue::kubernetes_minor;
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

/// Refuses an add-on version more than one minor version after the installed one, for the
/// add-ons whose projects upgrade one minor at a time, unless `allow_skip`
/// (`--allow-version-skip`). Nothing to check for an add-on not yet installed.
pub(super) fn check_addon_steps(spec: &Spec, state: &State, allow_skip: bool) -> Result<()> {
    if allow_skip {
        return Ok(());
    }
    for (addon, release) in &spec.addons.releases {
        if !addon.upgrades_one_minor_at_a_time() {
            continue;
        }
        let address = Address::of(ResourceKind::Addon.name(), &[addon.spec_key()]);
        let Some(installed) = state
            .resources
            .get(&address)
            .and_then(|r| r.attrs.get("version"))
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        let (Some(from), Some(to)) = (
            kubernetes_minor(installed),
            kubernetes_minor(release.version),
        ) else {
            continue;
        };
        if to.0 == from.0 && to.1 <= from.1 + 1 {
            continue;
        }
        let at = spec
            .addons
            .versions_at
            .get(addon)
            .map(String::as_str)
            .unwrap_or("[addons]");
        return Err(Error::refused(
            format!(
                "`{} = \"{}\"` ({at}) skips minor versions: the cluster runs {addon} {installed}, and {addon} upgrades one minor version at a time",
                addon.spec_key(),
                release.version
            ),
            format!(
                "upgrade to {}.{}.x first (once its manifests are in the catalogue), or pass `--allow-version-skip` to go from {installed} to {} in one step",
                from.0,
                from.1 + 1,
                release.version
            ),
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

    /// The state of a cluster with the add-ons of the older catalogue set installed.
    fn installed_first_set() -> State {
        let mut state = State::new("mlops");
        for (key, version) in [
            ("cert_manager", "v1.16.1"),
            ("istio", "1.24.3"),
            ("knative_serving", "1.16.2"),
            ("kserve", "v0.15.0"),
        ] {
            state.resources.insert(
                Address::of("addon", &[key]),
                ResourceState {
                    kind: ResourceKind::Addon,
                    id: key.into(),
                    attrs: json!({ "version": version }).as_object().cloned().unwrap(),
                    deps: Vec::new(),
                    pending: false,
                },
            );
        }
        state
    }

    /// The example's add-ons (the newer set) over the older set: cert-manager 1.16 -> 1.19
    /// is refused first, naming the line of its version, both versions and the flag.
    #[test]
    fn an_addon_that_skips_minor_versions_is_refused_unless_allowed() {
        let spec = spec("1.33");
        let state = installed_first_set();
        let (message, hint) = match check_addon_steps(&spec, &state, false) {
            Err(Error::Refused { message, hint }) => (message, hint.unwrap_or_default()),
            other => panic!("expected a refusal, got {other:?}"),
        };
        let line = 1 + EXAMPLE
            .lines()
            .position(|l| l.starts_with("cert_manager = "))
            .unwrap();
        assert!(
            message.starts_with(&format!(
                "`cert_manager = \"v1.19.4\"` (stacks/example.toml:{line}:16) skips minor versions: the cluster runs cert-manager v1.16.1"
            )),
            "{message}"
        );
        assert!(hint.contains("1.17.x"), "{hint}");
        assert!(hint.contains("--allow-version-skip"), "{hint}");
        assert!(check_addon_steps(&spec, &state, true).is_ok());
    }

    /// One minor step, the same version, KServe (no rule) and a first install pass.
    #[test]
    fn an_addon_one_minor_up_or_not_installed_passes() {
        let spec = spec("1.33");
        let mut state = installed_first_set();
        for (key, version) in [
            ("cert_manager", "v1.18.0"),
            ("istio", "1.28.2"),
            ("knative_serving", "1.21.1"),
        ] {
            let address = Address::of("addon", &[key]);
            let resource = state.resources.get_mut(&address).unwrap();
            resource.attrs.insert("version".into(), json!(version));
        }
        assert!(check_addon_steps(&spec, &state, false).is_ok());
        assert!(check_addon_steps(&spec, &State::new("mlops"), false).is_ok());
    }
}
