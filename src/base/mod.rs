//! What every layer that talks to AWS or to the cluster shares, below all of them: the error
//! classes (what may be retried, what means "gone"), the one retry loop, and the `Reporter`
//! through which progress reaches the UI. `exec`, `providers`, `state` and `kube` import from
//! here and never from each other's insides, so the layers import only downwards
//! (`docs/architecture.md`, "Layers").

mod error;
mod reporter;
mod retry;

pub use error::{code_hint, ErrorClass, ProviderError};
pub use reporter::{Op, Reporter, STILL_WAITING_EVERY};
pub use retry::{RetryPolicy, DEFAULT_RETRY_BUDGET, NEW_OBJECT_BUDGET};
