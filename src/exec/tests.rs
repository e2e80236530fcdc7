//! The executor against an in-memory cloud: dependency order, bounded parallelism, a state
//! save after every operation, failures that stop new work but keep finished work, retries of
//! "not yet" errors, and destroy order. No network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::base::ErrorClass;
use crate::graph::DesiredGraph;
use crate::model::ResourceKind;
use crate::plan::{diff, PlanOptions};
use crate::providers::kube::KubeEnv;
use crate::providers::{ProviderResult, Read};
use crate::state::{LockGuard, LockInfo};

const EXAMPLE: &str = include_str!("../../stacks/example.toml");

/// A cloud in memory that records what it was asked to do.
#[derive(Default)]
struct FakeCloud {
    objects: Mutex<BTreeMap<String, Attrs>>,
    /// `create vpc`, `delete subnet.public.us-west-2a`, ... in the order they finished.
    log: Mutex<Vec<String>>,
    next_id: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Creates and updates of these addresses fail for good.
    fail: BTreeSet<String>,
    /// Creates of these addresses fail as "not yet" this many times first.
    not_yet: Mutex<BTreeMap<String, usize>>,
    /// What `find` answers for an address: an object tagged as it.
    found: BTreeMap<String, String>,
    /// Objects of these addresses take a while to be ready: `ready <address>` is logged when
    /// their wait ends.
    slow: BTreeSet<String>,
    /// Deletes of these addresses answer `DependencyViolation` until the run has lasted this
    /// long: what still uses the object (a deleted cluster's network interfaces) goes slowly.
    in_use_for: BTreeMap<String, Duration>,
    started: Mutex<Option<tokio::time::Instant>>,
    /// How many objects one read reads (`reads_at_once`; 0 is 1).
    reads_at_once: usize,
    /// The ids of each `read_many`, in the order they were asked.
    reads: Mutex<Vec<Vec<String>>>,
    /// A read of any of these ids fails for good (AccessDenied).
    unreadable: Mutex<BTreeSet<String>>,
}

impl FakeCloud {
    async fn work(&self, entry: String) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(entry);
    }

    fn position(&self, entry: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("`{entry}` never happened"))
    }
}

struct FakeProviders<'a>(&'a FakeCloud);

#[async_trait]
impl ResourceProvider for FakeProviders<'_> {
    fn kind(&self) -> ResourceKind {
        ResourceKind::Vpc
    }

    async fn read(&self, _: &Ctx<'_>, id: &str, _: &Attrs) -> ProviderResult<Option<Attrs>> {
        Ok(self
            .0
            .objects
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .map(|mut attrs| {
                // Computed values, as the cloud would add them; never over a desired one.
                attrs
                    .entry("arn")
                    .or_insert(json!(format!("arn:fake:{id}")));
                attrs
                    .entry("oidc_issuer")
                    .or_insert(json!("https://oidc.fake/id/1"));
                attrs
            }))
    }

    fn reads_at_once(&self) -> usize {
        self.0.reads_at_once.max(1)
    }

    async fn read_many(
        &self,
        ctx: &Ctx<'_>,
        objects: &[Read<'_>],
    ) -> ProviderResult<Vec<Option<Attrs>>> {
        let ids: Vec<String> = objects.iter().map(|o| o.id.to_string()).collect();
        let refused = (ids.iter()).any(|id| self.0.unreadable.lock().unwrap().contains(id));
        self.0.reads.lock().unwrap().push(ids);
        if refused {
            return Err(ProviderError::fatal("AccessDenied: not allowed to read"));
        }
        let mut live = Vec::new();
        for object in objects {
            live.push(self.read(ctx, object.id, object.prior).await?);
        }
        Ok(live)
    }

    async fn find(&self, ctx: &Ctx<'_>, _: &Attrs) -> ProviderResult<Option<String>> {
        Ok(self.0.found.get(ctx.address.as_str()).cloned())
    }

    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String> {
        let address = ctx.address.to_string();
        if self.0.fail.contains(&address) {
            return Err(ProviderError {
                class: ErrorClass::Fatal,
                code: Some("AccessDenied".into()),
                message: "not allowed".into(),
            });
        }
        if let Some(left) = self
            .0
            .not_yet
            .lock()
            .unwrap()
            .get_mut(&address)
            .filter(|n| **n > 0)
        {
            *left -= 1;
            return Err(ProviderError {
                class: ErrorClass::Propagating,
                code: Some("InvalidParameterException".into()),
                message: "role cannot be assumed".into(),
            });
        }
        self.0.work(format!("create {address}")).await;
        let id = format!("id-{}", self.0.next_id.fetch_add(1, Ordering::SeqCst));
        self.0
            .objects
            .lock()
            .unwrap()
            .insert(id.clone(), desired.clone());
        Ok(id)
    }

    async fn wait_ready(&self, ctx: &Ctx<'_>, _: &str) -> ProviderResult<()> {
        if self.0.slow.contains(ctx.address.as_str()) {
            self.0.work(format!("ready {}", ctx.address)).await;
        }
        Ok(())
    }

    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        _: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()> {
        if self.0.fail.contains(ctx.address.as_str()) {
            return Err(ProviderError::fatal(
                "UpdateClusterVersion: the run was stopped",
            ));
        }
        self.0.work(format!("update {}", ctx.address)).await;
        self.0
            .objects
            .lock()
            .unwrap()
            .insert(id.to_string(), desired.clone());
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx<'_>, id: &str, _: &Attrs) -> ProviderResult<()> {
        let started = *self
            .0
            .started
            .lock()
            .unwrap()
            .get_or_insert_with(tokio::time::Instant::now);
        if let Some(busy) = self.0.in_use_for.get(ctx.address.as_str()) {
            if started.elapsed() < *busy {
                return Err(ProviderError {
                    class: ErrorClass::Propagating,
                    code: Some("DependencyViolation".into()),
                    message: "has dependencies and cannot be deleted".into(),
                });
            }
        }
        self.0.work(format!("delete {}", ctx.address)).await;
        self.0.objects.lock().unwrap().remove(id);
        Ok(())
    }
}

