use std::net::SocketAddr;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::apiserver::admission::test_server::{TestWebhook, certs};

/// v1alpha1 `spec.size` ↔ v1beta1 `spec.replicas`; misbehaves on request by path.
fn answer(path: &str, review: &Value) -> Option<Value> {
    let req = &review["request"];
    let desired = req["desiredAPIVersion"].as_str().unwrap_or_default();
    let mut objects: Vec<Value> = req["objects"].as_array().cloned().unwrap_or_default();
    for o in &mut objects {
        o["apiVersion"] = desired.into();
        if let Some(spec) = o["spec"].as_object_mut()
            && let Some(size) = spec.remove("size")
        {
            spec.insert("replicas".into(), size);
        }
        // Webhooks may only change labels and annotations; this one tries more.
        o["metadata"]["labels"]["converted"] = "true".into();
        o["metadata"]["name"] = "renamed".into();
    }
    let mut response =
        json!({"uid": req["uid"], "result": {"status": "Success"}, "convertedObjects": objects});
    match path {
        "/fail" => response["result"] = json!({"status": "Failure", "message": "cannot convert size"}),
        "/bad-uid" => response["uid"] = "nope".into(),
        "/drop" => response["convertedObjects"] = json!([]),
        "/wrong-version" => response["convertedObjects"][0]["apiVersion"] = "apps.kruise.io/v1alpha1".into(),
        "/bad-label" => {
            response["convertedObjects"][0]["metadata"]["labels"]["converted"] = "not valid!".into()
        }
        _ => {}
    }
    Some(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": response}))
}

fn crd(path: &str, ca_pem: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": "widgets.apps.kruise.io"},
        "spec": {
            "group": "apps.kruise.io", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {"name": "v1alpha1", "served": true, "storage": false},
                {"name": "v1beta1", "served": true, "storage": true},
            ],
            "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
                "service": {"namespace": "webhooks", "name": "hook", "path": path},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem)}}},
        }
    }))
    .expect("crd")
}

fn widget(name: &str, size: i64) -> Value {
    json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "Widget",
           "metadata": {"name": name, "namespace": "ns", "uid": "u-1", "labels": {"app": "w"}}, "spec": {"size": size}})
}

fn resolver(addr: SocketAddr) -> impl Fn(&str, &str, i32) -> Option<SocketAddr> + Send + Sync {
    move |ns: &str, name: &str, _: i32| (ns == "webhooks" && name == "hook").then_some(addr)
}

#[tokio::test]
async fn converts_through_the_webhook_keeping_metadata_but_labels() {
    let server = TestWebhook::start(answer).await;
    let c = Converter::new(resolver(server.addr));
    let already = json!({"apiVersion": "apps.kruise.io/v1beta1", "kind": "Widget", "metadata": {"name": "b"}, "spec": {}});
    let out = c
        .convert(
            &crd("/convert", &server.ca_pem),
            vec![widget("a", 3), already.clone(), widget("c", 1)],
            "apps.kruise.io/v1beta1",
        )
        .await
        .expect("converted");
    assert_eq!(out.len(), 3);
    assert_eq!(out[1], already, "objects at the desired version are untouched");
    assert_eq!(out[0]["apiVersion"], "apps.kruise.io/v1beta1");
    assert_eq!(out[0]["spec"], json!({"replicas": 3}));
    assert_eq!(out[0]["metadata"]["name"], "a", "metadata other than labels/annotations is restored");
    assert_eq!(out[0]["metadata"]["uid"], "u-1");
    assert_eq!(out[0]["metadata"]["labels"], json!({"app": "w", "converted": "true"}));
    assert_eq!(out[2]["metadata"]["name"], "c");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].0, "/convert");
    let sent = &reqs[0].1;
    assert_eq!(sent["kind"], "ConversionReview");
    assert_eq!(sent["request"]["desiredAPIVersion"], "apps.kruise.io/v1beta1");
    assert_eq!(sent["request"]["objects"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn webhook_answers_are_checked() {
    let server = TestWebhook::start(answer).await;
    let c = Converter::new(resolver(server.addr));
    let to = "apps.kruise.io/v1beta1";
    let err = |p: &'static str| {
        let c = c.clone();
        let ca = server.ca_pem.clone();
        async move { c.convert(&crd(p, &ca), vec![widget("a", 1)], to).await.expect_err(p).to_string() }
    };
    assert_eq!(
        err("/fail").await,
        "conversion webhook for apps.kruise.io/v1alpha1, Kind=Widget failed: cannot convert size"
    );
    assert!(err("/bad-uid").await.contains(r#"failed: expected response.uid="#));
    assert_eq!(
        err("/drop").await,
        "conversion webhook for apps.kruise.io/v1alpha1, Kind=Widget returned 0 objects, expected 1"
    );
    assert_eq!(
        err("/wrong-version").await,
        r#"conversion webhook for apps.kruise.io/v1alpha1, Kind=Widget returned invalid converted object at index 0: invalid apiVersion "apps.kruise.io/v1alpha1", expected "apps.kruise.io/v1beta1""#
    );
    assert!(err("/bad-label").await.contains(
        "returned invalid metadata in object at index 0: metadata.labels: Invalid value: \"not valid!\""
    ));
}

#[tokio::test]
async fn wrong_ca_bundle_and_invalid_version_fail() {
    let server = TestWebhook::start(answer).await;
    let c = Converter::new(resolver(server.addr));
    let e = c
        .convert(&crd("/convert", &certs().ca_pem), vec![widget("a", 1)], "apps.kruise.io/v1beta1")
        .await
        .expect_err("untrusted");
    assert!(e.to_string().contains("tls: failed to verify certificate"), "{e}");
    assert_eq!(e.code(), 500);
    let e = c
        .convert(&crd("/convert", &server.ca_pem), vec![widget("a", 1)], "apps.kruise.io/v9")
        .await
        .expect_err("v9");
    assert_eq!(e.to_string(), "request to convert CR to an invalid group/version: apps.kruise.io/v9");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn strategy_none_rewrites_api_version_only() {
    let c = Converter::new(|_: &str, _: &str, _: i32| None);
    let mut crd = crd("/convert", "");
    crd.spec.conversion = None;
    let out = c.convert(&crd, vec![widget("a", 2)], "apps.kruise.io/v1beta1").await.expect("converted");
    let mut want = widget("a", 2);
    want["apiVersion"] = "apps.kruise.io/v1beta1".into();
    assert_eq!(out, [want]);
}
