//! A registry front for tests: an HTTP/1.1 proxy before the bed's registry that
//! counts requests by kind (manifest HEAD/GET, blob GET, other) and bytes served,
//! can throttle what it serves (this kernel has no netem), can demand Basic
//! credentials as a private registry does, and can hang (accept and never answer).
//! Point containerd at it with [`crate::testbed::TestBed::serve_domain`].

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info_span};

type Body = BoxBody<Bytes, Infallible>;

/// What the front has served.
#[derive(Debug, Default)]
pub struct Counts {
    /// `HEAD /v2/<name>/manifests/<ref>` (resolves).
    pub manifest_heads: AtomicU64,
    /// `GET /v2/<name>/manifests/<ref>`.
    pub manifest_gets: AtomicU64,
    /// `GET /v2/<name>/blobs/<digest>`.
    pub blob_gets: AtomicU64,
    /// Anything else (`/v2/` pings, token requests).
    pub other: AtomicU64,
    /// Response body bytes sent.
    pub bytes: AtomicU64,
    /// Requests refused for missing or wrong credentials.
    pub unauthorized: AtomicU64,
}

impl Counts {
    /// `(manifest HEADs, manifest GETs, blob GETs, other, bytes)`.
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64) {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (l(&self.manifest_heads), l(&self.manifest_gets), l(&self.blob_gets), l(&self.other), l(&self.bytes))
    }
}

/// How the front behaves.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Bytes per second of response bodies (`None`: as fast as the registry).
    pub bytes_per_second: Option<u64>,
    /// `user:password` to demand with Basic auth.
    pub basic_auth: Option<String>,
}

/// A running front; stopped when dropped.
#[derive(Debug)]
pub struct RegistryFront {
    addr: SocketAddr,
    counts: Arc<Counts>,
    hang: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Drop for RegistryFront {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RegistryFront {
    /// Starts a front for the registry at `upstream` (`127.0.0.1:PORT`).
    ///
    /// # Errors
    /// No port to listen on.
    pub async fn start(upstream: &str, settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let hang = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let ctx = Arc::new(Front {
            upstream: upstream.to_owned(),
            settings,
            counts: counts.clone(),
            hang: hang.clone(),
            stop: stop.clone(),
        });
        tokio::spawn(accept(listener, ctx).instrument(info_span!("registry_front", %addr)));
        Ok(Self { addr, counts, hang, stop })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// What it served.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// From now on, accept requests and never answer them (`false`: answer again).
    pub fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }
}

struct Front {
    upstream: String,
    settings: Settings,
    counts: Arc<Counts>,
    hang: Arc<AtomicBool>,
    stop: CancellationToken,
}

async fn accept(listener: TcpListener, ctx: Arc<Front>) {
    loop {
        let stream = tokio::select! {
            () = ctx.stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let ctx = ctx.clone();
        tokio::spawn(
            async move {
                let svc = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            }
            .instrument(info_span!("front_conn")),
        );
    }
}

fn plain(code: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())).boxed());
    *r.status_mut() = code;
    r
}

async fn handle(ctx: &Front, req: Request<Incoming>) -> Response<Body> {
    if ctx.hang.load(Ordering::SeqCst) {
        ctx.stop.cancelled().await;
        return plain(StatusCode::SERVICE_UNAVAILABLE, "stopped");
    }
    let path = req.uri().path().to_owned();
    let counter = match (req.method().as_str(), path.contains("/manifests/"), path.contains("/blobs/")) {
        ("HEAD", true, _) => &ctx.counts.manifest_heads,
        ("GET", true, _) => &ctx.counts.manifest_gets,
        ("GET", _, true) => &ctx.counts.blob_gets,
        _ => &ctx.counts.other,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Some(creds) = &ctx.settings.basic_auth {
        let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds));
        let got = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            ctx.counts.unauthorized.fetch_add(1, Ordering::Relaxed);
            let mut r = plain(
                StatusCode::UNAUTHORIZED,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic realm=\"stevedore-test\""),
            );
            return r;
        }
    }
    match forward(ctx, req).await {
        Ok(r) => r,
        Err(e) => plain(StatusCode::BAD_GATEWAY, &format!("registry front: {e}")),
    }
}

async fn forward(ctx: &Front, req: Request<Incoming>) -> anyhow::Result<Response<Body>> {
    let stream = TcpStream::connect(&ctx.upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(
        async move {
            if let Err(error) = conn.await {
                debug!(%error, "upstream connection ended");
            }
        }
        .instrument(info_span!("front_upstream")),
    );
    let (mut parts, body) = req.into_parts();
    parts.headers.insert(header::HOST, http::HeaderValue::from_str(&ctx.upstream)?);
    parts.headers.remove(header::AUTHORIZATION);
    let body = body.collect().await?.to_bytes();
    let resp = sender.send_request(Request::from_parts(parts, Full::new(body))).await?;
    let (parts, mut incoming) = resp.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
    let (rate, counts, stop) = (ctx.settings.bytes_per_second, ctx.counts.clone(), ctx.stop.clone());
    tokio::spawn(
        async move {
            while let Some(Ok(frame)) = incoming.frame().await {
                let Ok(data) = frame.into_data() else { continue };
                // Throttled in 16 KiB slices, each sent when the rate allows.
                for chunk in data.chunks(16 * 1024) {
                    if let Some(rate) = rate {
                        let wait = Duration::from_secs_f64(chunk.len() as f64 / rate.max(1) as f64);
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                    counts.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk)))).await.is_err() {
                        return;
                    }
                }
            }
        }
        .instrument(info_span!("front_body")),
    );
    Ok(Response::from_parts(parts, StreamBody::new(ReceiverStream::new(rx)).boxed()))
}
