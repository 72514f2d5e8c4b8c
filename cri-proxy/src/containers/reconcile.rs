//! Keeps the records true to the runtime: at start (after finishing interrupted
//! recreates) and then periodically, records of containers the runtime no longer has
//! are dropped, and requests written ahead before a crash are linked to the
//! container the runtime made for them. Runs in the background and retries while the
//! runtime is down: the proxy serves (and fails open) meanwhile.

use std::{collections::HashSet, path::PathBuf, sync::Arc, time::Duration};

use stevedore_proto::cri::{CreateContainerRequest, ListContainersRequest};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{info, warn};

use super::{
    Containers, recreate,
    store::{PendingKey, Store},
};

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Recreates finished from the journal.
    pub replayed: usize,
    /// Requests written ahead and now linked to their container.
    pub linked: usize,
    /// Records of removed containers dropped.
    pub dropped: usize,
    /// Containers the runtime has that no record describes (recreated the kubelet way).
    pub unrecorded: usize,
}

/// One pass: journal replay (if `dir`), pending links, dropped records.
///
/// # Errors
/// The runtime could not be listed.
pub async fn pass(
    containers: &Containers,
    dir: Option<&PathBuf>,
    pending: &mut Vec<(PendingKey, CreateContainerRequest)>,
) -> Result<Pass, Status> {
    let mut out = Pass::default();
    if let Some(dir) = dir {
        out.replayed = recreate::replay(containers, dir).await?;
    }
    let store: &Store = containers.store();
    // Records made while the list is under way are not in it: only older ones may go.
    let before: HashSet<String> = store.ids().into_iter().collect();
    let listed = containers
        .runtime()
        .list_containers(ListContainersRequest { filter: None })
        .await?
        .into_inner()
        .containers;
    for (key, request) in pending.drain(..) {
        let made = listed.iter().find(|c| {
            c.pod_sandbox_id == key.sandbox
                && c.metadata.as_ref().is_some_and(|m| m.name == key.name && m.attempt == key.attempt)
        });
        match made {
            Some(c) if store.get(&c.id).is_none() => {
                store.created(key, &c.id, request);
                out.linked += 1;
            }
            _ => store.abandon(key),
        }
    }
    let live: HashSet<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    for id in before {
        if !live.contains(id.as_str()) {
            store.remove(&id);
            containers.forget(&id);
            out.dropped += 1;
        }
    }
    out.unrecorded = listed.iter().filter(|c| store.get(&c.id).is_none()).count();
    Ok(out)
}

/// Runs a pass at start (retrying every `retry` until the runtime answers), then one
/// every `every`, until `shutdown`.
pub async fn run(
    containers: Arc<Containers>,
    mut pending: Vec<(PendingKey, CreateContainerRequest)>,
    every: Duration,
    retry: Duration,
    shutdown: CancellationToken,
) {
    let dir = containers.store().dir().map(std::path::Path::to_path_buf);
    let mut first = true;
    loop {
        let wait = match pass(&containers, dir.as_ref(), &mut pending).await {
            Ok(p) => {
                if first || p != Pass::default() {
                    info!(
                        replayed = p.replayed,
                        linked = p.linked,
                        dropped = p.dropped,
                        unrecorded = p.unrecorded,
                        records = containers.store().len(),
                        "container records reconciled with the runtime"
                    );
                }
                first = false;
                every
            }
            Err(status) => {
                warn!(%status, "cannot list the runtime's containers to reconcile records; retrying");
                if first { retry } else { every }
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
