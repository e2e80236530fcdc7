//! The planner against the reference stack: creation order, no-op after apply, each action
//! kind, replacement triggers and their spread to dependents, deletions, targets; and
//! snapshots of the rendered plans.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::graph::DesiredGraph;
use crate::model::{resolve, settled, Address, ResourceKind};
use crate::spec;
use crate::state::{ResourceState, State};
use crate::ui::Style;

pub(super) const EXAMPLE: &str = include_str!("../../stacks/example.toml");

pub(super) fn graph_of(text: &str) -> DesiredGraph {
    let spec = spec::parse(Path::new("stacks/example.toml"), text.to_string()).unwrap();
    DesiredGraph::from_spec(&spec).unwrap()
}

pub(super) fn plan_of(graph: &DesiredGraph, state: &State) -> Plan {
    diff(graph, state, &BTreeSet::new(), &PlanOptions::default()).unwrap()
}

/// What an apply of `graph` would leave in the state, with made-up ids and computed values.
pub(super) fn applied(graph: &DesiredGraph) -> State {
    let mut state = State::new("mlops");
    state.lineage = "lineage-for-tests".into();
    for resource in graph.ordered() {
        let lookup = |a: &Address, attr: &str| state.attr(a, attr);
        let created = settled(&resource.attrs, None);
        let mut attrs = resolve(&Value::Object(created), &lookup)
            .expect("prerequisites are applied first")
            .as_object()
            .unwrap()
            .clone();
        let address = resource.address.as_str();
        attrs.insert("arn".into(), json!(format!("arn:aws:test:::{address}")));
        if address == "eks_cluster" {
            attrs.insert("oidc_issuer".into(), json!("https://oidc.eks.test/id/ABC"));
        }
        state.resources.insert(
            resource.address.clone(),
            ResourceState {
                kind: resource.kind,
                id: format!("id-{address}"),
                attrs,
                deps: resource.deps.clone(),
                pending: false,
            },
        );
    }
    state.serial = 1;
    state
}

pub(super) fn position(plan: &Plan, address: &str) -> usize {
    plan.changes
        .iter()
        .position(|c| c.address.as_str() == address)
        .unwrap_or_else(|| panic!("`{address}` is not in the plan"))
}

pub(super) fn action_of(plan: &Plan, address: &str) -> Action {
    plan.changes[position(plan, address)].action
}

pub(super) fn changed_attrs(plan: &Plan, address: &str) -> Vec<String> {
    plan.changes[position(plan, address)]
        .attrs
        .iter()
        .filter(|a| a.is_change())
        .map(|a| a.name.clone())
        .collect()
}

#[test]
fn a_new_stack_creates_everything_in_dependency_order() {
    let graph = graph_of(EXAMPLE);
    let plan = plan_of(&graph, &State::new("mlops"));
    assert_eq!(plan.summary().add, 52);
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
    let before = |a: &str, b: &str| {
        assert!(
            position(&plan, a) < position(&plan, b),
            "`{a}` must come before `{b}`"
        );
    };
    before("vpc", "subnet.public.us-west-2a");
    before("vpc", "subnet.private.us-west-2b");
    before("vpc", "internet_gateway");
    before("internet_gateway", "eip.us-west-2a");
    before("subnet.public.us-west-2a", "nat_gateway.us-west-2a");
    before("eip.us-west-2a", "nat_gateway.us-west-2a");
    before("nat_gateway.us-west-2a", "route.private.us-west-2b.nat");
    before(
        "iam_role.cluster",
        "iam_role_policy_attachment.cluster.AmazonEKSClusterPolicy",
    );
    before(
        "iam_role_policy_attachment.cluster.AmazonEKSClusterPolicy",
        "eks_cluster",
    );
    before("subnet.private.us-west-2a", "eks_cluster");
    before("eks_cluster", "eks_node_group.default");
    before(
        "iam_role_policy_attachment.node.AmazonEKS_CNI_Policy",
        "eks_node_group.default",
    );
    before("route.private.us-west-2a.nat", "eks_node_group.default");
    before("eks_cluster", "iam_oidc_provider");
    before("iam_oidc_provider", "iam_role.irsa.kserve-s3");
    // The cluster side: add-ons once the nodes are up, in catalogue order, then the service
    // accounts, and last the cleanup step that a destroy therefore runs first.
    before("eks_node_group.default", "addon.cert_manager");
    before("addon.cert_manager", "addon.istio");
    before("addon.istio", "addon.knative_serving");
    before("addon.knative_serving", "addon.kserve");
    before(
        "addon.kserve",
        "k8s.kserve-inference.ServiceAccount.kserve-sa",
    );
    before(
        "iam_role.irsa.kserve-s3",
        "k8s.kserve-inference.ServiceAccount.kserve-sa",
    );
    before(
        "k8s.kserve-inference.ServiceAccount.kserve-sa",
        "cluster_cleanup",
    );
    // Every dependency of every change comes earlier in the plan.
    for (i, change) in plan.changes.iter().enumerate() {
        for dep in &change.deps {
            assert!(
                position(&plan, dep.as_str()) < i,
                "{} before its dep {dep}",
                change.address
            );
        }
    }
}

