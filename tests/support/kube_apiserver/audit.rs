//! The API server's audit log read back as the writes a client made: the independent check
//! that, for example, a re-apply with nothing to change sends no request at all, whatever
//! `mlops` itself believes it sent.
//!
//! An event is written (blocking mode) when its request completes, which can be a moment after
//! the client has read the response. So [`RealApiServer::mark`] and
//! [`RealApiServer::writes_since`] first make an audit barrier: a GET of
//! `/mlops-audit-barrier/<n>` (the policy audits it; the server answers 404), then wait until
//! its event is in the log. A request that completed before the barrier was sent is logged
//! before it.

use std::fmt;
use std::fs;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{RealApiServer, ADMIN_USER};

const BARRIER_TIMEOUT: Duration = Duration::from_secs(10);
const MUTATING_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// A position in the audit log: what was logged before it is not "since".
#[derive(Debug, Clone, Copy)]
pub struct AuditMark(usize);

impl AuditMark {
    /// The start of the log: everything written since the server started.
    pub const START: AuditMark = AuditMark(0);
}

/// One mutating request (not a dry run) of the kubeconfig's user, from the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditWrite {
    /// `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// The resource's plural with its subresource, if any: `deployments/status`.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The HTTP status of the response.
    pub code: u16,
}

impl fmt::Display for AuditWrite {
    /// `patch deployments.apps team-a/web (200)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if !self.api_group.is_empty() {
            write!(f, ".{}", self.api_group)?;
        }
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => write!(f, " {ns}/{name}")?,
            (Some(ns), None) => write!(f, " in {ns}")?,
            (None, Some(name)) => write!(f, " {name}")?,
            (None, None) => {}
        }
        write!(f, " ({})", self.code)
    }
}

/// The fields of an audit event (`audit.k8s.io/v1` `Event`) used here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    verb: String,
    #[serde(rename = "requestURI")]
    request_uri: String,
    user: User,
    object_ref: Option<ObjectRef>,
    response_status: Option<ResponseStatus>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    api_group: String,
    namespace: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct ResponseStatus {
    #[serde(default)]
    code: u16,
}

/// A dry run is said in the query: `?dryRun=All`.
fn is_dry_run(request_uri: &str) -> bool {
    request_uri
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("dryRun=")))
}

fn write_of(event: Event) -> Option<AuditWrite> {
    if event.user.username != ADMIN_USER
        || !MUTATING_VERBS.contains(&event.verb.as_str())
        || is_dry_run(&event.request_uri)
    {
        return None;
    }
    let object = event.object_ref?;
    let resource = if object.subresource.is_empty() {
        object.resource
    } else {
        format!("{}/{}", object.resource, object.subresource)
    };
    Some(AuditWrite {
        verb: event.verb,
        api_group: object.api_group,
        resource,
        namespace: object.namespace,
        name: object.name,
        code: event.response_status.map_or(0, |s| s.code),
    })
}

impl RealApiServer {
    /// The end of the audit log now: pass it to [`Self::writes_since`].
    pub fn mark(&self) -> AuditMark {
        let (_, end) = self.barrier();
        AuditMark(end)
    }

    /// The writes of the kubeconfig's user that completed after `mark`, oldest first: verbs
    /// create, update, patch, delete, deletecollection, dry runs left out, refused ones kept
    /// (their code says so). The stand-in writes as another user and is not counted. On a
    /// shared server, other tests write too: filter by namespace.
    pub fn writes_since(&self, mark: AuditMark) -> Vec<AuditWrite> {
        let (log, end) = self.barrier();
        log[mark.0..end]
            .lines()
            .filter_map(|line| {
                let event: Event = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("audit log line `{line}`: {e}"));
                write_of(event)
            })
            .collect()
    }

    /// Makes a barrier request and waits until it is logged: the log then, and the offset
    /// just past the barrier's line.
    fn barrier(&self) -> (String, usize) {
        let n = self.barriers.fetch_add(1, Ordering::Relaxed);
        let path = format!("/mlops-audit-barrier/{n}");
        let needle = format!("\"requestURI\":\"{path}\"");
        assert!(
            self.get(&path).is_none(),
            "{path} unexpectedly answered 200"
        );
        let deadline = Instant::now() + BARRIER_TIMEOUT;
        loop {
            let log = fs::read_to_string(&self.audit_log).unwrap_or_default();
            if let Some(at) = log.find(&needle) {
                let end = log[at..].find('\n').map_or(log.len(), |i| at + i + 1);
                return (log, end);
            }
            assert!(
                Instant::now() < deadline,
                "the audit event of {path} is not in {} after {BARRIER_TIMEOUT:?}",
                self.audit_log.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
