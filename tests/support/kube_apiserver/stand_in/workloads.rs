//! The deployment, statefulset and daemonset controllers and the kubelet, as far as a status
//! goes: a new generation first shows as a rollout that has started (`observedGeneration`
//! new, no replica updated yet, the old pods' availability kept) for at least [`ROLLOUT`];
//! only after that, and only if its pods have all they need ([`super::pods::missing`]), are
//! all replicas updated and available (`availableReplicas` equal to the replicas). One
//! generation at a time: a change made meanwhile starts a new rollout.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a rollout of a new generation takes at least.
pub const ROLLOUT: Duration = Duration::from_millis(600);

/// The three kinds of workload, with the names of their counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }
}

/// Where a workload stands, for its status.
pub struct Standing {
    /// When the stand-in first saw the current generation.
    pub since: Instant,
    /// Why its new pods cannot run (a missing Secret..., or held by the test), if they cannot.
    pub blocked: Option<String>,
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The replicas wanted: `spec.replicas` (default 1); one node's worth for a DaemonSet.
fn wanted(kind: Kind, workload: &Value) -> i64 {
    match kind {
        Kind::DaemonSet => 1,
        _ => workload["spec"]["replicas"].as_i64().unwrap_or(1),
    }
}

/// The replicas available now, by the live status.
fn available_now(kind: Kind, workload: &Value) -> i64 {
    let status = &workload["status"];
    match kind {
        Kind::DaemonSet => int(&status["numberAvailable"]),
        _ => int(&status["availableReplicas"]),
    }
}

/// Available by its live status: the current generation observed, every replica updated and
/// available.
pub fn is_available(kind: Kind, workload: &Value) -> bool {
    let status = &workload["status"];
    let updated = match kind {
        Kind::DaemonSet => int(&status["updatedNumberScheduled"]),
        _ => int(&status["updatedReplicas"]),
    };
    let want = wanted(kind, workload);
    status["observedGeneration"] == workload["metadata"]["generation"]
        && updated >= want
        && available_now(kind, workload) >= want
}

/// The status the controllers would write now, or `None` when the live one already says it.
pub fn next_status(kind: Kind, workload: &Value, standing: &Standing) -> Option<Value> {
    let generation = &workload["metadata"]["generation"];
    let want = wanted(kind, workload);
    let seen = workload["status"]["observedGeneration"] == *generation;
    let done = seen && standing.since.elapsed() >= ROLLOUT && standing.blocked.is_none();
    let (updated, available) = if done {
        (want, want)
    } else if seen && standing.since.elapsed() >= ROLLOUT {
        // The new pods exist but do not run; the old ones are gone (a stricter rollout than
        // maxUnavailable would allow, never a kinder one).
        (want, 0)
    } else {
        (0, available_now(kind, workload).min(want))
    };
    let status = status(kind, generation, want, updated, available, standing);
    let live = &workload["status"];
    let same = status
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| *key != "conditions")
        // The server leaves out counters that are 0 (`omitempty`).
        .all(|(key, value)| int(&live[key]) == int(value))
        && available_condition(live) == available_condition(&status);
    (!same).then_some(status)
}

/// The `Available` condition's status and message.
fn available_condition(status: &Value) -> Option<(Value, Value)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Available")
        .map(|c| (c["status"].clone(), c["message"].clone()))
}

fn status(
    kind: Kind,
    generation: &Value,
    want: i64,
    updated: i64,
    available: i64,
    standing: &Standing,
) -> Value {
    match kind {
        Kind::Deployment => {
            let now = k8s_openapi::chrono::Utc::now().to_rfc3339();
            let condition = |type_: &str, ok: bool, reason: &str, message: String| {
                json!({"type": type_, "status": if ok { "True" } else { "False" },
                       "reason": reason, "message": message,
                       "lastTransitionTime": now, "lastUpdateTime": now})
            };
            let available_condition = if available >= want {
                condition(
                    "Available",
                    true,
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.".into(),
                )
            } else {
                condition(
                    "Available",
                    false,
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.".into(),
                )
            };
            let progressing = match (&standing.blocked, updated >= want) {
                (Some(why), true) => condition(
                    "Progressing",
                    true,
                    "ReplicaSetUpdated",
                    format!("pods not ready: {why}"),
                ),
                (_, false) => condition(
                    "Progressing",
                    true,
                    "ReplicaSetUpdated",
                    "ReplicaSet is progressing.".into(),
                ),
                (None, true) => condition(
                    "Progressing",
                    true,
                    "NewReplicaSetAvailable",
                    "ReplicaSet has successfully progressed.".into(),
                ),
            };
            json!({
                "observedGeneration": generation,
                "replicas": want,
                "updatedReplicas": updated,
                "readyReplicas": available,
                "availableReplicas": available,
                "unavailableReplicas": want - available,
                "conditions": [available_condition, progressing],
            })
        }
        Kind::StatefulSet => json!({
            "observedGeneration": generation,
            "replicas": want,
            "currentReplicas": updated,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
        }),
        Kind::DaemonSet => json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1,
            "numberMisscheduled": 0,
            "updatedNumberScheduled": updated,
            "numberReady": available,
            "numberAvailable": available,
            "numberUnavailable": 1 - available,
        }),
    }
}
