//! The node's pod loop: one watch on `spec.nodeName=<node>` and one worker task per
//! pod (kubelet's pod workers), which syncs on every change of its pod and every
//! [`Config::sync_interval`](super::Config::sync_interval) (kubelet's PLEG relist).
//! After each (re)list, sandboxes with this node's label whose pod is gone from the
//! API are torn down (kubelet's housekeeping).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info, info_span, warn};

use super::runtime::Runtime;
use super::sync::{Outcome, sync};
use super::{NodeCtx, hollow, volumes};

/// The latest pod, or `None` once it is gone from the API.
type PodTx = watch::Sender<Option<Arc<Pod>>>;

/// Watches this node's pods and runs their workers until `shutdown`.
pub(crate) async fn run(ctx: Arc<NodeCtx>, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.cfg.node_name));
    let mut stream = watcher(api, wc).default_backoff().boxed();
    let mut workers: HashMap<String, PodTx> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut listing: Option<HashSet<String>> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(uid) = done {
                    workers.remove(&uid);
                }
                continue;
            }
            ev = stream.next() => ev,
        };
        match event {
            None => break,
            Some(Err(error)) => warn!(%error, "pod watch"),
            Some(Ok(watcher::Event::Init)) => listing = Some(HashSet::new()),
            Some(Ok(watcher::Event::InitApply(pod) | watcher::Event::Apply(pod))) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(seen) = listing.as_mut() {
                    seen.insert(uid.clone());
                }
                match workers.get(&uid) {
                    Some(tx) => {
                        let _ = tx.send(Some(Arc::new(pod)));
                    }
                    None => {
                        let (tx, rx) = watch::channel(Some(Arc::new(pod.clone())));
                        workers.insert(uid.clone(), tx);
                        let span = info_span!("pod", pod.uid = %uid, pod.name = pod.metadata.name.as_deref().unwrap_or(""));
                        tasks.spawn(worker(ctx.clone(), uid, rx, shutdown.clone()).instrument(span));
                    }
                }
            }
            Some(Ok(watcher::Event::Delete(pod))) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(tx) = workers.get(&uid) {
                    let _ = tx.send(None);
                }
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let seen = listing.take().unwrap_or_default();
                for (uid, tx) in &workers {
                    if !seen.contains(uid) {
                        let _ = tx.send(None);
                    }
                }
                if let Err(error) = remove_orphans(&ctx, &seen, &workers).await {
                    warn!(%error, "removing orphaned sandboxes");
                }
            }
        }
    }
    // Shutdown: workers see the token; their containers keep running.
    while tasks.join_next().await.is_some() {}
}

fn runtime(ctx: &NodeCtx) -> Option<Runtime> {
    ctx.runtime.as_ref().map(|(rt, img)| Runtime {
        rt: rt.clone(),
        img: img.clone(),
        node: ctx.cfg.node_name.clone(),
    })
}

/// Tears down sandboxes of this node whose pod the API no longer has.
async fn remove_orphans(
    ctx: &NodeCtx,
    seen: &HashSet<String>,
    workers: &HashMap<String, PodTx>,
) -> super::Result<()> {
    let Some(rt) = runtime(ctx) else { return Ok(()) };
    let mut done = HashSet::new();
    for (_, uid) in rt.node_sandboxes().await? {
        if seen.contains(&uid) || workers.contains_key(&uid) || !done.insert(uid.clone()) {
            continue;
        }
        info!(pod.uid = %uid, "pod gone from the API: removing its sandbox");
        rt.teardown(&uid, 0).await?;
        volumes::remove(&ctx.cfg.root_dir, &uid)?;
    }
    Ok(())
}

/// One pod's worker; returns the uid when the pod is done with.
async fn worker(
    ctx: Arc<NodeCtx>,
    uid: String,
    mut rx: watch::Receiver<Option<Arc<Pod>>>,
    shutdown: CancellationToken,
) -> String {
    let rt = runtime(&ctx);
    loop {
        let current = rx.borrow_and_update().clone();
        let Some(pod) = current else {
            // Gone from the API without us (force deletion): tear down.
            if let Some(rt) = &rt {
                if let Err(error) = rt.teardown(&uid, 0).await {
                    warn!(%error, "tearing down a force-deleted pod");
                }
                let _ = volumes::remove(&ctx.cfg.root_dir, &uid);
            }
            return uid;
        };
        let result = match &rt {
            Some(rt) => sync(&ctx, rt, &pod).await,
            None => hollow::sync(&ctx.client, &ctx.cfg.host_ip, &pod).await,
        };
        match result {
            Ok(Outcome::Deleted) => return uid,
            Ok(Outcome::Synced) => {}
            Err(error) => warn!(%error, "pod sync failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return uid,
            r = rx.changed() => if r.is_err() { return uid },
            _ = tokio::time::sleep(ctx.cfg.sync_interval) => {}
        }
    }
}
