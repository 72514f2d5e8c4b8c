//! ContainerRecreateRequests end to end, agent side: the real agent of a simulated
//! node (kubelet simulator on the real test bed: containerd behind the real proxy)
//! against the simulated API server. The requests are created as the controller's
//! admission would leave them (node-name, pod-uid and active labels; preStop, ports
//! and statusContext filled in), so the agent is tested alone.
//!
//! In kubelet mode: one container is recreated (new id, restartCount + 1, the metric
//! says which path); two containers in order, with the preStop hook run in the old
//! and kubelet's postStart in the new container; a second request on the same pod
//! waits Pending until the first completes; an exited container is force-recreated;
//! a name the pod lacks fails the request with a message naming it. In proxy mode
//! (needs the proxy's RecreateContainer) one container is recreated by the proxy.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::{
    Api, Client, ResourceExt as _,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use stevedore_proto::{
    crd::container_recreate_request::{
        ContainerRecreatePhase, ContainerRecreateRequest, ContainerRecreateRequestPhase,
        ContainerRecreateRequestStatus,
    },
    cri::ExecSyncRequest,
    keys,
};
use stevedore_tests::{
    agent_process::{AgentOptions, AgentProcess},
    apiserver::{ADMIN_TOKEN, ApiServer, Options},
    controller_process::install,
    cri,
    kubelet::{self, Kubelet, status::running_and_ready},
    proxy_process::ProxyProcess,
    testbed::TestBed,
    wait::until,
};
use tokio_util::sync::CancellationToken;

const NS: &str = "shop";
const AGENT_NS: &str = "stevedore-system";
const NODE: &str = "node-crr";

/// One bed, one API server, the proxy, a kubelet and the agent of one node.
struct Env {
    agent: AgentProcess,
    kubelet_stop: CancellationToken,
    kubelet: Option<Kubelet>,
    proxy: ProxyProcess,
    client: Client,
    _kubeconfig: PathBuf,
    _server: ApiServer,
    bed: TestBed,
}

