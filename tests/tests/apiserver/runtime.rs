//! kube-runtime's `Controller` (reflector and watchers inside) with the default
//! watcher configuration, as the workload controllers will run it: a custom resource
//! and the ConfigMap it owns, reconciled on changes of either, also after every watch
//! has ended on its `timeoutSeconds` and after the server lost its watch history.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use k8s_openapi::{
    api::core::v1::ConfigMap,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{
        ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams, WatchEvent,
        WatchParams,
    },
    runtime::{Controller, controller::Action, watcher},
};
use serde_json::json;
use stevedore_tests::{
    apiserver::{Hooks, Options},
    cluster::{Services, TestCluster},
};

use super::{custom::install, eventually};

fn crd(group: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))
    .unwrap()
}

struct Ctx {
    client: Client,
    ar: ApiResource,
    reconciles: AtomicUsize,
}

/// Keeps `<name>-cm` (owned by the gadget) holding the gadget's `spec.size`.
async fn reconcile(gadget: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let ns = gadget.namespace().unwrap_or_default();
    let name = format!("{}-cm", gadget.name_any());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            owner_references: gadget.controller_owner_ref(&ctx.ar).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("size".into(), gadget.data["spec"]["size"].to_string())])),
        ..ConfigMap::default()
    };
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    cms.patch(&name, &PatchParams::apply("gadget-controller").force(), &Patch::Apply(&cm)).await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<DynamicObject>, _: &kube::Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

async fn size_of(cms: &Api<ConfigMap>, name: &str) -> Option<String> {
    let cm = cms.get_opt(name).await.unwrap()?;
    cm.data?.get("size").cloned()
}

/// Changes the gadget, then the ConfigMap behind the controller's back, and waits
/// each time until the controller has put the ConfigMap right.
async fn owner_and_owned_changes_reconcile(gadgets: &Api<DynamicObject>, cms: &Api<ConfigMap>, size: u32) {
    let resize = Patch::Merge(json!({"spec": {"size": size}}));
    gadgets.patch("g", &PatchParams::default(), &resize).await.unwrap();
    let want = size.to_string();
    eventually(&format!("the ConfigMap to follow the gadget to {size}"), || async {
        size_of(cms, "g-cm").await.as_deref() == Some(&want)
    })
    .await;
    let tamper = Patch::Merge(json!({"data": {"size": "tampered"}}));
    cms.patch("g-cm", &PatchParams::default(), &tamper).await.unwrap();
    eventually(&format!("the owned ConfigMap's change to be undone ({size})"), || async {
        size_of(cms, "g-cm").await.as_deref() == Some(&want)
    })
    .await;
}

#[tokio::test]
async fn controller_reconciles_owner_and_owned_changes() {
    let services = Services::default();
    // Watches end after a second (kube-rs asks for 290 s), so the run below sees
    // watchers reconnect several times; bookmarks come every 100 ms.
    let opts = Options {
        hooks: Hooks::webhooks(services.clone()),
        bookmark_interval: Duration::from_millis(100),
        max_watch_duration: Some(Duration::from_secs(1)),
        ..Options::default()
    };
    let cluster = TestCluster::start_with(opts, services).await.unwrap();
    let group = format!("c{}.stevedore.test", cluster.suffix());
    install(&cluster, &crd(&group)).await;
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Gadget"), "gadgets");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(cluster.client(), cluster.namespace(), &ar);
    let cms: Api<ConfigMap> = cluster.api();
    let ctx = Arc::new(Ctx { client: cluster.client(), ar: ar.clone(), reconciles: AtomicUsize::new(0) });
    let controller = Controller::new_with(gadgets.clone(), watcher::Config::default(), ar.clone())
        .owns(cms.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    let gadget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Gadget",
        "metadata": {"name": "g"}, "spec": {"size": 1},
    }))
    .unwrap();
    gadgets.create(&PostParams::default(), &gadget).await.unwrap();
    eventually("the owned ConfigMap", || async { size_of(&cms, "g-cm").await.as_deref() == Some("1") }).await;
    let cm = cms.get("g-cm").await.unwrap();
    assert_eq!(cm.owner_references()[0].kind, "Gadget");
    owner_and_owned_changes_reconcile(&gadgets, &cms, 2).await;

    if let Some(server) = cluster.simulator_for("watch lifetimes and history are simulator options") {
        // Every watch the controller opened has ended on its timeout by now.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        owner_and_owned_changes_reconcile(&gadgets, &cms, 3).await;
        // As after an apiserver restart: watches end and cannot resume (410 Gone), so
        // the controller's watchers must relist to see what follows.
        let seen = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
        server.expire_watches();
        let mut resumed = cms.watch(&WatchParams::default(), &seen).await.unwrap().boxed();
        match resumed.next().await {
            Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410),
            other => panic!("expected 410 Gone resuming from {seen}, got {other:?}"),
        }
        owner_and_owned_changes_reconcile(&gadgets, &cms, 4).await;
    }
    assert!(ctx.reconciles.load(Ordering::SeqCst) >= 3);
    controller.abort();
    cluster.finish().await.unwrap();
}
