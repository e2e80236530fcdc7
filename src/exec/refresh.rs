//! Refresh: read every resource of the state from the cloud, in parallel, so that the plan
//! diffs against what really exists. Objects that are gone leave the state (and the plan
//! creates them again); changed attributes show as updates. The objects of one kind are read
//! together, as many at once as the kind's API describes with one request
//! (`ResourceProvider::reads_at_once`): a refresh is as fast as its rounds of requests.
//!
//! Many stacks refreshed together (`plan --all`, the nightly drift check) share those requests:
//! one `DescribeSubnets` reads the subnets of every stack of a region, so 50 stacks cost a few
//! EC2 requests more than one, not 50 times as many, against EC2's per-action throttling.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};

use super::{Env, ExecError, Op};
use crate::base::ProviderError;
use crate::model::{canonical, Address, Attrs, ResourceKind};
use crate::providers::Read;
use crate::state::State;

/// A refreshed state and the addresses found gone.
pub type Refreshed = (State, BTreeSet<Address>);

/// Reads every resource of `state`; returns the refreshed state and the addresses found gone.
pub async fn refresh(state: State, env: &Env<'_>) -> Result<Refreshed, ExecError> {
    let mut results = refresh_many(vec![(state, env)]).await;
    results.pop().expect("one result for each stack refreshed")
}

/// One object to read, and the stack (its index) it belongs to.
type StackRead<'a> = (usize, Read<'a>);

/// Refreshes the states of many stacks at once, each with its own environment; the results
/// in the same order. The reads of one kind in one region go out together across the stacks,
/// `reads_at_once` to a request: a provider that reads more than one object at once answers
/// for objects of any stack (it reads by id, never by the stack's tags); the retries of a
/// shared read are reported to the first stack's reporter. A shared read that fails is read
/// again stack by stack, so that a failure is a stack's own; the other stacks go on.
pub async fn refresh_many(stacks: Vec<(State, &Env<'_>)>) -> Vec<Result<Refreshed, ExecError>> {
    let mut groups: BTreeMap<(&str, ResourceKind), Vec<StackRead>> = BTreeMap::new();
    for (index, (state, env)) in stacks.iter().enumerate() {
        for (address, resource) in &state.resources {
            let read = Read {
                address,
                id: &resource.id,
                prior: &resource.attrs,
            };
            groups
                .entry((env.clients.region.as_str(), resource.kind))
                .or_default()
                .push((index, read));
        }
    }
    let parallelism = stacks.iter().map(|(_, env)| env.parallelism).max();
    let batches = groups.iter().flat_map(|((_, kind), reads)| {
        let at_once = stacks[reads[0].0].1.providers.get(*kind).reads_at_once();
        reads
            .chunks(at_once.max(1))
            .map(move |batch| (*kind, batch))
    });
    let env_of = |stack: usize| stacks[stack].1;
    let reads = batches.map(|(kind, batch)| async move {
        let first = batch[0].0;
        match read_batch(env_of(first), kind, batch).await {
            // A read shared by several stacks failed: each stack's part is read apart, with
            // its own environment, so that what only one stack has (a malformed id in its
            // state, an object it may not read) fails that stack alone, under its own address.
            Err(_) if batch.iter().any(|(stack, _)| *stack != first) => {
                let parts = batch.chunk_by(|a, b| a.0 == b.0).map(|part| async move {
                    (
                        owners(part),
                        read_batch(env_of(part[0].0), kind, part).await,
                    )
                });
                futures::future::join_all(parts).await
            }
            live => vec![(owners(batch), live)],
        }
    });
    let results: Vec<_> = stream::iter(reads)
        .buffer_unordered(parallelism.unwrap_or(1).max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    drop(groups);

    let mut failed: BTreeMap<usize, ExecError> = BTreeMap::new();
    let mut found: Vec<Vec<(Address, Option<Attrs>)>> = vec![Vec::new(); stacks.len()];
    for (owners, live) in results {
        match live {
            Ok(live) => {
                for ((stack, address), attrs) in owners.into_iter().zip(live) {
                    found[stack].push((address, attrs));
                }
            }
            Err(error) => fail_owners(&mut failed, owners, &error),
        }
    }
    stacks
        .into_iter()
        .zip(found)
        .enumerate()
        .map(|(index, ((state, _), found))| match failed.remove(&index) {
            Some(error) => Err(error),
            None => Ok(apply_reads(state, found)),
        })
        .collect()
}

/// One read of `batch` (objects of `kind`, all of one region) through `env`, retried as `env`
/// says.
async fn read_batch(
    env: &Env<'_>,
    kind: ResourceKind,
    batch: &[StackRead<'_>],
) -> Result<Vec<Option<Attrs>>, ProviderError> {
    let first = batch[0].1.address;
    let provider = env.providers.get(kind);
    let objects: Vec<Read> = batch.iter().map(|(_, read)| *read).collect();
    let ctx = env.ctx(first);
    env.retry
        .run(env.reporter, first, || provider.read_many(&ctx, &objects))
        .await
}

/// Whose the objects of `batch` are: each one's stack and address.
fn owners(batch: &[StackRead<'_>]) -> Vec<(usize, Address)> {
    let owners = batch
        .iter()
        .map(|(stack, read)| (*stack, read.address.clone()));
    owners.collect()
}

/// Records `error` for each stack among `owners` that has not failed yet, under its first
/// address in the read.
fn fail_owners(
    failed: &mut BTreeMap<usize, ExecError>,
    owners: Vec<(usize, Address)>,
    error: &ProviderError,
) {
    for (stack, address) in owners {
        failed.entry(stack).or_insert_with(|| ExecError {
            address,
            op: Op::Read,
            error: error.clone(),
        });
    }
}

/// `state` with what was read: live attributes written in, the objects gone taken out.
fn apply_reads(mut state: State, found: Vec<(Address, Option<Attrs>)>) -> Refreshed {
    let mut gone = BTreeSet::new();
    for (address, attrs) in found {
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
    (state, gone)
}
