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
    Container, ContainerStatusRequest, CreateContainerRequest, ListContainersRequest, PodSandboxConfig,
    PodSandboxStatusRequest,
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
/// sandbox (`sandboxes` caches the sandboxes' configs for the pass).
async fn rebuild_one(
    containers: &Containers,
    c: &Container,
    sandboxes: &mut HashMap<String, Result<PodSandboxConfig, String>>,
) -> Result<CreateContainerRequest, String> {
    let info = containers
        .runtime()
        .container_status(ContainerStatusRequest { container_id: c.id.clone(), verbose: true })
        .await
        .map_err(|s| format!("container status: {}", s.message()))?
        .into_inner()
        .info
        .remove("info")
        .ok_or_else(|| format!("container status: {}", rebuild::RebuildError::NoInfo))?;
    let sandbox_id = rebuild::sandbox_id_of(&info).map_err(|e| format!("container info: {e}"))?;
    if sandbox_id != c.pod_sandbox_id {
        return Err(format!("container info: sandboxID {sandbox_id} is not the listed {}", c.pod_sandbox_id));
    }
    let config = rebuild::container_config_of(&info).map_err(|e| format!("container info: {e}"))?;
    let sandbox_config = match sandboxes.get(&sandbox_id) {
        Some(known) => known.clone()?,
        None => {
            let got = sandbox_config(containers, &sandbox_id).await;
            sandboxes.insert(sandbox_id.clone(), got.clone());
            got?
        }
    };
    Ok(CreateContainerRequest {
        pod_sandbox_id: sandbox_id,
        config: Some(config),
        sandbox_config: Some(sandbox_config),
    })
}

/// The config sandbox `id` was run with, from the runtime's verbose status.
async fn sandbox_config(containers: &Containers, id: &str) -> Result<PodSandboxConfig, String> {
    let info = containers
        .runtime()
        .pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: id.to_owned(), verbose: true })
        .await
        .map_err(|s| format!("sandbox status: {}", s.message()))?
        .into_inner()
        .info
        .remove("info")
        .ok_or_else(|| format!("sandbox status: {}", rebuild::RebuildError::NoInfo))?;
    rebuild::sandbox_config_of(&info).map_err(|e| format!("sandbox info: {e}"))
}

/// How long after pass `p` the next one comes: containers too young to rebuild are
/// looked at again once they are old enough, the rest every `every`.
fn next_wait(p: &Pass, every: Duration) -> Duration {
    if p.young > 0 { every.min(REBUILD_MIN_AGE) } else { every }
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
                        young = p.young,
                        records = containers.store().len(),
                        "container records reconciled with the runtime"
                    );
                }
                first = false;
                next_wait(&p, every)
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

#[cfg(test)]
mod tests {
    use stevedore_proto::cri::{ContainerMetadata, ContainerState};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::{fake::FakeRuntime, metrics::Metrics};

    const CONTAINER_INFO: &str = include_str!("../../tests/fixtures/container-info.json");
    const SANDBOX_INFO: &str = include_str!("../../tests/fixtures/sandbox-info.json");
    const SANDBOX_ID: &str = "63c2bb39e6b4cf001134552448efda93af9378a28181bd6a1be3beb797a16767";

    fn listed(id: &str, age: Duration) -> Container {
        let created = SystemTime::now() - age;
        Container {
            id: id.into(),
            pod_sandbox_id: SANDBOX_ID.into(),
            metadata: Some(ContainerMetadata { name: id.into(), attempt: 0 }),
            state: ContainerState::ContainerRunning as i32,
            created_at: i64::try_from(created.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos())
                .unwrap(),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unrecorded_containers_get_records_rebuilt_where_the_runtime_tells_enough() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("runtime.sock");
        let fake = FakeRuntime::default();
        let stop = CancellationToken::new();
        fake.serve(&socket, stop.clone()).unwrap();
        let old = Duration::from_secs(60);
        fake.set_containers(vec![
            listed("good", old),
            listed("unknown-field", old),
            listed("no-info", old),
            listed("young", Duration::ZERO),
            listed("recorded", old),
            Container { pod_sandbox_id: "sb2".into(), ..listed("bad-sandbox", old) },
        ]);
        // A container whose sandbox's config has a field this proxy does not know.
        fake.set_verbose_info("bad-sandbox", &CONTAINER_INFO.replace(SANDBOX_ID, "sb2"));
        let bad_sandbox =
            SANDBOX_INFO.replacen("\"log_directory\"", "\"hostname_v2\":\"x\",\"log_directory\"", 1);
        assert_ne!(bad_sandbox, SANDBOX_INFO);
        fake.set_verbose_info("sb2", &bad_sandbox);
        fake.set_verbose_info("good", CONTAINER_INFO);
        fake.set_verbose_info("young", CONTAINER_INFO);
        fake.set_verbose_info("recorded", CONTAINER_INFO);
        let unknown =
            CONTAINER_INFO.replacen("\"no_new_privs\":true", "\"no_new_privs\":true,\"new_knob\":1", 1);
        assert_ne!(unknown, CONTAINER_INFO);
        fake.set_verbose_info("unknown-field", &unknown);
        fake.set_verbose_info(SANDBOX_ID, SANDBOX_INFO);

        let containers = Containers::new(Store::in_memory(), &socket, Arc::new(Metrics::default()));
        let kubelets = CreateContainerRequest { pod_sandbox_id: SANDBOX_ID.into(), ..Default::default() };
        containers.store().put("recorded", kubelets.clone());
        let p = pass(&containers, None, &mut Vec::new()).await.unwrap();
        assert_eq!(p, Pass { rebuilt: 1, unrecorded: 4, young: 1, ..Default::default() });

        let want = rebuild::request_of(CONTAINER_INFO, SANDBOX_INFO).unwrap();
        assert_eq!(containers.store().get("good").unwrap().request, want);
        assert_eq!(containers.store().get("recorded").unwrap().request, kubelets, "kubelet's record is kept");
        for id in ["unknown-field", "no-info", "young", "bad-sandbox"] {
            assert!(containers.store().get(id).is_none(), "{id}: no partial record");
        }
        let sandbox_calls = fake.calls().iter().filter(|c| c.method == "pod_sandbox_status").count();
        assert_eq!(sandbox_calls, 2, "a sandbox's status is asked once a pass");

        // The next pass has nothing new to rebuild and does not rewrite the record.
        let p = pass(&containers, None, &mut Vec::new()).await.unwrap();
        assert_eq!(p, Pass { rebuilt: 0, unrecorded: 4, young: 1, ..Default::default() });
        stop.cancel();
    }

    #[test]
    fn young_unrecorded_containers_bring_the_next_pass_forward() {
        let every = Duration::from_secs(300);
        assert_eq!(next_wait(&Pass::default(), every), every);
        assert_eq!(next_wait(&Pass { unrecorded: 2, ..Default::default() }, every), every);
        assert_eq!(
            next_wait(&Pass { unrecorded: 2, young: 1, ..Default::default() }, every),
            REBUILD_MIN_AGE
        );
        assert_eq!(
            next_wait(&Pass { young: 1, ..Default::default() }, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
