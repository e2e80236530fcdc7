//! Refresh: read every resource of the state from the cloud, in parallel, so that the plan
//! diffs against what really exists. Objects that are gone leave the state (and the plan
//! creates them again); changed attributes show as updates.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt};

use super::{Env, ExecError, Op};
use crate::model::{canonical, Address};
use crate::state::State;

/// Reads every resource of `state`; returns the refreshed state and the addresses found gone.
pub async fn refresh(
    mut state: State,
    env: &Env<'_>,
) -> Result<(State, BTreeSet<Address>), ExecError> {
    let reads = state
        .resources
        .iter()
        .map(|(address, resource)| async move {
            let ctx = env.ctx(address);
            let provider = env.providers.get(resource.kind);
            let live = env
                .retry
                .run(env.reporter, address, || {
                    provider.read(&ctx, &resource.id, &resource.attrs)
                })
                .await;
            (address.clone(), live)
        });
    let results: Vec<_> = stream::iter(reads)
        .buffer_unordered(env.parallelism.max(1))
        .collect()
        .await;
    let mut gone = BTreeSet::new();
    for (address, live) in results {
        match live {
            Ok(Some(attrs)) => {
                if let Some(resource) = state.resources.get_mut(&address) {
                    resource.attrs = canonical(attrs);
                }
            }
            Ok(None) => {
                state.resources.remove(&address);
                gone.insert(address);
            }
            Err(error) => {
                return Err(ExecError {
                    address,
                    op: Op::Read,
                    error,
                })
            }
        }
    }
    Ok((state, gone))
}
