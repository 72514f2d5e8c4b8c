//! The control API (`stevedore.control.v1.Control`) on a socket of its own, mode 0600:
//! only root (the node agent) reaches it. `PullImage` puts the pull on the same
//! single-flight table as kubelet's CRI pulls and streams its progress.

use std::{path::PathBuf, pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt as _};
use prost::Message as _;
use stevedore_proto::{
    control::{
        ContainerEvent, PullImageProgress, PullImageRequest, RecreateContainerRequest,
        RecreateContainerResponse, WatchContainerEventsRequest,
        control_server::{Control, ControlServer},
    },
    cri,
};
use tokio::{net::UnixListener, sync::mpsc};
use tokio_stream::wrappers::{
    BroadcastStream, ReceiverStream, UnixListenerStream, errors::BroadcastStreamRecvError,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::{
    containers::{Containers, recreate},
    error::Result,
    proxy::Proxy,
    pulls::{Key, Origin, Outcome, Progress, Pulls},
};

/// The control socket's mode: root only.
pub const SOCKET_MODE: u32 = 0o600;

/// The control API's service.
#[derive(Debug, Clone)]
pub struct ControlService {
    pulls: Arc<Pulls>,
    proxy: Proxy,
    containers: Arc<Containers>,
}

impl ControlService {
    /// A service putting pulls on `pulls`, sent through `proxy`, and recreating
    /// `containers`.
    pub fn new(pulls: Arc<Pulls>, proxy: Proxy, containers: Arc<Containers>) -> Self {
        Self { pulls, proxy, containers }
    }
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<PullImageProgress, Status>> + Send>>;

fn message(p: Progress, joined: bool) -> PullImageProgress {
    PullImageProgress {
        bytes_done: p.bytes_done,
        bytes_total: p.bytes_total,
        percent: p.percent,
        image_ref: String::new(),
        joined,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<ContainerEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Control for ControlService {
    type PullImageStream = ProgressStream;
    type WatchContainerEventsStream = EventStream;

    async fn recreate_container(
        &self,
        request: Request<RecreateContainerRequest>,
    ) -> std::result::Result<Response<RecreateContainerResponse>, Status> {
        let r = request.into_inner();
        let outcome = self
            .containers
            .recreate(recreate::Request {
                container_id: r.container_id,
                grace_period_seconds: r.grace_period_seconds,
                env_overrides: r.env_overrides,
                image: Some(r.image).filter(|i| !i.is_empty()),
            })
            .await?;
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Ok(Response::new(RecreateContainerResponse {
            container_id: outcome.container_id,
            recorded: outcome.recorded,
            attempt: outcome.attempt,
            stop_micros: micros(outcome.stop),
            create_micros: micros(outcome.create),
            start_micros: micros(outcome.start),
        }))
    }

    async fn watch_container_events(
        &self,
        request: Request<WatchContainerEventsRequest>,
    ) -> std::result::Result<Response<Self::WatchContainerEventsStream>, Status> {
        let pod_uid = request.into_inner().pod_uid;
        let events = BroadcastStream::new(self.containers.subscribe()).filter_map(move |e| {
            let keep = match e {
                Ok(event) => (pod_uid.is_empty() || event.pod_uid == pod_uid).then_some(Ok(event)),
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    warn!(missed = n, "a container-events watcher fell behind; events were dropped");
                    None
                }
            };
            std::future::ready(keep)
        });
        Ok(Response::new(Box::pin(events) as EventStream))
    }

    async fn pull_image(
        &self,
        request: Request<PullImageRequest>,
    ) -> std::result::Result<Response<Self::PullImageStream>, Status> {
        let req =
            cri::PullImageRequest::decode(request.into_inner().cri_request.as_slice()).map_err(|e| {
                Status::invalid_argument(format!("cri_request: not a runtime.v1.PullImageRequest: {e}"))
            })?;
        if req.image.as_ref().is_none_or(|i| i.image.is_empty()) {
            return Err(Status::invalid_argument("cri_request.image.image: must name an image"));
        }
        let runtime = Arc::new(self.proxy.clone());
        let mut ticket = self.pulls.join(runtime, Key::of(&req), Origin::Control(Box::new(req)));
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut last: Progress;
            // the flight joined, then (once, if that one failed) the caller's own
            let outcome = loop {
                let joined = ticket.joined();
                let mut progress = ticket.progress();
                last = *progress.borrow_and_update();
                if tx.send(Ok(message(last, joined))).await.is_err() {
                    return;
                }
                let outcome = {
                    let mut watching = true;
                    let outcome = ticket.flight_outcome();
                    tokio::pin!(outcome);
                    loop {
                        tokio::select! {
                            outcome = &mut outcome => break outcome,
                            changed = progress.changed(), if watching => {
                                if changed.is_err() {
                                    watching = false;
                                    continue;
                                }
                                last = *progress.borrow_and_update();
                                if tx.send(Ok(message(last, joined))).await.is_err() {
                                    return;
                                }
                            }
                            () = tx.closed() => return,
                        }
                    }
                };
                if !ticket.retry(&outcome) {
                    break outcome;
                }
            };
            let joined = ticket.joined();
            let last_message = match outcome {
                Outcome::Answer(answer) => answer.image_ref().map(|image_ref| PullImageProgress {
                    bytes_done: last.bytes_total.max(last.bytes_done),
                    bytes_total: last.bytes_total,
                    percent: 100,
                    image_ref,
                    joined,
                }),
                Outcome::Failed(status) => Err(status),
            };
            let _ = tx.send(last_message).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx)) as ProgressStream))
    }
}

/// Serves the control API on `listener` until `shutdown`, then removes the socket.
pub async fn serve(
    service: ControlService,
    listener: UnixListener,
    path: PathBuf,
    shutdown: CancellationToken,
) {
    info!(socket = %path.display(), "serving the control API");
    let result = tonic::transport::Server::builder()
        .add_service(ControlServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown.cancelled())
        .await;
    if let Err(error) = result {
        warn!(%error, "the control API server failed");
    }
    if let Err(error) = std::fs::remove_file(&path) {
        warn!(%error, socket = %path.display(), "removing the control socket");
    }
}

/// Binds the control socket (see [`crate::server::bind`]), mode 0600.
///
/// # Errors
/// As [`crate::server::bind`].
pub async fn bind(path: &std::path::Path) -> Result<UnixListener> {
    crate::server::bind_with_mode(path, SOCKET_MODE).await
}
