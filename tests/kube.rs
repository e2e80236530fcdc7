//! The kube layer of `mlops` (staged server-side apply, waits, uninstall, the destroy-time
//! removal of load balancers) against BOTH API servers: the real kube-apiserver 1.35.4 with
//! etcd, and the in-process test API server that models a current one. Each behaviour is one
//! generic function run against each; a case that passes on the test server and fails on the
//! real one means the test server is wrong. Results are read through the servers' own records
//! (plain HTTPS reads and the audit log of the real one, the object store and request log of the
//! test one), not through `mlops`.

mod support;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use mlops::kube::install::{self, Waits};
use mlops::kube::Cluster;
use mlops::manifest::ObjectRef;
use serde_json::{json, Value};
use support::apiserver::TestApiServer;
use support::kube_apiserver::webhook::AdmissionWebhook;
use support::kube_apiserver::RealApiServer;
use support::objects;

/// What a behaviour needs of a server.
trait Server: Sync {
    fn kubeconfig(&self) -> PathBuf;
    /// The object as the server stores it (`namespace` `None` when cluster-scoped).
    fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value>;
    /// How many writes the server has taken so far.
    fn writes(&self) -> usize;
    /// Keeps the Deployment unavailable, as if its pods never started.
    fn hold_unavailable(&self, namespace: &str, name: &str);
    /// A webhook configuration whose webhook refuses (it is not serving) until `start` is
    /// called, plus the objects it needs; `start` runs on another thread.
    fn late_webhook(&self, namespace: &str) -> LateWebhook;
}

struct LateWebhook {
    /// The `clientConfig` of the webhook.
    client_config: Value,
    /// Objects that go with it (on the test server: the Deployment and Service behind it).
    objects: Vec<Value>,
    start: Box<dyn FnOnce() + Send>,
}

impl Server for RealApiServer {
    fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig.clone()
    }

    fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let resource = format!("{}s", kind.to_lowercase());
        let base = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let path = match namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/{resource}/{name}"),
            None => format!("{base}/{resource}/{name}"),
        };
        self.get_json(&path)
    }

    fn writes(&self) -> usize {
        self.writes_since(support::kube_apiserver::audit::AuditMark::START)
            .len()
    }

    fn hold_unavailable(&self, namespace: &str, name: &str) {
        self.stand_in().hold_unavailable(namespace, name);
    }

    fn late_webhook(&self, _namespace: &str) -> LateWebhook {
        // Serving webhooks stay in a static until the test binary ends.
        static SERVING: Mutex<Vec<AdmissionWebhook>> = Mutex::new(Vec::new());
        let webhook = AdmissionWebhook::new();
        let client_config = webhook.client_config();
        LateWebhook {
            client_config,
            objects: Vec::new(),
            start: Box::new(move || {
                let mut webhook = webhook;
                webhook.serve();
                SERVING.lock().unwrap().push(webhook);
            }),
        }
    }
}

impl Server for TestApiServer {
    fn kubeconfig(&self) -> PathBuf {
        TestApiServer::kubeconfig(self).to_path_buf()
    }

    fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        TestApiServer::object(self, api_version, kind, namespace, name)
    }

    fn writes(&self) -> usize {
        TestApiServer::writes(self).len()
    }

    fn hold_unavailable(&self, namespace: &str, name: &str) {
        self.set_never_available(namespace, name);
    }

    fn late_webhook(&self, namespace: &str) -> LateWebhook {
        // The webhook's Deployment is held unavailable, so its Service has no endpoints and
        // the server refuses with `no endpoints available` until it is released.
        self.set_never_available(namespace, "webhook");
        let labels = json!({"app": "webhook"});
        let objects = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "webhook", "namespace": namespace},
                   "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                            "template": {"metadata": {"labels": labels},
                                         "spec": {"containers": [{"name": "w", "image": "example/webhook:1",
                                                                  "ports": [{"containerPort": 8443, "protocol": "TCP"}]}]}}}}),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "webhook", "namespace": namespace},
                   "spec": {"selector": labels, "ports": [{"port": 443, "targetPort": 8443, "protocol": "TCP"}]}}),
        ];
        let namespace = namespace.to_string();
        LateWebhook {
            client_config: json!({"service": {"name": "webhook", "namespace": namespace, "path": "/validate", "port": 443}}),
            objects,
            start: Box::new(move || test_server().clear_never_available(&namespace, "webhook")),
        }
    }
}

