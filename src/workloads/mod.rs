//! The stack's own Kubernetes objects (`[workloads] paths`): the InferenceServices, namespaces,
//! quotas and role bindings a team used to `kubectl apply` after Terraform. They are read when
//! the spec is loaded, so `mlops validate` and `mlops plan` refuse a broken file, an unknown
//! `${...}`, or two objects with one address before anything is applied, naming the file and line.
//!
//! `${...}` names an output of the stack ([`Outputs`]). One known from the spec alone (a bucket's
//! name) is written into the string at once; one known only once AWS made it (a role's ARN) stays
//! a placeholder `{"$output": "irsa.x.role_arn"}`, which the graph turns into a reference, so the
//! plan shows `(known after apply)` at that field until the role exists.

mod files;
mod interpolate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::manifest::{
    parse_documents_with_lines, ManifestError, Object, ObjectRef, WAIT_ANNOTATION,
    WAIT_TIMEOUT_ANNOTATION,
};
use crate::model::{Address, ResourceKind};
use crate::ui::diagnostic::{Diagnostic, SourceFile};

pub use files::expand;
pub use interpolate::{Output, Outputs, OUTPUT_KEY};

/// Kinds without a namespace: the built-in ones, and those of the add-ons' CRDs. A kind not
/// listed here lives in a namespace, unless a CRD of the same workloads says otherwise.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "CustomResourceDefinition",
    "APIService",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "CSIDriver",
    "VolumeAttachment",
    "PriorityClass",
    "RuntimeClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "CertificateSigningRequest",
    "ClusterIssuer",
    "ClusterServingRuntime",
    "ClusterStorageContainer",
    "ClusterLocalModel",
    "ClusterDomainClaim",
];

/// One object of the workloads, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The manifest; `${...}` of outputs not known before apply are `{"$output": ...}`.
    pub object: Object,
    pub file: PathBuf,
    /// The line its YAML document starts on.
    pub line: usize,
}

impl Workload {
    /// `k8s.<namespace>.<kind>.<name>`, or `k8s.<kind>.<name>` for a cluster-scoped object.
    pub fn address_parts(&self) -> Vec<&str> {
        let id = &self.object.id;
        match &id.namespace {
            Some(ns) => vec![ns.as_str(), id.kind.as_str(), id.name.as_str()],
            None => vec![id.kind.as_str(), id.name.as_str()],
        }
    }

    /// The object's resource address, from [`Self::address_parts`].
    pub fn address(&self) -> Address {
        Address::of(ResourceKind::KubeObject.name(), &self.address_parts())
    }

    /// `stacks/k8s/serving.yaml:12`: where messages point.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The CRD's `(group, kind)`, if this object is a CRD.
    pub fn defines(&self) -> Option<(&str, &str)> {
        let body = &self.object.body;
        self.object.id.is_crd().then(|| {
            (
                body["spec"]["group"].as_str().unwrap_or_default(),
                body["spec"]["names"]["kind"].as_str().unwrap_or_default(),
            )
        })
    }
}

/// A problem in a manifest file, with the file it is located in.
pub type Problem = (SourceFile, Diagnostic);

/// Addresses (their parts after `k8s.`) the stack already gives an object of its own, with what
/// that object is: the IRSA service accounts.
pub type Reserved = BTreeMap<Vec<String>, String>;

/// Reads the manifest files, once: their texts serve the objects, the messages and the digest.
pub fn read(files: &[PathBuf]) -> Result<Vec<SourceFile>, Vec<Problem>> {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push(SourceFile::new(path, text)),
            Err(e) => problems.push((
                SourceFile::new(path, String::new()),
                Diagnostic::new(format!("cannot read `{}`: {e}", path.display()), None),
            )),
        }
    }
    if problems.is_empty() {
        Ok(sources)
    } else {
        Err(problems)
    }
}

/// Every object of `sources`, with `${...}` resolved against `outputs`. All problems are
/// returned together.
pub fn load(
    sources: &[SourceFile],
    outputs: &Outputs,
    reserved: &Reserved,
) -> Result<Vec<Workload>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut workloads = Vec::new();
    for source in sources {
        load_file(source, outputs, &mut workloads, &mut problems);
    }
    if problems.is_empty() {
        check_scopes_and_addresses(&mut workloads, sources, reserved, &mut problems);
    }
    if problems.is_empty() {
        Ok(workloads)
    } else {
        Err(problems)
    }
}

fn load_file(
    source: &SourceFile,
    outputs: &Outputs,
    workloads: &mut Vec<Workload>,
    problems: &mut Vec<Problem>,
) {
    let origin = source.path.display().to_string();
    let documents = match parse_documents_with_lines(&source.text, &origin) {
        Ok(documents) => documents,
        Err(e) => {
            let (line, message) = match e {
                ManifestError::Yaml { line, message, .. } => {
                    (line, format!("not valid YAML: {message}"))
                }
                ManifestError::Invalid { line, message, .. } => (line, message),
            };
            problems.push(at_line(source, line, message, None));
            return;
        }
    };
    for (line, mut object) in documents {
        let before = problems.len();
        object.body = interpolate::resolve(&object.body, outputs, &mut |expr, message, hint| {
            let offset = interpolate::find(&source.text, line, expr);
            problems.push(at_offset(source, offset, message, hint));
        });
        if problems.len() > before {
            continue;
        }
        // The parts that name the object must be known now: they make its address.
        let id = match reparse_id(&object.body) {
            Ok(id) => id,
            Err(field) => {
                problems.push(at_line(
                    source,
                    line,
                    format!("`{field}` of {} may only use values known before apply", object.id.short()),
                    Some("a role ARN or repository URI can go into other fields, not into the object's kind, name or namespace".into()),
                ));
                continue;
            }
        };
        object.id = id;
        if let Some(problem) = check_wait_annotations(&object) {
            problems.push(at_line(
                source,
                line,
                problem,
                Some("e.g. `mlops.dev/wait: \"false\"`, `mlops.dev/wait-timeout: \"15m\"`".into()),
            ));
            continue;
        }
        workloads.push(Workload {
            object,
            file: source.path.clone(),
            line,
        });
    }
}

