//! Plans for people: Terraform's shapes (`+ create`, `~ update in-place`, `-/+ replace`,
//! `- destroy`, `(known after apply)`, `# forces replacement`, the summary line), in execution
//! order, coloured only when asked. Also the compact summary used by `apply` and `destroy`.

use std::fmt::Write as _;

use serde_json::Value;

use super::action::{Action, AttrChange, Change, Plan, PlanValue};
use crate::model::{is_pending, ResourceKind};
use crate::ui::Style;

/// The full human-readable plan.
pub fn human(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "No changes. Stack `{}` matches its spec.",
                plan.stack
            ))
        );
        return out;
    }
    out.push_str(if plan.refresh_only {
        "Objects have changed outside mlops. This is a refresh-only plan: applying it writes them into the state and changes nothing in AWS.\n"
    } else {
        "mlops will perform the following actions:\n"
    });
    for change in plan.shown() {
        out.push('\n');
        render_change(&mut out, plan, change, style);
    }
    let _ = writeln!(out, "\n{}", style.bold(&summary_line(plan)));
    out
}

/// `Plan: 3 to add, 1 to change, 0 to destroy.`, with `, 1 to move` when addresses move; for
/// a refresh-only plan, what it writes into the state.
pub fn summary_line(plan: &Plan) -> String {
    let s = plan.summary();
    if plan.refresh_only {
        return format!(
            "Refresh-only plan: {} changed and {} deleted outside mlops, to write into the state.",
            s.change, s.destroy
        );
    }
    let moved = if s.moved > 0 {
        format!(", {} to move", s.moved)
    } else {
        String::new()
    };
    format!(
        "Plan: {} to add, {} to change, {} to destroy{moved}.",
        s.add, s.change, s.destroy
    )
}

/// The `# ...` lines above a change: what happens to it, and why.
fn header(out: &mut String, plan: &Plan, change: &Change, style: Style) {
    let action = change.action;
    let reason = change
        .reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let phrase = match (plan.refresh_only, action) {
        (true, Action::Delete) => "has been deleted outside mlops".into(),
        (true, _) => "has changed outside mlops".into(),
        (false, Action::NoOp) => match plan.moved_from(&change.address) {
            Some(from) => {
                let _ = writeln!(
                    out,
                    "  {}",
                    style.bold(&format!("# {from} has moved to {}", change.address))
                );
                return;
            }
            None => change.phrase().to_string(),
        },
        (false, _) => format!("{}{reason}", change.phrase()),
    };
    let _ = writeln!(
        out,
        "  {}",
        style.bold(&format!("# {} {phrase}", change.address))
    );
    if let Some(from) = plan.moved_from(&change.address) {
        let _ = writeln!(out, "  # (moved from {from})");
    }
    if change.protected {
        let _ = writeln!(
            out,
            "  {}",
            style.red(&format!(
                "# protected: this loses {}; apply refuses it without `--allow-replace {}`",
                change.kind.loses().unwrap_or("the object"),
                change.address
            ))
        );
    }
}

fn render_change(out: &mut String, plan: &Plan, change: &Change, style: Style) {
    let action = change.action;
    header(out, plan, change, style);
    let _ = writeln!(
        out,
        "{} {} {{",
        painted(style, action, &format!("{:>3}", change.symbol())),
        change.address
    );
    let shown: Vec<&AttrChange> = match action {
        Action::Update | Action::Replace | Action::NoOp => {
            change.attrs.iter().filter(|a| a.is_change()).collect()
        }
        // Unset attributes say nothing about a new or a deleted object.
        _ => change.attrs.iter().filter(|a| !a.is_null()).collect(),
    };
    let width = shown.iter().map(|a| a.name.len()).max().unwrap_or(0);
    for attr in &shown {
        if change.kind == ResourceKind::Addon && attr.name == "objects" {
            render_inventory(out, attr, width, style);
        } else {
            render_attr(out, attr, width, style);
        }
    }
    let hidden = change.attrs.len() - shown.len();
    if hidden > 0 && matches!(action, Action::Update | Action::Replace | Action::NoOp) {
        let _ = writeln!(
            out,
            "        # ({hidden} unchanged attribute{} hidden)",
            if hidden == 1 { "" } else { "s" }
        );
    }
    out.push_str("    }\n");
}

