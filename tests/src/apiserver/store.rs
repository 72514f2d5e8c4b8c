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
    pub object: Arc<Value>,
    /// `object` as JSON, shared with the store and the history: a watch writes it as
    /// it is instead of cloning and serialising the object for every watcher.
    pub json: Arc<[u8]>,
    /// The object before the change.
    pub prev: Option<Arc<Value>>,
}

/// The fields a watch can follow one value of ([`Feed::Field`]): kube-apiserver's
/// watch cache indexes pods by `spec.nodeName` the same way, so that a kubelet's watch
/// is not woken by every pod of the cluster. Five thousand node agents, each watching
/// its own pods and its own NodeState, made every change wake five thousand watches.
pub const FEED_FIELDS: [&str; 2] = ["metadata.name", "spec.nodeName"];

/// A watch more than this many changes of its resource behind is ended with 410
/// Expired, as kube-apiserver ends a watch that falls out of its cache's window. (At
/// 16 Ki the 5,000-node bench's watches of every pod, in a process as busy as the
/// server, fell that far behind and relisted 50,000 pods.)
const ALL_CAPACITY: usize = 64 * 1024;
/// The same for a watch of one field value (one node's pods, one object by name).
const FIELD_CAPACITY: usize = 256;

/// Which live changes of a resource a watch receives.
#[derive(Debug, Clone, Copy)]
pub enum Feed<'a> {
    /// Every one.
    All,
    /// Those of objects whose field (one of [`FEED_FIELDS`]) has or had this value.
    Field(&'static str, &'a str),
}

type Tx = broadcast::Sender<Arc<Change>>;

/// The live feeds of one resource. A feed nobody receives any more is dropped at its
/// next change.
#[derive(Debug, Default)]
struct Feeds {
    all: Option<Tx>,
    by_field: HashMap<&'static str, HashMap<String, Option<Tx>>>,
}

impl Feeds {
    fn send(&mut self, change: &Arc<Change>) {
        if let Some(tx) = &self.all
            && tx.send(change.clone()).is_err()
        {
            self.all = None;
        }
        for (path, by_value) in &mut self.by_field {
            for value in fed_values(change, path) {
                if let Some(Some(tx)) = by_value.get(value)
                    && tx.send(change.clone()).is_err()
                {
                    by_value.remove(value);
                }
            }
        }
    }
}

/// The values a change has at `path`: the object's, and the previous object's where it
/// differs (a pod moved off a node is a change of that node's pods too).
fn fed_values<'a>(change: &'a Change, path: &str) -> impl Iterator<Item = &'a str> {
    let now = field_str(&change.object, path);
    let before = change.prev.as_deref().map(|p| field_str(p, path)).filter(|b| *b != now);
    std::iter::once(now).chain(before)
}

/// A string field at a dotted path; `""` when absent, as field selectors read it.
fn field_str<'a>(o: &'a Value, path: &str) -> &'a str {
    path.split('.').try_fold(o, |v, k| v.get(k)).and_then(Value::as_str).unwrap_or_default()
}

/// A change as the history keeps it: its objects as JSON, about an eighth of their
/// size as `Value`s (a thousand-node rollout retains hundreds of thousands of changes).
#[derive(Debug)]
pub struct Retained {
    kind: EventType,
    /// resourceVersion of the change.
    pub rv: u64,
    /// Shared with the object's entry in the store, and with the next change's `prev`.
    object: Arc<[u8]>,
    prev: Option<Arc<[u8]>>,
    /// The values of [`FEED_FIELDS`] in the object and, where they differ, in `prev`:
    /// a watch of one node's pods resumed from a bookmark replays only its own changes
    /// without parsing every other one (five thousand agents resuming their watches
    /// every few minutes each parsed thousands of changes).
    fed: Vec<(&'static str, Box<str>)>,
}

impl Retained {
    fn new(change: &Change, object: Arc<[u8]>, prev: Option<Arc<[u8]>>) -> Self {
        let fed =
            FEED_FIELDS.iter().flat_map(|path| fed_values(change, path).map(|v| (*path, v.into()))).collect();
        Self { kind: change.kind, rv: change.rv, object, prev, fed }
    }

