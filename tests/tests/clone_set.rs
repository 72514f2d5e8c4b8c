//! CloneSet end to end: the real controller binary against the simulated API server,
//! pods run by a simulated kubelet on the real containerd behind the real proxy. The
//! user's steps (apply, scale, patch, get -o wide) go through kubectl, the client
//! nobody here wrote; the checks read the API.
//!
//! - `scale_and_roll_in_place`: created at 3 replicas (revision named as OpenKruise
//!   names it), `kubectl scale` to 4, an in-place image update to v2 held at
//!   `partition: 2` (same pods, same uids, container restarted on the new image id,
//!   `InPlaceUpdateReady` back to True), then the whole rollout, the printer columns,
//!   a rollback to v1 in place (the old revision reused), `podsToDelete` replacing a
//!   named pod, and a scale-in to 2.
//! - `recreate_claims_hooks_and_restart`: a change that cannot be done in place
//!   recreates the pods under `InPlaceIfPossible`, keeping each instance's claim; an
//!   `InPlaceOnly` set refuses such a change at admission, naming the field; a
//!   preDelete hook holds a pod in PreparingDelete until the hook's label goes; the
//!   controller is restarted in the middle of a rollout and finishes it.
//! - `surge_and_budgets`: a ReCreate update with `maxSurge: 1, maxUnavailable: 0`
//!   never shows more than 4 live pods nor fewer than 3 ready on a watch; an in-place
//!   update with `maxUnavailable: 1` takes one pod out of Ready at a time and keeps
//!   every pod and uid.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{
    apps::v1::ControllerRevision,
    core::v1::{PersistentVolumeClaim, Pod},
};
use kube::{Api, ResourceExt as _, api::ListParams};
use serde_json::{Value, json};
use stevedore_proto::{
    crd::{clone_set::CloneSet, image_pull_job::v1beta1::ImagePullJob},
    inplace, keys, revision,
};
use stevedore_tests::{
    clients::Clients,
    stack::{Stack, StackOptions},
    wait::until,
};

const NS: &str = "shop";

async fn stack(agents: bool) -> Stack {
    Stack::start(StackOptions { namespaces: vec![NS.into()], agents, ..StackOptions::default() })
        .await
        .unwrap()
}

fn manifest(name: &str, image: &str, extra: Value) -> String {
    let mut cs = json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]}
            },
            "updateStrategy": {"type": "InPlaceIfPossible", "maxUnavailable": 1}
        }
    });
    json_patch::merge(&mut cs, &extra);
    serde_json::to_string(&cs).unwrap()
}

/// The set's pods by name.
async fn pods_of(pods: &Api<Pod>, set: &str) -> BTreeMap<String, Pod> {
    let lp = ListParams::default().labels(&format!("app={set}"));
    pods.list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.name_any(), p))
        .collect()
}

fn app_status(p: &Pod) -> (String, String, i32) {
    let s = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == "app"));
    s.map(|c| (c.image.clone(), c.container_id.clone().unwrap_or_default(), c.restart_count))
        .unwrap_or_default()
}

/// Waits until the set's status satisfies `ok`, printing the status on failure.
async fn status_until(
    sets: &Api<CloneSet>,
    name: &str,
    what: &str,
    ok: impl Fn(&CloneSet) -> bool,
) -> CloneSet {
    let r = until(what, Duration::from_secs(120), async || {
        Ok(sets.get(name).await?).map(|cs| ok(&cs).then_some(cs))
    })
    .await;
    match r {
        Ok(cs) => cs,
        Err(e) => {
            let cs = sets.get(name).await.unwrap();
            panic!("{e}\nstatus: {}", serde_json::to_string(&cs.status).unwrap());
        }
    }
}

fn counts(cs: &CloneSet) -> (i32, i32, i32, i32) {
    let s = cs.status.clone().unwrap_or_default();
    (s.replicas, s.ready_replicas, s.updated_replicas, s.updated_ready_replicas)
}

