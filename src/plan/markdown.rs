//! `mlops plan --format markdown`: a plan for a pull-request comment: the summary, a table of
//! what changes, the full plan folded away, and a Mermaid picture of the changes and the order
//! between them.

use std::fmt::Write as _;

use super::action::Plan;
use super::render;
use crate::graph::{render::mermaid, Dag};
use crate::ui::Style;

pub fn markdown(plan: &Plan) -> String {
    let mut out = format!("### `mlops plan`: stack `{}`\n\n", plan.stack);
    if !plan.has_changes() {
        out.push_str("No changes. The stack matches its spec.\n");
        return out;
    }
    let _ = writeln!(out, "**{}**\n", render::summary_line(plan));
    out.push_str("| | resource | action |\n|---|---|---|\n");
    for change in plan.shown() {
        let mut notes: Vec<String> = change.reason.iter().cloned().collect();
        if let Some(from) = plan.moved_from(&change.address) {
            notes.push(format!("moved from `{from}`"));
        }
        if change.protected {
            notes.push(format!(
                "**protected**: needs `--allow-replace {}`",
                change.address
            ));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {}{notes} |",
            change.symbol(),
            change.address,
            change.action.name()
        );
    }
    let _ = write!(
        out,
        "\n<details><summary>Full plan</summary>\n\n```\n{}```\n\n</details>\n",
        render::human(plan, Style::PLAIN)
    );

    // The changes, and the order between them.
    let mut dag = Dag::new();
    let changing: Vec<_> = plan.actions().map(|c| &c.address).collect();
    for change in plan.actions() {
        dag.add_node(change.address.clone());
        for dep in change.deps.iter().filter(|d| changing.contains(d)) {
            dag.add_edge(dep.clone(), change.address.clone());
        }
    }
    let _ = write!(out, "\n```mermaid\n{}```\n", mermaid(&dag));
    out
}
