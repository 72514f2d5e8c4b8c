//! Advanced DaemonSet end to end, the node-local way: the real controller binary
//! writes permits into each node's NodeState and adds the reports up; the real agent
//! of each of three simulated nodes (kubelets on the real containerd behind the real
//! proxy) creates, replaces and deletes its own node's pod. The user's steps (apply,
//! label, taint, patch) go through kubectl; the checks read the API.
//!
//! - `placement_and_rolling_update`: a set on a labelled subset of nodes; a node
//!   labelled later gets its pod, OpenKruise's revision name and pod labels; a
//!   rolling update held at `partition: 1` moves the two highest-named nodes only,
//!   one node at a time (a pod watch never sees two nodes without a ready pod), the
//!   node held back having pre-downloaded the new image; the
//!   partition lifted finishes it; a `NoExecute` taint and a removed label take the
//!   pod off their nodes; `kubectl get` shows the printer columns.
//! - `surge_restarts_and_a_silent_agent`: a surge update (`maxSurge: 1,
//!   maxUnavailable: 0`) never shows more than 4 pods nor fewer than 3 nodes with a
//!   ready pod, with an agent and the controller restarted in the middle; an agent
//!   killed and its node's pod deleted: the node counts as desired and unavailable
//!   once its report is stale, and gets its pod back when the agent returns.
//! - `in_place_update_and_rollback`: under `InPlaceIfPossible` an image update keeps
//!   every pod and uid (one container restart on the new image, `InPlaceUpdateReady`
//!   True again, `updatedInPlace` in the node's report), and a rollback reuses the
//!   first revision and is made in place too.
//! - `nodes_join_and_leave`: a node that joins (its kubelet registers it, its agent
//!   starts) gets its NodeState and the set's pod and is counted; a node that leaves
//!   (agent and kubelet stopped, the Node deleted with kubectl) is no longer desired,
//!   and its NodeState goes with its Node; then an update under a `preDelete` hook:
//!   the held pod moves to `PreparingDelete` and stays while the other node updates,
//!   and goes (replaced on the new revision) once its label is removed.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;

use k8s_openapi::api::{apps::v1::ControllerRevision, core::v1::Pod};
use kube::{
    Api, ResourceExt as _,
    api::ListParams,
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::{Value, json};
use stevedore_proto::{
    crd::{daemon_set::v1beta1::DaemonSet, node_state::NodeState},
    keys, revision,
};
use stevedore_tests::{
    clients::Clients,
    stack::{Stack, StackOptions},
    wait::until,
};

const NS: &str = "edge";
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

fn manifest(name: &str, image: &str, extra: Value) -> String {
    let mut ds = json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "nodeSelector": {"role": "edge"},
                    "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]}
            },
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
        }
    });
    json_patch::merge(&mut ds, &extra);
    serde_json::to_string(&ds).unwrap()
}