#[test]
fn values_of_resources_not_created_yet_are_unknown() {
    let plan = plan_of(&graph_of(EXAMPLE), &State::new("mlops"));
    let subnet = &plan.changes[position(&plan, "subnet.public.us-west-2a")];
    let vpc_id = subnet.attrs.iter().find(|a| a.name == "vpc_id").unwrap();
    assert_eq!(vpc_id.after, Some(PlanValue::Unknown));
    let cidr = subnet
        .attrs
        .iter()
        .find(|a| a.name == "cidr_block")
        .unwrap();
    assert_eq!(cidr.after, Some(PlanValue::Known(json!("10.0.101.0/24"))));
}

#[test]
fn nothing_changes_after_an_apply() {
    let graph = graph_of(EXAMPLE);
    let plan = plan_of(&graph, &applied(&graph));
    assert!(
        !plan.has_changes(),
        "{:#?}",
        plan.actions().collect::<Vec<_>>()
    );
    assert_eq!(plan.changes.len(), 52);
}

/// `desired` is the size at creation: an autoscaler owns it afterwards, so neither a new value
/// in the spec nor a size moved outside mlops is a change, unless `manage_desired = true`.
#[test]
fn a_node_group_size_is_managed_only_when_asked() {
    let graph = graph_of(EXAMPLE);
    let mut state = applied(&graph);
    let group = Address::new("eks_node_group.default");
    assert_eq!(state.resources[&group].attrs["desired_size"], json!(2));
    state
        .resources
        .get_mut(&group)
        .unwrap()
        .attrs
        .insert("desired_size".into(), json!(3));
    let plan = plan_of(
        &graph_of(&EXAMPLE.replace("desired = 2", "desired = 1")),
        &state,
    );
    assert_eq!(action_of(&plan, "eks_node_group.default"), Action::NoOp);
    let managed = EXAMPLE.replace("desired = 2", "desired = 2\nmanage_desired = true");
    let plan = plan_of(&graph_of(&managed), &state);
    assert_eq!(action_of(&plan, "eks_node_group.default"), Action::Update);
    assert_eq!(
        changed_attrs(&plan, "eks_node_group.default"),
        vec!["desired_size"]
    );
}

#[test]
fn a_scaled_node_group_is_updated_in_place() {
    let managed = EXAMPLE.replace("desired = 2", "desired = 2\nmanage_desired = true");
    let graph = graph_of(&managed);
    let state = applied(&graph);
    let plan = plan_of(
        &graph_of(&managed.replace("desired = 2", "desired = 3")),
        &state,
    );
    assert_eq!(action_of(&plan, "eks_node_group.default"), Action::Update);
    assert_eq!(
        changed_attrs(&plan, "eks_node_group.default"),
        vec!["desired_size"]
    );
    assert_eq!(
        plan.summary(),
        Summary {
            add: 0,
            change: 1,
            destroy: 0,
            moved: 0
        }
    );
}

#[test]
fn drift_in_the_state_shows_as_an_update() {
    let graph = graph_of(EXAMPLE);
    let mut state = applied(&graph);
    let bucket = state
        .resources
        .get_mut(&Address::new("s3_bucket.models"))
        .unwrap();
    bucket.attrs.insert("versioning".into(), json!(false));
    bucket.attrs["tags"].as_object_mut().unwrap().remove("env");
    let plan = plan_of(&graph, &state);
    assert_eq!(action_of(&plan, "s3_bucket.models"), Action::Update);
    assert_eq!(
        changed_attrs(&plan, "s3_bucket.models"),
        vec!["tags", "versioning"]
    );
}

