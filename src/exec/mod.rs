//! The executor: walks a plan as a dependency graph of operations, everything independent in
//! flight at once up to `parallelism`, like cargo's dependency queue. The state is saved after
//! every finished operation, so an interruption loses nothing; on a failure, what is in flight
//! finishes, nothing new starts, and every error comes back with the partly-updated state.
//!
//! Operations: a create, update or delete per resource; a replacement is a delete followed by a
//! create, or, when its successor has a new name and the kind allows two at once (node groups),
//! a create followed by the delete: the old object is kept under its deposed address in the
//! state until the new one is ready, and then deleted. A create waits for the creates of the
//! resources it needs; a delete waits until everything that needed the object is deleted or has
//! moved on (updated or replaced).
//!
//! A create records the object, marked `pending`, as soon as the cloud gives its id, and clears
//! the mark once the object is ready: a run stopped during the wait leaves the mark, the next
//! plan makes it an update, and the update resumes the wait before anything that needs the
//! object starts. An update that waits (a version upgrade) is marked before its call the same
//! way.

mod refresh;
mod signal;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::base::{ErrorClass, Op, ProviderError, Reporter, RetryPolicy};
use crate::graph::Dag;
use crate::model::{canonical, resolve, Address, Attrs, ResourceKind};
use crate::plan::{Action, Change, Plan};
use crate::providers::aws::Clients;
use crate::providers::kube::KubeEnv;
use crate::providers::{Ctx, ResourceProvider};
use crate::state::{self, ResourceState, State, StateError, StateStore};

pub use refresh::{refresh, refresh_many, Refreshed};
pub use signal::interrupt;

/// Finds the provider of a resource kind; the AWS one in production, an in-memory one in tests.
pub trait Providers: Send + Sync {
    fn get(&self, kind: crate::model::ResourceKind) -> &dyn ResourceProvider;
}

/// The real providers: AWS, and the cluster for add-ons and Kubernetes objects.
pub struct LiveProviders;

impl Providers for LiveProviders {
    fn get(&self, kind: crate::model::ResourceKind) -> &dyn ResourceProvider {
        crate::providers::provider_for(kind)
    }
}

/// Everything a run needs besides the plan and the state.
pub struct Env<'a> {
    pub providers: &'a dyn Providers,
    pub clients: &'a Clients,
    pub kube: &'a KubeEnv,
    pub stack: &'a str,
    pub reporter: &'a dyn Reporter,
    pub parallelism: usize,
    pub retry: RetryPolicy,
    /// `[timeouts]` of the spec: how long a delete of a kind retries "still in use".
    pub in_use: &'a BTreeMap<ResourceKind, Duration>,
}

impl Env<'_> {
    /// The retry policy of a delete of `kind`: "still in use" retried for the spec's
    /// `[timeouts]`, else the kind's own budget, else the default.
    fn delete_retry(&self, kind: ResourceKind) -> RetryPolicy {
        let budget = self.in_use.get(&kind).copied().or(kind.in_use_budget());
        RetryPolicy {
            budget: budget.unwrap_or(self.retry.budget),
            ..self.retry
        }
    }

    pub fn ctx<'b>(&'b self, address: &'b Address) -> Ctx<'b> {
        Ctx {
            aws: self.clients,
            kube: self.kube,
            stack: self.stack,
            address,
            reporter: self.reporter,
        }
    }
}

/// One failed operation.
#[derive(Debug)]
pub struct ExecError {
    pub address: Address,
    pub op: Op,
    pub error: ProviderError,
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: {} failed: {}",
            self.address,
            self.op.verb(),
            self.error
        )
    }
}

impl std::error::Error for ExecError {}

/// What a run leaves: the state as far as it got, and what went wrong.
#[derive(Debug)]
pub struct Outcome {
    pub state: State,
    pub errors: Vec<ExecError>,
    /// The state could not be saved: the most serious failure, reported apart.
    pub save_error: Option<StateError>,
    /// Stopped by Ctrl-C before everything ran.
    pub interrupted: bool,
    /// Operations finished.
    pub done: usize,
    /// Operations never started because of a failure or an interruption.
    pub skipped: usize,
}

