//! The add-ons' real release manifests (`../shared/fixtures/addons`) installed by
//! `mlops::kube::install` on the real kube-apiserver 1.35.4, with the strict stand-in playing
//! the kubelet, the controllers and cert-manager (tests/support/kube_apiserver/stand_in.rs).
//! It models what a real cluster does with the order of an install: KServe's controller
//! mounts the Secret `kserve-webhook-server-cert`, which only cert-manager makes, from the
//! `Certificate` of KServe's own manifest, once its `Issuer` is Ready; KServe's webhooks are
//! trusted only once cert-manager's cainjector copied that Secret's CA into them. Also what the
//! stack puts into a cluster for its node groups and volumes: NVIDIA's device plugin on the GPU
//! groups that need it, and the default gp3 StorageClass. Results are read with plain HTTPS
//! (`get_json`) and the audit log, not through `mlops`.

mod support;

use std::time::Duration;

use mlops::addons::render;
use mlops::addons::{release_named, ManifestSource};
use mlops::kube::install::{self, Waits};
use mlops::kube::{Cluster, KubeError};
use mlops::manifest::Object;
use serde_json::{json, Value};
use support::kube_apiserver::RealApiServer;
use tokio::sync::OnceCell;

/// Progress nobody reads.
struct Quiet;

impl install::Progress for Quiet {
    fn waiting(&self, _: &str) {}
    fn warning(&self, _: &str) {}
}

fn waits(timeout: Duration) -> Waits {
    Waits {
        timeout,
        load_balancer_timeout: Duration::from_secs(30),
        poll: Duration::from_millis(500),
    }
}

/// The labelled objects of one add-on version, as `mlops` renders them from the fixtures.
fn objects(addon: &str, version: &str) -> Vec<Object> {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/addons");
    let release = release_named(addon, version).expect("a release of the catalogue");
    render::objects(release, &ManifestSource::new(Some(fixtures))).unwrap()
}

/// Installs objects as `mlops apply` does for one add-on: the namespaces they need, then the
/// staged apply.
async fn install_objects(
    cluster: &Cluster,
    objects: Vec<Object>,
    waits: &Waits,
) -> Result<(), KubeError> {
    let namespaces = render::namespaces_to_ensure(&objects);
    let namespaces: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    install::ensure_namespaces(cluster, &namespaces).await?;
    install::install(cluster, objects, waits, &Quiet).await
}

/// cert-manager v1.19.4 installed once for this test binary (its webhook must serve, through
/// the stand-in, before any Certificate can be applied).
async fn with_cert_manager() -> &'static RealApiServer {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    let server = RealApiServer::shared();
    server.stand_in();
    INSTALLED
        .get_or_init(|| async {
            let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
            install_objects(
                &cluster,
                objects("cert-manager", "v1.19.4"),
                &waits(Duration::from_secs(120)),
            )
            .await
            .unwrap_or_else(|e| panic!("install cert-manager: {e}"));
        })
        .await;
    server
}