    /// Whether a watch following `feed` receives this change (before its selectors).
    fn feeds(&self, feed: Feed<'_>) -> bool {
        match feed {
            Feed::All => true,
            Feed::Field(path, value) => self.fed.iter().any(|(p, v)| *p == path && **v == *value),
        }
    }

    /// The change again, for a watch that replays it (parsed one at a time: a replay of
    /// a long history held at once as `Value`s took gigabytes).
    pub fn change(&self, key: &str) -> Change {
        let parse = |json: &[u8]| Arc::new(serde_json::from_slice(json).unwrap_or_default());
        Change {
            kind: self.kind,
            key: key.to_owned(),
            rv: self.rv,
            object: parse(&self.object),
            json: self.object.clone(),
            prev: self.prev.as_deref().map(parse),
        }
    }
}

#[derive(Debug, Default)]
struct History {
    events: VecDeque<Arc<Retained>>,
    /// The resourceVersion of the newest event dropped from the history.
    compacted: u64,
}

/// A stored object, and the same as JSON: what its next change retains as `prev`.
#[derive(Debug)]
struct Stored {
    value: Arc<Value>,
    json: Arc<[u8]>,
}

impl Stored {
    fn new(value: Value) -> Self {
        let json = serde_json::to_vec(&value).unwrap_or_default().into();
        Self { value: Arc::new(value), json }
    }
}

type Objects = BTreeMap<(String, String), Stored>;

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
    /// The live feeds, per storage key.
    feeds: HashMap<String, Feeds>,
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
        Self {
            rv: 1,
            uid: 0,
            registry: Registry::new(),
            objects: BTreeMap::new(),
            history: HashMap::new(),
            history_limit,
            floor: 0,
            feeds: HashMap::new(),
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
        self.objects.get(key)?.get(&(ns.to_string(), name.to_string())).map(|v| &*v.value)
    }

