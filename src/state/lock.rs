//! The lock that keeps two runs off one state: who holds it, since when, and the guard that
//! releases it when the command ends, also on error.

use std::path::{Path, PathBuf};
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
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The CI job that holds it, when the environment names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
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
            created: now_secs(),
            ci_job: ci_job_url(),
        }
    }

    /// `root@builder (pid 4242, \`apply\`, 3m 12s ago, lock id ...)`
    ///
    /// The command to clear it: `mlops force-unlock <stack file> <id>`.
    pub fn unlock_command(&self) -> String {
        let stack = if self.stack_file.is_empty() {
            &self.stack
        } else {
            &self.stack_file
        };
        format!("mlops force-unlock {stack} {}", self.id)
    }

    pub fn describe(&self) -> String {
        let age = if self.created == 0 {
            "age unknown".to_string()
        } else {
            let secs = now_secs().saturating_sub(self.created);
            format!(
                "{} ago",
                humantime::format_duration(Duration::from_secs(secs))
            )
        };
        let job = self
            .ci_job
            .as_ref()
            .map(|j| format!(", job {j}"))
            .unwrap_or_default();
        format!(
            "{}@{} (pid {}, `{}`, {age}{job}, lock id {})",
            self.user, self.host, self.pid, self.operation, self.id
        )
    }

    /// True when the holder ran on this host and its process is gone (known only where
    /// `/proc` lists processes).
    pub fn is_stale_here(&self) -> bool {
        Path::new("/proc/self").exists()
            && self.host == hostname()
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

/// Holds a lock file; removes it when dropped, if the file still holds this lock.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    info: LockInfo,
}

impl LockGuard {
    pub(super) fn new(path: PathBuf, info: LockInfo) -> Self {
        LockGuard { path, info }
    }

    pub fn info(&self) -> &LockInfo {
        &self.info
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let still_ours = std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok())
            .is_some_and(|held| held.id == self.info.id);
        if still_ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