fn available(deployment: &Value) -> bool {
    let available = deployment["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True");
    available
        && deployment["status"]["availableReplicas"]
            == deployment["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// cert-manager (the stand-in's, acting only because cert-manager's own Deployments are
/// available) gives a Certificate its Secret only once its Issuer exists and is Ready: a
/// Certificate applied before its Issuer (the wrong order) waits, naming the issuer. The
/// cainjector fills a webhook configuration's `caBundle` only once that Secret exists.
#[tokio::test]
async fn a_certificate_gets_its_secret_only_once_its_issuer_is_ready() {
    let server = with_cert_manager().await;
    let client = server.client().await;
    let ns = "strict-certificate";
    let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
    let manifest =
        |value: Value| mlops::manifest::parse_documents(&value.to_string(), "test").unwrap();
    install::ensure_namespaces(&cluster, &[ns]).await.unwrap();
    let certificate = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "serving", "namespace": ns},
        "spec": {"secretName": "serving-tls", "dnsNames": [format!("hook.{ns}.svc")],
                 "issuerRef": {"kind": "Issuer", "name": "self"}}});
    let configuration = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "strict-injected", "annotations": {"cert-manager.io/inject-ca-from": format!("{ns}/serving")}},
        "webhooks": [{"name": "injected.strict.mlops.test",
                      "clientConfig": {"service": {"namespace": ns, "name": "hook", "port": 443}},
                      "rules": [{"apiGroups": ["strict.mlops.test"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["nothing"]}],
                      "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"]}]});
    for object in manifest(configuration).iter().chain(&manifest(certificate)) {
        cluster.apply(object, false).await.unwrap();
    }
    let certificate_path = format!("/apis/cert-manager.io/v1/namespaces/{ns}/certificates/serving");
    let waiting = server
        .eventually_get(&certificate_path, |c| {
            c["status"]["conditions"][0]["reason"] == "IssuerNotReady"
        })
        .await;
    assert!(waiting["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .contains("Issuer \"self\""));
    let secret_path = format!("/api/v1/namespaces/{ns}/secrets/serving-tls");
    let configuration_path =
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/strict-injected";
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        server.get_json(&secret_path).is_none(),
        "a Secret without a Ready issuer"
    );
    assert!(
        server.get_json(configuration_path).unwrap()["webhooks"][0]["clientConfig"]["caBundle"]
            .is_null()
    );

    let issuer = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
        "metadata": {"name": "self", "namespace": ns}, "spec": {"selfSigned": {}}});
    cluster.apply(&manifest(issuer)[0], false).await.unwrap();
    let secret = server.eventually_get(&secret_path, |_| true).await;
    assert_eq!(secret["type"], "kubernetes.io/tls");
    server
        .eventually_get(&certificate_path, |c| {
            c["status"]["conditions"][0]["status"] == "True"
        })
        .await;
    let injected = server
        .eventually_get(configuration_path, |c| {
            c["webhooks"][0]["clientConfig"]["caBundle"].is_string()
        })
        .await;
    assert_eq!(
        injected["webhooks"][0]["clientConfig"]["caBundle"],
        secret["data"]["ca.crt"]
    );
    drop(client);
}

/// What the old order did with KServe v0.16.0, once KServe went in by the new order.
type OldOrder = Result<(), KubeError>;

/// KServe v0.16.0 installed once for this test binary, over cert-manager: first by the old
/// order (every Deployment waited for before any custom resource), whose outcome is returned,
/// then by `install`'s.
async fn with_kserve() -> (&'static RealApiServer, &'static OldOrder) {
    static INSTALLED: OnceCell<OldOrder> = OnceCell::const_new();
    let server = with_cert_manager().await;
    let old = INSTALLED
        .get_or_init(|| async {
            let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
            let kserve = objects("kserve", "v0.16.0");
            // KServe's CRDs first, with time to be established (several seconds each on a
            // loaded machine), so that the short wait below is the Deployments'.
            let crds: Vec<Object> = kserve
                .iter()
                .filter(|o| o.id.is_crd() || o.id.is_namespace())
                .cloned()
                .collect();
            install_objects(&cluster, crds, &waits(Duration::from_secs(120)))
                .await
                .unwrap();
            // The old order, as the old install ran it: everything but the custom resources
            // first.
            let before_custom: Vec<Object> = kserve
                .iter()
                .filter(|o| {
                    o.id.group_version().0 != "cert-manager.io"
                        && o.id.group_version().0 != "serving.kserve.io"
                })
                .cloned()
                .collect();
            let old =
                install_objects(&cluster, before_custom, &waits(Duration::from_secs(15))).await;
            install_objects(&cluster, kserve, &waits(Duration::from_secs(120)))
                .await
                .unwrap_or_else(|e| panic!("install KServe: {e}"));
            old
        })
        .await;
    (server, old)
}