fn render_attr(out: &mut String, attr: &AttrChange, width: usize, style: Style) {
    let indent = "      ";
    let name = format!("{:width$}", attr.name);
    let forces = if attr.forces_replacement {
        style.red(" # forces replacement")
    } else {
        String::new()
    };
    match (&attr.before, &attr.after) {
        (None, Some(after)) => {
            let _ = writeln!(
                out,
                "{indent}{} {name} = {}{forces}",
                painted(style, Action::Create, "+"),
                plan_value(after, indent, "+", style)
            );
        }
        (Some(before), None) => {
            let _ = writeln!(
                out,
                "{indent}{} {name} = {}",
                painted(style, Action::Delete, "-"),
                value(before, indent, "-", style)
            );
        }
        (Some(Value::Object(before)), Some(PlanValue::Known(Value::Object(after)))) => {
            let _ = writeln!(
                out,
                "{indent}{} {name} = {{{forces}",
                painted(style, Action::Update, "~")
            );
            map_diff(out, before, after, &format!("{indent}    "), style);
            let _ = writeln!(out, "{indent}  }}");
        }
        (Some(before), Some(after)) => {
            let _ = writeln!(
                out,
                "{indent}{} {name} = {} -> {}{forces}",
                painted(style, Action::Update, "~"),
                value(before, indent, " ", style),
                plan_value(after, indent, " ", style)
            );
        }
        (None, None) => {}
    }
}

/// The most objects an add-on change lists by name; the rest are counted.
const LISTED_OBJECTS: usize = 20;

/// An add-on's inventory: counts of objects added, changed and removed, and the names of those
/// added and removed, rather than hundreds of digests.
fn render_inventory(out: &mut String, attr: &AttrChange, width: usize, style: Style) {
    let indent = "      ";
    let name = format!("{:width$}", attr.name);
    let empty = serde_json::Map::new();
    let before = attr
        .before
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let after = match &attr.after {
        Some(PlanValue::Known(Value::Object(after))) => after,
        Some(PlanValue::Unknown) => {
            let _ = writeln!(
                out,
                "{indent}{} {name} = (known after apply)",
                painted(style, Action::Create, "+")
            );
            return;
        }
        _ => &empty,
    };
    let objects = |n: usize| format!("{n} object{}", if n == 1 { "" } else { "s" });
    let (sign, action, line) = match (attr.before.is_some(), attr.after.is_some()) {
        (false, _) => ("+", Action::Create, objects(after.len())),
        (true, false) => ("-", Action::Delete, objects(before.len())),
        (true, true) => {
            let added = after.keys().filter(|k| !before.contains_key(*k)).count();
            let removed = before.keys().filter(|k| !after.contains_key(*k)).count();
            let changed = after
                .iter()
                .filter(|(k, v)| before.get(*k).is_some_and(|b| b != *v))
                .count();
            (
                "~",
                Action::Update,
                format!(
                    "{added} to add, {changed} to change, {removed} to remove ({} -> {})",
                    objects(before.len()),
                    objects(after.len())
                ),
            )
        }
    };
    let _ = writeln!(
        out,
        "{indent}{} {name} = {line}",
        painted(style, action, sign)
    );
    if action != Action::Update {
        return;
    }
    let listed = |out: &mut String, keys: Vec<&String>, sign: &str, action: Action| {
        for key in keys.iter().take(LISTED_OBJECTS) {
            let _ = writeln!(out, "{indent}    {} {key}", painted(style, action, sign));
        }
        if keys.len() > LISTED_OBJECTS {
            let _ = writeln!(
                out,
                "{indent}      # ... and {} more",
                keys.len() - LISTED_OBJECTS
            );
        }
    };
    listed(
        out,
        after.keys().filter(|k| !before.contains_key(*k)).collect(),
        "+",
        Action::Create,
    );
    listed(
        out,
        before.keys().filter(|k| !after.contains_key(*k)).collect(),
        "-",
        Action::Delete,
    );
}

