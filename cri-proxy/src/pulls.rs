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
//!
//! A caller that joined a flight which then fails does not take that failure as its
//! own (it may be a registry's passing error, or another caller's request): it keeps
//! its own request and runs it once, on a flight of its own or joined with the other
//! callers retrying the same key, and gets the answer to that. The retry is never
//! retried: a caller makes at most two flights' worth of waiting, the first caller
//! (whose request the failed flight was) gets the runtime's answer at once.

pub mod handler;
pub mod progress;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use stevedore_proto::cri::{PullImageRequest, PullImageResponse};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

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

impl Outcome {
    /// Whether the image was pulled (the runtime answered with status OK).
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Answer(answer) if answer.code() == tonic::Code::Ok)
    }
}

/// Where a flight's pull goes: the runtime behind the proxy ([`Proxy`]), or a fake in
/// tests.
pub trait PullRuntime: std::fmt::Debug + Send + Sync + 'static {
    /// Sends the pull made from `origin` with no deadline of its own and reads the
    /// whole answer.
    fn pull(&self, origin: Origin) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>>;
}

impl PullRuntime for Proxy {
    fn pull(&self, origin: Origin) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
        Box::pin(pull(self, origin))
    }
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
    /// A joined caller's own request, run once if the flight it joined fails.
    own: Option<(Arc<dyn PullRuntime>, Origin)>,
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

    /// Joins the flight for `key`, or starts one from `origin` through `runtime`. A
    /// ticket that joined keeps `origin`, to run it itself should the flight fail.
    pub fn join(self: &Arc<Self>, runtime: Arc<dyn PullRuntime>, key: Key, origin: Origin) -> Ticket {
        self.enter(runtime, key, origin, true)
    }

    /// [`Pulls::join`], keeping a joining caller's `origin` for one retry only when
    /// `may_retry`.
    fn enter(
        self: &Arc<Self>,
        runtime: Arc<dyn PullRuntime>,
        key: Key,
        origin: Origin,
        may_retry: bool,
    ) -> Ticket {
        use std::sync::atomic::Ordering::Relaxed;
        let mut flights = self.lock();
        if let Some(flight) = flights.get(&key) {
            flight.waiters.fetch_add(1, Relaxed);
            self.metrics.pull(true);
            debug!(image = %key.image, "joined a pull under way");
            let own = may_retry.then_some((runtime, origin));
            return Ticket { pulls: self.clone(), flight: flight.clone(), joined: true, own };
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
        let task = run_flight(self.clone(), runtime, flight.clone(), origin, outcome_tx);
        tokio::spawn(task.instrument(info_span!("pull", image = %key.image)));
        Ticket { pulls: self.clone(), flight, joined: false, own: None }
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

    /// The caller's answer: how the flight ended, or, when the flight this ticket
    /// joined failed, how the caller's own pull ended (see [`Ticket::retry`]).
    pub async fn outcome(&mut self) -> Outcome {
        let first = self.flight_outcome().await;
        if !self.retry(&first) {
            return first;
        }
        self.flight_outcome().await
    }

    /// When `outcome` (the current flight's) is a failure and this ticket joined
    /// someone else's flight, moves the ticket onto a flight of the caller's own
    /// request (started now, or joined with other callers retrying the same key) and
    /// says so. Once per ticket: a retried ticket is never retried again.
    pub fn retry(&mut self, outcome: &Outcome) -> bool {
        if outcome.succeeded() {
            return false;
        }
        let Some((runtime, origin)) = self.own.take() else {
            return false;
        };
        info!(image = %self.flight.key.image, "the pull this caller joined failed; running the caller's own");
        let next = self.pulls.enter(runtime, self.flight.key.clone(), origin, false);
        // dropping the old ticket leaves the failed flight
        *self = next;
        true
    }

    /// How the flight this ticket is on now ended.
    pub async fn flight_outcome(&self) -> Outcome {
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
    runtime: Arc<dyn PullRuntime>,
    flight: Arc<Flight>,
    origin: Origin,
    tx: watch::Sender<Option<Outcome>>,
) {
    let pull = runtime.pull(origin);
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

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, sync::atomic::AtomicUsize, time::Duration};

    use stevedore_proto::cri::ImageSpec;

    use super::*;

    /// A runtime whose pulls each take `delay` and answer from `script` in turn (OK
    /// once the script is used up), counting the pulls it was sent.
    #[derive(Debug)]
    struct FakeRuntime {
        delay: Duration,
        script: Mutex<VecDeque<tonic::Code>>,
        pulls: AtomicUsize,
    }

    impl FakeRuntime {
        fn new(script: impl IntoIterator<Item = tonic::Code>) -> Arc<Self> {
            Arc::new(Self {
                delay: Duration::from_secs(1),
                script: Mutex::new(script.into_iter().collect()),
                pulls: AtomicUsize::new(0),
            })
        }

        fn pulls(&self) -> usize {
            self.pulls.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl PullRuntime for FakeRuntime {
        fn pull(&self, origin: Origin) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
            self.pulls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Origin::Control(req) = origin else { panic!("the tests pull through the control API") };
            let image = req.image.unwrap_or_default().image;
            let code = self.script.lock().unwrap().pop_front().unwrap_or(tonic::Code::Ok);
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                match code {
                    tonic::Code::Ok => {
                        let mut headers = HeaderMap::new();
                        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                        let mut trailers = HeaderMap::new();
                        trailers.insert(grpc::STATUS_HEADER, HeaderValue::from_static("0"));
                        let data =
                            grpc::encode_frame(&PullImageResponse { image_ref: format!("id-of:{image}") });
                        Outcome::Answer(Box::new(Answer { status: StatusCode::OK, headers, data, trailers }))
                    }
                    tonic::Code::Unavailable => {
                        Outcome::Failed(tonic::Status::unavailable("the runtime went away"))
                    }
                    code => {
                        // a trailers-only answer, as containerd gives for a failed pull
                        let mut headers = HeaderMap::new();
                        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                        headers.insert(grpc::STATUS_HEADER, HeaderValue::from(code as i32));
                        headers.insert("grpc-message", HeaderValue::from_static("registry hiccup"));
                        Outcome::Answer(Box::new(Answer {
                            status: StatusCode::OK,
                            headers,
                            data: Bytes::new(),
                            trailers: HeaderMap::new(),
                        }))
                    }
                }
            })
        }
    }

    fn request(image: &str) -> (Key, Origin) {
        let req = PullImageRequest {
            image: Some(ImageSpec { image: image.to_owned(), ..Default::default() }),
            ..Default::default()
        };
        (Key::of(&req), Origin::Control(Box::new(req)))
    }

    fn join(pulls: &Arc<Pulls>, runtime: &Arc<FakeRuntime>, image: &str) -> Ticket {
        let (key, origin) = request(image);
        pulls.join(runtime.clone(), key, origin)
    }

    fn code(outcome: &Outcome) -> tonic::Code {
        match outcome {
            Outcome::Answer(answer) => answer.code(),
            Outcome::Failed(status) => status.code(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_joined_a_failed_pull_run_their_own_once_together() {
        let metrics = Arc::new(Metrics::default());
        let pulls = Arc::new(Pulls::new(None, metrics.clone()));
        let runtime = FakeRuntime::new([tonic::Code::Internal]);
        let mut first = join(&pulls, &runtime, "registry.test/app:1");
        let mut second = join(&pulls, &runtime, "registry.test/app:1");
        let mut third = join(&pulls, &runtime, "registry.test/app:1");
        assert!(!first.joined() && second.joined() && third.joined());
        let started = tokio::time::Instant::now();
        let (first, second, third) = tokio::join!(first.outcome(), second.outcome(), third.outcome());
        // the first caller's own request failed: that answer is its own
        assert_eq!(code(&first), tonic::Code::Internal);
        // the others ran their own request once, on one flight between them
        for outcome in [&second, &third] {
            let Outcome::Answer(answer) = outcome else { panic!("{outcome:?}") };
            assert_eq!(answer.image_ref().unwrap(), "id-of:registry.test/app:1");
        }
        assert_eq!(runtime.pulls(), 2);
        assert_eq!(metrics.pulls(), (2, 3), "two pulls started; two joined the first, one the retry");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(pulls.lock().is_empty(), "no flight is left behind");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_is_never_retried() {
        let pulls = Arc::new(Pulls::new(None, Arc::new(Metrics::default())));
        let runtime =
            FakeRuntime::new([tonic::Code::Unavailable, tonic::Code::NotFound, tonic::Code::Internal]);
        let mut first = join(&pulls, &runtime, "registry.test/app:2");
        let mut second = join(&pulls, &runtime, "registry.test/app:2");
        let (first, second) = tokio::join!(first.outcome(), second.outcome());
        assert_eq!(code(&first), tonic::Code::Unavailable);
        // the joined caller gets its own pull's failure, not the first caller's
        assert_eq!(code(&second), tonic::Code::NotFound);
        assert_eq!(runtime.pulls(), 2);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runtime.pulls(), 2, "nothing pulls again behind the callers' backs");
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_pull_answers_everyone_with_one_pull() {
        let pulls = Arc::new(Pulls::new(None, Arc::new(Metrics::default())));
        let runtime = FakeRuntime::new([]);
        let mut tickets: Vec<_> = (0..4).map(|_| join(&pulls, &runtime, "registry.test/app:3")).collect();
        for ticket in &mut tickets {
            assert!(ticket.outcome().await.succeeded());
        }
        assert_eq!(runtime.pulls(), 1);
        // a pull that has ended is not joined: a later caller pulls afresh
        assert!(join(&pulls, &runtime, "registry.test/app:3").outcome().await.succeeded());
        assert_eq!(runtime.pulls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retrying_caller_that_leaves_cancels_only_its_own_pull() {
        let pulls = Arc::new(Pulls::new(None, Arc::new(Metrics::default())));
        let runtime = FakeRuntime::new([tonic::Code::Internal]);
        let mut first = join(&pulls, &runtime, "registry.test/app:4");
        let mut second = join(&pulls, &runtime, "registry.test/app:4");
        assert_eq!(code(&first.outcome().await), tonic::Code::Internal);
        let waited = tokio::time::timeout(Duration::from_millis(500), second.outcome()).await;
        assert!(waited.is_err(), "the retry takes a second pull's time");
        assert_eq!(runtime.pulls(), 2);
        drop(second);
        tokio::task::yield_now().await;
        assert!(pulls.lock().is_empty(), "the retry nobody waits for is cancelled");
    }
}
