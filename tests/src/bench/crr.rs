//! The end-to-end ContainerRecreateRequest benchmark: one node (the simulated kubelet
//! with kubelet's 1 s relist, through the real proxy on a real containerd), the real
//! controller (CRR admission and controller) and the real agent, in proxy mode
//! (`RecreateContainer`) and then in kubelet mode (stop; kubelet restarts), same run.
//!
//! Each turn creates a pod, and twice in a row a CRR of its container, timed from the
//! CRR's creation to the CRR Completed with the pod Running and Ready on the new
//! container. The first recreate of a container is kubelet's best case (no back-off);
//! the second meets kubelet's crash-loop back-off (10 s after a restart), as any
//! container restarted in the last ten minutes does.

use std::{fmt::Write as _, time::Duration};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use stevedore_proto::crd::container_recreate_request::{
    ContainerRecreatePhase, ContainerRecreateRequest, ContainerRecreateRequestPhase,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use stevedore_proto::cri::{ContainerFilter, ContainerState, ContainerStateValue, ListContainersRequest};

use crate::{
    agent_process::{AgentOptions, AgentProcess},
    apiserver::{ADMIN_TOKEN, ApiServer, Hooks, Options},
    cluster::Services,
    controller_process::serving_webhooks,
    cri::{RuntimeClient, connect, runtime_client},
    kubelet::{Config, Kubelet, status::running_and_ready},
    proxy_process::ProxyProcess,
    scheduler::Scheduler,
    testbed::TestBed,
};

/// How much the CRR benchmark does.
#[derive(Clone, Copy, Debug)]
pub struct CrrCounts {
    /// Pods per mode (each gets two CRRs).
    pub pods: usize,
}

impl CrrCounts {
    /// The figures for the closing note.
    pub fn full() -> Self {
        Self { pods: 4 }
    }

    /// One pod per mode, so the benchmark cannot rot.
    pub fn smoke() -> Self {
        Self { pods: 1 }
    }
}

/// The samples: `[mode][first or second recreate]`.
#[derive(Clone, Debug, Default)]
pub struct CrrFigures {
    /// Proxy mode: first and second recreate of a container.
    pub proxy: [Vec<Duration>; 2],
    /// Kubelet mode: first and second recreate of a container.
    pub kubelet: [Vec<Duration>; 2],
    /// Proxy mode: to the new container running (the runtime's view).
    pub proxy_running: [Vec<Duration>; 2],
    /// Kubelet mode: to the new container running (the runtime's view).
    pub kubelet_running: [Vec<Duration>; 2],
}

const NS: &str = "bench";
const AGENT_NS: &str = "stevedore-system";
const NODE: &str = "node-crr";

fn container_id(p: &Pod) -> Option<String> {
    p.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == "app")?.container_id.clone()
}

async fn wait<T>(what: &str, check: impl AsyncFnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    crate::wait::until(what, Duration::from_secs(120), check).await
}

/// When the runtime runs a new `app` of `pod` (not `before`): polled every 10 ms
/// straight on containerd, what kubelet's status reports later.
async fn running_again(rt: &mut RuntimeClient, pod: &str, before: &str) -> anyhow::Result<Instant> {
    loop {
        let filter = ContainerFilter {
            state: Some(ContainerStateValue { state: ContainerState::ContainerRunning as i32 }),
            label_selector: [("io.kubernetes.pod.name".to_owned(), pod.to_owned())].into(),
            ..Default::default()
        };
        let listed = rt.list_containers(ListContainersRequest { filter: Some(filter) }).await?.into_inner();
        let now = Instant::now();
        if listed
            .containers
            .iter()
            .any(|c| c.id != before && c.metadata.as_ref().is_some_and(|m| m.name == "app"))
        {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One CRR of `pod`'s `app`, timed to Completed and the pod Ready on a new container,
/// and to the new container running (the runtime's view).
async fn recreate_once(
    crrs: &Api<ContainerRecreateRequest>,
    pods: &Api<Pod>,
    rt: &RuntimeClient,
    pod: &str,
    n: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let before = container_id(&pods.get(pod).await?);
    let bare =
        before.as_deref().and_then(|b| b.split_once("://")).map(|(_, id)| id.to_owned()).unwrap_or_default();
    let name = format!("{pod}-{n}");
    let crr: ContainerRecreateRequest = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ContainerRecreateRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"podName": pod, "containers": [{"name": "app"}], "strategy": {"terminationGracePeriodSeconds": 1}}
    }))?;
    let t = Instant::now();
    crrs.create(&PostParams::default(), &crr).await?;
    let running = tokio::spawn({
        let (mut rt, pod) = (rt.clone(), pod.to_owned());
        async move { running_again(&mut rt, &pod, &bare).await }
    });
    let waited = wait(&format!("{name} completed, {pod} ready again"), async || {
        let done = crrs
            .get(&name)
            .await?
            .status
            .is_some_and(|s| s.phase == ContainerRecreateRequestPhase::Completed);
        let p = pods.get(pod).await?;
        Ok((done && running_and_ready(&p) && container_id(&p) != before).then_some(()))
    })
    .await;
    if let Err(e) = waited {
        let crr = crrs.get(&name).await.map(|c| serde_json::to_string(&c).unwrap_or_default());
        let p = pods.get(pod).await.map(|p| serde_json::to_string(&p.status).unwrap_or_default());
        anyhow::bail!("{e}\nCRR: {crr:?}\npod status: {p:?}");
    }
    let took = t.elapsed();
    let running = running.await??.saturating_duration_since(t);
    let c = crrs.get(&name).await?;
    let states = c.status.and_then(|s| s.container_recreate_states).unwrap_or_default();
    anyhow::ensure!(
        states.iter().all(|s| s.phase == ContainerRecreatePhase::Succeeded),
        "{name} did not succeed: {states:?}"
    );
    Ok((took, running))
}

