//! The planner's safety nets: the replacement gate for every protected kind, `protect = false`,
//! renames by `[[moved]]` and by the same AWS name, `--replace`, a second address of one object,
//! and `--refresh-only` plans; with snapshots of how they render.

use std::collections::BTreeSet;

use serde_json::json;

use super::tests::{action_of, applied, changed_attrs, graph_of, plan_of, position, EXAMPLE};
use super::*;
use crate::graph::DesiredGraph;
use crate::model::{Address, ResourceKind};
use crate::ui::Style;

/// The example without its workloads, which name the bucket by its key.
fn without_workloads(text: &str) -> String {
    text.split("\n[workloads]").next().unwrap().to_string()
}

fn addresses(list: &[&str]) -> BTreeSet<Address> {
    list.iter().map(|a| Address::new(*a)).collect()
}

fn protected(plan: &Plan) -> Vec<&str> {
    plan.actions()
        .filter(|c| c.protected)
        .map(|c| c.address.as_str())
        .collect()
}

/// The graph of `text` with `moved` after it, and the options that carry its `[[moved]]`.
fn options_with(moved: &str, text: &str) -> (DesiredGraph, PlanOptions) {
    let spec = crate::spec::parse(
        std::path::Path::new("stacks/example.toml"),
        format!("{text}\n{moved}"),
    )
    .unwrap();
    let options = PlanOptions {
        moved: spec.moved.clone(),
        ..PlanOptions::default()
    };
    (DesiredGraph::from_spec(&spec).unwrap(), options)
}

/// `stacks/example.toml:L:1`, L the line of the first `[[moved]]` after `text`.
fn moved_at(text: &str) -> String {
    format!("stacks/example.toml:{}:1", text.lines().count() + 2)
}

#[test]
fn exactly_the_stateful_and_expensive_kinds_are_protected() {
    let protected: Vec<ResourceKind> = ResourceKind::ALL
        .into_iter()
        .filter(|k| k.loses().is_some())
        .collect();
    assert_eq!(
        protected,
        vec![
            ResourceKind::Vpc,
            ResourceKind::NatGateway,
            ResourceKind::EksCluster,
            ResourceKind::EksNodeGroup,
            ResourceKind::IamOidcProvider,
            ResourceKind::S3Bucket,
            ResourceKind::EcrRepository,
        ]
    );
}

/// Per protected kind, a change of the spec that replaces or deletes it: a new VPC range (the
/// VPC, and the NAT gateway in a subnet that is replaced with it), a new cluster name (the
/// cluster, and through its name and issuer the node group and the OIDC provider), a new
/// bucket name, a repository renamed. Each is protected, and the gate refuses each until
/// `--allow-replace` names it.
#[test]
fn a_replacement_or_delete_of_each_protected_kind_is_refused_until_allowed() {
    let state = applied(&graph_of(EXAMPLE));
    let cases = [
        (("10.0.", "10.1."), vec!["vpc", "nat_gateway.us-west-2a"]),
        (
            ("name = \"mlops-cluster\"", "name = \"mlops-cluster-2\""),
            vec!["eks_cluster", "eks_node_group.default", "iam_oidc_provider"],
        ),
        (
            ("mlops-models-bucket", "mlops-models-bucket-2"),
            vec!["s3_bucket.models"],
        ),
        (
            ("[repositories.wine-model]", "[repositories.beer-model]"),
            vec!["ecr_repository.wine-model"],
        ),
    ];
    let mut kinds = BTreeSet::new();
    for ((from, to), expected) in cases {
        let plan = plan_of(&graph_of(&EXAMPLE.replace(from, to)), &state);
        let marked = protected(&plan);
        for address in &expected {
            assert!(
                marked.contains(address),
                "{address} is not protected: {marked:?}"
            );
            kinds.insert(plan.changes[position(&plan, address)].kind);
            // Every protected change but this one allowed: this one is still refused.
            let others: Vec<&str> = marked.iter().copied().filter(|a| a != address).collect();
            let Err(PlanError::Protected(left)) = gate::check(&plan, &addresses(&others)) else {
                panic!("{address} passed the gate without being allowed")
            };
            assert_eq!(left.len(), 1);
            assert_eq!(left[0].address.as_str(), *address);
        }
        gate::check(&plan, &addresses(&marked)).unwrap();
        // Cheap kinds replaced or deleted with them are not protected.
        for change in plan.actions().filter(|c| c.kind.loses().is_none()) {
            assert!(!change.protected, "{} is protected", change.address);
        }
    }
    assert_eq!(kinds.len(), 7, "{kinds:?}");
}

