//! Keeps the records true to the runtime: at start (after finishing interrupted
//! recreates) and then periodically, records of containers the runtime no longer has
//! are dropped, and requests written ahead before a crash are linked to the
//! container the runtime made for them; containers no record describes get one rebuilt
//! from the runtime's verbose status where it tells enough ([`super::rebuild`]). Runs
//! in the background and retries while the runtime is down: the proxy serves (and
//! fails open) meanwhile.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use stevedore_proto::cri::{
    Container, ContainerStatusRequest, CreateContainerRequest, ListContainersRequest, PodSandboxStatusRequest,
};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{info, warn};

use super::{
    Containers, rebuild, recreate,
    store::{PendingKey, Store},
};

/// How old an unrecorded container must be before its record is rebuilt: a younger
/// one may be kubelet's own create whose record is still being written.
pub const REBUILD_MIN_AGE: Duration = Duration::from_secs(5);

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Recreates finished from the journal.
    pub replayed: usize,
    /// Requests written ahead and now linked to their container.
    pub linked: usize,
    /// Records of removed containers dropped.
    pub dropped: usize,
    /// Containers without a record whose record was rebuilt from the runtime.
    pub rebuilt: usize,
    /// Containers the runtime has that no record describes still (recreated the
    /// kubelet way): the runtime did not tell enough, or they are younger than
    /// [`REBUILD_MIN_AGE`] (see `young`).
    pub unrecorded: usize,
    /// Of `unrecorded`, those left for the next pass for being too young.
    pub young: usize,
}

/// One pass: journal replay (if `dir`), pending links, dropped records, rebuilt
/// records.
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
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut sandboxes = HashMap::new();
    for c in listed.iter().filter(|c| store.get(&c.id).is_none()) {
        let created = Duration::from_nanos(u64::try_from(c.created_at).unwrap_or(0));
        if now.saturating_sub(created) < REBUILD_MIN_AGE {
            out.young += 1;
            out.unrecorded += 1;
            continue;
        }
        match rebuild_one(containers, c, &mut sandboxes).await {
            Ok(request) => {
                // kubelet may have created it meanwhile, with its own record.
                if store.get(&c.id).is_none() {
                    store.put(&c.id, request);
                    out.rebuilt += 1;
                    info!(container.id = %c.id, sandbox.id = %c.pod_sandbox_id, "record rebuilt from the runtime");
                }
            }
            Err(reason) => {
                out.unrecorded += 1;
                warn!(container.id = %c.id, %reason, "cannot rebuild the record of a container; it is recreated the kubelet way");
            }
        }
    }
    Ok(out)
}

/// The request that made `c`, from the runtime's verbose statuses of it and of its
/// sandbox (`sandboxes` caches the latter's infos for the pass).
async fn rebuild_one(
    containers: &Containers,
    c: &Container,
    sandboxes: &mut HashMap<String, Result<String, String>>,
) -> Result<CreateContainerRequest, String> {
    let info = containers
        .runtime()
        .container_status(ContainerStatusRequest { container_id: c.id.clone(), verbose: true })
        .await
        .map_err(|s| format!("container status: {}", s.message()))?
        .into_inner()
        .info
        .remove("info")
        .ok_or_else(|| rebuild::RebuildError::NoInfo.to_string())?;
    let sandbox_id = rebuild::sandbox_id_of(&info).map_err(|e| format!("container info: {e}"))?;
    if sandbox_id != c.pod_sandbox_id {
        return Err(format!("container info: sandboxID {sandbox_id} is not the listed {}", c.pod_sandbox_id));
    }
    if !sandboxes.contains_key(&sandbox_id) {
        let got = containers
            .runtime()
            .pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: sandbox_id.clone(), verbose: true })
            .await
            .map_err(|s| format!("sandbox status: {}", s.message()))
            .and_then(|r| {
                r.into_inner().info.remove("info").ok_or_else(|| {
                    "sandbox status: the runtime's verbose status has no info[\"info\"]".to_owned()
                })
            });
        sandboxes.insert(sandbox_id.clone(), got);
    }
    let sandbox_info = sandboxes.get(&sandbox_id).cloned().unwrap_or_else(|| Err(String::new()))?;
    let config = rebuild::container_config_of(&info).map_err(|e| format!("container info: {e}"))?;
    let sandbox_config =
        rebuild::sandbox_config_of(&sandbox_info).map_err(|e| format!("sandbox info: {e}"))?;
    Ok(CreateContainerRequest {
        pod_sandbox_id: sandbox_id,
        config: Some(config),
        sandbox_config: Some(sandbox_config),
    })
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
                        rebuilt = p.rebuilt,
                        unrecorded = p.unrecorded,
                        records = containers.store().len(),
                        "container records reconciled with the runtime"
                    );
                }
                first = false;
                // Containers too young to rebuild are looked at again soon.
                if p.young > 0 { every.min(REBUILD_MIN_AGE) } else { every }
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
