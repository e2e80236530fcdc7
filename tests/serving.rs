//! From an empty cluster to a served model, and an upgrade of everything under it: the real
//! `mlops` binary (`--kubeconfig` at a real kube-apiserver 1.35.4, `--manifests-dir` at the
//! add-ons' real release manifests in the bundle layout, AWS in the emulator) installs
//! cert-manager, Istio, Knative Serving and KServe of the catalogue's older set, then the
//! example's workloads, upgrades to the newer set and destroys the stack (the cluster's
//! deletion, which the test API server does not do, takes the add-ons). The strict stand-in
//! (tests/support/kube_apiserver/stand_in.rs) plays the cluster's controllers as strictly as the
//! real ones: Deployments available only with what their pods mount, webhooks served only by
//! available Deployments, cert-manager issuing only for Ready issuers, KServe serving a model
//! only with its runtime, its storage account and Knative's controllers running.
//!
//! Everything is checked through the API server: its objects (read with a kube client and
//! discovery, not with `mlops`), its audit log for the writes `mlops` made, and the add-ons'
//! objects computed here from the fixture files themselves.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::Instant;

use kube::api::{ApiResource, DynamicObject};
use kube::discovery::{Discovery, Scope};
use kube::Api;
use serde_json::Value;
use support::inventory::{inventory, nothing_left};
use support::kube_apiserver::RealApiServer;
use support::{copy_example_manifests, example_with_addons, Emulator, Project, FIXTURE_ADDONS};

/// The catalogue's two sets of add-on versions, as the example's `[addons]` keys name them.
const FIRST: [(&str, &str, &str); 4] = [
    ("cert_manager", "cert-manager", "v1.16.1"),
    ("istio", "istio", "1.24.3"),
    ("knative_serving", "knative-serving", "1.16.2"),
    ("kserve", "kserve", "v0.15.0"),
];
const SECOND: [(&str, &str, &str); 4] = [
    ("cert_manager", "cert-manager", "v1.19.4"),
    ("istio", "istio", "1.29.1"),
    ("knative_serving", "knative-serving", "1.21.1"),
    ("kserve", "kserve", "v0.16.0"),
];

/// An object as the API server keys it: group, kind, namespace, name.
type Key = (String, String, Option<String>, String);

/// The objects of one set of add-on versions, read from the fixture files (every YAML
/// document of `<addon>/<version>/*.yaml`), independently of how `mlops` reads them.
fn fixture_objects(set: &[(&str, &str, &str)]) -> BTreeSet<Key> {
    let mut keys = BTreeSet::new();
    for (_, addon, version) in set {
        let dir = Path::new(FIXTURE_ADDONS).join(addon).join(version);
        for entry in fs::read_dir(&dir).unwrap() {
            let text = fs::read_to_string(entry.unwrap().path()).unwrap();
            for document in serde_yaml::Deserializer::from_str(&text) {
                let object: Value = serde::Deserialize::deserialize(document).unwrap();
                if object.is_null() {
                    continue;
                }
                keys.insert(key_of(&object));
            }
        }
    }
    keys
}

fn key_of(object: &Value) -> Key {
    let api_version = object["apiVersion"].as_str().unwrap();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let text = |field: &str| object["metadata"][field].as_str().map(str::to_string);
    (
        group.to_string(),
        object["kind"].as_str().unwrap().to_string(),
        text("namespace"),
        text("name").unwrap(),
    )
}

/// The example's stack with add-ons of `set`, its two workload files, and a model that may take
/// 5 minutes (the example gives it 15, for a first image pull on a real node).
fn stack_text(stack: &str, set: &[(&str, &str, &str)]) -> String {
    let mut text = example_with_addons(stack);
    for (key, _, version) in set {
        let start = text.find(&format!("\n{key} = ")).unwrap() + 1;
        let end = start + text[start..].find('\n').unwrap();
        text.replace_range(start..end, &format!("{key} = \"{version}\""));
    }
    text + INGRESS + "\n[workloads]\npaths = [\"k8s/wine-model.yaml\", \"k8s/team-a.yaml\"]\n"
}

