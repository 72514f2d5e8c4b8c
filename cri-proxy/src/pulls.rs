//! Single-flight image pulls. Every `PullImage` the proxy sees (kubelet's, through
//! CRI, and the agent's, through the control API) becomes a ticket on a flight: a
//! pull of the same image with the same credentials already under way is joined, not
//! started again, so the registry and the runtime see one pull.
//!
//! A flight runs on its own task, not on its first caller's: a caller that goes away
//! (its deadline passed, its pod was deleted) leaves the others waiting, and a caller's
//! deadline bounds only its own wait. The flight ends early only when its last ticket
//! is dropped, as a pull nobody waits for is cancelled when called directly. A flight
//! that has finished is never joined: a later caller starts its own pull and never
//! inherits an earlier error.

pub mod handler;
pub mod progress;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use stevedore_proto::cri::{PullImageRequest, PullImageResponse};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use crate::{body::ResponseBody, grpc, metrics::Metrics, proxy::Proxy, typed::MAX_MESSAGE};

pub use progress::{Progress, ProgressSource};

/// The full gRPC path of CRI's `PullImage`.
pub const PULL_IMAGE_PATH: &str = "/runtime.v1.ImageService/PullImage";

/// What makes two pulls the same pull: the image as asked for (name, annotations,
/// runtime handler) and the credentials, all of them. Pod sandbox settings are not in
/// the key: they differ per pod, and containerd reads from them only the runtime
/// handler, which kubelet also sets on the image spec.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    image: String,
    runtime_handler: String,
    annotations: Vec<(String, String)>,
    auth: Option<[String; 6]>,
}

impl Key {
    /// The key of `req`.
    pub fn of(req: &PullImageRequest) -> Self {
        let spec = req.image.clone().unwrap_or_default();
        let mut annotations: Vec<_> = spec.annotations.into_iter().collect();
        annotations.sort();
        let auth = req.auth.as_ref().map(|a| {
            [
                a.username.clone(),
                a.password.clone(),
                a.auth.clone(),
                a.server_address.clone(),
                a.identity_token.clone(),
                a.registry_token.clone(),
            ]
        });
        Self { image: spec.image, runtime_handler: spec.runtime_handler, annotations, auth }
    }

    /// The image asked for.
    pub fn image(&self) -> &str {
        &self.image
    }
}

/// How a flight ended: the runtime's whole answer, to be given to every caller.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The runtime answered (any status).
    Answer(Box<Answer>),
    /// The runtime could not be reached, or the answer could not be read.
    Failed(tonic::Status),
}

/// The runtime's answer to a pull, kept whole so every caller gets it.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The HTTP status of the response (200 for gRPC).
    pub status: StatusCode,
    /// The response headers (the gRPC status for a trailers-only answer).
    pub headers: HeaderMap,
    /// The framed message, empty for a trailers-only answer.
    pub data: Bytes,
    /// The trailers.
    pub trailers: HeaderMap,
}

impl Answer {
    /// The gRPC status of the answer.
    pub fn code(&self) -> tonic::Code {
        grpc::status_code(&self.headers)
            .or_else(|| grpc::status_code(&self.trailers))
            .unwrap_or(tonic::Code::Unknown)
    }

    /// The answer as a `Status` (for a failed pull) or the pulled image's id.
    pub fn image_ref(&self) -> Result<String, tonic::Status> {
        let code = self.code();
        if code != tonic::Code::Ok {
            let source =
                if grpc::status_code(&self.headers).is_some() { &self.headers } else { &self.trailers };
            return Err(
                tonic::Status::from_header_map(source).unwrap_or_else(|| tonic::Status::new(code, ""))
            );
        }
        grpc::decode_frame::<PullImageResponse>(self.data.clone(), MAX_MESSAGE).map(|r| r.image_ref).map_err(
            |e| tonic::Status::internal(format!("the runtime's PullImage answer does not decode: {e}")),
        )
    }

    /// The answer as an HTTP response for a CRI caller.
    pub fn response(&self) -> http::Response<ResponseBody> {
        let mut resp = http::Response::new(if self.data.is_empty() && self.trailers.is_empty() {
            ResponseBody::default()
        } else {
            ResponseBody::full(self.data.clone(), self.trailers.clone())
        });
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        resp
    }
}

#[derive(Debug)]
struct Flight {
    key: Key,
    outcome: watch::Receiver<Option<Outcome>>,
    progress: watch::Sender<Progress>,
    cancel: CancellationToken,
    /// Tickets held; guarded by the table's lock.
    waiters: std::sync::atomic::AtomicUsize,
    /// Whether a progress watcher runs for this flight.
    watched: std::sync::atomic::AtomicBool,
}

/// The table of flights under way.
#[derive(Debug)]
pub struct Pulls {
    flights: Mutex<HashMap<Key, Arc<Flight>>>,
    progress: Option<ProgressSource>,
    metrics: Arc<Metrics>,
}

/// A caller's place on a flight; dropping it leaves the flight (the last one to leave
/// cancels it).
#[derive(Debug)]
pub struct Ticket {
    pulls: Arc<Pulls>,
    flight: Arc<Flight>,
    joined: bool,
}

/// How the flight's request is made: the first CRI caller's own call (its metadata and
/// bytes, so the runtime sees what kubelet sent), or one built here for the control
/// API.
#[derive(Debug)]
pub enum Origin {
    /// A CRI caller's request head and framed message.
    Cri(Box<http::request::Parts>, Bytes),
    /// A control API caller's request.
    Control(Box<PullImageRequest>),
}

