//! The webhook server over real HTTPS: admission and conversion reviews, handler
//! panics and overruns, unknown paths, certificate rotation.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse},
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use stevedore_controller::webhook::{
    Admit, CONVERT_PATH, Convert, Operation, Registry,
    server::{Settings, serve},
    tls::{Bundle, CertResolver},
};
use tokio_util::sync::CancellationToken;

struct DenyLabelled;
impl Admit for DenyLabelled {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let labelled = req
            .object
            .as_ref()
            .and_then(|o| o.metadata.labels.as_ref())
            .is_some_and(|l| l.contains_key("deny"));
        let resp = AdmissionResponse::from(req);
        if labelled { resp.deny("metadata.labels.deny: objects labelled deny are refused") } else { resp }
    }
}

struct Panics;
impl Admit for Panics {
    fn admit(&self, _: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        panic!("handler bug");
    }
}

struct Slow;
impl Admit for Slow {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        std::thread::sleep(Duration::from_secs(5));
        AdmissionResponse::from(req)
    }
}

struct Rename;
impl Convert for Rename {
    fn convert(&self, mut object: Value, desired: &str) -> Result<Value, String> {
        if object["spec"]["onlyInBeta"].is_string() && desired.ends_with("v1alpha1") {
            return Err("spec.onlyInBeta cannot be expressed in v1alpha1".into());
        }
        object["apiVersion"] = json!(desired);
        Ok(object)
    }
}

const GROUP: &str = "apps.kruise.io";

async fn start(bundle: &Bundle) -> (SocketAddr, Arc<CertResolver>, CancellationToken) {
    let mut registry = Registry::default();
    registry.admission(Operation::Validate, GROUP, "v1alpha1", "CloneSet", Arc::new(DenyLabelled));
    registry.admission(Operation::Validate, GROUP, "v1alpha1", "Broken", Arc::new(Panics));
    registry.admission(Operation::Validate, GROUP, "v1alpha1", "Slow", Arc::new(Slow));
    registry.conversion(GROUP, "BroadcastJob", Arc::new(Rename));
    start_with(bundle, registry).await
}

async fn start_with(
    bundle: &Bundle,
    registry: Registry,
) -> (SocketAddr, Arc<CertResolver>, CancellationToken) {
    let certs = Arc::new(CertResolver::new(bundle).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let settings = Settings { handler_timeout: Duration::from_millis(1500) };
    tokio::spawn(serve(listener, certs.clone(), Arc::new(registry), settings, stop.clone()));
    (addr, certs, stop)
}

fn bundle() -> Bundle {
    Bundle::generate(&["localhost".to_owned()], SystemTime::now(), Duration::from_secs(3600)).unwrap()
}

async fn post(addr: SocketAddr, ca_pem: &str, path: &str, body: &Value) -> Result<(u16, Value), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    Ok((status, value))
}

fn admission_review(kind: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": GROUP, "version": "v1alpha1", "kind": kind},
            "resource": {"group": GROUP, "version": "v1alpha1", "resource": "clonesets"},
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": {"apiVersion": "apps.kruise.io/v1alpha1", "kind": kind, "metadata": {"name": "web", "namespace": "shop", "labels": labels}},
            "oldObject": null,
            "dryRun": false,
            "options": null
        }
    })
}

