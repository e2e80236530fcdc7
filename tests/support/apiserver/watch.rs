//! Watches (`?watch=true`), as `kube::runtime` waits use them: every store and removal is an
//! event with its resourceVersion; a watch replays the retained events after the
//! resourceVersion it names (or the current objects, when it names none) and then follows
//! new events until its timeout.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use hyper::body::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::resources::ResourceKey;
use super::selector::{FieldSelector, LabelSelector};
use super::state::namespace_of;
use super::status::ApiError;

/// How many events are kept for watches that resume from a resourceVersion.
const RETAINED: usize = 10_000;

pub struct Event {
    pub revision: u64,
    pub resource: ResourceKey,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Arc<Value>,
}

pub struct Events {
    history: VecDeque<Arc<Event>>,
    sender: broadcast::Sender<Arc<Event>>,
}

impl Events {
    pub fn new() -> Events {
        Events {
            history: VecDeque::new(),
            sender: broadcast::channel(RETAINED).0,
        }
    }

    pub fn publish(
        &mut self,
        revision: u64,
        resource: ResourceKey,
        kind: &'static str,
        object: Arc<Value>,
    ) {
        let event = Arc::new(Event {
            revision,
            resource,
            kind,
            object,
        });
        if self.history.len() == RETAINED {
            self.history.pop_front();
        }
        self.history.push_back(event.clone());
        // Nobody watching is fine.
        let _ = self.sender.send(event);
    }

    /// The retained events after `revision`; `None` when some of them are no longer retained.
    pub fn since(&self, revision: u64) -> Option<Vec<Arc<Event>>> {
        match self.history.front() {
            Some(first) if first.revision > revision + 1 => None,
            _ => Some(
                self.history
                    .iter()
                    .filter(|e| e.revision > revision)
                    .cloned()
                    .collect(),
            ),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

/// What one watch wants to see, and at which apiVersion.
pub struct Filter {
    pub resource: ResourceKey,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub api_version: String,
}

impl Filter {
    fn accepts(&self, event: &Event) -> bool {
        event.resource == self.resource && self.selects(&event.object)
    }

    pub fn selects(&self, object: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| namespace_of(object) == ns)
            && self.labels.selects(object)
            && self.fields.selects(object)
    }

    /// One line of the watch stream.
    pub fn line(&self, kind: &str, object: &Value) -> Bytes {
        let mut object = object.clone();
        object["apiVersion"] = json!(self.api_version);
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// The line that ends a watch whose resourceVersion is no longer retained.
pub fn expired_line() -> Bytes {
    let error = ApiError::new(410, "Expired", "too old resource version");
    let mut line =
        serde_json::to_vec(&json!({"type": "ERROR", "object": error.body()})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// The watch stream: `first` (replayed events or current objects), then new events from
/// `receiver` that pass `filter`, until `timeout`.
pub fn stream(
    first: Vec<Bytes>,
    receiver: broadcast::Receiver<Arc<Event>>,
    filter: Filter,
    timeout: Duration,
) -> impl Stream<Item = Bytes> + Send {
    let live = stream::unfold((receiver, filter), |(mut receiver, filter)| async move {
        loop {
            match receiver.recv().await {
                Ok(event) if filter.accepts(&event) => {
                    let line = filter.line(event.kind, &event.object);
                    return Some((line, (receiver, filter)));
                }
                Ok(_) => continue,
                // A lagging or closed watch ends; the client lists and watches again.
                Err(_) => return None,
            }
        }
    });
    stream::iter(first)
        .chain(live)
        .take_until(tokio::time::sleep(timeout))
}
