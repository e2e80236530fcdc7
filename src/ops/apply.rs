//! Applying a plan: run it through the executor and turn the outcome into a summary or an
//! error that keeps every failure, with the state saved as far as it got.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{Session, Stack};
use crate::exec::{self, Outcome};
use crate::model::Address;
use crate::plan::{gate, Plan, Summary};
use crate::state::State;
use crate::{Error, Result};

/// A finished run.
#[derive(Debug)]
pub struct Applied {
    pub summary: Summary,
    pub elapsed: Duration,
}

/// Applies `plan` to `state`, the state it was made from. The replacement gate is checked
/// first, against `allowed` (`--allow-replace`), before anything is written; then the plan's
/// moves are recorded, then its changes are made (a refresh-only plan only writes the state).
pub async fn apply(
    stack: &Stack,
    plan: &Plan,
    mut state: State,
    session: &Session,
    allowed: &BTreeSet<Address>,
) -> Result<Applied> {
    let started = Instant::now();
    gate::check(plan, allowed)?;
    if plan.refresh_only {
        let mut written = crate::plan::written(state, plan);
        save(stack, &mut written).await?;
        return Ok(Applied {
            summary: plan.summary(),
            elapsed: started.elapsed(),
        });
    }
    for moved in &plan.moves {
        if !state.rename(&moved.from, &moved.to) {
            return Err(Error::refused(
                format!(
                    "cannot move `{}` to `{}` in the state: the state changed since the plan was made; nothing was changed",
                    moved.from, moved.to
                ),
                "plan again",
            ));
        }
    }
    if !plan.moves.is_empty() {
        // Recorded before any other change: what follows already uses the new addresses.
        save(stack, &mut state).await?;
    }
    let env = session.env(&stack.spec).await;
    let outcome: Outcome = exec::apply(plan, state, stack.store.as_ref(), &env).await;
    if let Some(error) = outcome.save_error {
        return Err(error.into());
    }
    if outcome.interrupted {
        return Err(Error::Interrupted {
            done: outcome.done,
            skipped: outcome.skipped,
        });
    }
    if !outcome.errors.is_empty() {
        return Err(Error::Apply {
            errors: outcome.errors,
            done: outcome.done,
            skipped: outcome.skipped,
        });
    }
    Ok(Applied {
        summary: plan.summary(),
        elapsed: started.elapsed(),
    })
}

/// Saves `state` with its outputs recomputed.
async fn save(stack: &Stack, state: &mut State) -> Result<()> {
    state.outputs = crate::state::outputs(state);
    Ok(stack.store.save(state).await?)
}
