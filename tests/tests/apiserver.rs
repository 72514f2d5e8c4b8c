//! The simulated API server, driven by kube-rs exactly as controllers drive a real one:
//! a conformance suite that also runs against a real cluster
//! (`STEVEDORE_E2E_CLUSTER=kubeconfig`, see `stevedore_tests::cluster`). Each test
//! works in a fresh namespace of its own; the parts that need what only the
//! simulator has say so and are skipped against a real cluster, never against the
//! simulator.

use std::{future::Future, time::Duration};

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::{
    Api, Client, Discovery, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::Status,
    runtime::watcher,
};
use serde_json::json;
use stevedore_tests::{
    apiserver::{ApiServer, Options, UserInfo},
    cluster::{Services, TestCluster},
};

pub(crate) async fn start() -> TestCluster {
    TestCluster::start().await.expect("start the test cluster")
}

/// Waits until `check` holds: at once in the simulator, whose controllers (garbage
/// collection, CRD clean-up) are synchronous; a real cluster's run in the background.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A scheduler no cluster runs: on a real cluster the test pods stay unscheduled and
/// untouched by controllers, as in the simulator.
pub(crate) const NO_SCHEDULER: &str = "stevedore-e2e-unscheduled";

pub(crate) fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:v1"}], "schedulerName": NO_SCHEDULER},
    }))
    .unwrap()
}

async fn next_raw<S>(s: &mut S) -> WatchEvent<Pod>
where
    S: futures_util::Stream<Item = Result<WatchEvent<Pod>, kube::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .unwrap()
}

/// The next event that is not a BOOKMARK.
async fn next_event<S>(s: &mut S) -> WatchEvent<Pod>
where
    S: futures_util::Stream<Item = Result<WatchEvent<Pod>, kube::Error>> + Unpin,
{
    loop {
        match next_raw(s).await {
            WatchEvent::Bookmark(_) => continue,
            e => return e,
        }
    }
}

fn event_name(e: &WatchEvent<Pod>) -> (&'static str, String) {
    match e {
        WatchEvent::Added(p) => ("ADDED", p.name_any()),
        WatchEvent::Modified(p) => ("MODIFIED", p.name_any()),
        WatchEvent::Deleted(p) => ("DELETED", p.name_any()),
        WatchEvent::Bookmark(b) => ("BOOKMARK", b.metadata.resource_version.clone()),
        WatchEvent::Error(e) => ("ERROR", format!("{} {}", e.code, e.reason)),
    }
}

