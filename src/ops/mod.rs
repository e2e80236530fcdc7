//! What the commands do, apart from argument parsing and printing: open a stack (spec, graph,
//! state store), lock it, refresh and plan, apply a plan, save and load plans.

mod apply;
mod backend;
mod import;
mod many;
mod saved;
mod state_edit;
mod status;
mod upgrade;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::addons::{self, AddonError, ManifestSource};
use crate::base::{Reporter, RetryPolicy};
use crate::exec::{self, Env, LiveProviders};
use crate::graph::DesiredGraph;
use crate::kube::Cluster;
use crate::manifest::{Object, ObjectRef};
use crate::model::{Address, ResourceKind};
use crate::plan::{self, Plan, PlanOptions};
use crate::providers::aws::{Clients, Settings};
use crate::providers::kube::{KubeEnv, KubeSettings};
use crate::spec::{self, Spec, StateSpec};
use crate::state::{LocalStore, LockGuard, S3Location, S3Store, State, StateStore};
use crate::workloads::Workload;
use crate::Result;

pub use apply::{apply, Applied};
pub use backend::{create_backend, BackendCreated};
pub use import::import;
pub use many::{label, plan_many, stack_files, ALL_STACKS};
pub use saved::{load_plan, save_plan, SavedPlan};
pub use state_edit::{edit_state, StateEdit};
pub use status::{
    status, Gateway, GatewayState, InferenceService, NodeGroup, Status, STATUS_FORMAT_VERSION,
};
pub use upgrade::check_local_version_step;

/// A stack ready to work on: its validated spec, desired graph and state store.
pub struct Stack {
    pub spec: Spec,
    pub graph: DesiredGraph,
    pub store: Box<dyn StateStore>,
}

impl Stack {
    /// Loads and validates `<STACK>` (a path or a bare name) and builds its graph. A remote
    /// state is reached through `endpoint_url` when given (an emulator).
    pub fn open(arg: &str, endpoint_url: Option<&str>) -> Result<Stack> {
        let spec = spec::load(&spec::stack_path(arg))?;
        let graph = DesiredGraph::from_spec(&spec)?;
        if let Some(entry) = spec
            .moved
            .iter()
            .find(|m| !graph.resources.contains_key(&m.to))
        {
            let hint = match plan::closest(&entry.to, graph.resources.keys()) {
                Some(near) => format!("did you mean `{near}`? `mlops graph` lists every address"),
                None => "`to` is the address the stack now gives the object; `mlops graph` lists every address".into(),
            };
            return Err(crate::Error::refused(
                format!(
                    "{}: `[[moved]]` to `{}`, which is not a resource of the stack",
                    entry.location, entry.to
                ),
                hint,
            ));
        }
        let stack_file = spec.path.display().to_string();
        let store: Box<dyn StateStore> = match &spec.state {
            StateSpec::Local { path, legacy } => {
                Box::new(LocalStore::new(path, &spec.stack.name, &stack_file).with_legacy(legacy))
            }
            StateSpec::S3(s3) => Box::new(S3Store::new(
                S3Location {
                    bucket: s3.bucket.clone(),
                    key: s3.key.clone(),
                    region: s3.region.clone(),
                },
                endpoint_url.map(str::to_string),
                s3.lock_lease,
                &spec.stack.name,
                &stack_file,
            )),
        };
        Ok(Stack { spec, graph, store })
    }

    /// Takes the stack's lock for `operation`. A lock taken over (its lease ran out, or its
    /// holder is no longer running on this host) is reported to `reporter`, naming whose it was.
    pub async fn lock(&self, operation: &str, reporter: &dyn Reporter) -> Result<LockGuard> {
        let guard = self.store.lock(operation).await?;
        if let Some(moved) = self.store.relocate(&guard).await? {
            reporter.warning(&moved);
        }
        if let Some(previous) = guard.taken_over() {
            let why = match previous.lease.as_deref() {
                Some(lease) => format!("it was not renewed within its lease of {lease}"),
                None => format!("process {} is no longer running on this host", previous.pid),
            };
            reporter.warning(&format!(
                "took over the lock on `{}` from {}: {why}, so that run is gone; what it left half-done is adopted or redone by this run",
                self.store.describe(),
                previous.describe(),
            ));
        }
        Ok(guard)
    }

