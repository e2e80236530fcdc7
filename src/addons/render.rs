//! From a release in the catalogue to the objects `mlops` applies: every document of its
//! manifest files, labelled with the add-on and version; and the namespaces its objects live in
//! that no file creates (Istio's rendered files use `istio-system` without creating it), which
//! the installer creates when missing. Those are no add-on's own: net-istio (Knative) puts
//! objects in Istio's namespace too, and owning it twice would make each add-on's apply undo
//! the other's labels. The stack's settings are written into the objects here too: KServe's
//! default deployment mode, and where NVIDIA's device plugin runs (a template of ours rather
//! than a download: see the catalogue).

use std::collections::{BTreeMap, BTreeSet};

use super::ingress::IngressSpec;
use super::{Addon, AddonError, ManifestSource, Release};
use serde_json::{json, Value};

use crate::manifest::{
    self, Object, ObjectRef, ADDON_LABEL, MANAGED_BY, SYSTEM_NAMESPACES, VERSION_LABEL,
};
use crate::model::Attrs;

/// The labelled objects of `release`, in file order, then its compiled-in template; a later
/// document with the same reference replaces an earlier one.
pub fn objects(release: &Release, source: &ManifestSource) -> Result<Vec<Object>, AddonError> {
    let addon = release.addon.name();
    let mut objects: Vec<Object> = Vec::new();
    for file in release.files {
        let bytes = source.read(release, file)?;
        let origin = format!("{addon} {} {}", release.version, file.name);
        let text = String::from_utf8_lossy(&bytes);
        objects.extend(manifest::parse_documents(&text, &origin)?);
    }
    if let Some(template) = release.template {
        let origin = format!("{addon} {} (compiled in)", release.version);
        objects.extend(manifest::parse_documents(template, &origin)?);
    }
    let labels = [
        MANAGED_BY,
        (ADDON_LABEL, addon),
        (VERSION_LABEL, release.version),
    ];
    let mut unique: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<Object> = Vec::with_capacity(objects.len());
    for mut object in objects {
        object.label(&labels);
        match unique.get(&object.id.to_string()) {
            Some(&at) => out[at] = object,
            None => {
                unique.insert(object.id.to_string(), out.len());
                out.push(object);
            }
        }
    }
    Ok(out)
}

/// The attribute of `addon.kserve` that names KServe's default deployment mode, set when the
/// stack says `kserve_mode = "raw"` (`RawDeployment`); without it KServe's own default stays
/// (`Serverless`).
pub const DEPLOYMENT_MODE: &str = "deployment_mode";

/// KServe's ConfigMap of settings, whose `deploy` key holds the default deployment mode and
/// `ingress` key where the models are reached.
const KSERVE_CONFIG: &str = "inferenceservice-config";

/// The attribute of `addon.knative_serving` and `addon.kserve` that names the domain of the
/// models' URLs: a key of Knative's `config-domain`, KServe's `ingressDomain`.
pub const DOMAIN: &str = "domain";

/// Knative's ConfigMap whose keys (other than `_example`) are the domains of its routes.
const KNATIVE_DOMAIN_CONFIG: &str = "config-domain";

/// The Istio Gateway KServe routes external traffic through: net-istio's, served by Istio's
/// ingress gateway (`istio-system/istio-ingressgateway`).
const KSERVE_INGRESS_GATEWAY: &str = "knative-serving/knative-ingress-gateway";

/// The attributes of `addon.istio` that pick its ingress gateway's load balancer: `clb` or
/// `nlb`, and `internet-facing` or `internal`.
pub const LOAD_BALANCER: &str = "load_balancer";
pub const SCHEME: &str = "scheme";

