//! The in-process test API server (`tests/support/apiserver.rs`), checked through a
//! `kube::Client` built from its kubeconfig, as `mlops` talks to a cluster, and through the
//! server's own log and store.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ErrorResponse, GroupVersionKind};
use kube::discovery::{self, Discovery, Scope};
use kube::Client;
use serde_json::{json, Value};
use support::apiserver::TestApiServer;

const MANAGER: &str = "mlops-test";
/// How long the test server's stand-ins take (a CRD to be served, a workload to be ready, a load
/// balancer to come and to go): long enough that a check of the state before it is not raced
/// by the timer on a loaded machine, short enough for a quick suite.
const DELAY: Duration = Duration::from_millis(500);

fn server() -> TestApiServer {
    TestApiServer::builder().delays(DELAY).start()
}

/// An API for any kind, resolved through discovery as a dynamic client does.
async fn api(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{api_version} {kind} is not served: {e}"));
    match (capabilities.scope, namespace) {
        (Scope::Namespaced, Some(namespace)) => {
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    }
}

async fn apply(api: &Api<DynamicObject>, object: &Value) -> kube::Result<DynamicObject> {
    let name = object["metadata"]["name"].as_str().expect("a name");
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
}

/// The API error of a failed call.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> ErrorResponse {
    match result {
        Err(kube::Error::Api(response)) => response,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Polls `condition` until it holds; panics after `timeout`, naming `what`.
async fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    support::eventually(what, timeout, || {
        let holds = condition();
        async move { holds.then_some(()) }
    })
    .await
}

fn config_map(namespace: &str, name: &str, labels: Value, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": data,
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn deployment(namespace: &str, name: &str, app: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]}]},
            },
        },
    })
}

fn service(namespace: &str, name: &str, app: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": kind, "selector": {"app": app}, "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]},
    })
}

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.test"},
        "spec": {
            "group": "example.test",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            }],
        },
    })
}

fn widget(name: &str, size: i64) -> Value {
    json!({
        "apiVersion": "example.test/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"size": size},
    })
}

#[tokio::test]
async fn a_client_from_the_kubeconfig_talks_plain_http_with_the_token() {
    let server = server();
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: {}", server.url())),
        "{kubeconfig}"
    );
    assert!(server.url().starts_with("http://127.0.0.1:"));

    let client = server.client().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "30")
    );

    // The token is checked independently of kube-rs: a bare request without it is refused.
    let anonymous = ureq::get(&format!("{}/version", server.url()))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let authorized = ureq::get(&format!("{}/api/v1/namespaces", server.url()))
        .header("Authorization", &format!("Bearer {}", server.token()))
        .call()
        .unwrap();
    assert_eq!(authorized.status(), 200);
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 200]);
}

