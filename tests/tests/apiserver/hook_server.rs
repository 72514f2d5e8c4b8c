//! A webhook server for the webhook tests: a CA of its own (rcgen), a serving
//! certificate for the Service names it answers as, HTTPS (tokio-rustls, hyper) on
//! 127.0.0.1:0, a handler per request and a record of what it was sent.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};
use tracing::Instrument as _;

type Handler = dyn Fn(&str, &Value) -> Value + Send + Sync;

/// A running webhook server; stopped when dropped.
pub(crate) struct HookServer {
    pub(crate) addr: SocketAddr,
    /// The CA that signed the serving certificate, for `caBundle`.
    pub(crate) ca_pem: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    task: JoinHandle<()>,
}

impl HookServer {
    /// Serves as each of `names` (`name.namespace.svc`), answering a request to a path
    /// with `handler(path, body)`.
    pub(crate) async fn start(
        names: &[String],
        handler: impl Fn(&str, &Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("serving key");
        let cert = CertificateParams::new(names.to_vec())
            .expect("serving params")
            .signed_by(&key, &issuer)
            .expect("serving cert");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let tls =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("tls versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)
                .expect("serving config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the webhook server");
        let addr = listener.local_addr().expect("webhook server address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = calls.clone();
        let task = tokio::spawn(
            async move {
                let mut conns = tokio::task::JoinSet::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, handler, recorded) = (acceptor.clone(), handler.clone(), recorded.clone());
                    conns.spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let service =
                            hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                                let (handler, recorded) = (handler.clone(), recorded.clone());
                                async move {
                                    let path = req.uri().path().to_owned();
                                    let body = req
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                    let answer = handler(&path, &body);
                                    recorded.lock().unwrap().push((path, body));
                                    Ok::<_, Infallible>(
                                        Response::builder()
                                            .header("content-type", "application/json")
                                            .body(Full::new(Bytes::from(answer.to_string())))
                                            .expect("response"),
                                    )
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
            .instrument(tracing::info_span!("hook_server", %addr)),
        );
        Self { addr, ca_pem: ca_cert.pem(), calls, task }
    }

    /// The paths called so far, in order.
    pub(crate) fn paths(&self) -> Vec<String> {
        self.calls.lock().unwrap().iter().map(|(p, _)| p.clone()).collect()
    }

    /// The bodies sent so far, in order.
    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.calls.lock().unwrap().iter().map(|(_, b)| b.clone()).collect()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback address where nothing listens: a webhook that is down.
pub(crate) async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("address")
}
