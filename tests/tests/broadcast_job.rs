//! BroadcastJob end to end, the node-local way: the real controller binary writes run
//! permits into each node's NodeState and adds the reports up; the real agent of each
//! of three simulated nodes (kubelets on the real containerd behind the real proxy)
//! creates its own node's pod once and deletes it when its permit goes. The user's
//! steps (apply, label, get) go through kubectl; the checks read the API.
//!
//! - `parallelism_completion_and_ttl`: `parallelism: 1` on three nodes: a pod watch
//!   never sees two pods running at once, the job completes with 3 succeeded, the
//!   Complete condition OpenKruise writes, one pod per node in OpenKruise's shape, and
//!   `kubectl get broadcastjobs` shows the columns; a job with
//!   `ttlSecondsAfterFinished` is deleted after finishing, and its pods with it.
//! - `never_policy_and_restart_limit`: completion policy `Never` on the nodes with a
//!   label: it stays running, a node labelled later gets a pod, a node that finished
//!   never gets a second one; `restartPolicy: OnFailure` with `restartLimit: 1` under
//!   failure policy `Continue`: the node whose container keeps failing counts as
//!   failed after two restarts, and the job completes with 2 succeeded and 1 failed.
//! - `fail_fast_and_pause`: a pod failing on one node fails a `FailFast` job
//!   (condition Failed), and the pods still running on the other nodes are deleted;
//!   under `Pause`, a failed pod pauses the job: no node gets a new pod.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt as _,
    api::ListParams,
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::{Value, json};
use stevedore_proto::crd::{
    broadcast_job::{BroadcastJobPhase, JobConditionType, v1beta1::BroadcastJob},
    node_state::NodeState,
};
use stevedore_tests::{
    clients::Clients,
    stack::{Stack, StackOptions},
    wait::until,
};

const NS: &str = "batch";
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

async fn stack() -> Stack {
    Stack::start(StackOptions {
        nodes: NODES.iter().map(|n| (*n).to_owned()).collect(),
        agents: true,
        namespaces: vec![NS.into()],
        ..StackOptions::default()
    })
    .await
    .unwrap()
}

/// A job running `script` in `sh -c` on every node, with `$NODE` its node's name.
fn manifest(name: &str, image: &str, script: &str, extra: Value) -> String {
    let mut job = json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "BroadcastJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "run", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", script],
                        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}]}
            }
        }
    });
    json_patch::merge(&mut job, &extra);
    serde_json::to_string(&job).unwrap()
}

