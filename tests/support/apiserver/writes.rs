//! Every way an object is written, with the rules a real API server applies: create, replace,
//! merge and JSON patches, server-side apply, the `status` subresource, deletion with
//! finalizers and namespaces, and the writes of the server's own controllers. Each write
//! keeps the system fields (uid, creationTimestamp, generation, resourceVersion), records
//! field ownership, passes admission, and stores nothing when nothing changed.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::admission;
use super::fields::{self, FieldSet};
use super::resources::{crd_resource, split_api_version, Resource};
use super::state::{has_finalizers, is_deleting, name_of, namespace_of, now, State};
use super::status::{self, ApiError};

/// Metadata only the server sets; a client's values are ignored.
const SYSTEM_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Who writes, through which part of the object, and whether for real.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    pub manager: &'a str,
    /// `Some("status")` for the status subresource.
    pub subresource: Option<&'a str>,
    pub dry_run: bool,
}

impl Writer<'_> {
    fn on_status(&self) -> bool {
        self.subresource == Some("status")
    }
}

/// The result of a write: the object as stored (or as it would be, in a dry run), and
/// whether the store changed.
pub struct Written {
    pub object: Arc<Value>,
    pub changed: bool,
}

/// Where a write goes: the resource at one of its versions, and the object's namespace.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub resource: &'a Resource,
    pub version: &'a str,
    /// `""` for cluster-scoped resources.
    pub namespace: &'a str,
}

/// POST: a new object (a `generateName` gets a random suffix).
pub fn create(
    state: &mut State,
    target: Target,
    mut body: Value,
    writer: Writer,
) -> Result<Written, ApiError> {
    check_type(target, &body)?;
    check_namespace_matches(target, &body)?;
    if name_of(&body).is_empty() {
        let prefix = body["metadata"]["generateName"].as_str().unwrap_or("");
        if prefix.is_empty() {
            let detail = "Required value: name or generateName is required";
            return Err(ApiError::invalid(
                target.resource,
                "",
                "metadata.name",
                detail,
            ));
        }
        let suffix: String = (0..5)
            .map(|_| fastrand::choice(b"bcdfghjklmnpqrstvwxz2456789").map_or('x', |&c| c as char))
            .collect();
        body["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
    }
    let name = name_of(&body).to_string();
    if state
        .get(target.resource, target.namespace, &name)
        .is_some()
    {
        return Err(ApiError::already_exists(target.resource, &name));
    }
    commit(state, target, None, body, writer, Operation::Update, None)
}

/// PUT: the whole object (or its status) replaced; a stale resourceVersion is a conflict.
pub fn replace(
    state: &mut State,
    target: Target,
    name: &str,
    body: Value,
    writer: Writer,
) -> Result<Written, ApiError> {
    check_type(target, &body)?;
    check_namespace_matches(target, &body)?;
    check_name_matches(&body, name)?;
    let old = existing(state, target, name)?;
    check_resource_version(target, name, &body, &old)?;
    commit(
        state,
        target,
        Some(&old),
        body,
        writer,
        Operation::Update,
        None,
    )
}

/// PATCH with `application/merge-patch+json` (RFC 7386).
pub fn merge_patch(
    state: &mut State,
    target: Target,
    name: &str,
    patch: &Value,
    writer: Writer,
) -> Result<Written, ApiError> {
    let old = existing(state, target, name)?;
    let mut new = (*old).clone();
    json_patch::merge(&mut new, patch);
    check_resource_version(target, name, &new, &old)?;
    commit(
        state,
        target,
        Some(&old),
        new,
        writer,
        Operation::Update,
        None,
    )
}

/// PATCH with `application/json-patch+json` (RFC 6902).
pub fn json_patch(
    state: &mut State,
    target: Target,
    name: &str,
    patch: Value,
    writer: Writer,
) -> Result<Written, ApiError> {
    let operations: json_patch::Patch = serde_json::from_value(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let old = existing(state, target, name)?;
    let mut new = (*old).clone();
    json_patch::patch(&mut new, &operations).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {e}"),
        )
    })?;
    commit(
        state,
        target,
        Some(&old),
        new,
        writer,
        Operation::Update,
        None,
    )
}