#[tokio::test]
async fn discovery_serves_what_the_add_on_manifests_use() {
    let server = server();
    let client = server.client().await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for (group, version, kind) in [
        ("", "v1", "Namespace"),
        ("", "v1", "Endpoints"),
        ("apps", "v1", "DaemonSet"),
        ("policy", "v1", "PodDisruptionBudget"),
        ("autoscaling", "v2", "HorizontalPodAutoscaler"),
        (
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        ),
        ("apiregistration.k8s.io", "v1", "APIService"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        ("coordination.k8s.io", "v1", "Lease"),
    ] {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{gvk:?} not discovered"));
        let pinned = discovery::pinned_kind(&client, &gvk).await.unwrap();
        assert_eq!(pinned.0, resource);
        assert_eq!(pinned.1.scope, capabilities.scope);
    }
    let deployments = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .unwrap();
    assert_eq!(deployments.0.plural, "deployments");
    assert_eq!(deployments.1.scope, Scope::Namespaced);
    assert!(deployments
        .1
        .subresources
        .iter()
        .any(|(r, _)| r.plural == "status"));
    let crds = discovery::pinned_kind(
        &client,
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    )
    .await
    .unwrap();
    assert_eq!(crds.1.scope, Scope::Cluster);
}

#[tokio::test]
async fn a_custom_resource_is_served_only_once_its_crd_is_established() {
    let server = server();
    let client = server.client().await;
    let crds = api(
        &client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
    )
    .await;
    let created = Instant::now();
    apply(&crds, &widget_crd()).await.unwrap();

    // Before Established: not in discovery, and the resource path is not served.
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().all(|g| g.name != "example.test"));
    let path =
        "/apis/example.test/v1/namespaces/default/widgets/small?fieldManager=mlops-test&force=true";
    let request = http::Request::patch(path)
        .header("Content-Type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&widget("small", 1)).unwrap())
        .unwrap();
    let early = refusal(client.request::<Value>(request).await);
    assert_eq!((early.code, early.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        early.message,
        "the server could not find the requested resource"
    );
    let recorded = server
        .requests()
        .into_iter()
        .find(|r| r.is_unserved())
        .expect("the 404 is recorded");
    assert_eq!(recorded.kind.as_deref(), Some("Widget"));
    assert_eq!(recorded.api_version.as_deref(), Some("example.test/v1"));
    assert!(server
        .object("example.test/v1", "Widget", Some("default"), "small")
        .is_none());

    // Established after the delay, waited for with a watch as kube-runtime does.
    let crds_typed: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let established = kube::runtime::wait::await_condition(
        crds_typed,
        "widgets.example.test",
        kube::runtime::conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(5), established)
        .await
        .unwrap()
        .unwrap();
    assert!(
        created.elapsed() >= DELAY,
        "established after {:?}",
        created.elapsed()
    );
    let crd = server
        .object(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "widgets.example.test",
        )
        .unwrap();
    let conditions: BTreeSet<(String, String)> = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(conditions.contains(&("Established".into(), "True".into())));
    assert!(conditions.contains(&("NamesAccepted".into(), "True".into())));

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.test", "v1", "Widget"))
        .expect("Widget discovered once Established");
    assert_eq!(
        (resource.plural.as_str(), caps.scope),
        ("widgets", Scope::Namespaced)
    );
    let widgets = api(&client, "example.test/v1", "Widget", Some("default")).await;
    apply(&widgets, &widget("small", 1)).await.unwrap();
    let stored = server
        .object("example.test/v1", "Widget", Some("default"), "small")
        .unwrap();
    assert_eq!(stored["spec"]["size"], 1);

    // Deleting the CRD deletes its custom resources and stops serving them.
    crds.delete("widgets.example.test", &DeleteParams::default())
        .await
        .unwrap();
    assert!(server.objects().iter().all(|o| o["kind"] != "Widget"));
    let gone = refusal(widgets.get("small").await);
    assert_eq!(
        gone.message,
        "the server could not find the requested resource"
    );
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_leaves_an_unchanged_object_alone() {
    let server = server();
    let client = server.client().await;
    let maps = api(&client, "v1", "ConfigMap", Some("default")).await;
    let first = config_map(
        "default",
        "settings",
        json!({"team": "a"}),
        json!({"a": "1", "b": "2"}),
    );
    apply(&maps, &first).await.unwrap();
    let created = server
        .object("v1", "ConfigMap", Some("default"), "settings")
        .unwrap();
    let metadata = &created["metadata"];
    assert!(metadata["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(metadata["creationTimestamp"].is_string());
    assert_eq!(metadata["managedFields"][0]["manager"], MANAGER);
    assert_eq!(metadata["managedFields"][0]["operation"], "Apply");
    assert_eq!(
        metadata["managedFields"][0]["fieldsV1"]["f:data"],
        json!({"f:a": {}, "f:b": {}})
    );

    // The same configuration again: answered, but nothing stored.
    let mark = server.mark();
    apply(&maps, &first).await.unwrap();
    let again = server
        .object("v1", "ConfigMap", Some("default"), "settings")
        .unwrap();
    assert_eq!(again, created);
    let writes = server.writes_since(mark);
    assert_eq!(writes.len(), 1);
    assert!(!writes[0].changed, "{}", writes[0]);
    assert_eq!(
        writes[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(
        writes[0].query.contains("fieldManager=mlops-test"),
        "{}",
        writes[0]
    );

    // Another manager's field survives; a field this manager stopped setting goes.
    let other = PatchParams {
        field_manager: Some("operator".into()),
        ..PatchParams::default()
    };
    maps.patch(
        "settings",
        &other,
        &Patch::Merge(json!({"data": {"extra": "x"}})),
    )
    .await
    .unwrap();
    let second = config_map(
        "default",
        "settings",
        json!({"team": "a"}),
        json!({"a": "1", "c": "3"}),
    );
    apply(&maps, &second).await.unwrap();
    let merged = server
        .object("v1", "ConfigMap", Some("default"), "settings")
        .unwrap();
    assert_eq!(merged["data"], json!({"a": "1", "c": "3", "extra": "x"}));
    assert_ne!(
        merged["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(merged["metadata"]["uid"], created["metadata"]["uid"]);

    // Without force, taking over another manager's field is a conflict, as on a real server.
    let taking = config_map(
        "default",
        "settings",
        json!({"team": "a"}),
        json!({"a": "1", "c": "3", "extra": "mine"}),
    );
    let conflict = refusal(
        maps.patch(
            "settings",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&taking),
        )
        .await,
    );
    assert_eq!(conflict.code, 409);
    assert_eq!(
        conflict.message,
        "Apply failed with 1 conflict: conflict with \"operator\" using v1: .data.extra"
    );
    apply(&maps, &taking).await.unwrap();
    let forced = server
        .object("v1", "ConfigMap", Some("default"), "settings")
        .unwrap();
    assert_eq!(forced["data"]["extra"], "mine");
}

#[tokio::test]
async fn apply_keeps_status_and_bumps_the_generation_on_spec_changes_only() {
    let server = server();
    let client = server.client().await;
    let deployments = api(&client, "apps/v1", "Deployment", Some("default")).await;
    let mut app = deployment("default", "web", "web", "nginx:1");
    apply(&deployments, &app).await.unwrap();
    let available = || {
        server
            .object("apps/v1", "Deployment", Some("default"), "web")
            .is_some_and(|d| d["status"]["observedGeneration"] == d["metadata"]["generation"])
    };
    eventually("web available", Duration::from_secs(5), available).await;

    app["metadata"]["labels"] = json!({"tier": "front"});
    apply(&deployments, &app).await.unwrap();
    let relabelled = server
        .object("apps/v1", "Deployment", Some("default"), "web")
        .unwrap();
    assert_eq!(relabelled["metadata"]["generation"], 1);
    assert_eq!(
        relabelled["status"]["availableReplicas"], 2,
        "status kept: {relabelled}"
    );

    app["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    apply(&deployments, &app).await.unwrap();
    let updated = server
        .object("apps/v1", "Deployment", Some("default"), "web")
        .unwrap();
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["status"]["observedGeneration"], 1);
    assert_eq!(
        updated["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8443
    );
}

#[tokio::test]
async fn list_selects_by_labels_in_a_namespace_or_across_all() {
    let server = server();
    let client = server.client().await;
    let namespaces = api(&client, "v1", "Namespace", None).await;
    apply(&namespaces, &namespace("other")).await.unwrap();
    for (namespace, name, labels) in [
        ("default", "a", json!({"app": "x", "tier": "web"})),
        ("default", "b", json!({"app": "x"})),
        ("default", "c", json!({"app": "y", "tier": "db"})),
        ("other", "d", json!({"app": "x", "tier": "web"})),
    ] {
        let maps = api(&client, "v1", "ConfigMap", Some(namespace)).await;
        apply(&maps, &config_map(namespace, name, labels, json!({})))
            .await
            .unwrap();
    }
    let in_default = api(&client, "v1", "ConfigMap", Some("default")).await;
    let everywhere = api(&client, "v1", "ConfigMap", None).await;
    for (api, selector, expected) in [
        (&in_default, "app=x", vec!["a", "b"]),
        (&in_default, "app==x,tier=web", vec!["a"]),
        (&in_default, "app!=x", vec!["c"]),
        (&in_default, "tier", vec!["a", "c"]),
        (&in_default, "!tier", vec!["b"]),
        (&in_default, "app in (x,y),tier notin (web)", vec!["b", "c"]),
        (&everywhere, "app=x,tier=web", vec!["a", "d"]),
    ] {
        let listed = api
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        let names: Vec<String> = listed
            .items
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, expected, "{selector}");
    }
    let bad = refusal(
        in_default
            .list(&ListParams::default().labels("app=x,="))
            .await,
    );
    assert_eq!(bad.code, 400);
}

#[tokio::test]
async fn namespaced_objects_need_their_namespace_and_go_with_it() {
    let server = server();
    let client = server.client().await;
    let maps = api(&client, "v1", "ConfigMap", Some("team")).await;
    let refused = refusal(apply(&maps, &config_map("team", "c", json!({}), json!({}))).await);
    assert_eq!((refused.code, refused.reason.as_str()), (404, "NotFound"));
    assert_eq!(refused.message, "namespaces \"team\" not found");
    assert!(server
        .object("v1", "ConfigMap", Some("team"), "c")
        .is_none());

    let namespaces = api(&client, "v1", "Namespace", None).await;
    apply(&namespaces, &namespace("team")).await.unwrap();
    apply(&maps, &config_map("team", "c", json!({}), json!({})))
        .await
        .unwrap();
    let posted = maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(config_map("team", "d", json!({}), json!({}))).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(posted.metadata.name.as_deref(), Some("d"));
    let duplicate = maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(config_map("team", "d", json!({}), json!({}))).unwrap(),
        )
        .await;
    assert_eq!(
        refusal(duplicate).message,
        "configmaps \"d\" already exists"
    );
    assert_eq!(
        server.object("v1", "Namespace", None, "team").unwrap()["status"]["phase"],
        "Active"
    );

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(server.object("v1", "Namespace", None, "team").is_none());
    assert!(server
        .objects()
        .iter()
        .all(|o| o["metadata"]["namespace"] != "team"));
    let missing = refusal(maps.get("c").await);
    assert_eq!(missing.message, "configmaps \"c\" not found");
}

#[tokio::test]
async fn workloads_become_available_after_the_delay_unless_told_otherwise() {
    let server = server();
    let client = server.client().await;
    let deployments = api(&client, "apps/v1", "Deployment", Some("default")).await;
    let applied = Instant::now();
    apply(&deployments, &deployment("default", "api", "api", "api:1"))
        .await
        .unwrap();
    let fresh = server
        .object("apps/v1", "Deployment", Some("default"), "api")
        .unwrap();
    assert!(fresh.get("status").is_none(), "{fresh}");
    let available = |name: &str| {
        server
            .object("apps/v1", "Deployment", Some("default"), name)
            .is_some_and(|d| {
                d["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Available" && c["status"] == "True")
                })
            })
    };
    eventually("api available", Duration::from_secs(5), || available("api")).await;
    assert!(applied.elapsed() >= DELAY);
    let status = server
        .object("apps/v1", "Deployment", Some("default"), "api")
        .unwrap()["status"]
        .clone();
    assert_eq!(status["observedGeneration"], 1);
    for field in [
        "replicas",
        "readyReplicas",
        "availableReplicas",
        "updatedReplicas",
    ] {
        assert_eq!(status[field], 2, "{field}: {status}");
    }

    server.set_never_available("default", "stuck");
    apply(
        &deployments,
        &deployment("default", "stuck", "stuck", "stuck:1"),
    )
    .await
    .unwrap();
    let reported = || {
        server
            .object("apps/v1", "Deployment", Some("default"), "stuck")
            .is_some_and(|d| d["status"]["observedGeneration"] == 1)
    };
    eventually("stuck observed", Duration::from_secs(5), reported).await;
    let stuck = server
        .object("apps/v1", "Deployment", Some("default"), "stuck")
        .unwrap();
    let condition = stuck["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap()
        .clone();
    assert_eq!(condition["status"], "False");
    assert_eq!(
        condition["message"],
        "Deployment does not have minimum availability."
    );
    server.clear_never_available("default", "stuck");
    eventually(
        "stuck available once cleared",
        Duration::from_secs(5),
        || available("stuck"),
    )
    .await;

    let daemonsets = api(&client, "apps/v1", "DaemonSet", Some("default")).await;
    let mut agent = deployment("default", "agent", "agent", "agent:1");
    agent["kind"] = json!("DaemonSet");
    agent["spec"].as_object_mut().unwrap().remove("replicas");
    apply(&daemonsets, &agent).await.unwrap();
    let ready = || {
        server
            .object("apps/v1", "DaemonSet", Some("default"), "agent")
            .is_some_and(|d| {
                d["status"]["numberReady"] == 1 && d["status"]["desiredNumberScheduled"] == 1
            })
    };
    eventually("agent ready", Duration::from_secs(5), ready).await;
}

#[tokio::test]
async fn a_webhook_refuses_with_the_real_error_until_its_service_has_endpoints() {
    let server = server();
    let client = server.client().await;
    let namespaces = api(&client, "v1", "Namespace", None).await;
    apply(&namespaces, &namespace("guard")).await.unwrap();
    let webhooks = api(
        &client,
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        None,
    )
    .await;
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "guard"},
        "webhooks": [
            {
                "name": "configmaps.guard.test",
                "clientConfig": {"service": {"name": "guard-webhook", "namespace": "guard", "path": "/validate"}},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}],
                "objectSelector": {"matchLabels": {"guarded": "yes"}},
                "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            },
            {
                "name": "secrets.guard.test",
                "clientConfig": {"service": {"name": "guard-webhook", "namespace": "guard", "path": "/validate"}},
                "rules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["secrets"]}],
                "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            },
        ],
    });
    apply(&webhooks, &configuration).await.unwrap();
    let services = api(&client, "v1", "Service", Some("guard")).await;
    apply(
        &services,
        &service("guard", "guard-webhook", "guard", "ClusterIP"),
    )
    .await
    .unwrap();
    let apiservices = api(&client, "apiregistration.k8s.io/v1", "APIService", None).await;
    let apiservice = json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1beta1.guard.test"},
        "spec": {
            "group": "guard.test", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
            "service": {"name": "guard-webhook", "namespace": "guard"},
        },
    });
    apply(&apiservices, &apiservice).await.unwrap();

    let maps = api(&client, "v1", "ConfigMap", Some("guard")).await;
    let guarded = config_map("guard", "c", json!({"guarded": "yes"}), json!({"k": "v"}));
    let expected = "Internal error occurred: failed calling webhook \"configmaps.guard.test\": failed to call webhook: Post \"https://guard-webhook.guard.svc:443/validate?timeout=10s\": no endpoints available for service \"guard-webhook\"";
    let refused = refusal(apply(&maps, &guarded).await);
    assert_eq!(
        (
            refused.code,
            refused.reason.as_str(),
            refused.message.as_str()
        ),
        (500, "InternalError", expected)
    );
    let dry_run = PatchParams::apply(MANAGER).force().dry_run();
    let refused_dry = refusal(maps.patch("c", &dry_run, &Patch::Apply(&guarded)).await);
    assert_eq!(refused_dry.message, expected);
    // Not matched by the object selector, or Ignore: let through.
    apply(&maps, &config_map("guard", "free", json!({}), json!({})))
        .await
        .unwrap();
    let secrets = api(&client, "v1", "Secret", Some("guard")).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "guard"}});
    apply(&secrets, &secret).await.unwrap();
    assert!(server
        .object("v1", "ConfigMap", Some("guard"), "c")
        .is_none());
    let caless = server
        .object(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            None,
            "guard",
        )
        .unwrap();
    assert!(caless["webhooks"][0]["clientConfig"]
        .get("caBundle")
        .is_none());

    let deployments = api(&client, "apps/v1", "Deployment", Some("guard")).await;
    apply(
        &deployments,
        &deployment("guard", "guard-webhook", "guard", "guard:1"),
    )
    .await
    .unwrap();
    let endpoints_ready = || {
        server
            .object("v1", "Endpoints", Some("guard"), "guard-webhook")
            .is_some_and(|e| e["subsets"][0]["addresses"][0]["ip"].is_string())
    };
    eventually("webhook endpoints", Duration::from_secs(5), endpoints_ready).await;
    let endpoints = server
        .object("v1", "Endpoints", Some("guard"), "guard-webhook")
        .unwrap();
    assert_eq!(
        endpoints["subsets"][0]["ports"][0]["port"], 8443,
        "named target port resolved: {endpoints}"
    );
    maps.patch("c", &dry_run, &Patch::Apply(&guarded))
        .await
        .unwrap();
    assert!(
        server
            .object("v1", "ConfigMap", Some("guard"), "c")
            .is_none(),
        "a dry run stores nothing"
    );
    apply(&maps, &guarded).await.unwrap();
    let injected = server
        .object(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            None,
            "guard",
        )
        .unwrap();
    for webhook in injected["webhooks"].as_array().unwrap() {
        assert!(
            webhook["clientConfig"]["caBundle"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{webhook}"
        );
    }
    let injected = server
        .object(
            "apiregistration.k8s.io/v1",
            "APIService",
            None,
            "v1beta1.guard.test",
        )
        .unwrap();
    assert!(injected["spec"]["caBundle"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    // Re-applying the configuration (which has no caBundle) leaves the injected one alone.
    let mark = server.mark();
    apply(&webhooks, &configuration).await.unwrap();
    assert!(!server.writes_since(mark)[0].changed);
}

#[tokio::test]
async fn a_load_balancer_gets_a_hostname_and_takes_a_moment_to_go() {
    let server = server();
    let client = server.client().await;
    let services = api(&client, "v1", "Service", Some("default")).await;
    apply(
        &services,
        &service("default", "gateway", "gateway", "LoadBalancer"),
    )
    .await
    .unwrap();
    let hostname = || {
        server
            .object("v1", "Service", Some("default"), "gateway")
            .and_then(|s| {
                s["status"]["loadBalancer"]["ingress"][0]["hostname"]
                    .as_str()
                    .map(String::from)
            })
    };
    eventually("a hostname", Duration::from_secs(5), || {
        hostname().is_some()
    })
    .await;
    assert_eq!(hostname().unwrap(), "gateway-default.elb.test");

    let deleted = Instant::now();
    services
        .delete("gateway", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = services.get("gateway").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    eventually("released", Duration::from_secs(5), || {
        server
            .object("v1", "Service", Some("default"), "gateway")
            .is_none()
    })
    .await;
    assert!(deleted.elapsed() >= DELAY, "{:?}", deleted.elapsed());
    assert_eq!(refusal(services.get("gateway").await).code, 404);
}

#[tokio::test]
async fn status_takes_merge_and_json_patches_on_its_subresource_only() {
    let server = server();
    let client = server.client().await;
    let deployments = api(&client, "apps/v1", "Deployment", Some("default")).await;
    server.set_never_available("default", "manual");
    apply(
        &deployments,
        &deployment("default", "manual", "manual", "m:1"),
    )
    .await
    .unwrap();

    let status = json!({"status": {"observedGeneration": 1, "readyReplicas": 2}});
    let params = PatchParams {
        field_manager: Some("kubelet".into()),
        ..PatchParams::default()
    };
    deployments
        .patch_status("manual", &params, &Patch::Merge(&status))
        .await
        .unwrap();
    let json_patch = json!([{"op": "add", "path": "/status/availableReplicas", "value": 2}]);
    let request =
        http::Request::patch("/apis/apps/v1/namespaces/default/deployments/manual/status")
            .header("Content-Type", "application/json-patch+json")
            .body(serde_json::to_vec(&json_patch).unwrap())
            .unwrap();
    client.request::<Value>(request).await.unwrap();
    let patched = server
        .object("apps/v1", "Deployment", Some("default"), "manual")
        .unwrap();
    assert_eq!(patched["status"]["readyReplicas"], 2);
    assert_eq!(patched["status"]["availableReplicas"], 2);
    let manager = patched["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubelet")
        .unwrap()
        .clone();
    assert_eq!(manager["subresource"], "status");

    // A status written through the main resource is ignored; one without the token is refused.
    deployments
        .patch(
            "manual",
            &params,
            &Patch::Merge(json!({"status": {"readyReplicas": 9}})),
        )
        .await
        .unwrap();
    let kept = server
        .object("apps/v1", "Deployment", Some("default"), "manual")
        .unwrap();
    assert_eq!(kept["status"]["readyReplicas"], 2);
    let strategic = deployments
        .patch(
            "manual",
            &params,
            &Patch::Strategic(json!({"spec": {"replicas": 1}})),
        )
        .await;
    assert_eq!(refusal(strategic).code, 415);
}

// --- the real add-on manifests ---

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/addons")
}

/// The documents of every file of one add-on version, in file order.
fn documents(addon: &str, version: &str) -> Vec<Value> {
    let dir = fixtures().join(addon).join(version);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    // Istio's CRDs and Knative's core come before what uses them.
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        (
            !matches!(
                name.as_str(),
                "crd.yaml" | "serving-core.yaml" | "kserve.yaml" | "cert-manager.yaml"
            ),
            name,
        )
    });
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if value.is_object() {
                documents.push(value);
            }
        }
    }
    documents
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Applies one add-on as an installer would: CRDs, then (once Established) the namespaces
/// its objects use, then the rest, retrying while webhooks have no endpoints, then waits
/// for its workloads.
async fn install(server: &TestApiServer, client: &Client, documents: &[Value]) {
    let (crds, rest): (Vec<&Value>, Vec<&Value>) = documents
        .iter()
        .partition(|d| d["kind"] == "CustomResourceDefinition");
    let crd_api = api(
        client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
    )
    .await;
    for crd in &crds {
        apply(&crd_api, crd).await.unwrap();
    }
    let established = |name: &str| {
        server
            .object(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                name,
            )
            .is_some_and(|c| {
                c["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Established"))
            })
    };
    for crd in &crds {
        let name = text(crd, "/metadata/name");
        eventually(
            &format!("CRD {name} Established"),
            Duration::from_secs(5),
            || established(name),
        )
        .await;
    }
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut namespaces: BTreeSet<&str> = rest
        .iter()
        .map(|d| text(d, "/metadata/namespace"))
        .collect();
    namespaces.remove("");
    let namespace_api = api(client, "v1", "Namespace", None).await;
    for name in namespaces {
        apply(&namespace_api, &namespace(name)).await.unwrap();
    }
    for document in rest {
        let (group, version) = text(document, "/apiVersion")
            .rsplit_once('/')
            .unwrap_or(("", text(document, "/apiVersion")));
        let gvk = GroupVersionKind::gvk(group, version, text(document, "/kind"));
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{gvk:?} not discovered"));
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                text(document, "/metadata/namespace"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let start = Instant::now();
        loop {
            match apply(&api, document).await {
                Ok(_) => break,
                Err(kube::Error::Api(e))
                    if e.message.contains("no endpoints available")
                        && start.elapsed() < Duration::from_secs(5) =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{} {}: {e}", gvk.kind, text(document, "/metadata/name")),
            }
        }
    }
    for workload in documents
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "DaemonSet")))
    {
        let (kind, namespace, name) = (
            text(workload, "/kind"),
            text(workload, "/metadata/namespace"),
            text(workload, "/metadata/name"),
        );
        let ready = || {
            server
                .object("apps/v1", kind, Some(namespace), name)
                .is_some_and(|w| w["status"]["observedGeneration"] == w["metadata"]["generation"])
        };
        eventually(
            &format!("{kind} {namespace}/{name} ready"),
            Duration::from_secs(5),
            ready,
        )
        .await;
    }
}

