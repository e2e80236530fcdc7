//! Field ownership and server-side apply, as a current API server does them: every write
//! records the fields its manager set in `metadata.managedFields`; an apply replaces the
//! fields its manager set before, removes those it no longer sets (unless another manager
//! owns them too) and keeps everything else, such as `status`.
//!
//! Lists whose elements are all maps with distinct `name`s are merged by name (as the
//! webhooks, containers, ports and env lists of the real schemas); every other list is atomic.

use serde_json::{json, Map, Value};

/// The fields one manager owns, in the shape of `managedFields[].fieldsV1`:
/// `{"f:spec": {"f:replicas": {}}, "f:webhooks": {"k:{\"name\":\"w\"}": {".": {}, ...}}}`.
/// An empty map is a whole value: a scalar, an atomic list or an empty map.
pub type FieldSet = Map<String, Value>;

/// The `k:{"name":"..."}` keys of a list merged by name, or `None` for an atomic list.
fn element_keys(items: &[Value]) -> Option<Vec<String>> {
    if items.is_empty() {
        return None;
    }
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let key = format!("k:{}", json!({"name": item.get("name")?.as_str()?}));
        if keys.contains(&key) {
            return None;
        }
        keys.push(key);
    }
    Some(keys)
}

fn child<'a>(set: Option<&'a FieldSet>, key: &str) -> Option<&'a FieldSet> {
    set?.get(key)?.as_object()
}

/// Every field of `value`.
pub fn of(value: &Value) -> FieldSet {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (format!("f:{k}"), Value::Object(of(v))))
            .collect(),
        Value::Array(items) => match element_keys(items) {
            Some(keys) => keys
                .into_iter()
                .zip(items)
                .map(|(key, item)| (key, Value::Object(element(of(item)))))
                .collect(),
            None => FieldSet::new(),
        },
        _ => FieldSet::new(),
    }
}

fn element(mut set: FieldSet) -> FieldSet {
    set.insert(".".into(), json!({}));
    set
}

/// The fields of `new` whose value differs from `old` (or that `old` lacks).
pub fn changed(old: Option<&Value>, new: &Value) -> Option<FieldSet> {
    match new {
        Value::Object(map) if !map.is_empty() => {
            let old = old.and_then(Value::as_object);
            let set: FieldSet = map
                .iter()
                .filter_map(|(k, v)| {
                    let c = changed(old.and_then(|o| o.get(k)), v)?;
                    Some((format!("f:{k}"), Value::Object(c)))
                })
                .collect();
            (!set.is_empty()).then_some(set)
        }
        Value::Array(items) if element_keys(items).is_some() => {
            let old_items = old.and_then(Value::as_array).map(Vec::as_slice);
            let old_keys = old_items.and_then(element_keys).unwrap_or_default();
            let keys = element_keys(items).unwrap_or_default();
            let set: FieldSet = keys
                .into_iter()
                .zip(items)
                .filter_map(|(key, item)| {
                    let before = old_keys
                        .iter()
                        .position(|k| *k == key)
                        .and_then(|i| old_items.map(|o| &o[i]));
                    let c = match before {
                        Some(before) => changed(Some(before), item)?,
                        None => element(of(item)),
                    };
                    Some((key, Value::Object(c)))
                })
                .collect();
            (!set.is_empty()).then_some(set)
        }
        _ => (old != Some(new)).then(FieldSet::new),
    }
}

/// The fields of `old` that `new` no longer has at all (a value whose type changed is not
/// gone: it changed).
pub fn removed(old: &Value, new: &Value) -> Option<FieldSet> {
    let set: FieldSet = match (old, new) {
        (Value::Object(old), Value::Object(new)) => old
            .iter()
            .filter_map(|(k, v)| {
                let gone = match new.get(k) {
                    None => FieldSet::new(),
                    Some(now) => removed(v, now)?,
                };
                Some((format!("f:{k}"), Value::Object(gone)))
            })
            .collect(),
        (Value::Array(old), Value::Array(new)) => {
            let (old_keys, new_keys) = (element_keys(old)?, element_keys(new)?);
            old_keys
                .into_iter()
                .zip(old)
                .filter_map(|(key, item)| {
                    let gone = match new_keys.iter().position(|k| *k == key) {
                        None => FieldSet::new(),
                        Some(i) => removed(item, &new[i])?,
                    };
                    Some((key, Value::Object(gone)))
                })
                .collect()
        }
        _ => FieldSet::new(),
    };
    (!set.is_empty()).then_some(set)
}

/// `a` without what `b` covers.
pub fn subtract(a: &FieldSet, b: &FieldSet) -> FieldSet {
    let mut out = FieldSet::new();
    for (key, a_child) in a {
        let a_children = a_child.as_object().filter(|m| !m.is_empty());
        match (a_children, b.get(key).and_then(Value::as_object)) {
            (_, Some(b_child)) if b_child.is_empty() => {}
            (Some(a_children), Some(b_child)) => {
                let rest = subtract(a_children, b_child);
                if !rest.is_empty() {
                    out.insert(key.clone(), Value::Object(rest));
                }
            }
            _ => {
                out.insert(key.clone(), a_child.clone());
            }
        }
    }
    out
}

