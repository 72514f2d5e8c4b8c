//! Admission and conversion webhooks over real HTTPS: servers started by the test,
//! configurations created through the API with their `caBundle`, Services routed to
//! the servers by the simulator's resolver. Simulator-only: on a real cluster the
//! webhook servers would have to run inside it.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::{
    api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        core::v1::{ConfigMap, Namespace, Secret},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
        PostParams,
    },
};
use serde_json::{Value, json};
use stevedore_tests::cluster::TestCluster;

use super::{
    api_err,
    hook_server::{HookServer, closed_port},
};

const REASON: &str = "the webhook servers run on the test's loopback, which a real cluster cannot reach";
const DENY: &str = "deny.stevedore.test";
const LABEL: &str = "label.stevedore.test";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `/validate` refuses names starting with `deny`; `/mutate` adds `mutated: "yes"`.
fn admission(path: &str, review: &Value) -> Value {
    let req = &review["request"];
    let mut response = json!({"uid": req["uid"], "allowed": true});
    match path {
        "/validate" if req["name"].as_str().is_some_and(|n| n.starts_with("deny")) => {
            response["allowed"] = json!(false);
            response["status"] = json!({"code": 403, "message": "names starting with deny are refused"});
        }
        "/mutate" => {
            let patch = if req["object"]["metadata"]["labels"].is_object() {
                json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
            };
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(b64(patch.to_string().as_bytes()));
        }
        _ => {}
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

fn webhook(cluster: &TestCluster, name: &str, path: &str, ca: &str, failure_policy: &str) -> Value {
    json!({
        "name": name,
        "clientConfig": {"service": {"namespace": cluster.namespace(), "name": "hooks", "path": path, "port": 443},
                         "caBundle": b64(ca.as_bytes())},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                   "resources": ["configmaps"], "scope": "Namespaced"}],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cluster.namespace()}},
        "objectSelector": {"matchExpressions": [{"key": "skip-hooks", "operator": "DoesNotExist"}]},
        "failurePolicy": failure_policy,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 5,
    })
}

fn config_map(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn admission_webhooks() {
    let Some(cluster) = TestCluster::simulator_only(REASON).await.unwrap() else { return };
    let ns = cluster.namespace().to_owned();
    let server = HookServer::start(&[format!("hooks.{ns}.svc")], admission).await;
    cluster.services().expose(&ns, "hooks", 443, server.addr);

    let validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": cluster.unique("deny")},
        "webhooks": [webhook(&cluster, DENY, "/validate", &server.ca_pem, "Fail")],
    }))
    .unwrap();
    let mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": cluster.unique("label")},
        "webhooks": [webhook(&cluster, LABEL, "/mutate", &server.ca_pem, "Ignore")],
    }))
    .unwrap();
    let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client());
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(cluster.client());
    cluster.delete_at_end::<ValidatingWebhookConfiguration>(&validating.name_any());
    cluster.delete_at_end::<MutatingWebhookConfiguration>(&mutating.name_any());
    vwcs.create(&PostParams::default(), &validating).await.unwrap();
    mwcs.create(&PostParams::default(), &mutating).await.unwrap();
    let cms: Api<ConfigMap> = cluster.api();

    // Denied, with the webhook's code and message.
    let e = api_err(cms.create(&PostParams::default(), &config_map("deny-me", json!({}))).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            403,
            r#"admission webhook "deny.stevedore.test" denied the request: names starting with deny are refused"#
        )
    );
    assert_eq!(server.paths(), ["/mutate", "/validate"]);
    let review = &server.bodies()[1]["request"];
    assert_eq!(
        (review["operation"].as_str(), review["namespace"].as_str()),
        (Some("CREATE"), Some(ns.as_str()))
    );
    // The authenticated user travels to the webhook, so permission rules can be tested.
    assert_eq!(review["userInfo"]["username"], "system:admin", "{review}");
    assert!(review["userInfo"]["groups"].as_array().unwrap().contains(&json!("system:masters")), "{review}");

    // Mutated: the label is added, on create and on update.
    let created = cms.create(&PostParams::default(), &config_map("ok", json!({"app": "x"}))).await.unwrap();
    assert_eq!(created.labels().get("mutated").map(String::as_str), Some("yes"));
    let unlabel = Patch::Merge(json!({"metadata": {"labels": {"mutated": null}}}));
    let patched = cms.patch("ok", &PatchParams::default(), &unlabel).await.unwrap();
    assert_eq!(patched.labels().get("mutated").map(String::as_str), Some("yes"));
    let bare = cms.create(&PostParams::default(), &config_map("bare", Value::Null)).await.unwrap();
    assert_eq!(bare.labels().get("mutated").map(String::as_str), Some("yes"));
    let calls = server.paths().len();

    // objectSelector and namespaceSelector not matching: not called.
    let skipped = cms
        .create(&PostParams::default(), &config_map("deny-skipped", json!({"skip-hooks": "true"})))
        .await
        .unwrap();
    assert!(!skipped.labels().contains_key("mutated"));
    let other = cluster.create_namespace("other").await.unwrap();
    let elsewhere = Api::<ConfigMap>::namespaced(cluster.client(), &other)
        .create(&PostParams::default(), &config_map("deny-elsewhere", json!({})))
        .await
        .unwrap();
    assert!(!elsewhere.labels().contains_key("mutated"));
    assert_eq!(server.paths().len(), calls, "no webhook is called for objects they do not select");

    // The webhooks down: Ignore lets the request through (the mutating one here), Fail
    // refuses it with 500.
    cluster.services().expose(&ns, "hooks", 443, closed_port().await);
    let e = api_err(cms.create(&PostParams::default(), &config_map("down", json!({}))).await);
    assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    assert!(
        e.message.starts_with(r#"Internal error occurred: failed calling webhook "deny.stevedore.test": "#),
        "{}",
        e.message
    );
    let ignore = json!([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]);
    let ignore: json_patch::Patch = serde_json::from_value(ignore).unwrap();
    vwcs.patch(&validating.name_any(), &PatchParams::default(), &Patch::<()>::Json(ignore)).await.unwrap();
    let down = cms.create(&PostParams::default(), &config_map("down", json!({}))).await.unwrap();
    assert!(!down.labels().contains_key("mutated"), "the mutating webhook was down");
    assert_eq!(server.paths().len(), calls);
    cluster.finish().await.unwrap();
}