/// The "Done when" of issue 12's install order: KServe's Deployments applied and waited for
/// before the Certificates of its own manifest (the old order: custom resources after every
/// Deployment wait) never become available, since `kserve-controller-manager` mounts
/// `kserve-webhook-server-cert`, which only that Certificate makes; `install` applies the
/// custom resources of kinds the cluster already serves with the Deployments, and KServe goes
/// in: its controller available, its webhooks given cert-manager's CA, its cluster resources
/// admitted by its own webhook.
#[tokio::test]
async fn kserve_installs_only_with_its_certificates_before_its_deployment_waits() {
    let (server, old) = with_kserve().await;
    match old {
        Err(KubeError::Timeout {
            object,
            what: "available",
            ..
        }) => {
            assert!(
                object.contains("kserve-controller-manager")
                    || object.contains("llmisvc-controller-manager"),
                "{object}"
            )
        }
        other => panic!("the old order did not time out on KServe's controller: {other:?}"),
    }
    let controller = server
        .get_json("/apis/apps/v1/namespaces/kserve/deployments/kserve-controller-manager")
        .unwrap();
    assert!(available(&controller), "{controller:#}");
    let secret = server
        .get_json("/api/v1/namespaces/kserve/secrets/kserve-webhook-server-cert")
        .unwrap();
    let webhook = server
        .get_json("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/inferenceservice.serving.kserve.io")
        .unwrap();
    assert_eq!(
        webhook["webhooks"][0]["clientConfig"]["caBundle"],
        secret["data"]["ca.crt"]
    );
    assert!(server
        .get_json("/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/kserve-sklearnserver")
        .is_some());
    assert!(server.stand_in().reviews() > 0, "no webhook was called");
}

/// NVIDIA's device plugin, as `mlops apply` installs it for an AL2023 NVIDIA node group
/// (`addon.nvidia_device_plugin`, rendered from the catalogue's template with the attributes
/// the plan of such a group gives it): the real API server validates and stores its DaemonSet
/// in `kube-system` with the pods' required node affinity on `eks.amazonaws.com/nodegroup`
/// (the label EKS gives a managed group's nodes) and the toleration of the group's
/// `nvidia.com/gpu` taint, so that a kubelet would run it on those GPU nodes and no other; the
/// image is pinned by digest; the install waits until the stand-in's daemonset controller
/// reports it available. Read back with plain HTTPS and the audit log.
#[tokio::test]
async fn nvidias_device_plugin_goes_on_its_gpu_groups_tolerating_their_taint() {
    // cert-manager installed first: its install, shared with the other tests of this server,
    // writes leader-election Roles in kube-system, which must not fall among this one's writes.
    let server = with_cert_manager().await;
    let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
    let release = release_named("nvidia-device-plugin", "v0.17.1").unwrap();
    let toleration = json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"});
    let attrs = json!({
        "name": "nvidia-device-plugin",
        "version": "v0.17.1",
        render::NODE_GROUPS: ["gpu-8f1d128c"],
        render::TOLERATIONS: [toleration],
    });
    let nowhere = ManifestSource::Bundle("/nonexistent".into());
    let objects = render::configured(release, &nowhere, attrs.as_object().unwrap()).unwrap();
    let mark = server.mark();
    install_objects(&cluster, objects, &waits(Duration::from_secs(60)))
        .await
        .unwrap_or_else(|e| panic!("install the device plugin: {e}"));

    let path = "/apis/apps/v1/namespaces/kube-system/daemonsets/nvidia-device-plugin-daemonset";
    let daemon_set = server.get_json(path).expect("the DaemonSet");
    let pod = &daemon_set["spec"]["template"]["spec"];
    assert_eq!(pod["tolerations"], json!([toleration]));
    let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    assert_eq!(
        terms,
        &json!([{"matchExpressions": [{"key": "eks.amazonaws.com/nodegroup", "operator": "In", "values": ["gpu-8f1d128c"]}]}])
    );
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    let image = pod["containers"][0]["image"].as_str().unwrap();
    assert!(
        image.starts_with("nvcr.io/nvidia/k8s-device-plugin:v0.17.1@sha256:"),
        "{image}"
    );
    assert_eq!(
        daemon_set["metadata"]["labels"]["mlops.dev/addon"],
        "nvidia-device-plugin"
    );
    assert!(daemon_set["status"]["numberAvailable"].as_i64() >= Some(1));
    let writes: Vec<String> = server
        .writes_since(mark)
        .iter()
        .filter(|w| w.namespace.as_deref() == Some("kube-system"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        writes,
        ["patch daemonsets.apps kube-system/nvidia-device-plugin-daemonset (201)"]
    );
}

/// The default StorageClass the stack makes with the EBS CSI driver (`k8s.StorageClass.gp3` of
/// the example's plan, applied as `mlops apply` applies it), on the real API server beside the
/// `gp2` class EKS makes at cluster creation, which is a default class too and keeps its
/// annotation: the API server's `DefaultStorageClass` admission gives a PersistentVolumeClaim
/// that names no class the newest default class, so such a claim (a model cache, MLflow's
/// database) gets `gp3`, encrypted gp3 volumes of `ebs.csi.aws.com`. What the real server cannot
/// show: a volume being provisioned and bound (no EBS CSI controller, no kubelet).
#[tokio::test]
async fn a_claim_without_a_class_gets_the_stacks_gp3_class() {
    let server = RealApiServer::shared();
    let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
    let manifest =
        |value: &Value| mlops::manifest::parse_documents(&value.to_string(), "test").unwrap();
    // EKS's own class, as a new cluster has it.
    let gp2 = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2", "fsType": "ext4"},
        "volumeBindingMode": "WaitForFirstConsumer"});
    cluster.apply(&manifest(&gp2)[0], false).await.unwrap();
    // Creation times have a resolution of one second: the stack's class comes later, as it does
    // on EKS.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/stacks/example.toml");
    let stack = mlops::ops::Stack::open(example, None).unwrap();
    let address = mlops::model::Address::from("k8s.StorageClass.gp3");
    let gp3 = &stack.graph.resources[&address].attrs["manifest"];
    cluster.apply(&manifest(gp3)[0], false).await.unwrap();
    let class = server
        .get_json("/apis/storage.k8s.io/v1/storageclasses/gp3")
        .expect("the gp3 class");
    assert_eq!(class["provisioner"], "ebs.csi.aws.com");
    assert_eq!(
        class["parameters"],
        json!({"type": "gp3", "encrypted": "true"})
    );
    assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(class["allowVolumeExpansion"], true);
    assert_eq!(class["reclaimPolicy"], "Delete");

    let ns = "strict-storage";
    install::ensure_namespaces(&cluster, &[ns]).await.unwrap();
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "model-cache", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    cluster.apply(&manifest(&claim)[0], false).await.unwrap();
    let claim = server
        .get_json(&format!(
            "/api/v1/namespaces/{ns}/persistentvolumeclaims/model-cache"
        ))
        .expect("the claim");
    assert_eq!(claim["spec"]["storageClassName"], "gp3", "{claim:#}");
}