#[tokio::test]
async fn crud_with_real_errors() {
    let cluster = start().await;
    let client = cluster.client();
    let pods: Api<Pod> = cluster.api();
    let p = pods.create(&PostParams::default(), &pod("a")).await.unwrap();
    assert!(p.uid().is_some() && p.creation_timestamp().is_some());
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(p.spec.as_ref().unwrap().restart_policy.as_deref(), Some("Always"));
    let e = api_err(pods.create(&PostParams::default(), &pod("a")).await);
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (409, "AlreadyExists", r#"pods "a" already exists"#)
    );
    let e = api_err(pods.get("nope").await);
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (404, "NotFound", r#"pods "nope" not found"#)
    );

    // Optimistic concurrency.
    let mut stale = pods.get("a").await.unwrap();
    let mut fresh = stale.clone();
    fresh.labels_mut().insert("v".into(), "1".into());
    let fresh = pods.replace("a", &PostParams::default(), &fresh).await.unwrap();
    assert_ne!(fresh.resource_version(), stale.resource_version());
    stale.labels_mut().insert("v".into(), "2".into());
    let e = api_err(pods.replace("a", &PostParams::default(), &stale).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("the object has been modified"), "{}", e.message);
    // A no-op update keeps the resourceVersion.
    let same = pods.replace("a", &PostParams::default(), &fresh).await.unwrap();
    assert_eq!(same.resource_version(), fresh.resource_version());

    // generateName, invalid names, missing namespaces.
    let mut g = pod("");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let g = pods.create(&PostParams::default(), &g).await.unwrap();
    assert!(g.name_any().starts_with("gen-") && g.name_any().len() == 9, "{}", g.name_any());
    let e = api_err(pods.create(&PostParams::default(), &pod("Bad_Name")).await);
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    let missing = cluster.unique("missing");
    let e = api_err(
        Api::<Pod>::namespaced(client.clone(), &missing).create(&PostParams::default(), &pod("x")).await,
    );
    assert_eq!((e.code, e.message), (404, format!(r#"namespaces "{missing}" not found"#)));

    // Cluster-scoped and all-namespaces.
    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> =
        nss.list(&ListParams::default()).await.unwrap().iter().map(|n| n.name_any()).collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));
    let other = cluster.create_namespace("other").await.unwrap();
    Api::<Pod>::namespaced(client.clone(), &other).create(&PostParams::default(), &pod("b")).await.unwrap();
    let all = Api::<Pod>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    let ours = |p: &&Pod| [cluster.namespace(), other.as_str()].contains(&p.namespace().unwrap().as_str());
    assert_eq!(all.items.iter().filter(ours).count(), 3);
    assert_eq!(pods.list(&ListParams::default()).await.unwrap().items.len(), 2);

    // Pod spec is immutable except images.
    let mut p = pods.get("a").await.unwrap();
    p.spec.as_mut().unwrap().containers[0].image = Some("app:v2".into());
    pods.replace("a", &PostParams::default(), &p).await.unwrap();
    let mut p = pods.get("a").await.unwrap();
    p.spec.as_mut().unwrap().containers[0].name = "renamed".into();
    assert_eq!(api_err(pods.replace("a", &PostParams::default(), &p).await).code, 422);
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn unknown_or_missing_token_is_401() {
    let Some(cluster) = TestCluster::simulator_only("token users are the simulator's own").await.unwrap()
    else {
        return;
    };
    let server = cluster.simulator().unwrap();
    let bad = server.client_as("not-a-token").await.unwrap();
    let e = api_err(Api::<Pod>::namespaced(bad, "default").list(&ListParams::default()).await);
    assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));
    let mut opts = Options::default();
    opts.tokens.insert("node-token", UserInfo::node("n1"));
    let s2 = ApiServer::start(opts).await.unwrap();
    let node = s2.client_as("node-token").await.unwrap();
    Api::<Pod>::namespaced(node, "default").list(&ListParams::default()).await.unwrap();
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn discovery_and_kubeconfig() {
    let cluster = start().await;
    let client = cluster.client();
    let d = Discovery::new(client.clone()).run().await.unwrap();
    for (g, k) in
        [("apps", "Deployment"), ("", "Pod"), ("coordination.k8s.io", "Lease"), ("batch", "CronJob")]
    {
        let gvk = kube::api::GroupVersionKind::gvk(g, "v1", k);
        let (ar, caps) = d.resolve_gvk(&gvk).unwrap_or_else(|| panic!("{k} not discovered"));
        assert!(caps.supports_operation(kube::discovery::verbs::WATCH), "{k}");
        assert_eq!(ar.kind, k);
    }
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");
    let Some(server) = cluster.simulator_for("the version and the kubeconfig are the simulator's") else {
        return cluster.finish().await.unwrap();
    };
    assert_eq!(info.minor, "33");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path, stevedore_tests::apiserver::ADMIN_TOKEN).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    assert_eq!(cfg.default_namespace, "default");
    let c = Client::try_from(cfg).unwrap();
    Api::<ConfigMap>::default_namespaced(c).list(&ListParams::default()).await.unwrap();
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let cluster = start().await;
    // Secrets: a real cluster puts a ConfigMap (kube-root-ca.crt) in every namespace.
    let cms: Api<Secret> = cluster.api();
    for i in 0..5 {
        let cm: Secret = serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["c0", "c1"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().unwrap();
    let second = cms.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap();
    assert_eq!(second.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["c2", "c3"]);
    let third =
        cms.list(&ListParams::default().limit(2).continue_token(&second.metadata.continue_.unwrap())).await;
    let third = third.unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.metadata.continue_.is_none());
    assert_eq!(first.metadata.resource_version, second.metadata.resource_version);

    // One resourceVersion sequence for every resource, as etcd's revision: a list of
    // pods is at least as new as the last Secret written.
    let rv = |o: &kube::core::ObjectMeta| o.resource_version.clone().unwrap().parse::<u64>().unwrap();
    let last = cms.get("c4").await.unwrap();
    let pods = cluster.api::<Pod>().list(&ListParams::default()).await.unwrap();
    let pods_rv: u64 = pods.metadata.resource_version.unwrap().parse().unwrap();
    assert!(pods_rv >= rv(&last.metadata), "{pods_rv} < {}", rv(&last.metadata));
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn watch_semantics() {
    let cluster = start().await;
    let pods: Api<Pod> = cluster.api();
    pods.create(&PostParams::default(), &pod("a")).await.unwrap();
    let rv0 = pods.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

    // rv "0": synthetic ADDED for what exists, then live events.
    let mut w = pods.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    assert_eq!(event_name(&next_event(&mut w).await), ("ADDED", "a".into()));
    pods.create(&PostParams::default(), &pod("b")).await.unwrap();
    assert_eq!(event_name(&next_event(&mut w).await), ("ADDED", "b".into()));
    pods.patch("b", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})))
        .await
        .unwrap();
    assert_eq!(event_name(&next_event(&mut w).await), ("MODIFIED", "b".into()));
    pods.delete("b", &DeleteParams::default()).await.unwrap();
    assert_eq!(event_name(&next_event(&mut w).await), ("DELETED", "b".into()));

    // rv=N: replay from history.
    let mut w = pods.watch(&WatchParams::default(), &rv0).await.unwrap().boxed();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(event_name(&next_event(&mut w).await));
    }
    assert_eq!(seen, [("ADDED", "b".into()), ("MODIFIED", "b".into()), ("DELETED", "b".into())]);

    // Label selector: leaving the selection is DELETED for that watcher.
    let mut w = pods.watch(&WatchParams::default().labels("app=web"), "0").await.unwrap().boxed();
    assert_eq!(event_name(&next_event(&mut w).await).0, "ADDED");
    pods.patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})))
        .await
        .unwrap();
    assert_eq!(event_name(&next_event(&mut w).await), ("DELETED", "a".into()));
    pods.patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})))
        .await
        .unwrap();
    assert_eq!(event_name(&next_event(&mut w).await), ("ADDED", "a".into()));

    // timeoutSeconds ends the stream.
    let mut w = pods.watch(&WatchParams::default().timeout(1), "0").await.unwrap().boxed();
    assert_eq!(event_name(&next_event(&mut w).await).0, "ADDED");
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(e) = w.next().await {
            e.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the watch did not end after timeoutSeconds");

    // Streaming list: initial events, then a BOOKMARK marking their end.
    let wp = WatchParams::streaming_lists();
    let mut w = pods.watch(&wp, "").await.unwrap().boxed();
    assert_eq!(event_name(&next_raw(&mut w).await), ("ADDED", "a".into()));
    match next_raw(&mut w).await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str),
                Some("true")
            )
        }
        other => panic!("expected the initial-events-end bookmark, got {:?}", event_name(&other)),
    }
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn watch_history_limit_and_bookmarks() {
    let mut opts = Options { history_limit: 5, ..Options::default() };
    opts.bookmark_interval = Duration::from_millis(100);
    let reason = "a 5-event watch history and 100 ms bookmarks are simulator options";
    let Some(cluster) = TestCluster::simulator_only_with(reason, opts, Services::default()).await.unwrap()
    else {
        return;
    };
    let pods: Api<Pod> = cluster.api();
    pods.create(&PostParams::default(), &pod("a")).await.unwrap();
    let rv0 = pods.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

    // Older than the history: an ERROR event with 410.
    for i in 0..6 {
        pods.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"i": i.to_string()}}})),
        )
        .await
        .unwrap();
    }
    let mut w = pods.watch(&WatchParams::default(), &rv0).await.unwrap().boxed();
    let (ty, what) = event_name(&next_event(&mut w).await);
    assert_eq!((ty, what.as_str()), ("ERROR", "410 Expired"));

    // Bookmarks between events.
    let mut w = pods.watch(&WatchParams::default().timeout(1), "0").await.unwrap().boxed();
    assert_eq!(event_name(&next_raw(&mut w).await).0, "ADDED");
    assert_eq!(event_name(&next_raw(&mut w).await).0, "BOOKMARK");

    // A watch of one object by name (fed only that object's changes) still gets
    // bookmarks at the store's version, as kube-apiserver sends them: resumed from one,
    // it does not replay the changes of other objects.
    let mut w =
        pods.watch(&WatchParams::default().fields("metadata.name=a").timeout(3), "0").await.unwrap().boxed();
    assert_eq!(event_name(&next_raw(&mut w).await), ("ADDED", "a".into()));
    let b = pods.create(&PostParams::default(), &pod("b")).await.unwrap();
    let b_rv: u64 = b.resource_version().unwrap().parse().unwrap();
    loop {
        match event_name(&next_raw(&mut w).await) {
            ("BOOKMARK", rv) if rv.parse::<u64>().unwrap() >= b_rv => break,
            ("BOOKMARK", _) => continue,
            other => panic!("only bookmarks were due, got {other:?}"),
        }
    }
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn runtime_watcher_sees_the_lifecycle() {
    let cluster = start().await;
    let pods: Api<Pod> = cluster.api();
    pods.create(&PostParams::default(), &pod("a")).await.unwrap();
    for cfg in [watcher::Config::default(), watcher::Config::default().streaming_lists()] {
        let mut s = watcher(pods.clone(), cfg).boxed();
        let mut next =
            async || tokio::time::timeout(Duration::from_secs(5), s.try_next()).await.unwrap().unwrap();
        assert!(matches!(next().await, Some(watcher::Event::Init)));
        assert!(matches!(next().await, Some(watcher::Event::InitApply(p)) if p.name_any() == "a"));
        assert!(matches!(next().await, Some(watcher::Event::InitDone)));
        let name = format!("b{}", pods.list(&ListParams::default()).await.unwrap().items.len());
        pods.create(&PostParams::default(), &pod(&name)).await.unwrap();
        assert!(matches!(next().await, Some(watcher::Event::Apply(p)) if p.name_any() == name));
        pods.delete(&name, &DeleteParams::default()).await.unwrap();
        assert!(matches!(next().await, Some(watcher::Event::Delete(p)) if p.name_any() == name));
    }
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn selectors_are_as_strict_as_the_real_server() {
    let cluster = start().await;
    let pods: Api<Pod> = cluster.api();
    pods.create(&PostParams::default(), &pod("a")).await.unwrap();
    let mut b = pod("b");
    b.labels_mut().insert("tier".into(), "be".into());
    pods.create(&PostParams::default(), &b).await.unwrap();
    let names = |l: kube::core::ObjectList<Pod>| l.items.iter().map(|p| p.name_any()).collect::<Vec<_>>();
    for (sel, want) in [
        ("app=web", vec!["a", "b"]),
        ("tier", vec!["b"]),
        ("!tier", vec!["a"]),
        ("tier in (be,fe)", vec!["b"]),
        ("tier notin (be)", vec!["a"]),
        ("app!=web", vec![]),
    ] {
        assert_eq!(names(pods.list(&ListParams::default().labels(sel)).await.unwrap()), want, "{sel}");
    }
    assert_eq!(names(pods.list(&ListParams::default().fields("metadata.name=b")).await.unwrap()), ["b"]);
    // one object by name is looked up: with labels too, absent, cluster-scoped
    let by = |f: &str, l: &str| ListParams::default().fields(f).labels(l);
    assert_eq!(names(pods.list(&by("metadata.name=b", "tier=be")).await.unwrap()), ["b"]);
    assert!(names(pods.list(&by("metadata.name=b", "!tier")).await.unwrap()).is_empty());
    assert!(names(pods.list(&by("metadata.name=c", "")).await.unwrap()).is_empty());
    let spaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client());
    let listed = spaces.list(&ListParams::default().fields("metadata.name=default")).await.unwrap();
    assert_eq!(listed.items.iter().map(|n| n.name_any()).collect::<Vec<_>>(), ["default"]);
    assert_eq!(names(pods.list(&ListParams::default().fields("spec.nodeName=")).await.unwrap()), ["a", "b"]);
    assert_eq!(
        names(pods.list(&ListParams::default().fields("status.phase!=Pending")).await.unwrap()).len(),
        0
    );
    let e = api_err(pods.list(&ListParams::default().fields("spec.containers=x")).await);
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (400, "BadRequest", "field label not supported: spec.containers")
    );
    let cms: Api<ConfigMap> = cluster.api();
    let e = api_err(cms.list(&ListParams::default().fields("data.x=1")).await);
    assert_eq!(
        e.message,
        r#""data.x" is not a known field selector: only "metadata.name", "metadata.namespace""#
    );
    cluster.finish().await.unwrap();
}

#[path = "apiserver/writes.rs"]
mod writes;

#[path = "apiserver/custom.rs"]
mod custom;

#[path = "apiserver/lifecycle.rs"]
mod lifecycle;

#[path = "apiserver/hook_server.rs"]
mod hook_server;

#[path = "apiserver/webhooks.rs"]
mod webhooks;

#[path = "apiserver/runtime.rs"]
mod runtime;