impl Providers for FakeProviders<'_> {
    fn get(&self, _: ResourceKind) -> &dyn ResourceProvider {
        self
    }
}

/// A state store in memory that counts its saves.
#[derive(Default)]
struct MemoryStore {
    saved: Mutex<Option<State>>,
    saves: AtomicUsize,
}

#[async_trait]
impl StateStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }
    async fn load(&self) -> Result<Option<State>, StateError> {
        Ok(self.saved.lock().unwrap().clone())
    }
    async fn save(&self, state: &mut State) -> Result<(), StateError> {
        state.serial += 1;
        self.saves.fetch_add(1, Ordering::SeqCst);
        *self.saved.lock().unwrap() = Some(state.clone());
        Ok(())
    }
    async fn lock(&self, _: &str) -> Result<LockGuard, StateError> {
        unreachable!("the executor does not lock")
    }
    async fn lock_status(&self) -> Result<Option<LockInfo>, StateError> {
        unreachable!("the executor does not read the lock")
    }
    async fn force_unlock(&self, _: &str) -> Result<LockInfo, StateError> {
        unreachable!("the executor does not unlock")
    }
}

struct Silent;

impl Reporter for Silent {
    fn started(&self, _: &Address, _: Op) {}
    fn waiting(&self, _: &Address, _: &str) {}
    fn retrying(&self, _: &Address, _: &str, _: Duration) {}
    fn adopted(&self, _: &Address, _: &str) {}
    fn finished(&self, _: &Address, _: Op, _: Duration) {}
    fn failed(&self, _: &Address, _: Op, _: &str) {}
    fn interrupted(&self, _: usize) {}
    fn warning(&self, _: &str) {}
}

fn graph(text: &str) -> DesiredGraph {
    let spec = crate::spec::parse(Path::new("stacks/example.toml"), text.to_string()).unwrap();
    DesiredGraph::from_spec(&spec).unwrap()
}

/// Clients of `region` that are never called: the fake providers answer instead.
fn offline_clients(region: &str) -> Clients {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .build();
    Clients::from_config(&config, region, false)
}

/// The environment of stack `stack` against `providers`, retrying "not yet" errors briefly.
fn fake_env<'a>(
    providers: &'a FakeProviders<'a>,
    clients: &'a Clients,
    kube: &'a KubeEnv,
    (stack, parallelism): (&'a str, usize),
    in_use: &'a BTreeMap<ResourceKind, Duration>,
) -> Env<'a> {
    Env {
        providers,
        clients,
        kube,
        stack,
        reporter: &Silent,
        parallelism,
        retry: RetryPolicy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            budget: Duration::from_secs(5),
        },
        in_use,
    }
}

async fn run(
    cloud: &FakeCloud,
    store: &MemoryStore,
    desired: &DesiredGraph,
    state: State,
    parallelism: usize,
) -> Outcome {
    run_with_timeouts(cloud, store, desired, state, parallelism, &BTreeMap::new()).await
}