/// The set's live pods by node.
async fn pods_by_node(pods: &Api<Pod>, set: &str) -> BTreeMap<String, Vec<Pod>> {
    let lp = ListParams::default().labels(&format!("app={set}"));
    let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in pods.list(&lp).await.unwrap().items {
        if p.metadata.deletion_timestamp.is_none() {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            out.entry(node).or_default().push(p);
        }
    }
    out
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// (desired, current, ready, updated, available, misscheduled), once the status
/// describes the current spec.
fn counts(ds: &DaemonSet) -> Option<(i32, i32, i32, i32, i32, i32)> {
    let s = ds.status.as_ref()?;
    (s.observed_generation == ds.metadata.generation).then_some((
        s.desired_number_scheduled,
        s.current_number_scheduled,
        s.number_ready,
        s.updated_number_scheduled,
        s.number_available.unwrap_or(0),
        s.number_misscheduled,
    ))
}

async fn status_until(stack: &Stack, name: &str, want: (i32, i32, i32, i32, i32, i32)) -> DaemonSet {
    let sets: Api<DaemonSet> = Api::namespaced(stack.client.clone(), NS);
    let what = format!("{name}: status {want:?}");
    let r = until(&what, Duration::from_secs(120), async || {
        Ok(sets.get(name).await?).map(|ds| (counts(&ds) == Some(want)).then_some(ds))
    })
    .await;
    match r {
        Ok(ds) => ds,
        Err(e) => {
            let ds = sets.get(name).await.unwrap();
            let states: Api<NodeState> = Api::all(stack.client.clone());
            let states = states.list(&ListParams::default()).await.unwrap().items;
            panic!(
                "{e}\nstatus: {}\nnode states: {}\nagent log:\n{}\ncontroller log:\n{}",
                serde_json::to_string(&ds.status).unwrap(),
                serde_json::to_string(&states.iter().map(|s| (&s.spec, &s.status)).collect::<Vec<_>>())
                    .unwrap(),
                agent_logs(stack),
                stack.controller.log_tail(120)
            );
        }
    }
}

/// What a pod watch of a set has seen since its initial list: the most live pods at
/// once, and the fewest nodes with a ready pod.
struct Bounds {
    seen: Arc<Mutex<(usize, usize)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Bounds {
    fn watch(pods: &Api<Pod>, set: &str) -> Self {
        let seen = Arc::new(Mutex::new((0, usize::MAX)));
        let (pods, out, labels) = (pods.clone(), seen.clone(), format!("app={set}"));
        let task = tokio::spawn(async move {
            let mut live: BTreeMap<String, Pod> = BTreeMap::new();
            let mut events =
                std::pin::pin!(watcher(pods, watcher::Config::default().labels(&labels)).default_backoff());
            let mut listed = false;
            while let Some(Ok(e)) = events.next().await {
                match e {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        live.insert(p.name_any(), p);
                    }
                    watcher::Event::Delete(p) => {
                        live.remove(&p.name_any());
                    }
                    watcher::Event::InitDone => listed = true,
                    watcher::Event::Init => live.clear(),
                }
                live.retain(|_, p| p.metadata.deletion_timestamp.is_none());
                if listed {
                    let ready_nodes: BTreeSet<String> = live
                        .values()
                        .filter(|p| ready(p))
                        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                        .collect();
                    let mut s = out.lock().unwrap();
                    *s = (s.0.max(live.len()), s.1.min(ready_nodes.len()));
                }
            }
        });
        Self { seen, task }
    }

    /// (most live pods, fewest nodes with a ready pod); stops watching.
    fn seen(self) -> (usize, usize) {
        self.task.abort();
        *self.seen.lock().unwrap()
    }
}

fn agent_logs(stack: &Stack) -> String {
    stack.agents.iter().map(|a| a.log_tail(30)).collect::<Vec<_>>().join("\n---\n")
}

async fn kubectl_ok(kubectl: &Clients, args: &[&str]) {
    let out = kubectl.kubectl(args).await;
    out.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_and_rolling_update() {
    let stack = stack().await;
    let kubectl = stack.clients().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let (v1, v2) = (stack.bed.image("app:v1"), stack.bed.image("app:v2"));
    for node in &NODES[..2] {
        kubectl_ok(&kubectl, &["label", "node", node, "role=edge"]).await;
    }

    // on the two labelled nodes, named and labelled as OpenKruise does
    kubectl.kubectl_stdin(&["apply", "-f", "-"], &manifest("agent", &v1, json!({}))).await.ok();
    let ds = status_until(&stack, "agent", (2, 2, 2, 2, 2, 0)).await;
    let hash = ds.status.as_ref().and_then(|s| s.update_revision.clone()).unwrap();
    let want = revision::daemon_set_revision(&ds).unwrap();
    assert_eq!(hash, want.hash, "the go-spew hash of the template");
    let revs: Api<ControllerRevision> = Api::namespaced(stack.client.clone(), NS);
    let rev = revs.get(&format!("agent-{hash}")).await.unwrap();
    assert_eq!(rev.labels().get(keys::CONTROLLER_REVISION_HASH), Some(&hash));
    assert_eq!(rev.data.as_ref().unwrap().0, serde_json::from_str::<Value>(&want.data).unwrap());
    let by_node = pods_by_node(&pods, "agent").await;
    assert_eq!(by_node.keys().collect::<Vec<_>>(), ["node-a", "node-b"]);
    for (node, ps) in &by_node {
        assert_eq!(ps.len(), 1, "{node}: one pod");
        let p = &ps[0];
        assert!(p.name_any().starts_with("agent-"), "{}", p.name_any());
        assert_eq!(p.labels().get(keys::CONTROLLER_REVISION_HASH), Some(&hash));
        // left out of the controller's pod watch
        assert_eq!(p.labels().get(keys::NODE_LOCAL).map(String::as_str), Some("true"));
        let owner = &p.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("DaemonSet", Some(true)));
        let tolerations = p.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
        assert!(tolerations.iter().any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")));
    }

    // a node labelled later gets its pod
    kubectl_ok(&kubectl, &["label", "node", "node-c", "role=edge"]).await;
    status_until(&stack, "agent", (3, 3, 3, 3, 3, 0)).await;
    let before = pods_by_node(&pods, "agent").await;

    // a rolling update held at partition 1: the two highest names move, one at a time
    let bounds = Bounds::watch(&pods, "agent");
    let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 1}},
        "template": {"spec": {"containers": [{"name": "app", "image": v2, "imagePullPolicy": "IfNotPresent"}]}}}});
    kubectl_ok(
        &kubectl,
        &["-n", NS, "patch", "daemonsets.apps.kruise.io/agent", "--type", "merge", "-p", &patch.to_string()],
    )
    .await;
    let ds = status_until(&stack, "agent", (3, 3, 3, 2, 3, 0)).await;
    let new_hash = ds.status.as_ref().and_then(|s| s.update_revision.clone()).unwrap();
    assert_ne!(new_hash, hash);
    let mid = pods_by_node(&pods, "agent").await;
    let on =
        |m: &BTreeMap<String, Vec<Pod>>, n: &str| m[n][0].labels()[keys::CONTROLLER_REVISION_HASH].clone();
    assert_eq!(
        [on(&mid, "node-a"), on(&mid, "node-b"), on(&mid, "node-c")],
        [hash.clone(), new_hash.clone(), new_hash.clone()],
        "descending names first; the partition keeps node-a"
    );
    assert_eq!(mid["node-a"][0].uid(), before["node-a"][0].uid(), "node-a untouched");
    // held back by the partition, node-a's agent has the new image already
    let log = stack.agents[0].log_tail(400);
    assert!(
        log.lines().any(|l| l.contains("image pre-downloaded for the update") && l.contains(v2.as_str())),
        "node-a pre-downloads {v2}:\n{log}"
    );

    // the partition lifted: node-a follows
    let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
    kubectl_ok(
        &kubectl,
        &["-n", NS, "patch", "daemonsets.apps.kruise.io/agent", "--type", "merge", "-p", &patch.to_string()],
    )
    .await;
    status_until(&stack, "agent", (3, 3, 3, 3, 3, 0)).await;
    let (_, fewest_ready) = bounds.seen();
    assert_eq!(fewest_ready, 2, "maxUnavailable 1: one node at a time without a ready pod");
    let after = pods_by_node(&pods, "agent").await;
    for n in NODES {
        assert_eq!(on(&after, n), new_hash, "{n}");
        let image = after[n][0].spec.as_ref().unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some(v2.as_str()));
    }

    // printer columns
    let out = kubectl.kubectl(&["-n", NS, "get", "daemonsets.apps.kruise.io", "agent"]).await;
    let table = out.ok().to_owned();
    assert!(table.contains("DESIRED") && table.contains("UP-TO-DATE"), "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..6], ["agent", "3", "3", "3", "3", "3"], "{table}");

    // a NoExecute taint and a removed label take the pod off
    kubectl_ok(&kubectl, &["taint", "node", "node-c", "dedicated=db:NoExecute"]).await;
    kubectl_ok(&kubectl, &["label", "node", "node-b", "role-"]).await;
    status_until(&stack, "agent", (1, 1, 1, 1, 1, 0)).await;
    let left = until("pods only on node-a", Duration::from_secs(60), async || {
        let m = pods_by_node(&pods, "agent").await;
        Ok((m.keys().collect::<Vec<_>>() == ["node-a"]).then_some(m))
    })
    .await
    .unwrap();
    assert_eq!(left["node-a"].len(), 1);

    // cordoned: the pod stays, and one deleted comes back (daemon pods tolerate
    // unschedulable nodes)
    kubectl_ok(&kubectl, &["cordon", "node-a"]).await;
    let old = left["node-a"][0].name_any();
    kubectl_ok(&kubectl, &["-n", NS, "delete", "pod", &old, "--wait=false"]).await;
    until("a new pod on the cordoned node", Duration::from_secs(60), async || {
        let m = pods_by_node(&pods, "agent").await;
        Ok(m.get("node-a")
            .is_some_and(|ps| ps.len() == 1 && ps[0].name_any() != old && ready(&ps[0]))
            .then_some(()))
    })
    .await
    .unwrap();
    status_until(&stack, "agent", (1, 1, 1, 1, 1, 0)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_restarts_and_a_silent_agent() {
    let mut stack = stack().await;
    let kubectl = stack.clients().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let (v1, v2) = (stack.bed.image("app:v1"), stack.bed.image("app:v2"));
    let every_node_surge = json!({"spec": {"template": {"spec": {"nodeSelector": null}},
        "updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}});
    kubectl.kubectl_stdin(&["apply", "-f", "-"], &manifest("probe", &v1, every_node_surge)).await.ok();
    status_until(&stack, "probe", (3, 3, 3, 3, 3, 0)).await;

    let bounds = Bounds::watch(&pods, "probe");
    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": v2}]);
    kubectl_ok(
        &kubectl,
        &["-n", NS, "patch", "daemonsets.apps.kruise.io/probe", "--type", "json", "-p", &patch.to_string()],
    )
    .await;
    // in the middle of the rollout: an agent and the controller restart
    until("a second pod on a node", Duration::from_secs(60), async || {
        Ok(pods_by_node(&pods, "probe").await.values().any(|ps| ps.len() > 1).then_some(()))
    })
    .await
    .unwrap();
    stack.restart_agent(1).await.unwrap();
    stack.restart_controller().await.unwrap();
    status_until(&stack, "probe", (3, 3, 3, 3, 3, 0)).await;
    let (most, fewest_ready) = bounds.seen();
    assert_eq!(most, 4, "maxSurge 1: one extra pod at a time, and it is used");
    assert_eq!(fewest_ready, 3, "maxUnavailable 0: every node keeps a ready pod");
    let after = pods_by_node(&pods, "probe").await;
    for n in NODES {
        assert_eq!(after[n].len(), 1, "{n}: the old pod is gone");
    }

    // a silent agent: its node counts as unavailable, not as a smaller desired count
    stack.agents[2].kill();
    let pod = after["node-c"][0].name_any();
    kubectl_ok(&kubectl, &["-n", NS, "delete", "pod", &pod, "--wait=false"]).await;
    status_until(&stack, "probe", (3, 2, 2, 2, 2, 0)).await;
    assert!(
        !pods_by_node(&pods, "probe").await.contains_key("node-c"),
        "nobody creates it without the agent"
    );
    stack.restart_agent(2).await.unwrap();
    status_until(&stack, "probe", (3, 3, 3, 3, 3, 0)).await;
    stack.stop().await;
}

fn app_container(p: &Pod) -> (String, i32) {
    let c = p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first());
    c.map(|c| (c.image.clone(), c.restart_count)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_update_and_rollback() {
    let stack = stack().await;
    let kubectl = stack.clients().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let (v1, v2) = (stack.bed.image("app:v1"), stack.bed.image("app:v2"));
    let in_place = json!({"spec": {"template": {"spec": {"nodeSelector": null}},
        "updateStrategy": {"rollingUpdate": {"rollingUpdateType": "InPlaceIfPossible"}}}});
    kubectl.kubectl_stdin(&["apply", "-f", "-"], &manifest("logs", &v1, in_place)).await.ok();
    let ds = status_until(&stack, "logs", (3, 3, 3, 3, 3, 0)).await;
    let first = ds.status.as_ref().and_then(|s| s.update_revision.clone()).unwrap();
    let before = pods_by_node(&pods, "logs").await;
    for ps in before.values() {
        assert!(stevedore_proto::inplace::has_readiness_gate(&ps[0]), "InPlaceUpdateReady gate");
        let c = stevedore_proto::inplace::ready_condition(&ps[0]).map(|c| c.status.clone());
        assert_eq!(c.as_deref(), Some("True"));
    }

    let set_image = |image: &str| {
        json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}])
            .to_string()
    };
    let bounds = Bounds::watch(&pods, "logs");
    kubectl_ok(
        &kubectl,
        &["-n", NS, "patch", "daemonsets.apps.kruise.io/logs", "--type", "json", "-p", &set_image(&v2)],
    )
    .await;
    let ds = until("every pod updated in place", Duration::from_secs(120), async || {
        let ds: DaemonSet = Api::namespaced(stack.client.clone(), NS).get("logs").await?;
        let moved = ds.status.as_ref().and_then(|s| s.update_revision.clone()) != Some(first.clone());
        Ok((moved && counts(&ds) == Some((3, 3, 3, 3, 3, 0))).then_some(ds))
    })
    .await
    .unwrap();
    let second = ds.status.as_ref().and_then(|s| s.update_revision.clone()).unwrap();
    let (most, fewest_ready) = bounds.seen();
    assert_eq!(most, 3, "no pod created");
    assert_eq!(fewest_ready, 2, "one node at a time");
    let after = pods_by_node(&pods, "logs").await;
    for n in NODES {
        let (old, new) = (&before[n][0], &after[n][0]);
        assert_eq!(old.uid(), new.uid(), "{n}: the same pod; agents:\n{}", agent_logs(&stack));
        assert_eq!(new.labels()[keys::CONTROLLER_REVISION_HASH], second);
        let ((_, restarts_before), (image, restarts)) = (app_container(old), app_container(new));
        assert_eq!(image, v2, "{n}: runs the new image");
        assert_eq!(restarts, restarts_before + 1, "{n}: restarted in place");
    }
    let state: NodeState = Api::all(stack.client.clone()).get("node-a").await.unwrap();
    let report = state.status.unwrap().daemon_sets.into_iter().find(|d| d.workload.name == "logs").unwrap();
    assert!(report.updated_in_place, "{report:?}");

    // a rollback reuses the first revision, in place again
    kubectl_ok(
        &kubectl,
        &["-n", NS, "patch", "daemonsets.apps.kruise.io/logs", "--type", "json", "-p", &set_image(&v1)],
    )
    .await;
    until("rolled back in place", Duration::from_secs(120), async || {
        let ds: DaemonSet = Api::namespaced(stack.client.clone(), NS).get("logs").await?;
        let back = ds.status.as_ref().and_then(|s| s.update_revision.clone()) == Some(first.clone());
        Ok((back && counts(&ds) == Some((3, 3, 3, 3, 3, 0))).then_some(()))
    })
    .await
    .unwrap();
    let back = pods_by_node(&pods, "logs").await;
    for n in NODES {
        assert_eq!(back[n][0].uid(), before[n][0].uid(), "{n}: still the same pod");
        assert_eq!(app_container(&back[n][0]).0, v1);
    }

    // deleted: its pods go (the garbage collector) and its permits are taken back
    kubectl_ok(&kubectl, &["-n", NS, "delete", "daemonsets.apps.kruise.io", "logs"]).await;
    let states: Api<NodeState> = Api::all(stack.client.clone());
    until("no pod and no permit left", Duration::from_secs(60), async || {
        let held = states
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .any(|s| s.spec.daemon_sets.contains_key(&format!("{NS}/logs")));
        Ok((!held && pods_by_node(&pods, "logs").await.is_empty()).then_some(()))
    })
    .await
    .unwrap();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_and_leave() {
    let mut stack = Stack::start(StackOptions {
        nodes: NODES[..2].iter().map(|n| (*n).to_owned()).collect(),
        spare_nodes: vec!["node-d".into()],
        agents: true,
        namespaces: vec![NS.into()],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let kubectl = stack.clients().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let states: Api<NodeState> = Api::all(stack.client.clone());
    // every node, no selector
    let every = json!({"spec": {"template": {"spec": {"nodeSelector": null}}}});
    let m = manifest("everywhere", &stack.bed.image("app:v1"), every);
    kubectl.kubectl_stdin(&["apply", "-f", "-"], &m).await.ok();
    status_until(&stack, "everywhere", (2, 2, 2, 2, 2, 0)).await;

    // a node joins: its NodeState, its pod, counted
    stack.add_node("node-d").await.unwrap();
    status_until(&stack, "everywhere", (3, 3, 3, 3, 3, 0)).await;
    assert!(states.get_opt("node-d").await.unwrap().is_some(), "the controller made its NodeState");
    let by_node = pods_by_node(&pods, "everywhere").await;
    assert_eq!(by_node.keys().collect::<Vec<_>>(), ["node-a", "node-b", "node-d"]);

    // it leaves: agent and kubelet stopped, the Node deleted
    stack.stop_node("node-d").await.unwrap();
    kubectl_ok(&kubectl, &["delete", "node", "node-d"]).await;
    status_until(&stack, "everywhere", (2, 2, 2, 2, 2, 0)).await;
    until("node-d's NodeState gone with its Node", Duration::from_secs(60), async || {
        Ok(states.get_opt("node-d").await?.is_none().then_some(()))
    })
    .await
    .unwrap();

    // a preDelete hook holds node-a's pod through an update
    let held = pods_by_node(&pods, "everywhere").await["node-a"][0].name_any();
    kubectl_ok(&kubectl, &["-n", NS, "label", "pod", &held, "hold=true"]).await;
    let patch = json!({"spec": {"lifecycle": {"preDelete": {"labelsHandler": {"hold": "true"}}},
        "template": {"spec": {"containers": [{"name": "app", "image": stack.bed.image("app:v2"),
            "imagePullPolicy": "IfNotPresent"}]}}}});
    kubectl_ok(
        &kubectl,
        &[
            "-n",
            NS,
            "patch",
            "daemonsets.apps.kruise.io",
            "everywhere",
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ],
    )
    .await;
    until("the held pod PreparingDelete", Duration::from_secs(60), async || {
        let p = pods.get(&held).await?;
        Ok((p.labels().get(keys::LIFECYCLE_STATE).map(String::as_str) == Some("PreparingDelete"))
            .then_some(()))
    })
    .await
    .unwrap();
    // node-b updated, node-a's pod still held (desired, current, ready, updated, available)
    status_until(&stack, "everywhere", (2, 2, 2, 1, 2, 0)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = pods.get(&held).await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_none(), "held by its preDelete hook");
    // let go: deleted, replaced on the new revision
    kubectl_ok(&kubectl, &["-n", NS, "label", "pod", &held, "hold-"]).await;
    status_until(&stack, "everywhere", (2, 2, 2, 2, 2, 0)).await;
    assert!(pods.get_opt(&held).await.unwrap().is_none_or(|p| p.metadata.deletion_timestamp.is_some()));
    stack.stop().await;
}
