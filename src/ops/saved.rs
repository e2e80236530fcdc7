//! Saved plans (`mlops plan --out FILE`, `mlops apply FILE`, `mlops show FILE`): the plan with
//! the stack file it came from, that file's digest, and the state serial and lineage it was made
//! against, so that applying it after the spec or the state moved on is refused, not guessed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Session, Stack};
use crate::plan::Plan;
use crate::state::{LockGuard, State};
use crate::{Error, Result};

/// 3: plans carry moves, protected changes and refresh-only plans, which an older mlops would
/// apply without knowing them.
const SAVED_PLAN_FORMAT: u32 = 3;

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub stack_file: String,
    /// SHA-256 of the stack file when the plan was made.
    pub stack_sha256: String,
    pub plan: Plan,
}

/// Writes the plan atomically next to its final name.
pub fn save_plan(stack: &Stack, plan: &Plan, out: &Path) -> Result<()> {
    let saved = SavedPlan {
        format_version: SAVED_PLAN_FORMAT,
        stack_file: stack.spec.path.display().to_string(),
        stack_sha256: stack.spec.digest.clone(),
        plan: plan.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&saved).expect("plans serialize");
    let io = |source| Error::Io {
        action: "write the plan to",
        path: out.display().to_string(),
        source,
    };
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, out).map_err(io)
}

/// Reads `path` if it is a saved plan; `None` when it is not one (a stack file or name).
pub fn load_plan(path: &Path) -> Result<Option<SavedPlan>> {
    if path.extension().is_some_and(|e| e == "toml") || !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read the plan",
        path: path.display().to_string(),
        source,
    })?;
    let saved: SavedPlan = serde_json::from_str(&text).map_err(|e| {
        Error::refused(
            format!(
                "`{}` is neither a stack file nor a plan saved by `mlops plan --out`: {e}",
                path.display()
            ),
            "pass a stack file (`stacks/<name>.toml`), a bare stack name, or a saved plan",
        )
    })?;
    if saved.format_version != SAVED_PLAN_FORMAT {
        return Err(Error::refused(
            format!(
                "the plan `{}` was saved in format {}, this mlops reads {SAVED_PLAN_FORMAT}",
                path.display(),
                saved.format_version
            ),
            "make the plan again with this mlops",
        ));
    }
    Ok(Some(saved))
}

impl SavedPlan {
    /// Takes the stack's lock for `apply` and loads its state, refusing the plan when that
    /// state or the stack file is not the one it was made against: what `apply FILE` does
    /// before it executes. Returns the lock, which the apply keeps, and the state.
    pub async fn lock_current(
        &self,
        stack: &Stack,
        session: &Session,
    ) -> Result<(LockGuard, State)> {
        let (lock, state) = stack.lock_state("apply", session.reporter.as_ref()).await?;
        self.check_current(stack, &state)?;
        Ok((lock, state))
    }

    /// Refuses the plan when the state it was made against is not the current one.
    fn check_current(&self, stack: &Stack, state: &State) -> Result<()> {
        if self.plan.stack != stack.spec.stack.name {
            return Err(Error::refused(
                format!(
                    "the plan is for stack `{}`, not `{}`",
                    self.plan.stack, stack.spec.stack.name
                ),
                "apply a plan made for this stack",
            ));
        }
        if self.stack_sha256 != stack.spec.digest {
            return Err(Error::refused(
                format!(
                    "`{}` changed since the plan was made; nothing was changed",
                    self.stack_file
                ),
                format!(
                    "run `mlops plan {} --out FILE` again and apply the new plan",
                    self.stack_file
                ),
            ));
        }
        let lineage_now = (state.serial > 0).then(|| state.lineage.clone());
        if self.plan.state_serial != state.serial || self.plan.state_lineage != lineage_now {
            return Err(Error::refused(
                format!(
                    "the state changed since the plan was made (serial {} then, {} now); nothing was changed",
                    self.plan.state_serial, state.serial
                ),
                format!("run `mlops plan {} --out FILE` again and apply the new plan", self.stack_file),
            ));
        }
        Ok(())
    }
}