/// The annotations AWS's load-balancer controllers read on a LoadBalancer Service: the type
/// (`nlb`; none is a classic ELB) and, for the in-tree controller, `internal`; the AWS Load
/// Balancer Controller reads the scheme.
const LB_TYPE_ANNOTATION: &str = "service.beta.kubernetes.io/aws-load-balancer-type";
const LB_INTERNAL_ANNOTATION: &str = "service.beta.kubernetes.io/aws-load-balancer-internal";
const LB_SCHEME_ANNOTATION: &str = "service.beta.kubernetes.io/aws-load-balancer-scheme";

/// The Service whose load balancer receives the cluster's traffic (Istio's ingress gateway),
/// read into `ingress_hostname` and shown by `mlops status`.
pub fn ingress_gateway() -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Service".into(),
        namespace: Some("istio-system".into()),
        name: "istio-ingressgateway".into(),
    }
}

/// Whether a LoadBalancer Service asks for an internal load balancer, as either AWS controller
/// reads it: reachable from inside the VPC only.
pub fn is_internal(service: &Value) -> bool {
    let annotations = &service["metadata"]["annotations"];
    annotations[LB_SCHEME_ANNOTATION] == "internal" || annotations[LB_INTERNAL_ANNOTATION] == "true"
}

/// The stack's ingress settings as the attributes of `addon`: the domain for Knative and
/// KServe, the load balancer for Istio.
pub fn ingress_attrs(addon: Addon, ingress: &IngressSpec, attrs: &mut Value) {
    match addon {
        Addon::KnativeServing | Addon::Kserve => attrs[DOMAIN] = ingress.domain.clone().into(),
        Addon::Istio => {
            attrs[LOAD_BALANCER] = ingress.load_balancer.name().into();
            attrs[SCHEME] = if ingress.internal {
                "internal"
            } else {
                "internet-facing"
            }
            .into();
        }
        Addon::NvidiaDevicePlugin | Addon::CertManager => {}
    }
}

/// The attributes of `addon.nvidia_device_plugin` that place its DaemonSet: the EKS names of
/// the node groups it runs on, and the tolerations of their taints.
pub const NODE_GROUPS: &str = "node_groups";
pub const TOLERATIONS: &str = "tolerations";

/// The label EKS gives every node of a managed node group: the group's name.
pub const NODE_GROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

/// The objects of `release` with the stack's settings from the add-on resource's `attrs`
/// written into them: what is installed and what the inventory records.
pub fn configured(
    release: &Release,
    source: &ManifestSource,
    attrs: &Attrs,
) -> Result<Vec<Object>, AddonError> {
    let mut objects = objects(release, source)?;
    let text = |key: &str| attrs.get(key).and_then(Value::as_str);
    if let Some(mode) = text(DEPLOYMENT_MODE) {
        edit_kserve_setting(&mut objects, "deploy", |deploy| {
            deploy["defaultDeploymentMode"] = mode.into();
        });
    }
    if let Some(domain) = text(DOMAIN) {
        set_domain(&mut objects, domain);
    }
    if let (Some(kind), Some(scheme)) = (text(LOAD_BALANCER), text(SCHEME)) {
        set_load_balancer(&mut objects, kind, scheme);
    }
    if let Some(groups) = attrs.get(NODE_GROUPS) {
        let tolerations = attrs.get(TOLERATIONS).cloned().unwrap_or(json!([]));
        place_on_node_groups(&mut objects, groups, &tolerations);
    }
    Ok(objects)
}

/// Edits one JSON value of KServe's ConfigMap of settings (`deploy`, `ingress`), the
/// release's value (or `{}`) as the start.
fn edit_kserve_setting(objects: &mut [Object], key: &str, edit: impl Fn(&mut Value)) {
    let configs = objects
        .iter_mut()
        .filter(|o| o.id.kind == "ConfigMap" && o.id.name == KSERVE_CONFIG);
    for config in configs {
        let mut setting: Value = config.body["data"][key]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_else(|| json!({}));
        edit(&mut setting);
        config.body["data"][key] = serde_json::to_string_pretty(&setting)
            .expect("a JSON value serializes")
            .into();
    }
}