/// `run`, with `in_use` as the spec's `[timeouts]`.
async fn run_with_timeouts(
    cloud: &FakeCloud,
    store: &MemoryStore,
    desired: &DesiredGraph,
    state: State,
    parallelism: usize,
    in_use: &BTreeMap<ResourceKind, Duration>,
) -> Outcome {
    let plan = diff(desired, &state, &BTreeSet::new(), &PlanOptions::default()).unwrap();
    let clients = offline_clients("us-west-2");
    let providers = FakeProviders(cloud);
    let kube = KubeEnv::unused();
    let env = fake_env(&providers, &clients, &kube, ("mlops", parallelism), in_use);
    apply(&plan, state, store, &env).await
}

#[tokio::test]
async fn creates_follow_dependencies_with_bounded_parallelism_and_a_save_each() {
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let desired = graph(EXAMPLE);
    let outcome = run(&cloud, &store, &desired, State::new("mlops"), 4).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.done, 52);
    assert_eq!(outcome.state.resources.len(), 52);
    for resource in desired.resources.values() {
        for dep in resource
            .deps
            .iter()
            .filter(|d| !resource.destroy_only.contains(d))
        {
            assert!(
                cloud.position(&format!("create {dep}"))
                    < cloud.position(&format!("create {}", resource.address)),
                "{dep} must be created before {}",
                resource.address
            );
        }
    }
    let max = cloud.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "in flight at once: {max}");
    // Recorded right after the create call, then again with what the cloud reports.
    assert_eq!(store.saves.load(Ordering::SeqCst), 104);
    assert_eq!(store.load().await.unwrap().unwrap(), outcome.state);
    assert_eq!(
        outcome.state.outputs["vpc_id"],
        outcome.state.resources[&Address::new("vpc")].id
    );
}

#[tokio::test]
async fn a_failure_stops_new_work_and_keeps_what_finished() {
    let cloud = FakeCloud {
        fail: BTreeSet::from(["eks_cluster".to_string()]),
        ..FakeCloud::default()
    };
    let store = MemoryStore::default();
    let outcome = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 1).await;
    assert_eq!(outcome.errors.len(), 1);
    let error = &outcome.errors[0];
    assert_eq!(error.address.as_str(), "eks_cluster");
    assert_eq!(
        error.to_string(),
        "`eks_cluster`: create failed: AccessDenied: not allowed"
    );
    assert!(outcome.skipped > 0);
    assert!(!outcome
        .state
        .resources
        .contains_key(&Address::new("eks_node_group.default")));
    // Everything that finished is in the saved state, and only that.
    let saved = store.load().await.unwrap().unwrap();
    assert_eq!(saved.resources.len(), outcome.done);
    assert_eq!(cloud.objects.lock().unwrap().len(), outcome.done);
}

#[tokio::test]
async fn not_yet_errors_are_retried_until_they_pass() {
    let cloud = FakeCloud {
        not_yet: Mutex::new(BTreeMap::from([("eks_cluster".to_string(), 3)])),
        ..FakeCloud::default()
    };
    let outcome = run(
        &cloud,
        &MemoryStore::default(),
        &graph(EXAMPLE),
        State::new("mlops"),
        10,
    )
    .await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(cloud.not_yet.lock().unwrap()["eks_cluster"], 0);
    assert!(outcome
        .state
        .resources
        .contains_key(&Address::new("eks_cluster")));
}

#[tokio::test]
async fn destroy_deletes_dependents_first_and_empties_the_state() {
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    cloud.log.lock().unwrap().clear();
    let nothing = DesiredGraph::from_resources(Vec::new()).unwrap();
    let addons = built
        .state
        .resources
        .keys()
        .filter(|a| a.to_string().starts_with("addon."))
        .count();
    let outcome = run(&cloud, &store, &nothing, built.state, 10).await;
    assert!(outcome.errors.is_empty());
    assert!(outcome.state.resources.is_empty());
    // The add-ons go with the cluster: forgotten, never uninstalled (`plan::diff`); what runs
    // in the cluster before it goes is the load-balancer cleanup and the stack's own objects.
    let log = cloud.log.lock().unwrap().clone();
    assert!(
        !log.iter().any(|e| e.starts_with("delete addon.")),
        "{log:?}"
    );
    assert!(log.iter().any(|e| e == "delete cluster_cleanup"), "{log:?}");
    assert!(addons > 0);
    assert_eq!(cloud.objects.lock().unwrap().len(), addons);
    let before = |a: &str, b: &str| {
        assert!(
            cloud.position(&format!("delete {a}")) < cloud.position(&format!("delete {b}")),
            "{a} before {b}"
        );
    };
    before("eks_node_group.default", "eks_cluster");
    before("eks_cluster", "subnet.private.us-west-2a");
    // The cluster's delete sweeps the load balancers Kubernetes put in the public subnets,
    // which block their deletion and the internet gateway's.
    before("eks_cluster", "subnet.public.us-west-2b");
    before("eks_cluster", "internet_gateway");
    before("nat_gateway.us-west-2a", "eip.us-west-2a");
    before(
        "route_table_association.public.us-west-2a",
        "route_table.public",
    );
    before("subnet.public.us-west-2b", "vpc");
}