pub fn union(a: &FieldSet, b: &FieldSet) -> FieldSet {
    let mut out = FieldSet::new();
    for (key, a_child) in a {
        let merged = match (a_child.as_object(), b.get(key).and_then(Value::as_object)) {
            (Some(a_children), Some(b_children)) => Value::Object(union(a_children, b_children)),
            _ => a_child.clone(),
        };
        out.insert(key.clone(), merged);
    }
    for (key, b_child) in b {
        if !a.contains_key(key) {
            out.insert(key.clone(), b_child.clone());
        }
    }
    out
}

/// The paths both sets own, as the API server prints them in a conflict
/// (`.spec.replicas`, `.spec.containers[name="app"].image`).
pub fn shared_paths(a: &FieldSet, b: &FieldSet) -> Vec<String> {
    let mut paths = Vec::new();
    collect_shared(a, b, String::new(), &mut paths);
    paths
}

fn collect_shared(a: &FieldSet, b: &FieldSet, prefix: String, paths: &mut Vec<String>) {
    for (key, a_child) in a {
        let Some(b_child) = b.get(key).and_then(Value::as_object) else {
            continue;
        };
        let path = match key.strip_prefix("f:") {
            Some(field) => format!("{prefix}.{field}"),
            None => match key.strip_prefix("k:") {
                Some(element) => {
                    let name = serde_json::from_str::<Value>(element).unwrap_or_default();
                    format!("{prefix}[name={}]", name["name"])
                }
                None => prefix.clone(),
            },
        };
        match a_child.as_object().filter(|m| !m.is_empty()) {
            Some(a_children) if !b_child.is_empty() => {
                collect_shared(a_children, b_child, path, paths)
            }
            _ if key != "." => paths.push(path),
            _ => {}
        }
    }
}

/// Applies `config` over `live`: `mine` is what the applying manager owned before, `others`
/// what every other manager owns.
pub fn apply(live: &Value, config: Value, mine: Option<&FieldSet>, others: &FieldSet) -> Value {
    merge_value(Some(live), config, mine, Some(others))
}

fn merge_value(
    live: Option<&Value>,
    config: Value,
    mine: Option<&FieldSet>,
    others: Option<&FieldSet>,
) -> Value {
    match (live, config) {
        (Some(Value::Object(live)), Value::Object(config)) => {
            let mut out = Map::new();
            for (key, value) in live.iter().filter(|(k, _)| !config.contains_key(*k)) {
                let field = format!("f:{key}");
                if let Some(kept) = keep(value, child(mine, &field), child(others, &field)) {
                    out.insert(key.clone(), kept);
                }
            }
            for (key, value) in config {
                let field = format!("f:{key}");
                let merged = merge_value(
                    live.get(&key),
                    value,
                    child(mine, &field),
                    child(others, &field),
                );
                out.insert(key, merged);
            }
            Value::Object(out)
        }
        (Some(Value::Array(live)), Value::Array(config)) => {
            match (element_keys(live), element_keys(&config)) {
                (Some(live_keys), Some(config_keys)) => {
                    let mut out = Vec::with_capacity(config.len());
                    for (key, item) in config_keys.iter().zip(config) {
                        let before = live_keys.iter().position(|k| k == key).map(|i| &live[i]);
                        out.push(merge_value(
                            before,
                            item,
                            child(mine, key),
                            child(others, key),
                        ));
                    }
                    for (key, item) in live_keys.iter().zip(live) {
                        if config_keys.contains(key) {
                            continue;
                        }
                        if let Some(kept) = keep(item, child(mine, key), child(others, key)) {
                            out.push(kept);
                        }
                    }
                    Value::Array(out)
                }
                _ => Value::Array(config),
            }
        }
        (_, config) => config,
    }
}

/// What stays of a live value the applied configuration no longer sets: the parts `mine`
/// did not own, and those another manager owns too. `None` when nothing stays.
fn keep(value: &Value, mine: Option<&FieldSet>, others: Option<&FieldSet>) -> Option<Value> {
    let Some(mine) = mine else {
        return Some(value.clone());
    };
    others?;
    let owned_whole = mine.keys().all(|k| k == ".");
    if owned_whole {
        return Some(value.clone());
    }
    match value {
        Value::Object(map) => {
            let mut out = map.clone();
            for key in map.keys() {
                let field = format!("f:{key}");
                if child(Some(mine), &field).is_none() {
                    continue;
                }
                match keep(&map[key], child(Some(mine), &field), child(others, &field)) {
                    Some(kept) => out.insert(key.clone(), kept),
                    None => out.remove(key),
                };
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => {
            let Some(keys) = element_keys(items) else {
                return Some(value.clone());
            };
            let kept = keys
                .iter()
                .zip(items)
                .filter_map(|(key, item)| match child(Some(mine), key) {
                    None => Some(item.clone()),
                    Some(owned) => keep(item, Some(owned), child(others, key)),
                })
                .collect();
            Some(Value::Array(kept))
        }
        _ => Some(value.clone()),
    }
}
