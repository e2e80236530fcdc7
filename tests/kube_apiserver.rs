//! The real kube-apiserver harness itself (tests/support/kube_apiserver.rs): the server starts
//! and a kube client built from its kubeconfig works; a CRD and its custom resource round-trip;
//! the stand-in marks Deployments available, fills Endpoints and gives LoadBalancer Services a
//! hostname; a webhook that is not up yet makes the server refuse, then admit; the audit log
//! counts exactly the client's writes; a dropped server leaves no process and no folder.
//! Results are read back with plain HTTPS (`get_json`) or the audit log, not the client under
//! test. The tests share one server, each in its own namespace.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};
use support::eventually;
use support::kube_apiserver::audit::AuditWrite;
use support::kube_apiserver::webhook::AdmissionWebhook;
use support::kube_apiserver::RealApiServer;

const WAIT: Duration = Duration::from_secs(30);

async fn create_namespace(client: &Client, name: &str, labels: Value) {
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager).force()
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test]
async fn a_kube_client_from_the_kubeconfig_lists_namespaces() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, "v1.35.4");
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|n| n.name_any())
        .collect();
    for wanted in ["default", "kube-system", "kube-public"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} not in {names:?}"
        );
    }
}

#[tokio::test]
async fn a_crd_and_its_custom_resource_round_trip() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    create_namespace(&client, "selftest-crd", json!({})).await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "models.selftest.mlops.test"},
        "spec": {
            "group": "selftest.mlops.test",
            "scope": "Namespaced",
            "names": {"plural": "models", "singular": "model", "kind": "Model", "listKind": "ModelList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "image": {"type": "string"}, "replicas": {"type": "integer"}}}}}}
            }]
        }
    }))
    .unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    server
        .eventually_get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/models.selftest.mlops.test",
            |crd| condition(crd, "Established").is_some_and(|c| c["status"] == "True"),
        )
        .await;

    let resource = ApiResource {
        group: "selftest.mlops.test".into(),
        version: "v1".into(),
        api_version: "selftest.mlops.test/v1".into(),
        kind: "Model".into(),
        plural: "models".into(),
    };
    let models = Api::<DynamicObject>::namespaced_with(client, "selftest-crd", &resource);
    let model = DynamicObject::new("m1", &resource)
        .data(json!({"spec": {"image": "example/m1:1", "replicas": 2}}));
    // Established, yet the new resource's endpoint may take a moment more to serve.
    eventually("create Model selftest-crd/m1", WAIT, || async {
        models.create(&PostParams::default(), &model).await.ok()
    })
    .await;
    let read = server
        .get_json("/apis/selftest.mlops.test/v1/namespaces/selftest-crd/models/m1")
        .expect("Model selftest-crd/m1");
    assert_eq!(
        read["spec"],
        json!({"image": "example/m1:1", "replicas": 2})
    );
}

/// A Deployment whose pods carry `app: <name>` and expose port `http` (8080).
fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "main", "image": "example/web:1",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
                }]}
            }
        }
    })
}

/// A Service for `app: <app>` on port 80 to the pods' port named `http`.
fn service(name: &str, app: &str, type_: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": type_,
            "selector": {"app": app},
            "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        }
    })
}

