//! Status subresource, generation, finalizers, pod grace periods and the patch types.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Pod},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{NO_SCHEDULER, api_err, pod, start};

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "app:v1"}],
                                       "schedulerName": NO_SCHEDULER}}},
        "status": {"replicas": 7},
    }))
    .unwrap()
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let cluster = start().await;
    let d: Api<Deployment> = cluster.api();
    let created = d.create(&PostParams::default(), &deployment("web")).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none(), "status is dropped on create");

    // Status through the main resource is ignored; labels do not bump generation. (On
    // a real cluster the deployment controller may have written a status by now, of at
    // most the 2 replicas asked for.)
    let p = Patch::Merge(json!({"metadata": {"labels": {"l": "1"}}, "status": {"replicas": 3}}));
    let after = d.patch("web", &PatchParams::default(), &p).await.unwrap();
    assert_eq!(after.metadata.generation, Some(1));
    assert_ne!(after.status.and_then(|s| s.replicas), Some(3));
    // A spec change bumps generation.
    let p = Patch::Merge(json!({"spec": {"replicas": 3}}));
    assert_eq!(d.patch("web", &PatchParams::default(), &p).await.unwrap().metadata.generation, Some(2));
    // The status subresource changes only status.
    let p =
        Patch::Merge(json!({"spec": {"replicas": 9}, "status": {"replicas": 3, "observedGeneration": 2}}));
    let after = d.patch_status("web", &PatchParams::default(), &p).await.unwrap();
    assert_eq!(after.spec.unwrap().replicas, Some(3));
    assert_eq!(after.status.unwrap().replicas, Some(3));
    assert_eq!(after.metadata.generation, Some(2));

    // Scale subresource.
    let s = d.get_scale("web").await.unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(3));
    assert_eq!(s.status.as_ref().unwrap().selector.as_deref(), Some("app=web"));
    let s =
        d.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await;
    assert_eq!(s.unwrap().spec.unwrap().replicas, Some(5));
    let now = d.get("web").await.unwrap();
    assert_eq!((now.spec.unwrap().replicas, now.metadata.generation), (Some(5), Some(3)));
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn finalizers_and_pod_grace() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = cluster.api();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "f", "finalizers": ["example.com/keep"]}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let r = cms.delete("f", &DeleteParams::default()).await.unwrap();
    let pending = r.left().expect("the object comes back while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    // No new finalizers once deleting.
    let add = Patch::Merge(json!({"metadata": {"finalizers": ["example.com/keep", "example.com/more"]}}));
    assert_eq!(api_err(cms.patch("f", &PatchParams::default(), &add).await).code, 422);
    let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    cms.patch("f", &PatchParams::default(), &clear).await.unwrap();
    assert_eq!(api_err(cms.get("f").await).code, 404);

    // An unbound pod goes at once; a bound one waits for its kubelet's grace-0 delete.
    let pods: Api<Pod> = cluster.api();
    pods.create(&PostParams::default(), &pod("unbound")).await.unwrap();
    pods.delete("unbound", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(pods.get("unbound").await).code, 404);
    let mut bound = pod("bound");
    bound.spec.as_mut().unwrap().node_name = Some("n1".into());
    pods.create(&PostParams::default(), &bound).await.unwrap();
    pods.delete("bound", &DeleteParams::default()).await.unwrap();
    let p = pods.get("bound").await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_some());
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    pods.delete("bound", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(api_err(pods.get("bound").await).code, 404);

    // Preconditions.
    pods.create(&PostParams::default(), &pod("pre")).await.unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: Some("wrong".into()), resource_version: None }),
        ..Default::default()
    };
    assert_eq!(api_err(pods.delete("pre", &dp).await).code, 409);
    cluster.finish().await.unwrap();
}

#[tokio::test]
async fn patch_types() {
    let cluster = start().await;
    let pods: Api<Pod> = cluster.api();
    let mut p = pod("p");
    p.spec
        .as_mut()
        .unwrap()
        .containers
        .push(serde_json::from_value(json!({"name": "side", "image": "s:1"})).unwrap());
    pods.create(&PostParams::default(), &p).await.unwrap();
    // Strategic: containers merged by name.
    let sp = Patch::Strategic(json!({"spec": {"containers": [{"name": "app", "image": "app:v2"}]}}));
    let p = pods.patch("p", &PatchParams::default(), &sp).await.unwrap();
    let images: Vec<_> = p.spec.unwrap().containers.into_iter().map(|c| (c.name, c.image.unwrap())).collect();
    assert_eq!(images, [("app".to_string(), "app:v2".to_string()), ("side".into(), "s:1".into())]);
    // JSON patch, with a failing test op.
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/metadata/labels/j", "value": "1"}])).unwrap();
    let p = pods.patch("p", &PatchParams::default(), &Patch::<()>::Json(jp)).await.unwrap();
    assert_eq!(p.labels().get("j").map(String::as_str), Some("1"));
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/labels/j", "value": "2"}])).unwrap();
    assert_eq!(api_err(pods.patch("p", &PatchParams::default(), &Patch::<()>::Json(jp)).await).code, 422);
    // A merge patch carrying a stale resourceVersion conflicts.
    let stale = Patch::Merge(json!({"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}}));
    assert_eq!(api_err(pods.patch("p", &PatchParams::default(), &stale).await).code, 409);

    // Server-side apply creates, then updates; fieldManager is required.
    let cms: Api<ConfigMap> = cluster.api();
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}});
    let ssa = PatchParams::apply("stevedore-test").force();
    let created = cms.patch("applied", &ssa, &Patch::Apply(&cm)).await.unwrap();
    assert_eq!(created.data.unwrap()["a"], "1");
    let cm2 =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"b": "2"}});
    let updated = cms.patch("applied", &ssa, &Patch::Apply(&cm2)).await.unwrap();
    assert_eq!(updated.data.unwrap()["b"], "2");
    let no_manager = PatchParams { field_manager: None, ..PatchParams::default() };
    let e = api_err(cms.patch("applied", &no_manager, &Patch::Apply(&cm2)).await);
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    cluster.finish().await.unwrap();
}