/// KServe's controller (the stand-in's, as strict as the real one) makes an InferenceService
/// `Ready` only once a runtime serves its model format and protocol and the ServiceAccount
/// its storage initializer runs as exists: one applied before its runtime (the wrong order)
/// says `NoSupportingRuntime` and stays not Ready, then waits for its account; with both, it
/// is Ready with the raw-mode URL of KServe's `ingress` config. Once deleted, the controller
/// removes its finalizer and the object goes.
#[tokio::test]
async fn an_inference_service_is_ready_only_with_its_runtime_and_its_account() {
    let (server, _) = with_kserve().await;
    let ns = "strict-model";
    let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
    let apply = |value: Value| {
        let cluster = &cluster;
        async move {
            let objects = mlops::manifest::parse_documents(&value.to_string(), "test").unwrap();
            cluster.apply(&objects[0], false).await.unwrap();
        }
    };
    install::ensure_namespaces(&cluster, &[ns]).await.unwrap();
    apply(
        json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "model", "namespace": ns,
                     "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
        "spec": {"predictor": {"serviceAccountName": "storage",
                 "model": {"modelFormat": {"name": "strict-format"}, "protocolVersion": "v2",
                           "storageUri": "s3://bucket/model"}}}}),
    )
    .await;
    let path = format!("/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/model");
    let condition = |isvc: &Value, kind: &str| -> Value {
        isvc["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let refused = server
        .eventually_get(&path, |i| {
            condition(i, "Ready")["reason"] == "NoSupportingRuntime"
        })
        .await;
    assert_eq!(condition(&refused, "Ready")["status"], "False");
    assert_eq!(condition(&refused, "PredictorReady")["status"], "False");
    assert!(refused["status"]["url"].is_null(), "{refused:#}");
    assert_eq!(
        refused["metadata"]["finalizers"],
        json!(["inferenceservice.finalizers"])
    );

    // A runtime for the format, but for protocol v1 only: still none.
    let runtime = |protocols: Value| {
        json!({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
            "metadata": {"name": "strict-runtime", "namespace": ns},
            "spec": {"protocolVersions": protocols,
                     "supportedModelFormats": [{"name": "strict-format", "autoSelect": true}],
                     "containers": [{"name": "kserve-container", "image": "strict:1"}]}})
    };
    apply(runtime(json!(["v1"]))).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = server.get_json(&path).unwrap();
    assert_eq!(condition(&still, "Ready")["reason"], "NoSupportingRuntime");

    apply(runtime(json!(["v1", "v2"]))).await;
    let waiting = server
        .eventually_get(&path, |i| {
            condition(i, "Ready")["reason"] == "StorageNotReady"
        })
        .await;
    assert!(condition(&waiting, "Ready")["message"]
        .as_str()
        .unwrap()
        .contains("serviceaccount \"storage\" not found"));

    apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "storage", "namespace": ns}}))
    .await;
    let ready = server
        .eventually_get(&path, |i| condition(i, "Ready")["status"] == "True")
        .await;
    assert_eq!(condition(&ready, "PredictorReady")["status"], "True");
    assert_eq!(
        ready["status"]["url"],
        format!("http://model-{ns}.example.com")
    );

    let client = server.client().await;
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client,
        ns,
        &kube::api::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "serving.kserve.io",
            "v1beta1",
            "InferenceService",
        )),
    );
    api.delete("model", &Default::default()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.get_json(&path).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the InferenceService stays"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Progress that keeps the warnings.
#[derive(Default)]
struct Warnings(std::sync::Mutex<Vec<String>>);

impl install::Progress for Warnings {
    fn waiting(&self, _: &str) {}
    fn warning(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

/// A custom resource `mlops` did not create (applied with kubectl) whose finalizer only its
/// controller clears, and that controller gone: on a real API server a CRD being deleted stays
/// `Terminating` while any resource of its kind keeps a finalizer, and so would an uninstall
/// waiting for it. `uninstall` removes that finalizer, with a warning naming the resource,
/// and the CRD and the resource are gone, as the server shows.
#[tokio::test]
async fn an_uninstall_frees_a_foreign_resource_whose_controller_is_gone() {
    let server = RealApiServer::shared();
    server.stand_in();
    let cluster = Cluster::from_kubeconfig(&server.kubeconfig).await.unwrap();
    let crd = mlops::manifest::parse_documents(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.gone.mlops.test
spec:
  group: gone.mlops.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#,
        "test",
    )
    .unwrap();
    let crd_ref = crd[0].id.clone();
    install::install(&cluster, crd, &waits(Duration::from_secs(30)), &Quiet)
        .await
        .unwrap();
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        server.client().await,
        "default",
        &kube::api::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "gone.mlops.test",
            "v1",
            "Widget",
        )),
    );
    let foreign: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gone.mlops.test/v1", "kind": "Widget",
        "metadata": {"name": "foreign", "finalizers": ["gone.mlops.test/cleanup"]},
    }))
    .unwrap();
    api.create(&Default::default(), &foreign).await.unwrap();

    let warnings = Warnings::default();
    install::uninstall(
        &cluster,
        &[crd_ref],
        &waits(Duration::from_secs(30)),
        &warnings,
    )
    .await
    .unwrap_or_else(|e| panic!("the uninstall did not finish: {e}"));
    let warnings = warnings.0.into_inner().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Widget default/foreign") && w.contains("gone.mlops.test/cleanup")),
        "{warnings:?}"
    );
    assert!(server
        .get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.gone.mlops.test")
        .is_none());
    assert!(server
        .get_json("/apis/gone.mlops.test/v1/namespaces/default/widgets/foreign")
        .is_none());
}