#[tokio::test]
async fn the_stand_in_marks_deployments_available_and_gives_load_balancers_a_hostname() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-stand-in";
    create_namespace(&client, ns, json!({})).await;
    let stand_in = server.stand_in();
    stand_in.hold_unavailable(ns, "held");
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let services = Api::<Service>::namespaced(client.clone(), ns);
    for name in ["web", "held"] {
        deployments
            .patch(name, &apply("selftest"), &Patch::Apply(deployment(name)))
            .await
            .unwrap();
    }
    for (name, app, type_) in [
        ("web", "web", "ClusterIP"),
        ("held", "held", "ClusterIP"),
        ("gateway", "web", "LoadBalancer"),
    ] {
        services
            .patch(
                name,
                &apply("selftest"),
                &Patch::Apply(service(name, app, type_)),
            )
            .await
            .unwrap();
    }

    let path = |kind: &str, name: &str| format!("/api{kind}/namespaces/{ns}/{name}");
    let web = server
        .eventually_get(&path("s/apps/v1", "deployments/web"), |d| {
            condition(d, "Available").is_some_and(|c| c["status"] == "True")
        })
        .await;
    assert_eq!(web["status"]["availableReplicas"], 2);
    assert_eq!(
        web["status"]["observedGeneration"],
        web["metadata"]["generation"]
    );
    let endpoints = server
        .eventually_get(&path("/v1", "endpoints/web"), |e| {
            e["subsets"][0]["addresses"][0]["ip"].is_string()
        })
        .await;
    let subset = &endpoints["subsets"][0];
    assert!(subset["addresses"][0]["ip"]
        .as_str()
        .unwrap()
        .starts_with("10.0.0."));
    assert_eq!(
        subset["ports"],
        json!([{"name": "web", "port": 8080, "protocol": "TCP"}])
    );
    let gateway = server
        .eventually_get(&path("/v1", "services/gateway"), |s| {
            s["status"]["loadBalancer"]["ingress"][0]["hostname"].is_string()
        })
        .await;
    assert_eq!(
        gateway["status"]["loadBalancer"]["ingress"][0]["hostname"],
        "gateway-selftest-stand-in.elb.mlops.test"
    );

    let held = server
        .eventually_get(&path("s/apps/v1", "deployments/held"), |d| {
            condition(d, "Available").is_some()
        })
        .await;
    let available = condition(&held, "Available").unwrap();
    assert_eq!(available["status"], "False");
    assert_eq!(available["reason"], "MinimumReplicasUnavailable");
    let held_endpoints = server
        .eventually_get(&path("/v1", "endpoints/held"), |e| e["subsets"].is_array())
        .await;
    assert!(held_endpoints["subsets"][0]["addresses"].is_null());
    assert!(held_endpoints["subsets"][0]["notReadyAddresses"][0]["ip"].is_string());

    stand_in.release(ns, "held");
    server
        .eventually_get(&path("s/apps/v1", "deployments/held"), |d| {
            condition(d, "Available").is_some_and(|c| c["status"] == "True")
        })
        .await;
    server
        .eventually_get(&path("/v1", "endpoints/held"), |e| {
            e["subsets"][0]["addresses"][0]["ip"].is_string()
        })
        .await;
}

/// A current server (unlike 1.20, whose server-side apply refused it) takes a Service port
/// without `protocol`, a key of the ports list, and defaults it to TCP: the add-ons' release
/// manifests rely on that, and a second apply of the same object changes nothing.
#[tokio::test]
async fn server_side_apply_defaults_a_missing_port_protocol() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-protocol";
    create_namespace(&client, ns, json!({})).await;
    let services = Api::<Service>::namespaced(client, ns);
    let mut without = service("s", "s", "ClusterIP");
    without["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("protocol");
    let first = services
        .patch("s", &apply("selftest"), &Patch::Apply(&without))
        .await
        .expect("a Service without a port protocol");
    let ports = first.spec.as_ref().unwrap().ports.as_ref().unwrap();
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    let again = services
        .patch("s", &apply("selftest"), &Patch::Apply(&without))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn a_webhook_that_is_not_up_refuses_then_admits_once_it_serves() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-webhook";
    create_namespace(&client, ns, json!({"selftest-webhook": "guarded"})).await;
    let mut webhook = AdmissionWebhook::new();
    let configuration: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": "selftest-webhook"},
        "webhooks": [{
            "name": "configmaps.selftest.mlops.test",
            "clientConfig": webhook.client_config(),
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"selftest-webhook": "guarded"}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5
        }]
    }))
    .unwrap();
    let configurations = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    configurations
        .create(&PostParams::default(), &configuration)
        .await
        .unwrap();

    let config_maps = Api::<ConfigMap>::namespaced(client, ns);
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "guarded"}})).unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    // The server sees a new webhook configuration a moment after it is created.
    let refusal = eventually("a refusal by the webhook that is not up", WAIT, || async {
        config_maps.create(&dry_run, &config_map).await.err()
    })
    .await
    .to_string();
    assert!(
        refusal.contains("failed calling webhook \"configmaps.selftest.mlops.test\"")
            && refusal.contains("connection refused"),
        "{refusal}"
    );
    assert_eq!(webhook.reviews(), 0);

    webhook.serve();
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();
    assert!(webhook.reviews() >= 1);
    assert!(server
        .get_json(&format!("/api/v1/namespaces/{ns}/configmaps/guarded"))
        .is_some());
    configurations
        .delete("selftest-webhook", &DeleteParams::default())
        .await
        .unwrap();
}

fn in_namespace(writes: Vec<AuditWrite>, ns: &str) -> Vec<String> {
    writes
        .into_iter()
        .filter(|w| w.namespace.as_deref() == Some(ns))
        .map(|w| w.to_string())
        .collect()
}