/// The models' domain and the gateway's load balancer, other than their defaults.
const INGRESS: &str = "\n[addons.knative]\ndomain = \"models.mlops.test\"\n\n[addons.ingress_gateway]\nload_balancer = \"nlb\"\nscheme = \"internal\"\n";

/// Where the stack's domain and load balancer settings must be for the model's URL to be
/// served through the gateway: Knative's `config-domain` and KServe's `ingress` (which the
/// KServe stand-in reads, as the real controller does, to make the URL), and the AWS
/// annotations of the gateway's Service that its load-balancer controller reads.
fn assert_ingress_settings(server: &RealApiServer) {
    let domain = server
        .get_json("/api/v1/namespaces/knative-serving/configmaps/config-domain")
        .unwrap();
    assert_eq!(domain["data"]["models.mlops.test"], "", "{domain:#}");
    let kserve = server
        .get_json("/api/v1/namespaces/kserve/configmaps/inferenceservice-config")
        .unwrap();
    let ingress: Value = serde_json::from_str(kserve["data"]["ingress"].as_str().unwrap()).unwrap();
    assert_eq!(ingress["ingressDomain"], "models.mlops.test");
    assert_eq!(
        ingress["ingressGateway"],
        "knative-serving/knative-ingress-gateway"
    );
    let gateway = server
        .get_json("/api/v1/namespaces/istio-system/services/istio-ingressgateway")
        .unwrap();
    let annotations = &gateway["metadata"]["annotations"];
    let aws = "service.beta.kubernetes.io/aws-load-balancer";
    assert_eq!(annotations[format!("{aws}-type")], "nlb", "{annotations:#}");
    assert_eq!(annotations[format!("{aws}-internal")], "true");
    assert_eq!(annotations[format!("{aws}-scheme")], "internal");
}

/// The API server's objects, looked up by group and kind through discovery.
struct Live {
    client: kube::Client,
    kinds: BTreeMap<(String, String), (ApiResource, Scope)>,
    runtime: tokio::runtime::Runtime,
}

impl Live {
    fn new(server: &RealApiServer) -> Live {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(server.client());
        let mut live = Live {
            client,
            kinds: BTreeMap::new(),
            runtime,
        };
        live.rediscover();
        live
    }

    /// Reads the served kinds again (CRDs come and go).
    fn rediscover(&mut self) {
        let discovery = self
            .runtime
            .block_on(Discovery::new(self.client.clone()).run())
            .unwrap();
        // Every version of a group (KServe serves InferenceServices at v1beta1, its runtimes
        // at v1alpha1 only), the preferred one first.
        self.kinds.clear();
        for group in discovery.groups() {
            let preferred = group.preferred_version_or_latest().to_string();
            let others = group.versions().filter(|v| **v != preferred);
            let versions: Vec<String> = std::iter::once(preferred.clone())
                .chain(others.map(str::to_string))
                .collect();
            for version in versions {
                for (resource, caps) in group.versioned_resources(&version) {
                    self.kinds
                        .entry((resource.group.clone(), resource.kind.clone()))
                        .or_insert((resource, caps.scope));
                }
            }
        }
    }

    /// The resource (plural) of a kind the server serves, as the audit log names it.
    fn plural(&self, group: &str, kind: &str) -> Option<String> {
        self.kinds
            .get(&(group.to_string(), kind.to_string()))
            .map(|(resource, _)| resource.plural.clone())
    }

    /// Whether the object exists; a kind the server does not serve has none.
    fn exists(&self, (group, kind, namespace, name): &Key) -> bool {
        let Some((resource, scope)) = self.kinds.get(&(group.clone(), kind.clone())) else {
            return false;
        };
        let api: Api<DynamicObject> = match scope {
            Scope::Namespaced => Api::namespaced_with(
                self.client.clone(),
                namespace.as_deref().unwrap_or("default"),
                resource,
            ),
            Scope::Cluster => Api::all_with(self.client.clone(), resource),
        };
        self.runtime
            .block_on(api.get_opt(name))
            .unwrap_or_else(|e| panic!("GET {kind} {name}: {e}"))
            .is_some()
    }
}

