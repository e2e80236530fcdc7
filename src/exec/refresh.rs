//! Refresh: read every resource of the state from the cloud, in parallel, so that the plan
//! diffs against what really exists. Objects that are gone leave the state (and the plan
//! creates them again); changed attributes show as updates. The objects of one kind are read
//! together, as many at once as the kind's API describes with one request
//! (`ResourceProvider::reads_at_once`): a refresh is as fast as its rounds of requests.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};

use super::{Env, ExecError, Op};
use crate::model::{canonical, Address};
use crate::providers::Read;
use crate::state::State;

/// Reads every resource of `state`; returns the refreshed state and the addresses found gone.
pub async fn refresh(
    mut state: State,
    env: &Env<'_>,
) -> Result<(State, BTreeSet<Address>), ExecError> {
    let mut by_kind: BTreeMap<_, Vec<Read>> = BTreeMap::new();
    for (address, resource) in &state.resources {
        by_kind.entry(resource.kind).or_default().push(Read {
            address,
            id: &resource.id,
            prior: &resource.attrs,
        });
    }
    let batches = by_kind.iter().flat_map(|(kind, objects)| {
        let provider = env.providers.get(*kind);
        objects
            .chunks(provider.reads_at_once().max(1))
            .map(move |batch| (provider, batch))
    });
    let reads = batches.map(|(provider, batch)| async move {
        let first = batch[0].address;
        let ctx = env.ctx(first);
        let live = env
            .retry
            .run(env.reporter, first, || provider.read_many(&ctx, batch))
            .await;
        let addresses: Vec<Address> = batch.iter().map(|o| o.address.clone()).collect();
        (addresses, live)
    });
    let results: Vec<_> = stream::iter(reads)
        .buffer_unordered(env.parallelism.max(1))
        .collect()
        .await;
    let mut gone = BTreeSet::new();
    for (addresses, live) in results {
        let live = match live {
            Ok(live) => live,
            Err(error) => {
                return Err(ExecError {
                    address: addresses[0].clone(),
                    op: Op::Read,
                    error,
                })
            }
        };
        for (address, attrs) in addresses.into_iter().zip(live) {
            match attrs {
                Some(attrs) => {
                    if let Some(resource) = state.resources.get_mut(&address) {
                        resource.attrs = canonical(attrs);
                    }
                }
                None => {
                    state.resources.remove(&address);
                    gone.insert(address);
                }
            }
        }
    }
    Ok((state, gone))
}