impl Pulls {
    /// A table whose flights report progress from `progress` (containerd's content
    /// store), or only 0 and 100 without one.
    pub fn new(progress: Option<ProgressSource>, metrics: Arc<Metrics>) -> Self {
        Self { flights: Mutex::default(), progress, metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Flight>>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the flight for `key`, or starts one from `origin` through `proxy`.
    pub fn join(self: &Arc<Self>, proxy: &Proxy, key: Key, origin: Origin) -> Ticket {
        use std::sync::atomic::Ordering::Relaxed;
        let mut flights = self.lock();
        if let Some(flight) = flights.get(&key) {
            flight.waiters.fetch_add(1, Relaxed);
            self.metrics.pull(true);
            debug!(image = %key.image, "joined a pull under way");
            return Ticket { pulls: self.clone(), flight: flight.clone(), joined: true };
        }
        let (outcome_tx, outcome) = watch::channel(None);
        let flight = Arc::new(Flight {
            key: key.clone(),
            outcome,
            progress: watch::channel(Progress::default()).0,
            cancel: CancellationToken::new(),
            waiters: 1.into(),
            watched: false.into(),
        });
        flights.insert(key.clone(), flight.clone());
        drop(flights);
        self.metrics.pull(false);
        let task = run_flight(self.clone(), proxy.clone(), flight.clone(), origin, outcome_tx);
        tokio::spawn(task.instrument(info_span!("pull", image = %key.image)));
        Ticket { pulls: self.clone(), flight, joined: false }
    }

    fn leave(&self, flight: &Arc<Flight>) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut flights = self.lock();
        if flight.waiters.fetch_sub(1, Relaxed) == 1 && flight.outcome.borrow().is_none() {
            if flights.get(&flight.key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
                flights.remove(&flight.key);
            }
            debug!(image = %flight.key.image, "nobody waits for the pull any more; cancelling it");
            flight.cancel.cancel();
        }
    }

    /// Ends `flight`: no one joins it from now on, then everyone waiting learns how it
    /// ended.
    fn finish(&self, flight: &Arc<Flight>, tx: &watch::Sender<Option<Outcome>>, outcome: Outcome) {
        let mut flights = self.lock();
        if flights.get(&flight.key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(&flight.key);
        }
        drop(flights);
        let _ = tx.send(Some(outcome));
    }
}

impl Ticket {
    /// Whether this ticket joined a flight already under way.
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// How the flight ended.
    pub async fn outcome(&self) -> Outcome {
        let mut rx = self.flight.outcome.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(o) => o
                .clone()
                .unwrap_or_else(|| Outcome::Failed(tonic::Status::internal("pull ended without an answer"))),
            Err(_) => Outcome::Failed(tonic::Status::cancelled("the pull was cancelled")),
        }
    }

    /// The flight's progress, watched from the runtime's content store from the first
    /// call on (polling stops when the flight ends).
    pub fn progress(&self) -> watch::Receiver<Progress> {
        use std::sync::atomic::Ordering::Relaxed;
        let rx = self.flight.progress.subscribe();
        let start = !self.flight.watched.swap(true, Relaxed);
        if start && let Some(source) = self.pulls.progress.clone() {
            let flight = self.flight.clone();
            let done = flight.cancel.child_token();
            let mut outcome = flight.outcome.clone();
            tokio::spawn(
                async move {
                    tokio::select! {
                        () = source.watch(flight.key.image(), &flight.progress) => {}
                        _ = outcome.wait_for(Option::is_some) => {}
                        () = done.cancelled() => {}
                    }
                }
                .instrument(info_span!("pull_progress")),
            );
        }
        rx
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pulls.leave(&self.flight);
    }
}

async fn run_flight(
    pulls: Arc<Pulls>,
    proxy: Proxy,
    flight: Arc<Flight>,
    origin: Origin,
    tx: watch::Sender<Option<Outcome>>,
) {
    let pull = pull(&proxy, origin);
    let outcome = tokio::select! {
        outcome = pull => outcome,
        () = flight.cancel.cancelled() => return,
    };
    pulls.finish(&flight, &tx, outcome);
}

/// Sends the pull to the runtime with no deadline of its own (each caller keeps its
/// own) and reads the whole answer.
async fn pull(proxy: &Proxy, origin: Origin) -> Outcome {
    let (mut parts, body) = match origin {
        Origin::Cri(parts, body) => (*parts, body),
        Origin::Control(req) => {
            let (mut parts, ()) = Request::post(format!("http://localhost{PULL_IMAGE_PATH}"))
                .body(())
                .expect("a static request head is valid")
                .into_parts();
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
            parts.headers.insert(header::USER_AGENT, HeaderValue::from_static("stevedore-cri-proxy"));
            (parts, grpc::encode_frame(req.as_ref()))
        }
    };
    parts.headers.remove(grpc::TIMEOUT_HEADER);
    parts.headers.remove(header::CONTENT_LENGTH);
    let req = Request::from_parts(parts, Either::Right(Full::new(body)));
    let resp = match proxy.forward(req, None).await {
        Ok(resp) => resp,
        Err(error) => return Outcome::Failed(error.into()),
    };
    let (parts, body) = resp.into_parts();
    let collected = match Limited::new(ResponseBody::upstream(body), MAX_MESSAGE + 5).collect().await {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Failed(tonic::Status::unavailable(format!("reading the runtime's answer: {e}")));
        }
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    Outcome::Answer(Box::new(Answer {
        status: parts.status,
        headers: parts.headers,
        data: collected.to_bytes(),
        trailers,
    }))
}