/// PATCH with `application/apply-patch+yaml`: server-side apply by `writer.manager`.
pub fn apply(
    state: &mut State,
    target: Target,
    name: &str,
    body: Value,
    writer: Writer,
    force: bool,
) -> Result<Written, ApiError> {
    if body["apiVersion"].as_str().unwrap_or("").is_empty()
        || body["kind"].as_str().unwrap_or("").is_empty()
    {
        return Err(ApiError::bad_request(
            "invalid object type: apiVersion and kind must be set in an apply patch",
        ));
    }
    check_type(target, &body)?;
    check_namespace_matches(target, &body)?;
    check_name_matches(&body, name)?;
    let old = state.get(target.resource, target.namespace, name).cloned();
    if let Some(old) = &old {
        check_resource_version(target, name, &body, old)?;
    }
    let mut config = body;
    strip_system_metadata(&mut config);
    if writer.on_status() {
        let status = config.get("status").cloned();
        config = json!({"apiVersion": config["apiVersion"], "kind": config["kind"], "metadata": {"name": name}});
        if let Some(status) = status {
            config["status"] = status;
        }
    } else if target.resource.has_status {
        if let Some(map) = config.as_object_mut() {
            map.remove("status");
        }
    }
    let applied = scope(fields::of(&config), target.resource, writer);
    let nothing = json!({});
    let live = old.as_deref().unwrap_or(&nothing);
    let entries = entries(live);
    let (mine, others): (Vec<&Value>, Vec<&Value>) = entries
        .iter()
        .partition(|e| is_entry_of(e, writer, Operation::Apply));
    let mine = mine.first().map(|e| field_set(e));
    let others_union = others
        .iter()
        .fold(FieldSet::new(), |all, e| fields::union(&all, &field_set(e)));
    let merged = fields::apply(live, config, mine.as_ref(), &others_union);
    if !force {
        let changed = scope(
            fields::changed(Some(live), &merged).unwrap_or_default(),
            target.resource,
            writer,
        );
        check_conflicts(&others, &changed)?;
    }
    let operation = Operation::Apply;
    commit(
        state,
        target,
        old.as_ref(),
        merged,
        writer,
        operation,
        Some(applied),
    )
}

/// DELETE: at once, or marked with a deletionTimestamp while finalizers remain; a
/// Namespace takes everything in it along.
pub fn delete(
    state: &mut State,
    target: Target,
    name: &str,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let old = existing(state, target, name)?;
    admission::admit(state, target, None, "DELETE", &old)?;
    if dry_run {
        return Ok((*old).clone());
    }
    if target.resource.is("", "namespaces") {
        return Ok((*terminate_namespace(state, target.resource, &old)).clone());
    }
    Ok(remove_or_mark(state, target.resource, &old))
}

