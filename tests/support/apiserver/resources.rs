//! What the test API server serves: the built-in resources of a 1.30 server, the resources a
//! CRD adds once it is Established, and the legacy discovery documents (`/api`, `/apis`, ...)
//! that `kube::Discovery` and `kube::discovery::pinned_kind` read.

use std::collections::BTreeMap;

use kube::core::Version;
use serde_json::{json, Value};

/// One kind of object, served at one or more versions of its group.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// `""` for the core group.
    pub group: String,
    /// Served versions, the preferred one first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Whether writes of `status` go through the `status` subresource only.
    pub has_status: bool,
}

/// Where a resource's objects are kept: its group and plural name (not the version).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub group: String,
    pub plural: String,
}

impl Resource {
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }

    pub fn api_version(&self, version: &str) -> String {
        group_version(&self.group, version)
    }

    /// The preferred `apiVersion`.
    pub fn preferred_api_version(&self) -> String {
        self.api_version(&self.versions[0])
    }

    /// `deployments.apps`, or `configmaps` in the core group: how the API server names a
    /// resource in its messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `ConfigMap` in the core group: the kind as validation messages
    /// name it.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether `metadata.generation` follows spec changes: everywhere but in the core and
    /// RBAC groups, as on a real server.
    pub fn tracks_generation(&self) -> bool {
        !matches!(self.group.as_str(), "" | "rbac.authorization.k8s.io")
    }

    /// The `APIResource` entries of this resource (and its status subresource) at `version`.
    fn discovery_entries(&self) -> Vec<Value> {
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        let mut entries = vec![main];
        if self.has_status {
            entries.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// group, version, plural, singular, kind, namespaced, short names, status subresource.
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
);

/// The built-in resources: what the add-on manifests use, and the common core kinds.
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], true),
    ("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], false),
    ("", "v1", "services", "service", "Service", true, &["svc"], true),
    ("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], false),
    ("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], false),
    ("", "v1", "secrets", "secret", "Secret", true, &[], false),
    ("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true, &["quota"], true),
    ("", "v1", "limitranges", "limitrange", "LimitRange", true, &["limits"], false),
    ("", "v1", "pods", "pod", "Pod", true, &["po"], true),
    ("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, &["pvc"], true),
    ("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, &["pv"], true),
    ("", "v1", "nodes", "node", "Node", false, &["no"], true),
    ("", "v1", "events", "event", "Event", true, &["ev"], false),
    ("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"], true),
    ("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, &["ds"], true),
    ("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], true),
    ("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], true),
    ("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, &[], false),
    ("batch", "v1", "jobs", "job", "Job", true, &[], true),
    ("batch", "v1", "cronjobs", "cronjob", "CronJob", true, &["cj"], true),
    ("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, &["hpa"], true),
    ("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, &["pdb"], true),
    ("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, &[], false),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, &[], false),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, &[], false),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false, &[], false),
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", "MutatingWebhookConfiguration", false, &[], false),
    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "validatingwebhookconfiguration", "ValidatingWebhookConfiguration", false, &[], false),
    ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "validatingadmissionpolicy", "ValidatingAdmissionPolicy", false, &[], true),
    ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", "ValidatingAdmissionPolicyBinding", false, &[], false),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false, &["crd", "crds"], true),
    ("apiregistration.k8s.io", "v1", "apiservices", "apiservice", "APIService", false, &[], true),
    ("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[], false),
    ("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, &["ing"], true),
    ("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", false, &[], false),
    ("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true, &["netpol"], false),
    ("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, &[], false),
    ("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, &["sc"], false),
    ("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", false, &["pc"], false),
    ("certificates.k8s.io", "v1", "certificatesigningrequests", "certificatesigningrequest", "CertificateSigningRequest", false, &["csr"], true),
];

/// A CRD as the catalogue knows it: what it would serve, and whether it does yet.
#[derive(Clone, Debug)]
struct Custom {
    resource: Resource,
    established: bool,
}

/// Every resource the server knows: built-in ones and those of the stored CRDs.
pub struct Catalogue {
    builtins: Vec<Resource>,
    /// By CRD name.
    custom: BTreeMap<String, Custom>,
}

impl Catalogue {
    pub fn new() -> Catalogue {
        let builtins = BUILTINS
            .iter()
            .map(
                |&(group, version, plural, singular, kind, namespaced, short_names, has_status)| {
                    Resource {
                        group: group.into(),
                        versions: vec![version.into()],
                        plural: plural.into(),
                        singular: singular.into(),
                        kind: kind.into(),
                        namespaced,
                        short_names: short_names.iter().map(|s| s.to_string()).collect(),
                        has_status,
                    }
                },
            )
            .collect();
        Catalogue {
            builtins,
            custom: BTreeMap::new(),
        }
    }

    /// A built-in resource by group and plural; for the server's own controllers.
    pub fn builtin(&self, group: &str, plural: &str) -> Resource {
        self.builtins
            .iter()
            .find(|r| r.is(group, plural))
            .cloned()
            .unwrap_or_else(|| panic!("`{group}/{plural}` is not in the built-in table"))
    }

    /// Every served resource: the built-in ones and those of Established CRDs.
    fn served(&self) -> impl Iterator<Item = &Resource> {
        self.builtins.iter().chain(
            self.custom
                .values()
                .filter(|c| c.established && !c.resource.versions.is_empty())
                .map(|c| &c.resource),
        )
    }

    /// The resource served at `group/version` under the plural name `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.served()
            .find(|r| r.is(group, plural) && r.versions.iter().any(|v| v == version))
    }

    /// The resource served for a kind at an `apiVersion`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let (group, version) = split_api_version(api_version);
        self.served()
            .find(|r| r.group == group && r.kind == kind && r.versions.iter().any(|v| v == version))
    }

    /// The resource of a stored CRD, Established or not: to name what an unserved request was for.
    pub fn defined(&self, group: &str, plural: &str) -> Option<&Resource> {
        self.custom
            .values()
            .map(|c| &c.resource)
            .find(|r| r.is(group, plural))
    }

    /// The resource a stored CRD defines, Established or not.
    pub fn defined_by(&self, crd_name: &str) -> Option<Resource> {
        self.custom.get(crd_name).map(|c| c.resource.clone())
    }

    /// Records (or updates) what a stored CRD defines; `None` when the CRD is gone.
    pub fn set_crd(&mut self, name: &str, crd: Option<(Resource, bool)>) {
        match crd {
            Some((resource, established)) => {
                self.custom.insert(
                    name.to_string(),
                    Custom {
                        resource,
                        established,
                    },
                );
            }
            None => {
                self.custom.remove(name);
            }
        }
    }

    /// Every served resource that is namespaced, for namespace-wide clean-up.
    pub fn namespaced(&self) -> Vec<Resource> {
        self.served().filter(|r| r.namespaced).cloned().collect()
    }

    // --- discovery documents ---

    pub fn core_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    /// The served groups (not the core group), each with its versions, preferred first.
    fn groups(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for resource in self.served().filter(|r| !r.group.is_empty()) {
            let versions = groups.entry(&resource.group).or_default();
            for version in &resource.versions {
                if !versions.contains(&version.as_str()) {
                    versions.push(version);
                }
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_cached_key(|v| std::cmp::Reverse(Version::parse(v).priority()));
        }
        groups
    }

    fn group_document(group: &str, versions: &[&str]) -> Value {
        let entries: Vec<Value> = versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        json!({
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0],
        })
    }

    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .map(|(group, versions)| Catalogue::group_document(group, versions))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    pub fn group(&self, group: &str) -> Option<Value> {
        let groups = self.groups();
        let versions = groups.get(group)?;
        let mut document = Catalogue::group_document(group, versions);
        document["kind"] = json!("APIGroup");
        document["apiVersion"] = json!("v1");
        Some(document)
    }

    /// The `APIResourceList` of `group/version`, `None` when nothing is served there.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let resources: Vec<Value> = self
            .served()
            .filter(|r| r.group == group && r.versions.iter().any(|v| v == version))
            .flat_map(Resource::discovery_entries)
            .collect();
        if resources.is_empty() {
            return None;
        }
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version(group, version),
            "resources": resources,
        }))
    }
}

/// What a CRD object defines, or why it is invalid (a field path and a message).
pub fn crd_resource(crd: &Value) -> Result<Resource, (String, String)> {
    let spec = &crd["spec"];
    let text = |pointer: &str| spec.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let required = |field: &str, value: &str| {
        if value.is_empty() {
            Err((format!("spec.{field}"), "Required value".to_string()))
        } else {
            Ok(())
        }
    };
    let group = text("/group");
    let plural = text("/names/plural");
    let kind = text("/names/kind");
    required("group", group)?;
    required("names.plural", plural)?;
    required("names.kind", kind)?;
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    if name != format!("{plural}.{group}") {
        return Err((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match text("/scope") {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err((
                "spec.scope".into(),
                format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ))
        }
    };
    let declared = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if declared.is_empty() {
        return Err(("spec.versions".into(), "Required value".into()));
    }
    let storage = declared.iter().filter(|v| v["storage"] == true).count();
    if storage != 1 {
        return Err((
            "spec.versions".into(),
            format!(
                "Invalid value: {storage}: must have exactly one version marked as storage version"
            ),
        ));
    }
    let served: Vec<&Value> = declared.iter().filter(|v| v["served"] == true).collect();
    let mut versions: Vec<String> = served
        .iter()
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    versions.sort_by_cached_key(|v| std::cmp::Reverse(Version::parse(v).priority()));
    let has_status = served
        .iter()
        .any(|v| v.pointer("/subresources/status").is_some());
    let strings = |pointer: &str| -> Vec<String> {
        spec.pointer(pointer)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let singular = match text("/names/singular") {
        "" => kind.to_lowercase(),
        singular => singular.to_string(),
    };
    Ok(Resource {
        group: group.into(),
        versions,
        plural: plural.into(),
        singular,
        kind: kind.into(),
        namespaced,
        short_names: strings("/names/shortNames"),
        has_status,
    })
}
