//! The vocabulary shared by the planner, the state and the providers: resource addresses,
//! resource kinds, and attribute values that may refer to other resources.
//!
//! Attributes are JSON values (like Terraform's cty values): the planner diffs them generically,
//! the state stores them, and each provider reads them into its own typed struct. A reference to
//! another resource's attribute is the object `{"$ref": "<address>", "attr": "<name>"}`; it is
//! resolved from the state once the referenced resource exists, and shows as
//! `(known after apply)` before. A string with references inside it (a Kubernetes manifest's
//! `arn:...${irsa.x.role_arn}`) is `{"$join": [part, ...]}`: its parts, strings or references,
//! concatenated once all are known.

mod address;
pub mod device_plugin;
mod kind;
mod partition;
pub mod zones;

pub use address::Address;
pub use kind::ResourceKind;
pub use partition::Partition;

use serde_json::{json, Map, Value};

/// Attributes of one resource, ordered by name.
pub type Attrs = Map<String, Value>;

/// A resource the spec asks for: its address, kind, desired attributes and what it needs first.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub address: Address,
    pub kind: ResourceKind,
    pub attrs: Attrs,
    /// Resources that must exist before this one, sorted.
    pub deps: Vec<Address>,
    /// Those of `deps` that order the destroy only (deleted after this one) and that its create
    /// does not wait for, because AWS does not need them to make it: the cluster is deleted
    /// before the public subnets and the internet gateway, but made without them.
    pub destroy_only: Vec<Address>,
}

/// A reference to an attribute of another resource, as stored in desired attributes.
pub fn reference(address: &Address, attr: &str) -> Value {
    json!({ "$ref": address.as_str(), "attr": attr })
}

/// The `(address, attr)` of a reference value, if `value` is one.
pub fn as_reference(value: &Value) -> Option<(Address, &str)> {
    let object = value.as_object()?;
    if object.len() != 2 {
        return None;
    }
    let address = object.get("$ref")?.as_str()?;
    let attr = object.get("attr")?.as_str()?;
    Some((Address::new(address), attr))
}

/// `attrs` with the keys of every object sorted, recursively. serde_json keeps insertion order
/// when any crate in the build turns on its `preserve_order` feature (the AWS SDK's HTTP client
/// does), so every value that enters the planner, the state or the output passes through here:
/// plans, state files and snapshots do not depend on the order AWS or the code listed things in.
pub fn canonical(attrs: Attrs) -> Attrs {
    fn sorted(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(canonical(map)),
            Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    let mut entries: Vec<(String, Value)> = attrs.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect()
}

/// Every resource referenced anywhere inside `value`.
pub fn references_in(value: &Value, out: &mut Vec<Address>) {
    if let Some((address, _)) = as_reference(value) {
        out.push(address);
        return;
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| references_in(v, out)),
        Value::Object(map) => map.values().for_each(|v| references_in(v, out)),
        _ => {}
    }
}

/// A string made of `parts` (strings and references), concatenated once every part is known.
pub fn join(parts: Vec<Value>) -> Value {
    json!({ "$join": parts })
}

/// The parts of a `$join` value, if `value` is one.
fn as_join(value: &Value) -> Option<&Vec<Value>> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get("$join")?.as_array()
}

/// A value set when the resource is created and left alone afterwards (a node group's desired
/// size, which an autoscaler moves): `{"$initial": value}`.
pub fn initial(value: Value) -> Value {
    json!({ "$initial": value })
}

fn as_initial(value: &Value) -> Option<&Value> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get("$initial")
}

