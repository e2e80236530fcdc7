//! `mlops state mv` and `mlops state rm`: edits of the state alone, under the lock. A move gives
//! an object another address (a resource renamed in the spec, without a `[[moved]]` entry); a
//! removal forgets an object, which stays in AWS. Neither calls AWS.

use super::Stack;
use crate::base::Reporter;
use crate::model::{Address, ResourceKind};
use crate::plan::closest;
use crate::state::State;
use crate::{Error, Result};

/// One edit of the state.
#[derive(Debug, Clone, PartialEq)]
pub enum StateEdit {
    Move { from: Address, to: Address },
    Remove { address: Address },
}

impl StateEdit {
    /// The command that holds the lock while it makes the edit.
    fn command(&self) -> &'static str {
        match self {
            StateEdit::Move { .. } => "state mv",
            StateEdit::Remove { .. } => "state rm",
        }
    }

    /// The edit as a plan line: `# a has moved to b`, `# a will be forgotten ...`.
    pub fn describe(&self, state: &State) -> String {
        match self {
            StateEdit::Move { from, to } => format!("# {from} has moved to {to}"),
            StateEdit::Remove { address } => format!(
                "# {address} will be forgotten: removed from the state, `{}` stays in AWS",
                state.resources.get(address).map_or("", |r| r.id.as_str())
            ),
        }
    }
}

/// Makes `edit` on the state, under the stack's lock (a lock taken over is said to
/// `reporter`), and saves it unless `dry_run`. Returns the state as it was and its serial after
/// the write.
pub async fn edit_state(
    stack: &Stack,
    reporter: &dyn Reporter,
    edit: &StateEdit,
    dry_run: bool,
) -> Result<(State, u64)> {
    let (_lock, before) = stack.lock_state(edit.command(), reporter).await?;
    let mut state = before.clone();
    let missing = |address: &Address| {
        Error::refused(
            format!(
                "the state of stack `{}` has no resource `{address}`",
                before.stack
            ),
            match closest(address, before.resources.keys()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "`mlops state list` lists the addresses in the state".into(),
            },
        )
    };
    match edit {
        StateEdit::Move { from, to } => {
            let kind = state.resources.get(from).ok_or_else(|| missing(from))?.kind;
            if to.kind_name().parse::<ResourceKind>() != Ok(kind) {
                return Err(Error::refused(
                    format!("`{from}` is a `{kind}`; it cannot move to `{to}`"),
                    format!("the new address starts with `{kind}.`, e.g. `{kind}.new-name`"),
                ));
            }
            if !state.rename(from, to) {
                return Err(Error::refused(
                    format!("the state already has a resource `{to}`"),
                    format!("`mlops state show {} {to}` shows it; `mlops state rm` forgets it first if it is stale", stack.spec.path.display()),
                ));
            }
        }
        StateEdit::Remove { address } => {
            state
                .resources
                .remove(address)
                .ok_or_else(|| missing(address))?;
        }
    }
    if !dry_run {
        state.outputs = crate::state::outputs(&state);
        stack.store.save(&mut state).await?;
    }
    Ok((before, state.serial))
}