#[tokio::test]
async fn the_audit_log_counts_the_clients_writes_and_nothing_else() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-audit";
    create_namespace(&client, ns, json!({})).await;
    let config_maps = Api::<ConfigMap>::namespaced(client, ns);
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                        "data": {"k": "v"}});

    let mark = server.mark();
    config_maps
        .patch("c", &apply("selftest"), &Patch::Apply(&object))
        .await
        .unwrap();
    let created = in_namespace(server.writes_since(mark), ns);
    assert_eq!(created, ["patch configmaps selftest-audit/c (201)"]);

    // Reads and dry runs are no writes; a server-side apply with nothing to change still is a
    // request, and the log shows it as one, although the object stays as it was.
    let mark = server.mark();
    let before = config_maps.get("c").await.unwrap().resource_version();
    let dry_run = PatchParams {
        dry_run: true,
        ..apply("selftest")
    };
    config_maps
        .patch("c", &dry_run, &Patch::Apply(&object))
        .await
        .unwrap();
    assert_eq!(
        in_namespace(server.writes_since(mark), ns),
        Vec::<String>::new()
    );
    let after = config_maps
        .patch("c", &apply("selftest"), &Patch::Apply(&object))
        .await
        .unwrap()
        .resource_version();
    assert_eq!(
        in_namespace(server.writes_since(mark), ns),
        ["patch configmaps selftest-audit/c (200)"]
    );
    assert_eq!(before, after);
    let mark = server.mark();
    config_maps
        .delete("c", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        in_namespace(server.writes_since(mark), ns),
        ["delete configmaps selftest-audit/c (200)"]
    );
}

/// The processes of a server are gone once it is dropped, and its folder too.
#[test]
fn a_dropped_server_leaves_no_process_and_no_folder() {
    let server = RealApiServer::start();
    let pids = server.pids();
    let dir = server.dir().to_path_buf();
    assert!(pids.iter().all(|pid| is_running(*pid)));
    drop(server);
    for pid in pids {
        assert!(!is_running(pid), "process {pid} still runs");
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
}

/// A live process (not a zombie).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Without a namespace controller a deleted namespace would stay `Terminating` for ever.
#[tokio::test]
async fn the_stand_in_empties_and_removes_a_deleted_namespace() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-namespace-deletion";
    create_namespace(&client, ns, json!({})).await;
    server.stand_in();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch("web", &apply("selftest"), &Patch::Apply(deployment("web")))
        .await
        .unwrap();
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch("c", &apply("selftest"), &Patch::Apply(&config_map))
        .await
        .unwrap();
    Api::<Namespace>::all(client)
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap();
    let path = format!("/api/v1/namespaces/{ns}");
    eventually(&format!("{path} gone"), WAIT, || async {
        server.get_json(&path).is_none().then_some(())
    })
    .await;
    assert!(server
        .get_json(&format!("/apis/apps/v1/namespaces/{ns}/deployments"))
        .is_some_and(|list| list["items"] == json!([])));
}

/// Applies `object` (a JSON value with `metadata.name`) in `namespace` as `selftest`.
async fn put(client: &Client, namespace: &str, resource: &ApiResource, object: Value) {
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, resource)
        .patch(&name, &apply("selftest"), &Patch::Apply(object))
        .await
        .unwrap_or_else(|e| panic!("apply {} {namespace}/{name}: {e}", resource.kind));
}

fn core(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk("", "v1", kind))
}

/// Asserts that `check` stays false on the object at `path` for `how_long` (polled).
async fn stays(
    server: &RealApiServer,
    path: &str,
    how_long: Duration,
    check: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + how_long;
    while Instant::now() < deadline {
        let object = server.get_json(path).unwrap_or(Value::Null);
        assert!(!check(&object), "{path} too early: {object:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn available(deployment: &Value) -> bool {
    condition(deployment, "Available").is_some_and(|c| c["status"] == "True")
        && deployment["status"]["availableReplicas"] == deployment["spec"]["replicas"]
        && deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"]
}

/// A kubelet starts no pod whose ServiceAccount, mounted Secret or ConfigMap read into its
/// environment does not exist: a Deployment applied before them (the wrong order) stays
/// unavailable, and becomes available, every replica, once the last of them exists. The
/// service account controller gives every namespace a `default` ServiceAccount.
#[tokio::test]
async fn a_deployment_is_available_only_once_what_its_pods_need_exists() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-needs";
    create_namespace(&client, ns, json!({})).await;
    server.stand_in();
    server
        .eventually_get(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/default"),
            |_| true,
        )
        .await;

    let mut needy = deployment("needy");
    let pod = &mut needy["spec"]["template"]["spec"];
    pod["serviceAccountName"] = "runner".into();
    pod["volumes"] = json!([{"name": "cert", "secret": {"secretName": "cert"}},
                            {"name": "extra", "secret": {"secretName": "absent", "optional": true}}]);
    pod["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "settings"}}]);
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch("needy", &apply("selftest"), &Patch::Apply(needy))
        .await
        .unwrap();
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/needy");
    let unavailable = server
        .eventually_get(&path, |d| condition(d, "Available").is_some())
        .await;
    assert_eq!(
        condition(&unavailable, "Available").unwrap()["status"],
        "False"
    );
    for (kind, object) in [
        (
            "ServiceAccount",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}}),
        ),
        (
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}),
        ),
    ] {
        stays(server, &path, 2 * Duration::from_millis(600), available).await;
        put(&client, ns, &core(kind), object).await;
    }
    stays(server, &path, Duration::from_secs(2), available).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert"}});
    put(&client, ns, &core("Secret"), secret).await;
    let ready = server.eventually_get(&path, available).await;
    assert_eq!(ready["status"]["availableReplicas"], 2);
    assert_eq!(ready["status"]["updatedReplicas"], 2);
}

