//! CustomResourceDefinitions: registration, versions, status/scale, and the hooks.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Discovery, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams},
    runtime::{conditions, wait::await_condition},
};
use serde_json::{Value, json};
use stevedore_tests::{
    apiserver::{
        Admission, AdmissionPhase, AdmitRequest, Converter, HookFuture, Hooks, NoSchemaCheckConfigured,
        Options, Status,
    },
    cluster::{Services, TestCluster},
};

use super::api_err;

/// The test's own API group: CRDs are cluster-scoped, and a real cluster is shared.
fn group(cluster: &TestCluster) -> String {
    format!("c{}.stevedore.test", cluster.suffix())
}

fn crd(group: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size",
                        "statusReplicasPath": ".status.size", "labelSelectorPath": ".status.selector"}},
                     "selectableFields": [{"jsonPath": ".spec.color"}]}]}}))
    .unwrap()
}

fn widgets(cluster: &TestCluster, version: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group(cluster), version, "Widget"),
        "widgets",
    );
    Api::namespaced_with(cluster.client(), cluster.namespace(), &ar)
}

fn widget(cluster: &TestCluster, name: &str, version: &str) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": format!("{}/{version}", group(cluster)), "kind": "Widget",
        "metadata": {"name": name}, "spec": {"size": 1, "color": "red"}}))
    .unwrap()
}

/// Creates `crd`, to be deleted at the end, and waits until it is established.
pub(crate) async fn install(cluster: &TestCluster, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let name = crd.name_any();
    cluster.delete_at_end::<CustomResourceDefinition>(&name);
    crds.create(&PostParams::default(), crd).await.unwrap();
    let established = await_condition(crds, &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(10), established).await.unwrap().unwrap();
}

#[tokio::test]
async fn crd_serves_its_versions() {
    let cluster = super::start().await;
    let client = cluster.client();
    let group = group(&cluster);
    install(&cluster, &crd(&group)).await;
    let crd_name = format!("widgets.{group}");
    let got = Api::<CustomResourceDefinition>::all(client.clone()).get(&crd_name).await.unwrap();
    let st = got.status.unwrap();
    assert_eq!(st.accepted_names.unwrap().kind, "Widget");
    assert_eq!(st.stored_versions, Some(vec!["v1".to_string()]));

    let d = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = d.resolve_gvk(&GroupVersionKind::gvk(&group, "v1", "Widget")).unwrap();
    assert_eq!(ar.plural, "widgets");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "scale"));
    assert_eq!(d.get(&group).unwrap().preferred_version_or_latest(), "v1");

    let v1 = widgets(&cluster, "v1");
    let created = v1.create(&PostParams::default(), &widget(&cluster, "w", "v1")).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    // Read through the other version: only apiVersion changes (no conversion webhook).
    let old = widgets(&cluster, "v1alpha1").get("w").await.unwrap();
    assert_eq!(old.types.unwrap().api_version, format!("{group}/v1alpha1"));
    assert_eq!(old.data["spec"]["size"], 1);
    // Strategic merge is refused for custom resources.
    let e = api_err(
        v1.patch("w", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"size": 2}}))).await,
    );
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
    // Updates must carry a resourceVersion.
    let mut w = v1.get("w").await.unwrap();
    w.metadata.resource_version = None;
    assert_eq!(api_err(v1.replace("w", &PostParams::default(), &w).await).code, 422);
    // Status and scale from the CRD's paths.
    let st = Patch::Merge(json!({"status": {"size": 1, "selector": "app=w"}}));
    v1.patch_status("w", &PatchParams::default(), &st).await.unwrap();
    let scale = v1.get_scale("w").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=w"));
    v1.patch_scale("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}})))
        .await
        .unwrap();
    let w = v1.get("w").await.unwrap();
    assert_eq!((w.data["spec"]["size"].clone(), w.metadata.generation), (json!(4), Some(2)));
    // Field selectors: metadata.name and the CRD's selectableFields only.
    let l = v1.list(&ListParams::default().fields("spec.color=red")).await.unwrap();
    assert_eq!(l.items.len(), 1);
    let e = api_err(v1.list(&ListParams::default().fields("spec.size=4")).await);
    assert_eq!((e.code, e.message.as_str()), (400, "field label not supported: spec.size"));

    // Deleting the CRD removes its objects and its API.
    Api::<CustomResourceDefinition>::all(client.clone())
        .delete(&crd_name, &Default::default())
        .await
        .unwrap();
    super::eventually("the CRD's objects to go", || async { v1.get("w").await.is_err() }).await;
    assert_eq!(api_err(v1.get("w").await).code, 404);
    cluster.finish().await.unwrap();
}