impl Env {
    /// `backoff`: the kubelet's crash-loop back-off (first and cap).
    async fn start(mode: &str, backoff: Duration) -> anyhow::Result<Env> {
        let bed = TestBed::start().await?;
        let server = ApiServer::start(Options::default()).await?;
        let client = server.client().await?;
        let kubeconfig = bed.dir().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig, ADMIN_TOKEN)?;
        install(&client, &[AGENT_NS, NS]).await?;
        let socket = bed.dir().join("proxy.sock");
        let proxy = ProxyProcess::start(&socket, bed.containerd_socket(), &[]).await?;
        let mut cfg = kubelet::Config::new(NODE, Some(socket.clone()), bed.dir().join("kubelet"));
        cfg.sync_interval = Duration::from_millis(300);
        cfg.backoff_initial = backoff;
        cfg.backoff_max = backoff;
        let kubelet_stop = CancellationToken::new();
        let kubelet = Kubelet::start(cfg, client.clone(), kubelet_stop.clone()).await?;
        let agent = AgentProcess::start(
            bed.dir(),
            &AgentOptions {
                node_name: NODE.into(),
                kubeconfig: kubeconfig.clone(),
                cri_socket: socket,
                control_socket: proxy.control_socket().map(ToOwned::to_owned),
                namespace: AGENT_NS.into(),
                extra: vec!["--recreate-mode".into(), mode.into()],
            },
        )
        .await?;
        Ok(Env {
            agent,
            kubelet_stop,
            kubelet: Some(kubelet),
            proxy,
            client,
            _kubeconfig: kubeconfig,
            _server: server,
            bed,
        })
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn crrs(&self) -> Api<ContainerRecreateRequest> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// A pod bound to the node, Running and Ready.
    async fn running_pod(&self, name: &str, spec: Value) -> anyhow::Result<Pod> {
        let mut spec = spec;
        spec["nodeName"] = json!(NODE);
        let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}))?;
        self.pods().create(&PostParams::default(), &pod).await?;
        let pods = self.pods();
        until(&format!("pod {name} Running and Ready"), Duration::from_secs(90), async || {
            Ok(pods.get_opt(name).await?.filter(running_and_ready))
        })
        .await
    }

    /// A request for `containers` of `pod`, as admission leaves it: labels, and each
    /// container's preStop and ports (from the pod spec) and statusContext (from its
    /// status).
    async fn create_crr(
        &self,
        name: &str,
        pod: &Pod,
        containers: &[&str],
        strategy: Value,
    ) -> anyhow::Result<()> {
        let spec = pod.spec.clone().unwrap_or_default();
        let entries: Vec<Value> = containers
            .iter()
            .map(|c| {
                let mut e = json!({"name": c});
                let pre_stop = spec
                    .containers
                    .iter()
                    .find(|x| x.name == *c)
                    .and_then(|pc| Some((pc, pc.lifecycle.as_ref()?.pre_stop.as_ref()?)));
                if let Some((pc, ps)) = pre_stop {
                    e["preStop"] =
                        json!({"exec": ps.exec, "httpGet": ps.http_get, "tcpSocket": ps.tcp_socket});
                    if ps.http_get.is_some() {
                        e["ports"] = json!(pc.ports);
                    }
                }
                if let Some(st) = status_of(pod, c) {
                    e["statusContext"] =
                        json!({"containerID": st.container_id, "restartCount": st.restart_count});
                }
                e
            })
            .collect();
        let crr = json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ContainerRecreateRequest",
            "metadata": {"name": name, "namespace": NS, "labels": {
                (keys::CRR_NODE_NAME): NODE,
                (keys::CRR_POD_UID): pod.metadata.uid,
                (keys::CRR_ACTIVE): "true",
            }},
            "spec": {"podName": pod.name_any(), "containers": entries, "strategy": strategy},
        });
        self.crrs().create(&PostParams::default(), &serde_json::from_value(crr)?).await?;
        Ok(())
    }

    /// The request once Completed.
    async fn completed(&self, name: &str, secs: u64) -> anyhow::Result<ContainerRecreateRequestStatus> {
        let crrs = self.crrs();
        let r = until(&format!("CRR {name} Completed"), Duration::from_secs(secs), async || {
            let s = crrs.get(name).await?.status;
            Ok(s.filter(|s| s.phase == ContainerRecreateRequestPhase::Completed))
        })
        .await;
        if r.is_err() {
            eprintln!(
                "CRR {name}: {:?}\nagent log:\n{}",
                crrs.get(name).await?.status,
                self.agent.log_tail(60)
            );
        }
        r
    }

    /// The pod once its container `c` runs with an id other than `old`, Ready.
    async fn restarted(&self, pod: &str, c: &str, old: &str) -> anyhow::Result<Pod> {
        let pods = self.pods();
        until(&format!("{pod}/{c} running again"), Duration::from_secs(30), async || {
            let p = pods.get(pod).await?;
            let ok = status_of(&p, c)
                .is_some_and(|s| s.ready && s.container_id.as_deref().is_some_and(|id| id != old));
            Ok((ok && running_and_ready(&p)).then_some(p))
        })
        .await
    }

    async fn exec(&self, container_id: &str, cmd: &[&str]) -> anyhow::Result<(i32, String)> {
        let mut rt = cri::runtime_client(cri::connect(self.proxy.socket()).await?);
        let id = container_id.split_once("://").map_or(container_id, |(_, i)| i).to_owned();
        let r = rt
            .exec_sync(ExecSyncRequest {
                container_id: id,
                cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
                timeout: 10,
            })
            .await?
            .into_inner();
        Ok((r.exit_code, String::from_utf8_lossy(&r.stdout).into_owned()))
    }

    async fn stop(mut self) {
        let _ = self.agent.stop().await;
        self.kubelet_stop.cancel();
        if let Some(k) = self.kubelet.take() {
            k.join().await;
        }
        let _ = &self.bed;
    }
}

fn status_of(pod: &Pod, c: &str) -> Option<ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|s| s.name == c).cloned()
}

fn id_of(pod: &Pod, c: &str) -> String {
    status_of(pod, c).and_then(|s| s.container_id).unwrap_or_default()
}

fn phases(s: &ContainerRecreateRequestStatus) -> BTreeMap<String, ContainerRecreatePhase> {
    s.container_recreate_states.iter().flatten().map(|c| (c.name.clone(), c.phase)).collect()
}

fn app(bed: &TestBed) -> Value {
    json!({"name": "app", "image": bed.image("app:v1")})
}