/// One test server for the cases of this binary, like the real one.
fn test_server() -> &'static TestApiServer {
    static SERVER: std::sync::OnceLock<TestApiServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(TestApiServer::start)
}

fn waits() -> Waits {
    Waits {
        timeout: Duration::from_secs(60),
        load_balancer_timeout: Duration::from_secs(30),
        poll: Duration::from_millis(500),
    }
}

async fn cluster(server: &dyn Server) -> Cluster {
    Cluster::from_kubeconfig(&server.kubeconfig())
        .await
        .unwrap()
}

/// Progress nobody reads.
struct Quiet;

impl install::Progress for Quiet {
    fn waiting(&self, _: &str) {}
    fn warning(&self, _: &str) {}
}

/// A namespace and a CRD of its own for one case (CRDs are cluster-wide and the servers are
/// shared by the cases of this binary).
fn crd(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("models.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "models", "singular": "model", "kind": "Model", "listKind": "ModelList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {"uri": {"type": "string"}}}}}}}]}
    })
}

fn model(group: &str, namespace: &str, name: &str) -> Value {
    json!({"apiVersion": format!("{group}/v1"), "kind": "Model",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"uri": format!("s3://models/{name}")}})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

async fn a_crd_and_its_custom_resource_go_in_one_apply(server: &dyn Server, tag: &str) {
    let (ns, group) = (format!("crd-{tag}"), format!("{tag}.crd.mlops.test"));
    let set = objects(&[model(&group, &ns, "wine"), crd(&group), namespace(&ns)]);
    install::install(&cluster(server).await, set, &waits(), &Quiet)
        .await
        .unwrap();
    let stored = server
        .object(&format!("{group}/v1"), "Model", Some(&ns), "wine")
        .expect("the custom resource");
    assert_eq!(stored["spec"]["uri"], "s3://models/wine");
}

async fn rbac_workloads_and_a_load_balancer_go_in_and_come_out(server: &dyn Server, tag: &str) {
    let ns = format!("apps-{tag}");
    let labels = json!({"app": "web"});
    let set = objects(&[
        namespace(&ns),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": ns}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "web", "namespace": ns},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "web", "namespace": ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web"},
               "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": ns}, "data": {"a": "1"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
               "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"serviceAccountName": "web",
                                              "containers": [{"name": "web", "image": "example/web:1",
                                                              "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
               "spec": {"type": "LoadBalancer", "selector": labels,
                        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
    ]);
    let refs: Vec<ObjectRef> = set.iter().map(|o| o.id.clone()).collect();
    let cluster = cluster(server).await;
    install::install(&cluster, set, &waits(), &Quiet)
        .await
        .unwrap();
    let deployment = server
        .object("apps/v1", "Deployment", Some(&ns), "web")
        .unwrap();
    assert_eq!(
        install::unavailable("Deployment", &deployment),
        None,
        "{deployment}"
    );
    let service = server.object("v1", "Service", Some(&ns), "web").unwrap();
    assert!(
        install::load_balancer_address(&service).is_some(),
        "{service}"
    );

    // Destroy: the load balancer first, then the rest.
    let removed = install::delete_load_balancers(&cluster, &waits(), &Quiet)
        .await
        .unwrap();
    assert!(removed >= 1);
    assert!(server.object("v1", "Service", Some(&ns), "web").is_none());
    install::uninstall(&cluster, &refs, &waits(), &Quiet)
        .await
        .unwrap();
    for kind in ["ServiceAccount", "ConfigMap"] {
        assert!(
            server.object("v1", kind, Some(&ns), "web").is_none(),
            "{kind} left"
        );
    }
    assert!(server
        .object("apps/v1", "Deployment", Some(&ns), "web")
        .is_none());
    assert!(server.object("v1", "Namespace", None, &ns).is_none());
}

/// Applies `values` with a plain kube client, not `mlops`: the setup of a case.
async fn setup(server: &dyn Server, values: &[Value]) {
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    for value in values {
        let object = &objects(std::slice::from_ref(value))[0];
        let gvk = kube::api::GroupVersionKind::gvk(
            object.id.group_version().0,
            object.id.group_version().1,
            &object.id.kind,
        );
        let (resource, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
        let api: kube::Api<kube::api::DynamicObject> = match &object.id.namespace {
            Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &resource),
            None => kube::Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &object.id.name,
            &kube::api::PatchParams::apply("test-setup").force(),
            &kube::api::Patch::Apply(value),
        )
        .await
        .unwrap_or_else(|e| panic!("setup of {}: {e}", object.id));
    }
}

/// A webhook (failurePolicy Fail) whose server is not up makes the API server refuse every
/// write it guards (`failed calling webhook`, HTTP 500), as while KServe's controller starts:
/// the write is retried until the webhook serves.
async fn a_webhook_that_refuses_then_accepts_is_waited_for(server: &dyn Server, tag: &str) {
    let (ns, group) = (format!("hook-{tag}"), format!("{tag}.hook.mlops.test"));
    let webhook = server.late_webhook(&ns);
    // The webhook is there before `mlops` comes, but does not serve yet.
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": format!("models-{tag}")},
        "webhooks": [{"name": format!("models.{group}"), "clientConfig": webhook.client_config,
                      "rules": [{"apiGroups": [group], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                 "resources": ["models"], "scope": "*"}],
                      "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"]}]
    });
    let mut values = vec![namespace(&ns)];
    values.extend(webhook.objects);
    values.push(configuration);
    setup(server, &values).await;
    let start = webhook.start;
    let down_for = Duration::from_secs(3);
    let started = std::time::Instant::now();
    let late = std::thread::spawn(move || {
        std::thread::sleep(down_for);
        start();
    });
    let set = objects(&[crd(&group), model(&group, &ns, "guarded")]);
    install::install(&cluster(server).await, set, &waits(), &Quiet)
        .await
        .unwrap();
    late.join().unwrap();
    // The CRD is established within a second or two: the Model's write met the webhook down
    // (failurePolicy Fail refuses it) and went through only once it served.
    assert!(
        started.elapsed() >= down_for,
        "the install ended before the webhook served: the case proves nothing"
    );
    assert!(server
        .object(&format!("{group}/v1"), "Model", Some(&ns), "guarded")
        .is_some());
}