/// Converts by renaming `spec.size` (v1) ↔ `spec.count` (v1alpha1), counting calls.
#[derive(Default)]
struct Renaming(AtomicUsize);

impl Converter for Renaming {
    fn convert<'a>(
        &'a self,
        _: &'a Value,
        objects: Vec<Value>,
        want: &'a str,
    ) -> HookFuture<'a, Result<Vec<Value>, Status>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            Ok(objects
                .into_iter()
                .map(|mut o| {
                    let (from, to) =
                        if want.ends_with("v1alpha1") { ("size", "count") } else { ("count", "size") };
                    if let Some(v) = o["spec"].as_object_mut().and_then(|s| s.remove(from)) {
                        o["spec"][to] = v;
                    }
                    o["apiVersion"] = json!(want);
                    o
                })
                .collect())
        })
    }
}

/// Adds a label when mutating, refuses names starting with `bad` when validating, and
/// records what it saw.
#[derive(Default)]
struct Recording(Mutex<Vec<(AdmissionPhase, String, String)>>);

impl Admission for Recording {
    fn admit<'a>(&'a self, req: AdmitRequest) -> HookFuture<'a, Result<Value, Status>> {
        Box::pin(async move {
            self.0.lock().unwrap().push((req.phase, req.kind.clone(), req.user.username.clone()));
            let mut o = req.object.unwrap_or_default();
            match req.phase {
                AdmissionPhase::Mutating => o["metadata"]["labels"]["admitted"] = json!("yes"),
                AdmissionPhase::Validating if req.name.starts_with("bad") => {
                    return Err(Status::new(
                        403,
                        "Forbidden",
                        "admission webhook \"v\" denied the request: bad name",
                    ));
                }
                AdmissionPhase::Validating => {}
            }
            Ok(o)
        })
    }
}

#[tokio::test]
async fn hooks_are_called_on_writes_and_reads() {
    let conv = Arc::new(Renaming::default());
    let adm = Arc::new(Recording::default());
    let hooks = Hooks {
        admission: adm.clone(),
        schema: Arc::new(NoSchemaCheckConfigured),
        converter: conv.clone(),
        ..Hooks::default()
    };
    let reason = "in-process hooks that count their calls are simulator plug points";
    let opts = Options { hooks, ..Options::default() };
    let Some(cluster) = TestCluster::simulator_only_with(reason, opts, Services::default()).await.unwrap()
    else {
        return;
    };
    install(&cluster, &crd(&group(&cluster))).await;

    let mut w = widget(&cluster, "w", "v1alpha1");
    w.data["spec"] = json!({"count": 3});
    let created = widgets(&cluster, "v1alpha1").create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"]["count"], 3);
    assert_eq!(created.labels().get("admitted").map(String::as_str), Some("yes"));
    let stored_as_v1 = widgets(&cluster, "v1").get("w").await.unwrap();
    assert_eq!(stored_as_v1.data["spec"]["size"], 3);
    assert!(conv.0.load(Ordering::SeqCst) >= 2);

    let bad = widget(&cluster, "bad-one", "v1");
    let e = api_err(widgets(&cluster, "v1").create(&PostParams::default(), &bad).await);
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(api_err(widgets(&cluster, "v1").get("bad-one").await).code, 404);
    let seen = adm.0.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(p, k, u)| *p == AdmissionPhase::Validating && k == "Widget" && u == "system:admin")
    );
    cluster.finish().await.unwrap();
}