/// The desired attributes of a resource that exists (`existing`: what it has now): each value
/// set only at creation is what the resource has, so that it is neither compared nor changed.
/// Of a resource to create, or with no such value recorded, the values stay as they are. Values
/// by zone become the list of the zones the resource runs in ([`zones`]).
pub fn settled(desired: &Attrs, existing: Option<&Attrs>) -> Attrs {
    let attrs = desired
        .iter()
        .map(|(name, value)| {
            let now = existing.and_then(|e| e.get(name));
            let value = match (as_initial(value), now) {
                (Some(_), Some(now)) => now.clone(),
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    zones::settle(attrs, desired, existing)
}

/// Whether `value` as a whole waits on something unknown (a reference or a join).
pub fn is_pending(value: &Value) -> bool {
    as_reference(value).is_some() || as_join(value).is_some()
}

/// Replaces every reference inside `value` by what `lookup` gives for it; `None` from `lookup`
/// (the value is not known yet) makes the whole value unknown.
pub fn resolve(value: &Value, lookup: &dyn Fn(&Address, &str) -> Option<Value>) -> Option<Value> {
    let partial = resolve_known(value, lookup);
    let mut pending = Vec::new();
    pending_paths(&partial, "", &mut pending);
    pending.is_empty().then_some(partial)
}

/// Like [`resolve`], but what is not known yet stays in place, as the reference (or join) it is:
/// a plan shows `(known after apply)` just there, and the rest of the value as it will be.
pub fn resolve_known(value: &Value, lookup: &dyn Fn(&Address, &str) -> Option<Value>) -> Value {
    if let Some((address, attr)) = as_reference(value) {
        return lookup(&address, attr).unwrap_or_else(|| value.clone());
    }
    if let Some(first) = as_initial(value) {
        return resolve_known(first, lookup);
    }
    if let Some(parts) = as_join(value) {
        let parts: Vec<Value> = parts.iter().map(|p| resolve_known(p, lookup)).collect();
        if parts.iter().any(is_pending) {
            return join(parts);
        }
        return Value::String(
            parts
                .iter()
                .map(|p| match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    match value {
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve_known(v, lookup)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_known(v, lookup)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The JSON pointers (RFC 6901, below `prefix`) of every part of `value` still pending.
pub fn pending_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    if is_pending(value) {
        out.push(prefix.to_string());
        return;
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pending_paths(item, &format!("{prefix}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pending_paths(item, &format!("{prefix}/{key}"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_or_stay_unknown() {
        let vpc = Address::new("vpc");
        let subnet = Address::new("subnet.public.a");
        let value = json!({ "ids": [reference(&vpc, "id"), reference(&subnet, "id")], "n": 1 });
        let mut found = Vec::new();
        references_in(&value, &mut found);
        assert_eq!(found, vec![vpc.clone(), subnet.clone()]);

        let all_known = resolve(&value, &|a, _| Some(json!(format!("id-of-{a}"))));
        assert_eq!(
            all_known,
            Some(json!({ "ids": ["id-of-vpc", "id-of-subnet.public.a"], "n": 1 }))
        );
        let partly_known = resolve(&value, &|a, _| (a == &vpc).then(|| json!("x")));
        assert_eq!(partly_known, None);
    }

    #[test]
    fn joins_concatenate_once_known_and_stay_pending_where_unknown() {
        let role = Address::new("iam_role.irsa.s3");
        let value = json!({
            "data": { "arn": reference(&role, "arn"), "uri": join(vec![json!("s3://"), reference(&role, "name"), json!("/m")]) },
            "kind": "ConfigMap",
        });
        let known = resolve(&value, &|_, attr| Some(json!(format!("<{attr}>"))));
        assert_eq!(
            known,
            Some(
                json!({ "data": { "arn": "<arn>", "uri": "s3://<name>/m" }, "kind": "ConfigMap" })
            )
        );
        let partial = resolve_known(&value, &|_, attr| (attr == "name").then(|| json!("b")));
        assert_eq!(partial["data"]["uri"], json!("s3://b/m"));
        assert_eq!(partial["data"]["arn"], reference(&role, "arn"));
        let mut pending = Vec::new();
        pending_paths(&partial, "/manifest", &mut pending);
        assert_eq!(pending, vec!["/manifest/data/arn".to_string()]);
        assert_eq!(
            resolve(&value, &|_, attr| (attr == "name").then(|| json!("b"))),
            None
        );
    }

    #[test]
    fn initial_values_are_set_at_creation_then_left_as_they_are() {
        let desired: Attrs = json!({ "desired_size": initial(json!(2)), "max_size": 5 })
            .as_object()
            .cloned()
            .unwrap();
        let created = resolve(&Value::Object(settled(&desired, None)), &|_, _| None);
        assert_eq!(created, Some(json!({ "desired_size": 2, "max_size": 5 })));
        let live: Attrs = json!({ "desired_size": 4, "max_size": 3 })
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            Value::Object(settled(&desired, Some(&live))),
            json!({ "desired_size": 4, "max_size": 5 })
        );
    }

    #[test]
    fn canonical_sorts_keys_at_every_depth() {
        let mut attrs = Attrs::new();
        attrs.insert("z".into(), json!([{ "b": 1, "a": 2 }]));
        attrs.insert("a".into(), json!({ "y": 1, "x": { "d": 1, "c": 2 } }));
        let text = serde_json::to_string(&canonical(attrs)).unwrap();
        assert_eq!(
            text,
            r#"{"a":{"x":{"c":2,"d":1},"y":1},"z":[{"a":2,"b":1}]}"#
        );
    }

    #[test]
    fn plain_objects_are_not_references() {
        assert!(as_reference(&json!({ "$ref": "vpc" })).is_none());
        assert!(as_reference(&json!({ "$ref": "vpc", "attr": "id", "x": 1 })).is_none());
        assert!(as_reference(&json!("vpc.id")).is_none());
    }
}
