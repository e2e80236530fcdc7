//! The zones a resource runs in, kept from its creation. EKS keeps a cluster in the
//! availability zones it was created with: UpdateClusterConfig moves it to other subnets of its
//! VPC only within them, and a cluster needs subnets in at least two. Unless the spec names the
//! zones (`[eks] zones`), a cluster's `availability_zones` are a value set at creation
//! (`{"$initial": [...]}`), and its subnets a list by zone (`{"$by_zone": {zone: subnet}}`):
//! for a cluster that exists, the zones are those it runs in (recorded in the state) that the
//! VPC still has, and its subnets those of these zones. A zone added to the VPC leaves the
//! cluster as it is; a zone removed moves it off that zone in place; only when fewer than two of
//! its zones are left is a new cluster made, in the VPC's zones, and the plan says why.

use super::{as_initial, Attrs};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The attribute that names the zones a resource runs in.
const ZONES: &str = "availability_zones";

/// EKS's minimum: a cluster's subnets lie in at least two zones.
const MIN_ZONES: usize = 2;

/// A list made of the values of the zones the resource runs in (its `availability_zones`, as
/// settled), in zone order: `{"$by_zone": {zone: value}}`.
pub fn by_zone(values: BTreeMap<&str, Value>) -> Value {
    json!({ "$by_zone": values })
}

fn as_by_zone(value: &Value) -> Option<&Map<String, Value>> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get("$by_zone")?.as_object()
}

/// Where a resource with values by zone runs.
struct Choice {
    /// The zones it is to run in.
    zones: Vec<Value>,
    /// For a resource that keeps its zones but cannot: those it runs in, and those of them left.
    lost: Option<(Vec<Value>, Vec<Value>)>,
}

/// The zones of a resource with values by zone: those of the spec for a resource to create or
/// whose zones the spec names; otherwise those it runs in (`existing`) that still have a value,
/// or, when fewer than two of them do, the spec's (a new object).
fn choose(desired: &Attrs, existing: Option<&Attrs>) -> Option<Choice> {
    let available = desired.values().find_map(as_by_zone)?;
    let wanted = desired.get(ZONES)?;
    let spec = as_initial(wanted).unwrap_or(wanted);
    let spec = spec.as_array().cloned().unwrap_or_default();
    let runs_in = match (as_initial(wanted), existing.and_then(|e| e.get(ZONES))) {
        (Some(_), Some(Value::Array(runs_in))) => runs_in,
        _ => {
            return Some(Choice {
                zones: spec,
                lost: None,
            })
        }
    };
    let left: Vec<Value> = runs_in
        .iter()
        .filter(|z| z.as_str().is_some_and(|z| available.contains_key(z)))
        .cloned()
        .collect();
    Some(if left.len() >= MIN_ZONES {
        Choice {
            zones: left,
            lost: None,
        }
    } else {
        Choice {
            zones: spec,
            lost: Some((runs_in.clone(), left)),
        }
    })
}

/// `attrs` (settled otherwise) with the zones chosen for the resource and every value by zone
/// turned into the list of its chosen zones' values. Unchanged without values by zone.
pub(super) fn settle(mut attrs: Attrs, desired: &Attrs, existing: Option<&Attrs>) -> Attrs {
    let Some(choice) = choose(desired, existing) else {
        return attrs;
    };
    for (name, value) in desired {
        if let Some(values) = as_by_zone(value) {
            let list: Vec<Value> = choice
                .zones
                .iter()
                .filter_map(|z| values.get(z.as_str()?).cloned())
                .collect();
            attrs.insert(name.clone(), Value::Array(list));
        }
    }
    attrs.insert(ZONES.into(), Value::Array(choice.zones));
    attrs
}

/// Why a resource that keeps its zones is made anew: fewer than two of the zones it runs in
/// are left. `None` when it keeps them (or the spec names its zones).
pub fn lost(desired: &Attrs, existing: Option<&Attrs>) -> Option<String> {
    let (runs_in, left) = choose(desired, existing)?.lost?;
    let names = |zones: &[Value]| {
        zones
            .iter()
            .filter_map(Value::as_str)
            .map(|z| format!("`{z}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let left = match left.len() {
        0 => "none of them is".to_string(),
        _ => format!("only {} is", names(&left)),
    };
    Some(format!(
        "EKS keeps a cluster in the zones it was made with ({}) and needs two of them; {left} left in the VPC",
        names(&runs_in)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{initial, settled};

    fn attrs(value: Value) -> Attrs {
        value.as_object().cloned().unwrap()
    }

    /// A cluster's desired zones and subnets over `zones`, kept from creation.
    fn cluster(zones: &[&str]) -> Attrs {
        attrs(json!({
            "availability_zones": initial(json!(zones)),
            "subnet_ids": by_zone(zones.iter().map(|z| (*z, json!(format!("subnet-{z}")))).collect()),
        }))
    }

    #[test]
    fn a_new_resource_runs_in_the_spec_zones() {
        let got = settled(&cluster(&["a", "b", "c"]), None);
        assert_eq!(
            got["subnet_ids"],
            json!(["subnet-a", "subnet-b", "subnet-c"])
        );
        assert_eq!(got["availability_zones"], json!(["a", "b", "c"]));
        assert_eq!(lost(&cluster(&["a", "b"]), None), None);
    }

    #[test]
    fn an_existing_resource_keeps_its_zones_that_are_left() {
        let runs_in = attrs(json!({ "availability_zones": ["a", "b"] }));
        let got = settled(&cluster(&["a", "b", "c"]), Some(&runs_in));
        assert_eq!(got["availability_zones"], json!(["a", "b"]));
        assert_eq!(got["subnet_ids"], json!(["subnet-a", "subnet-b"]));

        let runs_in = attrs(json!({ "availability_zones": ["a", "b", "c"] }));
        let got = settled(&cluster(&["a", "b", "d"]), Some(&runs_in));
        assert_eq!(got["availability_zones"], json!(["a", "b"]));
        assert_eq!(got["subnet_ids"], json!(["subnet-a", "subnet-b"]));
        assert_eq!(lost(&cluster(&["a", "b", "d"]), Some(&runs_in)), None);
    }

    #[test]
    fn too_few_zones_left_take_the_spec_zones_and_say_why() {
        let runs_in = attrs(json!({ "availability_zones": ["a", "b"] }));
        let desired = cluster(&["a", "c"]);
        let got = settled(&desired, Some(&runs_in));
        assert_eq!(got["availability_zones"], json!(["a", "c"]));
        assert_eq!(got["subnet_ids"], json!(["subnet-a", "subnet-c"]));
        assert_eq!(
            lost(&desired, Some(&runs_in)).as_deref(),
            Some("EKS keeps a cluster in the zones it was made with (`a`, `b`) and needs two of them; only `a` is left in the VPC")
        );
        let desired = cluster(&["c", "d"]);
        assert!(lost(&desired, Some(&runs_in))
            .unwrap()
            .ends_with("; none of them is left in the VPC"));
    }

    #[test]
    fn zones_the_spec_names_are_taken_as_they_are() {
        let runs_in = attrs(json!({ "availability_zones": ["a", "b"] }));
        let mut desired = cluster(&["a", "b", "c"]);
        desired.insert("availability_zones".into(), json!(["b", "c"]));
        let got = settled(&desired, Some(&runs_in));
        assert_eq!(got["availability_zones"], json!(["b", "c"]));
        assert_eq!(got["subnet_ids"], json!(["subnet-b", "subnet-c"]));
        assert_eq!(lost(&desired, Some(&runs_in)), None);
    }
}