fn settled(cs: &CloneSet, replicas: i32, updated: i32) -> bool {
    let s = cs.status.clone().unwrap_or_default();
    s.observed_generation == cs.metadata.generation
        && s.replicas == replicas
        && s.ready_replicas == replicas
        && s.available_replicas == replicas
        && s.updated_replicas == updated
        && s.updated_ready_replicas == updated
}

/// `kubectl patch` of the set's first container image (a JSON patch: a merge patch
/// would replace the container list, and the defaults would give the container
/// `imagePullPolicy: Always`, a change that cannot be made in place).
async fn set_image(kubectl: &Clients, set: &str, image: &str) {
    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]);
    kubectl
        .kubectl(&[
            "-n",
            NS,
            "patch",
            &format!("clonesets/{set}"),
            "--type",
            "json",
            "-p",
            &patch.to_string(),
        ])
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_roll_in_place() {
    let stack = stack(true).await;
    let kubectl = stack.clients().await.unwrap();
    let sets: Api<CloneSet> = Api::namespaced(stack.client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let (v1, v2) = (stack.bed.image("app:v1"), stack.bed.image("app:v2"));

    kubectl.kubectl_stdin(&["apply", "-f", "-"], &manifest("web", &v1, json!({}))).await.ok();
    let cs = status_until(&sets, "web", "3 pods ready", |cs| settled(cs, 3, 3)).await;
    let st = cs.status.clone().unwrap();
    let want = revision::clone_set_revision(&cs).unwrap();
    assert_eq!(st.update_revision.as_deref(), Some(want.name.as_str()), "OpenKruise's revision name");
    assert_eq!(st.current_revision, st.update_revision);
    assert_eq!(st.label_selector.as_deref(), Some("app=web"));
    assert_eq!(st.expected_updated_replicas, Some(3));
    let revs: Api<ControllerRevision> = Api::namespaced(stack.client.clone(), NS);
    let rev = revs.get(&want.name).await.unwrap();
    assert_eq!(rev.data.as_ref().unwrap().0, serde_json::from_str::<Value>(&want.data).unwrap());
    assert_eq!(rev.labels().get(revision::CONTROLLER_REVISION_HASH_LABEL), Some(&want.hash));
    for (name, p) in pods_of(&pods, "web").await {
        let id = p.labels()[keys::CLONESET_INSTANCE_ID].clone();
        assert_eq!(name, format!("web-{id}"));
        assert_eq!(id.len(), 5);
        assert_eq!(p.labels()[keys::CONTROLLER_REVISION_HASH], want.name);
        assert_eq!(p.labels()[keys::POD_TEMPLATE_HASH], want.hash);
        assert_eq!(p.labels()[keys::LIFECYCLE_STATE], "Normal");
        assert!(inplace::has_readiness_gate(&p));
        assert_eq!(inplace::ready_condition(&p).map(|c| c.status.as_str()), Some("True"));
    }

    // kubectl scale, through the scale subresource
    kubectl.kubectl(&["-n", NS, "scale", "clonesets/web", "--replicas=4"]).await.ok();
    status_until(&sets, "web", "4 pods ready", |cs| settled(cs, 4, 4)).await;
    let before = pods_of(&pods, "web").await;

    // in place to v2, two pods kept on v1 by the partition
    let patch = json!([
        {"op": "add", "path": "/spec/updateStrategy/partition", "value": 2},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": v2}
    ]);
    kubectl
        .kubectl(&["-n", NS, "patch", "clonesets/web", "--type", "json", "-p", &patch.to_string()])
        .await
        .ok();
    let cs = status_until(&sets, "web", "2 of 4 updated in place", |cs| settled(cs, 4, 2)).await;
    let st = cs.status.clone().unwrap();
    assert_eq!(st.expected_updated_replicas, Some(2));
    assert_ne!(st.update_revision, st.current_revision, "the partition keeps the current revision");
    let after = pods_of(&pods, "web").await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "no pod recreated; controller log:\n{}",
        stack.controller.log_tail(40)
    );
    let mut moved = 0;
    for (name, p) in &after {
        assert_eq!(p.uid(), before[name].uid());
        let (image, cid, restarts) = app_status(p);
        let (old_image, old_cid, old_restarts) = app_status(&before[name]);
        if image == v2 {
            moved += 1;
            assert_ne!(cid, old_cid, "{name}: a new container");
            assert_eq!(restarts, old_restarts + 1, "{name}: restarted in place");
            let state = inplace::state(p).unwrap().expect("the in-place state annotation");
            assert_eq!(Some(state.revision.as_str()), st.update_revision.as_deref());
            assert_eq!(inplace::ready_condition(p).map(|c| c.status.as_str()), Some("True"));
        } else {
            assert_eq!((image, cid), (old_image, old_cid), "{name}: untouched");
        }
    }
    assert_eq!(moved, 2);

    // the new image was pre-downloaded for the pods not yet updated, before any patch
    let jobs: Api<ImagePullJob> = Api::namespaced(stack.client.clone(), NS);
    let job_name = format!("{}-app", st.update_revision.clone().unwrap());
    let job = jobs.get(&job_name).await.unwrap();
    assert_eq!(job.spec.image, v2);
    assert_eq!(job.owner_references()[0].name, "web");
    let first_patch = after
        .values()
        .filter_map(|p| inplace::state(p).ok().flatten())
        .map(|s| s.update_timestamp.0)
        .min()
        .unwrap();
    assert!(
        job.metadata.creation_timestamp.as_ref().unwrap().0 <= first_patch,
        "the job came before the first patch"
    );
    let rev = revs.get(st.update_revision.as_deref().unwrap()).await.unwrap();
    assert_eq!(rev.labels().get("apps.kruise.io/pre-predownload-created").map(String::as_str), Some("true"));
    until("the pre-download job done on the node", Duration::from_secs(120), async || {
        let j = jobs.get(&job_name).await?;
        Ok(j.status.filter(|s| s.desired == 1 && s.succeeded == Some(1)).map(|_| ()))
    })
    .await
    .unwrap();

    // the whole rollout
    kubectl
        .kubectl(&[
            "-n",
            NS,
            "patch",
            "clonesets/web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"updateStrategy":{"partition":0}}}"#,
        ])
        .await
        .ok();
    let cs = status_until(&sets, "web", "4 of 4 updated", |cs| settled(cs, 4, 4)).await;
    let st = cs.status.clone().unwrap();
    assert_eq!(st.current_revision, st.update_revision, "current follows once all are updated");
    let wide = kubectl.kubectl(&["-n", NS, "get", "clonesets", "-o", "wide"]).await;
    let out = wide.ok();
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "UPDATED",
            "UPDATED_READY",
            "UPDATED_AVAILABLE",
            "READY",
            "TOTAL",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..7], ["web", "4", "4", "4", "4", "4", "4"], "{out}");
    assert_eq!(row[9], v2);
    let uids: BTreeMap<String, Option<String>> =
        pods_of(&pods, "web").await.into_iter().map(|(n, p)| (n, p.uid())).collect();

    // rollback to v1: the first revision is reused
    set_image(&kubectl, "web", &v1).await;
    let cs = status_until(&sets, "web", "rolled back", |cs| {
        settled(cs, 4, 4)
            && cs.status.as_ref().and_then(|s| s.update_revision.clone()) == Some(want.name.clone())
    })
    .await;
    assert_eq!(cs.status.unwrap().current_revision, Some(want.name.clone()));
    let back: BTreeMap<String, Option<String>> =
        pods_of(&pods, "web").await.into_iter().map(|(n, p)| (n, p.uid())).collect();
    assert_eq!(back, uids, "rolled back in place");
    let owned = revs.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(owned.len(), 2, "two revisions, the first renumbered");
    assert!(owned.iter().any(|r| r.name_any() == want.name && r.revision == 3));

    // podsToDelete replaces the named pod
    let victim = back.keys().next().unwrap().clone();
    let patch = json!({"spec": {"scaleStrategy": {"podsToDelete": [victim]}}});
    kubectl
        .kubectl(&["-n", NS, "patch", "clonesets/web", "--type", "merge", "-p", &patch.to_string()])
        .await
        .ok();
    until("the named pod replaced", Duration::from_secs(120), async || {
        let now = pods_of(&pods, "web").await;
        Ok((!now.contains_key(&victim) && now.len() == 4).then_some(()))
    })
    .await
    .unwrap();
    status_until(&sets, "web", "4 ready again", |cs| settled(cs, 4, 4)).await;

    // scale in
    kubectl.kubectl(&["-n", NS, "scale", "clonesets/web", "--replicas=2"]).await.ok();
    status_until(&sets, "web", "2 pods", |cs| settled(cs, 2, 2)).await;
    until("2 pods left", Duration::from_secs(60), async || {
        Ok((pods_of(&pods, "web").await.len() == 2).then_some(()))
    })
    .await
    .unwrap();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_claims_hooks_and_restart() {
    let mut stack = stack(false).await;
    let kubectl: Clients = stack.clients().await.unwrap();
    let sets: Api<CloneSet> = Api::namespaced(stack.client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(stack.client.clone(), NS);
    let (v1, v2) = (stack.bed.image("app:v1"), stack.bed.image("app:v2"));

    // a claim per instance
    let vct = json!({"spec": {"replicas": 2, "volumeClaimTemplates": [{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
    kubectl.kubectl_stdin(&["apply", "-f", "-"], &manifest("db", &v1, vct)).await.ok();
    status_until(&sets, "db", "2 pods ready", |cs| settled(cs, 2, 2)).await;
    let first = pods_of(&pods, "db").await;
    for p in first.values() {
        let id = &p.labels()[keys::CLONESET_INSTANCE_ID];
        let claim = claims.get(&format!("data-db-{id}")).await.unwrap();
        assert_eq!(claim.labels()[keys::CLONESET_INSTANCE_ID], *id);
        let vol = p.spec.as_ref().unwrap().volumes.iter().flatten().find(|v| v.name == "data").unwrap();
        assert_eq!(vol.persistent_volume_claim.as_ref().unwrap().claim_name, format!("data-db-{id}"));
    }

    // not in-place-able (an env change): recreated, claims kept by instance id
    let patch = json!([{"op": "add", "path": "/spec/template/spec/containers/0/env", "value": [{"name": "MODE", "value": "b"}]}]);
    kubectl
        .kubectl(&["-n", NS, "patch", "clonesets/db", "--type", "json", "-p", &patch.to_string()])
        .await
        .ok();
    status_until(&sets, "db", "recreated on the new revision", |cs| settled(cs, 2, 2)).await;
    let second = pods_of(&pods, "db").await;
    let ids = |m: &BTreeMap<String, Pod>| {
        m.values().map(|p| p.labels()[keys::CLONESET_INSTANCE_ID].clone()).collect::<Vec<_>>()
    };
    assert!(second.values().all(|p| first.values().all(|f| f.uid() != p.uid())), "new pods");
    let mut a = ids(&first);
    let mut b = ids(&second);
    a.sort();
    b.sort();
    assert_eq!(a, b, "the instances (and their claims) are reused");
    assert_eq!(claims.list(&ListParams::default()).await.unwrap().items.len(), 2);

    // InPlaceOnly refuses a change other than images, at admission
    kubectl
        .kubectl_stdin(
            &["apply", "-f", "-"],
            &manifest(
                "api",
                &v1,
                json!({"spec": {"replicas": 1, "updateStrategy": {"type": "InPlaceOnly"}}}),
            ),
        )
        .await
        .ok();
    status_until(&sets, "api", "1 pod ready", |cs| settled(cs, 1, 1)).await;
    let patch = json!([{"op": "add", "path": "/spec/template/spec/containers/0/args", "value": ["--x"]}]);
    let refused = kubectl
        .kubectl(&["-n", NS, "patch", "clonesets/api", "--type", "json", "-p", &patch.to_string()])
        .await;
    let err = refused.err();
    assert!(
        err.contains("InPlaceOnly") && err.contains("/containers/0/args"),
        "the refusal names the field: {err}"
    );

    // a preDelete hook holds a pod until its label goes
    let hook = json!({"spec": {"lifecycle": {"preDelete": {"labelsHandler": {"example.com/hold": "true"}}}}});
    kubectl
        .kubectl(&["-n", NS, "patch", "clonesets/db", "--type", "merge", "-p", &hook.to_string()])
        .await
        .ok();
    let held = pods_of(&pods, "db").await.into_keys().next().unwrap();
    kubectl.kubectl(&["-n", NS, "label", "pod", &held, "example.com/hold=true"]).await.ok();
    kubectl.kubectl(&["-n", NS, "scale", "clonesets/db", "--replicas=1"]).await.ok();
    // the other pod may be chosen: make the held one the only candidate by naming it
    let patch = json!({"spec": {"scaleStrategy": {"podsToDelete": [held]}}});
    kubectl
        .kubectl(&["-n", NS, "patch", "clonesets/db", "--type", "merge", "-p", &patch.to_string()])
        .await
        .ok();
    until("the hooked pod PreparingDelete", Duration::from_secs(60), async || {
        let p = pods.get_opt(&held).await?;
        Ok(p.filter(|p| p.labels().get(keys::LIFECYCLE_STATE).map(String::as_str) == Some("PreparingDelete"))
            .map(|_| ()))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pods.get_opt(&held).await.unwrap().is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        "held"
    );
    kubectl.kubectl(&["-n", NS, "label", "pod", &held, "example.com/hold-"]).await.ok();
    until("the released pod deleted", Duration::from_secs(60), async || {
        Ok(pods.get_opt(&held).await?.is_none_or(|p| p.metadata.deletion_timestamp.is_some()).then_some(()))
    })
    .await
    .unwrap();
    status_until(&sets, "db", "1 pod", |cs| settled(cs, 1, 1)).await;

    // the controller restarted in the middle of a rollout
    kubectl.kubectl(&["-n", NS, "scale", "clonesets/api", "--replicas=3"]).await.ok();
    status_until(&sets, "api", "3 pods ready", |cs| settled(cs, 3, 3)).await;
    set_image(&kubectl, "api", &v2).await;
    until("the rollout started", Duration::from_secs(60), async || {
        let cs = sets.get("api").await?;
        Ok((cs.status.is_some_and(|s| s.updated_replicas >= 1)).then_some(()))
    })
    .await
    .unwrap();
    stack.restart_controller().await.unwrap();
    let cs = status_until(&sets, "api", "the rollout finished after a restart", |cs| settled(cs, 3, 3)).await;
    let (replicas, ready, updated, updated_ready) = counts(&cs);
    assert_eq!((replicas, ready, updated, updated_ready), (3, 3, 3, 3));
    for p in pods_of(&pods, "api").await.values() {
        assert_eq!(app_status(p).0, v2);
    }
    stack.stop().await;
}

/// The most live pods and the fewest ready ones the watch showed while `run` ran.
async fn watch_bounds<F: Future<Output = ()>>(pods: &Api<Pod>, set: &str, run: F) -> (usize, usize) {
    use futures_util::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};

    let cfg = watcher::Config::default().labels(&format!("app={set}"));
    let mut stream = std::pin::pin!(watcher(pods.clone(), cfg).default_backoff());
    let mut seen: BTreeMap<String, Pod> = BTreeMap::new();
    let (mut most_live, mut least_ready) = (0, usize::MAX);
    let mut listed = false;
    let mut run = std::pin::pin!(run);
    loop {
        tokio::select! {
            () = &mut run => return (most_live, least_ready),
            ev = stream.next() => {
                match ev {
                    Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                        seen.insert(p.name_any(), p);
                    }
                    Some(Ok(watcher::Event::Delete(p))) => {
                        seen.remove(&p.name_any());
                    }
                    Some(Ok(watcher::Event::Init)) => {
                        seen.clear();
                        listed = false;
                    }
                    Some(Ok(watcher::Event::InitDone)) => listed = true,
                    Some(Err(_)) | None => {}
                }
                // counted only on a whole picture, not halfway through a (re)list
                if !listed {
                    continue;
                }
                let live: Vec<&Pod> = seen.values().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
                let ready = live
                    .iter()
                    .filter(|p| {
                        p.status.iter().flat_map(|s| s.conditions.iter().flatten())
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                    .count();
                most_live = most_live.max(live.len());
                least_ready = least_ready.min(ready);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_and_budgets() {
    let stack = stack(false).await;
    let kubectl = stack.clients().await.unwrap();
    let sets: Api<CloneSet> = Api::namespaced(stack.client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(stack.client.clone(), NS);
    let (v1, v2) = (stack.bed.image("app:v1"), stack.bed.image("app:v2"));
    let strategy =
        json!({"spec": {"updateStrategy": {"type": "ReCreate", "maxSurge": 1, "maxUnavailable": 0}}});
    kubectl.kubectl_stdin(&["apply", "-f", "-"], &manifest("surge", &v1, strategy)).await.ok();
    status_until(&sets, "surge", "3 pods ready", |cs| settled(cs, 3, 3)).await;
    let first = pods_of(&pods, "surge").await;

    // ReCreate with maxSurge 1, maxUnavailable 0: a fourth pod first, an old one goes
    // only once a new one is available; never fewer than 3 ready
    let (most, least) = watch_bounds(&pods, "surge", async {
        set_image(&kubectl, "surge", &v2).await;
        status_until(&sets, "surge", "3 pods recreated on v2", |cs| settled(cs, 3, 3)).await;
    })
    .await;
    assert_eq!(most, 4, "maxSurge 1 over 3 replicas: 4 live pods at most, and the surge used");
    assert!(least >= 3, "maxUnavailable 0: {least} ready at one point");
    let second = pods_of(&pods, "surge").await;
    assert!(second.keys().all(|n| !first.contains_key(n)), "ReCreate replaced every pod");
    assert!(second.values().all(|p| app_status(p).0.ends_with("app:v2")));

    // in place with maxUnavailable 1 and no surge: one pod at a time, same pods
    let patch = json!([
        {"op": "replace", "path": "/spec/updateStrategy", "value":
            {"type": "InPlaceIfPossible", "maxUnavailable": 1, "maxSurge": 0}},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": v1}
    ]);
    let (most, least) = watch_bounds(&pods, "surge", async {
        kubectl
            .kubectl(&["-n", NS, "patch", "clonesets/surge", "--type", "json", "-p", &patch.to_string()])
            .await
            .ok();
        status_until(&sets, "surge", "3 pods back on v1 in place", |cs| settled(cs, 3, 3)).await;
    })
    .await;
    assert_eq!(most, 3, "no surge");
    assert_eq!(least, 2, "maxUnavailable 1: one pod at a time out of Ready, and at least one was");
    let third = pods_of(&pods, "surge").await;
    assert_eq!(third.keys().collect::<Vec<_>>(), second.keys().collect::<Vec<_>>(), "the same pods");
    for (name, p) in &third {
        assert_eq!(p.metadata.uid, second[name].metadata.uid, "{name} kept its uid");
        let (image, _, restarts) = app_status(p);
        assert!(image.ends_with("app:v1"), "{name} runs {image}");
        assert_eq!(restarts, 1, "{name} restarted once, in place");
    }
    stack.stop().await;
}