/// Models the subnets of a deleted cluster: AWS answers `DependencyViolation` for minutes,
/// until the network interfaces of its load balancers and pods are gone. A subnet's delete
/// outlasts the default budget for "not yet" (5 s here) on its own budget (20 min); the spec's
/// `[timeouts]` shortens it; a kind without a budget of its own keeps the default. (Real time:
/// about 12 s.)
#[tokio::test]
async fn a_delete_retries_still_in_use_for_its_kinds_budget() {
    let destroy = |busy: &str, in_use: BTreeMap<ResourceKind, Duration>| {
        let busy = busy.to_string();
        async move {
            let cloud = FakeCloud::default();
            let store = MemoryStore::default();
            let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
            let cloud = FakeCloud {
                objects: Mutex::new(cloud.objects.lock().unwrap().clone()),
                in_use_for: BTreeMap::from([(busy, Duration::from_secs(6))]),
                ..FakeCloud::default()
            };
            let nothing = DesiredGraph::from_resources(Vec::new()).unwrap();
            run_with_timeouts(&cloud, &store, &nothing, built.state, 10, &in_use).await
        }
    };
    let subnet = "subnet.private.us-west-2a";
    let outcome = destroy(subnet, BTreeMap::new()).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(outcome.state.resources.is_empty());

    let short = BTreeMap::from([(ResourceKind::Subnet, Duration::from_secs(1))]);
    let outcome = destroy(subnet, short).await;
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert_eq!(outcome.errors[0].address.as_str(), subnet);
    assert!(outcome.state.resources.contains_key(&Address::new(subnet)));

    let outcome = destroy("route_table.public", BTreeMap::new()).await;
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert_eq!(outcome.errors[0].address.as_str(), "route_table.public");
}

/// Models a run stopped during a cluster's version upgrade, which EKS runs for up to an hour
/// and refuses to start again while it runs: the state marks the cluster `pending` before the
/// update call, so the next plan resumes the wait; a finished update clears the mark.
#[tokio::test]
async fn an_update_that_waits_is_recorded_pending_until_it_is_done() {
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    let upgraded = graph(&EXAMPLE.replace("version = \"1.33\"", "version = \"1.34\""));
    let stopped = FakeCloud {
        objects: Mutex::new(cloud.objects.lock().unwrap().clone()),
        fail: BTreeSet::from(["eks_cluster".to_string()]),
        ..FakeCloud::default()
    };
    let outcome = run(&stopped, &store, &upgraded, built.state, 10).await;
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    let cluster = Address::new("eks_cluster");
    assert!(outcome.state.resources[&cluster].pending);
    assert!(store.load().await.unwrap().unwrap().resources[&cluster].pending);
    let plan = diff(
        &upgraded,
        &outcome.state,
        &BTreeSet::new(),
        &PlanOptions::default(),
    )
    .unwrap();
    let change = plan.changes.iter().find(|c| c.address == cluster).unwrap();
    assert_eq!(change.action, Action::Update);
    assert!(
        change
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("resume the wait until it is ready"),
        "{:?}",
        change.reason
    );

    let finished = run(&cloud, &store, &upgraded, outcome.state, 10).await;
    assert!(finished.errors.is_empty(), "{:?}", finished.errors);
    assert!(finished.state.resources.values().all(|r| !r.pending));
}