    /// Takes the stack's lock for `operation` (saying `locking` to `reporter`, and to it a lock
    /// taken over) and loads the state under it.
    pub async fn lock_state(
        &self,
        operation: &str,
        reporter: &dyn Reporter,
    ) -> Result<(LockGuard, State)> {
        reporter.phase("locking");
        let lock = self.lock(operation, reporter).await?;
        Ok((lock, self.state().await?))
    }

    /// The stored state, or a new empty one for a stack never applied.
    pub async fn state(&self) -> Result<State> {
        Ok(self
            .store
            .load()
            .await?
            .unwrap_or_else(|| State::new(&self.spec.stack.name)))
    }
}

/// The connection to AWS, made on first use: a plan of a stack with an empty state never
/// loads credentials or touches the network.
pub struct Session {
    settings: Settings,
    clients: OnceCell<Clients>,
    /// The cluster side: connected on first use too.
    pub kube: KubeEnv,
    pub reporter: Box<dyn Reporter>,
    pub parallelism: usize,
}

impl Session {
    /// `parallelism` bounds the resources worked on at once; the cap on AWS requests in flight
    /// comes with `settings`.
    pub fn new(
        settings: Settings,
        kube: KubeSettings,
        reporter: Box<dyn Reporter>,
        parallelism: usize,
    ) -> Self {
        Session {
            settings,
            clients: OnceCell::new(),
            kube: KubeEnv::new(kube),
            reporter,
            parallelism,
        }
    }

    pub async fn clients(&self) -> &Clients {
        self.clients
            .get_or_init(|| Clients::connect(&self.settings))
            .await
    }

    /// The executor's environment for the stack of `spec`.
    pub async fn env<'a>(&'a self, spec: &'a Spec) -> Env<'a> {
        Env {
            providers: &LiveProviders,
            clients: self.clients().await,
            kube: &self.kube,
            stack: &spec.stack.name,
            reporter: self.reporter.as_ref(),
            parallelism: self.parallelism,
            retry: RetryPolicy::default(),
            in_use: &spec.timeouts,
        }
    }
}

/// Replaces a stack's state with the state file `file` (`mlops state push`), under the stack's
/// lock (a lock taken over is said to `reporter`). A state of another lineage, or older than the
/// current one, is refused unless `force`. Returns the serial written, which is always above the
/// current one.
pub async fn push_state(
    stack: &Stack,
    reporter: &dyn Reporter,
    file: &std::path::Path,
    force: bool,
) -> Result<u64> {
    let text = std::fs::read_to_string(file).map_err(|source| crate::Error::Io {
        action: "read the state",
        path: file.display().to_string(),
        source,
    })?;
    let mut pushed = crate::state::parse(file, &text, &stack.spec.stack.name)?;
    let _lock = stack.lock("state push", reporter).await?;
    if let Some(current) = stack.store.load().await? {
        if current.lineage != pushed.lineage && !force {
            return Err(crate::Error::refused(
                format!(
                    "`{}` is another history of stack `{}` (lineage `{}`, the current one is `{}`)",
                    file.display(),
                    stack.spec.stack.name,
                    pushed.lineage,
                    current.lineage
                ),
                "push it anyway with `--force` if it is the state that matches the account",
            ));
        }
        if pushed.serial < current.serial && !force {
            return Err(crate::Error::refused(
                format!(
                    "`{}` is older than the current state (serial {} < {})",
                    file.display(),
                    pushed.serial,
                    current.serial
                ),
                "push it anyway with `--force` to roll the state back",
            ));
        }
        pushed.serial = pushed.serial.max(current.serial);
    }
    pushed.outputs = crate::state::outputs(&pushed);
    stack.store.save(&mut pushed).await?;
    Ok(pushed.serial)
}

/// What a plan is asked for.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Read live attributes before diffing.
    pub refresh: bool,
    pub targets: Vec<Address>,
    /// Plan the deletion of everything in the state.
    pub destroy: bool,
    /// Plan an add-on whose manifests cannot be downloaded by its version alone, its objects
    /// not yet known (with a warning): for a plan to read, not one to save or apply.
    pub manifests_optional: bool,
    /// Replace these even though nothing forces it (`--replace`).
    pub replace: Vec<Address>,
    /// Plan only what AWS reports that the state does not know (`--refresh-only`).
    pub refresh_only: bool,
    /// Let an add-on skip minor versions (`--allow-version-skip`).
    pub allow_version_skip: bool,
}

