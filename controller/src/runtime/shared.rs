//! Watches shared by several controllers: one reflector per kind, its store read by
//! every controller that needs the kind, and a readiness that any number of
//! reconcilers may wait for.
//!
//! kube's own `Store::wait_until_ready` keeps one waker: of several tasks waiting at
//! once, only the last to poll is woken (two tasks waiting on one kube-runtime 5.0
//! store: one woke). A DaemonSet reconcile that waited for the
//! Node store beside the NodeImage controller's runner (which waits for the same
//! store) never woke, and a restarted controller left its DaemonSets untouched. So the
//! reconcilers wait on [`SharedStore::wait_until_ready`], a `watch` channel that wakes
//! every waiter, and kube's waiter is left to the one `Controller` built on the store.

use std::{
    collections::HashMap,
    hash::{Hash as _, Hasher as _},
    ops::Deref,
    sync::Arc,
};

use futures_util::{Stream, StreamExt as _};
use kube::runtime::{
    reflector::{self, Lookup, Store, store::Writer},
    watcher,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The shared watch stopped before it listed once.
#[derive(Debug, thiserror::Error)]
#[error("the shared watch stopped before it listed")]
pub struct Stopped;

/// A reflector store filled by a shared watch, and whether that watch has listed.
/// Reads go to the [`Store`] it derefs to.
#[derive(Clone)]
pub struct SharedStore<K: Lookup + Clone + 'static>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    listed: watch::Receiver<bool>,
}

impl<K: Lookup + Clone + 'static> std::fmt::Debug for SharedStore<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore").field("listed", &*self.listed.borrow()).finish_non_exhaustive()
    }
}

impl<K: Lookup + Clone + 'static> Deref for SharedStore<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    type Target = Store<K>;

    fn deref(&self) -> &Store<K> {
        &self.store
    }
}

impl<K: Lookup + Clone + 'static> SharedStore<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    /// A store its watch has already listed (for tests, and for stores filled by
    /// hand).
    #[must_use]
    pub fn listed(store: Store<K>) -> Self {
        let (_, listed) = watch::channel(true);
        Self { store, listed }
    }

    /// The store alone (for a `Controller` built on it).
    #[must_use]
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Returns once the watch has listed once.
    ///
    /// # Errors
    /// The watch stopped first.
    pub async fn wait_until_ready(&self) -> Result<(), Stopped> {
        let mut listed = self.listed.clone();
        listed.wait_for(|l| *l).await.map(|_| ()).map_err(|_| Stopped)
    }
}

/// A shared store of `K` that broadcasts to `buffer` events per subscriber: the
/// store, its writer (to subscribe to and hand to [`drive`]), and the sender of its
/// readiness (also for [`drive`]).
#[must_use]
pub fn store<K>(buffer: usize) -> (SharedStore<K>, Writer<K>, watch::Sender<bool>)
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (store, writer) = reflector::store_shared(buffer);
    let (tx, listed) = watch::channel(false);
    (SharedStore { store, listed }, writer, tx)
}

/// A store of `K` that no controller subscribes to (a cache reconcilers read), with
/// its writer and the sender of its readiness, as [`store`].
#[must_use]
pub fn cache<K>() -> (SharedStore<K>, Writer<K>, watch::Sender<bool>)
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (store, writer) = reflector::store();
    let (tx, listed) = watch::channel(false);
    (SharedStore { store, listed }, writer, tx)
}

/// Drives `events` (a reflector over the writer of [`store`] or [`cache`]) until `stop`, marking
/// the store listed at its first complete list, and logging failures: the watch
/// retries with backoff, and while it cannot list, the reconcilers reading its store
/// wait. `kind` names it in logs.
pub async fn drive<K, S>(kind: &'static str, events: S, listed: watch::Sender<bool>, stop: &CancellationToken)
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            e = events.next() => match e {
                Some(Ok(watcher::Event::InitDone)) => {
                    if !listed.send_replace(true) {
                        debug!(kind, "shared watch listed");
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => warn!(kind, %error, "shared watch failed; retrying"),
                None => return,
            },
            () = stop.cancelled() => return,
        }
    }
}

/// Passes on only the objects whose `fingerprint` changed since the last one seen
/// under their name (a first sighting passes). For controllers that map each event of
/// a kind to every workload: a node's heartbeat changes nothing a placement reads, and
/// would otherwise start a pass of every DaemonSet and BroadcastJob over every node.
pub fn changes<K, F>(objects: impl Stream<Item = Arc<K>>, fingerprint: F) -> impl Stream<Item = Arc<K>>
where
    K: Lookup + 'static,
    K::DynamicType: Default,
    F: Fn(&K) -> u64,
{
    let mut seen: HashMap<String, u64> = HashMap::new();
    objects.filter_map(move |o| {
        let name = o.name().map(|n| n.into_owned()).unwrap_or_default();
        let key = format!("{}/{name}", o.namespace().as_deref().unwrap_or_default());
        let print = fingerprint(&o);
        let changed = seen.insert(key, print) != Some(print);
        std::future::ready(changed.then_some(o))
    })
}

/// The hash of what `value` serialises to (a fingerprint for [`changes`]).
pub fn fingerprint_of(value: &impl serde::Serialize) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    serde_json::to_string(value).unwrap_or_default().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use k8s_openapi::api::core::v1::Node;
    use kube::api::ObjectMeta;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_concurrent_waiter_wakes_when_the_watch_lists() {
        let (nodes, _writer, tx) = store::<Node>(16);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let nodes = nodes.clone();
                tokio::spawn(async move { nodes.wait_until_ready().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "nothing listed yet");

        let stop = CancellationToken::new();
        let events = stream::iter([Ok(watcher::Event::<Node>::Init), Ok(watcher::Event::InitDone)])
            .chain(stream::pending());
        let watch = tokio::spawn({
            let stop = stop.clone();
            async move { drive("Node", events, tx, &stop).await }
        });
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(1), w).await.expect("woken").unwrap().unwrap();
        }
        stop.cancel();
        watch.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_stops_unlisted_fails_its_waiters() {
        let (nodes, _writer, tx) = store::<Node>(16);
        let stop = CancellationToken::new();
        drive("Node", stream::iter([Ok(watcher::Event::<Node>::Init)]), tx, &stop).await;
        assert!(nodes.wait_until_ready().await.is_err());
    }

    fn node(name: &str, label: &str, rv: &str) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("role".to_owned(), label.to_owned())].into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        })
    }

    #[tokio::test]
    async fn only_changed_fingerprints_pass() {
        let events = futures_util::stream::iter([
            node("a", "edge", "1"),
            node("b", "edge", "2"),
            node("a", "edge", "3"), // a heartbeat: same labels
            node("a", "core", "4"),
            node("b", "edge", "5"),
        ]);
        let passed: Vec<String> = changes(events, |n: &Node| fingerprint_of(&n.metadata.labels))
            .map(|n| n.metadata.resource_version.clone().unwrap_or_default())
            .collect()
            .await;
        assert_eq!(passed, ["1", "2", "4"]);
    }
}