#[test]
fn a_new_vpc_cidr_replaces_the_vpc_and_everything_inside_it() {
    let graph = graph_of(EXAMPLE);
    let state = applied(&graph);
    let text = EXAMPLE
        .replace("10.0.0.0/16", "10.1.0.0/16")
        .replace("10.0.1", "10.1.1")
        .replace("10.0.2", "10.1.2");
    let plan = plan_of(&graph_of(&text), &state);
    assert_eq!(action_of(&plan, "vpc"), Action::Replace);
    let vpc = &plan.changes[position(&plan, "vpc")];
    let forcing: Vec<&str> = vpc
        .attrs
        .iter()
        .filter(|a| a.forces_replacement)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(forcing, vec!["cidr_block"]);
    // Objects that live in the VPC follow, because their `vpc_id` becomes unknown.
    for address in [
        "subnet.public.us-west-2a",
        "internet_gateway",
        "route_table.public",
    ] {
        assert_eq!(action_of(&plan, address), Action::Replace, "{address}");
    }
    // Through the subnets, the cluster and its node group are replaced too.
    assert_eq!(action_of(&plan, "eks_cluster"), Action::Replace);
    assert_eq!(action_of(&plan, "eks_node_group.default"), Action::Replace);
    // Nothing outside the VPC is touched.
    assert_eq!(action_of(&plan, "s3_bucket.models"), Action::NoOp);
    assert_eq!(action_of(&plan, "iam_role.node"), Action::NoOp);
}

#[test]
fn replacement_triggers_of_a_node_group() {
    let graph = graph_of(EXAMPLE);
    let state = applied(&graph);
    for (from, to, attr) in [
        (
            "instance_types = [\"t3.medium\"]",
            "instance_types = [\"m5.large\"]",
            "instance_types",
        ),
        (
            "capacity = \"on_demand\"",
            "capacity = \"spot\"",
            "capacity_type",
        ),
        ("disk_size = 50", "disk_size = 100", "disk_size"),
    ] {
        let plan = plan_of(&graph_of(&EXAMPLE.replace(from, to)), &state);
        let change = &plan.changes[position(&plan, "eks_node_group.default")];
        assert_eq!(change.action, Action::Replace, "{attr}");
        assert!(change
            .attrs
            .iter()
            .any(|a| a.name == attr && a.forces_replacement));
        assert_eq!(
            plan.summary(),
            Summary {
                add: 1,
                change: 0,
                destroy: 1,
                moved: 0
            },
            "{attr}"
        );
    }
}

#[test]
fn a_tag_change_is_never_a_replacement() {
    let graph = graph_of(EXAMPLE);
    let plan = plan_of(
        &graph_of(&EXAMPLE.replace("env = \"dev\"", "env = \"prod\"")),
        &applied(&graph),
    );
    assert!(plan.actions().all(|c| c.action == Action::Update));
    assert!(plan.actions().any(|c| c.address.as_str() == "vpc"));
}

