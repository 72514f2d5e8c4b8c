//! A real HTTPS webhook server for tests: a self-signed CA and a serving
//! certificate (rcgen), tokio-rustls and hyper, answering with a handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

/// The SANs of the serving certificate.
pub(crate) const SERVICE_DNS: &str = "hook.webhooks.svc";

/// A CA (PEM) and a leaf it signed for [`SERVICE_DNS`] and 127.0.0.1.
pub(crate) struct Certs {
    pub(crate) ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

pub(crate) fn certs() -> Certs {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("leaf key");
    let leaf =
        CertificateParams::new(vec![SERVICE_DNS.to_owned(), "127.0.0.1".to_owned()]).expect("leaf params");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
    Certs {
        ca_pem: ca_cert.pem(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// What the handler answers: JSON, or nothing ever (to trigger timeouts).
pub(crate) type Handler = dyn Fn(&str, &Value) -> Option<Value> + Send + Sync;

/// A running webhook server; stopped when dropped.
pub(crate) struct TestWebhook {
    pub(crate) addr: SocketAddr,
    pub(crate) ca_pem: String,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    task: JoinHandle<()>,
}

impl TestWebhook {
    pub(crate) async fn start(
        handler: impl Fn(&str, &Value) -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        let certs = certs();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(vec![certs.cert], certs.key)
            .expect("server cert");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(
            async move {
                let mut conns = tokio::task::JoinSet::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    let handler = Arc::clone(&handler);
                    let recorded = Arc::clone(&recorded);
                    conns.spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let service =
                            hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                                let handler = Arc::clone(&handler);
                                let recorded = Arc::clone(&recorded);
                                async move {
                                    let path = req.uri().path().to_owned();
                                    let body = req
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                    recorded.lock().expect("lock").push((path.clone(), review.clone()));
                                    match handler(&path, &review) {
                                        Some(answer) => Ok::<_, Infallible>(
                                            Response::builder()
                                                .header("content-type", "application/json")
                                                .body(Full::new(Bytes::from(answer.to_string())))
                                                .expect("response"),
                                        ),
                                        None => std::future::pending().await,
                                    }
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
            .instrument(tracing::info_span!("test_webhook", %addr)),
        );
        Self { addr, ca_pem: certs.ca_pem, requests, task }
    }

    /// Every request received so far: (path, body).
    pub(crate) fn requests(&self) -> Vec<(String, Value)> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for TestWebhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}