type Node = (Address, Op);

/// The operations of a plan and their order.
fn operations(plan: &Plan, state: &State) -> Dag<Node> {
    let mut dag = Dag::new();
    let changes: BTreeMap<&Address, &Change> = plan.actions().map(|c| (&c.address, c)).collect();
    let create_op = |a: &Address| -> Option<Node> {
        changes.get(a).and_then(|c| match c.action {
            Action::Create | Action::Replace => Some((a.clone(), Op::Create)),
            Action::Update => Some((a.clone(), Op::Update)),
            _ => None,
        })
    };
    for change in changes.values() {
        let address = &change.address;
        if change.action.deletes() {
            let delete = (address.clone(), Op::Delete);
            dag.add_node(delete.clone());
            // Whatever needed the old object goes first, or moves on first. An update that
            // moves on to a replacement needs the new object: it follows the create instead.
            for (other, resource) in &state.resources {
                if !resource.deps.contains(address) {
                    continue;
                }
                if changes.get(other).is_some_and(|c| c.action.deletes()) {
                    dag.add_edge((other.clone(), Op::Delete), delete.clone());
                } else if change.action == Action::Delete {
                    if let Some(moved) = create_op(other) {
                        dag.add_edge(moved, delete.clone());
                    }
                }
            }
        }
        if let Some(node) = create_op(address) {
            dag.add_node(node.clone());
            // An object deposed by an earlier run that stopped half-way: deleted before this
            // replacement deposes another, or once its successor is made.
            let earlier = address.deposed();
            let earlier_deleted = changes.get(&earlier).is_some_and(|c| c.action.deletes());
            if change.creates_first() {
                dag.add_edge(node.clone(), (address.clone(), Op::Delete));
                if earlier_deleted {
                    dag.add_edge((earlier, Op::Delete), node.clone());
                }
            } else {
                if change.action == Action::Replace {
                    dag.add_edge((address.clone(), Op::Delete), node.clone());
                }
                if earlier_deleted && change.action == Action::Create {
                    dag.add_edge(node.clone(), (earlier, Op::Delete));
                }
            }
            for dep in change.needs() {
                if let Some(before) = create_op(dep) {
                    dag.add_edge(before, node.clone());
                }
            }
        }
    }
    dag
}

/// Runs `plan` against `state`, saving through `store` after every operation.
pub async fn apply(plan: &Plan, state: State, store: &dyn StateStore, env: &Env<'_>) -> Outcome {
    let dag = operations(plan, &state);
    let order_check = dag.topological_order();
    let changes: BTreeMap<&Address, &Change> =
        plan.changes.iter().map(|c| (&c.address, c)).collect();
    let shared = Mutex::new(state);
    let mut errors = Vec::new();
    let mut save_error = None;
    if let Err(cycle) = order_check {
        // The planner never makes one; refuse rather than guess an order.
        errors.push(ExecError {
            address: cycle.path[0].0.clone(),
            op: cycle.path[0].1,
            error: ProviderError::fatal(format!(
                "the operations form a cycle: {}",
                cycle
                    .path
                    .iter()
                    .map(|(a, o)| format!("{} {a}", o.verb()))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            )),
        });
        let total = dag.len();
        return Outcome {
            state: shared.into_inner(),
            errors,
            save_error,
            interrupted: false,
            done: 0,
            skipped: total,
        };
    }

    let dependents = dag.dependents();
    let mut waiting: BTreeMap<Node, usize> = dag
        .nodes()
        .map(|n| (n.clone(), dag.prerequisites(n).count()))
        .collect();
    let mut ready: BTreeSet<Node> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(node, _)| node.clone())
        .collect();
    // Told to in-flight waits on an interruption: they stop, their objects stay `pending`.
    let (stop_waits, waits_stopped) = tokio::sync::watch::channel(false);
    let mut running = FuturesUnordered::new();
    let mut stop = false;
    let mut interrupted = false;
    let mut done = 0;
    let ctrl_c = interrupt();
    tokio::pin!(ctrl_c);

    loop {
        while !stop && running.len() < env.parallelism.max(1) {
            let Some(node) = ready.pop_first() else { break };
            let change = changes[&node.0];
            running.push(run_node(node, change, &shared, store, env, &waits_stopped));
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            finished = running.next() => {
                let Some((node, result)) = finished else { break };
                match result {
                    Ok(()) => {
                        done += 1;
                        for next in &dependents[&node] {
                            let count = waiting.get_mut(next).expect("counted");
                            *count -= 1;
                            if *count == 0 {
                                ready.insert(next.clone());
                            }
                        }
                    }
                    Err(NodeError::Provider(error)) => {
                        env.reporter.failed(&node.0, node.1, &error.to_string());
                        errors.push(ExecError { address: node.0, op: node.1, error });
                        stop = true;
                    }
                    Err(NodeError::Save(error)) => {
                        save_error.get_or_insert(error);
                        stop = true;
                    }
                    Err(NodeError::WaitStopped) => env.reporter.warning(&format!(
                        "`{}`: stopped waiting for it to be ready; the next apply resumes the wait",
                        node.0
                    )),
                }
            }
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                stop = true;
                env.reporter.interrupted(running.len());
                let _ = stop_waits.send(true);
            }
        }
    }
    drop(running);
    let skipped = dag.len() - done - errors.len();
    Outcome {
        state: shared.into_inner(),
        errors,
        save_error,
        interrupted,
        done,
        skipped,
    }
}