#[test]
fn removed_resources_are_deleted_dependents_first() {
    let graph = graph_of(EXAMPLE);
    let state = applied(&graph);
    let without_irsa = EXAMPLE
        .split("[irsa.kserve-s3]")
        .next()
        .unwrap()
        .to_string()
        + &EXAMPLE[EXAMPLE.find("[buckets.models]").unwrap()..];
    let without_irsa = without_irsa.replace(
        &EXAMPLE[EXAMPLE.find("[buckets.models]").unwrap()..EXAMPLE.find("[repositories").unwrap()],
        "",
    );
    // The workloads use both: they go too.
    let without_irsa = without_irsa
        .split("\n[workloads]")
        .next()
        .unwrap()
        .to_string();
    let plan = plan_of(&graph_of(&without_irsa), &state);
    for address in [
        "iam_role_policy.irsa.kserve-s3.scoped",
        "iam_role.irsa.kserve-s3",
        "s3_bucket.models",
        "k8s.kserve-inference.ServiceAccount.kserve-sa",
        "k8s.kserve-inference.InferenceService.wine-model",
        "k8s.Namespace.team-a",
    ] {
        assert_eq!(action_of(&plan, address), Action::Delete, "{address}");
    }
    assert!(
        position(&plan, "k8s.kserve-inference.InferenceService.wine-model")
            < position(&plan, "k8s.kserve-inference.ServiceAccount.kserve-sa")
    );
    assert!(
        position(&plan, "k8s.team-a.ResourceQuota.team-a-quota")
            < position(&plan, "k8s.Namespace.team-a")
    );
    assert!(
        position(&plan, "iam_role_policy.irsa.kserve-s3.scoped")
            < position(&plan, "iam_role.irsa.kserve-s3")
    );
    // The EBS CSI driver's role still needs the OIDC provider.
    assert_eq!(action_of(&plan, "iam_oidc_provider"), Action::NoOp);
    assert_eq!(
        plan.summary(),
        Summary {
            add: 0,
            change: 0,
            destroy: 10,
            moved: 0
        }
    );
}

#[test]
fn destroy_deletes_everything_in_reverse_dependency_order() {
    let graph = graph_of(EXAMPLE);
    let empty = DesiredGraph::from_resources(Vec::new()).unwrap();
    let plan = plan_of(&empty, &applied(&graph));
    assert_eq!(plan.summary().destroy, 52);
    let before = |a: &str, b: &str| {
        assert!(
            position(&plan, a) < position(&plan, b),
            "`{a}` must be deleted before `{b}`"
        );
    };
    before("eks_node_group.default", "eks_cluster");
    before("eks_cluster", "subnet.private.us-west-2a");
    before("nat_gateway.us-west-2a", "eip.us-west-2a");
    before("nat_gateway.us-west-2a", "subnet.public.us-west-2a");
    before("subnet.public.us-west-2a", "vpc");
    before("internet_gateway", "vpc");
}

/// A destroy that deletes the EKS cluster only forgets the add-ons: EKS deletes everything in
/// a cluster with it, so an uninstall first is time spent and a finalizer to hang on. The
/// load-balancer cleanup and the stack's own Kubernetes objects are still deleted (AWS load
/// balancers and EBS volumes outlive the cluster). A destroy that keeps the cluster
/// (`--target addon.kserve`) uninstalls.
#[test]
fn a_destroy_of_the_cluster_only_forgets_the_addons() {
    let graph = graph_of(EXAMPLE);
    let empty = DesiredGraph::from_resources(Vec::new()).unwrap();
    let plan = plan_of(&empty, &applied(&graph));
    let cluster = Address::new("eks_cluster");
    for change in &plan.changes {
        let addon = change.kind == ResourceKind::Addon;
        assert_eq!(
            change.taken_by.as_ref(),
            addon.then_some(&cluster),
            "{}",
            change.address
        );
    }
    let kserve = change_of(&plan, "addon.kserve");
    assert_eq!(
        kserve.reason.as_deref(),
        Some("`eks_cluster` is deleted, and everything in the cluster with it: only forgotten")
    );
    assert!(render::human(&plan, Style::PLAIN)
        .contains("# addon.kserve will be destroyed (`eks_cluster` is deleted"));

    let options = PlanOptions {
        targets: vec![Address::new("addon.kserve")],
        whole_destroy: true,
        ..PlanOptions::default()
    };
    let plan = diff(&empty, &applied(&graph), &BTreeSet::new(), &options).unwrap();
    let kserve = change_of(&plan, "addon.kserve");
    assert_eq!(kserve.action, Action::Delete);
    assert_eq!(kserve.taken_by, None);
}

#[test]
fn a_resource_deleted_outside_mlops_is_created_again_with_a_reason() {
    let graph = graph_of(EXAMPLE);
    let mut state = applied(&graph);
    let gone = Address::new("ecr_repository.wine-model");
    state.resources.remove(&gone);
    let plan = diff(
        &graph,
        &state,
        &BTreeSet::from([gone]),
        &PlanOptions::default(),
    )
    .unwrap();
    let change = &plan.changes[position(&plan, "ecr_repository.wine-model")];
    assert_eq!(change.action, Action::Create);
    assert_eq!(change.reason.as_deref(), Some("deleted outside mlops"));
}