/// All four add-ons of one version set, in order; every object then stored as applied.
async fn install_all(set: [(&str, &str); 4]) {
    let server = TestApiServer::builder()
        .delays(Duration::from_millis(30))
        .start();
    let client = server.client().await;
    let started = Instant::now();
    let mut all = Vec::new();
    for (addon, version) in set {
        let documents = documents(addon, version);
        install(&server, &client, &documents).await;
        all.extend(documents);
    }
    // The test harness captures stderr: no pipe to lose.
    #[allow(clippy::disallowed_macros)]
    {
        eprintln!("{set:?}: {} objects in {:?}", all.len(), started.elapsed());
    }
    for document in &all {
        let namespace = Some(text(document, "/metadata/namespace")).filter(|n| !n.is_empty());
        let name = text(document, "/metadata/name");
        let stored = server
            .object(
                text(document, "/apiVersion"),
                text(document, "/kind"),
                namespace,
                name,
            )
            .unwrap_or_else(|| panic!("{} {name} missing", text(document, "/kind")));
        if let Some(spec) = document.get("spec") {
            assert_eq!(&stored["spec"], spec, "{} {name}", text(document, "/kind"));
        }
    }
    let unserved: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.is_unserved())
        .map(|r| r.to_string())
        .collect();
    assert!(
        unserved.is_empty(),
        "requests for kinds not served: {unserved:#?}"
    );

    // A second pass over everything changes nothing.
    let mark = server.mark();
    for document in &all {
        let namespace = Some(text(document, "/metadata/namespace")).filter(|n| !n.is_empty());
        let api = api(
            &client,
            text(document, "/apiVersion"),
            text(document, "/kind"),
            namespace,
        )
        .await;
        apply(&api, document).await.unwrap();
    }
    let changed: Vec<String> = server
        .writes_since(mark)
        .iter()
        .filter(|w| w.changed)
        .map(|w| w.to_string())
        .collect();
    assert!(changed.is_empty(), "a re-apply changed {changed:#?}");
}