/// Runs the benchmark on a bed of its own.
///
/// # Errors
/// A component failed to start, or a CRR did not complete within 2 minutes.
pub async fn run(counts: CrrCounts) -> anyhow::Result<CrrFigures> {
    let bed = TestBed::start().await?;
    let services = Services::default();
    let server =
        ApiServer::start(Options { hooks: Hooks::webhooks(services.clone()), ..Options::default() }).await?;
    let client = server.client().await?;
    let kubeconfig = bed.dir().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, ADMIN_TOKEN)?;
    // the CRDs, the controller, and its webhooks (CRR admission) reached as a Service
    let _controller = serving_webhooks(&client, &services, &kubeconfig, bed.dir()).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [NS] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    let proxy = ProxyProcess::start(&bed.dir().join("proxy.sock"), bed.containerd_socket(), &[]).await?;
    let stop = CancellationToken::new();
    let kubelet = Kubelet::start(
        Config::new(NODE, Some(proxy.socket().to_owned()), bed.dir().join("kubelet")),
        client.clone(),
        stop.clone(),
    )
    .await?;
    let scheduler = Scheduler::start(client.clone(), stop.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let rt = runtime_client(connect(bed.containerd_socket()).await?);
    let crrs: Api<ContainerRecreateRequest> = Api::namespaced(client.clone(), NS);
    let mut figures = CrrFigures::default();
    for mode in ["proxy", "kubelet"] {
        let opts = AgentOptions {
            node_name: NODE.into(),
            kubeconfig: kubeconfig.clone(),
            cri_socket: proxy.socket().to_owned(),
            control_socket: proxy.control_socket().map(ToOwned::to_owned),
            namespace: AGENT_NS.into(),
            extra: vec!["--recreate-mode".into(), mode.into()],
        };
        let mut agent = AgentProcess::start(bed.dir(), &opts).await?;
        for i in 0..counts.pods {
            let name = format!("{mode}-{i}");
            let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": bed.image("app:v1")}]}}))?;
            pods.create(&PostParams::default(), &pod).await?;
            wait(&format!("{name} ready"), async || Ok(pods.get_opt(&name).await?.filter(running_and_ready)))
                .await?;
            for (k, slot) in [0, 1].into_iter().enumerate() {
                let (took, running) = recreate_once(&crrs, &pods, &rt, &name, k).await?;
                let (done, run) = if mode == "proxy" {
                    (&mut figures.proxy, &mut figures.proxy_running)
                } else {
                    (&mut figures.kubelet, &mut figures.kubelet_running)
                };
                done[slot].push(took);
                run[slot].push(running);
            }
            pods.delete(&name, &DeleteParams::default()).await?;
        }
        agent.stop().await?;
    }
    stop.cancel();
    kubelet.join().await;
    scheduler.join().await;
    Ok(figures)
}

fn mean(v: &[Duration]) -> Duration {
    if v.is_empty() {
        Duration::ZERO
    } else {
        v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap_or(u32::MAX)
    }
}

/// The figures side by side.
pub fn report(f: &CrrFigures) -> String {
    let mut out = String::from(
        "\n== ContainerRecreateRequest end to end (created -> Completed, pod Ready on the new container)\n",
    );
    let rows = [
        (0, "first recreate, to Completed + Ready", &f.proxy, &f.kubelet),
        (1, "second (back-off), to Completed + Ready", &f.proxy, &f.kubelet),
        (0, "first recreate, to container running", &f.proxy_running, &f.kubelet_running),
        (1, "second (back-off), to container running", &f.proxy_running, &f.kubelet_running),
    ];
    for (slot, what, proxy, kubelet) in rows {
        let (p, k) = (mean(&proxy[slot]), mean(&kubelet[slot]));
        let _ = writeln!(
            out,
            "{what:<42} proxy mode {:>6.2} s   kubelet mode {:>6.2} s   kubelet/proxy x{:.2} (n={}, target >= 3)",
            p.as_secs_f64(),
            k.as_secs_f64(),
            k.as_secs_f64() / p.as_secs_f64().max(1e-9),
            proxy[slot].len()
        );
    }
    let _ = writeln!(
        out,
        "  (Ready waits in both modes for kubelet's next status report: its relist runs every 1 s)"
    );
    out
}
