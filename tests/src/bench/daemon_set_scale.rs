//! Advanced DaemonSets at scale on hollow nodes, the node-local way against what a
//! central controller would see. The simulated API server (real admission plug-ins,
//! the controller's webhooks reached as a Service), the real controller binary with
//! production flags, a [`HollowFleet`] of nodes and one agent per node (the agent's
//! DaemonSet loop, `stevedore_agent::daemons`, run in this process with its own three
//! watches per node: its Node, its NodeState, its pods), except the first node, whose
//! agent is the real binary, to measure an agent's own memory (it has no CRI socket:
//! a hollow node has no runtime, and its image pre-pulls fail and are logged). S sets
//! are created and timed until every node runs their pods,
//! then rolled in place to a new image and timed until every pod is updated.
//!
//! Counted by the API server per user: the requests and the watch events delivered to
//! the controller and to all agents. Beside them, in the same run, one watch of every
//! pod in the cluster (what OpenKruise's central DaemonSet controller keeps): the
//! events it receives and the pods it would cache.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;
use stevedore_agent::{
    daemons::{Daemons, Settings as AgentSettings},
    heartbeat,
};
use stevedore_proto::crd::{daemon_set::v1beta1::DaemonSet, node_state::NodeState};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    agent_process::{AgentOptions, AgentProcess},
    apiserver::{ApiServer, Hooks, Options},
    bench::clone_set_scale::{peak_rss_kib, status_kib, user},
    cluster::Services,
    controller_process::{install, start_serving, webhooks},
    kubelet::{Config as KubeletConfig, hollow::HollowFleet},
};

/// How big the run is.
#[derive(Clone, Copy, Debug)]
pub struct DaemonScaleCounts {
    /// Hollow nodes (each with its agent).
    pub nodes: usize,
    /// DaemonSets, each on every node.
    pub sets: usize,
}

impl DaemonScaleCounts {
    /// The figures: 5,000 nodes, 10 sets.
    pub fn full() -> Self {
        Self { nodes: 5000, sets: 10 }
    }

    /// A handful, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { nodes: 5, sets: 2 }
    }
}

/// Requests and watch events of one party in the two phases.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    /// Requests while the sets were created, and while they were rolled.
    pub requests: (u64, u64),
    /// Watch events delivered, same phases.
    pub events: (u64, u64),
    /// Of those, events of pods.
    pub pod_events: (u64, u64),
    /// Of those, events of DaemonSets.
    pub set_events: (u64, u64),
}

/// What the run measured.
#[derive(Clone, Debug, Default)]
pub struct DaemonScaleFigures {
    /// The counts it ran with.
    pub nodes: usize,
    /// Sets.
    pub sets: usize,
    /// From the sets' creation to every pod ready.
    pub create: Duration,
    /// From the image patches to every pod updated in place and ready.
    pub roll: Duration,
    /// The controller's traffic.
    pub controller: Traffic,
    /// All agents' traffic.
    pub agents: Traffic,
    /// The watch of every pod (a central controller's view).
    pub central: Traffic,
    /// Pods at the end: the objects that central watch caches.
    pub pods: usize,
    /// NodeStates: the objects the controller caches instead.
    pub node_states: usize,
    /// The controller's peak resident memory, in KiB.
    pub controller_peak_rss_kib: u64,
    /// The real agent binary's (first node's) peak and final resident memory, in KiB.
    pub agent_rss_kib: (u64, u64),
    /// This process's resident memory before the agents started and at the end, in
    /// KiB (the agents' share of it, with the fleet and the API server beside them).
    pub process_rss_kib: [u64; 4],
    /// Changes the API server's watch history retains at the end, and their JSON size.
    pub history: (usize, usize),
    /// Over both phases, the controller's and the agents' requests by
    /// `VERB resource[/subresource]` and watch events by resource, largest first.
    pub breakdown: Vec<(&'static str, Vec<(String, u64)>)>,
    /// Pod changes committed over both phases: the events a central pod watch that
    /// never falls behind receives (the bench's own central watch may fall behind
    /// and relist, missing some).
    pub pod_changes: u64,
}

const CONTROLLER: &str = "stevedore-controller";
const CLUSTER: &str = "hollow-cluster";
const AGENTS: &str = "stevedore-agents";
const CENTRAL: &str = "central-pod-watch";
/// The real agent binary of the first node (counted with the agents, and alone).
const BINARY: &str = "stevedore-agent-binary";
const NS: &str = "bench";
/// How long each phase may take (5,000 nodes rolled in 15 to 20 minutes here).
const LIMIT: Duration = Duration::from_secs(3600);
/// Agents whose requests share one HTTP/2 connection (one: each agent has its own, as
/// on real nodes).
const AGENTS_PER_CONNECTION: usize = 1;

fn set(i: usize, image: &str) -> anyhow::Result<DaemonSet> {
    let name = format!("daemon-{i}");
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]}
            },
            "updateStrategy": {"type": "RollingUpdate",
                "rollingUpdate": {"rollingUpdateType": "InPlaceIfPossible", "maxUnavailable": "20%"}}
        }
    }))?)
}

