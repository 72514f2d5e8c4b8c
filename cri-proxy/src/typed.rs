//! Helpers for typed handlers of unary methods: read the caller's message, forward a
//! message, read the runtime's answer. Messages are limited to 16 MiB both ways, as
//! kubelet limits them. Fail-open: a message a handler cannot decode is still
//! forwarded as the bytes that arrived, so the caller gets the runtime's answer.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, request, response};
use http_body_util::{BodyExt, Either, Full, Limited};

use crate::{
    body::{RequestBody, ResponseBody},
    error::{Error, Result},
    grpc::{self, FrameError},
    proxy::Proxy,
};

/// The message size limit of typed handlers, both ways.
pub const MAX_MESSAGE: usize = 16 << 20;

/// A unary request as a typed handler sees it.
#[derive(Debug)]
pub struct TypedRequest<M> {
    /// Method, path, and the caller's metadata.
    pub parts: request::Parts,
    /// The framed message exactly as it arrived.
    pub raw: Bytes,
    /// The decoded message, or why it could not be decoded.
    pub message: Result<M, FrameError>,
}

/// Reads the caller's one message.
///
/// # Errors
/// The caller's stream failed or exceeded the limit.
pub async fn read_request<M: prost::Message + Default>(req: Request<RequestBody>) -> Result<TypedRequest<M>> {
    let (parts, body) = req.into_parts();
    let raw = Limited::new(body, MAX_MESSAGE + 5)
        .collect()
        .await
        .map_err(|e| Error::BadMessage(format!("reading the request: {e}")))?
        .to_bytes();
    let message = grpc::decode_frame(raw.clone(), MAX_MESSAGE);
    Ok(TypedRequest { parts, raw, message })
}

/// The runtime's answer to a typed forward.
#[derive(Debug)]
pub enum Answer<M> {
    /// A successful answer, decoded.
    Ok {
        /// Status line and response metadata.
        parts: response::Parts,
        /// The message.
        message: M,
        /// The trailers (`grpc-status: 0` and any trailing metadata).
        trailers: HeaderMap,
        /// The framed message exactly as the runtime sent it.
        raw: Bytes,
    },
    /// Anything else (an error status, or an answer that does not decode), to be
    /// passed back to the caller exactly as the runtime sent it.
    Passthrough(Response<ResponseBody>),
}

impl<M: prost::Message> Answer<M> {
    /// The response for the caller, with `message` encoded again (as a handler may
    /// have changed it).
    pub fn into_response(self) -> Response<ResponseBody> {
        match self {
            Answer::Ok { parts, message, trailers, .. } => {
                Response::from_parts(parts, ResponseBody::full(grpc::encode_frame(&message), trailers))
            }
            Answer::Passthrough(resp) => resp,
        }
    }

    /// The response for the caller with the runtime's message as it came, for a
    /// handler that only read it: no encoding again.
    pub fn unchanged(self) -> Response<ResponseBody> {
        match self {
            Answer::Ok { parts, trailers, raw, .. } => {
                Response::from_parts(parts, ResponseBody::full(raw, trailers))
            }
            Answer::Passthrough(resp) => resp,
        }
    }
}

/// Forwards `body` (a framed message: re-encoded by the handler, or the caller's raw
/// bytes) with the caller's `parts`, and reads the answer.
///
/// # Errors
/// The runtime is unreachable or the deadline passed (see [`Proxy::forward`]).
pub async fn forward<M: prost::Message + Default>(
    proxy: &Proxy,
    mut parts: request::Parts,
    body: Bytes,
) -> Result<Answer<M>> {
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let deadline = grpc::deadline(&parts.headers);
    let req = Request::from_parts(parts, Either::Right(Full::new(body)));
    let resp = proxy.forward(req, deadline).await?;
    if grpc::status_code(resp.headers()).is_some() {
        return Ok(Answer::Passthrough(resp.map(ResponseBody::upstream)));
    }
    let (parts, body) = resp.into_parts();
    let collected = Limited::new(ResponseBody::upstream(body), MAX_MESSAGE + 5)
        .collect()
        .await
        .map_err(|e| Error::BadMessage(format!("reading the runtime's answer: {e}")))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let data = collected.to_bytes();
    let ok = grpc::status_code(&trailers) == Some(tonic::Code::Ok);
    match (ok, grpc::decode_frame::<M>(data.clone(), MAX_MESSAGE)) {
        (true, Ok(message)) => Ok(Answer::Ok { parts, message, trailers, raw: data }),
        _ => Ok(Answer::Passthrough(Response::from_parts(parts, ResponseBody::full(data, trailers)))),
    }
}
