//! Retries for errors that mean "not yet" (IAM eventual consistency, a dependency still being
//! deleted): exponential backoff with full jitter, within a time budget. Throttling and
//! transient network errors are already retried inside the SDK; errors that cannot succeed are
//! never retried.

use std::future::Future;
use std::time::Duration;

use super::Reporter;
use crate::model::Address;
use crate::providers::{ErrorClass, ProviderError};

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
            budget: super::DEFAULT_RETRY_BUDGET,
        }
    }
}

impl RetryPolicy {
    pub async fn run<T, F, Fut>(
        &self,
        reporter: &dyn Reporter,
        address: &Address,
        mut call: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let started = tokio::time::Instant::now();
        let mut ceiling = self.first_delay;
        loop {
            match call().await {
                Err(e) if e.class == ErrorClass::Propagating && started.elapsed() < self.budget => {
                    // Full jitter: anywhere between zero and the current ceiling.
                    let delay = ceiling
                        .mul_f64(fastrand::f64())
                        .max(Duration::from_millis(50));
                    reporter.retrying(address, &e.to_string(), delay);
                    tokio::time::sleep(delay).await;
                    ceiling = (ceiling * 2).min(self.max_delay);
                }
                other => return other,
            }
        }
    }
}
