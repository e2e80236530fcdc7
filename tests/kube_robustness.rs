//! The Kubernetes layer on a cluster less kind than a test server, on the real kube-apiserver
//! 1.35.4 with the stand-in: EKS tokens that the authenticator refuses 15 minutes after signing
//! (`support::kube_apiserver::eks_authenticator`, time scaled by `EKS_TIME_SCALE`); transient
//! API errors (429, 5xx, a connection closed before the answer) from a faulty proxy in front of
//! the server; the two field managers; the prune of an add-on upgrade. Results are read through
//! the server itself (plain HTTPS as the admin), the authenticator's log of the tokens it was
//! asked about and the proxy's counts, never through `mlops`' own records. The tests share one
//! server, each in namespaces of its own.

mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::Api;
use mlops::kube::auth::TokenMinter;
use mlops::kube::install::{self, Waits};
use mlops::kube::{token, Cluster, KubeError};
use mlops::manifest::{Object, ObjectRef};
use serde_json::{json, Value};
use support::kube_apiserver::eks_authenticator::{scaled, EksAuthenticator};
use support::kube_apiserver::faulty_proxy::{Fault, FaultyProxy};
use support::kube_apiserver::RealApiServer;
use support::objects;

/// How long the authenticator accepts a token: EKS's 15 minutes, scaled.
fn token_lifetime() -> Duration {
    scaled(Duration::from_secs(15 * 60))
}

/// One server for the binary, asking the EKS authenticator about the tokens it does not know.
fn server() -> &'static (EksAuthenticator, RealApiServer) {
    static SERVER: OnceLock<(EksAuthenticator, RealApiServer)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let authenticator = EksAuthenticator::start();
        let flags = authenticator.flags();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let server = RealApiServer::start_with(&flags);
        (authenticator, server)
    })
}

fn credentials(access_key: &str) -> Credentials {
    Credentials::new(access_key, "secret", None, None, "test")
}

/// The server as an EKS cluster: its URL and CA, tokens minted with `access_key` (which tells
/// the tests' tokens apart in the authenticator's log) and renewed `refresh_after` signing.
async fn eks_cluster(access_key: &str, refresh_after: Duration) -> Cluster {
    let (_, server) = server();
    let minter = TokenMinter::new(
        SharedCredentialsProvider::new(credentials(access_key)),
        "us-west-2",
        "demo",
        refresh_after,
    );
    Cluster::from_endpoint("demo", &server.url, &server.ca_base64(), minter)
        .await
        .unwrap()
}

fn waits() -> Waits {
    Waits {
        timeout: Duration::from_secs(120),
        load_balancer_timeout: Duration::from_secs(10),
        poll: Duration::from_millis(500),
    }
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn config_map(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": {"k": "v"}})
}

/// Progress that keeps the warnings.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

impl install::Progress for Notes {
    fn waiting(&self, _: &str) {}
    fn warning(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn id(text: &str) -> ObjectRef {
    text.parse().unwrap()
}

/// EKS refuses a token 15 minutes after it was signed, and a model can take longer than that
/// to become Ready. Here a Deployment waits for a Secret that comes after two and a half token
/// lifetimes: the install waits it out, every request carrying a token minted before the
/// current one was 14 minutes (scaled) old, so the authenticator never had to refuse one.
#[tokio::test]
async fn a_token_that_expires_mid_wait_is_minted_again_and_the_run_goes_on() {
    let (authenticator, server) = server();
    server.stand_in();
    let ns = "token-wait";
    let labels = json!({"app": "model"});
    let set = objects(&[
        namespace(ns),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "model", "namespace": ns},
               "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels},
                                     "spec": {"containers": [{"name": "c", "image": "example/model:1"}],
                                              "volumes": [{"name": "weights",
                                                           "secret": {"secretName": "weights"}}]}}}}),
    ]);
    let late_by = token_lifetime() * 5 / 2;
    let admin = server.client().await;
    let late = tokio::spawn(async move {
        tokio::time::sleep(late_by).await;
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": "weights"}})).unwrap();
        Api::<Secret>::namespaced(admin, ns)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    });
    let cluster = eks_cluster("AKIDMIDWAIT", scaled(token::TOKEN_LIFETIME)).await;
    let started = Instant::now();
    install::install(&cluster, set, &waits(), &Notes::default())
        .await
        .unwrap();
    late.await.unwrap();
    assert!(
        started.elapsed() >= late_by,
        "the wait was too short to prove anything"
    );

    let deployment = server
        .get_json(&format!("/apis/apps/v1/namespaces/{ns}/deployments/model"))
        .unwrap();
    assert_eq!(
        deployment["status"]["availableReplicas"], 1,
        "{deployment:#}"
    );
    let reviews = authenticator.reviews("AKIDMIDWAIT");
    let refused: Vec<_> = reviews.iter().filter(|r| r.refused.is_some()).collect();
    assert!(refused.is_empty(), "tokens were refused: {refused:#?}");
    let mut signed: Vec<u64> = reviews.iter().map(|r| r.signed).collect();
    signed.dedup();
    assert!(
        signed.len() >= 3,
        "expected a new token every 14 (scaled) minutes of the wait: {reviews:#?}"
    );
    assert!(
        signed.last().unwrap() - signed.first().unwrap() > token_lifetime().as_secs(),
        "the run did not outlive its first token: {reviews:#?}"
    );
}

