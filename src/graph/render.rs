//! Pictures of the resource graph: Graphviz DOT for docs, Mermaid for pull-request comments.
//! Edges point from a prerequisite to what depends on it: the direction work flows in an apply.

use std::fmt::Write as _;

use super::Dag;
use crate::model::Address;

/// Graphviz DOT, nodes and edges in address order.
pub fn dot(dag: &Dag<Address>) -> String {
    let mut out = String::from("digraph mlops {\n  rankdir = \"LR\";\n  node [shape = box];\n");
    for node in dag.nodes() {
        let _ = writeln!(out, "  \"{node}\";");
    }
    for (before, after) in dag.edges() {
        let _ = writeln!(out, "  \"{before}\" -> \"{after}\";");
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart; node ids are positions, labels the addresses.
pub fn mermaid(dag: &Dag<Address>) -> String {
    let ids: std::collections::BTreeMap<&Address, usize> =
        dag.nodes().enumerate().map(|(i, a)| (a, i)).collect();
    let mut out = String::from("flowchart LR\n");
    for (address, id) in &ids {
        let _ = writeln!(out, "  n{id}[\"{address}\"]");
    }
    for (before, after) in dag.edges() {
        let _ = writeln!(out, "  n{} --> n{}", ids[before], ids[after]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_list_every_edge_once() {
        let mut dag = Dag::new();
        dag.add_edge(Address::new("vpc"), Address::new("subnet.public.a"));
        dag.add_node(Address::new("s3_bucket.models"));
        let dot = dot(&dag);
        assert!(dot.contains("\"vpc\" -> \"subnet.public.a\";"));
        assert!(dot.contains("\"s3_bucket.models\";"));
        let mermaid = mermaid(&dag);
        assert_eq!(
            mermaid,
            "flowchart LR\n  n0[\"s3_bucket.models\"]\n  n1[\"subnet.public.a\"]\n  n2[\"vpc\"]\n  n2 --> n1\n"
        );
    }
}