/// Takes the stack's lock for `command`, refreshes (when asked) and plans the stack: what
/// `plan`, `apply` and `destroy` of one stack do first. Returns the lock, which the apply of the
/// plan keeps, the plan and the state it was made from.
pub async fn plan(
    stack: &Stack,
    command: &str,
    request: &PlanRequest,
    session: &Session,
) -> Result<(LockGuard, Plan, State)> {
    check_request(request)?;
    let (lock, stored) = stack.lock_state(command, session.reporter.as_ref()).await?;
    let refreshed = if refreshes(request, &stored) {
        session.reporter.phase("refreshing");
        let env = session.env(&stack.spec).await;
        Some(exec::refresh(stored.clone(), &env).await?)
    } else {
        None
    };
    let (plan, state) = plan_refreshed(stack, request, session, stored, refreshed).await?;
    Ok((lock, plan, state))
}

/// Refuses the flags of `request` that contradict each other.
fn check_request(request: &PlanRequest) -> Result<()> {
    if request.refresh_only && !request.refresh {
        return Err(crate::Error::refused(
            "`--refresh-only` plans what a refresh finds, and `--refresh=false` turns the refresh off",
            "leave out `--refresh=false`",
        ));
    }
    if request.refresh_only && !request.targets.is_empty() {
        return Err(crate::Error::refused(
            "`--refresh-only` reads every resource of the state; `--target` cannot narrow it",
            "leave out `--target`",
        ));
    }
    Ok(())
}

/// Whether the plan of `stored` reads the cloud first: when asked, and when there is anything.
fn refreshes(request: &PlanRequest, stored: &State) -> bool {
    request.refresh && !stored.resources.is_empty()
}

/// The plan of a stack from its `stored` state and, when it was refreshed, what the refresh
/// read (`exec::refresh`); with the state it was made from.
async fn plan_refreshed(
    stack: &Stack,
    request: &PlanRequest,
    session: &Session,
    stored: State,
    refreshed: Option<exec::Refreshed>,
) -> Result<(Plan, State)> {
    let (state, gone) = refreshed.unwrap_or_else(|| (stored.clone(), BTreeSet::new()));
    if request.refresh_only {
        return Ok((plan::drift(&stored, &state, &gone), stored));
    }
    let desired = if request.destroy {
        DesiredGraph::from_resources(Vec::new())?
    } else {
        let optional = request
            .manifests_optional
            .then_some(session.reporter.as_ref());
        let desired = with_inventories(&stack.graph, &session.kube.settings.manifests, optional)?;
        refuse_addon_objects(&desired, &stack.spec.workloads)?;
        desired
    };
    if !request.destroy {
        upgrade::check_version_step(&stack.spec, &state)?;
        upgrade::check_addon_steps(&stack.spec, &state, request.allow_version_skip)?;
    }
    let options = PlanOptions {
        targets: request.targets.clone(),
        replace: request.replace.iter().cloned().collect(),
        moved: stack.spec.moved.clone(),
        whole_destroy: request.destroy,
    };
    let plan = plan::diff(&desired, &state, &gone, &options)?;
    check_cluster_needs(&plan, &desired, &state, stack, session, request.refresh).await?;
    Ok((plan, state))
}

