//! The planner: a pure function from the desired graph and the (refreshed) state to a plan.
//! No I/O, no clock, no randomness: the same inputs always give the same plan.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::action::{Action, AttrChange, Change, Plan, PlanValue};
use super::gate::Refusal;
use super::moves::resolve_moves;
use crate::graph::{Dag, DesiredGraph};
use crate::model::{
    canonical, is_pending, resolve_known, settled, zones, Address, Resource, ResourceKind,
};
use crate::spec::MovedSpec;
use crate::state::{ResourceState, State};

/// What a plan is asked to cover.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Only these resources, plus what they need (or, for deletions, what needs them).
    pub targets: Vec<Address>,
    /// Replace these even though no attribute forces it (`--replace`).
    pub replace: BTreeSet<Address>,
    /// The spec's `[[moved]]` entries.
    pub moved: Vec<MovedSpec>,
    /// The deletion of the whole stack (`destroy`): the user's explicit word, so no change of
    /// it is protected.
    pub whole_destroy: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("`--target {address}` names no resource of the stack or its state")]
    UnknownTarget {
        address: Address,
        suggestion: Option<Address>,
    },
    #[error("the state's recorded dependencies form a cycle: {0}")]
    StateCycle(String),
    #[error("`--replace {address}` names no resource that the stack has and the state holds")]
    UnknownReplace {
        address: Address,
        suggestion: Option<Address>,
    },
    #[error("{location}: `[[moved]]` from `{from}` to `{to}`, but the state holds both")]
    MoveTargetTaken {
        from: Address,
        to: Address,
        location: String,
    },
    #[error("the plan deletes or replaces protected resources; nothing was changed:\n{}",
        .0.iter().map(|r| format!("  {}", r.describe())).collect::<Vec<_>>().join("\n"))]
    Protected(Vec<Refusal>),
}

impl PlanError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PlanError::UnknownTarget {
                suggestion: Some(s),
                ..
            } => Some(format!(
                "did you mean `{s}`? `mlops graph` lists every address"
            )),
            PlanError::UnknownTarget { .. } => {
                Some("`mlops graph` and `mlops state list` list every address".into())
            }
            PlanError::UnknownReplace {
                suggestion: Some(s),
                ..
            } => Some(format!("did you mean `{s}`?")),
            PlanError::UnknownReplace { .. } => {
                Some("`mlops state list` lists the addresses in the state".into())
            }
            PlanError::MoveTargetTaken { from, to, .. } => Some(format!(
                "if the move was made already, remove the entry; otherwise `mlops state rm <STACK> {to}` forgets the object at `{to}` (it stays in AWS), or `mlops state rm <STACK> {from}` the one at `{from}`"
            )),
            PlanError::Protected(refused) => Some(format!(
                "if you mean it, name each one: {}; or set `protect = false` in its table of the spec. To give an object a new address without touching it, add a `[[moved]]` entry or run `mlops state mv`",
                refused
                    .iter()
                    .map(|r| format!("`--allow-replace {}`", r.address))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            PlanError::StateCycle(_) => None,
        }
    }
}