/// The old behaviour, a token minted once and written into the connection's kubeconfig: once
/// EKS's 15 minutes (scaled) have passed, the API server refuses it with 401, and `mlops` says
/// the credentials were refused.
#[tokio::test]
async fn one_token_for_the_whole_run_is_refused_once_fifteen_minutes_old() {
    let (authenticator, server) = server();
    let url = token::presigned_url(
        &credentials("AKIDONCE"),
        "us-west-2",
        "demo",
        SystemTime::now(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let config = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "demo",
        "clusters": [{"name": "demo", "cluster": {"server": server.url,
                      "certificate-authority-data": server.ca_base64()}}],
        "users": [{"name": "once", "user": {"token": token::token(&url)}}],
        "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": "once"}}],
    });
    std::fs::write(&kubeconfig, serde_yaml::to_string(&config).unwrap()).unwrap();
    let cluster = Cluster::from_kubeconfig(&kubeconfig).await.unwrap();
    let default = id("v1 Namespace default");
    assert!(cluster.get(&default).await.unwrap().is_some());
    tokio::time::sleep(token_lifetime() + Duration::from_secs(2)).await;
    let err = cluster.get(&default).await.unwrap_err();
    assert!(matches!(err, KubeError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    let reviews = authenticator.reviews("AKIDONCE");
    assert!(
        reviews.last().is_some_and(|r| r.refused.is_some()),
        "{reviews:#?}"
    );
}

/// A token refused all the same (a clock that runs behind, a token kept too long) is renewed
/// once: the request that met the 401 is sent again with a new token and goes through.
#[tokio::test]
async fn a_refused_token_is_minted_again_once_and_the_request_goes_through() {
    let (authenticator, _) = server();
    // Never renewed for its age: only the 401 can renew it.
    let cluster = eks_cluster("AKIDRENEW", Duration::from_secs(3600)).await;
    let default = id("v1 Namespace default");
    assert!(cluster.get(&default).await.unwrap().is_some());
    tokio::time::sleep(token_lifetime() + Duration::from_secs(2)).await;
    assert!(cluster.get(&default).await.unwrap().is_some());
    let reviews = authenticator.reviews("AKIDRENEW");
    let refused = reviews
        .iter()
        .position(|r| r.refused.is_some())
        .unwrap_or_else(|| panic!("the old token was never refused: {reviews:#?}"));
    let renewed = &reviews[refused + 1..];
    assert!(
        renewed
            .iter()
            .any(|r| r.refused.is_none() && r.signature != reviews[refused].signature),
        "{reviews:#?}"
    );
}

/// A busy or restarting control plane answers 429, 500, 503, or drops the connection before
/// it answers: each read, write and delete is retried with backoff and goes through.
#[tokio::test]
async fn transient_api_errors_are_retried_on_reads_writes_and_deletes() {
    let (_, server) = server();
    let ns = "faults";
    let proxy = FaultyProxy::start(
        server,
        &[
            Fault::Status(429),
            Fault::Status(500),
            Fault::Close,
            Fault::Status(503),
        ],
    );
    let cluster = Cluster::from_kubeconfig(&proxy.kubeconfig).await.unwrap();
    let set = objects(&[namespace(ns), config_map(ns, "settings", json!({}))]);
    install::install(&cluster, set, &waits(), &Notes::default())
        .await
        .unwrap();
    assert_eq!(proxy.counts().0, 4, "not every fault was met");
    let path = format!("/api/v1/namespaces/{ns}/configmaps/settings");
    assert!(server.get_json(&path).is_some());

    proxy.fail_next(&[Fault::Close, Fault::Status(502)]);
    let settings = id(&format!("v1 ConfigMap {ns}/settings"));
    assert!(cluster.delete(&settings).await.unwrap());
    assert_eq!(proxy.counts().0, 6);
    assert!(server.get_json(&path).is_none());
}

/// An error that another try cannot change (403 Forbidden) is not retried: one request, and
/// the error names what was asked.
#[tokio::test]
async fn an_error_that_cannot_pass_is_not_retried() {
    let (_, server) = server();
    let proxy = FaultyProxy::start(server, &[Fault::Status(403)]);
    let cluster = Cluster::from_kubeconfig(&proxy.kubeconfig).await.unwrap();
    let err = cluster
        .get(&id("v1 ConfigMap faults-none/settings"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 403"), "{err}");
    assert_eq!(proxy.counts(), (1, 0));
}

/// The managers of an object's fields, from the server's `managedFields`.
fn managers(server: &RealApiServer, path: &str) -> Vec<String> {
    let object = server.get_json(path).unwrap();
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["operation"] == "Apply")
        .map(|f| f["manager"].as_str().unwrap().to_string())
        .collect()
}

/// Server-side apply records who set each field: an add-on's objects are applied as
/// `mlops-addons`, the stack's own as `mlops-workloads`, so each owns only its fields.
#[tokio::test]
async fn addons_and_workloads_apply_as_two_field_managers() {
    let (_, server) = server();
    let ns = "managers";
    let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
    let set = objects(&[
        namespace(ns),
        config_map(ns, "addon", json!({"mlops.dev/addon": "knative-serving"})),
        config_map(
            ns,
            "workload",
            json!({"app.kubernetes.io/managed-by": "mlops"}),
        ),
    ]);
    install::install(&cluster, set, &waits(), &Notes::default())
        .await
        .unwrap();
    let path = |name: &str| format!("/api/v1/namespaces/{ns}/configmaps/{name}");
    assert_eq!(managers(server, &path("addon")), ["mlops-addons"]);
    assert_eq!(managers(server, &path("workload")), ["mlops-workloads"]);
}

/// An upgrade's prune, as a controller-less cluster would see it: an object the new version
/// dropped is deleted; one whose kind moved to another API version (HorizontalPodAutoscaler
/// `autoscaling/v1` to `autoscaling/v2`, both served) is the same object and stays; one that
/// another add-on has taken over (labelled as its own) stays, with a warning naming it.
#[tokio::test]
async fn an_upgrade_prunes_only_what_it_dropped_and_still_owns() {
    let (_, server) = server();
    let ns = "prune-keys";
    let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
    let alpha = json!({"mlops.dev/addon": "alpha"});
    let hpa = |api_version: &str| {
        json!({"apiVersion": api_version, "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "scale", "namespace": ns, "labels": {"mlops.dev/addon": "alpha"}},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                        "maxReplicas": 2}})
    };
    let old = objects(&[
        namespace(ns),
        config_map(ns, "kept", alpha.clone()),
        config_map(ns, "dropped", alpha.clone()),
        config_map(ns, "moved", alpha.clone()),
        hpa("autoscaling/v1"),
    ]);
    install::install(&cluster, old.clone(), &waits(), &Notes::default())
        .await
        .unwrap();
    // The new version: `moved` now belongs to the add-on `beta`, the HPA is written as v2.
    let new = objects(&[
        namespace(ns),
        config_map(ns, "kept", alpha),
        hpa("autoscaling/v2"),
    ]);
    install::install(&cluster, new.clone(), &waits(), &Notes::default())
        .await
        .unwrap();
    let beta = objects(&[config_map(ns, "moved", json!({"mlops.dev/addon": "beta"}))]);
    install::install(&cluster, beta, &waits(), &Notes::default())
        .await
        .unwrap();

    let refs = |set: &[Object]| set.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    let dropped = install::dropped(refs(&old), &refs(&new));
    assert_eq!(
        dropped,
        [
            id(&format!("v1 ConfigMap {ns}/dropped")),
            id(&format!("v1 ConfigMap {ns}/moved"))
        ]
    );
    let notes = Notes::default();
    install::prune(&cluster, "alpha", &dropped, &waits(), &notes)
        .await
        .unwrap();
    let exists = |path: &str| server.get_json(path).is_some();
    let config = |name: &str| format!("/api/v1/namespaces/{ns}/configmaps/{name}");
    assert!(!exists(&config("dropped")));
    assert!(exists(&config("moved")));
    assert!(exists(&config("kept")));
    assert!(exists(&format!(
        "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/scale"
    )));
    let warnings = notes.0.into_inner().unwrap();
    assert_eq!(
        warnings,
        [format!(
            "ConfigMap {ns}/moved is not pruned: it is `beta`'s now (label `mlops.dev/addon`)"
        )]
    );
}