/// `spec.size` (v1) ↔ `spec.replicas` (v2), as a ConversionReview v1 answer.
fn conversion(_path: &str, review: &Value) -> Value {
    let req = &review["request"];
    let want = req["desiredAPIVersion"].as_str().unwrap_or_default();
    let (from, to) = if want.ends_with("/v2") { ("size", "replicas") } else { ("replicas", "size") };
    let converted: Vec<Value> = req["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let mut o = o.clone();
            if let Some(v) = o["spec"].as_object_mut().and_then(|s| s.remove(from)) {
                o["spec"][to] = v;
            }
            o["apiVersion"] = json!(want);
            o
        })
        .collect();
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "response": {"uid": req["uid"], "result": {"status": "Success"}, "convertedObjects": converted}})
}

#[tokio::test]
async fn conversion_webhook() {
    let Some(cluster) = TestCluster::simulator_only(REASON).await.unwrap() else { return };
    let ns = cluster.namespace().to_owned();
    let server = HookServer::start(&[format!("convert.{ns}.svc")], conversion).await;
    cluster.services().expose(&ns, "convert", 443, server.addr);
    let group = format!("c{}.stevedore.test", cluster.suffix());
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": schema},
                              {"name": "v2", "served": true, "storage": false, "schema": schema}],
                 "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                    "clientConfig": {"service": {"namespace": ns, "name": "convert", "path": "/convert", "port": 443},
                                     "caBundle": b64(server.ca_pem.as_bytes())}}}}
    }))
    .unwrap();
    super::custom::install(&cluster, &crd).await;
    let gadgets = |version: &str| {
        let gvk = GroupVersionKind::gvk(&group, version, "Gadget");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "gadgets");
        Api::<DynamicObject>::namespaced_with(cluster.client(), &ns, &ar)
    };
    let g: DynamicObject =
        serde_json::from_value(json!({"apiVersion": format!("{group}/v2"), "kind": "Gadget",
        "metadata": {"name": "g", "labels": {"l": "1"}}, "spec": {"replicas": 3}}))
        .unwrap();

    // Written in v2, stored in v1, read back in either.
    let created = gadgets("v2").create(&PostParams::default(), &g).await.unwrap();
    assert_eq!(created.data["spec"], json!({"replicas": 3}));
    let v1 = gadgets("v1").get("g").await.unwrap();
    assert_eq!((v1.data["spec"].clone(), v1.labels()["l"].as_str()), (json!({"size": 3}), "1"));
    let listed = gadgets("v2").list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].data["spec"], json!({"replicas": 3}));
    let review = server.bodies().into_iter().next().expect("the conversion webhook was called");
    assert_eq!(review["request"]["desiredAPIVersion"], json!(format!("{group}/v1")));
    assert!(server.paths().iter().all(|p| p == "/convert"));
    // Same-version reads need no webhook.
    let calls = server.paths().len();
    gadgets("v1").get("g").await.unwrap();
    assert_eq!(server.paths().len(), calls);

    // The webhook down: reads in the other version fail with 500.
    cluster.services().expose(&ns, "convert", 443, closed_port().await);
    let e = api_err(gadgets("v2").get("g").await);
    assert_eq!(e.code, 500, "{}", e.message);
    assert!(e.message.contains("conversion webhook"), "{}", e.message);
    cluster.finish().await.unwrap();
}