/// Diffs `desired` against `state`. `gone` names resources that a refresh found deleted
/// outside mlops (already removed from `state`), so that the plan can say why it re-creates them.
pub fn diff(
    desired: &DesiredGraph,
    state: &State,
    gone: &BTreeSet<Address>,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let (moved_state, moves) = resolve_moves(desired, state, &options.moved)?;
    let state = &moved_state;
    for address in &options.replace {
        if !desired.resources.contains_key(address) || !state.resources.contains_key(address) {
            return Err(PlanError::UnknownReplace {
                address: address.clone(),
                suggestion: closest(
                    address,
                    state
                        .resources
                        .keys()
                        .filter(|a| desired.resources.contains_key(*a)),
                ),
            });
        }
    }
    let mut planned: BTreeMap<Address, Action> = BTreeMap::new();
    let mut changes = Vec::new();
    // Objects AWS reports failed at their create: replaced, and not protected (they never served).
    let mut failed = BTreeSet::new();
    for resource in desired.ordered() {
        let prior = state.resources.get(&resource.address);
        let mut change = diff_one(resource, prior, state, &planned);
        change.reason = match change.action {
            Action::Create if gone.contains(&resource.address) => {
                Some("deleted outside mlops".to_string())
            }
            Action::Update => waits_for(resource, &planned),
            // A cluster that keeps its zones but cannot: the plan says why it is made anew.
            Action::Replace => zones::lost(&resource.attrs, prior.map(|p| &p.attrs)),
            _ => None,
        };
        if let Some(prior) = prior {
            if let Some(why) = prior.kind.failed_create(&prior.attrs) {
                change.action = Action::Replace;
                change.reason = Some(format!("AWS reports its create failed: {why}"));
                failed.insert(resource.address.clone());
            } else if prior.pending && change.action != Action::Replace {
                change.action = Action::Update;
                change.reason = Some(resumed_wait(prior));
            }
        }
        if options.replace.contains(&resource.address) && change.action != Action::Replace {
            change.action = Action::Replace;
            change.reason = Some("replacement asked for with `--replace`".into());
        }
        planned.insert(resource.address.clone(), change.action);
        changes.push(change);
    }

    // Resources in the state that the spec no longer has: deleted, dependents first.
    let state_dag = state_dag(state);
    let order = state_dag
        .reversed()
        .topological_order()
        .map_err(|c| PlanError::StateCycle(c.describe()))?;
    for address in order {
        if desired.resources.contains_key(&address) {
            continue;
        }
        let prior = &state.resources[&address];
        changes.push(Change {
            address: address.clone(),
            kind: prior.kind,
            action: Action::Delete,
            attrs: canonical(prior.attrs.clone())
                .iter()
                .map(|(name, before)| AttrChange {
                    name: name.clone(),
                    before: Some(before.clone()),
                    after: None,
                    forces_replacement: false,
                })
                .collect(),
            desired: None,
            deps: prior.deps.clone(),
            destroy_only: Vec::new(),
            // Another address keeps the object: the delete only forgets this one.
            reason: state.same_object(&address).map(|other| {
                format!("the same object is `{other}`, which keeps it: only forgotten")
            }),
            protected: false,
            taken_by: None,
        });
    }
    if !options.whole_destroy {
        for change in &mut changes {
            change.protected = change.action.deletes()
                && change.kind.loses().is_some()
                && !desired.unprotected.contains(&change.address)
                && state.same_object(&change.address).is_none()
                && !failed.contains(&change.address);
        }
    }

    if !options.targets.is_empty() {
        let keep = targeted(desired, &state_dag, &changes, &options.targets)?;
        changes.retain(|c| keep.contains(&c.address));
    }
    taken_by_the_cluster(&mut changes);

    Ok(Plan {
        stack: state.stack.clone(),
        state_lineage: (state.serial > 0).then(|| state.lineage.clone()),
        state_serial: state.serial,
        changes,
        moves,
        refresh_only: false,
    })
}

/// When the plan deletes the EKS cluster, the deletes of the add-ons only forget them: the
/// cluster's deletion takes everything in it, and an uninstall first (custom resources waited
/// for, webhooks, CRDs, namespaces) would only make the destroy slower and able to hang on a
/// finalizer. What must go while the cluster runs still does: `cluster_cleanup` (the AWS load
/// balancers of Services and Ingresses) and the stack's own Kubernetes objects (a claim's EBS
/// volume is deleted by its CSI driver, in the cluster).
fn taken_by_the_cluster(changes: &mut [Change]) {
    let Some(cluster) = changes
        .iter()
        .find(|c| c.kind == ResourceKind::EksCluster && c.action.deletes())
        .map(|c| c.address.clone())
    else {
        return;
    };
    let addons = changes
        .iter_mut()
        .filter(|c| c.kind == ResourceKind::Addon && c.action == Action::Delete);
    for change in addons {
        change.reason = Some(format!(
            "`{cluster}` is deleted, and everything in the cluster with it: only forgotten"
        ));
        change.taken_by = Some(cluster.clone());
    }
}

