//! The lock that keeps two runs off one state: who holds it, since when, its lease when the
//! backend renews it, and the guard that releases it when the command ends, also on error and
//! on Ctrl-C.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What a lock records about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub stack: String,
    /// The stack file as the holder named it, for the `force-unlock` hint.
    #[serde(default)]
    pub stack_file: String,
    /// The command that took it: `plan`, `apply`, `destroy`...
    pub operation: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// When the holder process started (clock ticks after boot, from `/proc/<pid>/stat`), so
    /// that a pid the system gave to another process since is not taken for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_started: Option<u64>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The CI job that holds it, when the environment names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
    /// When the holder last renewed a leased lock (RFC 3339, UTC, milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
    /// How long a leased lock stays valid without a heartbeat (`5m`); after that the next run
    /// may take it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

impl LockInfo {
    pub fn for_this_process(stack: &str, stack_file: &str, operation: &str) -> Self {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            stack: stack.to_string(),
            stack_file: stack_file.to_string(),
            operation: operation.to_string(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            pid: std::process::id(),
            pid_started: process_started(std::process::id()),
            created: now_secs(),
            ci_job: ci_job_url(),
            heartbeat: None,
            lease: None,
        }
    }

    /// The lock recorded in `bytes`; a lock that cannot be read still blocks, shown with what
    /// is known (`force-unlock <STACK> unreadable` removes it).
    pub fn parse_or_unreadable(bytes: &[u8], stack: &str, stack_file: &str) -> Self {
        serde_json::from_slice(bytes).unwrap_or_else(|_| LockInfo {
            id: "unreadable".into(),
            stack: stack.to_string(),
            stack_file: stack_file.to_string(),
            operation: "unknown".into(),
            user: "unknown".into(),
            host: "unknown".into(),
            pid: 0,
            pid_started: None,
            created: 0,
            ci_job: None,
            heartbeat: None,
            lease: None,
        })
    }

    /// The same lock with a lease of `lease`, renewed now.
    pub fn leased(mut self, lease: Duration) -> Self {
        self.lease = Some(humantime::format_duration(lease).to_string());
        self.renewed()
    }

    /// The same lock with its heartbeat set to now.
    pub fn renewed(mut self) -> Self {
        self.heartbeat = Some(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
        self
    }

    /// The lease, for a leased lock.
    pub fn lease(&self) -> Option<Duration> {
        humantime::parse_duration(self.lease.as_deref()?).ok()
    }

    /// How long ago the holder last renewed the lock, for a leased lock.
    pub fn since_heartbeat(&self) -> Option<Duration> {
        let at = humantime::parse_rfc3339(self.heartbeat.as_deref()?).ok()?;
        Some(SystemTime::now().duration_since(at).unwrap_or_default())
    }

    /// How long the lease still runs; zero once it expired, `None` for a lock without a lease.
    pub fn lease_left(&self) -> Option<Duration> {
        Some(self.lease()?.saturating_sub(self.since_heartbeat()?))
    }

    /// A leased lock whose holder stopped renewing it: the next run may take it over.
    pub fn is_expired(&self) -> bool {
        self.lease_left() == Some(Duration::ZERO)
    }

    /// How long ago the lock was taken: `3m 12s`, or `None` when unknown.
    pub fn age(&self) -> Option<Duration> {
        (self.created != 0).then(|| Duration::from_secs(now_secs().saturating_sub(self.created)))
    }

    /// The command to clear it: `mlops force-unlock <stack file> <id>`.
    pub fn unlock_command(&self) -> String {
        let stack = if self.stack_file.is_empty() {
            &self.stack
        } else {
            &self.stack_file
        };
        format!("mlops force-unlock {stack} {}", self.id)
    }

    /// `root@builder (pid 4242, \`apply\`, 3m 12s ago, last heartbeat 4s ago, lock id ...)`
    pub fn describe(&self) -> String {
        let age = match self.age() {
            Some(age) => format!("{} ago", humantime::format_duration(age)),
            None => "age unknown".to_string(),
        };
        let heartbeat = self
            .since_heartbeat()
            .map(|d| format!(", last heartbeat {} ago", whole_seconds(d)))
            .unwrap_or_default();
        let job = self
            .ci_job
            .as_ref()
            .map(|j| format!(", job {j}"))
            .unwrap_or_default();
        format!(
            "{}@{} (pid {}, `{}`, {age}{heartbeat}{job}, lock id {})",
            self.user, self.host, self.pid, self.operation, self.id
        )
    }

    /// True when the holder ran on this host and its process is gone: no process has its
    /// pid, or the one that has it started at another time (known only where `/proc` lists
    /// processes).
    pub fn is_stale_here(&self) -> bool {
        if !Path::new("/proc/self").exists() || self.host != hostname() {
            return false;
        }
        match process_started(self.pid) {
            None => true,
            Some(started) => self.pid_started.is_some_and(|s| s != started),
        }
    }
}

/// `3s`, `4m 12s`: a duration without its fractions, as people read ages.
pub fn whole_seconds(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When process `pid` started, in clock ticks after boot (field 22 of `/proc/<pid>/stat`);
/// `None` when no such process runs.
fn process_started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The URL of the CI job running this process, for GitHub Actions and GitLab CI.
fn ci_job_url() -> Option<String> {
    if let Ok(url) = std::env::var("CI_JOB_URL") {
        return Some(url);
    }
    let var = |name| std::env::var(name).ok();
    Some(format!(
        "{}/{}/actions/runs/{}",
        var("GITHUB_SERVER_URL")?,
        var("GITHUB_REPOSITORY")?,
        var("GITHUB_RUN_ID")?
    ))
}

/// A held lock. Dropping it releases the lock, if the lock is still this run's: the backend's
/// `release` value does that in its own `Drop`.
pub struct LockGuard {
    info: LockInfo,
    taken_over: Option<LockInfo>,
    _release: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("info", &self.info)
            .field("taken_over", &self.taken_over)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    pub(super) fn new(
        info: LockInfo,
        taken_over: Option<LockInfo>,
        release: impl Send + Sync + 'static,
    ) -> Self {
        LockGuard {
            info,
            taken_over,
            _release: Box::new(release),
        }
    }

    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// The lock this run took over because its lease had expired: whose it was.
    pub fn taken_over(&self) -> Option<&LockInfo> {
        self.taken_over.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_when_the_heartbeat_is_older_than_the_lease() {
        let fresh =
            LockInfo::for_this_process("t", "t.toml", "apply").leased(Duration::from_secs(300));
        assert!(!fresh.is_expired());
        assert!(fresh.lease_left().unwrap() > Duration::from_secs(299));
        assert!(fresh.describe().contains("last heartbeat 0s ago"));

        let mut old = fresh.clone();
        let then = SystemTime::now() - Duration::from_secs(301);
        old.heartbeat = Some(humantime::format_rfc3339_millis(then).to_string());
        assert!(old.is_expired());
        assert_eq!(old.lease_left(), Some(Duration::ZERO));
        assert!(old.describe().contains("last heartbeat 5m 1s ago"));

        let unleased = LockInfo::for_this_process("t", "t.toml", "apply");
        assert!(!unleased.is_expired());
        assert_eq!(unleased.lease_left(), None);
        assert!(!unleased.describe().contains("heartbeat"));
    }
}
