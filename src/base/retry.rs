//! The one retry loop: exponential backoff with full jitter, around ONE API call (or one
//! read), never around a sequence of calls, so that a retry never repeats a call that
//! succeeded (a second `CreateVpc` would leave an orphan VPC).
//!
//! What is retried, and for how long (`docs/architecture.md`, "Retries"):
//! - "not yet" errors (IAM eventual consistency, a dependency still being deleted, throttling
//!   that outlived the SDK's own retries): for the policy's `budget`;
//! - calls whose outcome is unknown (no answer, a 5xx, after the SDK's own retries): until
//!   `TRANSIENT_ATTEMPTS` of them (a create that a repeat could double looks its object up
//!   first: `providers::aws::create_once`);
//! - with `run_on_new`, NotFound too, for `NEW_OBJECT_BUDGET` (or the policy's budget if
//!   shorter): EC2, IAM and EKS answer NotFound for a while to calls that name an object they
//!   have just created.
//!
//! Errors that cannot succeed are never retried.

use std::future::Future;
use std::time::Duration;

use super::{ErrorClass, ProviderError, Reporter};
use crate::model::Address;

/// How many answers that never came (or 5xx) a call may meet before the error stands: as many
/// as the SDK's own attempts, since the creates that `create_once` sends go without them.
const TRANSIENT_ATTEMPTS: u32 = 8;

/// How long NotFound is retried on an object just created: terraform-provider-aws's
/// `PropagationTimeout` (2 min) for the same calls.
pub const NEW_OBJECT_BUDGET: Duration = Duration::from_secs(120);

/// How long to keep retrying an error that means "not yet", by default.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Give up once this much time has passed.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            budget: DEFAULT_RETRY_BUDGET,
        }
    }
}

impl RetryPolicy {
    /// Runs `call` until it succeeds or fails with an error not worth retrying.
    pub async fn run<T, F, Fut>(
        &self,
        reporter: &dyn Reporter,
        address: &Address,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        self.retry(reporter, address, false, call).await
    }

    /// `run` for a call on an object that was just created: NotFound is retried too, for
    /// `NEW_OBJECT_BUDGET`.
    pub async fn run_on_new<T, F, Fut>(
        &self,
        reporter: &dyn Reporter,
        address: &Address,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        self.retry(reporter, address, true, call).await
    }

    async fn retry<T, F, Fut>(
        &self,
        reporter: &dyn Reporter,
        address: &Address,
        new_object: bool,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        self.attempt(
            |e: &ProviderError| e.class,
            new_object,
            |e, delay| reporter.retrying(address, &e.to_string(), delay),
            call,
        )
        .await
    }

    /// The loop itself, for any error: `class` says what an error means for a retry (the
    /// Kubernetes layer classes its own), `retrying` hears of each pause before it is taken.
    pub async fn attempt<T, E, F, Fut>(
        &self,
        class: impl Fn(&E) -> ErrorClass,
        new_object: bool,
        mut retrying: impl FnMut(&E, Duration),
        mut call: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = tokio::time::Instant::now();
        let mut ceiling = self.first_delay;
        let mut unanswered = 0;
        loop {
            let worth_it = |class: ErrorClass, unanswered: u32| match class {
                ErrorClass::Propagating => started.elapsed() < self.budget,
                ErrorClass::Transient => unanswered < TRANSIENT_ATTEMPTS,
                ErrorClass::NotFound => {
                    new_object && started.elapsed() < self.budget.min(NEW_OBJECT_BUDGET)
                }
                ErrorClass::Fatal => false,
            };
            let result = call().await;
            let again = match &result {
                Ok(_) => false,
                Err(e) => {
                    let class = class(e);
                    if class == ErrorClass::Transient {
                        unanswered += 1;
                    }
                    worth_it(class, unanswered)
                }
            };
            match result {
                Err(e) if again => {
                    // Full jitter: anywhere between zero and the current ceiling.
                    let delay = ceiling
                        .mul_f64(fastrand::f64())
                        .max(Duration::from_millis(50));
                    retrying(&e, delay);
                    tokio::time::sleep(delay).await;
                    ceiling = (ceiling * 2).min(self.max_delay);
                }
                other => return other,
            }
        }
    }
}
