//! The S3 backend: the state as one object, so that every CI job of a team sees the same
//! state, and a lock object next to it made with S3's conditional writes, so that two jobs
//! never work on one stack at once.
//!
//! - The lock `<key>.lock` is created with `If-None-Match: *`: of two runs, exactly one
//!   creates it. It is a lease: its holder rewrites it every `lease / 3` (at most every 30 s)
//!   with `If-Match` on its ETag. A lock not renewed for its lease is stale, and the next run
//!   replaces it with `If-Match` on the stale ETag, so of two runs taking it over only one
//!   wins. A killed CI job blocks its stack for one lease at most.
//! - The state is written with `If-Match` on the ETag this run read or wrote last (the first
//!   write with `If-None-Match: *`), so a run that lost its lock cannot overwrite a newer
//!   state. Bucket versioning (`mlops backend create`) keeps every earlier state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{Mutex, OnceCell};
use tokio::task::AbortHandle;

use super::format::{parse, to_bytes};
use super::lock::{LockGuard, LockInfo};
use super::{State, StateError, StateStore};
use crate::base::ProviderError;
use crate::providers::aws::{classify, Settings};

/// Where the state object lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
    pub region: String,
}

impl S3Location {
    /// `s3://bucket/key`
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }
}

/// How often a holder renews its lock: three times per lease, and at least every 30 s.
fn heartbeat_interval(lease: Duration) -> Duration {
    (lease / 3).min(Duration::from_secs(30))
}

pub struct S3Store {
    location: S3Location,
    endpoint_url: Option<String>,
    lease: Duration,
    stack: String,
    stack_file: String,
    client: OnceCell<aws_sdk_s3::Client>,
    /// The ETag of the state object as this run last read or wrote it; `None` when there was
    /// none. The next write is conditional on it.
    etag: std::sync::Mutex<Option<String>>,
}

/// What a conditional write can run into, apart from success.
enum Refused {
    /// The precondition failed: the object changed, or exists (`If-None-Match`), or is gone
    /// (`If-Match` on an object deleted since).
    Precondition,
    Failed(ProviderError),
}

fn refused(error: ProviderError) -> Refused {
    match error.code.as_deref() {
        Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey") => {
            Refused::Precondition
        }
        _ => Refused::Failed(error),
    }
}

/// The condition of a write.
enum Condition<'a> {
    /// Only if no object exists.
    Absent,
    /// Only if the object still has this ETag.
    Unchanged(&'a str),
}

/// Writes `body` at `key` under `condition`; the new ETag.
async fn put(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    condition: Condition<'_>,
) -> Result<String, Refused> {
    let request = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(ByteStream::from(body));
    let request = match condition {
        Condition::Absent => request.if_none_match("*"),
        Condition::Unchanged(etag) => request.if_match(etag),
    };
    let out = request.send().await.map_err(|e| refused(classify(e)))?;
    Ok(out.e_tag.unwrap_or_default())
}

fn lock_bytes(info: &LockInfo) -> Vec<u8> {
    serde_json::to_vec_pretty(info).unwrap_or_default()
}

impl S3Store {
    /// The store of `stack`, whose spec is `stack_file`; a lock this run takes lasts `lease`
    /// without a heartbeat.
    pub fn new(
        location: S3Location,
        endpoint_url: Option<String>,
        lease: Duration,
        stack: &str,
        stack_file: &str,
    ) -> Self {
        S3Store {
            location,
            endpoint_url,
            lease,
            stack: stack.to_string(),
            stack_file: stack_file.to_string(),
            client: OnceCell::new(),
            etag: std::sync::Mutex::new(None),
        }
    }

    async fn client(&self) -> &aws_sdk_s3::Client {
        self.client
            .get_or_init(|| async {
                // Not under the command's request cap: a heartbeat must never wait for a slot.
                let settings = Settings {
                    region: self.location.region.clone(),
                    endpoint_url: self.endpoint_url.clone(),
                    cap: None,
                };
                settings.s3_client().await
            })
            .await
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(self.location.url())
    }

