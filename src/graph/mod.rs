//! The desired graph of a stack: its resources keyed by address, and the dependency edges
//! between them. `build` derives it from a spec; `render` draws it for docs and reviews.

mod build;
pub mod dag;
mod device_plugin;
mod endpoints;
mod managed_addons;
pub mod render;
mod security;

use std::collections::{BTreeMap, BTreeSet};

pub use build::{
    cluster_role_name, desired_resources, irsa_role_name, node_role_name, unprotected,
    CLUSTER_POLICIES, IRSA_AUDIENCE, NODE_POLICIES,
};
pub use dag::{Cycle, Dag};

use crate::model::{Address, Resource};
use crate::spec::Spec;

/// The resources a spec asks for, with their dependency graph.
#[derive(Debug, Clone)]
pub struct DesiredGraph {
    pub resources: BTreeMap<Address, Resource>,
    pub dag: Dag<Address>,
    /// Resources of a protected kind whose spec says `protect = false`: an apply may delete or
    /// replace them without `--allow-replace`.
    pub unprotected: BTreeSet<Address>,
}

/// A dependency that names no resource, or a cycle: both are bugs in the graph builder or in
/// references written by the user, and are reported with the addresses involved.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    #[error("`{from}` depends on `{missing}`, which the stack does not define")]
    MissingDependency { from: Address, missing: Address },
    #[error("the resources depend on each other in a cycle: {}", .0.describe())]
    Cycle(Cycle<Address>),
}

impl DesiredGraph {
    pub fn from_resources(list: Vec<Resource>) -> Result<Self, GraphError> {
        let resources: BTreeMap<Address, Resource> =
            list.into_iter().map(|r| (r.address.clone(), r)).collect();
        let mut dag = Dag::new();
        for resource in resources.values() {
            dag.add_node(resource.address.clone());
            for dep in &resource.deps {
                if !resources.contains_key(dep) {
                    return Err(GraphError::MissingDependency {
                        from: resource.address.clone(),
                        missing: dep.clone(),
                    });
                }
                dag.add_edge(dep.clone(), resource.address.clone());
            }
        }
        dag.topological_order().map_err(GraphError::Cycle)?;
        Ok(DesiredGraph {
            resources,
            dag,
            unprotected: BTreeSet::new(),
        })
    }

    pub fn from_spec(spec: &Spec) -> Result<Self, GraphError> {
        let resources = desired_resources(spec);
        let unprotected = unprotected(spec, &resources);
        Ok(DesiredGraph {
            unprotected,
            ..Self::from_resources(resources)?
        })
    }

    /// Resources in dependency order, ties broken by address.
    pub fn ordered(&self) -> Vec<&Resource> {
        self.dag
            .topological_order()
            .expect("checked for cycles when built")
            .iter()
            .map(|a| &self.resources[a])
            .collect()
    }
}