#[test]
fn targets_keep_their_prerequisites_only() {
    let graph = graph_of(EXAMPLE);
    let options = PlanOptions {
        targets: vec![Address::new("eks_node_group.default")],
        ..PlanOptions::default()
    };
    let plan = diff(&graph, &State::new("mlops"), &BTreeSet::new(), &options).unwrap();
    let addresses: Vec<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
    assert!(addresses.contains(&"vpc"));
    assert!(addresses.contains(&"eks_cluster"));
    assert!(!addresses.contains(&"s3_bucket.models"));
    assert!(!addresses.contains(&"iam_oidc_provider"));

    let options = PlanOptions {
        targets: vec![Address::new("eks_node_group.defualt")],
        ..PlanOptions::default()
    };
    let err = diff(&graph, &State::new("mlops"), &BTreeSet::new(), &options).unwrap_err();
    assert_eq!(
        err.hint().unwrap(),
        "did you mean `eks_node_group.default`? `mlops graph` lists every address"
    );
}

#[test]
fn snapshot_of_the_create_plan() {
    let plan = plan_of(&graph_of(EXAMPLE), &State::new("mlops"));
    insta::assert_snapshot!("create_plan", render::human(&plan, Style::PLAIN));
}

#[test]
fn snapshot_of_an_update_replace_and_delete_plan() {
    let graph = graph_of(EXAMPLE);
    let state = applied(&graph);
    let text = EXAMPLE
        .replace("desired = 2", "desired = 3")
        .replace("env = \"dev\"", "env = \"dev\", team = \"a\"")
        .replace(
            "instance_types = [\"t3.medium\"]",
            "instance_types = [\"t3.large\"]",
        )
        .replace("[repositories.wine-model]", "[repositories.beer-model]");
    let plan = plan_of(&graph_of(&text), &state);
    let plan = Plan {
        changes: plan
            .changes
            .into_iter()
            .filter(|c| {
                [
                    "eks_node_group.default",
                    "vpc",
                    "ecr_repository.wine-model",
                    "ecr_repository.beer-model",
                ]
                .contains(&c.address.as_str())
            })
            .collect(),
        ..plan
    };
    insta::assert_snapshot!("mixed_plan", render::human(&plan, Style::PLAIN));
    insta::assert_json_snapshot!("mixed_plan_json", json::to_json(&plan));
}

#[test]
fn colour_is_only_added_when_asked() {
    let plan = plan_of(&graph_of(EXAMPLE), &State::new("mlops"));
    assert!(!render::human(&plan, Style::PLAIN).contains('\x1b'));
    assert!(render::human(&plan, Style { color: true }).contains("\x1b[32m+\x1b[0m"));
}

#[test]
fn admin_access_entries_follow_the_cluster() {
    let text = EXAMPLE.replace(
        "public_access_cidrs = [\"0.0.0.0/0\"]",
        "public_access_cidrs = [\"0.0.0.0/0\"]\nadmin_arns = [\"arn:aws:iam::123456789012:role/platform-admin\"]",
    );
    let plan = plan_of(&graph_of(&text), &State::new("mlops"));
    assert!(position(&plan, "eks_cluster") < position(&plan, "eks_access_entry.platform-admin"));
    let entry = &plan.changes[position(&plan, "eks_access_entry.platform-admin")];
    assert_eq!(
        entry.desired.as_ref().unwrap()["policy_arn"],
        json!("arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy")
    );
}

#[test]
fn snapshot_of_the_markdown_plan() {
    let graph = graph_of(EXAMPLE);
    let state = applied(&graph);
    let text = EXAMPLE
        .replace("desired = 2", "desired = 3")
        .replace("[\"t3.medium\"]", "[\"m5.large\"]");
    let plan = plan_of(&graph_of(&text), &state);
    let out = markdown::markdown(&plan);
    assert!(out.contains("| `+/-` | `eks_node_group.default` | replace (**protected**: needs `--allow-replace eks_node_group.default`) |"));
    insta::assert_snapshot!("markdown_plan", out);
    let nothing = plan_of(&graph, &state);
    assert!(markdown::markdown(&nothing).contains("No changes."));
}

