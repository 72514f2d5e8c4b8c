//! HTTPS on a port: TLS with the rotating certificate, HTTP/1.1, and the review
//! endpoints. Each handler runs on a blocking thread under a timeout; a handler that
//! panics or overruns answers with an error status and the server carries on.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use kube::core::{
    DynamicObject, Status,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
    conversion::{ConversionRequest, ConversionResponse, ConversionReview},
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::{CONVERT_PATH, Registry, tls::CertResolver};

/// The largest review accepted: objects are at most ~1.5 MiB in etcd, a review
/// carries the object twice.
const MAX_BODY: usize = 8 << 20;
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long one handler may take before the server answers with an error.
    pub handler_timeout: Duration,
}

/// Serves webhooks on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    certs: Arc<CertResolver>,
    registry: Arc<Registry>,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(Arc::new(certs.server_config()));
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    warn!(%error, "webhook accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, registry, settings, shutdown) =
            (acceptor.clone(), registry.clone(), settings.clone(), shutdown.clone());
        tokio::spawn(
            async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => return debug!(%error, "TLS handshake failed"),
                    Err(_) => return debug!("TLS handshake timed out"),
                };
                let service = service_fn(move |req| {
                    let (registry, settings) = (registry.clone(), settings.clone());
                    async move { Ok::<_, Infallible>(respond(&registry, &settings, req).await) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(tls), service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    () = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(error) = result {
                    debug!(%error, "webhook connection ended with an error");
                }
            }
            .instrument(info_span!("webhook_conn", client.addr = %peer)),
        );
    }
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

fn plain(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut resp = reply(status, format!("{msg}\n").into_bytes());
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    resp
}

async fn respond(registry: &Registry, settings: &Settings, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "webhooks take POST");
    }
    let path = req.uri().path().to_owned();
    let handler = registry.admission_handler(&path);
    if handler.is_none() && path != CONVERT_PATH {
        return plain(StatusCode::NOT_FOUND, &format!("no webhook at {path}"));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("cannot read the review: {e}")),
    };
    let result = match handler {
        Some(handler) => admission(handler, &body, settings.handler_timeout).await,
        None => conversion(registry, &body, settings.handler_timeout).await,
    };
    match result {
        Ok(json) => reply(StatusCode::OK, json),
        Err(msg) => plain(StatusCode::BAD_REQUEST, &msg),
    }
}

/// Runs `f` on a blocking thread under `timeout`; a panic or an overrun is an `Err`
/// saying which.
async fn guarded<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(join)) if join.is_panic() => Err("the webhook handler panicked".to_owned()),
        Ok(Err(join)) => Err(format!("the webhook handler was cancelled: {join}")),
        Err(_) => Err(format!("the webhook handler did not answer within {timeout:?}")),
    }
}

async fn admission(
    handler: Arc<dyn super::Admit>,
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    let req: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|e| format!("AdmissionReview without a request: {e}"))?;
    let fallback = AdmissionResponse::from(&req);
    let response = match guarded(timeout, move || handler.admit(&req)).await {
        Ok(resp) => resp,
        Err(msg) => {
            warn!(error = %msg, "admission handler failed");
            let mut denied = fallback.deny(format!("internal error: {msg}"));
            denied.result.code = 500;
            denied
        }
    };
    serde_json::to_vec(&response.into_review()).map_err(|e| format!("cannot encode the review: {e}"))
}

async fn conversion(registry: &Registry, body: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let review: ConversionReview =
        serde_json::from_slice(body).map_err(|e| format!("not a ConversionReview: {e}"))?;
    let req = ConversionRequest::from_review(review).map_err(|e| e.to_string())?;
    let desired = req.desired_api_version.clone();
    let objects = req.objects.clone();
    let response = ConversionResponse::for_request(req);
    let mut converted = Vec::with_capacity(objects.len());
    for object in objects {
        let (group, kind) = group_kind(&object);
        let Some(converter) = registry.converter(&group, &kind) else {
            let status =
                Status::failure(&format!("no converter for {group}/{kind}"), "BadRequest").with_code(400);
            return encode_conversion(response.failure(status));
        };
        let desired = desired.clone();
        match guarded(timeout, move || converter.convert(object, &desired)).await {
            Ok(Ok(obj)) => converted.push(obj),
            Ok(Err(reason)) => {
                let status = Status::failure(&reason, "BadRequest").with_code(400);
                return encode_conversion(response.failure(status));
            }
            Err(msg) => {
                warn!(error = %msg, "conversion handler failed");
                let status =
                    Status::failure(&format!("internal error: {msg}"), "InternalError").with_code(500);
                return encode_conversion(response.failure(status));
            }
        }
    }
    encode_conversion(response.success(converted))
}

fn encode_conversion(resp: ConversionResponse) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&resp.into_review()).map_err(|e| format!("cannot encode the review: {e}"))
}

fn group_kind(object: &serde_json::Value) -> (String, String) {
    let api_version = object.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g).to_owned();
    let kind = object.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    (group, kind)
}
