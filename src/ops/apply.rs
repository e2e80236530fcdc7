//! Applying a plan: run it through the executor and turn the outcome into a summary or an
//! error that keeps every failure, with the state saved as far as it got.

use std::time::{Duration, Instant};

use super::{Session, Stack};
use crate::exec::{self, Outcome};
use crate::plan::{Plan, Summary};
use crate::state::State;
use crate::{Error, Result};

/// A finished run.
#[derive(Debug)]
pub struct Applied {
    pub summary: Summary,
    pub elapsed: Duration,
}

pub async fn apply(stack: &Stack, plan: &Plan, state: State, session: &Session) -> Result<Applied> {
    let started = Instant::now();
    let env = session.env(&stack.spec.stack.name).await;
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