    /// The error for a failed call; a missing bucket names `mlops backend create`.
    fn failed(&self, action: &'static str, error: ProviderError) -> StateError {
        match error.code.as_deref() {
            Some("NoSuchBucket") => StateError::NoBucket {
                bucket: self.location.bucket.clone(),
                region: self.location.region.clone(),
                stack_file: self.stack_file.clone(),
            },
            _ => StateError::Remote {
                action,
                path: self.path(),
                error,
            },
        }
    }

    /// The object at `key` and its ETag, or `None` when there is none.
    async fn get(
        &self,
        key: &str,
        action: &'static str,
    ) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let client = self.client().await;
        let out = match client
            .get_object()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await
            .map_err(classify)
        {
            Ok(out) => out,
            Err(e) if e.code.as_deref() == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(self.failed(action, e)),
        };
        let etag = out.e_tag.clone().unwrap_or_default();
        let bytes = out.body.collect().await.map_err(|e| {
            self.failed(
                action,
                ProviderError::fatal(format!("the download broke off: {e}")),
            )
        })?;
        Ok(Some((bytes.to_vec(), etag)))
    }

    /// The lock object as it is now, and its ETag.
    async fn read_lock(&self) -> Result<Option<(LockInfo, String)>, StateError> {
        let found = self
            .get(&self.location.lock_key(), "read the lock of")
            .await?;
        Ok(found.map(|(bytes, etag)| {
            let info = LockInfo::parse_or_unreadable(&bytes, &self.stack, &self.stack_file);
            (info, etag)
        }))
    }

    /// Starts renewing the lock `info`, whose object has the ETag in `etag`, and returns what
    /// releases it.
    async fn hold(&self, info: LockInfo, etag: String) -> Lease {
        let client = self.client().await.clone();
        let (bucket, key) = (self.location.bucket.clone(), self.location.lock_key());
        let etag = Arc::new(Mutex::new(etag));
        let heartbeat = tokio::spawn({
            let (client, bucket, key, etag) =
                (client.clone(), bucket.clone(), key.clone(), etag.clone());
            let interval = heartbeat_interval(self.lease);
            async move {
                loop {
                    tokio::time::sleep(interval).await;
                    let mut current = etag.lock().await;
                    let body = lock_bytes(&info.clone().renewed());
                    match put(&client, &bucket, &key, body, Condition::Unchanged(&current)).await {
                        Ok(renewed) => *current = renewed,
                        // Taken over or removed: the lock is no longer this run's.
                        Err(Refused::Precondition) => return,
                        // A failed renewal is tried again at the next beat, within the lease.
                        Err(Refused::Failed(_)) => {}
                    }
                }
            }
        });
        Lease {
            client,
            bucket,
            key,
            etag,
            heartbeat: heartbeat.abort_handle(),
        }
    }
}

/// How long the end of a command waits for its lock to be deleted.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// A lock this run holds in S3: renewed until dropped, then deleted if it is still this run's
/// (`If-Match` on the ETag of its last renewal).
struct Lease {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    etag: Arc<Mutex<String>>,
    heartbeat: AbortHandle,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (client, bucket, key, etag) = (
            self.client.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.etag.clone(),
        );
        let heartbeat = self.heartbeat.clone();
        let release = async move {
            // Waits for a renewal in flight, so that the ETag is the lock's latest.
            let etag = etag.lock().await;
            heartbeat.abort();
            let _ = client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .if_match(etag.as_str())
                .send()
                .await;
        };
        // An unreachable S3 must not hold the command up: the lease ends the lock then.
        let release = async move {
            let _ = tokio::time::timeout(RELEASE_TIMEOUT, release).await;
        };
        match Handle::try_current() {
            // mlops runs on the multi-threaded runtime, where a drop may wait for the call
            // while the runtime's workers drive its I/O. The wait uses its own executor:
            // `Handle::block_on` would share this thread's parker with an outer `block_on`
            // and swallow the wake-ups meant for the other stacks of `--all`.
            Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| {
                    let _context = runtime.enter();
                    futures::executor::block_on(release);
                });
            }
            // Anywhere else the lock stays until its lease runs out.
            _ => self.heartbeat.abort(),
        }
    }
}

