//! The HTTP endpoint every Stevedore node component offers operators: `GET /metrics`
//! (Prometheus text, rendered by the component) and `GET /healthz`.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

/// What `/metrics` answers with.
pub trait Metrics: Send + Sync + 'static {
    /// The Prometheus text exposition of the metrics.
    fn render(&self) -> String;
}

/// Serves the endpoint on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, metrics: Arc<dyn Metrics>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    warn!(%error, "metrics accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let service = service_fn(move |req| {
            let metrics = metrics.clone();
            async move { Ok::<_, Infallible>(respond(metrics.as_ref(), &req)) }
        });
        let shutdown = shutdown.clone();
        tokio::spawn(
            async move {
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    () = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(error) = result {
                    debug!(%error, "metrics connection failed");
                }
            }
            .instrument(info_span!("metrics_conn")),
        );
    }
}

fn respond(metrics: &dyn Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4", metrics.render()),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics or /healthz\n".to_owned()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    resp
}

/// A histogram's text lines: cumulative `_bucket{le=…}` counts, `_sum` and `_count`.
/// `labels` is empty or `key="value",…` (without braces).
pub fn histogram_lines(name: &str, labels: &str, bounds: &[f64], counts: &[u64], sum: f64, out: &mut String) {
    use std::fmt::Write as _;
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (le, c) in bounds.iter().zip(counts) {
        cumulative += c;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
    }
    cumulative += counts.get(bounds.len()).copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_text() {
        let mut out = String::new();
        histogram_lines("x_seconds", "r=\"ok\"", &[0.1, 1.0], &[2, 1, 4], 9.5, &mut out);
        assert_eq!(
            out,
            "x_seconds_bucket{r=\"ok\",le=\"0.1\"} 2\nx_seconds_bucket{r=\"ok\",le=\"1\"} 3\n\
             x_seconds_bucket{r=\"ok\",le=\"+Inf\"} 7\nx_seconds_sum{r=\"ok\"} 9.5\nx_seconds_count{r=\"ok\"} 7\n"
        );
    }
}