enum NodeError {
    Provider(ProviderError),
    Save(StateError),
    /// The run was interrupted during a wait until the object is ready: not an error, the
    /// object is recorded `pending` and the next apply resumes the wait.
    WaitStopped,
}

impl From<ProviderError> for NodeError {
    fn from(e: ProviderError) -> Self {
        NodeError::Provider(e)
    }
}

/// Saves the state after a change to it, with outputs recomputed. Saves happen one at a time,
/// in the order of the changes: the state stays locked until its save returns.
async fn commit(
    shared: &Mutex<State>,
    store: &dyn StateStore,
    edit: impl FnOnce(&mut State),
) -> Result<(), NodeError> {
    let mut state = shared.lock().await;
    edit(&mut state);
    state.outputs = state::outputs(&state);
    store.save(&mut state).await.map_err(NodeError::Save)
}

async fn run_node(
    node: Node,
    change: &Change,
    shared: &Mutex<State>,
    store: &dyn StateStore,
    env: &Env<'_>,
    stopped: &Stopped,
) -> (Node, Result<(), NodeError>) {
    let started = Instant::now();
    env.reporter.started(&node.0, node.1);
    let result = match node.1 {
        Op::Delete => delete(change, shared, store, env).await,
        Op::Create => create(change, shared, store, env, stopped).await,
        Op::Update => update(change, shared, store, env, stopped).await,
        Op::Read => unreachable!("reads are not operations of a plan"),
    };
    if result.is_ok() {
        env.reporter.finished(&node.0, node.1, started.elapsed());
    }
    (node, result)
}

/// The desired attributes with every reference resolved from the state.
async fn resolved(change: &Change, shared: &Mutex<State>) -> Result<Attrs, ProviderError> {
    let desired = change
        .desired
        .as_ref()
        .ok_or_else(|| ProviderError::fatal("no desired attributes for a create or update"))?;
    let state = shared.lock().await;
    let lookup = |a: &Address, attr: &str| state.attr(a, attr);
    match resolve(&Value::Object(desired.clone()), &lookup) {
        Some(Value::Object(attrs)) => Ok(attrs),
        _ => Err(ProviderError::fatal(
            "a value this resource needs is not in the state; did a dependency fail?",
        )),
    }
}

async fn prior_at(
    address: &Address,
    shared: &Mutex<State>,
) -> Result<ResourceState, ProviderError> {
    shared
        .lock()
        .await
        .resources
        .get(address)
        .cloned()
        .ok_or_else(|| ProviderError::fatal("the resource is not in the state"))
}

