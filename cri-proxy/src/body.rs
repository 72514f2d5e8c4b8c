//! Bodies on both sides of the proxy. Forwarded bodies are hyper's own streams, passed
//! through frame by frame without copying; the response side watches for the status
//! trailer to finish the call's metrics.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use h2::RecvStream;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tonic::Code;

use crate::{grpc, metrics::Call};

/// What the proxy sends to the runtime: the caller's own body, or one re-encoded by a
/// typed handler.
pub type RequestBody = Either<Incoming, Full<Bytes>>;

/// What the proxy sends back to the caller.
#[derive(Debug, Default)]
pub struct ResponseBody {
    inner: Inner,
    call: Option<Call>,
}

#[derive(Debug, Default)]
enum Inner {
    /// Trailers-only responses: the status is in the headers.
    #[default]
    Empty,
    /// A message and its trailers, built by a typed handler.
    Full { data: Option<Bytes>, trailers: Option<HeaderMap> },
    /// The runtime's response, streamed through.
    Upstream(RecvStream),
}

impl ResponseBody {
    /// The runtime's body, streamed through.
    pub fn upstream(body: RecvStream) -> Self {
        Self { inner: Inner::Upstream(body), call: None }
    }

    /// Ties `call` to this body: it finishes when the status trailer passes (at once
    /// for a body built here, whose trailers are known).
    pub fn with_call(mut self, call: Call) -> Self {
        match &self.inner {
            Inner::Upstream(_) => self.call = Some(call),
            Inner::Full { trailers, .. } => {
                call.finish(trailers.as_ref().and_then(grpc::status_code).unwrap_or(Code::Unknown))
            }
            Inner::Empty => call.finish(Code::Unknown),
        }
        self
    }

    /// One framed message followed by `trailers`.
    pub fn full(data: Bytes, trailers: HeaderMap) -> Self {
        Self {
            inner: Inner::Full { data: Some(data).filter(|d| !d.is_empty()), trailers: Some(trailers) },
            call: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        match &mut this.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full { data, trailers } => Poll::Ready(match data.take() {
                Some(d) => Some(Ok(Frame::data(d))),
                None => trailers.take().map(|t| Ok(Frame::trailers(t))),
            }),
            Inner::Upstream(body) => {
                let mut frame = ready!(poll_upstream(body, cx));
                if let Some(Err(error)) = &frame {
                    // The runtime's stream broke after its headers went out (it died
                    // mid-answer): end the caller's call with a proper status rather
                    // than a reset, as the runtime would have, had it been able to.
                    let status = tonic::Status::unavailable(format!("runtime unavailable: {error}"));
                    let mut trailers = HeaderMap::new();
                    let _ = status.add_header(&mut trailers);
                    this.inner = Inner::Empty;
                    frame = Some(Ok(Frame::trailers(trailers)));
                }
                if let Some(call) = this.call.take() {
                    match &frame {
                        Some(Ok(f)) => match f.trailers_ref() {
                            Some(t) => call.finish(grpc::status_code(t).unwrap_or(Code::Unknown)),
                            None => this.call = Some(call),
                        },
                        Some(Err(_)) => call.finish(Code::Unavailable),
                        // a gRPC response that ends without trailers is malformed
                        None => call.finish(Code::Unknown),
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full { data, trailers } => data.is_none() && trailers.is_none(),
            Inner::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full { data, .. } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Inner::Upstream(_) => SizeHint::default(),
        }
    }
}

/// The next frame of the runtime's answer: data (its window handed back at once, so
/// the runtime never waits on the proxy), then trailers.
fn poll_upstream(
    body: &mut RecvStream,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
    match ready!(body.poll_data(cx)) {
        Some(Ok(data)) => {
            let _ = body.flow_control().release_capacity(data.len());
            Poll::Ready(Some(Ok(Frame::data(data))))
        }
        Some(Err(e)) => Poll::Ready(Some(Err(e))),
        None => Poll::Ready(ready!(body.poll_trailers(cx)).transpose().map(|t| t.map(Frame::trailers))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn full_bodies_yield_data_then_trailers() {
        let mut t = HeaderMap::new();
        t.insert(grpc::STATUS_HEADER, "0".parse().unwrap());
        let collected = ResponseBody::full(Bytes::from_static(b"abc"), t).collect().await.unwrap();
        assert_eq!(collected.trailers().and_then(grpc::status_code), Some(Code::Ok));
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"abc"));
        assert!(ResponseBody::default().is_end_stream());
    }
}
