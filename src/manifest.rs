//! Kubernetes objects as `mlops` handles them: parsed from multi-document YAML, identified by an
//! [`ObjectRef`] that is stable across versions (it keys the inventories kept in the state), and
//! labelled so that every object `mlops` wrote can be found again by label.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The field manager of the add-ons' objects.
pub const ADDONS_MANAGER: &str = "mlops-addons";
/// The field manager of the stack's own objects (workloads, IRSA service accounts).
pub const WORKLOADS_MANAGER: &str = "mlops-workloads";
/// Label on every object `mlops` applies.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "mlops");
/// Label naming the add-on an object belongs to.
pub const ADDON_LABEL: &str = "mlops.dev/addon";
/// Label naming the add-on version that applied an object.
pub const VERSION_LABEL: &str = "mlops.dev/version";
/// Namespaces every cluster has: nothing of `mlops` creates or owns them.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];
/// Annotation: `"false"` applies the object without waiting for it to become ready.
pub const WAIT_ANNOTATION: &str = "mlops.dev/wait";
/// Annotation: how long to wait for the object (`"10m"`), instead of `--wait-timeout`.
pub const WAIT_TIMEOUT_ANNOTATION: &str = "mlops.dev/wait-timeout";

/// What identifies an object: `apps/v1 Deployment cert-manager/cert-manager`, or
/// `apiextensions.k8s.io/v1 CustomResourceDefinition certificates.cert-manager.io` when it is
/// cluster-scoped (no namespace written in the manifest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// `(group, version)` of the API version; the core group is `""`.
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", self.api_version.as_str()),
        }
    }

    pub fn is_crd(&self) -> bool {
        self.kind == "CustomResourceDefinition" && self.group_version().0 == "apiextensions.k8s.io"
    }

    pub fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.api_version == "v1"
    }

    /// What stays the same when a release moves an object to another API version: its group,
    /// kind, namespace and name. Two references with one key are one object in the cluster.
    pub fn key(&self) -> (&str, &str, Option<&str>, &str) {
        (
            self.group_version().0,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }

    /// `Deployment cert-manager/cert-manager`: the object as messages name it.
    pub fn short(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version, self.short())
    }
}

impl FromStr for ObjectRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(' ');
        let (Some(api_version), Some(kind), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "`{s}` is not `<apiVersion> <kind> [<namespace>/]<name>`"
            ));
        };
        let (namespace, name) = match id.split_once('/') {
            Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
            None => (None, id.to_string()),
        };
        Ok(ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace,
            name,
        })
    }
}

/// Who applies `object`: the add-ons' manager for an object labelled as an add-on's, the
/// workloads' otherwise. Two managers, so that a workload setting a field of an add-on's object
/// is a conflict the server reports, not a silent tug of war on every apply.
pub fn field_manager(object: &Object) -> &'static str {
    if object.body["metadata"]["labels"][ADDON_LABEL].is_string() {
        ADDONS_MANAGER
    } else {
        WORKLOADS_MANAGER
    }
}

/// One object to apply: its identity and its full manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: ObjectRef,
    pub body: Value,
}

impl Object {
    /// SHA-256 of the manifest with sorted keys: equal digests, equal manifests.
    pub fn digest(&self) -> String {
        let body = match &self.body {
            Value::Object(map) => Value::Object(crate::model::canonical(map.clone())),
            other => other.clone(),
        };
        hex::encode(Sha256::digest(body.to_string().as_bytes()))
    }

    /// Adds `labels` to `metadata.labels`, keeping the manifest's own.
    pub fn label(&mut self, labels: &[(&str, &str)]) {
        let metadata = self.body["metadata"]
            .as_object_mut()
            .expect("objects are parsed with metadata");
        let existing = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if !existing.is_object() {
            *existing = Value::Object(Map::new());
        }
        let map = existing.as_object_mut().expect("an object");
        for (k, v) in labels {
            map.insert((*k).to_string(), json!(v));
        }
    }

    /// The namespace an object lives in, once its kind is known to be namespaced.
    pub fn set_namespace(&mut self, namespace: &str) {
        self.id.namespace = Some(namespace.to_string());
        self.body["metadata"]["namespace"] = json!(namespace);
    }

    /// A `Namespace` object, labelled like the objects that live in it.
    pub fn namespace(name: &str) -> Object {
        Object {
            id: ObjectRef {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: name.into(),
            },
            body: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        }
    }
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("`{origin}`{}: not valid YAML: {message}", at(*line))]
    Yaml {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("`{origin}`{}: {message}", at(*line))]
    Invalid {
        origin: String,
        line: usize,
        message: String,
    },
}

fn at(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" line {line}")
    }
}