/// The wine model's InferenceService as the API server has it.
/// How long a step took, for docs/testing.md; the test harness captures stderr, so there is no
/// pipe to lose.
#[allow(clippy::disallowed_macros)]
fn done(step: &str, started: Instant) {
    eprintln!("{step} done after {:?}", started.elapsed());
}

fn model(server: &RealApiServer) -> Value {
    server
        .get_json(
            "/apis/serving.kserve.io/v1beta1/namespaces/kserve-inference/inferenceservices/wine-model",
        )
        .expect("the wine-model InferenceService")
}

fn is_ready(object: &Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The example's model served on the add-ons of each catalogue set, and everything they need
/// in between: a first apply installs the older set and the workloads, and ends with the
/// wine-model InferenceService Ready (which KServe's controller, as strict as the real one,
/// grants only with the mlflow runtime of KServe's cluster resources, the IRSA service
/// account and Knative's controllers available) and `mlops status` printing its URL, Knative's
/// `http://wine-model.kserve-inference.<domain>`; a second apply makes no write (the audit
/// log shows none). The upgrade to the newer set skips minor versions of cert-manager, Istio
/// and Knative, which their projects do not support: refused without a write unless
/// `--allow-version-skip`; with it, every object of the newer set's manifests is there, every
/// object only the older set had is gone, and the model is Ready again; a re-apply writes
/// nothing. The stack's `[addons.knative] domain` and `[addons.ingress_gateway]` reach
/// Knative's `config-domain`, KServe's `ingress` and the gateway Service's AWS annotations; the
/// model's URL is under that domain and `mlops status` says how to curl it through the gateway's
/// load balancer. The whole stack's destroy deletes the gateway's LoadBalancer Service (and
/// waits until it is gone) and the workloads, and no add-on object: EKS's deletion of the
/// cluster takes them (the audit log shows no delete of one, and they are all still there);
/// in AWS nothing of the stack is left, checked through the SDK.
#[test]
fn the_example_model_is_served_on_both_addon_sets_upgraded_and_destroyed() {
    let started = Instant::now();
    let moto = Emulator::start();
    let server = RealApiServer::start();
    server.stand_in();
    let kubeconfig = server.kubeconfig.to_str().unwrap().to_string();
    let stack = "serve";
    let project = Project::new(&moto, stack, &stack_text(stack, &FIRST));
    copy_example_manifests(&project.dir.path().join("stacks"));
    let manifest = project.dir.path().join("stacks/k8s/wine-model.yaml");
    let example = fs::read_to_string(&manifest).unwrap();
    assert!(example.contains("mlops.dev/wait-timeout: \"15m\""));
    fs::write(&manifest, example.replace("\"15m\"", "\"5m\"")).unwrap();
    let mlops = |args: &[&str]| {
        project.mlops_in_cluster(
            &kubeconfig,
            &[args, &["--manifests-dir", FIXTURE_ADDONS, "--no-color"]].concat(),
        )
    };
    let mut live = Live::new(&server);

    // The older set, from an empty cluster.
    mlops(&["apply", stack, "--auto-approve"]).ok();
    done("first apply", started);
    let served = model(&server);
    assert!(is_ready(&served), "{served:#}");
    let url = served["status"]["url"].as_str().unwrap().to_string();
    assert_eq!(url, "http://wine-model.kserve-inference.models.mlops.test");
    assert_ingress_settings(&server);
    let status = mlops(&["status", stack]).ok();
    assert!(
        status.stdout.contains(&url),
        "{}\n{}",
        status.stdout,
        status.stderr
    );
    // How to reach it: the model's host through the gateway's load balancer (the stand-in's
    // hostname for it).
    let curl = "curl -H \"Host: wine-model.kserve-inference.models.mlops.test\" http://istio-ingressgateway-istio-system.elb.mlops.test/v1/models/wine-model:predict";
    assert!(status.stderr.contains(curl), "{}", status.stderr);
    assert!(
        status
            .stderr
            .contains("from inside the VPC (the load balancer is internal)"),
        "{}",
        status.stderr
    );
    live.rediscover();
    let first = fixture_objects(&FIRST);
    let missing: Vec<&Key> = first.iter().filter(|k| !live.exists(k)).collect();
    assert!(missing.is_empty(), "not installed: {missing:?}");

    let mark = server.mark();
    mlops(&["apply", stack, "--auto-approve"]).ok();
    let writes = server.writes_since(mark);
    assert!(writes.is_empty(), "a second apply wrote: {writes:#?}");

    // The newer set: a skip of minor versions is refused, naming both and the flag.
    project.write_stack(&stack_text(stack, &SECOND));
    let mark = server.mark();
    let refused = mlops(&["apply", stack, "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    for said in [
        "`cert_manager = \"v1.19.4\"`",
        "the cluster runs cert-manager v1.16.1",
        "--allow-version-skip",
    ] {
        assert!(refused.stderr.contains(said), "{said}: {}", refused.stderr);
    }
    assert!(server.writes_since(mark).is_empty());

    mlops(&["apply", stack, "--auto-approve", "--allow-version-skip"]).ok();
    done("upgrade", started);
    live.rediscover();
    let second = fixture_objects(&SECOND);
    let missing: Vec<&Key> = second.iter().filter(|k| !live.exists(k)).collect();
    assert!(
        missing.is_empty(),
        "not there after the upgrade: {missing:?}"
    );
    let dropped: Vec<&Key> = first.difference(&second).collect();
    assert!(!dropped.is_empty(), "the sets differ");
    let left: Vec<&&Key> = dropped.iter().filter(|k| live.exists(k)).collect();
    assert!(
        left.is_empty(),
        "dropped by the newer set but left: {left:?}"
    );
    let served = model(&server);
    assert!(is_ready(&served), "{served:#}");
    assert_ingress_settings(&server);
    let status = mlops(&["status", stack]).ok();
    assert!(status.stdout.contains(&url), "{}", status.stdout);

    let mark = server.mark();
    mlops(&["apply", stack, "--auto-approve"]).ok();
    let writes = server.writes_since(mark);
    assert!(writes.is_empty(), "a second apply wrote: {writes:#?}");

    // The whole stack: the cluster's deletion takes the add-ons (EKS deletes everything in
    // it), so none of their objects is deleted; only the load balancer of the gateway's
    // Service, deleted and waited for (the stand-in keeps its cleanup finalizer until its
    // load balancer is "deleted"), and the stack's own workloads.
    let gateway: Key = (
        String::new(),
        "Service".into(),
        Some("istio-system".into()),
        "istio-ingressgateway".into(),
    );
    let mark = server.mark();
    mlops(&["destroy", stack, "--auto-approve"]).ok();
    done("destroy", started);
    let deletes: Vec<_> = server
        .writes_since(mark)
        .into_iter()
        .filter(|w| w.verb == "delete")
        .collect();
    let shown: Vec<String> = deletes.iter().map(ToString::to_string).collect();
    assert!(
        shown
            .iter()
            .any(|d| d.starts_with("delete services istio-system/istio-ingressgateway ")),
        "{shown:#?}"
    );
    live.rediscover();
    assert!(!live.exists(&gateway), "the gateway's Service was awaited");
    let addon_deletes: Vec<String> = deletes
        .iter()
        .filter(|w| {
            second.iter().any(|key| {
                let (group, kind, namespace, name) = key;
                *key != gateway
                    && w.api_group == *group
                    && live.plural(group, kind).as_deref() == Some(w.resource.as_str())
                    && w.namespace == *namespace
                    && w.name.as_ref() == Some(name)
            })
        })
        .map(ToString::to_string)
        .collect();
    assert!(
        addon_deletes.is_empty(),
        "add-on objects deleted: {addon_deletes:#?}"
    );
    let kept: Vec<&Key> = second
        .iter()
        .filter(|k| **k != gateway && !live.exists(k))
        .collect();
    assert!(
        kept.is_empty(),
        "deleted by a whole-stack destroy: {kept:?}"
    );
    assert!(!live.exists(&(
        "serving.kserve.io".into(),
        "InferenceService".into(),
        Some("kserve-inference".into()),
        "wine-model".into(),
    )));
    // In AWS nothing of the stack is left, the cluster with them.
    assert_eq!(inventory(&moto.clients(), stack), nothing_left());
}