#[tokio::test]
async fn admission_reviews_are_answered_over_https() {
    let b = bundle();
    let (addr, _, stop) = start(&b).await;
    let path = "/validate-apps-kruise-io-v1alpha1-cloneset";
    let (code, ok) = post(addr, &b.ca_pem, path, &admission_review("CloneSet", json!({}))).await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(ok["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(ok["response"]["allowed"], true);
    let (_, denied) =
        post(addr, &b.ca_pem, path, &admission_review("CloneSet", json!({"deny": "1"}))).await.unwrap();
    assert_eq!(denied["response"]["allowed"], false);
    assert!(
        denied["response"]["status"]["message"].as_str().unwrap().contains("metadata.labels.deny"),
        "{denied}"
    );
    let (code, _) =
        post(addr, &b.ca_pem, "/validate-nothing-here", &admission_review("X", json!({}))).await.unwrap();
    assert_eq!(code, 404);
    let (code, msg) = post(addr, &b.ca_pem, path, &json!({"not": "a review"})).await.unwrap();
    assert_eq!(code, 400, "{msg}");
    stop.cancel();
}

#[tokio::test]
async fn a_panicking_or_slow_handler_answers_with_an_error_and_the_server_carries_on() {
    let b = bundle();
    let (addr, _, stop) = start(&b).await;
    let (code, broken) = post(
        addr,
        &b.ca_pem,
        "/validate-apps-kruise-io-v1alpha1-broken",
        &admission_review("Broken", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(broken["response"]["allowed"], false);
    assert_eq!(broken["response"]["status"]["code"], 500);
    assert!(broken["response"]["status"]["message"].as_str().unwrap().contains("panicked"), "{broken}");
    let (_, slow) =
        post(addr, &b.ca_pem, "/validate-apps-kruise-io-v1alpha1-slow", &admission_review("Slow", json!({})))
            .await
            .unwrap();
    assert_eq!(slow["response"]["allowed"], false);
    assert!(
        slow["response"]["status"]["message"].as_str().unwrap().contains("did not answer within"),
        "{slow}"
    );
    let (_, fine) = post(
        addr,
        &b.ca_pem,
        "/validate-apps-kruise-io-v1alpha1-cloneset",
        &admission_review("CloneSet", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(fine["response"]["allowed"], true);
    stop.cancel();
}

#[tokio::test]
async fn conversion_reviews_convert_or_fail_with_the_reason() {
    let b = bundle();
    let (addr, _, stop) = start(&b).await;
    let review = |spec: Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {
                "uid": "c0ffee",
                "desiredAPIVersion": "apps.kruise.io/v1alpha1",
                "objects": [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "BroadcastJob", "metadata": {"name": "j"}, "spec": spec}]
            }
        })
    };
    let (code, ok) = post(addr, &b.ca_pem, CONVERT_PATH, &review(json!({"parallelism": 2}))).await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(ok["response"]["uid"], "c0ffee");
    assert_eq!(ok["response"]["result"]["status"], "Success");
    assert_eq!(ok["response"]["convertedObjects"][0]["apiVersion"], "apps.kruise.io/v1alpha1");
    let (_, failed) = post(addr, &b.ca_pem, CONVERT_PATH, &review(json!({"onlyInBeta": "x"}))).await.unwrap();
    assert_eq!(failed["response"]["result"]["status"], "Failure");
    assert!(
        failed["response"]["result"]["message"].as_str().unwrap().contains("cannot be expressed"),
        "{failed}"
    );
    stop.cancel();
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections() {
    let old = bundle();
    let (addr, certs, stop) = start(&old).await;
    let path = "/validate-apps-kruise-io-v1alpha1-cloneset";
    post(addr, &old.ca_pem, path, &admission_review("CloneSet", json!({}))).await.unwrap();
    let new = bundle();
    certs.rotate(&new).unwrap();
    let err = post(addr, &old.ca_pem, path, &admission_review("CloneSet", json!({}))).await.unwrap_err();
    assert!(err.starts_with("TLS"), "{err}");
    let (code, _) = post(addr, &new.ca_pem, path, &admission_review("CloneSet", json!({}))).await.unwrap();
    assert_eq!(code, 200);
    stop.cancel();
}

#[tokio::test]
async fn the_real_converters_answer_conversion_reviews() {
    let b = bundle();
    let mut registry = Registry::default();
    stevedore_controller::conversion::register(&mut registry);
    let (addr, _, stop) = start_with(&b, registry).await;
    let review = |desired: &str, object: Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": "c0ffee", "desiredAPIVersion": desired, "objects": [object]}
        })
    };
    let sidecar_set = json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": "log-agent", "labels": {"apps.kruise.io/sidecarset-custom-version": "2"}},
        "spec": {"namespace": "shop", "containers": [{"name": "agent", "image": "fluent-bit:3"}]}
    });
    let (code, ok) =
        post(addr, &b.ca_pem, CONVERT_PATH, &review("apps.kruise.io/v1beta1", sidecar_set)).await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(ok["response"]["result"]["status"], "Success", "{ok}");
    let converted = &ok["response"]["convertedObjects"][0];
    assert_eq!(converted["apiVersion"], "apps.kruise.io/v1beta1");
    assert_eq!(converted["spec"]["customVersion"], "2");
    assert_eq!(converted["spec"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "shop");

    let cron_job = json!({
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "AdvancedCronJob",
        "metadata": {"name": "prewarm", "namespace": "ops"},
        "spec": {"schedule": "0 * * * *", "template": {"imageListPullJobTemplate": {"spec": {
            "images": ["nginx:1.27"], "completionPolicy": {"type": "Always"}
        }}}}
    });
    let (_, failed) =
        post(addr, &b.ca_pem, CONVERT_PATH, &review("apps.kruise.io/v1alpha1", cron_job)).await.unwrap();
    assert_eq!(failed["response"]["result"]["status"], "Failure");
    let message = failed["response"]["result"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.template.imageListPullJobTemplate is not supported in v1alpha1"),
        "{message}"
    );
    stop.cancel();
}