#[test]
fn the_refusal_names_the_address_the_attribute_and_what_is_lost() {
    let state = applied(&graph_of(EXAMPLE));
    let plan = plan_of(
        &graph_of(&EXAMPLE.replace("mlops-models-bucket", "mlops-models-2")),
        &state,
    );
    let err = gate::check(&plan, &BTreeSet::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the plan deletes or replaces protected resources; nothing was changed:\n  \
         `s3_bucket.models` would be replaced: `bucket` changes (\"mlops-models-bucket\" -> \"mlops-models-2\"); \
         this loses every object in the bucket (or, without `force_destroy`, the apply fails on a bucket that is not empty)"
    );
    let hint = err.hint().unwrap();
    assert!(
        hint.contains("`--allow-replace s3_bucket.models`"),
        "{hint}"
    );
    assert!(hint.contains("`protect = false`"), "{hint}");

    let mut gone = without_workloads(EXAMPLE).replace("s3_read = [\"models\"]", "");
    gone.replace_range(
        gone.find("[buckets.models]").unwrap()..gone.find("[repositories").unwrap(),
        "",
    );
    let plan = plan_of(&graph_of(&gone), &state);
    let err = gate::check(&plan, &BTreeSet::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("`s3_bucket.models` would be destroyed: the spec no longer has it; this loses every object"),
        "{err}"
    );
}

#[test]
fn protect_false_in_the_spec_lets_its_resources_go() {
    let state = applied(&graph_of(EXAMPLE));
    let unprotect =
        |text: String, after: &str| text.replace(after, &format!("{after}\nprotect = false"));
    let changed = EXAMPLE
        .replace("10.0.", "10.1.")
        .replace("mlops-models-bucket", "mlops-models-bucket-2")
        .replace("name = \"mlops-cluster\"", "name = \"mlops-cluster-2\"");
    let all = protected(&plan_of(&graph_of(&changed), &state)).len();
    // `[vpc]` covers the VPC and its NAT gateways, a bucket's table the bucket.
    let text = unprotect(
        unprotect(changed.clone(), "nat = \"single\""),
        "force_destroy = false",
    );
    let plan = plan_of(&graph_of(&text), &state);
    for address in ["vpc", "nat_gateway.us-west-2a", "s3_bucket.models"] {
        let change = &plan.changes[position(&plan, address)];
        assert!(change.action.deletes() && !change.protected, "{address}");
    }
    assert_eq!(protected(&plan).len(), all - 3);
    // `[eks]` the cluster and its OIDC provider, a node group's table the group.
    let text = unprotect(unprotect(text, "private_endpoint = true"), "taints = []");
    assert!(protected(&plan_of(&graph_of(&text), &state)).is_empty());
}

#[test]
fn a_destroy_of_the_whole_stack_is_not_gated() {
    let state = applied(&graph_of(EXAMPLE));
    let empty = DesiredGraph::from_resources(Vec::new()).unwrap();
    let options = PlanOptions {
        whole_destroy: true,
        ..PlanOptions::default()
    };
    let plan = diff(&empty, &state, &BTreeSet::new(), &options).unwrap();
    assert_eq!(plan.summary().destroy, 52);
    gate::check(&plan, &BTreeSet::new()).unwrap();
    // The same deletions as a spec that lost everything would be.
    assert_eq!(protected(&plan_of(&empty, &state)).len(), 7);
}

#[test]
fn a_moved_entry_keeps_the_object_under_its_new_address() {
    let mut state = applied(&graph_of(&without_workloads(EXAMPLE)));
    // Tagged for its new address already: the move is all there is to do.
    state
        .resources
        .get_mut(&Address::new("s3_bucket.models"))
        .unwrap()
        .attrs["tags"]["mlops:address"] = json!("s3_bucket.models-v2");
    let text = without_workloads(EXAMPLE)
        .replace("[buckets.models]", "[buckets.models-v2]")
        .replace("s3_read = [\"models\"]", "s3_read = [\"models-v2\"]");
    let (graph, options) = options_with(
        "[[moved]]\nfrom = \"s3_bucket.models\"\nto = \"s3_bucket.models-v2\"\n",
        &text,
    );
    let plan = diff(&graph, &state, &BTreeSet::new(), &options).unwrap();
    assert_eq!(plan.moves.len(), 1);
    assert_eq!(plan.moves[0].from.as_str(), "s3_bucket.models");
    assert_eq!(plan.moves[0].to.as_str(), "s3_bucket.models-v2");
    assert_eq!(
        plan.moves[0].why,
        format!("`[[moved]]` at {}", moved_at(&text))
    );
    assert_eq!(action_of(&plan, "s3_bucket.models-v2"), Action::NoOp);
    assert!(!plan
        .changes
        .iter()
        .any(|c| c.address.as_str() == "s3_bucket.models"));
    assert_eq!(
        plan.summary(),
        Summary {
            moved: 1,
            ..Summary::default()
        }
    );
    assert!(plan.has_changes());
    gate::check(&plan, &BTreeSet::new()).unwrap();
    insta::assert_snapshot!("moved_plan", render::human(&plan, Style::PLAIN));

    // Made already: the entry is left alone.
    let mut moved = state.clone();
    assert!(moved.rename(
        &Address::new("s3_bucket.models"),
        &Address::new("s3_bucket.models-v2")
    ));
    let plan = diff(&graph, &moved, &BTreeSet::new(), &options).unwrap();
    assert!(plan.moves.is_empty());
    assert!(!plan.has_changes());
}

#[test]
fn a_bucket_renamed_in_the_spec_with_the_same_name_moves_without_a_moved_entry() {
    let state = applied(&graph_of(&without_workloads(EXAMPLE)));
    let text = without_workloads(EXAMPLE)
        .replace("[buckets.models]", "[buckets.models-v2]")
        .replace("s3_read = [\"models\"]", "s3_read = [\"models-v2\"]");
    let plan = plan_of(&graph_of(&text), &state);
    assert_eq!(
        plan.moves,
        vec![Move {
            from: Address::new("s3_bucket.models"),
            to: Address::new("s3_bucket.models-v2"),
            why: "the same `bucket` `mlops-models-bucket`".into(),
        }]
    );
    // The same bucket, its `mlops:address` tag brought to the new address.
    assert_eq!(action_of(&plan, "s3_bucket.models-v2"), Action::Update);
    assert_eq!(changed_attrs(&plan, "s3_bucket.models-v2"), vec!["tags"]);
    assert_eq!(
        plan.summary(),
        Summary {
            change: 1,
            moved: 1,
            ..Summary::default()
        }
    );
    let text_plan = render::human(&plan, Style::PLAIN);
    assert!(
        text_plan.contains(
            "  # s3_bucket.models-v2 will be updated in-place\n  # (moved from s3_bucket.models)\n"
        ),
        "{text_plan}"
    );
    assert!(text_plan.contains("Plan: 0 to add, 1 to change, 0 to destroy, 1 to move."));
    let json = json::to_json(&plan);
    assert_eq!(json["summary"]["move"], json!(1));
    assert_eq!(json["moves"][0]["from"], json!("s3_bucket.models"));
    // A new name is a new bucket: the old one is deleted, and that is protected.
    let text = text.replace("mlops-models-bucket", "mlops-models-v2");
    let plan = plan_of(&graph_of(&text), &state);
    assert!(plan.moves.is_empty());
    assert_eq!(protected(&plan), vec!["s3_bucket.models"]);
}

#[test]
fn a_move_onto_an_address_the_state_holds_is_refused_with_its_line() {
    let state = applied(&graph_of(EXAMPLE));
    let text = EXAMPLE.replace("[repositories.wine-model]", "[repositories.beer-model]");
    let (graph, options) = options_with(
        "[[moved]]\nfrom = \"ecr_repository.wine-model\"\nto = \"ecr_repository.beer-model\"\n",
        &text,
    );
    let mut taken = state.clone();
    let repository = taken.resources[&Address::new("ecr_repository.wine-model")].clone();
    taken
        .resources
        .insert(Address::new("ecr_repository.beer-model"), repository);
    let err = diff(&graph, &taken, &BTreeSet::new(), &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: `[[moved]]` from `ecr_repository.wine-model` to `ecr_repository.beer-model`, but the state holds both",
            moved_at(&text)
        )
    );
}