fn change_of<'a>(plan: &'a Plan, address: &str) -> &'a Change {
    &plan.changes[position(plan, address)]
}

/// `text` with `[eks] zones` naming `zones` (`us-west-2a`... by letter).
fn with_eks_zones(text: &str, zones: &[char]) -> String {
    let named: Vec<String> = zones.iter().map(|z| format!("\"us-west-2{z}\"")).collect();
    text.replace(
        "public_access_cidrs = [\"0.0.0.0/0\"]",
        &format!(
            "public_access_cidrs = [\"0.0.0.0/0\"]\nzones = [{}]",
            named.join(", ")
        ),
    )
}

/// `plan` adds `us-west-2c` to the VPC: its subnets are made, the cluster is left as it is,
/// and the node group is replaced by a successor over the three zones, made first.
fn a_third_zone_leaves_the_cluster(plan: &Plan) {
    assert_eq!(action_of(plan, "eks_cluster"), Action::NoOp);
    assert_eq!(action_of(plan, "subnet.private.us-west-2c"), Action::Create);
    let group = change_of(plan, "eks_node_group.default");
    assert_eq!(group.action, Action::Replace);
    assert!(group.creates_first());
}

/// EKS moves a cluster to other subnets in place within the zones it was made with: the
/// control plane leaving a zone (`eks.zones`) is an update, a zone added to it a replacement,
/// `eks.zones` left out keeps the zones it runs in, and a zone added to the VPC alone leaves
/// the cluster as it is while the node group, in every zone, is replaced by a successor under a
/// new name, made first.
#[test]
fn cluster_zones_shrink_in_place_and_grow_by_replacement() {
    let three = over_zones(EXAMPLE, &['a', 'b', 'c']);
    let state = applied(&graph_of(&three));
    let pinned = with_eks_zones(&three, &['a', 'b']);
    let plan = plan_of(&graph_of(&pinned), &state);
    assert_eq!(action_of(&plan, "eks_cluster"), Action::Update);
    assert_eq!(
        changed_attrs(&plan, "eks_cluster"),
        vec!["availability_zones", "subnet_ids"]
    );
    assert_eq!(action_of(&plan, "eks_node_group.default"), Action::NoOp);

    let state = applied(&graph_of(&pinned));
    assert_eq!(
        action_of(&plan_of(&graph_of(&three), &state), "eks_cluster"),
        Action::NoOp
    );
    let all_three = with_eks_zones(&three, &['a', 'b', 'c']);
    let plan = plan_of(&graph_of(&all_three), &state);
    assert_eq!(action_of(&plan, "eks_cluster"), Action::Replace);
    let forcing: Vec<&str> = change_of(&plan, "eks_cluster")
        .attrs
        .iter()
        .filter(|a| a.forces_replacement)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(forcing, vec!["availability_zones"]);

    let two = with_eks_zones(EXAMPLE, &['a', 'b']);
    let plan = plan_of(
        &graph_of(&over_zones(&two, &['a', 'b', 'c'])),
        &applied(&graph_of(&two)),
    );
    a_third_zone_leaves_the_cluster(&plan);
}

