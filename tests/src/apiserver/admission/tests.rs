use std::net::SocketAddr;

use base64::Engine as _;
use serde_json::{Value, json};

use super::test_server::{SERVICE_DNS, TestWebhook, certs};
use super::*;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Answers by path: /allow, /deny, /deny-bare, /patch, /hang, /bad-uid.
fn answer(path: &str, review: &Value) -> Option<Value> {
    let uid = review["request"]["uid"].clone();
    let response = match path {
        "/allow" => json!({"uid": uid, "allowed": true}),
        "/deny" => json!({"uid": uid, "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": "replicas must be odd"}}),
        "/deny-bare" => json!({"uid": uid, "allowed": false}),
        "/patch" => {
            let patch = json!([{"op": "add", "path": "/metadata/labels/patched", "value": "yes"}]);
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": b64(&patch.to_string())})
        }
        "/bad-uid" => json!({"uid": "other", "allowed": true}),
        "/hang" => return None,
        _ => json!({"uid": uid, "allowed": false, "status": {"message": "unknown path"}}),
    };
    Some(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}))
}

fn resolver(addr: SocketAddr) -> impl Fn(&str, &str, i32) -> Option<SocketAddr> + Send + Sync {
    move |ns: &str, name: &str, port: i32| (ns == "webhooks" && name == "hook" && port == 443).then_some(addr)
}