/// Deletes an object on behalf of the server (a namespace being emptied).
fn remove_or_mark(state: &mut State, resource: &Resource, old: &Arc<Value>) -> Value {
    if has_finalizers(old) {
        if is_deleting(old) {
            return (**old).clone();
        }
        let mut marked = (**old).clone();
        marked["metadata"]["deletionTimestamp"] = json!(now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        return (*state.store(resource, marked)).clone();
    }
    state.remove(resource, namespace_of(old), name_of(old));
    status::deleted(resource, name_of(old), &old["metadata"]["uid"])
}

fn terminate_namespace(
    state: &mut State,
    resource: &Resource,
    namespace: &Arc<Value>,
) -> Arc<Value> {
    if is_deleting(namespace) {
        return namespace.clone();
    }
    let name = name_of(namespace).to_string();
    let mut terminating = (**namespace).clone();
    terminating["metadata"]["deletionTimestamp"] = json!(now());
    terminating["status"]["phase"] = json!("Terminating");
    let stored = state.store(resource, terminating);
    for content in state.catalogue.namespaced() {
        for object in state.list(&content, Some(&name)) {
            remove_or_mark(state, &content, &object);
        }
    }
    finish_namespace(state, &name);
    stored
}

/// Removes a terminating namespace once nothing is left in it.
pub fn finish_namespace(state: &mut State, name: &str) {
    let namespaces = state.catalogue.builtin("", "namespaces");
    let terminating = state
        .get(&namespaces, "", name)
        .is_some_and(|ns| is_deleting(ns));
    if terminating && state.namespace_is_empty(name) {
        state.remove(&namespaces, "", name);
    }
}

/// A write by one of the server's own controllers (status, finalizers, caBundle): no
/// admission, recorded as an Update by `manager`.
pub fn update_as(
    state: &mut State,
    resource: &Resource,
    new: Value,
    manager: &str,
    subresource: Option<&str>,
) {
    let api_version = new["apiVersion"].as_str().unwrap_or("").to_string();
    let version = split_api_version(&api_version).1;
    let namespace = namespace_of(&new).to_string();
    let target = Target {
        resource,
        version,
        namespace: &namespace,
    };
    let Some(old) = state.get(resource, &namespace, name_of(&new)).cloned() else {
        return;
    };
    let writer = Writer {
        manager,
        subresource,
        dry_run: false,
    };
    let settled = settle(target, Some(&old), new, writer);
    finish(
        state,
        target,
        Some(&old),
        settled,
        writer,
        Operation::Update,
        None,
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// The common end of every client write: settle the system fields, validate, admit,
/// record ownership, store if anything changed.
fn commit(
    state: &mut State,
    target: Target,
    old: Option<&Arc<Value>>,
    new: Value,
    writer: Writer,
    operation: Operation,
    applied: Option<FieldSet>,
) -> Result<Written, ApiError> {
    if writer.on_status() && old.is_none() {
        return Err(ApiError::not_found(target.resource, name_of(&new)));
    }
    let new = settle(target, old.map(|o| &**o), new, writer);
    validate(state, target, old.is_none(), &new)?;
    let operation_name = if old.is_some() { "UPDATE" } else { "CREATE" };
    admission::admit(state, target, writer.subresource, operation_name, &new)?;
    Ok(finish(state, target, old, new, writer, operation, applied))
}

fn finish(
    state: &mut State,
    target: Target,
    old: Option<&Arc<Value>>,
    mut new: Value,
    writer: Writer,
    operation: Operation,
    applied: Option<FieldSet>,
) -> Written {
    record_ownership(
        target.resource,
        old.map(|o| &**o),
        &mut new,
        writer,
        operation,
        applied,
    );
    // `settle` kept the stored resourceVersion: equal means unchanged.
    if let Some(old) = old.filter(|old| new == ***old) {
        return Written {
            object: old.clone(),
            changed: false,
        };
    }
    if writer.dry_run {
        return Written {
            object: Arc::new(new),
            changed: false,
        };
    }
    let finalized =
        is_deleting(&new) && !has_finalizers(&new) && !target.resource.is("", "namespaces");
    if finalized {
        state.remove(target.resource, target.namespace, name_of(&new));
        return Written {
            object: Arc::new(new),
            changed: true,
        };
    }
    Written {
        object: state.store(target.resource, new),
        changed: true,
    }
}

/// Carries the system fields over from the stored object (or makes them for a new one),
/// keeps `status` out of main-resource writes and everything but `status` out of status
/// writes, and bumps the generation when the spec changed.
fn settle(target: Target, old: Option<&Value>, mut new: Value, writer: Writer) -> Value {
    let resource = target.resource;
    if let (true, Some(old)) = (writer.on_status(), old) {
        let mut base = old.clone();
        base["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        new = base;
    } else if resource.has_status {
        set_or_remove(
            &mut new,
            "status",
            old.and_then(|o| o.get("status")).cloned(),
        );
    }
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    for field in SYSTEM_METADATA {
        let kept = old.and_then(|o| o["metadata"].get(*field)).cloned();
        set_or_remove(&mut new["metadata"], field, kept);
    }
    new["apiVersion"] = json!(resource.api_version(target.version));
    new["kind"] = json!(resource.kind);
    let namespace = resource.namespaced.then(|| json!(target.namespace));
    set_or_remove(&mut new["metadata"], "namespace", namespace);
    match old {
        None => {
            new["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
            new["metadata"]["creationTimestamp"] = json!(now());
            if resource.tracks_generation() {
                new["metadata"]["generation"] = json!(1);
            }
            if resource.is("", "namespaces") {
                new["spec"]["finalizers"] = json!(["kubernetes"]);
                new["status"] = json!({"phase": "Active"});
            }
        }
        Some(old) if resource.tracks_generation() && !same_spec(old, &new) => {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        Some(_) => {}
    }
    new
}

/// Sets `field` of a map, or removes it for `None` or `null`.
pub fn set_or_remove(object: &mut Value, field: &str, value: Option<Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(value) if !value.is_null() => {
                map.insert(field.to_string(), value);
            }
            _ => {
                map.remove(field);
            }
        }
    }
}

/// Equal but for metadata and status.
fn same_spec(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let relevant = |k: &&String| !matches!(k.as_str(), "metadata" | "status");
    a.keys().filter(relevant).count() == b.keys().filter(relevant).count()
        && a.iter()
            .filter(|(k, _)| relevant(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

fn strip_system_metadata(object: &mut Value) {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for field in SYSTEM_METADATA {
            metadata.remove(*field);
        }
    }
}

fn check_type(target: Target, body: &Value) -> Result<(), ApiError> {
    let expected = target.resource.api_version(target.version);
    if let Some(api_version) = body["apiVersion"].as_str() {
        if api_version != expected {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({expected})"
            )));
        }
    }
    if let Some(kind) = body["kind"].as_str() {
        if kind != target.resource.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                target.resource.kind
            )));
        }
    }
    Ok(())
}

