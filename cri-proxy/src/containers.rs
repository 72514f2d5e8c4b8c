//! Containers as the proxy sees them: the requests kubelet sent ([`store`]), the
//! lifecycle events of its calls and of recreates, and fast recreation
//! ([`recreate`]) serialised against kubelet ([`handlers`]).

pub mod handlers;
pub mod rebuild;
pub mod reconcile;
pub mod recreate;
pub mod store;

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use stevedore_proto::{
    control::{ContainerEvent, container_event::Kind},
    cri::runtime_service_client::RuntimeServiceClient,
    uds,
};
use tokio::sync::{broadcast, watch};
use tonic::transport::Channel;

use self::store::{Record, Store};
use crate::metrics::Metrics;

/// Label kubelet puts on every container: the pod's name.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// Label kubelet puts on every container: the pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Label kubelet puts on every container: the pod's uid.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Annotation kubelet puts on every container: its restart count.
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";

/// A container's place: its sandbox and its name in the pod. kubelet and a recreate
/// must never create the same place's next attempt at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    /// The sandbox id.
    pub sandbox: String,
    /// The container's name in the pod.
    pub name: String,
}

/// How a recreate of a place ended, for a kubelet call that waited for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// The new container's id.
    pub id: String,
    /// Its attempt.
    pub attempt: u32,
}

/// Shared state of the container features.
#[derive(Debug)]
pub struct Containers {
    store: Store,
    events: broadcast::Sender<ContainerEvent>,
    /// Places being recreated: the watch ends `Some(result)` when the recreate ends.
    recreating: Mutex<HashMap<Place, watch::Receiver<Option<Option<Produced>>>>>,
    /// What recreates produced, by place: kubelet asking for that attempt gets it.
    produced: Mutex<HashMap<Place, Produced>>,
    /// Containers a recreate started that kubelet has not asked to start yet.
    started_by_recreate: Mutex<std::collections::HashSet<String>>,
    runtime: RuntimeServiceClient<Channel>,
    metrics: Arc<Metrics>,
}

impl Containers {
    /// Container features over `store`, reaching the runtime at `runtime_socket` for
    /// recreates.
    pub fn new(store: Store, runtime_socket: &Path, metrics: Arc<Metrics>) -> Self {
        let runtime = RuntimeServiceClient::new(uds::connect_lazy(runtime_socket))
            .max_decoding_message_size(uds::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(uds::MAX_MESSAGE_SIZE);
        Self {
            store,
            events: broadcast::channel(1024).0,
            recreating: Mutex::default(),
            produced: Mutex::default(),
            started_by_recreate: Mutex::default(),
            runtime,
            metrics,
        }
    }

    /// The records.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A client of the runtime itself (not through the proxy's handlers).
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// Whether the sandbox `id` exists and is ready (false when it cannot be told).
    pub async fn sandbox_ready(&self, id: &str) -> bool {
        let req =
            stevedore_proto::cri::PodSandboxStatusRequest { pod_sandbox_id: id.to_owned(), verbose: false };
        self.runtime().pod_sandbox_status(req).await.is_ok_and(|r| {
            r.into_inner()
                .status
                .is_some_and(|s| s.state == stevedore_proto::cri::PodSandboxState::SandboxReady as i32)
        })
    }

    /// Lifecycle events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }

    /// Publishes an event about `id` (described by `record`, if known).
    pub fn publish(&self, kind: Kind, id: &str, record: Option<&Record>, took: Duration, origin: &str) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let mut event = ContainerEvent {
            kind: kind as i32,
            container_id: id.to_owned(),
            at_unix_nanos: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            duration_micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            origin: origin.to_owned(),
            ..Default::default()
        };
        if let Some(r) = record {
            event.sandbox_id = r.sandbox_id().to_owned();
            event.container_name = r.name().to_owned();
            event.attempt = r.attempt();
            if let Some(labels) = r.request.config.as_ref().map(|c| &c.labels) {
                let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
                event.pod_name = get(POD_NAME_LABEL);
                event.pod_namespace = get(POD_NAMESPACE_LABEL);
                event.pod_uid = get(POD_UID_LABEL);
            }
        }
        let _ = self.events.send(event);
    }

    /// Marks `place` as being recreated. `None` if a recreate of it is under way.
    fn begin_recreate(&self, place: &Place) -> Option<watch::Sender<Option<Option<Produced>>>> {
        let mut map = self.recreating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.get(place).is_some_and(|rx| rx.borrow().is_none()) {
            return None;
        }
        let (tx, rx) = watch::channel(None);
        map.insert(place.clone(), rx);
        Some(tx)
    }

    /// Ends the recreate of `place`: wakes kubelet calls that waited.
    fn end_recreate(
        &self,
        place: &Place,
        tx: &watch::Sender<Option<Option<Produced>>>,
        produced: Option<Produced>,
    ) {
        if let Some(p) = &produced {
            self.produced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(place.clone(), p.clone());
        }
        self.recreating.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(place);
        let _ = tx.send(Some(produced));
    }

    /// For kubelet's `CreateContainer` of `place` at `attempt`: waits for a recreate
    /// of that place under way, then returns the container a recreate produced for
    /// that attempt, if any (kubelet gets it instead of a second one).
    pub async fn adopt(&self, place: &Place, attempt: u32) -> Option<Produced> {
        let waiting =
            self.recreating.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(place).cloned();
        if let Some(mut rx) = waiting {
            let _ = rx.wait_for(Option::is_some).await;
        }
        let produced =
            self.produced.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(place).cloned();
        produced.filter(|p| p.attempt == attempt)
    }

    /// Whether kubelet's `StartContainer` of `id` is answered without the runtime:
    /// a recreate started it already.
    pub fn take_started(&self, id: &str) -> bool {
        self.started_by_recreate.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id)
    }

    fn mark_started(&self, id: &str) {
        self.started_by_recreate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned());
    }

    /// Forgets what recreates produced for containers that are gone.
    fn forget(&self, id: &str) {
        self.started_by_recreate.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
        self.produced.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|_, p| p.id != id);
    }
}

/// The runtime's container id from what a client may pass: a bare id, or a pod
/// status's `containerd://<id>`.
pub fn bare_id(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_ids_lose_their_scheme() {
        assert_eq!(bare_id("containerd://abc"), "abc");
        assert_eq!(bare_id("abc"), "abc");
    }

    #[tokio::test]
    async fn kubelet_waits_for_a_recreate_and_adopts_what_it_produced() {
        let c = Arc::new(Containers::new(Store::in_memory(), Path::new("/nonexistent.sock"), Arc::default()));
        let place = Place { sandbox: "sb".into(), name: "app".into() };
        let tx = c.begin_recreate(&place).unwrap();
        assert!(c.begin_recreate(&place).is_none(), "one recreate of a place at a time");
        let waiter = tokio::spawn({
            let c = c.clone();
            let place = place.clone();
            async move { c.adopt(&place, 1).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        c.end_recreate(&place, &tx, Some(Produced { id: "new".into(), attempt: 1 }));
        assert_eq!(waiter.await.unwrap(), Some(Produced { id: "new".into(), attempt: 1 }));
        assert_eq!(c.adopt(&place, 2).await, None, "another attempt is kubelet's own");
        c.forget("new");
        assert_eq!(c.adopt(&place, 1).await, None);
    }
}