/// A validating webhook on DELETE only, for namespaces carrying `label`.
fn delete_webhook(cluster: &TestCluster, ca: &str, label: &str) -> ValidatingWebhookConfiguration {
    let mut hook = webhook(cluster, DENY, "/validate", ca, "Fail");
    hook["rules"][0]["operations"] = json!(["DELETE"]);
    hook["namespaceSelector"] = json!({"matchLabels": {label: "on"}});
    serde_json::from_value(json!({"metadata": {"name": cluster.unique("deny-delete")}, "webhooks": [hook]}))
        .unwrap()
}

#[tokio::test]
async fn admission_on_delete_with_namespace_labels() {
    let Some(cluster) = TestCluster::simulator_only(REASON).await.unwrap() else { return };
    let ns = cluster.namespace().to_owned();
    let server = HookServer::start(&[format!("hooks.{ns}.svc")], admission).await;
    cluster.services().expose(&ns, "hooks", 443, server.addr);
    // Selected by a label of the namespace's own, not by its name.
    let label = "stevedore.test/hooks";
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let on = Patch::Merge(json!({"metadata": {"labels": {label: "on"}}}));
    namespaces.patch(&ns, &PatchParams::default(), &on).await.unwrap();
    let config = delete_webhook(&cluster, &server.ca_pem, label);
    cluster.delete_at_end::<ValidatingWebhookConfiguration>(&config.name_any());
    Api::<ValidatingWebhookConfiguration>::all(cluster.client())
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = cluster.api();
    for name in ["deny-a", "keep"] {
        cms.create(&PostParams::default(), &config_map(name, json!({"set": "x"}))).await.unwrap();
    }
    assert!(server.paths().is_empty(), "the webhook is for DELETE only");

    // Denied, with the stored object as oldObject and no object.
    let e = api_err(cms.delete("deny-a", &DeleteParams::default()).await);
    assert_eq!(e.code, 403, "{}", e.message);
    let review = &server.bodies()[0]["request"];
    assert_eq!(review["operation"], "DELETE");
    assert_eq!(review["oldObject"]["metadata"]["name"], "deny-a");
    assert!(review["object"].is_null(), "{review}");
    // Also each object of a deletecollection, and a dry run.
    let e = api_err(
        cms.delete_collection(&DeleteParams::default(), &ListParams::default().labels("set=x")).await,
    );
    assert_eq!(e.code, 403, "{}", e.message);
    cms.delete("keep", &DeleteParams::default().dry_run()).await.unwrap();
    assert!(cms.get_opt("keep").await.unwrap().is_some(), "a dry run deletes nothing");
    cms.delete("keep", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("keep").await.unwrap().is_none());
    assert!(cms.get_opt("deny-a").await.unwrap().is_some());

    // Without the label the namespace is not selected.
    let other = cluster.create_namespace("other").await.unwrap();
    let elsewhere = Api::<ConfigMap>::namespaced(cluster.client(), &other);
    elsewhere.create(&PostParams::default(), &config_map("deny-b", json!({}))).await.unwrap();
    let calls = server.paths().len();
    elsewhere.delete("deny-b", &DeleteParams::default()).await.unwrap();
    assert_eq!(server.paths().len(), calls);
    cluster.finish().await.unwrap();
}

/// A webhook Service that accepts connections and never answers.
async fn black_hole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_slow_webhook_holds_up_only_its_own_request() {
    let Some(cluster) = TestCluster::simulator_only(REASON).await.unwrap() else { return };
    let ns = cluster.namespace().to_owned();
    let (addr, hole) = black_hole().await;
    cluster.services().expose(&ns, "hooks", 443, addr);
    // Only for a valid caBundle: the Service leads to the black hole.
    let ca = HookServer::start(&[format!("hooks.{ns}.svc")], admission).await.ca_pem.clone();
    let mut hook = webhook(&cluster, LABEL, "/mutate", &ca, "Ignore");
    hook["timeoutSeconds"] = json!(2);
    let config: MutatingWebhookConfiguration =
        serde_json::from_value(json!({"metadata": {"name": cluster.unique("slow")}, "webhooks": [hook]}))
            .unwrap();
    cluster.delete_at_end::<MutatingWebhookConfiguration>(&config.name_any());
    Api::<MutatingWebhookConfiguration>::all(cluster.client())
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = cluster.api();
    let start = tokio::time::Instant::now();
    let slow = tokio::spawn({
        let cms = cms.clone();
        async move { cms.create(&PostParams::default(), &config_map("slow", json!({}))).await }
    });
    // Meanwhile other requests are served at once, also writes of other resources.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let secrets: Api<Secret> = cluster.api();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "blocked behind the webhook: {:?}",
        start.elapsed()
    );
    assert!(!slow.is_finished());
    // The webhook's timeoutSeconds ends the wait; failurePolicy Ignore admits.
    let created = tokio::time::timeout(Duration::from_secs(5), slow).await.unwrap().unwrap().unwrap();
    assert!(!created.labels().contains_key("mutated"));
    assert!(start.elapsed() >= Duration::from_secs(2), "{:?}", start.elapsed());
    hole.abort();
    cluster.finish().await.unwrap();
}