/// AWS makes an EKS control plane from its subnets and its role with the role's policies, not
/// from the NAT routes, which only its nodes need: the cluster's create, the longest wait of an
/// apply, starts without waiting for the NAT gateways to become available. A destroy deletes
/// the cluster (whose delete sweeps the load balancers Kubernetes put in the public subnets)
/// before the public subnets and the internet gateway, and the NAT routes and gateways after
/// the node groups, without waiting for the cluster's delete (10 minutes on AWS). Checked on
/// the operation graph the executor runs.
#[tokio::test]
async fn the_cluster_is_created_without_the_nat_routes_and_deleted_beside_them() {
    let desired = graph(EXAMPLE);
    let empty = State::new("mlops");
    let plan = diff(&desired, &empty, &BTreeSet::new(), &PlanOptions::default()).unwrap();
    let creates = operations(&plan, &empty);
    let cluster_needs = creates.with_prerequisites([(Address::new("eks_cluster"), Op::Create)]);
    let needs = |a: &str| cluster_needs.contains(&(Address::new(a), Op::Create));
    for not_needed in [
        "route.private.us-west-2a.nat",
        "nat_gateway.us-west-2a",
        "eip.us-west-2a",
        "internet_gateway",
        "subnet.public.us-west-2a",
    ] {
        assert!(
            !needs(not_needed),
            "the cluster's create waits for `{not_needed}`"
        );
    }
    for needed in [
        "subnet.private.us-west-2a",
        "iam_role.cluster",
        "iam_role_policy_attachment.cluster.AmazonEKSClusterPolicy",
    ] {
        assert!(
            needs(needed),
            "the cluster's create does not wait for `{needed}`"
        );
    }
    let group_needs =
        creates.with_prerequisites([(Address::new("eks_node_group.default"), Op::Create)]);
    assert!(group_needs.contains(&(Address::new("route.private.us-west-2a.nat"), Op::Create)));

    let cloud = FakeCloud::default();
    let built = run(&cloud, &MemoryStore::default(), &desired, empty, 10).await;
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    let nothing = DesiredGraph::from_resources(Vec::new()).unwrap();
    let destroy = diff(
        &nothing,
        &built.state,
        &BTreeSet::new(),
        &PlanOptions::default(),
    )
    .unwrap();
    let deletes = operations(&destroy, &built.state);
    let first = |after: &str| deletes.with_prerequisites([(Address::new(after), Op::Delete)]);
    let cluster = (Address::new("eks_cluster"), Op::Delete);
    for after in [
        "subnet.public.us-west-2a",
        "subnet.public.us-west-2b",
        "internet_gateway",
    ] {
        assert!(
            first(after).contains(&cluster),
            "`{after}` is deleted without waiting for the cluster's delete"
        );
    }
    for nat in ["route.private.us-west-2a.nat", "nat_gateway.us-west-2a"] {
        assert!(
            !first(nat).contains(&cluster),
            "`{nat}` waits for the cluster's delete"
        );
        assert!(
            first(nat).contains(&(Address::new("eks_node_group.default"), Op::Delete)),
            "`{nat}` is deleted before the node group"
        );
    }
}

/// A node group's successor has a new name (a digest of what forced it), so it is made, and
/// ready, before the old group is deleted: the pods always have nodes. Meanwhile the state
/// keeps the old group at its deposed address; nothing is left there at the end.
#[tokio::test]
async fn a_node_group_replacement_creates_the_successor_before_deleting_the_old_group() {
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    let address = Address::new("eks_node_group.default");
    let old_id = built.state.resources[&address].id.clone();
    cloud.log.lock().unwrap().clear();
    let changed = graph(&EXAMPLE.replace("[\"t3.medium\"]", "[\"m5.large\"]"));
    let outcome = run(&cloud, &store, &changed, built.state, 10).await;
    assert!(outcome.errors.is_empty());
    assert_eq!(
        *cloud.log.lock().unwrap(),
        vec![
            "create eks_node_group.default",
            "delete eks_node_group.default"
        ]
    );
    let group = &outcome.state.resources[&address];
    assert_eq!(group.attrs["instance_types"], json!(["m5.large"]));
    assert_ne!(group.id, old_id);
    assert!(!outcome.state.resources.contains_key(&address.deposed()));
    let objects = cloud.objects.lock().unwrap();
    assert!(!objects.contains_key(&old_id) && objects.contains_key(&group.id));
}

/// Kinds that two objects cannot share, like a bucket under its name, are replaced delete
/// first.
#[tokio::test]
async fn a_replacement_under_a_taken_name_deletes_the_old_object_first() {
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    cloud.log.lock().unwrap().clear();
    let changed = graph(
        &EXAMPLE
            .replace("force_destroy = false", "force_destroy = true")
            .replace(
                "name = \"mlops-models-bucket\"",
                "name = \"mlops-models-bucket-2\"",
            ),
    );
    let outcome = run(&cloud, &store, &changed, built.state, 10).await;
    assert!(outcome.errors.is_empty());
    assert!(cloud.position("delete s3_bucket.models") < cloud.position("create s3_bucket.models"));
}

