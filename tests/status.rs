//! `mlops status` end to end: the example applied to the AWS emulator with its add-ons in the
//! test API server, then InferenceServices made directly in the server; what `status` prints
//! and its JSON are checked against the emulator (through the SDK) and the server's own store.

mod support;

use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{json, Value};
use support::apiserver::TestApiServer;
use support::{example_as, example_with_addons, Emulator, Project};

/// The namespace of the example's IRSA service account, which `apply` creates.
const NAMESPACE: &str = "kserve-inference";

fn inference_service(name: &str) -> Value {
    json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"predictor": {
            "serviceAccountName": "kserve-sa",
            "model": {"modelFormat": {"name": "sklearn"}, "storageUri": format!("s3://models/{name}")},
        }},
    })
}

/// Creates an InferenceService through the server's API, as kubectl would.
async fn create(server: &TestApiServer, object: &Value) {
    let gvk = GroupVersionKind::gvk("serving.kserve.io", "v1beta1", "InferenceService");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "inferenceservices");
    let api: Api<DynamicObject> = Api::namespaced_with(server.client().await, NAMESPACE, &resource);
    let name = object["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply("kubectl"), &Patch::Apply(object))
        .await
        .unwrap_or_else(|e| panic!("create InferenceService {name}: {e}"));
}