/// The domain of the models' URLs: the one key of Knative's `config-domain` besides its
/// `_example` (an empty value: every route), and KServe's `ingressDomain`, with the Gateway
/// and scheme KServe's own routes use.
fn set_domain(objects: &mut [Object], domain: &str) {
    let knative = objects
        .iter_mut()
        .filter(|o| o.id.kind == "ConfigMap" && o.id.name == KNATIVE_DOMAIN_CONFIG);
    for config in knative {
        let example = config.body["data"]["_example"].take();
        config.body["data"] = json!({ domain: "" });
        if !example.is_null() {
            config.body["data"]["_example"] = example;
        }
    }
    edit_kserve_setting(objects, "ingress", |ingress| {
        ingress["ingressGateway"] = KSERVE_INGRESS_GATEWAY.into();
        ingress["ingressDomain"] = domain.into();
        ingress["urlScheme"] = "http".into();
    });
}

/// The load balancer of Istio's ingress gateway, as annotations of its Service: `nlb` or none
/// (a classic ELB); `internal` for the in-tree controller, and the scheme for the AWS Load
/// Balancer Controller, whose own default is `internal`.
fn set_load_balancer(objects: &mut [Object], kind: &str, scheme: &str) {
    let gateway = ingress_gateway();
    for service in objects.iter_mut().filter(|o| o.id == gateway) {
        let annotations = &mut service.body["metadata"]["annotations"];
        if !annotations.is_object() {
            *annotations = json!({});
        }
        if kind == "nlb" {
            annotations[LB_TYPE_ANNOTATION] = kind.into();
        }
        if scheme == "internal" {
            annotations[LB_INTERNAL_ANNOTATION] = "true".into();
        }
        annotations[LB_SCHEME_ANNOTATION] = scheme.into();
    }
}

/// Every DaemonSet's pods on the nodes of the node groups named `groups` (a required node
/// affinity on the label EKS sets), tolerating `tolerations`.
fn place_on_node_groups(objects: &mut [Object], groups: &Value, tolerations: &Value) {
    for daemon_set in objects.iter_mut().filter(|o| o.id.kind == "DaemonSet") {
        let pod = &mut daemon_set.body["spec"]["template"]["spec"];
        pod["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": NODE_GROUP_LABEL, "operator": "In", "values": groups},
            ]}],
        }}});
        pod["tolerations"] = tolerations.clone();
    }
}

/// The namespaces `objects` live in that none of them creates, system namespaces left out.
pub fn namespaces_to_ensure(objects: &[Object]) -> BTreeSet<String> {
    namespaces_ensured(objects.iter().map(|o| &o.id))
}

/// [`namespaces_to_ensure`] of an inventory's references.
pub fn namespaces_ensured<'a>(
    ids: impl Iterator<Item = &'a ObjectRef> + Clone,
) -> BTreeSet<String> {
    let defined: BTreeSet<&str> = ids
        .clone()
        .filter(|id| id.is_namespace())
        .map(|id| id.name.as_str())
        .collect();
    ids.filter_map(|id| id.namespace.clone())
        .filter(|ns| !defined.contains(ns.as_str()) && !SYSTEM_NAMESPACES.contains(&ns.as_str()))
        .collect()
}

/// The release an add-on resource's attributes name (`name`, `version`), if the catalogue has it.
pub fn release_of(attrs: &Attrs) -> Option<&'static Release> {
    let text = |key: &str| attrs.get(key).and_then(Value::as_str).unwrap_or_default();
    super::release_named(text("name"), text("version"))
}

