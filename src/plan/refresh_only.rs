//! `--refresh-only`: a plan of what AWS reports that the state does not know (attributes
//! changed outside mlops, objects deleted outside mlops), and the state such a plan writes. It
//! accepts drift instead of undoing it: applying it writes the state and calls nothing in AWS.

use std::collections::BTreeSet;

use serde_json::Value;

use super::action::{Action, AttrChange, Change, Plan, PlanValue};
use crate::model::{canonical, Address};
use crate::state::State;

/// The drift between the `stored` state and the `refreshed` one, as a refresh-only plan:
/// an update per resource whose attributes changed, a delete per resource in `gone`.
pub fn drift(stored: &State, refreshed: &State, gone: &BTreeSet<Address>) -> Plan {
    let changes = stored
        .resources
        .iter()
        .map(|(address, before)| {
            let live = refreshed.resources.get(address);
            let names: BTreeSet<&String> = before
                .attrs
                .keys()
                .chain(live.into_iter().flat_map(|l| l.attrs.keys()))
                .collect();
            let attrs = names
                .into_iter()
                .map(|name| AttrChange {
                    name: name.clone(),
                    before: before.attrs.get(name).cloned(),
                    after: live.map(|l| {
                        PlanValue::Known(l.attrs.get(name).cloned().unwrap_or(Value::Null))
                    }),
                    forces_replacement: false,
                })
                .collect::<Vec<_>>();
            let action = match live {
                None if gone.contains(address) => Action::Delete,
                None => Action::NoOp,
                Some(_) if attrs.iter().any(AttrChange::is_change) => Action::Update,
                Some(_) => Action::NoOp,
            };
            Change {
                address: address.clone(),
                kind: before.kind,
                action,
                attrs,
                desired: live.map(|l| canonical(l.attrs.clone())),
                deps: before.deps.clone(),
                destroy_only: Vec::new(),
                reason: (action == Action::Delete).then(|| "deleted outside mlops".into()),
                protected: false,
                taken_by: None,
            }
        })
        .collect();
    Plan {
        stack: stored.stack.clone(),
        state_lineage: (stored.serial > 0).then(|| stored.lineage.clone()),
        state_serial: stored.serial,
        changes,
        moves: Vec::new(),
        refresh_only: true,
    }
}

/// `state` with a refresh-only plan written into it: the attributes AWS reported, without the
/// objects it no longer has.
pub fn written(mut state: State, plan: &Plan) -> State {
    for change in plan.actions() {
        match change.action {
            Action::Delete => {
                state.resources.remove(&change.address);
            }
            _ => {
                if let (Some(resource), Some(live)) =
                    (state.resources.get_mut(&change.address), &change.desired)
                {
                    resource.attrs = live.clone();
                }
            }
        }
    }
    state
}