/// The example over `zones` (`us-west-2a`... by letter), one public and one private subnet each.
fn over_zones(text: &str, zones: &[char]) -> String {
    let list = |f: &dyn Fn(usize, char) -> String| {
        zones
            .iter()
            .map(|z| format!("\"{}\"", f(*z as usize - 'a' as usize + 1, *z)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    text.replace(
        "azs = [\"us-west-2a\", \"us-west-2b\"]",
        &format!("azs = [{}]", list(&|_, z| format!("us-west-2{z}"))),
    )
    .replace(
        "public_subnets = [\"10.0.101.0/24\", \"10.0.102.0/24\"]",
        &format!(
            "public_subnets = [{}]",
            list(&|i, _| format!("10.0.10{i}.0/24"))
        ),
    )
    .replace(
        "private_subnets = [\"10.0.1.0/24\", \"10.0.2.0/24\"]",
        &format!(
            "private_subnets = [{}]",
            list(&|i, _| format!("10.0.{i}.0/24"))
        ),
    )
}

/// EKS keeps a cluster in the zones it was made with. Without `[eks] zones`, a zone added to
/// the VPC leaves the cluster on its subnets (its new subnets are made, the node group spreads
/// to them); a zone removed from the VPC moves the cluster off it in place; a VPC that keeps
/// fewer than two of the cluster's zones replaces it, and the plan and the gate say why.
#[test]
fn by_default_the_cluster_keeps_the_zones_it_was_made_with() {
    let made_in_two = applied(&graph_of(EXAMPLE));
    let plan = plan_of(
        &graph_of(&over_zones(EXAMPLE, &['a', 'b', 'c'])),
        &made_in_two,
    );
    a_third_zone_leaves_the_cluster(&plan);

    let made_in_three = applied(&graph_of(&over_zones(EXAMPLE, &['a', 'b', 'c'])));
    let plan = plan_of(
        &graph_of(&over_zones(EXAMPLE, &['a', 'b', 'd'])),
        &made_in_three,
    );
    let cluster = change_of(&plan, "eks_cluster");
    assert_eq!(cluster.action, Action::Update);
    assert_eq!(
        changed_attrs(&plan, "eks_cluster"),
        vec!["availability_zones", "subnet_ids"]
    );
    assert_eq!(
        cluster.desired.as_ref().unwrap()["availability_zones"],
        json!(["us-west-2a", "us-west-2b"])
    );
    assert_eq!(
        action_of(&plan, "subnet.private.us-west-2c"),
        Action::Delete
    );

    let plan = plan_of(&graph_of(&over_zones(EXAMPLE, &['a', 'c'])), &made_in_two);
    let cluster = change_of(&plan, "eks_cluster");
    assert_eq!(cluster.action, Action::Replace);
    assert!(cluster.protected);
    let err = gate::check(&plan, &BTreeSet::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`eks_cluster` would be replaced: EKS keeps a cluster in the zones it was made with (`us-west-2a`, `us-west-2b`) and needs two of them; only `us-west-2a` is left in the VPC"),
        "{err}"
    );
}

/// A subnet replaced in its zone (a new block) must be deleted before its successor, which has
/// the same place in the VPC: the cluster and the node group in it cannot move first, so both
/// are replaced, the node group delete first (its name, from the zones, stays the same).
#[test]
fn a_subnet_replaced_in_its_zone_replaces_what_runs_in_it() {
    let state = applied(&graph_of(EXAMPLE));
    let plan = plan_of(
        &graph_of(&EXAMPLE.replace(
            "\"10.0.1.0/24\", \"10.0.2.0/24\"",
            "\"10.0.1.0/25\", \"10.0.2.0/24\"",
        )),
        &state,
    );
    assert_eq!(
        action_of(&plan, "subnet.private.us-west-2a"),
        Action::Replace
    );
    assert_eq!(action_of(&plan, "eks_cluster"), Action::Replace);
    let group = change_of(&plan, "eks_node_group.default");
    assert_eq!(group.action, Action::Replace);
    assert!(!group.creates_first());
    // An instance type change gives the successor a new name: made first.
    let plan = plan_of(
        &graph_of(&EXAMPLE.replace("[\"t3.medium\"]", "[\"m5.large\"]")),
        &state,
    );
    let group = change_of(&plan, "eks_node_group.default");
    assert_eq!(group.action, Action::Replace);
    assert!(group.creates_first());
    assert_eq!(action_of(&plan, "eks_cluster"), Action::NoOp);
}

/// `kserve_mode = "raw"` becomes an attribute of `addon.kserve` (which the installer writes into
/// KServe's config, `addons::render::configured`); the serverless example has none.
#[test]
fn raw_kserve_mode_is_an_attribute_of_the_kserve_addon() {
    let mode = |text: &str| {
        let graph = graph_of(text);
        let kserve = graph
            .resources
            .values()
            .find(|r| r.address.as_str() == "addon.kserve")
            .expect("addon.kserve")
            .attrs
            .clone();
        kserve.get(crate::addons::render::DEPLOYMENT_MODE).cloned()
    };
    assert_eq!(mode(EXAMPLE), None);
    let raw = EXAMPLE.replace("kserve_mode = \"serverless\"", "kserve_mode = \"raw\"");
    assert_eq!(mode(&raw), Some(json!("RawDeployment")));
}