    /// Every object of a resource, in one namespace or all, ordered by namespace and name.
    pub fn list<'a>(&'a self, key: &str, ns: Option<&'a str>) -> impl Iterator<Item = &'a Value> + 'a {
        self.list_after(key, ns, None)
    }

    /// The same, from just after `after` (a namespace and a name): where a paginated
    /// list goes on, found in the ordered map rather than by walking every object
    /// before it (a relist of 50,000 pods in pages of 500 walked them a hundred times).
    pub fn list_after<'a>(
        &'a self,
        key: &str,
        ns: Option<&'a str>,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        use std::ops::Bound;
        let start = match (after, ns) {
            (Some((n, m)), _) => Bound::Excluded((n.to_owned(), m.to_owned())),
            (None, Some(n)) => Bound::Included((n.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        self.objects
            .get(key)
            .into_iter()
            .flat_map(move |m| m.range((start.clone(), Bound::Unbounded)))
            .skip_while(move |((n, _), _)| ns.is_some_and(|w| n.as_str() < w))
            .take_while(move |((n, _), _)| ns.is_none_or(|w| w == n))
            .map(|(_, v)| &*v.value)
    }

    /// Every stored object with its storage key.
    pub fn everything(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.objects.iter().flat_map(|(k, m)| m.values().map(move |v| (k, &*v.value)))
    }

    /// Stores a new or changed object under a fresh resourceVersion; returns it as stored.
    pub fn put(&mut self, key: &str, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let id = (ns_of(&obj).to_string(), name_of(&obj).to_string());
        let stored = Stored::new(obj);
        let (value, json) = (stored.value.clone(), stored.json.clone());
        let prev = self.objects.entry(key.to_string()).or_default().insert(id, stored);
        let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
        let (prev, prev_json) = prev.map(|p| (p.value, p.json)).unzip();
        self.emit(
            Change { kind, key: key.into(), rv: self.rv, object: value.clone(), json, prev },
            prev_json,
        );
        Value::clone(&value)
    }

    /// Removes an object; returns it with the deletion's resourceVersion.
    pub fn remove(&mut self, key: &str, ns: &str, name: &str) -> Option<Value> {
        let prev = self.objects.get_mut(key)?.remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let mut obj = Value::clone(&prev.value);
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let gone = Stored::new(obj);
        let change = Change {
            kind: EventType::Deleted,
            key: key.into(),
            rv: self.rv,
            object: gone.value.clone(),
            json: gone.json,
            prev: Some(prev.value),
        };
        self.emit(change, Some(prev.json));
        Some(Value::clone(&gone.value))
    }

    /// Drops a whole resource (its CRD is gone) without events.
    pub fn drop_resource(&mut self, key: &str) {
        self.objects.remove(key);
    }

    /// Changes committed so far to the resource with storage key `key`.
    pub fn changes(&self, key: &str) -> u64 {
        self.changes.get(key).copied().unwrap_or(0)
    }

    /// Sends `change` to the live watches and retains it, with its objects as JSON.
    fn emit(&mut self, change: Change, prev_json: Option<Arc<[u8]>>) {
        *self.changes.entry(change.key.clone()).or_default() += 1;
        let change = Arc::new(change);
        let h = self.history.entry(change.key.clone()).or_default();
        h.events.push_back(Arc::new(Retained::new(&change, change.json.clone(), prev_json)));
        while h.events.len() > self.history_limit {
            if let Some(old) = h.events.pop_front() {
                h.compacted = old.rv;
            }
        }
        if let Some(feeds) = self.feeds.get_mut(&change.key) {
            feeds.send(&change);
        }
    }

    /// The retained changes over every resource and their size as JSON (the object
    /// of each; its `prev` is shared with the change before it).
    pub fn history_retained(&self) -> (usize, usize) {
        let changes = self.history.values().flat_map(|h| h.events.iter());
        changes.fold((0, 0), |(n, bytes), c| (n + 1, bytes + c.object.len()))
    }

    /// A live feed of the changes of the resource with storage key `key` from now on:
    /// all of them, or only those of objects that have or had one value at a field.
    pub fn subscribe(&mut self, key: &str, feed: Feed<'_>) -> broadcast::Receiver<Arc<Change>> {
        let feeds = self.feeds.entry(key.to_owned()).or_default();
        let (tx, capacity) = match feed {
            Feed::All => (&mut feeds.all, ALL_CAPACITY),
            Feed::Field(path, value) => {
                (feeds.by_field.entry(path).or_default().entry(value.to_owned()).or_default(), FIELD_CAPACITY)
            }
        };
        tx.get_or_insert_with(|| broadcast::channel(capacity).0).subscribe()
    }

    /// The retained changes of a resource newer than `rv` that `feed` carries.
    ///
    /// # Errors
    /// 410 Expired when `rv` is older than the retained history.
    pub fn since(&self, key: &str, rv: u64, feed: Feed<'_>) -> Result<Vec<Arc<Retained>>, Status> {
        let compacted = self.compacted(key);
        if rv < compacted {
            return Err(Status::expired(format!("too old resource version: {rv} ({compacted})")));
        }
        let Some(h) = self.history.get(key) else { return Ok(Vec::new()) };
        // the history is in resourceVersion order: the search does not walk the changes
        // a resumed watch has seen (hundreds of thousands at 5,000 nodes, under the lock)
        let newer = h.events.range(h.events.partition_point(|c| c.rv <= rv)..);
        Ok(newer.filter(|c| c.feeds(feed)).cloned().collect())
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
        assert_eq!(s.since("/configmaps", 3, Feed::All).unwrap().len(), 2);
        assert_eq!(s.since("/configmaps", 2, Feed::All).unwrap_err().code, 410);
        let gone = s.remove("/configmaps", "d", "c0").unwrap();
        assert_eq!(rv_of(&gone), 6);
        assert_eq!(s.list("/configmaps", Some("d")).count(), 3);
        assert_ne!(s.next_uid(), s.next_uid());
        // a replay carries each change's object and the one before it
        s.put("/configmaps", json!({"metadata": {"name": "c1", "namespace": "d"}, "data": {"k": "v"}}));
        let replayed: Vec<Change> =
            s.since("/configmaps", 6, Feed::All).unwrap().iter().map(|r| r.change("/configmaps")).collect();
        assert_eq!(replayed.len(), 1);
        assert_eq!((replayed[0].kind, replayed[0].rv), (EventType::Modified, 7));
        assert_eq!(replayed[0].object["data"]["k"], "v");
        assert_eq!(rv_of(&replayed[0].object), 7);
        assert_eq!(replayed[0].prev.as_ref().map(|p| rv_of(p)), Some(3));
        // its JSON, as a watch writes it, is the object's
        assert_eq!(serde_json::from_slice::<Value>(&replayed[0].json).unwrap(), *replayed[0].object);
        assert_eq!(s.history_retained().0, 2);
        s.forget_history();
        assert_eq!(s.since("/configmaps", 7, Feed::All).unwrap_err().code, 410);
        assert_eq!(s.since("/secrets", 7, Feed::All).unwrap_err().code, 410, "also resources without events");
        assert!(s.since("/secrets", 8, Feed::All).unwrap().is_empty());
    }

    #[test]
    fn feeds_carry_the_changes_of_their_field_value() {
        let mut s = State::new(10);
        let pod = |name: &str, node: Option<&str>| {
            let mut p = json!({"metadata": {"name": name, "namespace": "d"}, "spec": {}});
            if let Some(n) = node {
                p["spec"]["nodeName"] = json!(n);
            }
            p
        };
        let mut all = s.subscribe("/pods", Feed::All);
        let mut n1 = s.subscribe("/pods", Feed::Field("spec.nodeName", "n1"));
        let mut unbound = s.subscribe("/pods", Feed::Field("spec.nodeName", ""));
        let mut named = s.subscribe("/pods", Feed::Field("metadata.name", "a"));
        let mut maps = s.subscribe("/configmaps", Feed::All);
        s.put("/pods", pod("a", None));
        s.put("/pods", pod("a", Some("n1")));
        s.put("/pods", pod("b", Some("n2")));
        s.put("/pods", pod("a", Some("n2")));
        s.put("/configmaps", json!({"metadata": {"name": "c", "namespace": "d"}}));
        let got = |rx: &mut broadcast::Receiver<Arc<Change>>| {
            std::iter::from_fn(|| rx.try_recv().ok()).map(|c| c.rv).collect::<Vec<_>>()
        };
        assert_eq!(got(&mut all), [2, 3, 4, 5]);
        assert_eq!(got(&mut n1), [3, 5], "bound to n1, and moved away from it");
        assert_eq!(got(&mut unbound), [2, 3], "created unbound, then bound");
        assert_eq!(got(&mut named), [2, 3, 5]);
        assert_eq!(got(&mut maps), [6]);
        // a replay carries what the live feed did
        let replayed = |feed| s.since("/pods", 1, feed).unwrap().iter().map(|r| r.rv).collect::<Vec<_>>();
        assert_eq!(replayed(Feed::All), [2, 3, 4, 5]);
        assert_eq!(replayed(Feed::Field("spec.nodeName", "n1")), [3, 5]);
        assert_eq!(replayed(Feed::Field("spec.nodeName", "")), [2, 3]);
        assert_eq!(replayed(Feed::Field("metadata.name", "a")), [2, 3, 5]);
        // a feed nobody receives is dropped at its next change; a new watch gets a new one
        drop(n1);
        s.put("/pods", pod("c", Some("n1")));
        assert!(!s.feeds["/pods"].by_field["spec.nodeName"].contains_key("n1"));
        let mut n1 = s.subscribe("/pods", Feed::Field("spec.nodeName", "n1"));
        s.put("/pods", pod("c", Some("n1")));
        assert_eq!(got(&mut n1), [8]);
    }

    #[test]
    fn lists_go_on_just_after_a_key_in_their_namespace() {
        let mut s = State::new(10);
        for (ns, name) in [("a", "x"), ("b", "p"), ("b", "q"), ("b", "r"), ("c", "p")] {
            s.put("/pods", json!({"metadata": {"name": name, "namespace": ns}}));
        }
        let names = |ns, after| {
            s.list_after("/pods", ns, after)
                .map(|o| format!("{}/{}", ns_of(o), name_of(o)))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None, None), ["a/x", "b/p", "b/q", "b/r", "c/p"]);
        assert_eq!(names(None, Some(("b", "p"))), ["b/q", "b/r", "c/p"]);
        assert_eq!(names(Some("b"), None), ["b/p", "b/q", "b/r"]);
        assert_eq!(names(Some("b"), Some(("b", "q"))), ["b/r"]);
        assert_eq!(names(Some("b"), Some(("a", "x"))), ["b/p", "b/q", "b/r"], "a key before the namespace");
        assert!(names(Some("b"), Some(("b", "r"))).is_empty());
        assert!(names(Some("a"), Some(("b", "p"))).is_empty(), "a key past the namespace");
        assert!(names(Some("z"), None).is_empty());
    }
}
