//! The local demo: the test bed's containerd with the real proxy in front, the
//! simulated API server, one simulated node (kubelet) driving CRI through the proxy,
//! and the scheduler. A plain Pod is applied through the API, scheduled, run on the
//! real containerd and reported Running back through the API; then it is deleted and
//! everything torn down. Each step is timed.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use stevedore_proto::cri::{ContainerFilter, ExecSyncRequest, ListContainersRequest, VersionRequest};
use tokio_util::sync::CancellationToken;

use crate::{
    apiserver::{ADMIN_TOKEN, ApiServer, Hooks, Options, UserInfo},
    clients::Clients,
    cri::{connect, runtime_client},
    kubelet::{self, Kubelet, status::running_and_ready},
    proxy_process::ProxyProcess,
    scheduler::Scheduler,
    testbed::TestBed,
    wait::until,
};

async fn step<T, F: Future<Output = anyhow::Result<T>>>(name: &str, f: F) -> anyhow::Result<T> {
    let t = Instant::now();
    let out = f.await.with_context(|| format!("step {name:?} failed"))?;
    println!("  {:>9.2} ms  {name}", ms(t.elapsed()));
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// Runs the demo, printing as it goes.
///
/// # Errors
/// Any step failing, named.
pub async fn run() -> anyhow::Result<()> {
    let total = Instant::now();
    println!(
        "stevedore demo: simulated API server + simulated kubelet -> stevedore-cri-proxy -> containerd (Debian's)\n"
    );
    let bed = step("start the test bed: containerd + runc + local registry", TestBed::start()).await?;
    println!("             containerd socket {}", bed.containerd_socket().display());
    let sock = bed.dir().join("stevedore-cri.sock");
    let mut proxy = step(
        "start stevedore-cri-proxy in front of it",
        ProxyProcess::start(&sock, bed.containerd_socket(), &[]),
    )
    .await?;
    println!("             proxy socket {} (pid {})", proxy.socket().display(), proxy.pid());
    let mut rt = runtime_client(connect(proxy.socket()).await?);
    let v = step("CRI Version through the proxy", async {
        Ok(rt.version(VersionRequest::default()).await?.into_inner())
    })
    .await?;
    println!("             runtime {} {} (CRI {})", v.runtime_name, v.runtime_version, v.runtime_api_version);

    // With its real plug-ins, and kubectl's requests (no credentials over HTTP) served
    // as the admin's, so a user can look around with kubectl.
    let opts = Options { hooks: Hooks::cluster(), anonymous: Some(UserInfo::admin()), ..Options::default() };
    let api = step("start the simulated API server", async { Ok(ApiServer::start(opts).await?) }).await?;
    let kubeconfig = bed.dir().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, ADMIN_TOKEN)?;
    println!("             {} (kubeconfig {})", api.url(), kubeconfig.display());
    let client = api.client().await?;

    let stop = CancellationToken::new();
    let mut cfg = kubelet::Config::new("node-1", Some(proxy.socket().to_owned()), bed.dir().join("kubelet"));
    cfg.sync_interval = Duration::from_millis(300);
    let node = step("start a simulated node (kubelet) on the proxy socket", async {
        Ok(Kubelet::start(cfg, client.clone(), stop.clone()).await?)
    })
    .await?;
    let n = Api::<Node>::all(client.clone()).get("node-1").await?;
    let node_ready = n
        .status
        .and_then(|s| s.conditions)
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    println!("             Node node-1 registered, Ready={node_ready}");
    let scheduler = Scheduler::start(client.clone(), stop.clone());

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let image = bed.image("app:v1");
    let manifest: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hello", "namespace": "default", "labels": {"app": "hello"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}]
        }
    }))?;
    step("apply Pod default/hello (no nodeName)", async {
        Ok(pods.create(&PostParams::default(), &manifest).await?)
    })
    .await?;
    let pod = step("scheduled, pulled, started: Running and Ready, read back through the API", async {
        until("pod hello Running", Duration::from_secs(120), async || {
            Ok(pods.get_opt("hello").await?.filter(running_and_ready))
        })
        .await
    })
    .await?;
    let status = pod.status.clone().unwrap_or_default();
    println!(
        "             phase {} on {} podIP {}",
        phase(&pod),
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("?"),
        status.pod_ip.as_deref().unwrap_or("?")
    );
    for c in status.container_statuses.iter().flatten() {
        println!(
            "             container {}: ready={} restarts={} image {}\n               imageID {}\n               {}",
            c.name,
            c.ready,
            c.restart_count,
            c.image,
            c.image_id,
            c.container_id.as_deref().unwrap_or("?")
        );
    }
    let cli =
        step("install kubectl v1.33 (once per machine, from npm)", Clients::for_kubeconfig(&kubeconfig))
            .await?;
    let wide = step("kubectl get nodes,pods -o wide", async {
        Ok(cli.kubectl(&["get", "nodes,pods", "-o", "wide"]).await)
    })
    .await?;
    for line in wide.ok().lines() {
        println!("             {line}");
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let filter = || ContainerFilter {
        label_selector: [("io.kubernetes.pod.uid".to_owned(), uid.clone())].into_iter().collect(),
        ..Default::default()
    };
    let containers =
        step("the same pod seen on containerd through the proxy (ListContainers by pod uid)", async {
            Ok(rt
                .list_containers(ListContainersRequest { filter: Some(filter()) })
                .await?
                .into_inner()
                .containers)
        })
        .await?;
    let Some(ctr) = containers.first() else { bail!("no container of pod hello on containerd") };
    println!("             {} container(s); {} is {:?}", containers.len(), &ctr.id[..12], ctr.state());
    let out = step("ExecSync: the env kubelet resolved from spec.nodeName", async {
        let req = ExecSyncRequest {
            container_id: ctr.id.clone(),
            cmd: vec!["sh".into(), "-c".into(), "echo $MY_NODE".into()],
            timeout: 10,
        };
        Ok(rt.exec_sync(req).await?.into_inner())
    })
    .await?;
    println!("             MY_NODE={:?}", String::from_utf8_lossy(&out.stdout).trim());

    step("delete the Pod: the kubelet stops it, removes its sandbox, the API drops it", async {
        pods.delete("hello", &DeleteParams::default()).await?;
        until("pod hello gone", Duration::from_secs(60), async || {
            Ok(pods.get_opt("hello").await?.is_none().then_some(()))
        })
        .await
    })
    .await?;
    let left =
        rt.list_containers(ListContainersRequest { filter: Some(filter()) }).await?.into_inner().containers;
    println!("             containers of the pod left on containerd: {}", left.len());
    anyhow::ensure!(left.is_empty(), "the pod's containers were left behind");

    step("stop the node, the scheduler and the API server", async {
        stop.cancel();
        node.join().await;
        scheduler.join().await;
        api.stop().await;
        Ok(())
    })
    .await?;
    drop(rt);
    let exit = step("stop the proxy (SIGTERM: drain, remove socket)", proxy.stop()).await?;
    println!("             proxy exited: {exit}; socket still there: {}", sock.exists());
    let dir = bed.dir().to_owned();
    step("tear down the test bed", async {
        drop(bed);
        Ok(())
    })
    .await?;
    anyhow::ensure!(!dir.exists(), "the test bed left {} behind", dir.display());
    println!("\nall done in {:.2} s; nothing left running", total.elapsed().as_secs_f64());
    Ok(())
}
