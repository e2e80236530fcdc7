//! What `mlops` knows exists: per resource its address, kind, cloud id, last-known attributes
//! and dependencies, plus the stack's outputs. Split as Terraform's `states/`: the model here,
//! the versioned file format in `format`, storage and locking behind `StateStore` in `local`
//! (a file) and `s3` (an object, locked by a leased lock object).
//!
//! Dependencies are recorded per resource so that a resource that left the spec is still
//! destroyed in the right order.

mod format;
mod local;
mod lock;
mod outputs;
mod s3;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base::ProviderError;
use crate::model::{Address, Attrs, ResourceKind};

pub use format::{parse, FORMAT_VERSION};
pub use local::LocalStore;
pub use lock::{whole_seconds, LockGuard, LockInfo};
pub use outputs::outputs;
pub use s3::{S3Location, S3Store};

/// The whole state of one stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    /// Increases by one on every write.
    pub serial: u64,
    /// Fixed when the state is first created; a state with another lineage is another history.
    pub lineage: String,
    pub stack: String,
    pub resources: BTreeMap<Address, ResourceState>,
    /// Values for `mlops output`, recomputed from the resources on every write.
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
}

/// One resource that exists in the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    pub kind: ResourceKind,
    /// The cloud's id: a VPC id, an ARN, a bucket name...
    pub id: String,
    /// Last-known attributes: the desired ones as applied, plus computed ones (ARN, endpoint...).
    pub attrs: Attrs,
    #[serde(default)]
    pub deps: Vec<Address>,
    /// Created, but the wait until it is ready has not finished: the run that made it was
    /// stopped (Ctrl-C, a kill, a failed wait) between the create call and the object's being
    /// ready. The next plan resumes that wait rather than trusting the object to be done.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

impl State {
    /// A new, empty state for `stack` with a fresh lineage.
    pub fn new(stack: &str) -> Self {
        State {
            format_version: FORMAT_VERSION,
            serial: 0,
            lineage: uuid::Uuid::new_v4().to_string(),
            stack: stack.to_string(),
            resources: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// Gives the resource at `from` the address `to`, and every dependency on it the new name.
    /// `false`, changing nothing, when there is no `from` or `to` is taken.
    pub fn rename(&mut self, from: &Address, to: &Address) -> bool {
        if self.resources.contains_key(to) {
            return false;
        }
        let Some(resource) = self.resources.remove(from) else {
            return false;
        };
        self.resources.insert(to.clone(), resource);
        for other in self.resources.values_mut() {
            for dep in other.deps.iter_mut().filter(|d| *d == from) {
                *dep = to.clone();
            }
            other.deps.sort();
        }
        true
    }

    /// Another address that holds the same object (same kind and cloud id) as `address`.
    pub fn same_object(&self, address: &Address) -> Option<&Address> {
        let resource = self.resources.get(address)?;
        self.holder(resource.kind, &resource.id, address)
    }

    /// The address other than `except` that holds the object `id` of `kind`, if any.
    pub fn holder(&self, kind: ResourceKind, id: &str, except: &Address) -> Option<&Address> {
        self.resources
            .iter()
            .find(|(a, r)| *a != except && r.kind == kind && r.id == id)
            .map(|(a, _)| a)
    }

    /// The value of `attr` of the resource at `address`: `id` is the cloud id, `account_id` the
    /// account in its `arn`.
    pub fn attr(&self, address: &Address, attr: &str) -> Option<Value> {
        let resource = self.resources.get(address)?;
        if attr == "id" {
            return Some(Value::String(resource.id.clone()));
        }
        if attr == "account_id" {
            // Derived: the account field of the resource's ARN (`arn:aws:iam::<account>:...`).
            let arn = resource.attrs.get("arn")?.as_str()?;
            return arn.split(':').nth(4).map(|a| Value::String(a.to_string()));
        }
        resource.attrs.get(attr).cloned()
    }
}

/// Everything that can go wrong reading, writing or locking a state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} the state file `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file `{}` is not valid: {message}{}", path.display(), position(*line, *column))]
    Corrupt {
        path: PathBuf,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("the state file `{}` has format version {found}, newer than this mlops understands ({FORMAT_VERSION})", path.display())]
    NewerFormat { path: PathBuf, found: u64 },
    #[error("the state file `{}` belongs to stack `{found}`, not `{expected}`", path.display())]
    OtherStack {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("the state `{}` is locked by {}", path.display(), holder.describe())]
    Locked {
        path: PathBuf,
        holder: Box<LockInfo>,
    },
    #[error("the lock on `{}` has another id than `{given}`: it is held by {}", path.display(), holder.describe())]
    LockIdMismatch {
        path: PathBuf,
        given: String,
        holder: Box<LockInfo>,
    },
    #[error("the state `{}` is not locked", path.display())]
    NotLocked { path: PathBuf },
    /// A conditional write found the state changed since this run read it.
    #[error("the state `{}` was changed by another run since this run read it; this run's write was refused", path.display())]
    Conflict { path: PathBuf, stack_file: String },
    #[error("the state bucket `{bucket}` does not exist (region {region})")]
    NoBucket {
        bucket: String,
        region: String,
        stack_file: String,
    },
    /// A call to the remote backend failed.
    #[error("cannot {action} `{}`: {error}", path.display())]
    Remote {
        action: &'static str,
        path: PathBuf,
        error: ProviderError,
    },
}

/// ` (line L, column C)` when the parser knows where.
fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    }
}