/// Refuses a workload that is also an object of an add-on (same group, kind, namespace and
/// name, whatever the API version): the two field managers would each take the other's fields
/// back on every apply, and a prune or an uninstall of the add-on would delete the workload.
/// An add-on whose objects are not known (manifests not downloaded) is checked at the plan that
/// knows them, still before any write.
fn refuse_addon_objects(desired: &DesiredGraph, workloads: &[Workload]) -> Result<()> {
    let addon_objects: Vec<(&Address, ObjectRef)> = desired
        .resources
        .values()
        .filter(|r| r.kind == ResourceKind::Addon)
        .flat_map(|r| {
            addons::render::inventory_refs(&r.attrs)
                .into_iter()
                .map(move |object| (&r.address, object))
        })
        .collect();
    let by_key: BTreeMap<_, _> = addon_objects
        .iter()
        .map(|(addon, object)| (object.key(), (addon, object)))
        .collect();
    let shared: Vec<String> = workloads
        .iter()
        .filter_map(|w| {
            let (addon, object) = by_key.get(&w.object.id.key())?;
            Some(format!(
                "`{}` ({}) is {}, an object of `{addon}` too",
                w.address(),
                w.location(),
                object.short()
            ))
        })
        .collect();
    if shared.is_empty() {
        return Ok(());
    }
    Err(crate::Error::refused(
        shared.join("\n"),
        "an add-on's objects are the add-on's: set what it lets you set in the stack file's \
         `[addons.*]` table, or give the workload another name",
    ))
}

/// An object a plan applies, with how messages name it.
struct Needed {
    object: ObjectRef,
    named: String,
}

/// Refuses, at plan time, what would fail halfway through an apply: an add-on version or a
/// workload that needs an API the cluster does not serve (say `policy/v1` on an old cluster),
/// and a workload in a namespace that nothing creates and the cluster does not have. Kinds of
/// the CRDs that come with the add-ons and workloads are left out. The cluster is asked only by
/// a refreshing plan with a cluster to ask (the stack's, once created, or the `--kubeconfig`
/// one); without one, a namespace that nothing creates is refused outright.
async fn check_cluster_needs(
    plan: &Plan,
    desired: &DesiredGraph,
    state: &State,
    stack: &Stack,
    session: &Session,
    refresh: bool,
) -> Result<()> {
    let applies: Vec<&plan::Change> = plan
        .actions()
        .filter(|c| c.action.creates() || c.action == plan::Action::Update)
        .collect();
    let workloads: BTreeMap<Address, &Workload> = stack
        .spec
        .workloads
        .iter()
        .map(|w| (w.address(), w))
        .collect();
    let mut needed = Vec::new();
    for change in &applies {
        match (change.kind, &change.desired) {
            (ResourceKind::Addon, Some(attrs)) => {
                for object in addons::render::inventory_refs(attrs) {
                    needed.push(Needed {
                        named: format!("{} of `{}`", object.short(), change.address),
                        object,
                    });
                }
            }
            (ResourceKind::KubeObject, Some(_)) => {
                if let Some(w) = workloads.get(&change.address) {
                    needed.push(Needed {
                        object: w.object.id.clone(),
                        named: format!("{} ({})", w.object.id.short(), w.location()),
                    });
                }
            }
            _ => {}
        }
    }
    if needed.is_empty() {
        return Ok(());
    }
    let addon_refs: Vec<ObjectRef> = desired
        .resources
        .values()
        .filter(|r| r.kind == ResourceKind::Addon)
        .flat_map(|r| addons::render::inventory_refs(&r.attrs))
        .collect();
    let workload_refs = stack.spec.workloads.iter().map(|w| &w.object.id);
    let crd_groups: BTreeSet<&str> = addon_refs
        .iter()
        .chain(workload_refs.clone())
        .filter(|r| r.is_crd())
        .filter_map(|r| r.name.split_once('.').map(|(_, group)| group))
        .collect();
    // Namespaces something makes: the add-ons also ensure those their objects live in.
    let mut made: BTreeSet<&str> = addon_refs
        .iter()
        .filter_map(|r| r.namespace.as_deref())
        .chain(
            addon_refs
                .iter()
                .chain(workload_refs)
                .filter(|r| r.is_namespace())
                .map(|r| r.name.as_str()),
        )
        .collect();
    made.extend(stack.spec.irsa.values().map(|i| i.namespace.as_str()));
    made.extend(crate::manifest::SYSTEM_NAMESPACES);
    let unmade: Vec<(&Workload, &str)> = applies
        .iter()
        .filter_map(|c| workloads.get(&c.address))
        .filter_map(|w| Some((*w, w.object.id.namespace.as_deref()?)))
        .filter(|(_, ns)| !made.contains(ns))
        .collect();

    let cluster_name = state.attr(&Address::new("eks_cluster"), "name");
    let can_ask = refresh && (session.kube.settings.kubeconfig.is_some() || cluster_name.is_some());
    let cluster = if can_ask {
        connect(
            stack,
            session,
            cluster_name,
            "check what the add-ons and workloads need of the cluster",
        )
        .await?
    } else {
        None
    };

    let mut missing = Vec::new();
    for (workload, namespace) in unmade {
        let exists = match &cluster {
            Some(cluster) => cluster
                .get(&Object::namespace(namespace).id)
                .await?
                .is_some(),
            None => false,
        };
        if !exists {
            missing.push(format!(
                "{}: {} is in the namespace `{namespace}`, which no manifest of the stack creates{}",
                workload.location(),
                workload.object.id.short(),
                if cluster.is_some() {
                    " and the cluster does not have"
                } else {
                    ""
                },
            ));
        }
    }
    if !missing.is_empty() {
        return Err(crate::Error::refused(
            missing.join("\n"),
            "add the Namespace to the workloads (`apiVersion: v1`, `kind: Namespace`), or correct `metadata.namespace`",
        ));
    }

    let Some(cluster) = cluster else {
        return Ok(());
    };
    for Needed { object, named } in needed {
        if crd_groups.contains(object.group_version().0) {
            continue;
        }
        if cluster
            .served(&object.api_version, &object.kind, false)
            .await?
            .is_none()
        {
            return Err(crate::kube::KubeError::NotServed {
                object: named,
                api_version: object.api_version.clone(),
                kind: object.kind.clone(),
            }
            .into());
        }
    }
    Ok(())
}

