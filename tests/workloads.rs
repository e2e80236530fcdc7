//! The stack's own Kubernetes objects (`[workloads]`), end to end: the real `mlops` binary
//! against the AWS emulator and a Kubernetes API server. Results are checked through the API
//! server's own objects and its audit log (or request log), and through the AWS SDK, never
//! through mlops' state.

mod support;

use std::fs;
use std::path::PathBuf;

use serde_json::{json, Value};
use support::apiserver::TestApiServer;
use support::kube_apiserver::audit::AuditWrite;
use support::kube_apiserver::RealApiServer;
use support::{copy_example_manifests, example_as, example_with_addons, Emulator, Project};

/// The example without add-ons but with the cluster side on (`[addons] enabled = true`, none
/// listed): only the IRSA service account and the workloads go into the cluster.
fn stack_with_workloads(stack: &str, paths: &str) -> String {
    let text = example_as(stack);
    let cut = text.find("\n[addons]").expect("the example has [addons]");
    format!(
        "{}\n[addons]\nenabled = true\n\n[workloads]\npaths = [{paths}]\n",
        &text[..cut]
    )
}

/// A CRD of the test's own, the namespace of the set, and a custom resource of the CRD.
const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: models.example.mlops.dev
spec:
  group: example.mlops.dev
  scope: Namespaced
  names: {plural: models, singular: model, kind: Model}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
"#;

/// What a team runs: quota, RBAC, a ConfigMap naming the IRSA role, a Deployment behind a
/// LoadBalancer Service, and a custom resource of the CRD above.
const APP: &str = r#"apiVersion: example.mlops.dev/v1
kind: Model
metadata:
  name: wine
  namespace: shop
spec:
  uri: s3://${buckets.models.name}/wine
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: quota
  namespace: shop
spec:
  hard:
    limits.cpu: 2000m
    pods: "10"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
  namespace: shop
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader
  namespace: shop
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
  - {kind: ServiceAccount, name: default, namespace: shop}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  role: ${irsa.kserve-s3.role_arn}
  mode: fast
  owner: ${stack.name}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
    - {port: 80, targetPort: 80, protocol: TCP}
"#;

/// A file that will be removed.
const EXTRA: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: extra
  namespace: shop
data: {a: "1"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: shop-extra-reader
rules: []
"#;

fn write(project: &Project, name: &str, text: &str) {
    fs::create_dir_all(project.dir.path().join("stacks/k8s")).unwrap();
    fs::write(project.dir.path().join("stacks/k8s").join(name), text).unwrap();
}

fn remove(project: &Project, name: &str) {
    fs::remove_file(project.dir.path().join("stacks/k8s").join(name)).unwrap();
}

/// The object at an API path of the real server, if it exists.
fn live(server: &RealApiServer, path: &str) -> Option<Value> {
    server.get_json(path)
}

/// Position of the first write matching `verb` and `resource` (`configmaps`, `models`) and
/// `name`.
fn first(writes: &[AuditWrite], verb: &str, resource: &str, name: &str) -> usize {
    writes
        .iter()
        .position(|w| w.verb == verb && w.resource == resource && w.name.as_deref() == Some(name))
        .unwrap_or_else(|| {
            let all: Vec<String> = writes.iter().map(|w| w.to_string()).collect();
            panic!("no {verb} of {resource} {name} in {all:#?}")
        })
}

/// Changes a field the way `kubectl edit` would: a merge patch by another field manager.
fn edit_live(server: &RealApiServer, namespace: &str, name: &str, patch: Value) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, namespace);
        api.patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    });
}