impl StateError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Corrupt { path, .. } => Some(format!(
                "restore `{}` from a backup; mlops never writes a partial state, so the file was changed by hand or by another tool",
                path.display()
            )),
            StateError::NewerFormat { .. } => {
                Some("upgrade mlops to the version that wrote this state".into())
            }
            StateError::OtherStack { .. } => Some(
                "two stacks must not share a state file: set `[state] path` in one of them".into(),
            ),
            StateError::Locked { holder, .. } => Some(if let Some(left) = holder.lease_left() {
                format!(
                    "wait for that run to finish; if it is gone, its lease runs out in {} and the next run takes the lock over, or run `{}` now",
                    whole_seconds(left),
                    holder.unlock_command()
                )
            } else if holder.is_stale_here() {
                format!(
                    "process {} is no longer running on this host; if no other run is using the stack, run `{}`",
                    holder.pid,
                    holder.unlock_command()
                )
            } else {
                format!(
                    "wait for that run to finish; if it is gone, run `{}`",
                    holder.unlock_command()
                )
            }),
            StateError::LockIdMismatch { holder, .. } => Some(format!(
                "the current lock id is `{}`; check that no run holds it before removing it",
                holder.id
            )),
            StateError::Conflict { stack_file, .. } => Some(format!(
                "this run lost its lock (taken over or force-unlocked) and the newer state is kept; `mlops lock status {stack_file}` shows who holds it now, and the next apply adopts what this run created (its objects carry the stack's tags)"
            )),
            StateError::NoBucket { stack_file, .. } => Some(format!(
                "create it with `mlops backend create {stack_file}` (versioned, encrypted, private)"
            )),
            StateError::Remote { error, .. } => match error.code.as_deref() {
                Some("PermanentRedirect" | "AuthorizationHeaderMalformed") => Some(
                    "the state bucket is in another region: set `[state] region` to its region"
                        .into(),
                ),
                _ => error.hint().map(str::to_string),
            },
            _ => None,
        }
    }
}

/// Where a stack's state lives and how it is locked: a local file or an S3 object. The trait
/// keeps the executor and the commands independent of the backend.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// A human-readable location, for messages.
    fn describe(&self) -> String;
    /// The stored state, or `None` when the stack has never been applied.
    async fn load(&self) -> Result<Option<State>, StateError>;
    /// Writes `state` atomically with the next serial; updates `state.serial`. A backend that
    /// can tell refuses to overwrite a state written by another run since this one read it.
    async fn save(&self, state: &mut State) -> Result<(), StateError>;
    /// Takes the exclusive lock for one command; released when the guard is dropped.
    async fn lock(&self, operation: &str) -> Result<LockGuard, StateError>;
    /// The lock as it is now, or `None` when nobody holds it.
    async fn lock_status(&self) -> Result<Option<LockInfo>, StateError>;
    /// Removes a lock left by a run that is gone, if `id` matches it.
    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError>;
    /// Called under the lock `_lock`: moves a state found only where an older rule put it to
    /// where it belongs now, and says what it did or what the user should know, if anything.
    async fn relocate(&self, _lock: &LockGuard) -> Result<Option<String>, StateError> {
        Ok(None)
    }
}