/// A run that stops once the old group is deposed (its successor's create failed) keeps both
/// in view: the old group stays in the state at its deposed address, and the next run makes
/// the successor first, then deletes the old group.
#[tokio::test]
async fn a_deposed_node_group_left_by_a_failed_run_goes_after_its_successor() {
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    let address = Address::new("eks_node_group.default");
    let old_id = built.state.resources[&address].id.clone();
    let changed = graph(&EXAMPLE.replace("[\"t3.medium\"]", "[\"m5.large\"]"));
    let failing = FakeCloud {
        objects: Mutex::new(cloud.objects.lock().unwrap().clone()),
        next_id: AtomicUsize::new(1000),
        fail: BTreeSet::from([address.to_string()]),
        ..FakeCloud::default()
    };
    let stopped = run(&failing, &store, &changed, built.state, 10).await;
    assert_eq!(stopped.errors.len(), 1);
    assert!(!stopped.state.resources.contains_key(&address));
    assert_eq!(stopped.state.resources[&address.deposed()].id, old_id);

    let again = FakeCloud {
        objects: Mutex::new(failing.objects.lock().unwrap().clone()),
        next_id: AtomicUsize::new(2000),
        ..FakeCloud::default()
    };
    let outcome = run(&again, &store, &changed, stopped.state, 10).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(
        again.position("create eks_node_group.default")
            < again.position("delete eks_node_group.default.deposed")
    );
    assert!(!outcome.state.resources.contains_key(&address.deposed()));
    assert!(!again.objects.lock().unwrap().contains_key(&old_id));
}

/// AWS names a bucket by its name alone: a second address that finds the object the state
/// holds at another address must not adopt it (the other address's delete would remove it).
#[tokio::test]
async fn an_object_the_state_holds_at_another_address_is_not_adopted() {
    let store = MemoryStore::default();
    let built = run(
        &FakeCloud::default(),
        &store,
        &graph(EXAMPLE),
        State::new("mlops"),
        10,
    )
    .await;
    let mut state = built.state;
    let old = Address::new("s3_bucket.old");
    let mut bucket = state
        .resources
        .remove(&Address::new("s3_bucket.models"))
        .unwrap();
    // Not the same name as far as the state knows, so the planner sees no rename.
    bucket
        .attrs
        .insert("bucket".into(), json!("recorded-otherwise"));
    let id = bucket.id.clone();
    state.resources.insert(old.clone(), bucket);
    let cloud = FakeCloud {
        found: BTreeMap::from([("s3_bucket.models".to_string(), id.clone())]),
        ..FakeCloud::default()
    };
    cloud
        .objects
        .lock()
        .unwrap()
        .insert(id.clone(), Attrs::new());
    let outcome = run(&cloud, &store, &graph(EXAMPLE), state, 1).await;
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    assert_eq!(
        outcome.errors[0].error.message,
        format!("found `{id}`, but the state holds it as `s3_bucket.old`: one object has one address; a `[[moved]]` entry (from `s3_bucket.old` to `s3_bucket.models`) or `mlops state mv` renames it")
    );
    assert!(cloud.objects.lock().unwrap().contains_key(&id));
    assert!(!cloud
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.starts_with("delete")));
}

/// Two addresses of one state holding one object (a state edited by hand, an import): the
/// delete of the one that left the spec only forgets it; the object stays for the other.
#[tokio::test]
async fn a_delete_of_an_object_another_address_keeps_only_forgets_it() {
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    cloud.log.lock().unwrap().clear();
    let mut state = built.state;
    let bucket = state.resources[&Address::new("s3_bucket.models")].clone();
    let id = bucket.id.clone();
    state
        .resources
        .insert(Address::new("s3_bucket.copy"), bucket);
    let outcome = run(&cloud, &store, &graph(EXAMPLE), state, 10).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(
        cloud.log.lock().unwrap().is_empty(),
        "{:?}",
        cloud.log.lock().unwrap()
    );
    assert!(cloud.objects.lock().unwrap().contains_key(&id));
    assert!(!outcome
        .state
        .resources
        .contains_key(&Address::new("s3_bucket.copy")));
    assert_eq!(
        outcome.state.resources[&Address::new("s3_bucket.models")].id,
        id
    );
}

/// A new cluster name replaces the cluster and, through its issuer, the OIDC provider, while the
/// IRSA role's trust policy is updated in place to the new provider: the old objects go
/// (dependents first), the new ones come, and only then is the role updated. Before, the role's
/// update was made to wait for the old provider's delete too, which made a cycle.
#[tokio::test]
async fn a_replaced_cluster_is_followed_by_the_updates_that_refer_to_it() {
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    cloud.log.lock().unwrap().clear();
    let renamed = graph(&EXAMPLE.replace("name = \"mlops-cluster\"", "name = \"mlops-cluster-2\""));
    let outcome = run(&cloud, &store, &renamed, built.state, 10).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let before = |a: &str, b: &str| {
        assert!(cloud.position(a) < cloud.position(b), "{a} before {b}");
    };
    before("delete eks_node_group.default", "delete eks_cluster");
    before("delete iam_oidc_provider", "delete eks_cluster");
    before("delete eks_cluster", "create eks_cluster");
    before("create eks_cluster", "create iam_oidc_provider");
    before("create iam_oidc_provider", "update iam_role.irsa.kserve-s3");
}