/// Every object of a multi-document YAML text, in order. Empty documents and comments are
/// skipped; `List` documents are unpacked. `origin` names the text in errors.
pub fn parse_documents(text: &str, origin: &str) -> Result<Vec<Object>, ManifestError> {
    Ok(parse_documents_with_lines(text, origin)?
        .into_iter()
        .map(|(_, object)| object)
        .collect())
}

/// Like [`parse_documents`], with the line each object's document starts on.
pub fn parse_documents_with_lines(
    text: &str,
    origin: &str,
) -> Result<Vec<(usize, Object)>, ManifestError> {
    let mut objects = Vec::new();
    // Line where each document starts, for messages about a document as a whole.
    let starts = document_starts(text);
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let line = starts.get(index).copied().unwrap_or(0);
        let value = serde_yaml::Value::deserialize(document).map_err(|e| ManifestError::Yaml {
            origin: origin.to_string(),
            line: e.location().map(|l| l.line()).unwrap_or(line),
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let json: Value = serde_json::to_value(&value).map_err(|e| ManifestError::Invalid {
            origin: origin.to_string(),
            line,
            message: format!("cannot be converted to JSON: {e}"),
        })?;
        if json["kind"].as_str().is_some_and(|k| k.ends_with("List")) && json["items"].is_array() {
            for item in json["items"].as_array().expect("checked").clone() {
                objects.push((line, object(item, origin, line)?));
            }
        } else {
            objects.push((line, object(json, origin, line)?));
        }
    }
    Ok(objects)
}

/// The 1-based line of each document's first line that is neither blank nor a comment. Every
/// `---` starts a document; what comes before the first one is a document only when it has
/// content, as the YAML parser sees it.
fn document_starts(text: &str) -> Vec<usize> {
    // (first content line, whether the document has content), per document.
    let mut documents: Vec<(Option<usize>, usize)> = vec![(None, 1)];
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.starts_with("---") {
            documents.push((None, number + 1));
            continue;
        }
        let trimmed = line.trim();
        let current = documents.last_mut().expect("starts with one");
        if current.0.is_none() && !trimmed.is_empty() && !trimmed.starts_with('#') {
            current.0 = Some(number);
        }
    }
    documents
        .iter()
        .enumerate()
        .filter(|(i, (content, _))| *i > 0 || content.is_some())
        .map(|(_, (content, after_separator))| content.unwrap_or(*after_separator))
        .collect()
}

fn object(body: Value, origin: &str, line: usize) -> Result<Object, ManifestError> {
    let invalid = |message: String| ManifestError::Invalid {
        origin: origin.to_string(),
        line,
        message,
    };
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
    let api_version =
        text("/apiVersion").ok_or_else(|| invalid("the object has no `apiVersion`".into()))?;
    let kind = text("/kind").ok_or_else(|| invalid("the object has no `kind`".into()))?;
    let name = text("/metadata/name").ok_or_else(|| {
        if text("/metadata/generateName").is_some() {
            invalid(format!(
                "the {kind} has only `metadata.generateName`; server-side apply needs a name"
            ))
        } else {
            invalid(format!("the {kind} has no `metadata.name`"))
        }
    })?;
    let id = ObjectRef {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: text("/metadata/namespace").map(str::to_string),
        name: name.to_string(),
    };
    Ok(Object { id, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents_skipping_empty_ones_and_unpacking_lists() {
        let text = "# comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, namespace: a}\n";
        let objects = parse_documents(text, "x.yaml").unwrap();
        let ids: Vec<String> = objects.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(ids, ["v1 Namespace a", "v1 ConfigMap a/c"]);
    }

    #[test]
    fn refs_round_trip_through_their_text() {
        for text in [
            "apps/v1 Deployment ns/web",
            "apiextensions.k8s.io/v1 CustomResourceDefinition a.b.c",
        ] {
            let id: ObjectRef = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
        }
        assert!("v1 Namespace".parse::<ObjectRef>().is_err());
    }

    #[test]
    fn names_the_file_and_line_of_a_bad_document() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n";
        let err = parse_documents(text, "m.yaml").unwrap_err().to_string();
        assert_eq!(err, "`m.yaml` line 5: the ConfigMap has no `metadata.name`");
        let err = parse_documents("a: [1,\n", "m.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("`m.yaml` line 2: not valid YAML"), "{err}");
    }

    #[test]
    fn labels_merge_with_the_manifest_ones_and_change_the_digest() {
        let mut o = parse_documents(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {x: y}}\n",
            "m",
        )
        .unwrap()
        .remove(0);
        let before = o.digest();
        o.label(&[MANAGED_BY]);
        assert_eq!(
            o.body["metadata"]["labels"],
            json!({"x": "y", "app.kubernetes.io/managed-by": "mlops"})
        );
        assert_ne!(before, o.digest());
    }
}
