//! The simulated API server, driven by kube-rs exactly as controllers drive a real one.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::{
    Api, Client, Discovery, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::Status,
    runtime::watcher,
};
use serde_json::json;
use stevedore_tests::apiserver::{ApiServer, Options, UserInfo};

pub(crate) async fn start() -> (ApiServer, Client) {
    let server = ApiServer::start(Options::default()).await.expect("start the simulated apiserver");
    let client = server.client().await.expect("admin client");
    (server, client)
}

pub(crate) fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub(crate) fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:v1"}]},
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
    let (_server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
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
    let e = api_err(
        Api::<Pod>::namespaced(client.clone(), "missing").create(&PostParams::default(), &pod("x")).await,
    );
    assert_eq!((e.code, e.message.as_str()), (404, r#"namespaces "missing" not found"#));

    // Cluster-scoped and all-namespaces.
    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> =
        nss.list(&ListParams::default()).await.unwrap().iter().map(|n| n.name_any()).collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap(),
    )
    .await
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "other").create(&PostParams::default(), &pod("b")).await.unwrap();
    let all = Api::<Pod>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(pods.list(&ListParams::default()).await.unwrap().items.len(), 2);

    // Pod spec is immutable except images.
    let mut p = pods.get("a").await.unwrap();
    p.spec.as_mut().unwrap().containers[0].image = Some("app:v2".into());
    pods.replace("a", &PostParams::default(), &p).await.unwrap();
    let mut p = pods.get("a").await.unwrap();
    p.spec.as_mut().unwrap().containers[0].name = "renamed".into();
    assert_eq!(api_err(pods.replace("a", &PostParams::default(), &p).await).code, 422);
}

#[tokio::test]
async fn unknown_or_missing_token_is_401() {
    let (server, _) = start().await;
    let bad = server.client_as("not-a-token").await.unwrap();
    let e = api_err(Api::<Pod>::namespaced(bad, "default").list(&ListParams::default()).await);
    assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));
    let mut opts = Options::default();
    opts.tokens.insert("node-token", UserInfo::node("n1"));
    let s2 = ApiServer::start(opts).await.unwrap();
    let node = s2.client_as("node-token").await.unwrap();
    Api::<Pod>::namespaced(node, "default").list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn discovery_and_kubeconfig() {
    let (server, client) = start().await;
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
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path, stevedore_tests::apiserver::ADMIN_TOKEN).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    assert_eq!(cfg.default_namespace, "default");
    let c = Client::try_from(cfg).unwrap();
    Api::<ConfigMap>::default_namespaced(c).list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    for i in 0..5 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap();
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
}

#[tokio::test]
async fn watch_semantics() {
    let mut opts = Options { history_limit: 5, ..Options::default() };
    opts.bookmark_interval = Duration::from_millis(100);
    let server = ApiServer::start(opts).await.unwrap();
    let client = server.client().await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
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
    let got: Vec<_> = [(); 3].iter().map(|_| ()).collect::<Vec<_>>();
    let mut seen = Vec::new();
    for _ in got {
        seen.push(event_name(&next_event(&mut w).await));
    }
    assert_eq!(seen, [("ADDED", "b".into()), ("MODIFIED", "b".into()), ("DELETED", "b".into())]);

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

    // Bookmarks, and timeoutSeconds ends the stream.
    let mut w = pods.watch(&WatchParams::default().timeout(1), "0").await.unwrap().boxed();
    assert_eq!(event_name(&next_raw(&mut w).await).0, "ADDED");
    assert_eq!(event_name(&next_raw(&mut w).await).0, "BOOKMARK");
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
}

#[tokio::test]
async fn runtime_watcher_sees_the_lifecycle() {
    let (_server, client) = start().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
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
}

#[tokio::test]
async fn selectors_are_as_strict_as_the_real_server() {
    let (_server, client) = start().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
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
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let e = api_err(cms.list(&ListParams::default().fields("data.x=1")).await);
    assert_eq!(
        e.message,
        r#""data.x" is not a known field selector: only "metadata.name", "metadata.namespace""#
    );
}

#[path = "apiserver/writes.rs"]
mod writes;

#[path = "apiserver/custom.rs"]
mod custom;

#[path = "apiserver/lifecycle.rs"]
mod lifecycle;
