//! What the commands do, apart from argument parsing and printing: open a stack (spec, graph,
//! state store), lock it, plan, and save plans. One function per operation.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::graph::DesiredGraph;
use crate::model::Address;
use crate::plan::{self, Plan, PlanOptions};
use crate::spec::{self, Spec, StateSpec};
use crate::state::{LocalStore, LockGuard, State, StateStore};
use crate::{Error, Result};

/// A stack ready to work on: its validated spec, desired graph and state store.
pub struct Stack {
    pub spec: Spec,
    pub graph: DesiredGraph,
    pub store: Box<dyn StateStore>,
}

impl Stack {
    /// Loads and validates `<STACK>` (a path or a bare name) and builds its graph.
    pub fn open(arg: &str) -> Result<Stack> {
        let spec = spec::load(&spec::stack_path(arg))?;
        let graph = DesiredGraph::from_spec(&spec)?;
        let store: Box<dyn StateStore> = match &spec.state {
            StateSpec::Local { path } => Box::new(LocalStore::new(path, &spec.stack.name)),
        };
        Ok(Stack { spec, graph, store })
    }

    pub fn lock(&self, operation: &str) -> Result<LockGuard> {
        Ok(self.store.lock(operation)?)
    }

    /// The stored state, or a new empty one for a stack never applied.
    pub fn state(&self) -> Result<State> {
        Ok(self
            .store
            .load()?
            .unwrap_or_else(|| State::new(&self.spec.stack.name)))
    }
}

/// What a plan is asked for.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Read live attributes before diffing.
    pub refresh: bool,
    pub targets: Vec<Address>,
    /// Plan the deletion of everything in the state.
    pub destroy: bool,
}

/// Plans a stack against its state.
pub fn plan(stack: &Stack, request: &PlanRequest) -> Result<Plan> {
    let state = stack.state()?;
    let empty;
    let desired = if request.destroy {
        empty = DesiredGraph::from_resources(Vec::new())?;
        &empty
    } else {
        &stack.graph
    };
    let options = PlanOptions {
        targets: request.targets.clone(),
    };
    Ok(plan::diff(desired, &state, &BTreeSet::new(), &options)?)
}

/// A plan saved by `plan --out`, with what is needed to check it still applies.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub stack_file: String,
    pub plan: Plan,
}

pub fn save_plan(stack: &Stack, plan: &Plan, out: &Path) -> Result<()> {
    let saved = SavedPlan {
        format_version: 1,
        stack_file: stack.spec.path.display().to_string(),
        plan: plan.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&saved).expect("plans serialize");
    std::fs::write(out, bytes).map_err(|source| Error::Io {
        action: "write the plan to",
        path: out.display().to_string(),
        source,
    })
}