/// A webhook (JSON) reaching the test server's Service at `path`.
fn hook(name: &str, path: &str, ca_pem: &str, extra: Value) -> Value {
    let mut w = json!({
        "name": name,
        "clientConfig": {"service": {"namespace": "webhooks", "name": "hook", "path": path}, "caBundle": b64(ca_pem)},
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps.kruise.io"], "apiVersions": ["*"],
                   "resources": ["clonesets"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    if let (Some(w), Some(extra)) = (w.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            w.insert(k.clone(), v.clone());
        }
    }
    w
}

fn mutating(name: &str, hooks: Vec<Value>) -> MutatingWebhookConfiguration {
    serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": hooks})).expect("mutating config")
}

fn validating(name: &str, hooks: Vec<Value>) -> ValidatingWebhookConfiguration {
    serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": hooks})).expect("validating config")
}

fn attrs() -> Attributes {
    Attributes {
        operation: Some(Operation::Create),
        kind: Gvk { group: "apps.kruise.io".into(), version: "v1alpha1".into(), kind: "CloneSet".into() },
        resource: Gvr {
            group: "apps.kruise.io".into(),
            version: "v1alpha1".into(),
            resource: "clonesets".into(),
        },
        name: "web".into(),
        namespace: "shop".into(),
        user_info: UserInfo {
            username: Some("alice".into()),
            groups: Some(vec!["devs".into()]),
            ..UserInfo::default()
        },
        namespace_labels: [("env".to_owned(), "dev".to_owned())].into(),
        ..Attributes::default()
    }
}

fn cloneset() -> Value {
    json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
           "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}}, "spec": {"replicas": 3}})
}

#[tokio::test]
async fn mutating_webhooks_patch_in_order_and_see_the_request() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    // "b-config" sorts after "a-config": its webhook sees the patched object.
    let configs = [
        mutating("b-config", vec![hook("allow.example.com", "/allow", &server.ca_pem, json!({}))]),
        mutating("a-config", vec![hook("patch.example.com", "/patch", &server.ca_pem, json!({}))]),
    ];
    let out = d.mutate(&configs, &attrs(), cloneset()).await.expect("admitted");
    assert_eq!(out["metadata"]["labels"]["patched"], "yes");
    let reqs = server.requests();
    assert_eq!(reqs.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["/patch", "/allow"]);
    let first = &reqs[0].1;
    assert_eq!(first["apiVersion"], "admission.k8s.io/v1");
    let r = &first["request"];
    assert_eq!(r["uid"].as_str().map(str::len), Some(36));
    assert_eq!(r["kind"], json!({"group": "apps.kruise.io", "version": "v1alpha1", "kind": "CloneSet"}));
    assert_eq!(r["resource"]["resource"], "clonesets");
    assert_eq!(r["requestResource"]["resource"], "clonesets");
    assert_eq!(r["operation"], "CREATE");
    assert_eq!(r["namespace"], "shop");
    assert_eq!(r["name"], "web");
    assert_eq!(r["userInfo"]["username"], "alice");
    assert_eq!(r["dryRun"], false);
    assert_eq!(reqs[1].1["request"]["object"]["metadata"]["labels"]["patched"], "yes");
    assert_ne!(reqs[0].1["request"]["uid"], reqs[1].1["request"]["uid"]);
}

#[tokio::test]
async fn a_denial_is_the_webhooks_status_prefixed() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    let configs = [mutating("c", vec![hook("deny.example.com", "/deny", &server.ca_pem, json!({}))])];
    let err = d.mutate(&configs, &attrs(), cloneset()).await.expect_err("denied");
    assert_eq!(
        err,
        Rejection {
            code: 403,
            reason: "Forbidden".into(),
            message: r#"admission webhook "deny.example.com" denied the request: replicas must be odd"#
                .into(),
        }
    );
    assert_eq!(err.to_status().code, Some(403));
    let configs = [validating("v", vec![hook("bare.example.com", "/deny-bare", &server.ca_pem, json!({}))])];
    let err = d.validate(&configs, &attrs(), Some(&cloneset())).await.expect_err("denied");
    assert_eq!(err.code, 400);
    assert_eq!(err.message, r#"admission webhook "bare.example.com" denied the request without explanation"#);
}

#[tokio::test]
async fn timeouts_fail_closed_or_open_by_failure_policy() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    let fail = [mutating(
        "c",
        vec![hook("hang.example.com", "/hang", &server.ca_pem, json!({"timeoutSeconds": 1}))],
    )];
    let err = d.mutate(&fail, &attrs(), cloneset()).await.expect_err("fails closed");
    assert_eq!(err.code, 500);
    assert_eq!(err.reason, "InternalError");
    assert_eq!(
        err.message,
        r#"Internal error occurred: failed calling webhook "hang.example.com": Post "https://hook.webhooks.svc:443/hang?timeout=1s": context deadline exceeded"#
    );
    let ignore = [mutating(
        "c",
        vec![hook(
            "hang.example.com",
            "/hang",
            &server.ca_pem,
            json!({"timeoutSeconds": 1, "failurePolicy": "Ignore"}),
        )],
    )];
    let out = d.mutate(&ignore, &attrs(), cloneset()).await.expect("fails open");
    assert_eq!(out, cloneset());
}

#[tokio::test]
async fn match_conditions_skip_call_or_fail_by_failure_policy() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    let only = |expression: &str, policy: &str| {
        [validating(
            "v",
            vec![hook(
                "deny.example.com",
                "/deny",
                &server.ca_pem,
                json!({"failurePolicy": policy,
                       "matchConditions": [{"name": "who", "expression": expression}]}),
            )],
        )]
    };
    let alice = only("request.userInfo.username == 'alice' && object.spec.replicas == 3", "Fail");
    let err = d.validate(&alice, &attrs(), Some(&cloneset())).await.expect_err("called for alice");
    assert!(err.message.contains("replicas must be odd"), "{}", err.message);
    let bob = only("request.userInfo.username == 'bob'", "Fail");
    d.validate(&bob, &attrs(), Some(&cloneset())).await.expect("skipped: the condition is false");
    let broken = only("request.userInfo.nosuch == 'x'", "Fail");
    let err = d.validate(&broken, &attrs(), Some(&cloneset())).await.expect_err("an error fails closed");
    assert_eq!(err.code, 500);
    assert!(err.message.contains("failed calling webhook \"deny.example.com\": failed evaluating match conditions: expression 'who' resulted in error"), "{}", err.message);
    let ignored = only("request.userInfo.nosuch == 'x'", "Ignore");
    d.validate(&ignored, &attrs(), Some(&cloneset())).await.expect("an error with Ignore skips the webhook");
    // DELETE: no object, the stored one as oldObject
    let mut delete = attrs();
    delete.operation = Some(Operation::Delete);
    delete.old_object = Some(cloneset());
    let rules = json!([{"operations": ["DELETE"], "apiGroups": ["apps.kruise.io"], "apiVersions": ["*"], "resources": ["clonesets"]}]);
    let configs = [validating(
        "v",
        vec![hook(
            "deny.example.com",
            "/deny",
            &server.ca_pem,
            json!({"rules": rules, "matchConditions": [
                {"name": "delete", "expression": "object == null && oldObject.metadata.name == 'web'"}]}),
        )],
    )];
    d.validate(&configs, &delete, None).await.expect_err("called on the delete of web");
}

