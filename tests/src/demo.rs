//! The local demo, the project's main job: a CloneSet of 3 replicas on the test bed's
//! real containerd (behind the real proxy), driven by the real controller through the
//! simulated API server and a simulated kubelet, rolled in place from `app:v1` to
//! `app:v2`. Each pod's restart count, container id and image are printed before and
//! after, and each step is timed. With `--keep` the cluster stays up (a `KUBECONFIG`
//! is printed for kubectl) until Ctrl-C; then, or at once, everything is torn down.

use std::{
    collections::BTreeMap,
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt as _,
    api::{DeleteParams, ListParams},
};
use serde_json::json;
use stevedore_proto::crd::clone_set::CloneSet;

use crate::{
    stack::{Stack, StackOptions},
    wait::until,
};

/// How the demo runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct DemoOptions {
    /// Leave the cluster running until Ctrl-C.
    pub keep: bool,
}

async fn step<T, F: Future<Output = anyhow::Result<T>>>(name: &str, f: F) -> anyhow::Result<T> {
    let t = Instant::now();
    let out = f.await.with_context(|| format!("step {name:?} failed"))?;
    println!("  {:>9.2} ms  {name}", t.elapsed().as_secs_f64() * 1e3);
    Ok(out)
}

const NS: &str = "demo";

/// A pod's `app` container: restarts, container id, image.
fn app(p: &Pod) -> (i32, String, String) {
    let c = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == "app"));
    c.map(|c| (c.restart_count, c.container_id.clone().unwrap_or_default(), c.image.clone()))
        .unwrap_or_default()
}

fn short(id: &str) -> &str {
    let bare = id.split_once("://").map_or(id, |(_, b)| b);
    &bare[..bare.len().min(12)]
}

async fn pods(api: &Api<Pod>) -> anyhow::Result<BTreeMap<String, Pod>> {
    let list = api.list(&ListParams::default().labels("app=demo")).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.name_any(), p))
        .collect())
}

fn print_pods(pods: &BTreeMap<String, Pod>) {
    println!("             {:<12} {:<9} {:<14} image", "pod", "restarts", "container");
    for (name, p) in pods {
        let (restarts, id, image) = app(p);
        println!("             {name:<12} {restarts:<9} {:<14} {image}", short(&id));
    }
}

async fn settled(
    sets: &Api<CloneSet>,
    replicas: i32,
    image: &str,
    pods_api: &Api<Pod>,
) -> anyhow::Result<()> {
    until("the CloneSet settled", Duration::from_secs(180), async || {
        let cs = sets.get("demo").await?;
        let st = cs.status.clone().unwrap_or_default();
        let done = st.observed_generation == cs.metadata.generation
            && st.updated_ready_replicas == replicas
            && st.ready_replicas == replicas
            && st.replicas == replicas;
        let on_image = pods(pods_api).await?.values().filter(|p| app(p).2 == image).count();
        Ok((done && on_image == usize::try_from(replicas).unwrap_or(0)).then_some(()))
    })
    .await
}

/// Runs the demo, printing as it goes.
///
/// # Errors
/// Any step failing, named.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let total = Instant::now();
    println!("stevedore demo: a CloneSet rolled in place on a real containerd\n");
    let stack = step(
        "start the local cluster: containerd + stevedore-cri-proxy, API server, stevedore-controller, a node, the scheduler",
        Stack::start(StackOptions { namespaces: vec![NS.into()], ..StackOptions::default() }),
    )
    .await?;
    println!("             containerd {}", stack.bed.containerd_socket().display());
    println!("             proxy      {}", stack.proxy.socket().display());
    println!("             API server {} (kubeconfig {})", stack.url(), stack.kubeconfig.display());
    let kubectl = step("install kubectl v1.33 (once per machine, from npm)", stack.clients()).await?;
    let sets: Api<CloneSet> = Api::namespaced(stack.client.clone(), NS);
    let pods_api: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let (v1, v2) = (stack.bed.image("app:v1"), stack.bed.image("app:v2"));

    let manifest = json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
        "metadata": {"name": "demo", "namespace": NS},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "demo"}},
            "template": {"metadata": {"labels": {"app": "demo"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": v1, "imagePullPolicy": "IfNotPresent"}]}},
            "updateStrategy": {"type": "InPlaceIfPossible", "maxUnavailable": 1}
        }
    });
    step("kubectl apply: CloneSet demo, 3 replicas of app:v1, InPlaceIfPossible", async {
        kubectl.kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string()).await.ok();
        Ok(())
    })
    .await?;
    step("3 pods created, scheduled, pulled, started: Ready", settled(&sets, 3, &v1, &pods_api)).await?;
    let before = pods(&pods_api).await?;
    print_pods(&before);

    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": v2}]);
    step("kubectl patch: image app:v2", async {
        kubectl
            .kubectl(&["-n", NS, "patch", "clonesets/demo", "--type", "json", "-p", &patch.to_string()])
            .await
            .ok();
        Ok(())
    })
    .await?;
    step("rolled in place, one pod at a time: all 3 updated and Ready", settled(&sets, 3, &v2, &pods_api))
        .await?;
    let after = pods(&pods_api).await?;
    print_pods(&after);
    ensure!(after.keys().eq(before.keys()), "the pods were recreated, not updated in place");
    for (name, p) in &after {
        ensure!(p.uid() == before[name].uid(), "{name} has a new uid");
        ensure!(app(p).0 == app(&before[name]).0 + 1, "{name} did not restart exactly once");
        ensure!(app(p).1 != app(&before[name]).1, "{name} kept its container");
    }
    println!("             same pods (names and uids), each container restarted once on the new image");
    let wide = step("kubectl get clonesets -o wide", async {
        Ok(kubectl.kubectl(&["-n", NS, "get", "clonesets", "-o", "wide"]).await)
    })
    .await?;
    for line in wide.ok().lines() {
        println!("             {line}");
    }

    if opts.keep {
        println!("\nthe cluster keeps running; in another shell:\n");
        println!("  export KUBECONFIG={}", stack.kubeconfig.display());
        println!("  {} -n {NS} get clonesets -w", kubectl.kubectl_path().display());
        println!("\nCtrl-C tears it down.");
        tokio::signal::ctrl_c().await?;
        println!();
    }
    step("delete the CloneSet: its pods go with it", async {
        sets.delete("demo", &DeleteParams::default()).await?;
        until("the pods gone", Duration::from_secs(60), async || {
            Ok(pods(&pods_api).await?.is_empty().then_some(()))
        })
        .await
    })
    .await?;
    let dir = stack.bed.dir().to_owned();
    step("stop everything and tear down the test bed", async {
        stack.stop().await;
        Ok(())
    })
    .await?;
    ensure!(!dir.exists(), "the test bed left {} behind", dir.display());
    println!("\nall done in {:.2} s; nothing left running", total.elapsed().as_secs_f64());
    Ok(())
}