#[tokio::test]
async fn every_fixture_of_the_first_set_installs() {
    install_all([
        ("cert-manager", "v1.16.1"),
        ("istio", "1.24.3"),
        ("knative-serving", "1.16.2"),
        ("kserve", "v0.15.0"),
    ])
    .await;
}

#[tokio::test]
async fn every_fixture_of_the_second_set_installs() {
    install_all([
        ("cert-manager", "v1.19.4"),
        ("istio", "1.29.1"),
        ("knative-serving", "1.21.1"),
        ("kserve", "v0.16.0"),
    ])
    .await;
}

// --- KServe and Knative serving readiness ---

/// The CRD named `name` from one add-on version's fixture.
fn fixture_crd(addon: &str, version: &str, name: &str) -> Value {
    documents(addon, version)
        .into_iter()
        .find(|d| d["kind"] == "CustomResourceDefinition" && text(d, "/metadata/name") == name)
        .unwrap_or_else(|| panic!("no CRD {name} in {addon} {version}"))
}

/// Applies a CRD and waits until its kind is served.
async fn establish_crd(server: &TestApiServer, client: &Client, crd: &Value) {
    let crds = api(
        client,
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
    )
    .await;
    apply(&crds, crd).await.unwrap();
    let name = text(crd, "/metadata/name");
    let established = || {
        server
            .object(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                name,
            )
            .is_some_and(|c| condition_of(&c, "Established")["status"] == "True")
    };
    eventually(
        &format!("{name} Established"),
        Duration::from_secs(5),
        established,
    )
    .await;
}