#[test]
fn replace_forces_one_replacement_and_stays_protected() {
    let state = applied(&graph_of(EXAMPLE));
    let graph = graph_of(EXAMPLE);
    let options = PlanOptions {
        replace: addresses(&["s3_bucket.models"]),
        ..PlanOptions::default()
    };
    let plan = diff(&graph, &state, &BTreeSet::new(), &options).unwrap();
    let actions: Vec<(&str, Action)> = plan
        .actions()
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    assert_eq!(actions, vec![("s3_bucket.models", Action::Replace)]);
    let change = &plan.changes[position(&plan, "s3_bucket.models")];
    assert_eq!(
        change.reason.as_deref(),
        Some("replacement asked for with `--replace`")
    );
    assert!(change.protected);
    let err = gate::check(&plan, &BTreeSet::new()).unwrap_err();
    assert!(err
        .to_string()
        .contains("`s3_bucket.models` would be replaced: replacement asked for with `--replace`"));
    gate::check(&plan, &addresses(&["s3_bucket.models"])).unwrap();

    let options = PlanOptions {
        replace: addresses(&["s3_bucket.model"]),
        ..PlanOptions::default()
    };
    let err = diff(&graph, &state, &BTreeSet::new(), &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`--replace s3_bucket.model` names no resource that the stack has and the state holds"
    );
    assert_eq!(err.hint().unwrap(), "did you mean `s3_bucket.models`?");
}