/// One container recreated in kubelet mode; a second request on the same pod waits
/// Pending (naming the first) until the first completes, then runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_mode_recreates_one_container_and_queues_a_second_request() -> anyhow::Result<()> {
    let env = Env::start("kubelet", Duration::from_secs(1)).await?;
    let pod = env
        .running_pod("web", json!({"terminationGracePeriodSeconds": 3, "containers": [app(&env.bed)]}))
        .await?;
    let old = id_of(&pod, "app");
    let rc = status_of(&pod, "app").unwrap().restart_count;
    // The first request holds on for 4s after the new container is ready.
    env.create_crr("first", &pod, &["app"], json!({"minStartedSeconds": 4})).await?;
    // Created a moment later, so it is the younger one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.create_crr("second", &pod, &["app"], json!({"forceRecreate": true})).await?;
    let crrs = env.crrs();
    let pending = until("second Pending behind first", Duration::from_secs(20), async || {
        let s = crrs.get("second").await?.status;
        Ok(s.filter(|s| s.phase == ContainerRecreateRequestPhase::Pending && s.message.is_some()))
    })
    .await?;
    assert!(pending.message.as_deref().unwrap().contains("first"), "{pending:?}");
    assert_ne!(
        crrs.get("first").await?.status.map(|s| s.phase),
        Some(ContainerRecreateRequestPhase::Completed)
    );

    let first = env.completed("first", 60).await?;
    assert!(first.completion_time.is_some());
    assert_eq!(phases(&first), BTreeMap::from([("app".to_owned(), ContainerRecreatePhase::Succeeded)]));
    assert_eq!(first.container_recreate_states.as_ref().unwrap()[0].is_killed, Some(true));
    let p = env.restarted("web", "app", &old).await?;
    let after_first = id_of(&p, "app");
    assert_ne!(after_first, old);
    assert_eq!(status_of(&p, "app").unwrap().restart_count, rc + 1);

    // The second (forced, its context now stale) recreates the container once more.
    let second = env.completed("second", 60).await?;
    assert_eq!(phases(&second), BTreeMap::from([("app".to_owned(), ContainerRecreatePhase::Succeeded)]));
    let p = env.restarted("web", "app", &after_first).await?;
    assert_eq!(status_of(&p, "app").unwrap().restart_count, rc + 2);

    let metrics = env.agent.metrics()?;
    assert!(
        metrics
            .contains("stevedore_agent_container_recreates_total{mode=\"kubelet\",result=\"succeeded\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("stevedore_agent_container_recreates_total{mode=\"proxy\",result=\"succeeded\"} 0")
    );
    env.stop().await;
    Ok(())
}

