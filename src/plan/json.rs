//! The machine-readable plan of `mlops plan --json`, documented in docs/plan-json.md.
//! Changing its shape is a breaking change: bump `format_version`.

use serde_json::{json, Map, Value};

use super::action::{Change, Plan, PlanValue};
use crate::model::{canonical, pending_paths};

pub const JSON_FORMAT_VERSION: &str = "1.1";

pub fn to_json(plan: &Plan) -> Value {
    let summary = plan.summary();
    let document = json!({
        "format_version": JSON_FORMAT_VERSION,
        "stack": plan.stack,
        "state": { "lineage": plan.state_lineage, "serial": plan.state_serial },
        "resource_changes": plan.changes.iter().map(|c| change(plan, c)).collect::<Vec<_>>(),
        "summary": {
            "add": summary.add,
            "change": summary.change,
            "destroy": summary.destroy,
            "move": summary.moved,
        },
        "changes_present": !summary.is_empty(),
        "refresh_only": plan.refresh_only,
        "moves": plan.moves.iter().map(|m| json!({
            "from": m.from, "to": m.to, "why": m.why,
        })).collect::<Vec<_>>(),
    });
    // Keys in order, whatever serde_json's build features: the output is a stable contract.
    match document {
        Value::Object(map) => Value::Object(canonical(map)),
        other => other,
    }
}

fn change(plan: &Plan, c: &Change) -> Value {
    let mut before = Map::new();
    let mut after = Map::new();
    let mut after_unknown = Vec::new();
    let mut replace_paths = Vec::new();
    for attr in &c.attrs {
        if let Some(b) = &attr.before {
            before.insert(attr.name.clone(), b.clone());
        }
        match &attr.after {
            Some(PlanValue::Known(a)) => {
                // Parts still unknown are null in `after`, their paths in `after_unknown`.
                let mut pending = Vec::new();
                pending_paths(a, &attr.name, &mut pending);
                let mut known = a.clone();
                for path in &pending {
                    if let Some(part) = known.pointer_mut(&path[attr.name.len()..]) {
                        *part = Value::Null;
                    }
                }
                after_unknown.extend(pending.into_iter().filter(|p| p != &attr.name));
                after.insert(attr.name.clone(), known);
            }
            Some(PlanValue::Unknown) => after_unknown.push(attr.name.clone()),
            None => {}
        }
        if attr.forces_replacement {
            replace_paths.push(attr.name.clone());
        }
    }
    let creates_or_keeps = c.desired.is_some();
    json!({
        "address": c.address,
        "kind": c.kind,
        "action": c.action.name(),
        "reason": c.reason,
        "protected": c.protected,
        "previous_address": plan.moved_from(&c.address),
        "depends_on": c.deps,
        "before": (!before.is_empty() || !c.action.creates()).then_some(before),
        "after": creates_or_keeps.then_some(after),
        "after_unknown": after_unknown,
        "replace_paths": replace_paths,
    })
}
