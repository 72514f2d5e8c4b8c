//! Watches: initial events, history replay, live events, selectors, bookmarks, timeouts.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{
    broadcast::error::{RecvError, TryRecvError},
    mpsc,
};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument, debug, info_span};

use super::{
    Status,
    handlers::{Selectors, at_version, to_served},
    negotiate::Format,
    protobuf,
    resources::ResourceInfo,
    server::{Body, Request, Shared},
    store::{Change, EventType, FEED_FIELDS, Feed, Retained, ns_of},
    table::Printer,
};

type Tx = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

struct Watcher {
    shared: Arc<Shared>,
    res: ResourceInfo,
    /// `res`'s storage key, made once: every change on the server is compared with it.
    key: String,
    ns: Option<String>,
    sel: Selectors,
    tx: Tx,
    /// Changes when every watch is to end ([`super::ApiServer::expire_watches`]).
    generation: tokio::sync::watch::Receiver<u64>,
    /// How events are written: JSON lines, protobuf frames, or JSON lines of Tables.
    format: Format,
    /// The Table printer, for [`Format::Table`].
    printer: Option<Printer>,
    /// Who watches (events are counted per user).
    user: String,
}

impl Watcher {
    async fn send(&self, ty: &str, object: Value) -> bool {
        let object = match (&self.printer, self.format, ty) {
            (Some(p), Format::Table { beta }, "ADDED" | "MODIFIED" | "DELETED") => {
                let rv = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
                p.table(&[object], rv, beta)
            }
            (_, Format::Metadata { beta }, "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK") => {
                super::negotiate::partial_metadata(object, beta)
            }
            _ => object,
        };
        let frame = match self.format {
            Format::Protobuf => match protobuf::watch_frame(ty, &object) {
                Ok(f) => f,
                Err(_) => return false,
            },
            _ => {
                let mut line = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
                line.push(b'\n');
                line
            }
        };
        self.send_frame(ty, frame).await
    }

    /// Writes one event's frame to the stream, counting ADDED, MODIFIED and DELETED.
    async fn send_frame(&self, ty: &str, frame: Vec<u8>) -> bool {
        let sent = self.tx.send(Ok(Frame::data(Bytes::from(frame)))).await.is_ok();
        if sent && matches!(ty, "ADDED" | "MODIFIED" | "DELETED") {
            let mut counts =
                self.shared.watch_events.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *counts.entry((self.user.clone(), self.key.clone())).or_default() += 1;
        }
        sent
    }

    /// Sends a change's object as it is stored: its JSON bytes written as they are
    /// when this watch takes plain JSON of the stored version (the usual case); else
    /// converted and serialised like any object. Five thousand nodes' watches cloned
    /// and serialised every pod they were sent.
    async fn send_current(&self, ty: EventType, c: &Change) -> bool {
        let served = at_version(&self.res, &c.object, &self.res.api_version());
        if !(matches!(self.format, Format::Json) && self.printer.is_none() && served) {
            return self.send_object(ty, Value::clone(&c.object)).await;
        }
        let ty = ty.as_str();
        let mut line = Vec::with_capacity(c.json.len() + ty.len() + 24);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(ty.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        line.extend_from_slice(&c.json);
        line.extend_from_slice(b"}\n");
        self.send_frame(ty, line).await
    }

    async fn send_object(&self, ty: EventType, object: Value) -> bool {
        match to_served(&self.shared, &self.res, vec![object]).await {
            Ok(mut v) => self.send(ty.as_str(), v.remove(0)).await,
            Err(s) => {
                self.send("ERROR", s.to_json()).await;
                false
            }
        }
    }

    /// Sends what a live change means to this watch; whether it goes on.
    async fn feed(&self, change: Result<Arc<Change>, RecvError>, last_rv: &mut u64) -> bool {
        match change {
            Ok(c) if c.rv <= *last_rv => true,
            Ok(c) => {
                *last_rv = c.rv;
                self.send_change(&c).await
            }
            Err(RecvError::Lagged(_)) => {
                self.send("ERROR", Status::expired("watch fell behind; too old resource version").to_json())
                    .await;
                false
            }
            Err(RecvError::Closed) => false,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta})
    }

    /// Sends the event this watcher sees for a change, if any; whether it goes on.
    async fn send_change(&self, c: &Change) -> bool {
        match self.translate(c) {
            None => true,
            Some(Seen::Current(ty)) => self.send_current(ty, c).await,
            Some(Seen::Left) => {
                let mut prev = c.prev.as_deref().cloned().unwrap_or_default();
                prev["metadata"]["resourceVersion"] = json!(c.rv.to_string());
                self.send_object(EventType::Deleted, prev).await
            }
        }
    }

    /// The event this watcher sees for a change, as the real server's cacher decides it:
    /// an object entering the selection is ADDED, one leaving it is DELETED (with its
    /// previous content and the new resourceVersion).
    fn translate(&self, c: &Change) -> Option<Seen> {
        if c.key != self.key {
            return None;
        }
        let in_ns = |o: &Value| self.ns.as_deref().is_none_or(|n| ns_of(o) == n);
        let passes = |o: &Value| in_ns(o) && self.sel.matches(o);
        let cur = c.kind != EventType::Deleted && passes(&c.object);
        let old = c.prev.as_deref().is_some_and(passes);
        match (cur, old) {
            (true, false) => Some(Seen::Current(EventType::Added)),
            (true, true) => Some(Seen::Current(EventType::Modified)),
            (false, true) => Some(Seen::Left),
            (false, false) => None,
        }
    }
}