/// Two containers in order: preStop (from the request) runs in each old container
/// before it stops, in the containers' order, and kubelet's postStart in each new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_mode_recreates_two_containers_in_order_with_hooks() -> anyhow::Result<()> {
    let env = Env::start("kubelet", Duration::from_secs(1)).await?;
    let container = |name: &str| {
        json!({"name": name, "image": env.bed.image("app:v1"),
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "lifecycle": {
                "preStop": {"exec": {"command": ["sh", "-c", format!("echo {name} >> /data/prestop")]}},
                "postStart": {"exec": {"command": ["sh", "-c", "date +%s > /tmp/post-started"]}}}})
    };
    let spec = json!({"terminationGracePeriodSeconds": 3, "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [container("app"), container("side")]});
    let pod = env.running_pod("hooks", spec).await?;
    let (old_app, old_side) = (id_of(&pod, "app"), id_of(&pod, "side"));
    env.create_crr("both", &pod, &["app", "side"], json!({"orderedRecreate": true})).await?;
    let s = env.completed("both", 90).await?;
    assert_eq!(
        phases(&s),
        BTreeMap::from([
            ("app".to_owned(), ContainerRecreatePhase::Succeeded),
            ("side".to_owned(), ContainerRecreatePhase::Succeeded)
        ])
    );
    let p = env.restarted("hooks", "side", &old_side).await?;
    let p2 = env.restarted("hooks", "app", &old_app).await?;
    let (new_app, new_side) = (id_of(&p2, "app"), id_of(&p, "side"));
    // preStop ran once per container, app first (ordered), before each stop.
    let (code, order) = env.exec(&new_app, &["cat", "/data/prestop"]).await?;
    assert_eq!((code, order.as_str()), (0, "app\nside\n"));
    // postStart ran in the new containers (their own /tmp is fresh).
    for id in [&new_app, &new_side] {
        let (code, out) = env.exec(id, &["cat", "/tmp/post-started"]).await?;
        assert_eq!(code, 0, "no postStart mark in {id}");
        assert!(!out.trim().is_empty());
    }
    // Ordered: side was stopped only after app ran again.
    let app_started = status_of(&p2, "app").unwrap().state.unwrap().running.unwrap().started_at.unwrap().0;
    let side_started = status_of(&p, "side").unwrap().state.unwrap().running.unwrap().started_at.unwrap().0;
    assert!(side_started >= app_started, "app {app_started} side {side_started}");
    env.stop().await;
    Ok(())
}

/// A container that exited (crash loop) is recreated when forced; a request naming a
/// container the pod lacks fails with a message naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_mode_forces_an_exited_container_and_fails_an_unknown_name() -> anyhow::Result<()> {
    // A back-off long enough for the request to find the container exited.
    let env = Env::start("kubelet", Duration::from_secs(8)).await?;
    // Exits on its first two runs, then stays up: in back-off after the second exit.
    let script = "n=$(cat /data/runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/runs; \
                  if [ $n -ge 3 ]; then exec sleep 3600; fi; sleep 1; exit 1";
    let spec = json!({"terminationGracePeriodSeconds": 2, "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [app(&env.bed), {"name": "flaky", "image": env.bed.image("app:v1"),
            "command": ["sh", "-c", script], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]});
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "flaky", "namespace": NS}, "spec": {"nodeName": NODE, "volumes": spec["volumes"],
        "terminationGracePeriodSeconds": 2, "containers": spec["containers"]}}))?;
    env.pods().create(&PostParams::default(), &pod).await?;
    let pods = env.pods();
    let exited = until("flaky exited", Duration::from_secs(60), async || {
        let p = pods.get("flaky").await?;
        let st = status_of(&p, "flaky");
        // exited, or waiting in back-off after an exit (the id is the exited one's)
        Ok(st
            .filter(|s| {
                s.restart_count >= 1
                    && s.container_id.is_some()
                    && s.state.as_ref().is_some_and(|x| {
                        x.terminated.is_some()
                            || x.waiting
                                .as_ref()
                                .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
                    })
            })
            .map(|_| p))
    })
    .await?;
    let old = id_of(&exited, "flaky");
    env.create_crr(
        "force",
        &exited,
        &["flaky"],
        json!({"forceRecreate": true, "terminationGracePeriodSeconds": 1}),
    )
    .await?;
    let s = env.completed("force", 60).await?;
    assert_eq!(
        phases(&s),
        BTreeMap::from([("flaky".to_owned(), ContainerRecreatePhase::Succeeded)]),
        "{s:?}"
    );
    assert_eq!(s.container_recreate_states.as_ref().unwrap()[0].is_killed, Some(true));
    let p = env.restarted("flaky", "flaky", &old).await?;
    assert!(status_of(&p, "flaky").unwrap().state.unwrap().running.is_some());

    env.create_crr("typo", &p, &["app", "nope"], json!({})).await?;
    let s = env.completed("typo", 30).await?;
    let nope = s.container_recreate_states.iter().flatten().find(|c| c.name == "nope").unwrap();
    assert_eq!(nope.phase, ContainerRecreatePhase::Failed);
    assert!(nope.message.as_deref().unwrap().contains("\"nope\" is not a container of the pod"), "{nope:?}");
    assert!(s.message.as_deref().unwrap().contains("nope"), "{s:?}");
    // failurePolicy Fail: app was not touched
    assert_eq!(id_of(&pods.get("flaky").await?, "app"), id_of(&p, "app"));
    env.stop().await;
    Ok(())
}

