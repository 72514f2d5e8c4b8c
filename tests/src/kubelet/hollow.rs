//! Hollow nodes: no runtime at all. A pod's containers "run" as soon as the pod is
//! seen (init containers complete at once), an image change "restarts" the container
//! (restartCount+1), a deleted pod is deleted at once (grace 0). The status is computed
//! by the same [`status::pod_status`](super::status::pod_status) as for CRI nodes.
//!
//! [`HollowFleet`] runs many hollow nodes on one pod watcher and one heartbeat loop.
//! Cost, measured by the `hollow_fleet_of_1000_nodes` integration test on the
//! simulated API server (2 cores): see the README.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info_span, warn};

use super::status::{CtrObs, CtrState, Observed};
use super::sync::Outcome;
use super::{Config, Result, api, hash, node};

/// A made-up, stable pod IP in 100.64.0.0/10 for a pod uid.
pub fn pod_ip(uid: &str) -> String {
    let h = hash::container_hash(uid, "hollow") as u32;
    format!("100.{}.{}.{}", 64 + (h >> 16 & 0x3f), h >> 8 & 0xff, (h & 0xff).max(1))
}

/// What a hollow runtime "shows" for the pod.
pub fn observe(pod: &Pod, host_ip: &str, now: Timestamp) -> Observed {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let start = status.start_time.as_ref().map_or(now, |t| t.0);
    let mut containers = HashMap::new();
    let old = |name: &str, init: bool| {
        let list = if init { &status.init_container_statuses } else { &status.container_statuses };
        list.iter().flatten().find(|s| s.name == name).cloned()
    };
    let instance = |name: &str, image: &str, rc: i32, state: CtrState, started| CtrObs {
        id: format!("hollow-{uid}-{name}-{rc}"),
        state,
        restart_count: rc,
        exit_code: 0,
        reason: String::new(),
        message: String::new(),
        started_at: Some(started),
        finished_at: (state == CtrState::Exited).then_some(started),
        image: image.to_owned(),
        image_ref: format!("hollow://{image}"),
        hash: hash::container_hash_annotation(name, image),
        ready: state == CtrState::Running,
    };
    for c in spec.init_containers.iter().flatten() {
        let image = c.image.as_deref().unwrap_or("");
        containers.insert(c.name.clone(), vec![instance(&c.name, image, 0, CtrState::Exited, start)]);
    }
    for c in &spec.containers {
        let image = c.image.as_deref().unwrap_or("");
        let v = match old(&c.name, false) {
            Some(s) if s.image != image && s.state.as_ref().is_some_and(|x| x.running.is_some()) => {
                let mut prev = instance(&c.name, &s.image, s.restart_count, CtrState::Exited, start);
                prev.finished_at = Some(now);
                vec![instance(&c.name, image, s.restart_count + 1, CtrState::Running, now), prev]
            }
            Some(s) => {
                let started =
                    s.state.and_then(|x| x.running).and_then(|r| r.started_at).map_or(start, |t| t.0);
                vec![instance(&c.name, image, s.restart_count, CtrState::Running, started)]
            }
            None => vec![instance(&c.name, image, 0, CtrState::Running, start)],
        };
        containers.insert(c.name.clone(), v);
    }
    let host_network = spec.host_network == Some(true);
    Observed {
        sandbox_ready: true,
        pod_ip: if host_network { host_ip.to_owned() } else { pod_ip(&uid) },
        host_ip: host_ip.to_owned(),
        containers,
        waiting: HashMap::new(),
        now,
    }
}

/// One hollow sync: delete a deleted pod at once, else write its status.
pub async fn sync(client: &kube::Client, host_ip: &str, pod: &Pod) -> Result<Outcome> {
    if pod.metadata.deletion_timestamp.is_some() {
        api::delete_pod(client, pod).await?;
        return Ok(Outcome::Deleted);
    }
    if super::status::is_terminal(pod) {
        return Ok(Outcome::Synced);
    }
    api::write_status(client, pod, &observe(pod, host_ip, Timestamp::now())).await?;
    Ok(Outcome::Synced)
}

