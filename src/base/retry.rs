//! The one retry loop, around ONE API call (or one read), never around a sequence of calls, so
//! that a retry never repeats a call that succeeded (a second `CreateVpc` would leave an orphan
//! VPC), and the one pacing rule of everything that waits for AWS to catch up (`paced`).
//!
//! What is retried, how often and for how long (`docs/architecture.md`, "Retries"):
//! - "not yet" errors (IAM eventual consistency, a dependency still being deleted, NotFound
//!   on a new object): paced like a wait, since AWS will say yes at a moment of its own and
//!   each try costs the caller nothing, for the policy's `budget`;
//! - throttling that outlived the SDK's own retries: exponential backoff with full jitter (the
//!   account's rate is the limit, and callers that back off together must spread out), for the
//!   policy's `budget`;
//! - calls whose outcome is unknown (no answer, a 5xx, after the SDK's own retries): until
//!   `TRANSIENT_ATTEMPTS` of them, with the same backoff (a create that a repeat could double looks its object up
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

/// The first pause of a wait, and the shortest of a "not yet" retry: most objects that are not
/// ready at once are within a second.
pub const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// The pause before asking AWS again whether it has caught up, after `elapsed` of asking: 5% of
/// that time, so that the asking ends within 5% of how long AWS took, and never less than
/// `first` nor more than `ceiling`. The poller of the waits and the retry of "not yet" errors
/// share it.
pub fn paced(elapsed: Duration, first: Duration, ceiling: Duration) -> Duration {
    (elapsed / 20).max(first).min(ceiling)
}

/// How long NotFound is retried on an object just created: terraform-provider-aws's
/// `PropagationTimeout` (2 min) for the same calls.
pub const NEW_OBJECT_BUDGET: Duration = Duration::from_secs(120);

/// How long to keep retrying an error that means "not yet", by default.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first ceiling of the backoff after throttling or no answer (doubled at each).
    pub first_delay: Duration,
    /// The longest pause, of a backoff or of a "not yet" retry.
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
                ErrorClass::Propagating | ErrorClass::Throttled => started.elapsed() < self.budget,
                ErrorClass::Transient => unanswered < TRANSIENT_ATTEMPTS,
                ErrorClass::NotFound => {
                    new_object && started.elapsed() < self.budget.min(NEW_OBJECT_BUDGET)
                }
                ErrorClass::Fatal => false,
            };
            let result = call().await;
            let again = match &result {
                Ok(_) => None,
                Err(e) => {
                    let class = class(e);
                    if class == ErrorClass::Transient {
                        unanswered += 1;
                    }
                    worth_it(class, unanswered).then_some(class)
                }
            };
            match result {
                Err(e) if again.is_some() => {
                    let delay = match again {
                        // "Not yet": paced like a wait, at most max(2 s, 5% of the time so far).
                        Some(ErrorClass::Propagating | ErrorClass::NotFound) => paced(
                            started.elapsed(),
                            self.first_delay.min(FIRST_PAUSE),
                            self.max_delay,
                        ),
                        // Full jitter: anywhere between zero and the current ceiling.
                        _ => {
                            let delay = ceiling
                                .mul_f64(fastrand::f64())
                                .max(Duration::from_millis(50));
                            ceiling = (ceiling * 2).min(self.max_delay);
                            delay
                        }
                    };
                    retrying(&e, delay);
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::base::Op;

    /// The pauses a retry loop announces.
    #[derive(Default)]
    struct Pauses(Mutex<Vec<Duration>>);

    impl Reporter for Pauses {
        fn started(&self, _: &Address, _: Op) {}
        fn waiting(&self, _: &Address, _: &str) {}
        fn still_waiting(&self, _: &Address) {}
        fn retrying(&self, _: &Address, _: &str, delay: Duration) {
            self.0.lock().unwrap().push(delay);
        }
        fn adopted(&self, _: &Address, _: &str) {}
        fn finished(&self, _: &Address, _: Op, _: Duration) {}
        fn failed(&self, _: &Address, _: Op, _: &str) {}
        fn interrupted(&self, _: usize) {}
        fn warning(&self, _: &str) {}
    }

    fn error(class: ErrorClass, code: &str) -> ProviderError {
        ProviderError {
            class,
            code: Some(code.into()),
            message: code.into(),
        }
    }

    /// EKS refuses `CreateCluster` until IAM has propagated the new role (6-10 s on AWS): a
    /// "not yet" retry is paced like a wait, every `FIRST_PAUSE` at first, never longer than
    /// max(2 s, 5% of the time retried so far), so the call goes through within a pause of AWS
    /// catching up, instead of after an exponential backoff of up to 30 s.
    #[tokio::test]
    async fn a_not_yet_retry_is_paced_like_a_wait() {
        let pauses = Pauses::default();
        let started = tokio::time::Instant::now();
        let propagated = Duration::from_millis(900);
        let calls = std::sync::atomic::AtomicU32::new(0);
        RetryPolicy::default()
            .run(&pauses, &Address::new("eks_cluster"), || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if started.elapsed() < propagated {
                    return Err(error(ErrorClass::Propagating, "InvalidParameterException"));
                }
                Ok(())
            })
            .await
            .unwrap();
        let late = started.elapsed() - propagated;
        assert!(late < FIRST_PAUSE * 2, "went through {late:?} after IAM");
        let pauses = pauses.0.into_inner().unwrap();
        assert!(pauses.iter().all(|p| *p == FIRST_PAUSE), "{pauses:?}");
        assert_eq!(calls.into_inner() as usize, pauses.len() + 1);
        for (elapsed, ceiling) in [(1, 250), (10, 500), (100, 5_000), (1_000, 30_000)] {
            let pause = paced(
                Duration::from_secs(elapsed),
                FIRST_PAUSE,
                RetryPolicy::default().max_delay,
            );
            assert_eq!(pause, Duration::from_millis(ceiling), "after {elapsed} s");
            assert!(pause <= Duration::from_secs(2).max(Duration::from_secs(elapsed) / 20));
        }
    }

    /// Throttling that outlived the SDK's retries backs off exponentially, with full jitter: each
    /// pause anywhere below a ceiling that doubles, so that callers throttled together spread
    /// out instead of coming back in step.
    #[tokio::test]
    async fn throttling_backs_off_exponentially_with_jitter() {
        let pauses = Pauses::default();
        let throttled = std::sync::atomic::AtomicU32::new(6);
        let policy = RetryPolicy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(60),
        };
        policy
            .run(&pauses, &Address::new("vpc"), || async {
                match throttled.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) {
                    0 => Ok(()),
                    _ => Err(error(ErrorClass::Throttled, "RequestLimitExceeded")),
                }
            })
            .await
            .unwrap();
        let pauses = pauses.0.into_inner().unwrap();
        assert_eq!(pauses.len(), 6);
        for (n, pause) in pauses.iter().enumerate() {
            let ceiling = Duration::from_millis(100) * 2u32.pow(n as u32);
            assert!(*pause <= ceiling, "pause {n}: {pause:?} above {ceiling:?}");
        }
        let distinct: std::collections::BTreeSet<_> = pauses.iter().collect();
        assert!(distinct.len() > 1, "no jitter: {pauses:?}");
    }
}