async fn delete(
    change: &Change,
    shared: &Mutex<State>,
    store: &dyn StateStore,
    env: &Env<'_>,
) -> Result<(), NodeError> {
    // The object a successor made first replaces waits at its deposed address.
    let at = if change.creates_first() {
        change.address.deposed()
    } else {
        change.address.clone()
    };
    let prior = prior_at(&at, shared).await?;
    let holder = shared
        .lock()
        .await
        .holder(prior.kind, &prior.id, &at)
        .cloned();
    if change.taken_by.is_some() {
        // The cluster's deletion takes the object: nothing to ask of it (`plan::diff`).
        return commit(shared, store, |state| {
            state.resources.remove(&at);
        })
        .await;
    }
    if let Some(other) = holder {
        // Two addresses hold one object: this one only lets go of it.
        env.reporter.warning(&format!(
            "`{}`: `{}` is also `{other}`, which keeps it: removed from the state, not deleted",
            change.address, prior.id
        ));
        return commit(shared, store, |state| {
            state.resources.remove(&at);
        })
        .await;
    }
    let provider = env.providers.get(prior.kind);
    let ctx = env.ctx(&change.address);
    env.delete_retry(prior.kind)
        .run(env.reporter, &change.address, || {
            provider.delete(&ctx, &prior.id, &prior.attrs)
        })
        .await?;
    commit(shared, store, |state| {
        state.resources.remove(&at);
    })
    .await
}

/// Before a successor is made first: the object it replaces moves to its deposed address, so
/// that the state knows both until the delete.
async fn depose(
    change: &Change,
    shared: &Mutex<State>,
    store: &dyn StateStore,
) -> Result<(), NodeError> {
    commit(shared, store, |state| {
        if let Some(old) = state.resources.remove(&change.address) {
            state.resources.insert(change.address.deposed(), old);
        }
    })
    .await
}

async fn create(
    change: &Change,
    shared: &Mutex<State>,
    store: &dyn StateStore,
    env: &Env<'_>,
    stopped: &Stopped,
) -> Result<(), NodeError> {
    let desired = resolved(change, shared).await?;
    if change.creates_first() {
        depose(change, shared, store).await?;
    }
    let provider = env.providers.get(change.kind);
    let ctx = env.ctx(&change.address);
    let record = |id: &str, attrs: Attrs, pending: bool| ResourceState {
        kind: change.kind,
        id: id.to_string(),
        attrs,
        deps: change.deps.clone(),
        pending,
    };

    let found = env
        .retry
        .run(env.reporter, &change.address, || {
            provider.find(&ctx, &desired)
        })
        .await?;
    if let Some(id) = found {
        let holder = shared
            .lock()
            .await
            .holder(change.kind, &id, &change.address)
            .cloned();
        if let Some(other) = holder {
            return Err(ProviderError::fatal(format!(
                "found `{id}`, but the state holds it as `{other}`: one object has one address; a `[[moved]]` entry (from `{other}` to `{}`) or `mlops state mv` renames it",
                change.address
            ))
            .into());
        }
        // An earlier run created it but did not live to record it: adopt it.
        env.reporter.adopted(&change.address, &id);
        let live = env
            .retry
            .run(env.reporter, &change.address, || {
                provider.read(&ctx, &id, &desired)
            })
            .await?
            .map(canonical)
            .ok_or_else(|| ProviderError::fatal(format!("`{id}` vanished while being adopted")))?;
        // Pending like a new object: the earlier run may have been stopped during the wait.
        commit(shared, store, |s| {
            s.resources
                .insert(change.address.clone(), record(&id, live.clone(), true));
        })
        .await?;
        // An attribute the object does not have yet is a step of the create that the earlier
        // run did not reach (a gateway made but not attached): the update below takes it.
        if let Some(attr) = desired.iter().find(|(k, v)| {
            live.get(*k).is_some_and(|l| !l.is_null() && l != *v)
                && change.kind.forces_replacement(k)
        }) {
            return Err(ProviderError::fatal(format!(
                "found `{id}`, tagged as this resource, but its `{}` differs from the spec; delete it or fix the spec",
                attr.0
            ))
            .into());
        }
        until_ready(provider, &ctx, &id, stopped).await?;
        if differs(&desired, &live) {
            env.retry
                .run(env.reporter, &change.address, || {
                    provider.update(&ctx, &id, &live, &desired)
                })
                .await?;
        }
        return read_back(change, &id, &desired, shared, store, env).await;
    }

    let id = env
        .retry
        .run(env.reporter, &change.address, || {
            provider.create(&ctx, &desired)
        })
        .await?;
    // Recorded before any wait, as pending: a run stopped now still knows the object, and the
    // next plan resumes the wait.
    commit(shared, store, |s| {
        s.resources
            .insert(change.address.clone(), record(&id, desired.clone(), true));
    })
    .await?;
    until_ready(provider, &ctx, &id, stopped).await?;
    read_back(change, &id, &desired, shared, store, env).await
}