#[test]
fn a_delete_of_an_object_another_address_keeps_only_forgets_it() {
    let mut state = applied(&graph_of(EXAMPLE));
    let bucket = state.resources[&Address::new("s3_bucket.models")].clone();
    state
        .resources
        .insert(Address::new("s3_bucket.copy"), bucket);
    let plan = plan_of(&graph_of(EXAMPLE), &state);
    let change = &plan.changes[position(&plan, "s3_bucket.copy")];
    assert_eq!(change.action, Action::Delete);
    assert_eq!(
        change.reason.as_deref(),
        Some("the same object is `s3_bucket.models`, which keeps it: only forgotten")
    );
    assert!(!change.protected);
}

#[test]
fn a_refresh_only_plan_lists_the_drift_and_writes_it() {
    let stored = applied(&graph_of(EXAMPLE));
    let mut refreshed = stored.clone();
    refreshed
        .resources
        .get_mut(&Address::new("eks_node_group.default"))
        .unwrap()
        .attrs
        .insert("desired_size".into(), json!(5));
    let gone = Address::new("ecr_repository.wine-model");
    refreshed.resources.remove(&gone);
    let plan = drift(&stored, &refreshed, &BTreeSet::from([gone.clone()]));
    assert!(plan.refresh_only);
    let actions: Vec<(&str, Action)> = plan
        .actions()
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("ecr_repository.wine-model", Action::Delete),
            ("eks_node_group.default", Action::Update)
        ]
    );
    insta::assert_snapshot!("refresh_only_plan", render::human(&plan, Style::PLAIN));
    let json = json::to_json(&plan);
    assert_eq!(json["refresh_only"], json!(true));

    let state = written(stored.clone(), &plan);
    assert!(!state.resources.contains_key(&gone));
    assert_eq!(
        state.resources[&Address::new("eks_node_group.default")].attrs["desired_size"],
        json!(5)
    );
    let mut expected = refreshed.clone();
    expected.serial = stored.serial;
    assert_eq!(state.resources, expected.resources);
    assert!(!drift(&stored, &stored, &BTreeSet::new()).has_changes());
}