fn diff_one(
    resource: &Resource,
    prior: Option<&ResourceState>,
    state: &State,
    planned: &BTreeMap<Address, Action>,
) -> Change {
    // A reference is known when its target exists and stays: not created, not replaced.
    let lookup = |address: &Address, attr: &str| -> Option<Value> {
        match planned.get(address) {
            Some(action) if action.creates() => None,
            _ => state.attr(address, attr),
        }
    };
    // Values set only at creation are, for an object that exists, what it has.
    let desired = settled(&resource.attrs, prior.map(|p| &p.attrs));
    let attrs: Vec<AttrChange> = canonical(desired.clone())
        .iter()
        .map(|(name, value)| {
            // Known where it can be: only the parts that wait on a new resource are unknown.
            let after = match resolve_known(value, &lookup) {
                pending if is_pending(&pending) => PlanValue::Unknown,
                partial => PlanValue::Known(partial),
            };
            let before = prior.and_then(|p| p.attrs.get(name).cloned());
            let mut change = AttrChange {
                name: name.clone(),
                before,
                after: Some(after),
                forces_replacement: false,
            };
            let after = match &change.after {
                Some(PlanValue::Known(v)) => Some(v),
                _ => None,
            };
            change.forces_replacement = prior.is_some()
                && change.is_change()
                && resource
                    .kind
                    .replaces_for(name, change.before.as_ref(), after);
            change
        })
        .collect();
    let action = match prior {
        None => Action::Create,
        Some(_) if attrs.iter().any(|a| a.forces_replacement) => Action::Replace,
        Some(_) if attrs.iter().any(AttrChange::is_change) => Action::Update,
        Some(_) => Action::NoOp,
    };
    Change {
        address: resource.address.clone(),
        kind: resource.kind,
        action,
        attrs,
        desired: Some(desired),
        deps: resource.deps.clone(),
        destroy_only: resource.destroy_only.clone(),
        reason: None,
        protected: false,
        taken_by: None,
    }
}

/// The dependency graph recorded in the state (dependencies on resources no longer in the state
/// are dropped: they are gone already).
pub fn state_dag(state: &State) -> Dag<Address> {
    let mut dag = Dag::new();
    for (address, resource) in &state.resources {
        dag.add_node(address.clone());
        for dep in resource
            .deps
            .iter()
            .filter(|d| state.resources.contains_key(*d))
        {
            dag.add_edge(dep.clone(), address.clone());
        }
    }
    dag
}

/// The addresses a targeted plan keeps: each target with what it needs; for a target that is
/// deleted, also what depends on it in the state (it has to go first).
fn targeted(
    desired: &DesiredGraph,
    state_dag: &Dag<Address>,
    changes: &[Change],
    targets: &[Address],
) -> Result<BTreeSet<Address>, PlanError> {
    let deleted: BTreeSet<&Address> = changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| &c.address)
        .collect();
    let mut keep = BTreeSet::new();
    for target in targets {
        if desired.dag.contains(target) {
            keep.extend(desired.dag.with_prerequisites([target.clone()]));
        } else if deleted.contains(target) {
            keep.extend(state_dag.reversed().with_prerequisites([target.clone()]));
        } else {
            return Err(PlanError::UnknownTarget {
                address: target.clone(),
                suggestion: closest(target, desired.dag.nodes().chain(state_dag.nodes())),
            });
        }
    }
    Ok(keep)
}

/// The known address closest to a mistyped one, when it is close enough to be a typo.
pub fn closest<'a>(wrong: &Address, known: impl Iterator<Item = &'a Address>) -> Option<Address> {
    crate::ui::diagnostic::closest(wrong.as_str(), known.map(Address::as_str)).map(Address::new)
}

/// Why an object created by an earlier run is updated: that run stopped before the object was
/// ready, and this one resumes the wait (`resume the wait until it is ready (CREATING)`).
fn resumed_wait(prior: &ResourceState) -> String {
    let status = prior
        .attrs
        .get("status")
        .and_then(Value::as_str)
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    format!("resume the wait until it is ready{status}: the run that created or changed it stopped first")
}

/// What an update waits for, as the plan says it: the resources it needs that change in the
/// same plan (an upgrade's node groups wait for the control plane, its add-ons for the nodes).
fn waits_for(resource: &Resource, planned: &BTreeMap<Address, Action>) -> Option<String> {
    let changing: Vec<String> = resource
        .deps
        .iter()
        .filter(|d| !resource.destroy_only.contains(d))
        .filter(|d| {
            planned
                .get(*d)
                .is_some_and(|a| matches!(a, Action::Update | Action::Create | Action::Replace))
        })
        .map(|d| format!("`{d}`"))
        .collect();
    (!changing.is_empty()).then(|| format!("waits for {}", changing.join(", ")))
}
