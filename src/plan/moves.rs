//! Renamed addresses: the state's resources given the addresses the spec now uses, before the
//! diff, so that a rename keeps its object instead of deleting one and creating another. Two
//! sources: the spec's `[[moved]]` entries, and for the kinds AWS addresses by name
//! (`ResourceKind::identity_attrs`), a resource that left the spec while one of the same kind
//! and the same name came in: it is the same object (a bucket cannot be two), so it moves.
//! Pure, like the rest of the planner.

use serde_json::Value;

use super::action::Move;
use super::diff::PlanError;
use crate::graph::DesiredGraph;
use crate::model::{resolve, Address, Resource};
use crate::spec::MovedSpec;
use crate::state::{ResourceState, State};

/// `state` with every move made, and the moves in the order made.
pub fn resolve_moves(
    desired: &DesiredGraph,
    state: &State,
    moved: &[MovedSpec],
) -> Result<(State, Vec<Move>), PlanError> {
    let mut state = state.clone();
    let mut moves = Vec::new();
    for entry in moved {
        if !state.resources.contains_key(&entry.from) {
            continue; // moved already, or never created
        }
        if !state.rename(&entry.from, &entry.to) {
            return Err(PlanError::MoveTargetTaken {
                from: entry.from.clone(),
                to: entry.to.clone(),
                location: entry.location.clone(),
            });
        }
        moves.push(Move {
            from: entry.from.clone(),
            to: entry.to.clone(),
            why: format!("`[[moved]]` at {}", entry.location),
        });
    }
    let removed: Vec<Address> = state
        .resources
        .keys()
        .filter(|a| !desired.resources.contains_key(*a))
        .cloned()
        .collect();
    for from in removed {
        let prior = &state.resources[&from];
        let Some((to, why)) = desired
            .resources
            .values()
            .filter(|r| !state.resources.contains_key(&r.address))
            .find_map(|r| same_object(r, prior, &state).map(|why| (r.address.clone(), why)))
        else {
            continue;
        };
        state.rename(&from, &to);
        moves.push(Move { from, to, why });
    }
    Ok((state, moves))
}

/// `` the same `bucket` `models-1` `` when `resource` names the object `prior` is, as far as
/// its name is known now.
fn same_object(resource: &Resource, prior: &ResourceState, state: &State) -> Option<String> {
    let attrs = resource.kind.identity_attrs();
    if resource.kind != prior.kind || attrs.is_empty() {
        return None;
    }
    let lookup = |a: &Address, attr: &str| state.attr(a, attr);
    let mut named = Vec::new();
    for attr in attrs {
        let desired = resolve(resource.attrs.get(*attr)?, &lookup)?;
        if prior.attrs.get(*attr) != Some(&desired) {
            return None;
        }
        let shown = match &desired {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        named.push(format!("`{attr}` `{shown}`"));
    }
    Some(format!("the same {}", named.join(" and ")))
}