#[test]
fn snapshot_of_a_protected_replacement_and_its_json() {
    let state = applied(&graph_of(EXAMPLE));
    let plan = plan_of(
        &graph_of(&EXAMPLE.replace("[\"t3.medium\"]", "[\"m5.large\"]")),
        &state,
    );
    insta::assert_snapshot!("protected_plan", render::human(&plan, Style::PLAIN));
    let json = json::to_json(&plan);
    let change = json["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "eks_node_group.default")
        .unwrap();
    assert_eq!(change["protected"], json!(true));
    assert_eq!(change["previous_address"], json!(null));
    assert_eq!(json["format_version"], json!("1.1"));
    assert!(markdown::markdown(&plan)
        .contains("**protected**: needs `--allow-replace eks_node_group.default`"));
}

/// Models a run stopped while AWS was still CREATING the cluster: the state marks it `pending`,
/// the refreshed status says CREATING, and no attribute differs. The plan is an update that
/// resumes the wait, so that the node groups, which wait for the cluster's change, start only
/// once it is ACTIVE; without the mark the same state plans nothing.
#[test]
fn a_pending_object_is_an_update_that_resumes_its_wait() {
    let graph = graph_of(EXAMPLE);
    let mut state = applied(&graph);
    assert!(!plan_of(&graph, &state).has_changes());
    let cluster = state
        .resources
        .get_mut(&Address::new("eks_cluster"))
        .unwrap();
    cluster.pending = true;
    cluster.attrs.insert("status".into(), json!("CREATING"));
    let plan = plan_of(&graph, &state);
    assert_eq!(action_of(&plan, "eks_cluster"), Action::Update);
    assert!(changed_attrs(&plan, "eks_cluster").is_empty());
    let change = &plan.changes[position(&plan, "eks_cluster")];
    assert_eq!(
        change.reason.as_deref(),
        Some("resume the wait until it is ready (CREATING): the run that created or changed it stopped first")
    );
    assert!(!change.protected);
    assert_eq!(plan.summary().change, 1);
    let rendered = render::human(&plan, Style::PLAIN);
    assert!(
        rendered.contains(
            "# eks_cluster will be updated in-place (resume the wait until it is ready (CREATING)"
        ),
        "{rendered}"
    );
}

/// Models EKS reporting a failed create (a cluster `FAILED`, a node group `CREATE_FAILED`,
/// with health issues): the object is replaced, the plan gives EKS's reason, and the gate lets
/// it through without `--allow-replace` (it never served: nothing is lost), while the same
/// kinds stay protected for any other replacement. A `pending` mark does not turn it into a
/// wait: the failure wins.
#[test]
fn an_object_whose_create_failed_is_replaced_with_aws_reason_and_not_gated() {
    let graph = graph_of(EXAMPLE);
    let mut state = applied(&graph);
    let group = state
        .resources
        .get_mut(&Address::new("eks_node_group.default"))
        .unwrap();
    group.pending = true;
    group.attrs.insert("status".into(), json!("CREATE_FAILED"));
    group.attrs.insert(
        "health_issues".into(),
        json!(["AsgInstanceLaunchFailures: InsufficientInstanceCapacity ()"]),
    );
    let plan = plan_of(&graph, &state);
    let change = &plan.changes[position(&plan, "eks_node_group.default")];
    assert_eq!(change.action, Action::Replace);
    assert!(!change.creates_first(), "the same name: deleted first");
    assert_eq!(
        change.reason.as_deref(),
        Some("AWS reports its create failed: CREATE_FAILED: AsgInstanceLaunchFailures: InsufficientInstanceCapacity ()")
    );
    assert!(protected(&plan).is_empty(), "{:?}", protected(&plan));
    assert!(gate::check(&plan, &BTreeSet::new()).is_ok());

    // A cluster FAILED without a reason; an ACTIVE node group and a DEGRADED one are no failed
    // creates.
    let mut state = applied(&graph);
    state
        .resources
        .get_mut(&Address::new("eks_cluster"))
        .unwrap()
        .attrs
        .insert("status".into(), json!("FAILED"));
    let plan = plan_of(&graph, &state);
    let change = &plan.changes[position(&plan, "eks_cluster")];
    assert_eq!(change.action, Action::Replace);
    assert_eq!(
        change.reason.as_deref(),
        Some("AWS reports its create failed: FAILED, AWS gives no reason")
    );
    assert!(!change.protected);
    for status in ["ACTIVE", "DEGRADED"] {
        let mut state = applied(&graph);
        state
            .resources
            .get_mut(&Address::new("eks_node_group.default"))
            .unwrap()
            .attrs
            .insert("status".into(), json!(status));
        assert!(!plan_of(&graph, &state).has_changes(), "{status}");
    }
}