async fn update(
    change: &Change,
    shared: &Mutex<State>,
    store: &dyn StateStore,
    env: &Env<'_>,
    stopped: &Stopped,
) -> Result<(), NodeError> {
    let desired = resolved(change, shared).await?;
    let prior = prior_at(&change.address, shared).await?;
    let provider = env.providers.get(change.kind);
    let ctx = env.ctx(&change.address);
    if prior.pending {
        // The wait an earlier run did not finish, resumed; the update only when one is due.
        until_ready(provider, &ctx, &prior.id, stopped).await?;
    }
    if !prior.pending || differs(&desired, &prior.attrs) {
        if change.kind.typical_wait() > Duration::ZERO {
            // An update that waits (a version upgrade: EKS takes up to an hour) is recorded
            // pending first, like a create: the next run resumes the wait instead of asking
            // for the update again, which AWS refuses while one is in progress.
            commit(shared, store, |s| {
                if let Some(r) = s.resources.get_mut(&change.address) {
                    r.pending = true;
                }
            })
            .await?;
        }
        env.retry
            .run(env.reporter, &change.address, || {
                provider.update(&ctx, &prior.id, &prior.attrs, &desired)
            })
            .await?;
    }
    commit(shared, store, |s| {
        if let Some(r) = s.resources.get_mut(&change.address) {
            r.deps = change.deps.clone();
        }
    })
    .await?;
    read_back(change, &prior.id, &desired, shared, store, env).await
}

/// Set when the run is interrupted, for the waits in flight.
type Stopped = tokio::sync::watch::Receiver<bool>;

/// Waits until the new object `id` is ready, or until the run is interrupted: a wait holds
/// nothing that must finish (the object is recorded `pending`), and AWS may take a quarter of
/// an hour, longer than a CI service grants between SIGTERM and SIGKILL.
async fn until_ready(
    provider: &dyn ResourceProvider,
    ctx: &Ctx<'_>,
    id: &str,
    stopped: &Stopped,
) -> Result<(), NodeError> {
    let mut stopped = stopped.clone();
    tokio::select! {
        ready = provider.wait_ready(ctx, id) => Ok(ready?),
        _ = stopped.wait_for(|s| *s) => Err(NodeError::WaitStopped),
    }
}

/// Whether an object with the attributes `live` needs an update to have `desired`.
fn differs(desired: &Attrs, live: &Attrs) -> bool {
    desired.iter().any(|(k, v)| live.get(k) != Some(v))
}

/// Records what the cloud reports after a change, so that the next plan compares with reality.
async fn read_back(
    change: &Change,
    id: &str,
    desired: &Attrs,
    shared: &Mutex<State>,
    store: &dyn StateStore,
    env: &Env<'_>,
) -> Result<(), NodeError> {
    let provider = env.providers.get(change.kind);
    let ctx = env.ctx(&change.address);
    // Right after a create, AWS may not find the object for a while: not found is retried.
    let live = env
        .retry
        .run_on_new(env.reporter, &change.address, || async {
            provider
                .read(&ctx, id, desired)
                .await?
                .ok_or_else(|| ProviderError {
                    class: ErrorClass::NotFound,
                    code: None,
                    message: format!("`{id}` is gone right after it was written"),
                })
        })
        .await?;
    commit(shared, store, |s| {
        s.resources.insert(
            change.address.clone(),
            ResourceState {
                kind: change.kind,
                id: id.to_string(),
                attrs: live,
                deps: change.deps.clone(),
                pending: false,
            },
        );
    })
    .await
}

#[cfg(test)]
mod tests;
