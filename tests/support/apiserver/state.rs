//! The test API server's storage: objects by resource, namespace and name, the global
//! resourceVersion counter, the request log, and the timers its controllers ask for. Every
//! store and removal is published to watchers and handed to the controllers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::controllers::{self, Timer};
use super::resources::{Catalogue, Resource, ResourceKey};
use super::watch::Events;
use super::{Options, RequestRecord};

/// (namespace, name); the namespace is `""` for cluster-scoped objects.
pub type ObjectKey = (String, String);

pub struct State {
    pub options: Options,
    pub catalogue: Catalogue,
    objects: HashMap<ResourceKey, BTreeMap<ObjectKey, Arc<Value>>>,
    revision: u64,
    pub log: Vec<RequestRecord>,
    /// Deployments (namespace, name) that must never become available.
    pub never_available: BTreeSet<ObjectKey>,
    /// InferenceServices and Knative Services (namespace, name) that must never become Ready.
    pub never_ready: BTreeSet<ObjectKey>,
    /// Timers the controllers asked for, to be started by whoever holds the runtime.
    pub timers: Vec<(Duration, Timer)>,
    pub events: Events,
    pub started: Instant,
}

/// RFC 3339 UTC, to the second, as Kubernetes timestamps are written.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

pub fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

/// Whether the object has a deletionTimestamp: deleted, waiting for its finalizers.
pub fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

pub fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

impl State {
    pub fn new(options: Options) -> State {
        State {
            options,
            catalogue: Catalogue::new(),
            objects: HashMap::new(),
            revision: 0,
            log: Vec::new(),
            never_available: BTreeSet::new(),
            never_ready: BTreeSet::new(),
            timers: Vec::new(),
            events: Events::new(),
            started: Instant::now(),
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(&resource.key())?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// The objects of a resource, in one namespace or in all, ordered by namespace and name.
    pub fn list(&self, resource: &Resource, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(objects) = self.objects.get(&resource.key()) else {
            return Vec::new();
        };
        match namespace {
            None => objects.values().cloned().collect(),
            Some(namespace) => objects
                .range((namespace.to_string(), String::new())..)
                .take_while(|((ns, _), _)| ns == namespace)
                .map(|(_, object)| object.clone())
                .collect(),
        }
    }

    /// Every stored object.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Value>> {
        self.objects.values().flat_map(BTreeMap::values)
    }

    pub fn namespace_is_empty(&self, namespace: &str) -> bool {
        !self.objects.values().any(|objects| {
            objects
                .range((namespace.to_string(), String::new())..)
                .next()
                .is_some_and(|((ns, _), _)| ns == namespace)
        })
    }

    /// Stores `object` with the next resourceVersion, publishes it and lets the controllers react.
    pub fn store(&mut self, resource: &Resource, mut object: Value) -> Arc<Value> {
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let key = (
            namespace_of(&object).to_string(),
            name_of(&object).to_string(),
        );
        let object = Arc::new(object);
        let previous = self
            .objects
            .entry(resource.key())
            .or_default()
            .insert(key.clone(), object.clone());
        let kind = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.events
            .publish(self.revision, resource.key(), kind, object.clone());
        controllers::react(self, resource, &key.0, &key.1);
        object
    }

    /// Removes an object, publishes its deletion and lets the controllers react.
    pub fn remove(
        &mut self,
        resource: &Resource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let objects = self.objects.get_mut(&resource.key())?;
        let removed = objects.remove(&(namespace.to_string(), name.to_string()))?;
        self.revision += 1;
        let mut last = (*removed).clone();
        last["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.events
            .publish(self.revision, resource.key(), "DELETED", Arc::new(last));
        controllers::react(self, resource, namespace, name);
        Some(removed)
    }

    /// Removes every object of a resource (its CRD is gone).
    pub fn remove_all(&mut self, resource: &Resource) {
        let keys: Vec<ObjectKey> = self
            .objects
            .get(&resource.key())
            .map(|objects| objects.keys().cloned().collect())
            .unwrap_or_default();
        for (namespace, name) in keys {
            self.remove(resource, &namespace, &name);
        }
        self.objects.remove(&resource.key());
    }

    pub fn schedule(&mut self, after: Duration, timer: Timer) {
        self.timers.push((after, timer));
    }
}