/// Whether every set's status says all `nodes` run its pod, updated and available,
/// at a revision other than `not`.
async fn all_done(
    sets: &Api<DaemonSet>,
    nodes: usize,
    not: &[String],
) -> anyhow::Result<Option<Vec<String>>> {
    let n = i32::try_from(nodes)?;
    let list = sets.list(&Default::default()).await?.items;
    let mut hashes = Vec::new();
    for ds in &list {
        let Some(s) = ds.status.as_ref() else { return Ok(None) };
        let done = s.observed_generation == ds.metadata.generation
            && s.desired_number_scheduled == n
            && s.updated_number_scheduled == n
            && s.number_available == Some(n)
            && s.update_revision.as_ref().is_some_and(|h| !not.contains(h));
        if !done {
            return Ok(None);
        }
        hashes.extend(s.update_revision.clone());
    }
    Ok(Some(hashes))
}

/// Waits for [`all_done`], printing each set's progress and `so_far` (the traffic of
/// the phase until now, so that a run stopped early still tells it) every 15 s.
async fn wait_done(
    sets: &Api<DaemonSet>,
    nodes: usize,
    not: &[String],
    what: &str,
    so_far: &dyn Fn() -> String,
) -> anyhow::Result<Vec<String>> {
    let start = Instant::now();
    let mut told = Instant::now();
    loop {
        if let Some(h) = all_done(sets, nodes, not).await? {
            return Ok(h);
        }
        anyhow::ensure!(start.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        if told.elapsed() > Duration::from_secs(15) {
            // progress on stderr, for long runs: updated and available per set
            let list = sets.list(&Default::default()).await?.items;
            let counts: Vec<String> = list
                .iter()
                .map(|d| {
                    let s = d.status.clone().unwrap_or_default();
                    format!("{}/{}", s.updated_number_scheduled, s.number_available.unwrap_or(0))
                })
                .collect();
            eprintln!(
                "  {what}: {:.0} s, updated/available per set: {}\n    so far: {}",
                start.elapsed().as_secs_f64(),
                counts.join(" "),
                so_far()
            );
            told = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A tokio runtime of its own for one part of the cluster, shut down in the background
/// when dropped (a runtime cannot be dropped inside another's tasks).
struct Part(Option<tokio::runtime::Runtime>);

impl Part {
    fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(Self(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().map(tokio::runtime::Runtime::handle).expect("a part's runtime lives until dropped")
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A client of `server` whose connections are driven on `rt`.
async fn client_on(
    rt: &tokio::runtime::Handle,
    server: &ApiServer,
    token: &str,
) -> anyhow::Result<kube::Client> {
    let config = server.config_as(token).await?;
    Ok(rt.spawn(async move { kube::Client::try_from(config) }).await??)
}

/// Runs it.
///
/// The simulated API server, and the hollow fleet with the central pod watch, run on
/// runtimes of their own, as they are processes of their own in a cluster: on this
/// process's runtime, among the tasks of 5,000 in-process agents, the central watch
/// received 8,372 events while 94,000 pod changes were committed, and kept none of
/// the pace it has at 1,000 nodes.
///
/// # Errors
/// A part cannot start, or a phase does not finish within the limit.
pub async fn run(counts: DaemonScaleCounts) -> anyhow::Result<DaemonScaleFigures> {
    let dir = tempfile::tempdir()?;
    let services = Services::default();
    let mut opts = Options { hooks: Hooks::webhooks(services.clone()), ..Options::default() };
    opts.history_limit = opts.history_limit.max(5 * counts.nodes * counts.sets);
    for (token, who) in [
        ("controller-token", CONTROLLER),
        ("cluster-token", CLUSTER),
        ("agents-token", AGENTS),
        ("central-token", CENTRAL),
        ("binary-token", BINARY),
    ] {
        opts.tokens.insert(token, user(who));
    }
    let server_part = Part::new("apiserver", 2)?;
    let server = server_part.handle().spawn(ApiServer::start(opts)).await??;
    let admin = server.client().await?;
    install(&admin, &[webhooks::NAMESPACE, NS]).await?;

    let stop = CancellationToken::new();
    let side = Part::new("fleet", 1)?;
    let cluster = client_on(side.handle(), &server, "cluster-token").await?;
    let names: Vec<String> = (0..counts.nodes).map(|i| format!("hollow-{i:04}")).collect();
    let cfgs: Vec<KubeletConfig> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut c = KubeletConfig::hollow(n);
            c.host_ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            c
        })
        .collect();
    let fleet = side.handle().spawn(HollowFleet::start(cfgs, cluster, stop.clone())).await??;
    let kubeconfig = dir.path().join("controller-kubeconfig");
    server.write_kubeconfig(&kubeconfig, "controller-token")?;
    // An in-process agent shares two cores with thousands of others, the simulated
    // API server and the fleet (on a node it has that node's CPU). At 5,000 nodes with
    // the default 60 s, a set counted 2,654 pods unavailable at once against a budget
    // of 1,000, as the stale reports of starved agents would make it.
    let mut controller =
        start_serving(&admin, &services, &kubeconfig, dir.path(), &["--agent-silence-seconds", "300"])
            .await?;
    let bed =
        Bed { server: &server, admin: &admin, side: side.handle(), dir: dir.path(), stop: stop.clone() };
    let result = phases(bed, controller.pid(), counts, &names).await;
    let result = result.map_err(|e| e.context(format!("controller log:\n{}", controller.log_tail(30))));
    controller.stop().await?;
    stop.cancel();
    fleet.join().await;
    result
}

/// What the phases run against.
struct Bed<'a> {
    server: &'a ApiServer,
    admin: &'a kube::Client,
    /// The fleet's runtime, where the central watch runs too.
    side: &'a tokio::runtime::Handle,
    /// Where the real agent keeps its kubeconfig and log.
    dir: &'a std::path::Path,
    stop: CancellationToken,
}

async fn phases(
    bed: Bed<'_>,
    pid: u32,
    counts: DaemonScaleCounts,
    names: &[String],
) -> anyhow::Result<DaemonScaleFigures> {
    let Bed { server, admin, side, dir, stop } = bed;
    // the controller gives every node its NodeState
    let states: Api<NodeState> = Api::all(admin.clone());
    let start = Instant::now();
    while states.list_metadata(&Default::default()).await?.items.len() < counts.nodes {
        anyhow::ensure!(start.elapsed() < LIMIT, "the controller made no NodeState for every node");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let me = std::process::id();
    let rss_before = status_kib(me, "VmRSS:").unwrap_or(0);
    // each agent's requests and watches share one HTTP/2 connection (over HTTP/1.1
    // every watch would hold a connection, and 5,000 agents' watches would not fit this
    // process's file descriptors)
    let connections = names.len().div_ceil(AGENTS_PER_CONNECTION).max(1);
    let agents: Vec<kube::Client> =
        (0..connections).map(|_| server.multiplexed_client_as("agents-token")).collect::<Result<_, _>>()?;
    let mut tasks = tokio::task::JoinSet::new();
    let agent_kubeconfig = dir.join("agent-kubeconfig");
    server.write_kubeconfig(&agent_kubeconfig, "binary-token")?;
    let agent = AgentOptions {
        node_name: names[0].clone(),
        kubeconfig: agent_kubeconfig,
        cri_socket: dir.join("no-runtime.sock"),
        control_socket: None,
        namespace: webhooks::NAMESPACE.to_owned(),
        extra: Vec::new(),
    };
    let mut agent = AgentProcess::start(dir, &agent).await?;
    for (i, node) in names.iter().enumerate().skip(1) {
        let (lease, beat) = (heartbeat::Beating::default(), Duration::from_secs(20));
        let settings = AgentSettings {
            node_name: node.clone(),
            status_interval: Duration::from_secs(1),
            lease: lease.clone(),
            heartbeat: beat,
        };
        let client = agents[i % connections].clone();
        tasks.spawn(Daemons::run(settings, client.clone(), None, stop.clone()));
        let ns = webhooks::NAMESPACE.to_owned();
        tasks.spawn(heartbeat::run(node.clone(), ns, client, beat, lease, stop.clone()));
    }
    // the agents list and watch before anything runs on their nodes
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = status_kib(me, "VmRSS:").unwrap_or(0);
    // a central controller's view: one watch of every pod
    let central = client_on(side, server, "central-token").await?;
    let central_stop = stop.clone();
    tasks.spawn_on(
        async move {
            let events = watcher(Api::<Pod>::all(central), watcher::Config::default()).default_backoff();
            let mut events = std::pin::pin!(events.take_until(central_stop.cancelled_owned()));
            while events.next().await.is_some() {}
        },
        side,
    );

    let traffic = |who: &[&str]| {
        let (r, e) = (server.requests_by_user(), server.watch_events());
        let mine = e.iter().filter(|((u, _), _)| who.contains(&u.as_str()));
        let all: u64 = mine.clone().map(|(_, n)| n).sum();
        let pods: u64 = mine.clone().filter(|((_, res), _)| res == "/pods").map(|(_, n)| n).sum();
        let sets: u64 = mine.filter(|((_, res), _)| res.ends_with("/daemonsets")).map(|(_, n)| n).sum();
        (who.iter().map(|u| r.get(*u).copied().unwrap_or(0)).sum::<u64>(), all, pods, sets)
    };
    let parties: [&[&str]; 3] = [&[CONTROLLER], &[AGENTS, BINARY], &[CENTRAL]];
    let t0: Vec<(u64, u64, u64, u64)> = parties.iter().map(|p| traffic(p)).collect();
    let detail0 = (server.requests_by_kind(), server.watch_events());
    let pod_changes0 = server.changes("/pods");
    let sets: Api<DaemonSet> = Api::namespaced(admin.clone(), NS);
    let t = Instant::now();
    for i in 0..counts.sets {
        sets.create(&PostParams::default(), &set(i, "registry.example.com/daemon:v1")?).await?;
    }
    let so_far = |base: &[(u64, u64, u64, u64)], changes: u64| {
        let now: Vec<(u64, u64, u64, u64)> = parties.iter().map(|p| traffic(p)).collect();
        let d = |i: usize| (now[i].0 - base[i].0, now[i].1 - base[i].1, now[i].2 - base[i].2);
        let (c, a, central) = (d(0), d(1), d(2));
        // a watch of every pod that falls behind is ended and opened again
        let kinds = server.requests_by_kind();
        let opened = |who: &str| kinds.get(&(who.to_owned(), "WATCH pods".to_owned())).copied().unwrap_or(0);
        format!(
            "controller {} requests, {} watch events ({} of pods); agents {} requests, {} events; central pod \
             watch {} events; pod changes {}; pod watches opened since the start: central {}, hollow fleet {}",
            c.0,
            c.1,
            c.2,
            a.0,
            a.1,
            central.1,
            server.changes("/pods") - changes,
            opened(CENTRAL),
            opened(CLUSTER)
        )
    };
    let first = wait_done(&sets, counts.nodes, &[], "every pod ready", &|| so_far(&t0, pod_changes0)).await?;
    let create = t.elapsed();
    let rss_created = status_kib(me, "VmRSS:").unwrap_or(0);
    let t1: Vec<(u64, u64, u64, u64)> = parties.iter().map(|p| traffic(p)).collect();
    let pod_changes1 = server.changes("/pods");

    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image",
        "value": "registry.example.com/daemon:v2"}]);
    let patch: json_patch::Patch = serde_json::from_value(patch)?;
    let t = Instant::now();
    for i in 0..counts.sets {
        sets.patch(&format!("daemon-{i}"), &PatchParams::default(), &Patch::Json::<()>(patch.clone()))
            .await?;
    }
    wait_done(&sets, counts.nodes, &first, "every pod updated", &|| so_far(&t1, pod_changes1)).await?;
    let roll = t.elapsed();
    let t2: Vec<(u64, u64, u64, u64)> = parties.iter().map(|p| traffic(p)).collect();
    let detail2 = (server.requests_by_kind(), server.watch_events());
    let pod_changes = server.changes("/pods") - pod_changes0;
    let delta =
        |who: &[&str], before: &BTreeMap<(String, String), u64>, after: &BTreeMap<(String, String), u64>| {
            let mut sum: BTreeMap<String, u64> = BTreeMap::new();
            for ((u, k), n) in after.iter().filter(|((u, _), _)| who.contains(&u.as_str())) {
                *sum.entry(k.clone()).or_default() +=
                    n - before.get(&(u.clone(), k.clone())).copied().unwrap_or(0);
            }
            let mut out: Vec<(String, u64)> = sum.into_iter().filter(|(_, n)| *n > 0).collect();
            out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            out
        };
    let nothing = BTreeMap::new();
    let breakdown = vec![
        ("controller requests, both phases", delta(&[CONTROLLER], &detail0.0, &detail2.0)),
        ("controller watch events, both phases", delta(&[CONTROLLER], &detail0.1, &detail2.1)),
        ("agents' requests, both phases", delta(&[AGENTS, BINARY], &detail0.0, &detail2.0)),
        ("agents' watch events, both phases", delta(&[AGENTS, BINARY], &detail0.1, &detail2.1)),
        ("the real agent's requests, from its start", delta(&[BINARY], &nothing, &detail2.0)),
    ];
    let pods = Api::<Pod>::all(admin.clone()).list_metadata(&Default::default()).await?.items.len();
    let rss_after = status_kib(me, "VmRSS:").unwrap_or(0);
    let controller_peak = peak_rss_kib(pid).unwrap_or(0);
    let agent_rss = (peak_rss_kib(agent.pid()).unwrap_or(0), status_kib(agent.pid(), "VmRSS:").unwrap_or(0));
    agent.stop().await?;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    let party = |i: usize| Traffic {
        requests: (t1[i].0 - t0[i].0, t2[i].0 - t1[i].0),
        events: (t1[i].1 - t0[i].1, t2[i].1 - t1[i].1),
        pod_events: (t1[i].2 - t0[i].2, t2[i].2 - t1[i].2),
        set_events: (t1[i].3 - t0[i].3, t2[i].3 - t1[i].3),
    };
    Ok(DaemonScaleFigures {
        nodes: counts.nodes,
        sets: counts.sets,
        create,
        roll,
        controller: party(0),
        agents: party(1),
        central: party(2),
        pods,
        node_states: counts.nodes,
        controller_peak_rss_kib: controller_peak,
        agent_rss_kib: agent_rss,
        process_rss_kib: [rss_before, rss_idle, rss_created, rss_after],
        history: server.history_retained(),
        breakdown,
        pod_changes,
    })
}

/// The figures.
pub fn report(f: &DaemonScaleFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== {} Advanced DaemonSets over {} hollow nodes, each node with its agent (real controller, \
         simulated API server, in-process hollow nodes and agents; InPlaceIfPossible, maxUnavailable 20%)",
        f.sets, f.nodes
    );
    let _ = writeln!(
        out,
        "  {:<36} {:>10} {:>12} {:>12} {:>12} {:>12}",
        "phase", "wall", "ctrl reqs", "ctrl events", "agents reqs", "agents evts"
    );
    for (what, wall, pick) in
        [("created -> every pod ready", f.create, 0), ("image patched -> all updated", f.roll, 1)]
    {
        let p = |t: (u64, u64)| if pick == 0 { t.0 } else { t.1 };
        let _ = writeln!(
            out,
            "  {:<36} {:>8.2} s {:>12} {:>12} {:>12} {:>12}",
            what,
            wall.as_secs_f64(),
            p(f.controller.requests),
            p(f.controller.events),
            p(f.agents.requests),
            p(f.agents.events)
        );
    }
    let sum = |t: (u64, u64)| t.0 + t.1;
    // how many times fewer events `ours` are than `theirs`, or more
    let ratio = |theirs: u64, ours: u64| {
        if theirs >= ours {
            format!("{:.1}x fewer", theirs as f64 / ours.max(1) as f64)
        } else {
            format!("{:.1}x more", ours as f64 / theirs.max(1) as f64)
        }
    };
    let central = sum(f.central.events);
    let pods_seen = sum(f.controller.pod_events);
    let ours = sum(f.controller.events) - pods_seen;
    let _ = writeln!(
        out,
        "  watch events for the DaemonSets: controller {ours} (NodeStates, sets, nodes) vs a central watch of \
         every pod {central}: {}; objects cached: {} NodeStates vs {} pods",
        ratio(central, ours),
        f.node_states,
        f.pods
    );
    let _ = writeln!(
        out,
        "  pod changes committed over both phases: {} (what a central pod watch that never falls behind \
         receives): {}",
        f.pod_changes,
        ratio(f.pod_changes, ours)
    );
    let _ = writeln!(
        out,
        "  (the controller's own pod watch, for CloneSets, leaves out the pods node agents run: {pods_seen} pod \
         events reached it)"
    );
    let _ = writeln!(
        out,
        "  per node, both phases: agent requests {:.1}, agent watch events {:.1}, of which DaemonSet events {:.1} \
         (every write of a set, its status included, reaches every agent)",
        sum(f.agents.requests) as f64 / f.nodes.max(1) as f64,
        sum(f.agents.events) as f64 / f.nodes.max(1) as f64,
        sum(f.agents.set_events) as f64 / f.nodes.max(1) as f64
    );
    for (what, rows) in &f.breakdown {
        let list: Vec<String> = rows.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "  {what}: {}", list.join(", "));
    }
    let mb = f.process_rss_kib.map(|k| k as f64 / 1024.0);
    let _ = writeln!(
        out,
        "  controller peak RSS {:.1} MB; bench process (API server, fleet, agents) {:.1} MB, {:.1} with the agents \
         idle, {:.1} once created, {:.1} once rolled ({:.1} KB per node for its agent, pods and their history)",
        f.controller_peak_rss_kib as f64 / 1024.0,
        mb[0],
        mb[1],
        mb[2],
        mb[3],
        (mb[3] - mb[0]) * 1024.0 / f.nodes.max(1) as f64
    );
    let _ = writeln!(
        out,
        "  a real stevedore-agent process (the first node's): peak RSS {:.1} MB, {:.1} MB at the end",
        f.agent_rss_kib.0 as f64 / 1024.0,
        f.agent_rss_kib.1 as f64 / 1024.0
    );
    let _ = writeln!(
        out,
        "  the simulated API server's watch history holds {} changes, {:.1} MB as JSON",
        f.history.0,
        f.history.1 as f64 / 1e6
    );
    out
}
