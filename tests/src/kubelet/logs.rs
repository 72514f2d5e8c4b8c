//! The kubelet's container log endpoint, `GET /containerLogs/{ns}/{pod}/{container}`
//! (plain HTTP on the node's address; the Node's `daemonEndpoints.kubeletEndpoint.port`
//! names its port), which the simulated API server's `pods/log` calls as
//! kube-apiserver calls kubelet's. It reads the CRI log files the runtime writes
//! (`<log_dir>/<ns>_<pod>_<uid>/<container>/<restartCount>.log`, lines
//! `<time> <stream> <P|F> <text>`) and honours `follow`, `previous`, `timestamps`,
//! `tailLines`, `limitBytes` and `sinceSeconds`.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::{body::Frame, service::service_fn};
use hyper_util::rt::TokioIo;
use k8s_openapi::jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug};

type Body = BoxBody<Bytes, Infallible>;

/// What a log request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Keep streaming what is written.
    pub follow: bool,
    /// The previous instance of the container.
    pub previous: bool,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// Only the last lines.
    pub tail_lines: Option<usize>,
    /// At most this many bytes.
    pub limit_bytes: Option<usize>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
}

impl Options {
    fn parse(query: &str) -> Self {
        let mut o = Self::default();
        for (k, v) in query.split('&').filter_map(|p| p.split_once('=')) {
            match k {
                "follow" => o.follow = v == "true",
                "previous" => o.previous = v == "true",
                "timestamps" => o.timestamps = v == "true",
                "tailLines" => o.tail_lines = v.parse().ok(),
                "limitBytes" => o.limit_bytes = v.parse().ok(),
                "sinceSeconds" => o.since_seconds = v.parse().ok(),
                _ => {}
            }
        }
        o
    }
}

/// Serves the endpoint on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, log_root: PathBuf, shutdown: CancellationToken) {
    let root = Arc::new(log_root);
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(error) => {
                    debug!(%error, "accept failed");
                    continue;
                }
            },
        };
        let (root, shutdown) = (root.clone(), shutdown.clone());
        tokio::spawn(
            async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (root, shutdown) = (root.clone(), shutdown.clone());
                    async move { Ok::<_, Infallible>(handle(&root, req.uri(), shutdown)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            }
            .instrument(tracing::debug_span!("kubelet_logs")),
        );
    }
}

fn text(code: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = code;
    r
}

fn handle(root: &Path, uri: &http::Uri, shutdown: CancellationToken) -> Response<Body> {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return text(StatusCode::NOT_FOUND, "not found".into());
    };
    let opts = Options::parse(uri.query().unwrap_or_default());
    let file = match log_file(root, ns, pod, container, opts.previous) {
        Ok(f) => f,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    tokio::spawn(stream(file, opts, tx, shutdown).instrument(tracing::debug_span!("container_log")));
    let mut r = Response::new(StreamBody::new(ReceiverStream::new(rx)).boxed());
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    r
}

/// The log file of the container's current (or previous) instance.
fn log_file(root: &Path, ns: &str, pod: &str, container: &str, previous: bool) -> Result<PathBuf, String> {
    let prefix = format!("{ns}_{pod}_");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| format!("reading {}: {e}", root.display()))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    dirs.sort_by_key(|d| std::fs::metadata(d).and_then(|m| m.modified()).ok());
    let dir = dirs.pop().ok_or_else(|| format!("no logs of pod {ns}/{pod} on this node"))?.join(container);
    let mut attempts: Vec<u64> = std::fs::read_dir(&dir)
        .map_err(|_| format!("container \"{container}\" in pod \"{pod}\" has no logs"))?
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".log")?.parse().ok())
        .collect();
    attempts.sort_unstable();
    let pick = if previous { attempts.iter().rev().nth(1) } else { attempts.last() };
    match pick {
        Some(n) => Ok(dir.join(format!("{n}.log"))),
        None if previous => {
            Err(format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"))
        }
        None => Err(format!("container \"{container}\" in pod \"{pod}\" has no logs")),
    }
}

