//! Typed handlers of kubelet's container calls: `CreateContainer` is recorded (and
//! waits for a recreate of the same container under way), `StartContainer` of a
//! container a recreate started is answered at once, and every success publishes a
//! lifecycle event; `RemoveContainer` drops the record.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use stevedore_proto::{
    control::container_event::Kind,
    cri::{
        CreateContainerRequest, CreateContainerResponse, RemoveContainerRequest, RemoveContainerResponse,
        StartContainerRequest, StartContainerResponse, StopContainerRequest, StopContainerResponse,
    },
};
use tracing::{debug, info};

use super::{Containers, Place};
use crate::{
    body::ResponseBody,
    grpc,
    proxy::{Handler, HandlerFuture, Handlers, Proxy},
    typed::{self, Answer},
};

/// `CreateContainer`'s path.
pub const CREATE_PATH: &str = "/runtime.v1.RuntimeService/CreateContainer";
/// `StartContainer`'s path.
pub const START_PATH: &str = "/runtime.v1.RuntimeService/StartContainer";
/// `StopContainer`'s path.
pub const STOP_PATH: &str = "/runtime.v1.RuntimeService/StopContainer";
/// `RemoveContainer`'s path.
pub const REMOVE_PATH: &str = "/runtime.v1.RuntimeService/RemoveContainer";

/// The handlers of the container calls, sharing `containers`.
pub fn handlers(containers: &Arc<Containers>) -> Handlers {
    let mut h = Handlers::new();
    h.insert(CREATE_PATH, Arc::new(Create(containers.clone())) as Arc<dyn Handler>);
    h.insert(START_PATH, Arc::new(Lifecycle::<StartContainerRequest>::new(containers)) as Arc<dyn Handler>);
    h.insert(STOP_PATH, Arc::new(Lifecycle::<StopContainerRequest>::new(containers)) as Arc<dyn Handler>);
    h.insert(REMOVE_PATH, Arc::new(Lifecycle::<RemoveContainerRequest>::new(containers)) as Arc<dyn Handler>);
    h
}

/// A successful unary answer made by the proxy itself.
pub fn ok_response(message: &impl prost::Message) -> Response<ResponseBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut resp = Response::new(ResponseBody::full(grpc::encode_frame(message), trailers));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    resp
}

async fn passthrough<M: prost::Message + Default>(
    proxy: &Proxy,
    parts: http::request::Parts,
    raw: Bytes,
) -> crate::Result<Response<ResponseBody>> {
    typed::forward::<M>(proxy, parts, raw).await.map(Answer::unchanged)
}

#[derive(Debug)]
struct Create(Arc<Containers>);

impl Handler for Create {
    fn call<'a>(&'a self, proxy: &'a Proxy, req: Request<crate::body::RequestBody>) -> HandlerFuture<'a> {
        Box::pin(async move {
            let typed::TypedRequest { parts, raw, message } =
                typed::read_request::<CreateContainerRequest>(req).await?;
            let Ok(request) = message else {
                return passthrough::<CreateContainerResponse>(proxy, parts, raw).await;
            };
            let key = super::store::PendingKey::of(&request);
            let place = Place { sandbox: key.sandbox.clone(), name: key.name.clone() };
            if let Some(produced) = self.0.adopt(&place, key.attempt).await {
                info!(
                    container.id = %produced.id,
                    container.name = %place.name,
                    attempt = produced.attempt,
                    "kubelet asked for the container a recreate made; it gets that one"
                );
                return Ok(ok_response(&CreateContainerResponse { container_id: produced.id }));
            }
            let began = Instant::now();
            // the message as it came: an uncompressed frame is its 5-byte header + bytes
            let pending = match raw.first() {
                Some(0) if raw.len() >= 5 => self.0.store().begin_encoded(&request, raw[5..].to_vec()),
                _ => self.0.store().begin(&request),
            };
            let answer = typed::forward::<CreateContainerResponse>(proxy, parts, raw).await;
            match &answer {
                Ok(Answer::Ok { message, .. }) => {
                    let record = self.0.store().created(pending, &message.container_id, request);
                    self.0.publish(
                        Kind::Created,
                        &message.container_id,
                        Some(&record),
                        began.elapsed(),
                        "kubelet",
                    );
                }
                _ => self.0.store().abandon(pending),
            }
            answer.map(Answer::unchanged)
        })
    }
}

/// A call on one container whose success is a lifecycle event.
trait ContainerCall: prost::Message + Default + 'static {
    /// Its answer.
    type Response: prost::Message + Default;
    /// The event its success is.
    const KIND: Kind;
    /// The container it is about.
    fn container_id(&self) -> &str;
}

impl ContainerCall for StartContainerRequest {
    type Response = StartContainerResponse;
    const KIND: Kind = Kind::Started;
    fn container_id(&self) -> &str {
        &self.container_id
    }
}

impl ContainerCall for StopContainerRequest {
    type Response = StopContainerResponse;
    const KIND: Kind = Kind::Stopped;
    fn container_id(&self) -> &str {
        &self.container_id
    }
}

impl ContainerCall for RemoveContainerRequest {
    type Response = RemoveContainerResponse;
    const KIND: Kind = Kind::Removed;
    fn container_id(&self) -> &str {
        &self.container_id
    }
}

/// `StartContainer`, `StopContainer` and `RemoveContainer`: forwarded, and each
/// success published. A start of a container a recreate started is answered at once;
/// a removal drops the container's record.
struct Lifecycle<R>(Arc<Containers>, std::marker::PhantomData<fn(R)>);

impl<R> Lifecycle<R> {
    fn new(containers: &Arc<Containers>) -> Self {
        Self(containers.clone(), std::marker::PhantomData)
    }
}

impl<R> std::fmt::Debug for Lifecycle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Lifecycle").field(&std::any::type_name::<R>()).finish()
    }
}

impl<R: ContainerCall> Handler for Lifecycle<R> {
    fn call<'a>(&'a self, proxy: &'a Proxy, req: Request<crate::body::RequestBody>) -> HandlerFuture<'a> {
        Box::pin(async move {
            let typed::TypedRequest { parts, raw, message } = typed::read_request::<R>(req).await?;
            let Ok(request) = message else {
                return passthrough::<R::Response>(proxy, parts, raw).await;
            };
            let id = request.container_id();
            if R::KIND == Kind::Started && self.0.take_started(id) {
                debug!(container.id = %id, "already started by a recreate");
                return Ok(ok_response(&R::Response::default()));
            }
            let began = Instant::now();
            let answer = typed::forward::<R::Response>(proxy, parts, raw).await;
            if let Ok(Answer::Ok { .. }) = &answer {
                let record = if R::KIND == Kind::Removed {
                    self.0.forget(id);
                    self.0.store().remove(id)
                } else {
                    self.0.store().get(id)
                };
                self.0.publish(R::KIND, id, record.as_deref(), began.elapsed(), "kubelet");
            }
            answer.map(Answer::unchanged)
        })
    }
}