fn inference_service(name: &str, storage_uri: &str) -> Value {
    json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri}}},
    })
}

/// The `type` condition of a stored object's status, `Null` when it has none.
fn condition_of(object: &Value, kind: &str) -> Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_inference_service_becomes_ready_with_its_url_unless_told_otherwise() {
    let server = server();
    let client = server.client().await;
    let crd = fixture_crd("kserve", "v0.15.0", "inferenceservices.serving.kserve.io");
    establish_crd(&server, &client, &crd).await;
    let isvcs = api(
        &client,
        "serving.kserve.io/v1beta1",
        "InferenceService",
        Some("default"),
    )
    .await;
    let stored = |name: &str| {
        server
            .object(
                "serving.kserve.io/v1beta1",
                "InferenceService",
                Some("default"),
                name,
            )
            .unwrap_or_else(|| panic!("InferenceService {name} missing"))
    };
    let applied = Instant::now();
    apply(&isvcs, &inference_service("wine", "s3://models/wine"))
        .await
        .unwrap();
    assert!(stored("wine").get("status").is_none(), "{}", stored("wine"));
    let ready = |name: &str| condition_of(&stored(name), "Ready")["status"] == "True";
    eventually("wine Ready", Duration::from_secs(5), || ready("wine")).await;
    assert!(applied.elapsed() >= DELAY);
    // Read back through the API, as a client sees it.
    let wine = isvcs.get("wine").await.unwrap();
    let status = &wine.data["status"];
    assert_eq!(status["url"], "http://wine.default.example.com");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(condition_of(&wine.data, "PredictorReady")["status"], "True");
    assert!(condition_of(&wine.data, "Ready").get("message").is_none());

    // Marked never ready: Ready False with the revision's message, also after a change.
    server.set_never_ready("default", "wine");
    let not_ready = |name: &str| condition_of(&stored(name), "Ready")["status"] == "False";
    eventually("wine no longer Ready", Duration::from_secs(5), || {
        not_ready("wine")
    })
    .await;
    apply(&isvcs, &inference_service("wine", "s3://models/wine-2"))
        .await
        .unwrap();
    eventually("the change observed", Duration::from_secs(5), || {
        stored("wine")["status"]["observedGeneration"] == 2
    })
    .await;
    let wine = stored("wine");
    let condition = condition_of(&wine, "Ready");
    assert_eq!(condition["status"], "False", "{wine}");
    assert_eq!(condition["reason"], "RevisionMissing");
    assert_eq!(
        condition["message"],
        "Revision \"wine-predictor-00001\" failed with message: 0/2 nodes are available: 2 Insufficient cpu."
    );
    assert!(wine["status"].get("url").is_none(), "{wine}");

    // Marked before it exists, then cleared.
    server.set_never_ready("default", "stuck");
    apply(&isvcs, &inference_service("stuck", "s3://models/stuck"))
        .await
        .unwrap();
    eventually("stuck reported", Duration::from_secs(5), || {
        not_ready("stuck")
    })
    .await;
    server.clear_never_ready("default", "stuck");
    eventually("stuck Ready once cleared", Duration::from_secs(5), || {
        ready("stuck")
    })
    .await;
    assert_eq!(
        stored("stuck")["status"]["url"],
        "http://stuck.default.example.com"
    );
    assert!(not_ready("wine"), "clearing one leaves the other");
}

