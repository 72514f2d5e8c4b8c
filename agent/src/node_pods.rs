//! The pods bound to this node, watched once for every duty that reads them: the
//! DaemonSet and BroadcastJob runners ([`crate::node_local`]), container recreation
//! ([`crate::recreate`]) and in-place env updates ([`crate::metadata_env`]). Each had a
//! watch of its own, so every change of a pod on the node reached the agent three
//! times.
//!
//! One watch fills one store; every change is then announced to each duty that
//! subscribed. A duty that falls behind, or a watch that lists again, is told to read
//! the store again ([`PodEvent::Resync`]): nothing is lost, and a duty never waits on
//! another.

use std::sync::Arc;

use futures_util::{Stream, StreamExt as _, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt as _,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Changes announced that a duty has not read yet before it is told to resync.
const BACKLOG: usize = 1024;

/// A change of the node's pods.
#[derive(Clone, Debug)]
pub enum PodEvent {
    /// A pod was created or changed.
    Applied(Arc<Pod>),
    /// A pod is gone.
    Deleted(Arc<Pod>),
    /// Any pod may have changed (the watch listed again, or this duty fell behind):
    /// read the store.
    Resync,
}

/// The node's pods: one store, and the changes to it for each duty that subscribes.
#[derive(Clone)]
pub struct NodePods {
    store: Store<Pod>,
    events: broadcast::Sender<PodEvent>,
}

impl std::fmt::Debug for NodePods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePods").field("pods", &self.store.state().len()).finish_non_exhaustive()
    }
}

impl NodePods {
    /// Starts the watch of `node`'s pods; it runs until `shutdown`.
    pub fn start(node: &str, client: Client, shutdown: CancellationToken) -> Self {
        let (store, writer) = reflector::store();
        let (events, _) = broadcast::channel(BACKLOG);
        let on_node = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let changes = watcher(Api::<Pod>::all(client), on_node).default_backoff().reflect(writer);
        let tx = events.clone();
        tokio::spawn(async move {
            let mut changes = std::pin::pin!(changes.take_until(shutdown.cancelled_owned()));
            while let Some(change) = changes.next().await {
                let event = match change {
                    Ok(watcher::Event::Apply(p)) => PodEvent::Applied(Arc::new(p)),
                    Ok(watcher::Event::Delete(p)) => PodEvent::Deleted(Arc::new(p)),
                    Ok(watcher::Event::InitDone) => PodEvent::Resync,
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                    Err(error) => {
                        warn!(%error, watching = "its pods", "watch failed; retrying");
                        continue;
                    }
                };
                // no subscriber yet is fine: each reads the store when it starts
                let _ = tx.send(event);
            }
            debug!("the node's pod watch ended");
        });
        Self { store, events }
    }

    /// The pods as last seen.
    pub fn store(&self) -> Store<Pod> {
        self.store.clone()
    }

    /// The changes from now on, a [`PodEvent::Resync`] first (whatever came before
    /// is in the store, once it is ready), and again whenever this subscriber falls
    /// behind. Ends when the watch does.
    pub fn changes(&self) -> impl Stream<Item = PodEvent> + Send + 'static {
        let rx = self.events.subscribe();
        let first = stream::once(std::future::ready(PodEvent::Resync));
        let rest = stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(event) => Some((event, rx)),
                Err(RecvError::Lagged(_)) => Some((PodEvent::Resync, rx)),
                Err(RecvError::Closed) => None,
            }
        });
        first.chain(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_duty_reads_the_store_first_and_whenever_it_falls_behind() {
        let (store, _writer) = reflector::store();
        let (events, _) = broadcast::channel(BACKLOG);
        let pods = NodePods { store, events: events.clone() };
        let mut changes = std::pin::pin!(pods.changes());
        assert!(matches!(changes.next().await, Some(PodEvent::Resync)), "the store first");
        let pod = Arc::new(Pod::default());
        events.send(PodEvent::Applied(pod.clone())).unwrap();
        assert!(matches!(changes.next().await, Some(PodEvent::Applied(_))));
        for _ in 0..=BACKLOG {
            events.send(PodEvent::Deleted(pod.clone())).unwrap();
        }
        assert!(matches!(changes.next().await, Some(PodEvent::Resync)), "fell behind: the store again");
        drop((pods, events));
        let rest: Vec<PodEvent> = changes.collect().await;
        assert_eq!(rest.len(), BACKLOG, "then the newest changes, and the end with the watch");
        assert!(rest.iter().all(|e| matches!(e, PodEvent::Deleted(_))));
    }
}