fn check_namespace_matches(target: Target, body: &Value) -> Result<(), ApiError> {
    let namespace = namespace_of(body);
    if target.resource.namespaced && !namespace.is_empty() && namespace != target.namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn check_name_matches(body: &Value, name: &str) -> Result<(), ApiError> {
    let in_body = name_of(body);
    if !in_body.is_empty() && in_body != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({in_body}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

fn check_resource_version(
    target: Target,
    name: &str,
    body: &Value,
    old: &Value,
) -> Result<(), ApiError> {
    match body["metadata"]["resourceVersion"].as_str() {
        Some(version) if !version.is_empty() && old["metadata"]["resourceVersion"] != version => {
            Err(ApiError::modified(target.resource, name))
        }
        _ => Ok(()),
    }
}

fn existing(state: &State, target: Target, name: &str) -> Result<Arc<Value>, ApiError> {
    state
        .get(target.resource, target.namespace, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(target.resource, name))
}

/// What a real server checks that matters here: the namespace exists (and is not being
/// deleted) for a new object, and a CRD is well formed.
fn validate(state: &State, target: Target, creating: bool, object: &Value) -> Result<(), ApiError> {
    let name = name_of(object);
    if creating && target.resource.namespaced {
        let namespaces = state.catalogue.builtin("", "namespaces");
        match state.get(&namespaces, "", target.namespace) {
            None => return Err(ApiError::namespace_not_found(target.namespace)),
            Some(ns) if is_deleting(ns) => {
                return Err(ApiError::namespace_terminating(
                    target.resource,
                    name,
                    target.namespace,
                ))
            }
            Some(_) => {}
        }
    }
    if target
        .resource
        .is("apiextensions.k8s.io", "customresourcedefinitions")
    {
        crd_resource(object)
            .map_err(|(field, detail)| ApiError::invalid(target.resource, name, &field, &detail))?;
    }
    Ok(())
}

// --- field ownership ---

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn field_set(entry: &Value) -> FieldSet {
    entry["fieldsV1"].as_object().cloned().unwrap_or_default()
}

fn is_entry_of(entry: &Value, writer: Writer, operation: Operation) -> bool {
    entry["manager"] == writer.manager
        && entry["operation"] == operation.name()
        && entry["subresource"].as_str() == writer.subresource
}

/// Keeps only the fields a manager can own through this write: no type or identity fields,
/// no system metadata, and `status` only through the status subresource (for resources
/// that have one).
fn scope(mut set: FieldSet, resource: &Resource, writer: Writer) -> FieldSet {
    set.remove("f:apiVersion");
    set.remove("f:kind");
    if writer.on_status() {
        set.retain(|k, _| k == "f:status");
    } else if resource.has_status {
        set.remove("f:status");
    }
    if let Some(metadata) = set.get_mut("f:metadata").and_then(Value::as_object_mut) {
        for field in SYSTEM_METADATA.iter().chain(&["name", "namespace"]) {
            metadata.remove(&format!("f:{field}"));
        }
        if metadata.is_empty() {
            set.remove("f:metadata");
        }
    }
    set
}

/// Updates `metadata.managedFields` of `new`: the writer owns what it applied (Apply) or
/// what it changed (Update); other managers lose what changed hands or disappeared.
fn record_ownership(
    resource: &Resource,
    old: Option<&Value>,
    new: &mut Value,
    writer: Writer,
    operation: Operation,
    applied: Option<FieldSet>,
) {
    let mut entries = old.map(entries).unwrap_or_default();
    if let Some(metadata) = new["metadata"].as_object_mut() {
        metadata.remove("managedFields");
    }
    let changed = scope(
        fields::changed(old, new).unwrap_or_default(),
        resource,
        writer,
    );
    let gone = old
        .and_then(|old| fields::removed(old, new))
        .map(|gone| scope(gone, resource, writer))
        .unwrap_or_default();
    let position = entries
        .iter()
        .position(|e| is_entry_of(e, writer, operation));
    let previous = position.map(|i| entries.remove(i));
    for entry in &mut entries {
        let rest = fields::subtract(&fields::subtract(&field_set(entry), &changed), &gone);
        entry["fieldsV1"] = Value::Object(rest);
    }
    entries.retain(|e| e["fieldsV1"].as_object().is_some_and(|f| !f.is_empty()));
    let previous_set = previous.as_ref().map(field_set).unwrap_or_default();
    let set = match applied {
        Some(applied) => applied,
        None => fields::subtract(&fields::union(&previous_set, &changed), &gone),
    };
    if !set.is_empty() {
        let unchanged = changed.is_empty() && gone.is_empty() && set == previous_set;
        let time = match (&previous, unchanged) {
            (Some(previous), true) => previous["time"].clone(),
            _ => json!(now()),
        };
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(writer.manager));
        entry.insert("operation".into(), json!(operation.name()));
        entry.insert("apiVersion".into(), new["apiVersion"].clone());
        entry.insert("time".into(), time);
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), Value::Object(set));
        if let Some(subresource) = writer.subresource {
            entry.insert("subresource".into(), json!(subresource));
        }
        let at = position.unwrap_or(entries.len()).min(entries.len());
        entries.insert(at, Value::Object(entry));
    }
    if !entries.is_empty() {
        new["metadata"]["managedFields"] = Value::Array(entries);
    }
}

/// An apply without `force` that would change fields another manager owns is refused, as
/// the API server does, naming the managers and the fields.
fn check_conflicts(others: &[&Value], changed: &FieldSet) -> Result<(), ApiError> {
    let mut parts = Vec::new();
    let mut count = 0;
    for entry in others {
        let paths = fields::shared_paths(&field_set(entry), changed);
        if paths.is_empty() {
            continue;
        }
        count += paths.len();
        let manager = entry["manager"].as_str().unwrap_or("");
        let api_version = entry["apiVersion"].as_str().unwrap_or("");
        parts.push(if paths.len() == 1 {
            format!(
                "conflict with \"{manager}\" using {api_version}: {}",
                paths[0]
            )
        } else {
            format!(
                "conflicts with \"{manager}\" using {api_version}:\n- {}",
                paths.join("\n- ")
            )
        });
    }
    if count == 0 {
        return Ok(());
    }
    let plural = if count == 1 { "conflict" } else { "conflicts" };
    Err(ApiError::new(
        409,
        "Conflict",
        format!("Apply failed with {count} {plural}: {}", parts.join("\n")),
    ))
}