/// Many hollow nodes sharing one pod watcher and one heartbeat loop.
#[derive(Debug)]
pub struct HollowFleet {
    task: JoinHandle<()>,
}

impl HollowFleet {
    /// Registers every node (16 at a time), then runs until `shutdown`.
    pub async fn start(
        cfgs: Vec<Config>,
        client: kube::Client,
        shutdown: CancellationToken,
    ) -> Result<HollowFleet> {
        // owned futures: the fleet may be started on a runtime of its own (`spawn`
        // needs a future that holds no borrow of a closure's argument)
        let register = cfgs.iter().cloned().map(|c| {
            let client = client.clone();
            async move { node::register(&c, &client).await }
        });
        futures_util::stream::iter(register).buffer_unordered(16).try_collect::<Vec<()>>().await?;
        let nodes = cfgs.len();
        let host_ips: Arc<HashMap<String, String>> =
            Arc::new(cfgs.iter().map(|c| (c.node_name.clone(), c.host_ip.clone())).collect());
        let heartbeat = node::heartbeat_many(cfgs, client.clone(), shutdown.clone());
        let pods = run_pods(client, host_ips, shutdown);
        let task = tokio::spawn(
            async move {
                tokio::join!(heartbeat, pods);
            }
            .instrument(info_span!("hollow_fleet", nodes)),
        );
        Ok(HollowFleet { task })
    }

    /// Waits until it has stopped.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Pod syncs in flight at once across the fleet. One at a time, 1,000 nodes fell
/// minutes behind a rollout: each sync is a status write the loop waited for.
const SYNCS_IN_FLIGHT: usize = 64;

/// Syncs every pod bound to one of the fleet's nodes as its events come: at most
/// [`SYNCS_IN_FLIGHT`] at once, one at a time per pod, a pod's newer events while its
/// sync runs folded into one sync of the latest.
async fn run_pods(client: kube::Client, host_ips: Arc<HashMap<String, String>>, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut deleted: HashSet<String> = HashSet::new();
    // the latest pod of each uid waiting for a sync, in arrival order
    let mut waiting: HashMap<String, Arc<Pod>> = HashMap::new();
    let mut order: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut running: HashSet<String> = HashSet::new();
    let mut syncs: tokio::task::JoinSet<(String, Result<Outcome>)> = tokio::task::JoinSet::new();
    loop {
        // start what may start: a waiting pod whose uid has no sync running
        let mut held = std::collections::VecDeque::new();
        while syncs.len() < SYNCS_IN_FLIGHT
            && let Some(uid) = order.pop_front()
        {
            if running.contains(&uid) {
                held.push_back(uid);
                continue;
            }
            let Some(pod) = waiting.remove(&uid) else { continue };
            let Some(host_ip) =
                pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).and_then(|n| host_ips.get(n)).cloned()
            else {
                continue;
            };
            running.insert(uid.clone());
            let client = client.clone();
            syncs.spawn(async move {
                let r = sync(&client, &host_ip, &pod).await;
                (uid, r)
            });
        }
        // back at the front, in their order (not the whole queue moved behind them: at
        // 5,000 nodes it held tens of thousands of pods, copied at every event)
        while let Some(uid) = held.pop_back() {
            order.push_front(uid);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(done) = syncs.join_next(), if !syncs.is_empty() => {
                let Ok((uid, result)) = done else { continue };
                running.remove(&uid);
                match result {
                    Ok(Outcome::Deleted) => {
                        deleted.insert(uid.clone());
                        waiting.remove(&uid);
                    }
                    Ok(Outcome::Synced) => {}
                    Err(error) => warn!(%error, pod.uid = %uid, "hollow pod sync"),
                }
            }
            ev = stream.next() => {
                let pod = match ev {
                    None => return,
                    Some(Err(error)) => {
                        warn!(%error, "pod watch");
                        continue;
                    }
                    Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => p,
                    Some(Ok(_)) => continue,
                };
                let on_fleet =
                    pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| host_ips.contains_key(n));
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if !on_fleet || deleted.contains(&uid) {
                    continue;
                }
                if waiting.insert(uid.clone(), Arc::new(pod)).is_none() {
                    order.push_back(uid);
                }
            }
        }
    }
}