/// The object's identity after interpolation: `Err(field)` when a naming field is still pending.
fn reparse_id(body: &Value) -> Result<ObjectRef, &'static str> {
    let text = |pointer: &str, field: &'static str| match body.pointer(pointer) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(field),
    };
    Ok(ObjectRef {
        api_version: text("/apiVersion", "apiVersion")?.unwrap_or_default(),
        kind: text("/kind", "kind")?.unwrap_or_default(),
        namespace: text("/metadata/namespace", "metadata.namespace")?,
        name: text("/metadata/name", "metadata.name")?.unwrap_or_default(),
    })
}

fn check_wait_annotations(object: &Object) -> Option<String> {
    let annotations = &object.body["metadata"]["annotations"];
    match &annotations[WAIT_ANNOTATION] {
        Value::Null => {}
        Value::String(s) if s == "true" || s == "false" => {}
        other => {
            return Some(format!(
                "annotation `{WAIT_ANNOTATION}` of {} is {other}; it takes \"true\" or \"false\"",
                object.id.short()
            ))
        }
    }
    match &annotations[WAIT_TIMEOUT_ANNOTATION] {
        Value::Null => None,
        Value::String(s) if humantime::parse_duration(s).is_ok() => None,
        other => Some(format!(
            "annotation `{WAIT_TIMEOUT_ANNOTATION}` of {} is {other}, not a duration",
            object.id.short()
        )),
    }
}

/// Gives a namespaced object without a namespace the `default` one (as `kubectl apply` does),
/// and refuses two objects with one address.
fn check_scopes_and_addresses(
    workloads: &mut [Workload],
    sources: &[SourceFile],
    reserved: &Reserved,
    problems: &mut Vec<Problem>,
) {
    let cluster_scoped_crds: Vec<(String, String)> = workloads
        .iter()
        .filter(|w| w.object.body["spec"]["scope"] == "Cluster")
        .filter_map(|w| w.defines().map(|(g, k)| (g.to_string(), k.to_string())))
        .collect();
    let mut seen: BTreeMap<Vec<String>, (PathBuf, usize)> = BTreeMap::new();
    for w in workloads.iter_mut() {
        let id = &w.object.id;
        let group = id.group_version().0.to_string();
        let cluster_scoped = CLUSTER_SCOPED_KINDS.contains(&id.kind.as_str())
            || cluster_scoped_crds.contains(&(group, id.kind.clone()));
        if cluster_scoped && id.namespace.is_some() {
            w.object.id.namespace = None;
            if let Some(metadata) = w.object.body["metadata"].as_object_mut() {
                metadata.remove("namespace");
            }
        } else if !cluster_scoped && id.namespace.is_none() {
            w.object.set_namespace("default");
        }
        let key: Vec<String> = w.address_parts().iter().map(|s| s.to_string()).collect();
        let (other, hint) = if let Some(what) = reserved.get(&key) {
            (
                what.clone(),
                "mlops makes that object itself; leave it out of the workloads, or give it another name",
            )
        } else if let Some((file, line)) = seen.get(&key) {
            (
                format!("the object at {}:{line}", file.display()),
                "an object is addressed by namespace, kind and name; rename one of them",
            )
        } else {
            seen.insert(key, (w.file.clone(), w.line));
            continue;
        };
        let source = sources
            .iter()
            .find(|s| s.path == w.file)
            .expect("every workload comes from one of the sources");
        problems.push(at_line(
            source,
            w.line,
            format!(
                "{} has the address `k8s.{}` of {other}",
                w.object.id,
                key.join(".")
            ),
            Some(hint.into()),
        ));
    }
}

fn at_line(source: &SourceFile, line: usize, message: String, hint: Option<String>) -> Problem {
    let offset = source
        .text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    at_offset(source, offset, message, hint)
}

fn at_offset(source: &SourceFile, offset: usize, message: String, hint: Option<String>) -> Problem {
    let diagnostic = Diagnostic::new(message, Some(offset..offset + 1));
    let diagnostic = match hint {
        Some(hint) => diagnostic.with_hint(hint),
        None => diagnostic,
    };
    (source.clone(), diagnostic)
}

/// The manifest with every `{"$output": name}` replaced by what `value_of` gives for it.
pub fn with_outputs(manifest: &Value, value_of: &dyn Fn(&str) -> Value) -> Value {
    match manifest {
        Value::Object(map) => match map.get(OUTPUT_KEY).and_then(Value::as_str) {
            Some(name) if map.len() == 1 => value_of(name),
            _ => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), with_outputs(v, value_of)))
                    .collect(),
            ),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| with_outputs(v, value_of)).collect())
        }
        other => other.clone(),
    }
}

/// The manifests' paths and texts, for the digest a saved plan checks.
pub fn digest_input(sources: &[SourceFile]) -> String {
    let mut input = String::new();
    for source in sources {
        input.push_str(&format!("\0{}\0", source.path.display()));
        input.push_str(&source.text);
    }
    input
}

#[cfg(test)]
mod tests;