#[tokio::test]
async fn selectors_rules_and_scope_that_do_not_match_skip_the_webhook() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    let ca = &server.ca_pem;
    let configs = [validating(
        "v",
        vec![
            hook(
                "ns.example.com",
                "/deny",
                ca,
                json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}),
            ),
            hook(
                "obj.example.com",
                "/deny",
                ca,
                json!({"objectSelector": {"matchExpressions": [
                {"key": "app", "operator": "NotIn", "values": ["web"]}]}}),
            ),
            hook(
                "op.example.com",
                "/deny",
                ca,
                json!({"rules": [{"operations": ["DELETE"],
                "apiGroups": ["apps.kruise.io"], "apiVersions": ["*"], "resources": ["clonesets"]}]}),
            ),
            hook(
                "sub.example.com",
                "/deny",
                ca,
                json!({"rules": [{"operations": ["*"],
                "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["clonesets/status"]}]}),
            ),
            hook(
                "scope.example.com",
                "/deny",
                ca,
                json!({"rules": [{"operations": ["*"],
                "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}]}),
            ),
            hook(
                "group.example.com",
                "/deny",
                ca,
                json!({"rules": [{"operations": ["*"],
                "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}),
            ),
        ],
    )];
    d.validate(&configs, &attrs(), Some(&cloneset())).await.expect("nothing matched");
    assert!(server.requests().is_empty());

    // The status subresource does reach the webhook registered for it.
    let mut status = attrs();
    status.operation = Some(Operation::Update);
    status.sub_resource = "status".into();
    status.old_object = Some(cloneset());
    let err = d.validate(&configs, &status, Some(&cloneset())).await.expect_err("status matched");
    assert!(err.message.starts_with(r#"admission webhook "sub.example.com" denied"#), "{}", err.message);
}

#[tokio::test]
async fn a_wrong_ca_bundle_is_a_call_failure() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    let other_ca = certs().ca_pem;
    let configs = [mutating("c", vec![hook("tls.example.com", "/allow", &other_ca, json!({}))])];
    let err = d.mutate(&configs, &attrs(), cloneset()).await.expect_err("untrusted");
    assert_eq!(err.code, 500);
    assert!(err.message.starts_with(r#"Internal error occurred: failed calling webhook "tls.example.com": Post "https://hook.webhooks.svc:443/allow?timeout=10s": tls: failed to verify certificate"#), "{}", err.message);
    assert!(server.requests().is_empty());
    let ignore = [mutating(
        "c",
        vec![hook("tls.example.com", "/allow", &other_ca, json!({"failurePolicy": "Ignore"}))],
    )];
    d.mutate(&ignore, &attrs(), cloneset()).await.expect("fails open");
}

#[tokio::test]
async fn url_client_config_with_ip_san() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(|_: &str, _: &str, _: i32| None);
    let mut h = hook("url.example.com", "/", &server.ca_pem, json!({}));
    h["clientConfig"] = json!({"url": format!("https://127.0.0.1:{}/patch", server.addr.port()), "caBundle": b64(&server.ca_pem)});
    let out = d.mutate(&[mutating("c", vec![h])], &attrs(), cloneset()).await.expect("admitted");
    assert_eq!(out["metadata"]["labels"]["patched"], "yes");
    // An unresolvable Service is a call failure.
    let h = hook("nosvc.example.com", "/allow", &server.ca_pem, json!({}));
    let err = d.mutate(&[mutating("c", vec![h])], &attrs(), cloneset()).await.expect_err("no service");
    assert!(err.message.contains(&format!("service {SERVICE_DNS}:443 not found")), "{}", err.message);
}

#[tokio::test]
async fn validating_webhooks_run_all_and_report_the_first_denial() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    let ca = &server.ca_pem;
    let configs = [validating(
        "v",
        vec![
            hook("allow.example.com", "/allow", ca, json!({})),
            hook("deny.example.com", "/deny", ca, json!({})),
        ],
    )];
    let err = d.validate(&configs, &attrs(), Some(&cloneset())).await.expect_err("denied");
    assert_eq!(err.code, 403);
    assert_eq!(server.requests().len(), 2);
    // DELETE sends only the old object.
    let mut del = attrs();
    del.operation = Some(Operation::Delete);
    del.old_object = Some(cloneset());
    let configs = [validating(
        "v",
        vec![hook(
            "allow.example.com",
            "/allow",
            ca,
            json!({"rules": [
        {"operations": ["DELETE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]}),
        )],
    )];
    d.validate(&configs, &del, None).await.expect("allowed");
    let last = server.requests().pop().expect("request").1;
    assert_eq!(last["request"]["operation"], "DELETE");
    assert_eq!(last["request"]["object"], Value::Null);
    assert_eq!(last["request"]["oldObject"]["metadata"]["name"], "web");
    // A validating webhook may not patch.
    let configs = [validating("v", vec![hook("patch.example.com", "/patch", ca, json!({}))])];
    let err = d.validate(&configs, &attrs(), Some(&cloneset())).await.expect_err("invalid response");
    assert!(
        err.message.contains("received invalid webhook response: validating webhooks may not return patches")
    );
}

#[tokio::test]
async fn dry_run_side_effects_review_versions_and_uid_checks() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    let ca = &server.ca_pem;
    let mut dry = attrs();
    dry.dry_run = true;
    let configs = [mutating("c", vec![hook("se.example.com", "/allow", ca, json!({"sideEffects": "Some"}))])];
    let err = d.mutate(&configs, &dry, cloneset()).await.expect_err("no dry run");
    assert_eq!(err.code, 400);
    assert_eq!(err.message, r#"admission webhook "se.example.com" does not support dry run"#);
    let configs = [mutating(
        "c",
        vec![hook("v.example.com", "/allow", ca, json!({"admissionReviewVersions": ["v1beta1"]}))],
    )];
    let err = d.mutate(&configs, &attrs(), cloneset()).await.expect_err("unknown versions");
    assert!(
        err.message.ends_with("webhook does not accept known AdmissionReview versions"),
        "{}",
        err.message
    );
    let configs = [mutating("c", vec![hook("uid.example.com", "/bad-uid", ca, json!({}))])];
    let err = d.mutate(&configs, &attrs(), cloneset()).await.expect_err("uid mismatch");
    assert!(
        err.message.contains(r#"received invalid webhook response: expected response.uid="#),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn if_needed_webhooks_are_reinvoked_after_a_later_change() {
    let server = TestWebhook::start(answer).await;
    let d = Dispatcher::new(resolver(server.addr));
    let ca = &server.ca_pem;
    let configs = [mutating(
        "c",
        vec![
            hook("first.example.com", "/allow", ca, json!({"reinvocationPolicy": "IfNeeded"})),
            hook("patch.example.com", "/patch", ca, json!({})),
        ],
    )];
    d.mutate(&configs, &attrs(), cloneset()).await.expect("admitted");
    let paths: Vec<String> = server.requests().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["/allow", "/patch", "/allow"]);
}