#[tokio::test]
async fn a_knative_service_becomes_ready_with_its_url() {
    let server = server();
    let client = server.client().await;
    let crd = fixture_crd("knative-serving", "1.16.2", "services.serving.knative.dev");
    establish_crd(&server, &client, &crd).await;
    let services = api(
        &client,
        "serving.knative.dev/v1",
        "Service",
        Some("default"),
    )
    .await;
    let hello = |name: &str| {
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": "hello:1"}]}}},
        })
    };
    let stored = |name: &str| {
        server
            .object("serving.knative.dev/v1", "Service", Some("default"), name)
            .unwrap_or_else(|| panic!("Knative Service {name} missing"))
    };
    apply(&services, &hello("hello")).await.unwrap();
    server.set_never_ready("default", "broken");
    apply(&services, &hello("broken")).await.unwrap();
    eventually("hello Ready", Duration::from_secs(5), || {
        condition_of(&stored("hello"), "Ready")["status"] == "True"
    })
    .await;
    assert_eq!(
        stored("hello")["status"]["url"],
        "http://hello.default.example.com"
    );
    eventually("broken reported", Duration::from_secs(5), || {
        condition_of(&stored("broken"), "Ready")["status"] == "False"
    })
    .await;
    assert_eq!(
        condition_of(&stored("broken"), "Ready")["message"],
        "Revision \"broken-00001\" failed with message: 0/2 nodes are available: 2 Insufficient cpu."
    );
}