/// Key by key: added, removed and changed entries, nested objects key by key again, so a change
/// deep inside a manifest shows as that one field; unchanged entries are counted.
fn map_diff(
    out: &mut String,
    before: &serde_json::Map<String, Value>,
    after: &serde_json::Map<String, Value>,
    indent: &str,
    style: Style,
) {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let width = keys.iter().map(|k| quote(k).len()).max().unwrap_or(0);
    let mut unchanged = 0;
    for key in keys {
        let k = format!("{:width$}", quote(key));
        match (before.get(key), after.get(key)) {
            (Some(b), Some(a)) if a == b => unchanged += 1,
            (Some(Value::Object(b)), Some(Value::Object(a)))
                if !is_pending(&Value::Object(a.clone())) =>
            {
                let _ = writeln!(
                    out,
                    "{indent}{} {k} = {{",
                    painted(style, Action::Update, "~")
                );
                map_diff(out, b, a, &format!("{indent}    "), style);
                let _ = writeln!(out, "{indent}  }}");
            }
            (Some(b), Some(a)) => {
                let _ = writeln!(
                    out,
                    "{indent}{} {k} = {} -> {}",
                    painted(style, Action::Update, "~"),
                    value(b, indent, " ", style),
                    value(a, indent, " ", style)
                );
            }
            (None, Some(a)) => {
                let _ = writeln!(
                    out,
                    "{indent}{} {k} = {}",
                    painted(style, Action::Create, "+"),
                    value(a, indent, "+", style)
                );
            }
            (Some(b), None) => {
                let _ = writeln!(
                    out,
                    "{indent}{} {k} = {}",
                    painted(style, Action::Delete, "-"),
                    value(b, indent, "-", style)
                );
            }
            (None, None) => {}
        }
    }
    if unchanged > 0 {
        let _ = writeln!(
            out,
            "{indent}  # ({unchanged} unchanged element{} hidden)",
            if unchanged == 1 { "" } else { "s" }
        );
    }
}

fn plan_value(v: &PlanValue, indent: &str, sign: &str, style: Style) -> String {
    match v {
        PlanValue::Known(v) => value(v, indent, sign, style),
        PlanValue::Unknown => "(known after apply)".to_string(),
    }
}

/// A value as HCL-like text; objects span lines, each entry marked with `sign`.
fn value(v: &Value, indent: &str, sign: &str, style: Style) -> String {
    match v {
        pending if is_pending(pending) => "(known after apply)".to_string(),
        Value::Object(map) if map.is_empty() => "{}".to_string(),
        Value::Object(map) => {
            let map = crate::model::canonical(map.clone());
            let inner = format!("{indent}    ");
            let width = map.keys().map(|k| quote(k).len()).max().unwrap_or(0);
            let mut s = String::from("{\n");
            for (k, item) in &map {
                let mark = match sign {
                    "+" => painted(style, Action::Create, "+"),
                    "-" => painted(style, Action::Delete, "-"),
                    _ => " ".to_string(),
                };
                let _ = writeln!(
                    s,
                    "{inner}{mark} {:width$} = {}",
                    quote(k),
                    value(item, &inner, sign, style)
                );
            }
            s.push_str(&format!("{indent}  }}"));
            s
        }
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| value(i, indent, sign, style))
                .collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// `text` in the colour of `action` (its symbol, its line).
fn painted(style: Style, action: Action, text: &str) -> String {
    match action {
        Action::Create => style.green(text),
        Action::Update => style.yellow(text),
        Action::Delete | Action::Replace => style.red(text),
        Action::NoOp => text.to_string(),
    }
}