/// The request of the controller's admission must never be overwritten once the
/// controller completed it: a request completed by someone else stays as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_completed_elsewhere_is_left_alone() -> anyhow::Result<()> {
    let env = Env::start("kubelet", Duration::from_secs(1)).await?;
    let pod = env
        .running_pod("idle", json!({"terminationGracePeriodSeconds": 2, "containers": [app(&env.bed)]}))
        .await?;
    // Waits for an unready-acquired annotation that never comes.
    env.create_crr("wait", &pod, &["app"], json!({"unreadyGracePeriodSeconds": 1})).await?;
    let crrs = env.crrs();
    until("wait Recreating", Duration::from_secs(20), async || {
        let s = crrs.get("wait").await?.status;
        Ok(s.filter(|s| s.phase == ContainerRecreateRequestPhase::Recreating))
    })
    .await?;
    let done = json!({"status": {"phase": "Completed", "completionTime": "2026-01-01T00:00:00Z",
        "message": "completed by the controller"}});
    crrs.patch_status("wait", &PatchParams::default(), &Patch::Merge(&done)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = crrs.get("wait").await?.status.unwrap();
    assert_eq!(s.message.as_deref(), Some("completed by the controller"));
    assert_eq!(s.phase, ContainerRecreateRequestPhase::Completed);
    assert_eq!(id_of(&env.pods().get("idle").await?, "app"), id_of(&pod, "app"));
    env.stop().await;
    Ok(())
}

/// Proxy mode: the proxy recreates the container in its sandbox, and the agent runs
/// the postStart hook in the new container (kubelet did not start it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_recreates_one_container() -> anyhow::Result<()> {
    let env = Env::start("proxy", Duration::from_secs(1)).await?;
    let container = json!({"name": "app", "image": env.bed.image("app:v1"),
        "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "date +%s > /tmp/post-started"]}}}});
    let pod = env
        .running_pod("web", json!({"terminationGracePeriodSeconds": 3, "containers": [container]}))
        .await?;
    let old = id_of(&pod, "app");
    let rc = status_of(&pod, "app").unwrap().restart_count;
    env.create_crr("one", &pod, &["app"], json!({})).await?;
    let s = env.completed("one", 60).await?;
    assert_eq!(phases(&s), BTreeMap::from([("app".to_owned(), ContainerRecreatePhase::Succeeded)]), "{s:?}");
    let p = env.restarted("web", "app", &old).await?;
    assert_eq!(status_of(&p, "app").unwrap().restart_count, rc + 1);
    let (code, _) = env.exec(&id_of(&p, "app"), &["cat", "/tmp/post-started"]).await?;
    assert_eq!(code, 0, "no postStart mark in the new container");
    // The proxy's path, not the fallback to kubelet.
    let metrics = env.agent.metrics()?;
    assert!(
        metrics.contains("stevedore_agent_container_recreates_total{mode=\"proxy\",result=\"succeeded\"} 1"),
        "{metrics}\nagent log:\n{}",
        env.agent.log_tail(40)
    );
    env.stop().await;
    Ok(())
}

/// The proxy is down when the request comes (restarting, say, after an upgrade): the
/// request waits for it and completes once it is back, on the proxy's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_made_while_the_proxy_restarts_completes() -> anyhow::Result<()> {
    let mut env = Env::start("proxy", Duration::from_secs(1)).await?;
    let container = json!({"name": "app", "image": env.bed.image("app:v1")});
    let pod = env
        .running_pod("web", json!({"terminationGracePeriodSeconds": 3, "containers": [container]}))
        .await?;
    let old = id_of(&pod, "app");
    let rc = status_of(&pod, "app").unwrap().restart_count;
    env.proxy.stop().await?;
    env.create_crr("during", &pod, &["app"], json!({})).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let socket = env.proxy.socket().to_owned();
    env.proxy = ProxyProcess::start(&socket, env.bed.containerd_socket(), &[]).await?;
    let s = env.completed("during", 60).await?;
    assert_eq!(phases(&s), BTreeMap::from([("app".to_owned(), ContainerRecreatePhase::Succeeded)]), "{s:?}");
    let p = env.restarted("web", "app", &old).await?;
    assert_eq!(status_of(&p, "app").unwrap().restart_count, rc + 1, "one restart");
    let metrics = env.agent.metrics()?;
    assert!(
        metrics.contains("stevedore_agent_container_recreates_total{mode=\"proxy\",result=\"succeeded\"} 1"),
        "the proxy's path once it is back: {metrics}"
    );
    env.stop().await;
    Ok(())
}