async fn a_deployment_that_never_becomes_available_is_named(server: &dyn Server, tag: &str) {
    let ns = format!("stuck-{tag}");
    server.hold_unavailable(&ns, "stuck");
    let labels = json!({"app": "stuck"});
    let set = objects(&[
        namespace(&ns),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": ns},
               "spec": {"selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"containers": [{"name": "c", "image": "example/c:1"}]}}}}),
    ]);
    let short = Waits {
        timeout: Duration::from_secs(3),
        ..waits()
    };
    let err = install::install(&cluster(server).await, set, &short, &Quiet)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("Deployment {ns}/stuck is not available after 3s")),
        "{message}"
    );
}

async fn an_unchanged_object_reapplied_changes_nothing_and_uninstall_prunes(
    server: &dyn Server,
    tag: &str,
) {
    let ns = format!("prune-{tag}");
    let config = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": name, "namespace": ns, "labels": {"mlops.dev/addon": "test"}},
                                     "data": {"k": "v"}})
    };
    let cluster = cluster(server).await;
    install::install(
        &cluster,
        objects(&[namespace(&ns), config("keep"), config("drop")]),
        &waits(),
        &Quiet,
    )
    .await
    .unwrap();
    let version = |name: &str| {
        server.object("v1", "ConfigMap", Some(&ns), name).unwrap()["metadata"]["resourceVersion"]
            .clone()
    };
    let before = version("keep");
    install::install(
        &cluster,
        objects(&[namespace(&ns), config("keep")]),
        &waits(),
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(version("keep"), before, "an unchanged object was changed");
    let dropped: ObjectRef = format!("v1 ConfigMap {ns}/drop").parse().unwrap();
    let writes = server.writes();
    install::uninstall(&cluster, &[dropped], &waits(), &Quiet)
        .await
        .unwrap();
    assert!(server.writes() > writes);
    assert!(server
        .object("v1", "ConfigMap", Some(&ns), "drop")
        .is_none());
    assert!(server
        .object("v1", "ConfigMap", Some(&ns), "keep")
        .is_some());
}

/// Runs one behaviour against both servers.
macro_rules! on_both_servers {
    ($($case:ident),* $(,)?) => {
        mod real {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::RealApiServer::shared(), "real").await;
                }
            )*
        }
        mod test_server {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::test_server(), "test").await;
                }
            )*
        }
    };
}

on_both_servers!(
    a_crd_and_its_custom_resource_go_in_one_apply,
    rbac_workloads_and_a_load_balancer_go_in_and_come_out,
    a_webhook_that_refuses_then_accepts_is_waited_for,
    a_deployment_that_never_becomes_available_is_named,
    an_unchanged_object_reapplied_changes_nothing_and_uninstall_prunes,
);