/// The stored InferenceService's `Ready` condition status, once reported.
fn ready_status(server: &TestApiServer, name: &str) -> Option<Value> {
    let object = server.object(
        "serving.kserve.io/v1beta1",
        "InferenceService",
        Some(NAMESPACE),
        name,
    )?;
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"].clone())
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The line of `text` that contains `needle`.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}` in:\n{text}"))
}

#[test]
fn status_shows_the_gateway_the_models_and_the_node_groups() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let server = TestApiServer::builder()
        .delays(Duration::from_millis(50))
        .start();
    let kubeconfig = server.kubeconfig().to_str().unwrap().to_string();
    let stack = "status";
    let project = Project::new(&moto, stack, &example_with_addons(stack));
    let with_cluster = |args: &[&str]| project.mlops_in_cluster(&kubeconfig, args);

    with_cluster(&["apply", stack, "--auto-approve"]).ok();

    // What to expect, read around mlops: the node group from EKS, the gateway from the server.
    let (group_name, sizes, group_status) = aws.run(async {
        let cluster = format!("{stack}-cluster");
        let names = aws
            .eks
            .list_nodegroups()
            .cluster_name(&cluster)
            .send()
            .await
            .unwrap();
        let name = names.nodegroups()[0].clone();
        let group = aws
            .eks
            .describe_nodegroup()
            .cluster_name(&cluster)
            .nodegroup_name(&name)
            .send()
            .await
            .unwrap()
            .nodegroup
            .unwrap();
        let scaling = group.scaling_config().unwrap();
        let sizes = (
            scaling.min_size().unwrap(),
            scaling.desired_size().unwrap(),
            scaling.max_size().unwrap(),
        );
        (name, sizes, group.status().unwrap().as_str().to_string())
    });
    assert_eq!(
        sizes,
        (1, 2, 3),
        "the example's sizes, as the emulator has them"
    );
    let gateway = server
        .object(
            "v1",
            "Service",
            Some("istio-system"),
            "istio-ingressgateway",
        )
        .expect("the ingress gateway");
    let hostname = gateway["status"]["loadBalancer"]["ingress"][0]["hostname"]
        .as_str()
        .expect("the gateway's hostname")
        .to_string();

    // Two models: one that becomes Ready, one that never does.
    server.set_never_ready(NAMESPACE, "broken");
    aws.run(create(&server, &inference_service("wine")));
    aws.run(create(&server, &inference_service("broken")));
    wait_until("wine Ready", || {
        ready_status(&server, "wine") == Some(json!("True"))
    });
    wait_until("broken reported", || {
        ready_status(&server, "broken") == Some(json!("False"))
    });

    let human = with_cluster(&["status", stack]).ok();
    let out = &human.stdout;
    assert!(
        out.starts_with(&format!(
            "stack `{stack}`, EKS cluster `{stack}-cluster`: not ready\n"
        )),
        "{out}"
    );
    assert!(
        line_with(out, "(Service istio-system/istio-ingressgateway)").contains(&hostname),
        "{out}"
    );
    let wine = line_with(out, "kserve-inference/wine ");
    assert!(wine.contains(" yes "), "{wine}");
    assert!(
        wine.ends_with(" http://wine.kserve-inference.example.com"),
        "{wine}"
    );
    let broken = line_with(out, "kserve-inference/broken ");
    assert!(broken.contains(" no "), "{broken}");
    assert!(
        out.contains("  kserve-inference/broken: RevisionMissing: Revision \"broken-predictor-00001\" failed with message: 0/2 nodes are available"),
        "{out}"
    );
    let group: Vec<&str> = line_with(out, &group_name).split_whitespace().collect();
    assert_eq!(
        group,
        [
            group_name.as_str(),
            &group_status,
            &sizes.0.to_string(),
            &sizes.1.to_string(),
            &sizes.2.to_string()
        ],
        "{out}"
    );
    assert!(
        human
            .stderr
            .contains("curl -H \"Host: wine.kserve-inference.example.com\""),
        "{}",
        human.stderr
    );

    let json = with_cluster(&["status", stack, "--json"]).ok();
    let status: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", json.stdout));
    assert_eq!(status["format_version"], 1);
    assert_eq!(status["stack"], stack);
    assert_eq!(status["ready"], false, "broken is not ready");
    assert_eq!(status["kubernetes_checked"], true);
    assert_eq!(
        status["ingress_gateway"],
        json!({"service": "istio-system/istio-ingressgateway", "state": "ready", "hostname": hostname, "internal": false})
    );
    assert_eq!(
        status["inference_services"],
        json!([
            {
                "namespace": NAMESPACE, "name": "broken", "url": null, "ready": false,
                "reason": "RevisionMissing",
                "message": "Revision \"broken-predictor-00001\" failed with message: 0/2 nodes are available: 2 Insufficient cpu.",
            },
            {
                "namespace": NAMESPACE, "name": "wine", "url": "http://wine.kserve-inference.example.com",
                "ready": true, "reason": null, "message": null,
            },
        ])
    );
    assert_eq!(
        status["node_groups"],
        json!([{
            "address": "eks_node_group.default", "name": group_name, "status": group_status,
            "min_size": sizes.0, "desired_size": sizes.1, "max_size": sizes.2, "issues": [],
        }])
    );

    // Once the broken model recovers, the whole stack is ready.
    server.clear_never_ready(NAMESPACE, "broken");
    wait_until("broken Ready once cleared", || {
        ready_status(&server, "broken") == Some(json!("True"))
    });
    let json = with_cluster(&["status", stack, "--json"]).ok();
    let status: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(status["ready"], true, "{status}");

    // A cluster that cannot be reached: the usual error, with its hint.
    let unreachable = project.dir.path().join("unreachable.yaml");
    std::fs::write(
        &unreachable,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\n",
    )
    .unwrap();
    let refused = project.mlops(&[
        "status",
        stack,
        "--kubeconfig",
        unreachable.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("error: cannot reach the Kubernetes API server of `http://127.0.0.1:9/`"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("hint: check that the cluster's endpoint is reachable"),
        "{}",
        refused.stderr
    );
}

/// With `[addons] enabled = false` mlops stays out of the cluster: `status` reports the node
/// groups only, and says so.
#[test]
fn status_without_addons_reports_the_node_groups_only() {
    let moto = Emulator::start();
    let stack = "plain";
    let project = Project::new(&moto, stack, &example_as(stack));
    project.apply().ok();
    let human = project.mlops(&["status", stack]).ok();
    assert_eq!(
        human
            .stdout
            .matches("not checked: `[addons] enabled = false` keeps mlops out of the cluster")
            .count(),
        2,
        "{}",
        human.stdout
    );
    let json = project.mlops(&["status", stack, "--json"]).ok();
    let status: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(status["kubernetes_checked"], false);
    assert_eq!(status["ingress_gateway"], Value::Null);
    assert_eq!(status["inference_services"], Value::Null);
    assert_eq!(status["node_groups"][0]["status"], "ACTIVE");
    assert_eq!(status["ready"], true);
}