/// One CRI log line as kubelet prints it, or `None` when it is filtered out.
fn render(line: &str, opts: &Options, since: Option<Timestamp>) -> Option<String> {
    let mut it = line.splitn(4, ' ');
    let (ts, _stream, tag, msg) = (it.next()?, it.next()?, it.next()?, it.next().unwrap_or_default());
    if let Some(since) = since
        && ts.parse::<Timestamp>().is_ok_and(|t| t < since)
    {
        return None;
    }
    let mut out = if opts.timestamps { format!("{ts} {msg}") } else { msg.to_string() };
    if tag != "P" {
        out.push('\n');
    }
    Some(out)
}

async fn stream(
    file: PathBuf,
    opts: Options,
    tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
    shutdown: CancellationToken,
) {
    let since =
        opts.since_seconds.map(|s| Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(s));
    let mut sent = 0usize;
    let limit = opts.limit_bytes.unwrap_or(usize::MAX);
    let send = |chunk: String, sent: &mut usize| {
        let room = limit.saturating_sub(*sent);
        let chunk = if chunk.len() > room { chunk[..room].to_string() } else { chunk };
        *sent += chunk.len();
        tx.send(Ok(Frame::data(Bytes::from(chunk))))
    };
    let content = tokio::fs::read_to_string(&file).await.unwrap_or_default();
    let complete = content.rfind('\n').map_or(0, |i| i + 1);
    let mut lines: Vec<String> =
        content[..complete].lines().filter_map(|l| render(l, &opts, since)).collect();
    if let Some(n) = opts.tail_lines {
        lines = lines.split_off(lines.len().saturating_sub(n));
    }
    for l in lines {
        if sent >= limit || send(l, &mut sent).await.is_err() {
            return;
        }
    }
    if !opts.follow {
        return;
    }
    // Follow: new complete lines as they are written, until the client goes away,
    // the node stops, or the file is gone (the pod was removed).
    let mut offset = complete;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tx.closed() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let Ok(content) = tokio::fs::read_to_string(&file).await else { return };
        if content.len() < offset {
            return;
        }
        let end = content.rfind('\n').map_or(offset, |i| (i + 1).max(offset));
        for l in content[offset..end].lines().filter_map(|l| render(l, &opts, since)) {
            if sent >= limit || send(l, &mut sent).await.is_err() {
                return;
            }
        }
        offset = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_as_kubelet_prints_them() {
        let o = Options::default();
        assert_eq!(
            render("2026-12-01T10:00:00.5Z stdout F hello world", &o, None).as_deref(),
            Some("hello world\n")
        );
        assert_eq!(render("2026-12-01T10:00:00.5Z stderr P part", &o, None).as_deref(), Some("part"));
        let ts = Options { timestamps: true, ..Options::default() };
        assert_eq!(
            render("2026-12-01T10:00:00.5Z stdout F x", &ts, None).as_deref(),
            Some("2026-12-01T10:00:00.5Z x\n")
        );
        let since = "2026-12-01T11:00:00Z".parse().ok();
        assert_eq!(render("2026-12-01T10:00:00.5Z stdout F old", &o, since), None);
        let q = Options::parse("follow=true&tailLines=3&previous=false&timestamps=true&limitBytes=9");
        assert_eq!(
            q,
            Options {
                follow: true,
                tail_lines: Some(3),
                timestamps: true,
                limit_bytes: Some(9),
                ..Options::default()
            }
        );
    }

    #[test]
    fn current_and_previous_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("shop_web_u1/app");
        std::fs::create_dir_all(&dir).unwrap();
        for n in [0, 1, 2] {
            std::fs::write(dir.join(format!("{n}.log")), "").unwrap();
        }
        assert_eq!(log_file(root.path(), "shop", "web", "app", false).unwrap(), dir.join("2.log"));
        assert_eq!(log_file(root.path(), "shop", "web", "app", true).unwrap(), dir.join("1.log"));
        assert!(log_file(root.path(), "shop", "web", "nope", false).is_err());
        assert!(log_file(root.path(), "shop", "other", "app", false).is_err());
    }
}