/// A new generation is not available at once: the controller first reports the rollout started
/// (`observedGeneration` new, no replica updated), and only later every replica updated, so a
/// client that waits for `Available` alone would go on too early.
#[tokio::test]
async fn a_new_generation_rolls_out_before_it_is_available() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-rollout";
    create_namespace(&client, ns, json!({})).await;
    server.stand_in();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    deployments
        .patch("web", &apply("selftest"), &Patch::Apply(deployment("web")))
        .await
        .unwrap();
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/web");
    server.eventually_get(&path, available).await;
    let mut changed = deployment("web");
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "example/web:2".into();
    deployments
        .patch("web", &apply("selftest"), &Patch::Apply(changed))
        .await
        .unwrap();
    let started = server
        .eventually_get(&path, |d| d["status"]["observedGeneration"] == 2)
        .await;
    // The server leaves out a counter that is 0.
    assert!(
        started["status"]["updatedReplicas"].as_i64().unwrap_or(0) == 0,
        "{started:#}"
    );
    // The old pods still serve meanwhile.
    assert_eq!(condition(&started, "Available").unwrap()["status"], "True");
    let done = server
        .eventually_get(&path, |d| d["status"]["updatedReplicas"] == 2)
        .await;
    assert!(available(&done), "{done:#}");
}

/// A webhook that calls a Service is reached at the pod address the stand-in gives the
/// Service's EndpointSlice: while its Deployment is not available the server refuses what it
/// guards (`no endpoints available`), once available it admits; and a configuration whose
/// `caBundle` cert-manager was to inject (there is no cert-manager here) is never trusted.
#[tokio::test]
async fn a_webhook_answers_only_once_its_deployment_is_available() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-service-webhook";
    create_namespace(&client, ns, json!({"selftest-service-webhook": "guarded"})).await;
    let stand_in = server.stand_in();
    stand_in.hold_unavailable(ns, "hook");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(
            "hook",
            &apply("selftest"),
            &Patch::Apply(deployment("hook")),
        )
        .await
        .unwrap();
    put(
        &client,
        ns,
        &core("Service"),
        service("hook", "hook", "ClusterIP"),
    )
    .await;
    let configuration = |name: &str, annotations: Value, resource: &str| -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, "annotations": annotations},
            "webhooks": [{
                "name": format!("{name}.selftest.mlops.test"),
                "clientConfig": {"service": {"namespace": ns, "name": "hook", "port": 80, "path": "/validate"}},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": [resource]}],
                "namespaceSelector": {"matchLabels": {"selftest-service-webhook": "guarded"}},
                "failurePolicy": "Fail", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "timeoutSeconds": 5
            }]
        })
    };
    let configurations = ApiResource::erase::<ValidatingWebhookConfiguration>(&());
    let all = Api::<DynamicObject>::all_with(client.clone(), &configurations);
    for (name, annotations, resource) in [
        ("selftest-own-ca", json!({}), "configmaps"),
        (
            "selftest-injected-ca",
            json!({"cert-manager.io/inject-ca-from": format!("{ns}/absent")}),
            "secrets",
        ),
    ] {
        all.patch(
            name,
            &apply("selftest"),
            &Patch::Apply(configuration(name, annotations, resource)),
        )
        .await
        .unwrap();
    }
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "guarded"}})).unwrap();
    let refusal = eventually(
        "a refusal while the webhook's Deployment is held",
        WAIT,
        || async { config_maps.create(&dry_run, &config_map).await.err() },
    )
    .await
    .to_string();
    assert!(refusal.contains("no endpoints available"), "{refusal}");
    assert_eq!(stand_in.reviews(), 0);

    stand_in.release(ns, "hook");
    eventually(
        "the webhook admits once its Deployment is available",
        WAIT,
        || async {
            config_maps
                .create(&PostParams::default(), &config_map)
                .await
                .ok()
        },
    )
    .await;
    assert!(stand_in.reviews() >= 1);
    let own = server
        .get_json(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/selftest-own-ca",
        )
        .unwrap();
    assert!(own["webhooks"][0]["clientConfig"]["caBundle"].is_string());
    // No cert-manager, no injection: the server cannot trust the webhook's certificate.
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns);
    let secret = serde_json::from_value(json!({"metadata": {"name": "guarded"}})).unwrap();
    let untrusted = secrets
        .create(&dry_run, &secret)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        untrusted.contains("failed calling webhook") && untrusted.contains("certificate"),
        "{untrusted}"
    );
    for name in ["selftest-own-ca", "selftest-injected-ca"] {
        all.delete(name, &DeleteParams::default()).await.unwrap();
    }
}