/// A minor upgrade as EKS needs it: the control plane first, then every node group (EKS refuses
/// a node group ahead of its control plane, and the next control-plane upgrade while a group
/// lags behind), then the EKS managed add-ons, moved to the new version's defaults. The
/// catalogue's add-ons do not change with the Kubernetes version: the plan holds no update of
/// theirs.
#[tokio::test]
async fn a_version_bump_updates_the_cluster_then_the_node_groups_then_the_addons() {
    let two_groups = EXAMPLE.replace(
        "\n[irsa.",
        "\n[eks.node_groups.more]\ninstance_types = [\"m5.large\"]\nmin = 1\nmax = 2\ndesired = 1\n\n[irsa.",
    );
    let cloud = FakeCloud::default();
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(&two_groups), State::new("mlops"), 10).await;
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    cloud.log.lock().unwrap().clear();
    let bumped = graph(&two_groups.replace("version = \"1.33\"", "version = \"1.34\""));
    let plan = diff(
        &bumped,
        &built.state,
        &BTreeSet::new(),
        &PlanOptions::default(),
    )
    .unwrap();
    let updated: Vec<&str> = plan
        .actions()
        .map(|c| {
            assert_eq!(c.action, crate::plan::Action::Update, "{}", c.address);
            c.address.as_str()
        })
        .collect();
    assert_eq!(
        updated,
        [
            "eks_cluster",
            "eks_node_group.default",
            "eks_node_group.more",
            "eks_addon.coredns",
            "eks_addon.kube-proxy",
            "eks_addon.vpc-cni",
            "eks_addon.aws-ebs-csi-driver",
        ]
    );
    // The plan says which step waits on which.
    let reason = |address: &str| {
        plan.actions()
            .find(|c| c.address.as_str() == address)
            .and_then(|c| c.reason.clone())
            .unwrap_or_default()
    };
    assert_eq!(reason("eks_cluster"), "");
    assert_eq!(reason("eks_node_group.more"), "waits for `eks_cluster`");
    assert_eq!(
        reason("eks_addon.coredns"),
        "waits for `eks_cluster`, `eks_node_group.default`, `eks_node_group.more`"
    );
    let outcome = run(&cloud, &store, &bumped, built.state, 10).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let cluster = cloud.position("update eks_cluster");
    for group in ["default", "more"] {
        let group = cloud.position(&format!("update eks_node_group.{group}"));
        assert!(cluster < group);
        for addon in ["coredns", "kube-proxy", "vpc-cni", "aws-ebs-csi-driver"] {
            assert!(group < cloud.position(&format!("update eks_addon.{addon}")));
        }
    }
}

/// Models a run stopped while AWS was still making the cluster: the state holds it `pending`
/// and the node group not at all. The next run resumes the cluster's wait (no update call:
/// nothing differs) and creates the node group only after it; nothing stays pending.
#[tokio::test]
async fn a_pending_object_is_waited_for_before_what_needs_it() {
    let cloud = FakeCloud {
        slow: BTreeSet::from(["eks_cluster".to_string()]),
        ..FakeCloud::default()
    };
    let store = MemoryStore::default();
    let built = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    assert!(built.state.resources.values().all(|r| !r.pending));
    let mut state = built.state;
    state
        .resources
        .get_mut(&Address::new("eks_cluster"))
        .unwrap()
        .pending = true;
    let group = state
        .resources
        .remove(&Address::new("eks_node_group.default"))
        .unwrap();
    cloud.objects.lock().unwrap().remove(&group.id);
    cloud.log.lock().unwrap().clear();
    let outcome = run(&cloud, &store, &graph(EXAMPLE), state, 10).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let log = cloud.log.lock().unwrap().clone();
    assert_eq!(
        log[..2],
        ["ready eks_cluster", "create eks_node_group.default"],
        "{log:?}"
    );
    assert!(!log.contains(&"update eks_cluster".to_string()), "{log:?}");
    let saved = store.load().await.unwrap().unwrap();
    assert!(saved.resources.values().all(|r| !r.pending));
}

/// Models an object an earlier run created but did not record, still on its way: adopted (a
/// kind whose attributes force nothing, so the bare object fits), it is waited for like a new
/// one before what needs it (the cluster, which encrypts its Secrets with it) starts.
#[tokio::test]
async fn an_adopted_object_is_waited_for_like_a_new_one() {
    let cloud = FakeCloud {
        slow: BTreeSet::from(["kms_key.secrets".to_string()]),
        found: BTreeMap::from([("kms_key.secrets".to_string(), "id-made-earlier".to_string())]),
        ..FakeCloud::default()
    };
    cloud
        .objects
        .lock()
        .unwrap()
        .insert("id-made-earlier".into(), Attrs::new());
    let store = MemoryStore::default();
    let outcome = run(&cloud, &store, &graph(EXAMPLE), State::new("mlops"), 10).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(cloud.position("ready kms_key.secrets") < cloud.position("create eks_cluster"));
    assert_eq!(
        outcome.state.resources[&Address::new("kms_key.secrets")].id,
        "id-made-earlier"
    );
    assert!(outcome.state.resources.values().all(|r| !r.pending));
}