#[async_trait]
impl StateStore for S3Store {
    fn describe(&self) -> String {
        self.location.url()
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        let Some((bytes, etag)) = self.get(&self.location.key, "read").await? else {
            *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let state = parse(&self.path(), &text, &self.stack)?;
        *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = Some(etag);
        Ok(Some(state))
    }

    async fn save(&self, state: &mut State) -> Result<(), StateError> {
        let mut next = state.clone();
        next.serial += 1;
        let read = self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let condition = match &read {
            Some(etag) => Condition::Unchanged(etag),
            None => Condition::Absent,
        };
        let client = self.client().await;
        let written = put(
            client,
            &self.location.bucket,
            &self.location.key,
            to_bytes(&next),
            condition,
        )
        .await;
        match written {
            Ok(etag) => {
                *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = Some(etag);
                *state = next;
                Ok(())
            }
            Err(Refused::Precondition) => Err(StateError::Conflict {
                path: self.path(),
                stack_file: self.stack_file.clone(),
            }),
            Err(Refused::Failed(error)) => Err(self.failed("write", error)),
        }
    }

    async fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        let info =
            LockInfo::for_this_process(&self.stack, &self.stack_file, operation).leased(self.lease);
        let (bucket, key) = (&self.location.bucket, self.location.lock_key());
        let client = self.client().await;
        // A lock that is released or taken over between two calls sends us round again; a few
        // rounds settle any race.
        for _ in 0..5 {
            match put(client, bucket, &key, lock_bytes(&info), Condition::Absent).await {
                Ok(etag) => {
                    let lease = self.hold(info.clone(), etag).await;
                    return Ok(LockGuard::new(info, None, lease));
                }
                Err(Refused::Failed(error)) => return Err(self.failed("lock", error)),
                Err(Refused::Precondition) => {}
            }
            let Some((holder, stale)) = self.read_lock().await? else {
                continue;
            };
            if !holder.is_expired() {
                return Err(StateError::Locked {
                    path: self.path(),
                    holder: Box::new(holder),
                });
            }
            match put(
                client,
                bucket,
                &key,
                lock_bytes(&info),
                Condition::Unchanged(&stale),
            )
            .await
            {
                Ok(etag) => {
                    let lease = self.hold(info.clone(), etag).await;
                    return Ok(LockGuard::new(info, Some(holder), lease));
                }
                Err(Refused::Failed(error)) => return Err(self.failed("lock", error)),
                Err(Refused::Precondition) => {}
            }
        }
        Err(self.failed(
            "lock",
            ProviderError::fatal("the lock kept changing hands while this run tried to take it"),
        ))
    }

    async fn lock_status(&self) -> Result<Option<LockInfo>, StateError> {
        Ok(self.read_lock().await?.map(|(info, _)| info))
    }

    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        let Some((holder, etag)) = self.read_lock().await? else {
            return Err(StateError::NotLocked { path: self.path() });
        };
        if holder.id != id {
            return Err(StateError::LockIdMismatch {
                path: self.path(),
                given: id.to_string(),
                holder: Box::new(holder),
            });
        }
        let client = self.client().await;
        match client
            .delete_object()
            .bucket(&self.location.bucket)
            .key(self.location.lock_key())
            .if_match(etag)
            .send()
            .await
            .map_err(|e| refused(classify(e)))
        {
            Ok(_) => Ok(holder),
            Err(Refused::Precondition) => Err(self.failed(
                "unlock",
                ProviderError::fatal(
                    "the lock changed while it was being removed (renewed or taken over); `mlops lock status` shows it now",
                ),
            )),
            Err(Refused::Failed(error)) => Err(self.failed("unlock", error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_three_times_per_lease_and_at_least_every_30_seconds() {
        assert_eq!(
            heartbeat_interval(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            heartbeat_interval(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
    }
}