/// What a watcher sees of a change.
enum Seen {
    /// The changed object, as this event type.
    Current(EventType),
    /// The object left the selection (or was deleted): DELETED, with its previous
    /// content.
    Left,
}

/// Serves `?watch=true`.
///
/// # Errors
/// 400 for bad selectors, 422 for `sendInitialEvents` without its companions.
pub async fn watch(
    shared: &Arc<Shared>,
    res: ResourceInfo,
    req: Request,
    format: Format,
) -> Result<Response<Body>, Status> {
    let sel = Selectors::parse(&res, &req)?;
    let q = &req.query;
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
    let bookmarks = q.flag("allowWatchBookmarks");
    if send_initial.is_some() && (q.get("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks) {
        return Err(Status::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![Status::invalid_value(
                "sendInitialEvents",
                &json!(send_initial),
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled \
                 and resourceVersionMatch is NotOlderThan and allowWatchBookmarks is true",
            )],
        ));
    }
    let rv = q.get("resourceVersion").unwrap_or("0");
    let timeout = q.get("timeoutSeconds").and_then(|t| t.parse().ok()).map(Duration::from_secs);
    let timeout = match (timeout, shared.max_watch_duration) {
        (Some(t), Some(max)) => Some(t.min(max)),
        (t, max) => t.or(max),
    };
    let ns = req.target.namespace.clone().filter(|_| res.namespaced);
    let (tx, rx) = mpsc::channel(256);
    // Subscribed before the store is read: an expiry in between ends this watch too.
    let generation = shared.watch_generation.subscribe();
    let key = res.key();
    let printer = matches!(format, Format::Table { .. }).then(|| Printer::for_request(shared, &res, &req));
    let user = req.user.username.clone();
    let w = Watcher { shared: shared.clone(), res, key, ns, sel, tx, generation, format, printer, user };

    // Decide the starting events and subscribe under one lock, so nothing falls between.
    let (initial, replay, live, start_rv) = {
        let mut state = shared.lock();
        let follow = FEED_FIELDS.iter().find_map(|p| w.sel.exact_field(p).map(|v| Feed::Field(p, v)));
        let follow = follow.unwrap_or(Feed::All);
        let live = state.subscribe(&w.key, follow);
        let start_rv = state.rv();
        let synthetic = send_initial == Some(true) || (send_initial.is_none() && matches!(rv, "0" | ""));
        if synthetic {
            let objs: Vec<Value> =
                state.list(&w.res.key(), w.ns.as_deref()).filter(|o| w.sel.matches(o)).cloned().collect();
            (objs, Ok(Vec::new()), live, start_rv)
        } else {
            let n: u64 =
                rv.parse().map_err(|_| Status::bad_request(format!("invalid resource version: {rv}")))?;
            (Vec::new(), state.since(&w.res.key(), n, follow), live, start_rv)
        }
    };
    let span = info_span!("watch", resource = %w.res.key(), ns = w.ns.as_deref().unwrap_or(""));
    tokio::spawn(
        async move {
            run(w, initial, replay, live, start_rv, send_initial == Some(true), bookmarks, timeout).await;
            debug!("watch ended");
        }
        .instrument(span),
    );
    let body = StreamBody::new(ReceiverStream::new(rx)).boxed();
    Response::builder()
        .status(200)
        .header(
            header::CONTENT_TYPE,
            match format {
                Format::Protobuf => "application/vnd.kubernetes.protobuf;stream=watch",
                _ => "application/json",
            },
        )
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(body)
        .map_err(|e| Status::internal(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    w: Watcher,
    initial: Vec<Value>,
    replay: Result<Vec<Arc<Retained>>, Status>,
    mut live: tokio::sync::broadcast::Receiver<Arc<Change>>,
    start_rv: u64,
    initial_end_bookmark: bool,
    bookmarks: bool,
    timeout: Option<Duration>,
) {
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600 * 24)));
    tokio::pin!(deadline);
    // A clone keeps the version seen at subscription.
    let mut generation = w.generation.clone();
    for o in initial {
        if !w.send_object(EventType::Added, o).await {
            return;
        }
    }
    if initial_end_bookmark && !w.send("BOOKMARK", w.bookmark(start_rv, true)).await {
        return;
    }
    let mut last_rv = start_rv;
    match replay {
        Err(s) => {
            w.send("ERROR", s.to_json()).await;
            return;
        }
        Ok(changes) => {
            for r in changes {
                last_rv = last_rv.max(r.rv);
                if !w.send_change(&r.change(&w.key)).await {
                    return;
                }
            }
        }
    }
    let mut tick = tokio::time::interval(w.shared.bookmark_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            () = &mut deadline => return,
            () = w.shared.shutdown.cancelled() => return,
            _ = generation.changed() => return,
            () = w.tx.closed() => return,
            _ = tick.tick(), if bookmarks => {
                // A bookmark carries the store's version, as kube-apiserver's do, not
                // the last change this watch was fed: a watch of one node's pods
                // resumed from that would replay every pod change since. Every change
                // up to that version is in the feed already; deliver them first.
                let now = w.shared.lock().rv();
                loop {
                    let c = match live.try_recv() {
                        Ok(c) => Ok(c),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Err(TryRecvError::Closed) => Err(RecvError::Closed),
                    };
                    if !w.feed(c, &mut last_rv).await {
                        return;
                    }
                }
                last_rv = last_rv.max(now);
                if !w.send("BOOKMARK", w.bookmark(last_rv, false)).await {
                    return;
                }
            }
            c = live.recv() => if !w.feed(c, &mut last_rv).await {
                return;
            },
        }
    }
}
