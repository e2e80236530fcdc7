//! The replacement gate: a plan that deletes or replaces a protected resource (a cluster, a
//! node group, the VPC, a NAT gateway, a bucket, a repository, the OIDC provider) is refused
//! unless the user named each such address with `--allow-replace`. Checked before the prompt
//! and again before the first write, for saved plans too: with `--auto-approve` in CI, nothing
//! that loses data or takes the platform down happens by accident.

use std::collections::BTreeSet;

use super::action::{Action, Change, Plan};
use super::diff::PlanError;
use crate::model::{pending_paths, Address};

/// One protected change the user did not allow.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub address: Address,
    pub action: Action,
    /// What forces it: the attributes, `--replace`, or that the spec no longer has it.
    pub cause: String,
    /// What is lost (`ResourceKind::loses`).
    pub loses: &'static str,
}

impl Refusal {
    /// `` `s3_bucket.models` would be replaced: `bucket` changes ("a" -> "b"); this loses ... ``
    pub fn describe(&self) -> String {
        let verb = match self.action {
            Action::Replace => "replaced",
            _ => "destroyed",
        };
        format!(
            "`{}` would be {verb}: {}; this loses {}",
            self.address, self.cause, self.loses
        )
    }
}

/// Refuses `plan` when a protected change is not in `allowed`.
pub fn check(plan: &Plan, allowed: &BTreeSet<Address>) -> Result<(), PlanError> {
    let refused: Vec<Refusal> = plan
        .actions()
        .filter(|c| c.protected && !allowed.contains(&c.address))
        .map(refusal)
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(PlanError::Protected(refused))
    }
}

fn refusal(change: &Change) -> Refusal {
    let forcing: Vec<String> = change
        .attrs
        .iter()
        .filter(|a| a.forces_replacement)
        .map(|a| {
            let before = a.before.as_ref().map_or("null".into(), |v| v.to_string());
            let after = match &a.after {
                Some(super::PlanValue::Known(v)) if !has_pending(v) => v.to_string(),
                _ => "(known after apply)".into(),
            };
            format!("`{}` changes ({before} -> {after})", a.name)
        })
        .collect();
    let cause = match (&change.reason, change.action) {
        (Some(reason), _) => reason.clone(),
        (None, Action::Replace) => forcing.join(", "),
        (None, _) => "the spec no longer has it".into(),
    };
    Refusal {
        address: change.address.clone(),
        action: change.action,
        cause,
        loses: change.kind.loses().unwrap_or("the object"),
    }
}

/// Whether a part of `value` is only known after apply.
fn has_pending(value: &serde_json::Value) -> bool {
    let mut pending = Vec::new();
    pending_paths(value, "", &mut pending);
    !pending.is_empty()
}
