//! Progress without printing: the executor, the providers and the commands of `ops` tell a
//! `Reporter` what happens, and the UI decides how to show it (spinners on a terminal,
//! timestamped lines in CI, JSON, a live line per stack).

use std::time::Duration;

use crate::model::Address;

/// The operation on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Reading live attributes during a refresh.
    Read,
    Delete,
    Create,
    Update,
}

impl Op {
    /// `creating`, `updating`, `destroying`.
    pub fn doing(self) -> &'static str {
        match self {
            Op::Read => "reading",
            Op::Delete => "destroying",
            Op::Create => "creating",
            Op::Update => "updating",
        }
    }

    /// `created`, `updated`, `destroyed`.
    pub fn done(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Delete => "destroyed",
            Op::Create => "created",
            Op::Update => "updated",
        }
    }

    /// `create`, `update`, `destroy`.
    pub fn verb(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Delete => "destroy",
            Op::Create => "create",
            Op::Update => "update",
        }
    }
}

/// How often a long wait says it is still going on.
pub const STILL_WAITING_EVERY: Duration = Duration::from_secs(30);

pub trait Reporter: Send + Sync {
    fn started(&self, address: &Address, op: Op);
    /// A long wait began: `what` says for what (`for the cluster to become ACTIVE`).
    fn waiting(&self, address: &Address, what: &str);
    /// A long wait is still going on; said every `STILL_WAITING_EVERY`, so that a log without
    /// a terminal shows that the run is alive (CI services kill jobs silent for 10 minutes).
    fn still_waiting(&self, _address: &Address) {}
    /// A "not yet" error is being retried after `delay`.
    fn retrying(&self, address: &Address, error: &str, delay: Duration);
    /// An object an earlier run created without recording it was taken over.
    fn adopted(&self, address: &Address, id: &str);
    fn finished(&self, address: &Address, op: Op, elapsed: Duration);
    fn failed(&self, address: &Address, op: Op, error: &str);
    /// Ctrl-C: `in_flight` operations are being finished.
    fn interrupted(&self, in_flight: usize);
    /// Something the user should know that does not stop the command (a lock taken over).
    fn warning(&self, message: &str);
    /// What the command is at for the stack, before its operations begin (`locking`,
    /// `refreshing`): shown where a stack has a line of its own, among many.
    fn phase(&self, _phase: &str) {}
}