/// The references of an add-on resource's inventory (its `objects` attribute).
pub fn inventory_refs(attrs: &Attrs) -> Vec<ObjectRef> {
    attrs
        .get("objects")
        .and_then(Value::as_object)
        .map(|objects| objects.keys().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default()
}

/// The inventory recorded in the plan and the state: each object's reference and digest.
pub fn inventory(objects: &[Object]) -> BTreeMap<String, String> {
    objects
        .iter()
        .map(|o| (o.id.to_string(), o.digest()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::addons::{Addon, CATALOGUE};

    fn fixtures() -> ManifestSource {
        ManifestSource::new(Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/addons"),
        ))
    }

    #[test]
    fn every_fixture_release_renders_labelled_objects_and_their_namespaces() {
        for release in CATALOGUE {
            let objects = objects(release, &fixtures()).unwrap();
            let least = if release.template.is_some() { 1 } else { 10 };
            assert!(
                objects.len() >= least,
                "{} {}",
                release.addon,
                release.version
            );
            for o in &objects {
                let labels = &o.body["metadata"]["labels"];
                assert_eq!(labels[ADDON_LABEL], release.addon.name(), "{}", o.id);
                assert_eq!(labels[VERSION_LABEL], release.version, "{}", o.id);
                if let Some(ns) = &o.id.namespace {
                    let created = objects
                        .iter()
                        .any(|n| n.id.is_namespace() && &n.id.name == ns);
                    let ensured = namespaces_to_ensure(&objects).contains(ns);
                    assert!(
                        created || ensured || SYSTEM_NAMESPACES.contains(&ns.as_str()),
                        "{} needs {ns}",
                        o.id
                    );
                }
            }
        }
        let istio = Addon::Istio.release("1.29.1").unwrap();
        let objects = objects(istio, &fixtures()).unwrap();
        assert!(!objects.iter().any(|o| o.id.is_namespace()));
        assert!(namespaces_to_ensure(&objects).contains("istio-system"));
    }

    /// `kserve_mode = "raw"` reaches KServe's own config: its `inferenceservice-config` says
    /// `RawDeployment`, so that an InferenceService without the annotation is no Knative
    /// Service; without the attribute the release's `Serverless` stays.
    #[test]
    fn the_deployment_mode_is_written_into_kserves_config() {
        for release in Addon::Kserve.versions() {
            let deploy = |attrs: &Attrs| {
                let objects = configured(release, &fixtures(), attrs).unwrap();
                let config = objects
                    .iter()
                    .find(|o| o.id.name == KSERVE_CONFIG)
                    .expect("KServe's config");
                serde_json::from_str::<Value>(config.body["data"]["deploy"].as_str().unwrap())
                    .unwrap()
            };
            let mut raw = Attrs::new();
            raw.insert(DEPLOYMENT_MODE.into(), "RawDeployment".into());
            assert_eq!(deploy(&raw)["defaultDeploymentMode"], "RawDeployment");
            assert_eq!(deploy(&Attrs::new())["defaultDeploymentMode"], "Serverless");
        }
    }

    /// The stack's domain reaches both places a model's URL comes from: Knative's
    /// `config-domain` (a key of its own, `_example` kept: Knative's webhook checks that key
    /// against its checksum annotation) and KServe's `ingress` (`ingressDomain`, with the
    /// Gateway and scheme), for both versions of each.
    #[test]
    fn the_domain_is_written_into_knatives_and_kserves_config() {
        let mut attrs = Attrs::new();
        attrs.insert(DOMAIN.into(), "models.example.org".into());
        for release in Addon::KnativeServing.versions() {
            let objects = configured(release, &fixtures(), &attrs).unwrap();
            let config = objects
                .iter()
                .find(|o| o.id.name == KNATIVE_DOMAIN_CONFIG)
                .expect("Knative's config-domain");
            let data = config.body["data"].as_object().unwrap();
            let keys: BTreeSet<&str> = data.keys().map(String::as_str).collect();
            assert_eq!(keys, BTreeSet::from(["_example", "models.example.org"]));
            assert_eq!(data["models.example.org"], "");
        }
        for release in Addon::Kserve.versions() {
            let objects = configured(release, &fixtures(), &attrs).unwrap();
            let config = objects.iter().find(|o| o.id.name == KSERVE_CONFIG).unwrap();
            let ingress: Value =
                serde_json::from_str(config.body["data"]["ingress"].as_str().unwrap()).unwrap();
            assert_eq!(ingress["ingressDomain"], "models.example.org");
            assert_eq!(ingress["ingressGateway"], KSERVE_INGRESS_GATEWAY);
            assert_eq!(ingress["urlScheme"], "http");
            assert_eq!(ingress["ingressClassName"], "istio", "the rest kept");
        }
    }

    /// `nlb` and `internal` as the annotations AWS's controllers read on the gateway's
    /// Service; the defaults (`clb`, `internet-facing`) add no type and no `internal`.
    #[test]
    fn the_gateways_load_balancer_is_annotated() {
        let annotations = |kind: &str, scheme: &str| {
            let mut attrs = Attrs::new();
            attrs.insert(LOAD_BALANCER.into(), kind.into());
            attrs.insert(SCHEME.into(), scheme.into());
            let release = Addon::Istio.release("1.29.1").unwrap();
            let objects = configured(release, &fixtures(), &attrs).unwrap();
            let gateway = objects.iter().find(|o| o.id == ingress_gateway()).unwrap();
            gateway.body["metadata"]["annotations"].clone()
        };
        assert_eq!(
            annotations("nlb", "internal"),
            json!({LB_TYPE_ANNOTATION: "nlb", LB_INTERNAL_ANNOTATION: "true",
                   LB_SCHEME_ANNOTATION: "internal"})
        );
        assert_eq!(
            annotations("clb", "internet-facing"),
            json!({LB_SCHEME_ANNOTATION: "internet-facing"})
        );
    }

    #[test]
    fn the_inventory_changes_between_versions() {
        let old =
            inventory(&objects(Addon::Kserve.release("v0.15.0").unwrap(), &fixtures()).unwrap());
        let new =
            inventory(&objects(Addon::Kserve.release("v0.16.0").unwrap(), &fixtures()).unwrap());
        assert!(
            old.keys().any(|k| !new.contains_key(k)) || new.keys().any(|k| !old.contains_key(k))
        );
    }

    /// NVIDIA's device plugin from the template compiled in, with no bundle or cache: one
    /// DaemonSet in `kube-system`, its image pinned by digest, placed on the node groups of the
    /// add-on's attributes by the label EKS sets, tolerating what the attributes list.
    #[test]
    fn the_device_plugin_is_placed_on_its_node_groups() {
        let release = Addon::NvidiaDevicePlugin.release("v0.17.1").unwrap();
        assert!(release.files.is_empty(), "nothing to download");
        let nowhere = ManifestSource::Bundle(PathBuf::from("/nonexistent"));
        let mut attrs = Attrs::new();
        attrs.insert(NODE_GROUPS.into(), json!(["gpu-8f1d128c"]));
        let toleration =
            json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"});
        attrs.insert(TOLERATIONS.into(), json!([toleration]));
        let objects = configured(release, &nowhere, &attrs).unwrap();
        assert_eq!(objects.len(), 1);
        let daemon_set = &objects[0];
        assert_eq!(
            daemon_set.id.to_string(),
            "apps/v1 DaemonSet kube-system/nvidia-device-plugin-daemonset"
        );
        let pod = &daemon_set.body["spec"]["template"]["spec"];
        let image = pod["containers"][0]["image"].as_str().unwrap();
        let (_, digest) = image.split_once("@sha256:").expect("pinned by digest");
        assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(pod["tolerations"], json!([toleration]));
        let term = &pod["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0];
        assert_eq!(
            term,
            &json!({"key": NODE_GROUP_LABEL, "operator": "In", "values": ["gpu-8f1d128c"]})
        );
        assert!(
            namespaces_to_ensure(&objects).is_empty(),
            "kube-system is there"
        );
    }
}