/// Models the nightly drift check over many stacks (`plan --all`) against EC2's per-action
/// throttling: the reads of a kind go out together for every stack of a region, each stack
/// gets back exactly its own objects and what of its own is gone, stacks of another region
/// are read apart, and a shared read refused because of one stack's object (AccessDenied) is
/// read again stack by stack, so that it fails that stack alone.
#[tokio::test]
async fn stacks_refreshed_together_share_their_reads_per_kind_and_region() {
    let mut cloud = FakeCloud::default();
    let desired = graph(EXAMPLE);
    let mut states = Vec::new();
    for _ in 0..3 {
        let applied = run(
            &cloud,
            &MemoryStore::default(),
            &desired,
            State::new("mlops"),
            8,
        )
        .await;
        assert!(applied.errors.is_empty(), "{:?}", applied.errors);
        states.push(applied.state);
    }
    let kinds: BTreeSet<ResourceKind> = states[0].resources.values().map(|r| r.kind).collect();
    let id_of = |state: &State, address: &str| state.resources[&Address::new(address)].id.clone();
    let gone_id = id_of(&states[1], "vpc");
    {
        // Each object in the cloud marked with its stack, to follow where its read ends up.
        let mut objects = cloud.objects.lock().unwrap();
        for (i, state) in states.iter().enumerate() {
            for resource in state.resources.values() {
                let object = objects.get_mut(&resource.id).unwrap();
                object.insert("stack".into(), json!(i));
            }
        }
        objects.remove(&gone_id);
    }
    cloud.reads_at_once = 1000;

    let (west, east) = (offline_clients("us-west-2"), offline_clients("eu-west-1"));
    let (providers, kube, in_use) = (FakeProviders(&cloud), KubeEnv::unused(), BTreeMap::new());
    let envs = [
        fake_env(&providers, &west, &kube, ("a", 4), &in_use),
        fake_env(&providers, &west, &kube, ("b", 4), &in_use),
        fake_env(&providers, &east, &kube, ("c", 4), &in_use),
    ];
    let stacks = states.iter().cloned().zip(&envs).collect();
    let refreshed = refresh_many(stacks).await;

    let reads = cloud.reads.lock().unwrap().clone();
    assert_eq!(
        reads.len(),
        2 * kinds.len(),
        "one read per kind and region: {reads:?}"
    );
    let ids = |state: &State| -> BTreeSet<String> {
        state.resources.values().map(|r| r.id.clone()).collect()
    };
    let (a, b, c) = (ids(&states[0]), ids(&states[1]), ids(&states[2]));
    for read in &reads {
        let read: BTreeSet<String> = read.iter().cloned().collect();
        let with_c = !read.is_disjoint(&c);
        assert!(
            with_c != (!read.is_disjoint(&a) && !read.is_disjoint(&b)),
            "a read is of stacks a and b together, or of c alone: {read:?}"
        );
    }
    let results: Vec<Refreshed> = refreshed.into_iter().map(Result::unwrap).collect();
    assert!(
        results[0].1.is_empty() && results[2].1.is_empty(),
        "{results:?}"
    );
    assert_eq!(results[1].1, BTreeSet::from([Address::new("vpc")]));
    for (i, (state, _)) in results.iter().enumerate() {
        let expected = states[i].resources.len() - usize::from(i == 1);
        assert_eq!(state.resources.len(), expected);
        for resource in state.resources.values() {
            assert_eq!(resource.attrs.get("stack"), Some(&json!(i)), "{resource:?}");
        }
    }

    cloud.reads.lock().unwrap().clear();
    *cloud.unreadable.lock().unwrap() = BTreeSet::from([id_of(&states[0], "vpc")]);
    let stacks = states.iter().cloned().zip(&envs).collect();
    let refreshed = refresh_many(stacks).await;
    let failed: Vec<bool> = refreshed.iter().map(Result::is_err).collect();
    assert_eq!(failed, [true, false, false], "a's object fails a alone");
    let error = refreshed[0].as_ref().unwrap_err();
    assert_eq!(error.address, Address::new("vpc"));
    assert!(error.error.message.contains("AccessDenied"), "{error:?}");
    let reads = cloud.reads.lock().unwrap().clone();
    assert_eq!(
        reads.len(),
        2 * kinds.len() + 2,
        "the failed shared read, then a's part and b's apart: {reads:?}"
    );
}