/// The cluster, connected as the providers of `addon.*` and `k8s.*` connect: the `--kubeconfig`
/// one, else the EKS cluster named `cluster_name` (from the state). `None` when that EKS
/// cluster does not exist. A failure to connect is refused as `cannot <doing>: ...`, with the
/// provider's hint.
async fn connect(
    stack: &Stack,
    session: &Session,
    cluster_name: Option<serde_json::Value>,
    doing: &str,
) -> Result<Option<Arc<Cluster>>> {
    let env = session.env(&stack.spec).await;
    let address = Address::new("addon");
    let mut attrs = crate::model::Attrs::new();
    if let Some(name) = cluster_name {
        attrs.insert("cluster".into(), name);
    }
    session
        .kube
        .cluster(&env.ctx(&address), &attrs)
        .await
        .map_err(|e| crate::Error::Refused {
            hint: e.hint().map(str::to_string),
            message: format!("cannot {doing}: {}", e.message),
        })
}

/// The desired graph with each add-on's inventory (its objects' references and digests), read
/// from its manifests: the plan compares them with the state's to tell what an upgrade adds,
/// changes and removes, and an unchanged add-on makes no call to the cluster. With `offline`, a
/// release whose manifests cannot be downloaded keeps an inventory that is not known yet (a
/// reference that nothing fills: the plan shows `(known after apply)`), and the reporter is told
/// how to get them; a digest that does not match is refused all the same.
fn with_inventories(
    graph: &DesiredGraph,
    source: &ManifestSource,
    offline: Option<&dyn Reporter>,
) -> Result<DesiredGraph> {
    let mut graph = graph.clone();
    for resource in graph.resources.values_mut() {
        if resource.kind != ResourceKind::Addon {
            continue;
        }
        let Some(release) = addons::render::release_of(&resource.attrs) else {
            continue; // validation has refused versions the catalogue does not have
        };
        let inventory = match (
            addons::render::configured(release, source, &resource.attrs),
            offline,
        ) {
            (Ok(objects), _) => serde_json::json!(addons::render::inventory(&objects)),
            (Err(e @ AddonError::Download { .. }), Some(reporter)) => {
                reporter.warning(&format!(
                    "{}: {e}; its objects are not known yet: run `mlops addons fetch --out DIR` where there is network and plan with `--manifests-dir DIR` to see them (an apply needs them)",
                    resource.address
                ));
                crate::model::reference(&resource.address, "objects (manifests not downloaded)")
            }
            (Err(e), _) => return Err(crate::Error::Addon(e)),
        };
        resource.attrs.insert("objects".into(), inventory);
    }
    Ok(graph)
}