/// Issue 6 against the real kube-apiserver: a set with a CRD and its custom resource,
/// namespaces, a quota, RBAC, a ConfigMap naming the IRSA role, a Deployment and a LoadBalancer
/// Service goes in in order; a second plan shows nothing and a second apply writes nothing; a
/// field changed in a file, or by hand in the cluster, is that one field in the plan; a removed
/// file prunes its objects; destroy removes the LoadBalancer Service first and leaves none.
#[test]
fn workloads_go_in_in_order_show_single_field_changes_prune_and_leave_nothing() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let server = RealApiServer::shared();
    server.stand_in(); // Deployments become available, LoadBalancers get an address
    let kubeconfig = server.kubeconfig.to_str().unwrap().to_string();
    let stack = "shop";
    let project = Project::new(&moto, stack, &stack_with_workloads(stack, r#""k8s/""#));
    write(&project, "crd.yaml", CRD);
    write(&project, "app.yaml", APP);
    write(&project, "extra.yaml", EXTRA);
    let mlops = |args: &[&str]| {
        let flags = ["--no-color", "--wait-timeout", "60s"];
        project.mlops_in_cluster(&kubeconfig, &[args, &flags].concat())
    };

    let start = server.mark();
    let applied = mlops(&["apply", stack, "--auto-approve"]).ok();
    assert!(
        applied.stderr.contains("Apply complete"),
        "{}",
        applied.stderr
    );
    let writes = server.writes_since(start);
    let crd = first(
        &writes,
        "patch",
        "customresourcedefinitions",
        "models.example.mlops.dev",
    );
    let namespace = first(&writes, "patch", "namespaces", "shop");
    let model = first(&writes, "patch", "models", "wine");
    assert!(crd < model, "the CRD before its custom resource");
    for (resource, name) in [
        ("resourcequotas", "quota"),
        ("roles", "reader"),
        ("rolebindings", "reader"),
        ("configmaps", "settings"),
        ("deployments", "web"),
        ("services", "web"),
        ("models", "wine"),
    ] {
        assert!(
            namespace < first(&writes, "patch", resource, name),
            "namespace shop before {resource} {name}"
        );
    }
    let role_arn = aws.role_arn("shop-irsa-kserve-s3");
    let settings = live(server, "/api/v1/namespaces/shop/configmaps/settings").unwrap();
    assert_eq!(settings["data"]["role"], role_arn.as_str());
    assert_eq!(settings["data"]["owner"], "shop");
    let model = live(
        server,
        "/apis/example.mlops.dev/v1/namespaces/shop/models/wine",
    )
    .unwrap();
    assert_eq!(model["spec"]["uri"], "s3://shop-models/wine");
    assert_eq!(
        model["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "mlops"
    );

    // Nothing changed: plan exit 0, and a second apply writes nothing.
    let mark = server.mark();
    let plan = mlops(&["plan", stack, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    mlops(&["apply", stack, "--auto-approve"]).ok();
    let again: Vec<String> = server
        .writes_since(mark)
        .iter()
        .map(|w| w.to_string())
        .collect();
    assert!(again.is_empty(), "writes with nothing to change: {again:?}");

    // One field changed in a file is that one field in the plan.
    write(
        &project,
        "app.yaml",
        &APP.replace("mode: fast", "mode: careful"),
    );
    let plan = mlops(&["plan", stack, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("~ k8s.shop.ConfigMap.settings"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(r#"~ "mode"  = "fast" -> "careful""#),
        "{}",
        plan.stdout
    );
    let changed_lines = plan.stdout.lines().filter(|l| l.contains(" -> ")).count();
    assert_eq!(changed_lines, 1, "only that field:\n{}", plan.stdout);
    mlops(&["apply", stack, "--auto-approve"]).ok();
    let settings = live(server, "/api/v1/namespaces/shop/configmaps/settings").unwrap();
    assert_eq!(settings["data"]["mode"], "careful");

    // A field changed by hand in the cluster shows as that field, with its live value.
    edit_live(
        server,
        "shop",
        "settings",
        json!({"data": {"mode": "reckless"}}),
    );
    let plan = mlops(&["plan", stack, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout
            .contains(r#"~ "mode"  = "reckless" -> "careful""#),
        "{}",
        plan.stdout
    );
    mlops(&["apply", stack, "--auto-approve"]).ok();
    let settings = live(server, "/api/v1/namespaces/shop/configmaps/settings").unwrap();
    assert_eq!(settings["data"]["mode"], "careful");

    // A removed file prunes its objects.
    remove(&project, "extra.yaml");
    let plan = mlops(&["plan", stack]).ok();
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 0 to change, 2 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("- k8s.shop.ConfigMap.extra"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("- k8s.ClusterRole.shop-extra-reader"),
        "{}",
        plan.stdout
    );
    mlops(&["apply", stack, "--auto-approve"]).ok();
    assert!(live(server, "/api/v1/namespaces/shop/configmaps/extra").is_none());
    assert!(live(
        server,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/shop-extra-reader"
    )
    .is_none());
    assert!(live(server, "/api/v1/namespaces/shop/configmaps/settings").is_some());

    // Destroy: the LoadBalancer Service first, then the rest; none of the objects is left.
    let mark = server.mark();
    mlops(&["destroy", stack, "--auto-approve"]).ok();
    let writes = server.writes_since(mark);
    let deletes: Vec<&AuditWrite> = writes.iter().filter(|w| w.verb == "delete").collect();
    assert_eq!(
        deletes
            .first()
            .map(|w| (w.resource.as_str(), w.name.as_deref())),
        Some(("services", Some("web"))),
        "{deletes:#?}"
    );
    for path in [
        "/api/v1/namespaces/shop/services/web",
        "/apis/apps/v1/namespaces/shop/deployments/web",
        "/api/v1/namespaces/shop/configmaps/settings",
        "/apis/example.mlops.dev/v1/namespaces/shop/models/wine",
        "/api/v1/namespaces/shop",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/models.example.mlops.dev",
        "/api/v1/namespaces/kserve-inference/serviceaccounts/kserve-sa",
    ] {
        assert!(live(server, path).is_none(), "{path} is left");
    }
}

/// The example's own manifests against the test API server with the fixture add-ons: the
/// InferenceService goes in once KServe is ready; one that never becomes Ready fails the apply
/// naming it and its condition's message; once it can, a re-run serves it.
#[test]
fn the_example_model_waits_for_kserve_and_a_model_never_ready_is_named() {
    let moto = Emulator::start();
    let server = TestApiServer::start();
    let kubeconfig = server.kubeconfig().to_str().unwrap().to_string();
    let stack = "wine";
    let text = example_with_addons(stack)
        + "\n[workloads]\npaths = [\"k8s/wine-model.yaml\", \"k8s/team-a.yaml\"]\n";
    let project = Project::new(&moto, stack, &text);
    let stacks: PathBuf = project.dir.path().join("stacks");
    copy_example_manifests(&stacks);
    // This test's own limit, through the annotation the example uses.
    let manifest = stacks.join("k8s/wine-model.yaml");
    let example = fs::read_to_string(&manifest).unwrap();
    assert!(example.contains("mlops.dev/wait-timeout: \"15m\""));
    fs::write(&manifest, example.replace("\"15m\"", "\"3s\"")).unwrap();
    let mlops =
        |args: &[&str]| project.mlops_in_cluster(&kubeconfig, &[args, &["--no-color"]].concat());

    server.set_never_ready("kserve-inference", "wine-model");
    let failed = mlops(&["apply", stack, "--auto-approve"]);
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    assert!(
        failed
            .stderr
            .contains("InferenceService kserve-inference/wine-model is not Ready after 3s"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("RevisionMissing") || failed.stderr.contains("failed with message"),
        "{}",
        failed.stderr
    );

    // Applied after KServe was ready: after every write of KServe's own objects.
    let requests = server.requests();
    let writes: Vec<_> = requests.iter().filter(|r| r.is_write()).collect();
    let model = writes
        .iter()
        .position(|r| r.kind.as_deref() == Some("InferenceService"))
        .expect("the InferenceService was applied");
    let last_kserve = writes
        .iter()
        .rposition(|r| r.namespace.as_deref() == Some("kserve"))
        .expect("KServe was installed");
    assert!(
        last_kserve < model,
        "KServe ({last_kserve}) before the model ({model})"
    );
    let account = server
        .object(
            "v1",
            "ServiceAccount",
            Some("kserve-inference"),
            "kserve-sa",
        )
        .expect("the IRSA service account");
    let model = server
        .object(
            "serving.kserve.io/v1beta1",
            "InferenceService",
            Some("kserve-inference"),
            "wine-model",
        )
        .expect("the InferenceService");
    assert_eq!(
        model["spec"]["predictor"]["serviceAccountName"],
        account["metadata"]["name"]
    );
    assert_eq!(
        model["spec"]["predictor"]["model"]["storageUri"],
        "s3://wine-models/wine-model"
    );

    server.clear_never_ready("kserve-inference", "wine-model");
    mlops(&["apply", stack, "--auto-approve"]).ok();
    let quota = server.object("v1", "ResourceQuota", Some("team-a"), "team-a-quota");
    assert!(quota.is_some(), "the team's quota");
    let plan = mlops(&["plan", stack, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);

    mlops(&["destroy", stack, "--auto-approve"]).ok();
    assert!(server
        .object(
            "serving.kserve.io/v1beta1",
            "InferenceService",
            Some("kserve-inference"),
            "wine-model"
        )
        .is_none());
}

/// On a workstation, `KUBECONFIG` points kubectl at whatever cluster the shell used last. When
/// mlops honoured it, a `destroy` of a stack deleted the LoadBalancer Services of that unrelated
/// cluster. Now only `--kubeconfig`, on the command it is given to, chooses another cluster:
/// with `KUBECONFIG` naming a second server, that server sees no request at all (its own
/// request log is the proof) from an apply, a plan with or without the flag, and a destroy, and
/// the commands that take the flag name the server they change.
#[test]
fn kubeconfig_in_the_environment_changes_nothing() {
    let moto = Emulator::start();
    let own = TestApiServer::start();
    let other = TestApiServer::start();
    let stack = "envkube";
    let text = example_as(stack);
    let cut = text.find("\n[addons]").expect("the example has [addons]");
    let spec = format!("{}\n[addons]\nenabled = true\n", &text[..cut]);
    let project = Project::new(&moto, stack, &spec);
    let own_kubeconfig = own.kubeconfig().to_str().unwrap().to_string();
    let with_env = |args: &[&str]| {
        let out = project
            .command(args)
            .env("KUBECONFIG", other.kubeconfig())
            .output()
            .expect("run mlops");
        support::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };

    let applied = with_env(&[
        "apply",
        stack,
        "--auto-approve",
        "--kubeconfig",
        &own_kubeconfig,
    ])
    .ok();
    assert!(
        applied
            .stderr
            .contains(&format!("go to `{}` (context `test`)", own.url())),
        "the apply names the server it changes:\n{}",
        applied.stderr
    );
    assert!(
        own.object(
            "v1",
            "ServiceAccount",
            Some("kserve-inference"),
            "kserve-sa"
        )
        .is_some(),
        "the IRSA service account is in the cluster of --kubeconfig"
    );

    // Without the flag, the stack's own EKS cluster is asked (the emulator's endpoint leads
    // nowhere, so this plan may fail), never the cluster of KUBECONFIG.
    let plan = with_env(&["plan", stack]);
    assert!(
        !plan.stderr.contains(other.url()),
        "the plan named the cluster of KUBECONFIG:\n{}",
        plan.stderr
    );
    with_env(&["plan", stack, "--kubeconfig", &own_kubeconfig]).ok();
    with_env(&[
        "destroy",
        stack,
        "--auto-approve",
        "--kubeconfig",
        &own_kubeconfig,
    ])
    .ok();
    assert!(own
        .object(
            "v1",
            "ServiceAccount",
            Some("kserve-inference"),
            "kserve-sa"
        )
        .is_none());

    let touched: Vec<String> = other.requests().iter().map(|r| r.to_string()).collect();
    assert!(
        touched.is_empty(),
        "the cluster of KUBECONFIG got requests: {touched:?}"
    );
}