/// The API server itself keeps a CRD `Terminating` while one of its custom resources has a
/// finalizer: deleting a CRD before its controller cleared them (the wrong order) hangs.
#[tokio::test]
async fn a_custom_resource_with_a_finalizer_keeps_its_crd_terminating() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-finalizer";
    create_namespace(&client, ns, json!({})).await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "gadgets.finalizer.mlops.test"},
        "spec": {
            "group": "finalizer.mlops.test",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let crd_path =
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.finalizer.mlops.test";
    server
        .eventually_get(crd_path, |c| {
            condition(c, "Established").is_some_and(|c| c["status"] == "True")
        })
        .await;
    let gadgets = ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "finalizer.mlops.test",
        "v1",
        "Gadget",
    ));
    let gadget = json!({"apiVersion": "finalizer.mlops.test/v1", "kind": "Gadget",
                        "metadata": {"name": "held", "finalizers": ["finalizer.mlops.test/held"]}});
    eventually("the new kind served", WAIT, || async {
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &gadgets)
            .patch("held", &apply("selftest"), &Patch::Apply(&gadget))
            .await
            .ok()
    })
    .await;
    crds.delete("gadgets.finalizer.mlops.test", &DeleteParams::default())
        .await
        .unwrap();
    stays(server, crd_path, Duration::from_secs(2), |c| c.is_null()).await;
    let terminating = server.get_json(crd_path).unwrap();
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &gadgets);
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(&format!("{crd_path} gone"), WAIT, || async {
        server.get_json(crd_path).is_none().then_some(())
    })
    .await;
}

/// The AWS load balancer controller: a LoadBalancer Service first gets its cleanup finalizer,
/// its hostname only after a delay (a client that reads it at once finds none), and once
/// deleted it stays, `Terminating`, until its load balancer is "deleted".
#[tokio::test]
async fn a_load_balancer_gets_its_hostname_late_and_holds_its_service_until_deleted() {
    let server = RealApiServer::shared();
    let client = server.client().await;
    let ns = "selftest-load-balancer";
    create_namespace(&client, ns, json!({})).await;
    server.stand_in();
    let path = format!("/api/v1/namespaces/{ns}/services/front");
    let services = Api::<Service>::namespaced(client.clone(), ns);
    services
        .patch(
            "front",
            &apply("selftest"),
            &Patch::Apply(service("front", "none", "LoadBalancer")),
        )
        .await
        .unwrap();
    let created = Instant::now();
    let hostname = |s: &Value| s["status"]["loadBalancer"]["ingress"][0]["hostname"].is_string();
    let with_finalizer = server
        .eventually_get(&path, |s| {
            s["metadata"]["finalizers"] == json!(["service.kubernetes.io/load-balancer-cleanup"])
        })
        .await;
    assert!(!hostname(&with_finalizer), "{with_finalizer:#}");
    server.eventually_get(&path, hostname).await;
    assert!(created.elapsed() >= Duration::from_secs(1));
    services
        .delete("front", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = Instant::now();
    let terminating = server.get_json(&path).expect("kept by its finalizer");
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    eventually(&format!("{path} gone"), WAIT, || async {
        server.get_json(&path).is_none().then_some(())
    })
    .await;
    assert!(deleted.elapsed() >= Duration::from_millis(900));
}
