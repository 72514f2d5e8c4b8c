//! Objects, the global resourceVersion counter and the per-resource event history.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Status, resources::Registry};

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change of one object, in storage form.
#[derive(Debug)]
pub struct Change {
    /// What happened.
    pub kind: EventType,
    /// Storage key of the resource.
    pub key: String,
    /// resourceVersion of the change.
    pub rv: u64,
    /// The object after the change (before it, with the new resourceVersion, on delete).
    pub object: Value,
    /// The object before the change.
    pub prev: Option<Value>,
}

#[derive(Debug, Default)]
struct History {
    events: VecDeque<Arc<Change>>,
    /// The resourceVersion of the newest event dropped from the history.
    compacted: u64,
}

type Objects = BTreeMap<(String, String), Value>;

/// Everything the server stores, behind one lock.
#[derive(Debug)]
pub struct State {
    rv: u64,
    uid: u64,
    /// The served resources.
    pub registry: Registry,
    objects: BTreeMap<String, Objects>,
    history: HashMap<String, History>,
    history_limit: usize,
    /// No watch can start before this resourceVersion (history lost, see [`State::forget_history`]).
    floor: u64,
    tx: broadcast::Sender<Arc<Change>>,
    /// Changes committed so far, per storage key: the events a watch of that
    /// resource that never falls behind receives.
    changes: HashMap<String, u64>,
}

/// The current time as `metav1.Time` (RFC 3339, seconds).
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metadata.namespace` (empty for cluster-scoped objects).
pub fn ns_of(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// `metadata.name`.
pub fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.uid`.
pub fn uid_of(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or_default()
}

/// `metadata.resourceVersion` as a number (0 when absent or not a number).
pub fn rv_of(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl State {
    /// An empty store with the built-in resources.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(16 * 1024);
        Self {
            rv: 1,
            uid: 0,
            registry: Registry::new(),
            objects: BTreeMap::new(),
            history: HashMap::new(),
            history_limit,
            floor: 0,
            tx,
            changes: HashMap::new(),
        }
    }

    /// The newest resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// A fresh uid.
    pub fn next_uid(&mut self) -> String {
        self.uid += 1;
        let salt = (std::process::id() as u64) << 20 ^ self.rv;
        format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", salt as u32, self.uid >> 16 & 0xffff, 0, 0, self.uid)
    }

    /// One object.
    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(key)?.get(&(ns.to_string(), name.to_string()))
    }

    /// Every object of a resource, in one namespace or all, ordered by namespace and name.
    pub fn list<'a>(&'a self, key: &str, ns: Option<&'a str>) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(key)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((n, _), _)| ns.is_none_or(|w| w == n))
            .map(|(_, v)| v)
    }

    /// Every stored object with its storage key.
    pub fn everything(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.objects.iter().flat_map(|(k, m)| m.values().map(move |v| (k, v)))
    }

    /// Stores a new or changed object under a fresh resourceVersion; returns it as stored.
    pub fn put(&mut self, key: &str, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let id = (ns_of(&obj).to_string(), name_of(&obj).to_string());
        let prev = self.objects.entry(key.to_string()).or_default().insert(id, obj.clone());
        let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
        self.emit(Change { kind, key: key.into(), rv: self.rv, object: obj.clone(), prev });
        obj
    }

    /// Removes an object; returns it with the deletion's resourceVersion.
    pub fn remove(&mut self, key: &str, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self.objects.get_mut(key)?.remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let prev = obj.clone();
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        self.emit(Change {
            kind: EventType::Deleted,
            key: key.into(),
            rv: self.rv,
            object: obj.clone(),
            prev: Some(prev),
        });
        Some(obj)
    }

    /// Drops a whole resource (its CRD is gone) without events.
    pub fn drop_resource(&mut self, key: &str) {
        self.objects.remove(key);
    }

    /// Changes committed so far to the resource with storage key `key`.
    pub fn changes(&self, key: &str) -> u64 {
        self.changes.get(key).copied().unwrap_or(0)
    }

    fn emit(&mut self, change: Change) {
        *self.changes.entry(change.key.clone()).or_default() += 1;
        let change = Arc::new(change);
        let h = self.history.entry(change.key.clone()).or_default();
        h.events.push_back(change.clone());
        while h.events.len() > self.history_limit {
            if let Some(old) = h.events.pop_front() {
                h.compacted = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(change);
    }

    /// A live feed of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// The retained changes of a resource newer than `rv`.
    ///
    /// # Errors
    /// 410 Expired when `rv` is older than the retained history.
    pub fn since(&self, key: &str, rv: u64) -> Result<Vec<Arc<Change>>, Status> {
        let compacted = self.compacted(key);
        if rv < compacted {
            return Err(Status::expired(format!("too old resource version: {rv} ({compacted})")));
        }
        let Some(h) = self.history.get(key) else { return Ok(Vec::new()) };
        Ok(h.events.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// The oldest resourceVersion from which a watch of `key` can still start.
    pub fn compacted(&self, key: &str) -> u64 {
        self.history.get(key).map_or(0, |h| h.compacted).max(self.floor)
    }

    /// Drops every resource's watch history, as a kube-apiserver restart after an etcd
    /// compaction does: every watch or continue token from a resourceVersion before
    /// now gets 410 Gone (the counter moves on by one, so even a client that saw the
    /// newest version relists).
    pub fn forget_history(&mut self) {
        self.rv += 1;
        self.floor = self.rv;
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn history_is_bounded() {
        let mut s = State::new(2);
        for i in 0..4 {
            s.put("/configmaps", json!({"metadata": {"name": format!("c{i}"), "namespace": "d"}}));
        }
        assert_eq!(s.rv(), 5);
        assert_eq!(s.since("/configmaps", 3).unwrap().len(), 2);
        assert_eq!(s.since("/configmaps", 2).unwrap_err().code, 410);
        let gone = s.remove("/configmaps", "d", "c0").unwrap();
        assert_eq!(rv_of(&gone), 6);
        assert_eq!(s.list("/configmaps", Some("d")).count(), 3);
        assert_ne!(s.next_uid(), s.next_uid());
        s.forget_history();
        assert_eq!(s.since("/configmaps", 6).unwrap_err().code, 410);
        assert_eq!(s.since("/secrets", 6).unwrap_err().code, 410, "also resources without events");
        assert!(s.since("/secrets", 7).unwrap().is_empty());
    }
}
