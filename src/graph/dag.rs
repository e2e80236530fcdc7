//! A small generic directed acyclic graph, as Terraform's `dag` package: nodes with their
//! prerequisites, a deterministic topological order (ready nodes in key order), a readable cycle
//! report, and the reverse graph for destroy.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

/// Nodes of type `N`, each with the set of nodes that must come before it.
#[derive(Debug, Clone)]
pub struct Dag<N: Ord + Clone> {
    prerequisites: BTreeMap<N, BTreeSet<N>>,
}

/// The graph has a cycle; `path` runs around it and ends where it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle<N> {
    pub path: Vec<N>,
}

impl<N: Display> Cycle<N> {
    pub fn describe(&self) -> String {
        self.path
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

impl<N: Ord + Clone> Default for Dag<N> {
    fn default() -> Self {
        Dag {
            prerequisites: BTreeMap::new(),
        }
    }
}

impl<N: Ord + Clone> Dag<N> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_node(&mut self, node: N) {
        self.prerequisites.entry(node).or_default();
    }

    /// `before` must come before `after`. Both become nodes.
    pub fn add_edge(&mut self, before: N, after: N) {
        self.add_node(before.clone());
        self.prerequisites.entry(after).or_default().insert(before);
    }

    pub fn contains(&self, node: &N) -> bool {
        self.prerequisites.contains_key(node)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &N> {
        self.prerequisites.keys()
    }

    pub fn len(&self) -> usize {
        self.prerequisites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prerequisites.is_empty()
    }

    /// What must come before `node`.
    pub fn prerequisites(&self, node: &N) -> impl Iterator<Item = &N> {
        self.prerequisites.get(node).into_iter().flatten()
    }

    /// Every edge as `(before, after)`, in order.
    pub fn edges(&self) -> impl Iterator<Item = (&N, &N)> {
        self.prerequisites
            .iter()
            .flat_map(|(after, befores)| befores.iter().map(move |b| (b, after)))
    }

    /// For each node, the nodes that wait for it.
    pub fn dependents(&self) -> BTreeMap<N, BTreeSet<N>> {
        let mut out: BTreeMap<N, BTreeSet<N>> =
            self.nodes().map(|n| (n.clone(), BTreeSet::new())).collect();
        for (before, after) in self.edges() {
            out.entry(before.clone()).or_default().insert(after.clone());
        }
        out
    }

    /// The same nodes with every edge turned around: the order of a destroy.
    pub fn reversed(&self) -> Dag<N> {
        let mut reversed = Dag::new();
        for node in self.nodes() {
            reversed.add_node(node.clone());
        }
        for (before, after) in self.edges() {
            reversed.add_edge(after.clone(), before.clone());
        }
        reversed
    }

    /// `nodes` plus everything they need, transitively.
    pub fn with_prerequisites(&self, nodes: impl IntoIterator<Item = N>) -> BTreeSet<N> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<N> = nodes.into_iter().collect();
        while let Some(node) = stack.pop() {
            if out.insert(node.clone()) {
                stack.extend(self.prerequisites(&node).cloned());
            }
        }
        out
    }

    /// Every node after all of its prerequisites; among nodes ready at the same time, the
    /// smallest key first, so the order is the same on every run.
    pub fn topological_order(&self) -> Result<Vec<N>, Cycle<N>> {
        let mut waiting: BTreeMap<&N, usize> = self
            .prerequisites
            .iter()
            .map(|(n, pre)| (n, pre.len()))
            .collect();
        let dependents = self.dependents();
        let mut ready: BTreeSet<&N> = waiting
            .iter()
            .filter(|(_, count)| **count == 0)
            .map(|(n, _)| *n)
            .collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(node) = ready.pop_first() {
            order.push(node.clone());
            for dependent in &dependents[node] {
                let count = waiting.get_mut(dependent).expect("every node is counted");
                *count -= 1;
                if *count == 0 {
                    ready.insert(self.prerequisites.get_key_value(dependent).unwrap().0);
                }
            }
        }
        if order.len() == self.len() {
            Ok(order)
        } else {
            let placed: BTreeSet<&N> = order.iter().collect();
            Err(self.find_cycle(&placed))
        }
    }

    /// Walks prerequisites from an unplaced node until a node repeats.
    fn find_cycle(&self, placed: &BTreeSet<&N>) -> Cycle<N> {
        let start = self
            .nodes()
            .find(|n| !placed.contains(n))
            .expect("a cycle leaves a node unplaced");
        let mut path = vec![start.clone()];
        let mut current = start;
        loop {
            current = self
                .prerequisites(current)
                .find(|n| !placed.contains(n))
                .expect("an unplaced node waits on an unplaced node");
            if let Some(i) = path.iter().position(|n| n == current) {
                let mut cycle: Vec<N> = path[i..].to_vec();
                cycle.reverse();
                cycle.push(cycle[0].clone());
                return Cycle { path: cycle };
            }
            path.push(current.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(edges: &[(&'static str, &'static str)]) -> Dag<&'static str> {
        let mut dag = Dag::new();
        for (before, after) in edges {
            dag.add_edge(*before, *after);
        }
        dag
    }

    #[test]
    fn order_respects_edges_and_breaks_ties_by_key() {
        let d = dag(&[
            ("vpc", "subnet.b"),
            ("vpc", "subnet.a"),
            ("subnet.a", "nat"),
        ]);
        let mut d2 = d.clone();
        d2.add_node("bucket");
        assert_eq!(
            d2.topological_order().unwrap(),
            vec!["bucket", "vpc", "subnet.a", "nat", "subnet.b"]
        );
    }

    #[test]
    fn reversed_order_runs_dependents_first() {
        let d = dag(&[("vpc", "subnet"), ("subnet", "nat")]);
        assert_eq!(
            d.reversed().topological_order().unwrap(),
            vec!["nat", "subnet", "vpc"]
        );
    }

    #[test]
    fn a_cycle_is_reported_as_a_path() {
        let d = dag(&[("a", "b"), ("b", "c"), ("c", "a"), ("x", "a")]);
        let cycle = d.topological_order().unwrap_err();
        assert_eq!(cycle.path.first(), cycle.path.last());
        assert_eq!(cycle.path.len(), 4);
        assert!(cycle.describe().contains("`a`"));
    }

    #[test]
    fn prerequisites_are_collected_transitively() {
        let d = dag(&[("vpc", "subnet"), ("subnet", "nat"), ("bucket", "role")]);
        let set = d.with_prerequisites(["nat"]);
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec!["nat", "subnet", "vpc"]
        );
    }
}