async fn apply(kubectl: &Clients, manifest: &str) {
    kubectl.kubectl_stdin(&["apply", "-f", "-"], manifest).await.ok();
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// The job's pods (terminating ones too) by node.
async fn pods_by_node(pods: &Api<Pod>, job: &str) -> BTreeMap<String, Vec<Pod>> {
    let lp = ListParams::default().labels(&format!("broadcastjob-name={job}"));
    let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in pods.list(&lp).await.unwrap().items {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        out.entry(node).or_default().push(p);
    }
    out
}

/// (desired, active, succeeded, failed, phase).
type Summary = (i32, i32, i32, i32, Option<BroadcastJobPhase>);

fn summary(job: &BroadcastJob) -> Option<Summary> {
    let s = job.status.as_ref()?;
    Some((s.desired, s.active, s.succeeded, s.failed, s.phase.clone()))
}

async fn status_until(stack: &Stack, name: &str, want: Summary) -> BroadcastJob {
    let jobs: Api<BroadcastJob> = Api::namespaced(stack.client.clone(), NS);
    let what = format!("{name}: status {want:?}");
    let r = until(&what, Duration::from_secs(120), async || {
        Ok(jobs.get(name).await?).map(|j| (summary(&j) == Some(want.clone())).then_some(j))
    })
    .await;
    match r {
        Ok(j) => j,
        Err(e) => {
            let j = jobs.get(name).await.unwrap();
            let states: Api<NodeState> = Api::all(stack.client.clone());
            let states = states.list(&ListParams::default()).await.unwrap().items;
            let agents: Vec<String> = stack
                .agents
                .iter()
                .map(|a| a.log_tail(20))
                .enumerate()
                .map(|(i, l)| format!("agent {i}:\n{l}"))
                .collect();
            panic!(
                "{e}\nstatus: {}\nnode states: {}\n{}\ncontroller log:\n{}",
                serde_json::to_string(&j.status).unwrap(),
                serde_json::to_string(&states.iter().map(|s| (&s.spec, &s.status)).collect::<Vec<_>>())
                    .unwrap(),
                agents.join("\n"),
                stack.controller.log_tail(30)
            );
        }
    }
}

/// The most pods of a job running at once (not finished, not terminating), as a pod
/// watch sees them.
struct MostActive {
    seen: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl MostActive {
    fn watch(pods: &Api<Pod>, job: &str) -> Self {
        let seen = Arc::new(Mutex::new(0));
        let (pods, out, labels) = (pods.clone(), seen.clone(), format!("broadcastjob-name={job}"));
        let task = tokio::spawn(async move {
            let mut live: BTreeMap<String, Pod> = BTreeMap::new();
            let mut events =
                std::pin::pin!(watcher(pods, watcher::Config::default().labels(&labels)).default_backoff());
            while let Some(Ok(e)) = events.next().await {
                match e {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        live.insert(p.name_any(), p);
                    }
                    watcher::Event::Delete(p) => {
                        live.remove(&p.name_any());
                    }
                    watcher::Event::Init => live.clear(),
                    watcher::Event::InitDone => {}
                }
                let active = live
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
                    .count();
                let mut s = out.lock().unwrap();
                *s = (*s).max(active);
            }
        });
        Self { seen, task }
    }

    fn seen(self) -> usize {
        self.task.abort();
        *self.seen.lock().unwrap()
    }
}

fn condition(job: &BroadcastJob) -> (JobConditionType, String, String, String) {
    let cs = job.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    assert_eq!(cs.len(), 1, "one condition: {cs:?}");
    let c = &cs[0];
    (
        c.type_.clone(),
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_completion_and_ttl() {
    let stack = stack().await;
    let kubectl = stack.clients().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let v1 = stack.bed.image("app:v1");

    // one node at a time
    let most = MostActive::watch(&pods, "one");
    apply(&kubectl, &manifest("one", &v1, "sleep 1", json!({"spec": {"parallelism": 1}}))).await;
    let job = status_until(&stack, "one", (3, 0, 3, 0, Some(BroadcastJobPhase::Completed))).await;
    assert_eq!(most.seen(), 1, "parallelism 1: never two pods running at once");
    let (kind, status, reason, message) = condition(&job);
    assert_eq!((kind, status.as_str(), reason.as_str()), (JobConditionType::Complete, "True", "Complete"));
    assert_eq!(message, "Job completed, 3 pods succeeded, 0 pods failed");
    let st = job.status.as_ref().unwrap();
    assert!(st.start_time.as_ref().unwrap().0 <= st.completion_time.as_ref().unwrap().0);
    let by_node = pods_by_node(&pods, "one").await;
    assert_eq!(by_node.keys().collect::<Vec<_>>(), NODES, "one pod per node");
    let uid = job.uid().unwrap();
    for (node, ps) in &by_node {
        assert_eq!(ps.len(), 1, "{node}: one pod");
        let p = &ps[0];
        assert_eq!(phase(p), "Succeeded", "{node}");
        assert!(p.name_any().starts_with("one-"), "{}", p.name_any());
        assert_eq!(p.labels().get("broadcastjob-controller-uid"), Some(&uid));
        assert_eq!(p.labels().get("app").map(String::as_str), Some("one"));
        let owner = &p.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller, owner.uid.as_str()),
            ("BroadcastJob", Some(true), uid.as_str())
        );
    }
    let mut started: Vec<_> =
        by_node.values().map(|ps| ps[0].metadata.creation_timestamp.clone().unwrap().0).collect();
    started.sort();
    let first_done = by_node
        .values()
        .filter_map(|ps| {
            ps[0].status.as_ref()?.container_statuses.as_ref()?[0].state.as_ref()?.terminated.clone()
        })
        .map(|t| t.finished_at.unwrap().0)
        .min()
        .unwrap();
    assert!(started[1] >= first_done, "the second pod was created after the first one finished");

    // printer columns
    let out = kubectl.kubectl(&["-n", NS, "get", "broadcastjobs", "one"]).await;
    let table = out.ok().to_owned();
    assert!(table.contains("DESIRED") && table.contains("SUCCEEDED"), "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], ["one", "3", "0", "3", "0"], "{table}");

    // deleted (with its pods) after its TTL
    let brief = json!({"spec": {"completionPolicy": {"type": "Always", "ttlSecondsAfterFinished": 2}}});
    apply(&kubectl, &manifest("brief", &v1, "true", brief)).await;
    let jobs: Api<BroadcastJob> = Api::namespaced(stack.client.clone(), NS);
    until("brief completes", Duration::from_secs(120), async || {
        let j = jobs.get_opt("brief").await?;
        Ok(j.is_none_or(|j| j.status.and_then(|s| s.completion_time).is_some()).then_some(()))
    })
    .await
    .unwrap();
    until("brief and its pods deleted", Duration::from_secs(60), async || {
        let gone = jobs.get_opt("brief").await?.is_none() && pods_by_node(&pods, "brief").await.is_empty();
        Ok(gone.then_some(()))
    })
    .await
    .unwrap();
    assert!(jobs.get_opt("one").await.unwrap().is_some(), "without a TTL the job stays");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_policy_and_restart_limit() {
    let stack = stack().await;
    let kubectl = stack.clients().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let v1 = stack.bed.image("app:v1");
    kubectl.kubectl(&["label", "node", "node-a", "role=batch"]).await.ok();

    // Never: runs on the labelled nodes, never completes
    let keep = json!({"spec": {"completionPolicy": {"type": "Never"},
        "template": {"spec": {"nodeSelector": {"role": "batch"}}}}});
    apply(&kubectl, &manifest("keep", &v1, "true", keep)).await;
    status_until(&stack, "keep", (1, 0, 1, 0, Some(BroadcastJobPhase::Running))).await;
    kubectl.kubectl(&["label", "node", "node-b", "role=batch"]).await.ok();
    let job = status_until(&stack, "keep", (2, 0, 2, 0, Some(BroadcastJobPhase::Running))).await;
    assert!(
        job.status.as_ref().unwrap().conditions.as_deref().unwrap_or_default().is_empty(),
        "no condition"
    );
    let by_node = pods_by_node(&pods, "keep").await;
    assert_eq!(by_node.keys().collect::<Vec<_>>(), ["node-a", "node-b"]);
    assert!(by_node.values().all(|ps| ps.len() == 1), "a node that finished gets no second pod");

    // OnFailure, restartLimit 1, Continue: node-a's pod fails after its second restart
    let flaky = json!({"spec": {"failurePolicy": {"type": "Continue", "restartLimit": 1},
        "template": {"spec": {"restartPolicy": "OnFailure"}}}});
    let script = r#"if [ "$NODE" = node-a ]; then exit 1; fi"#;
    apply(&kubectl, &manifest("flaky", &v1, script, flaky)).await;
    let job = status_until(&stack, "flaky", (3, 0, 2, 1, Some(BroadcastJobPhase::Completed))).await;
    let (kind, _, _, message) = condition(&job);
    assert_eq!(
        (kind, message.as_str()),
        (JobConditionType::Complete, "Job completed, 2 pods succeeded, 1 pods failed")
    );
    let by_node = pods_by_node(&pods, "flaky").await;
    let a = &by_node["node-a"][0];
    let restarts = a.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].restart_count;
    assert!(restarts >= 2, "more restarts than the limit: {restarts}");
    assert_eq!(by_node["node-a"].len(), 1, "the failed node's pod is not replaced");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_and_pause() {
    let stack = stack().await;
    let kubectl = stack.clients().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let v1 = stack.bed.image("app:v1");
    let script = r#"if [ "$NODE" = node-a ]; then exit 1; fi; sleep 3600"#;

    // FailFast (the default): node-a fails the job, node-b's and node-c's pods go
    apply(&kubectl, &manifest("fast", &v1, script, json!({}))).await;
    let jobs: Api<BroadcastJob> = Api::namespaced(stack.client.clone(), NS);
    let job = until("fast fails", Duration::from_secs(120), async || {
        let j = jobs.get("fast").await?;
        let failed = j.status.as_ref().and_then(|s| s.phase.clone()) == Some(BroadcastJobPhase::Failed);
        Ok(failed.then_some(j))
    })
    .await
    .unwrap();
    let (kind, status, reason, message) = condition(&job);
    assert_eq!((kind, status.as_str(), reason.as_str()), (JobConditionType::Failed, "True", "Failed"));
    assert_eq!(message, "failure policy is FailurePolicyTypeFailFast and failed pod is found");
    until("only node-a's failed pod left", Duration::from_secs(60), async || {
        let m = pods_by_node(&pods, "fast").await;
        Ok((m.keys().collect::<Vec<_>>() == ["node-a"]).then_some(()))
    })
    .await
    .unwrap();
    // the pods running when it failed count as failed (OpenKruise counts the ones it
    // deletes), and a finished job's status is not written again
    let st = jobs.get("fast").await.unwrap().status.unwrap();
    assert_eq!((st.desired, st.active, st.succeeded), (3, 0, 0), "{st:?}");
    assert!((1..=3).contains(&st.failed), "{st:?}");

    // Pause: one node at a time; node-a (first by name) fails: the job pauses there
    let pause = json!({"spec": {"parallelism": 1, "failurePolicy": {"type": "Pause"}}});
    apply(&kubectl, &manifest("held", &v1, script, pause)).await;
    status_until(&stack, "held", (3, 0, 0, 1, Some(BroadcastJobPhase::Paused))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = pods_by_node(&pods, "held").await;
    assert_eq!(m.keys().collect::<Vec<_>>(), ["node-a"], "paused: no other node gets a pod");
    let job = jobs.get("held").await.unwrap();
    assert!(job.status.as_ref().unwrap().conditions.as_deref().unwrap_or_default().is_empty());
    stack.stop().await;
}
