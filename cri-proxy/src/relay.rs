//! The forwarding path: HTTP/2 frames relayed between the caller's connection and a
//! runtime connection of its own, with only the streams of typed paths terminated.
//!
//! Terminating HTTP/2 on both sides (a server for the caller, a client for the
//! runtime) cost about 100 µs of CPU per call, most of the proxy's hop. Here each
//! caller connection gets its own connection to the runtime, opened when the caller
//! connects, and frames cross as they came: stream ids, settings, pings and their
//! acks, window updates and the runtime's header blocks are the peers' own, so the
//! flow control and HPACK state of each side follow the other's.
//!
//! The proxy reads every caller header block (with the caller's HPACK state) to route
//! it on its `:path`, and the runtime's blocks to count calls for the metrics. A
//! stream whose path has a typed handler is diverted: its request is collected and
//! served by the handler (which reaches the runtime through [`crate::upstream`]), and
//! its answer is written to the caller by the proxy. For that:
//! - Header blocks the proxy writes to the caller are HPACK literals that never touch
//!   the caller's dynamic table, which stays the runtime's.
//! - Once a caller block has not reached the runtime as it came (a diverted stream),
//!   the runtime's table no longer follows the caller's: every later block is written
//!   again as such literals.
//! - The caller's data on a diverted stream is handed back to it at once as window
//!   updates. The answer's data counts against the caller's connection window, which
//!   it shares with the runtime: the proxy keeps that window as the caller sees it,
//!   holds (or splits) the runtime's data that would exceed it, and keeps back from
//!   the caller's window updates what its own data used, before passing them on.
//!
//! A runtime connection that ends ends the calls on it with `UNAVAILABLE`, as the
//! terminating path does, and the caller is sent `GOAWAY`: it reconnects, and its
//! calls go to a fresh runtime connection (or, while the runtime is down, to the
//! terminating path, which answers them).

use std::{
    collections::{HashMap, VecDeque},
    future::poll_fn,
    io,
    path::Path,
    pin::Pin,
    task::Poll,
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::{HeaderMap, Method, Request, Uri, request};
use http_body_util::{BodyExt, Either, Full};
use tokio::time::sleep_until;
use tokio::{
    io::{AsyncRead, AsyncWriteExt, ReadBuf},
    sync::mpsc,
    task::AbortHandle,
};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tracing::debug;

use crate::{
    lean::LeanStream,
    metrics::Call,
    proxy::Proxy,
    sanitize::{
        CONTINUATION, END_HEADERS, END_STREAM, FRAME_HEADER, HEADERS, MAX_BLOCK, PADDED, PRIORITY,
        frame_header, literal, percent_encode, write_block,
    },
    typed::MAX_MESSAGE,
};

const DATA: u8 = 0x0;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const ACK: u8 = 0x1;
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
const COMPRESSION_ERROR: u32 = 0x9;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const REFUSED_STREAM: u32 = 0x7;
const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
const MAX_STREAM: u32 = 0x7fff_ffff;
/// The payload of the ping that closes a caller's connection.
const CLOSE_PING: &[u8; 8] = b"stvd-bye";
/// How long a closing caller has to answer that ping.
const CLOSE_PING_WAIT: Duration = Duration::from_secs(5);
/// At most how long an answer to the runtime's ping waits for company.
const ACK_TICK: Duration = Duration::from_millis(200);
/// How long a caller told to leave, with nothing left open, has to close.
const LINGER: Duration = Duration::from_secs(1);
/// HTTP/2's initial windows and frame size, until settings say otherwise.
const DEFAULT_WINDOW: i64 = 65_535;
const DEFAULT_FRAME: usize = 16_384;
const DEFAULT_TABLE: usize = 4096;
/// At most this many typed calls at once on a caller connection, holding at most
/// this many request bytes together (each call at most `MAX_MESSAGE`).
const MAX_DIVERTED: usize = 1024;
const MAX_DIVERTED_BYTES: usize = 64 << 20;
/// The read buffer's starting size; it grows to hold the largest frame seen.
const INBOX: usize = 64 << 10;

/// A connection to the runtime that has shown it speaks HTTP/2: the proxy sent the
/// preface with empty settings (HTTP/2's defaults, which the caller's own settings
/// then replace), and the runtime's settings have arrived.
#[derive(Debug)]
pub struct Runtime {
    stream: LeanStream,
    inbox: Inbox,
}

/// Connects to the runtime at `path` and waits for its settings, for at most
/// `timeout`.
///
/// # Errors
/// The runtime cannot be reached, or does not answer as an HTTP/2 server in time.
pub async fn probe(path: &Path, timeout: Duration) -> io::Result<Runtime> {
    let attempt = async {
        let mut stream = LeanStream::connect(path).await?;
        let mut hello = Vec::with_capacity(PREFACE.len() + FRAME_HEADER);
        hello.extend_from_slice(PREFACE);
        hello.extend_from_slice(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
        stream.write_all(&hello).await?;
        let mut inbox = Inbox::new();
        loop {
            if inbox.len() >= FRAME_HEADER {
                let data = inbox.data();
                if data[3] != SETTINGS || data[4] & ACK != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the runtime did not open with settings",
                    ));
                }
                if inbox.len() >= FRAME_HEADER + frame_len(data) {
                    return Ok(Runtime { stream, inbox });
                }
            }
            inbox.make_room(FRAME_HEADER + if inbox.len() >= 3 { frame_len(inbox.data()) } else { 0 });
            if inbox.read(&mut stream).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or_else(|_| {
        Err(io::Error::new(io::ErrorKind::TimedOut, "the runtime sent no settings in time"))
    })
}

/// Relays the caller's connection to `runtime` until either ends, or until
/// `shutdown` and the calls under way have finished.
pub async fn run(proxy: Proxy, caller: LeanStream, runtime: Runtime, shutdown: CancellationToken) {
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut relay = Relay {
        proxy,
        caller,
        runtime: Some(runtime.stream),
        preface: 0,
        block: Block::default(),
        fields: Fields::default(),
        encoded: Vec::new(),
        decoder: decoder(DEFAULT_TABLE),
        in_sync: true,
        runtime_block: None,
        runtime_fragment: Vec::new(),
        runtime_block_spans: Vec::new(),
        runtime_blocks: Vec::new(),
        runtime_decoder: decoder(DEFAULT_TABLE),
        own_settings_acked: false,
        forwarded: HashMap::new(),
        diverted: HashMap::new(),
        highest: 0,
        highest_forwarded: 0,
        caller_window: DEFAULT_WINDOW,
        debt: 0,
        caller_initial: DEFAULT_WINDOW,
        caller_max_frame: DEFAULT_FRAME,
        runtime_blocked: false,
        goaway: None,
        runtime_last: MAX_STREAM,
        runtime_unwritable: false,
        closing: Closing::Open,
        close_deadline: tokio::time::Instant::now(),
        done_tx,
        held_acks: BytesMut::new(),
        to_runtime: BytesMut::new(),
        to_caller: BytesMut::new(),
    };
    match relay.serve(runtime.inbox, done_rx, shutdown).await {
        Ok(()) => debug!("caller connection ended"),
        Err(error) => debug!(%error, "caller connection ended with an error"),
    }
}

fn decoder(table: usize) -> fluke_hpack::Decoder<'static> {
    let mut d = fluke_hpack::Decoder::new();
    d.set_max_allowed_table_size(table);
    d
}

fn frame_len(data: &[u8]) -> usize {
    (usize::from(data[0]) << 16) | (usize::from(data[1]) << 8) | usize::from(data[2])
}

fn stream_id(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff
}

/// Decodes one header block with `decoder`. fluke-hpack panics on some malformed
/// input (a table size update whose integer does not end); that is a decoding
/// error like any other, never a lost connection.
fn decode(
    decoder: &mut fluke_hpack::Decoder<'static>,
    block: &[u8],
    mut field: impl FnMut(&[u8], &[u8]),
) -> Result<(), ()> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decoder.decode_with_cb(block, |name, value| field(&name, &value)).is_ok()
    }));
    match decoded {
        Ok(true) => Ok(()),
        _ => Err(()),
    }
}

/// A read buffer that stays initialized, so reads into it zero nothing.
#[derive(Debug, Default)]
struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Inbox {
    fn new() -> Self {
        Self { buf: vec![0; INBOX], start: 0, end: 0 }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room for a read, and for a frame of `whole` bytes at the front.
    fn make_room(&mut self, whole: usize) {
        if self.end < self.buf.len() && self.buf.len() - self.start >= whole {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let want = whole.max(self.end + 1);
        if self.buf.len() < want {
            self.buf.resize(want.next_power_of_two(), 0);
        }
    }

    /// One read from `stream`: how many bytes came (0 at the end of the stream).
    async fn read(&mut self, stream: &mut LeanStream) -> io::Result<usize> {
        let Inbox { buf, end, .. } = self;
        let n = poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut buf[*end..]);
            match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        *end += n;
        Ok(n)
    }
}

/// A caller header block being gathered across HEADERS and CONTINUATION frames.
#[derive(Debug, Default)]
struct Block {
    stream: Option<u32>,
    end_stream: bool,
    fragment: Vec<u8>,
    /// The block's frames exactly as they came.
    frames: Vec<u8>,
}

/// A call forwarded to the runtime.
#[derive(Debug)]
struct Forwarded {
    call: Call,
    /// Whether the runtime's response headers have passed.
    answered: bool,
}

/// A call served by a typed handler.
#[derive(Debug)]
struct Diverted {
    parts: Option<request::Parts>,
    body: BytesMut,
    task: Option<AbortHandle>,
    /// The caller's window for this stream.
    window: i64,
    /// The answer, as it waits for windows.
    pending: VecDeque<Pending>,
}

impl Drop for Diverted {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[derive(Debug)]
enum Pending {
    Headers { block: Vec<u8>, end_stream: bool },
    Data { data: Bytes, end_stream: bool },
}

/// A typed handler's answer.
#[derive(Debug)]
struct Done {
    stream: u32,
    head: Vec<u8>,
    data: Bytes,
    trailers: Option<Vec<u8>>,
}

/// Why the relay stops.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("caller: {0}")]
    Caller(io::Error),
    #[error("the caller is not speaking HTTP/2")]
    NotHttp2,
    #[error("a caller header block could not be decoded")]
    Compression,
    #[error("a caller header block is larger than 16 MiB")]
    TooLarge,
    #[error("the runtime's connection ended in the middle of a header block")]
    RuntimeCut,
}

struct Relay {
    proxy: Proxy,
    caller: LeanStream,
    /// `None` once the runtime's connection has ended.
    runtime: Option<LeanStream>,
    /// Preface bytes of the caller checked so far.
    preface: usize,
    block: Block,
    fields: Fields,
    /// Forwarded blocks written again (see `in_sync`).
    encoded: Vec<u8>,
    /// The caller's HPACK state.
    decoder: fluke_hpack::Decoder<'static>,
    /// Whether the runtime's HPACK table still follows the caller's.
    in_sync: bool,
    /// The runtime's header block being passed: its stream and END_STREAM.
    runtime_block: Option<(u32, bool)>,
    runtime_fragment: Vec<u8>,
    /// The runtime's complete header blocks not read yet: stream, END_STREAM, span.
    runtime_block_spans: Vec<(u32, bool, usize, usize)>,
    runtime_blocks: Vec<u8>,
    /// The runtime's HPACK state (towards the caller).
    runtime_decoder: fluke_hpack::Decoder<'static>,
    /// Whether the runtime has acknowledged the proxy's own (first) settings.
    own_settings_acked: bool,
    forwarded: HashMap<u32, Forwarded>,
    diverted: HashMap<u32, Diverted>,
    /// The highest stream the caller opened, and the highest the runtime saw.
    highest: u32,
    highest_forwarded: u32,
    /// The caller's connection receive window, as the caller sees it.
    caller_window: i64,
    /// Of the caller's window, what the proxy's own data used and has not been kept
    /// back from the caller's window updates yet.
    debt: i64,
    caller_initial: i64,
    caller_max_frame: usize,
    /// The runtime's data waits for the caller's window.
    runtime_blocked: bool,
    /// The last stream id of the GOAWAY the caller was sent (the runtime's or ours).
    goaway: Option<u32>,
    /// The last stream the runtime serves, once it has sent GOAWAY.
    runtime_last: u32,
    /// A write to the runtime failed: it is read until it closes, and sent nothing.
    runtime_unwritable: bool,
    closing: Closing,
    close_deadline: tokio::time::Instant,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Answers to the runtime's pings, waiting for the next frames to the runtime.
    held_acks: BytesMut,
    to_runtime: BytesMut,
    to_caller: BytesMut,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("forwarded", &self.forwarded.len())
            .field("diverted", &self.diverted.len())
            .finish_non_exhaustive()
    }
}

async fn read_some(stream: Option<&mut LeanStream>, inbox: &mut Inbox) -> io::Result<usize> {
    match stream {
        Some(s) => inbox.read(s).await,
        None => std::future::pending().await,
    }
}

impl Relay {
    async fn serve(
        &mut self,
        mut runtime_inbox: Inbox,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
        shutdown: CancellationToken,
    ) -> Result<(), Stop> {
        let mut caller_inbox = Inbox::new();
        // the runtime's settings, read by the probe, go to the caller first
        self.runtime_frames(&mut runtime_inbox).await?;
        let mut ack_tick = tokio::time::interval(ACK_TICK);
        ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.closing == Closing::Final && self.forwarded.is_empty() && self.diverted.is_empty() {
                // the caller closes a connection it was told to leave once its calls
                // are answered; closing first could cut a request it has just sent
                self.closing = Closing::Lingering;
                self.close_deadline = tokio::time::Instant::now() + LINGER;
            }
            let runtime_readable = !self.runtime_blocked;
            let closing_timer = matches!(self.closing, Closing::Announced | Closing::Lingering);
            tokio::select! {
                read = caller_inbox.read(&mut self.caller) => {
                    if read.map_err(Stop::Caller)? == 0 {
                        return Ok(());
                    }
                    if let Err(stop) = self.caller_frames(&mut caller_inbox) {
                        // the GOAWAY that says why, as far as it goes
                        let _ = self.caller.write_all(&self.to_caller).await;
                        return Err(stop);
                    }
                    self.flush_runtime().await;
                    if self.runtime_blocked && self.caller_window > 0 {
                        self.runtime_blocked = false;
                        self.runtime_frames(&mut runtime_inbox).await?;
                    }
                    self.flush_caller().await?;
                }
                read = read_some(self.runtime.as_mut(), &mut runtime_inbox), if runtime_readable => {
                    match read {
                        Ok(n) if n > 0 => self.runtime_frames(&mut runtime_inbox).await?,
                        Ok(_) => self.runtime_ended("the runtime closed its connection"),
                        Err(error) => self.runtime_ended(&error.to_string()),
                    }
                    if self.runtime.is_none() && self.runtime_block.is_some() {
                        // the caller has half a header block: its connection cannot go on
                        return Err(Stop::RuntimeCut);
                    }
                    self.flush_caller().await?;
                }
                Some(done) = done_rx.recv() => {
                    self.answer(done);
                    self.flush_caller().await?;
                }
                () = shutdown.cancelled(), if self.closing == Closing::Open => {
                    self.begin_close();
                    self.flush_caller().await?;
                }
                _ = ack_tick.tick() => {
                    // always polled, so its timer stays registered: arming it only
                    // while answers wait would wake the event loop each time
                    if !self.held_acks.is_empty() {
                        self.to_runtime.unsplit(self.held_acks.split());
                        self.flush_runtime().await;
                    }
                }
                () = sleep_until(self.close_deadline), if closing_timer => {
                    if closing_timer && self.close_deadline <= tokio::time::Instant::now() {
                        if self.closing == Closing::Lingering {
                            return Ok(());
                        }
                        // a caller that does not answer the ping is told the last stream
                        self.final_go_away(NO_ERROR);
                        self.flush_caller().await?;
                    }
                }
            }
        }
    }

    /// Writes what the caller's frames produced for the runtime, after the answers
    /// to the runtime's pings held so far; a failed write ends the runtime's side.
    async fn flush_runtime(&mut self) {
        if self.to_runtime.is_empty() {
            return;
        }
        if !self.held_acks.is_empty() {
            let frames = self.to_runtime.split();
            self.to_runtime.unsplit(self.held_acks.split());
            self.to_runtime.unsplit(frames);
        }
        let result = match &mut self.runtime {
            Some(rt) if !self.runtime_unwritable => rt.write_all(&self.to_runtime).await,
            _ => Ok(()),
        };
        self.to_runtime.clear();
        if let Err(error) = result {
            // The runtime may have answered calls before it closed: its answers are
            // read to the end of its connection, and the calls still open then end
            // with UNAVAILABLE. New calls are not sent to it.
            debug!(%error, "cannot write to the runtime; reading what it sent until it closes");
            self.runtime_unwritable = true;
            self.begin_close();
        }
    }

    /// Writes the proxy's own frames to the caller, unless the runtime's header block
    /// is half passed (nothing may come between its frames).
    async fn flush_caller(&mut self) -> Result<(), Stop> {
        if self.runtime_block.is_some() {
            return Ok(());
        }
        self.send_diverted();
        if !self.to_caller.is_empty() {
            self.caller.write_all(&self.to_caller).await.map_err(Stop::Caller)?;
            self.to_caller.clear();
        }
        Ok(())
    }

    // ----- the caller's frames -----

    fn caller_frames(&mut self, inbox: &mut Inbox) -> Result<(), Stop> {
        while self.preface < PREFACE.len() {
            let n = (PREFACE.len() - self.preface).min(inbox.len());
            if n == 0 {
                return Ok(());
            }
            if inbox.data()[..n] != PREFACE[self.preface..self.preface + n] {
                return Err(Stop::NotHttp2);
            }
            self.preface += n;
            inbox.consume(n);
        }
        loop {
            if inbox.len() < FRAME_HEADER {
                inbox.make_room(FRAME_HEADER);
                return Ok(());
            }
            let whole = FRAME_HEADER + frame_len(inbox.data());
            if inbox.len() < whole {
                inbox.make_room(whole);
                return Ok(());
            }
            let frame = &inbox.buf[inbox.start..inbox.start + whole];
            self.caller_frame(frame)?;
            inbox.consume(whole);
        }
    }

    fn caller_frame(&mut self, frame: &[u8]) -> Result<(), Stop> {
        let (kind, flags, stream) = (frame[3], frame[4], stream_id(frame));
        let payload = &frame[FRAME_HEADER..];
        if self.block.stream.is_some() && kind != CONTINUATION {
            // the runtime reports the broken block as it sees fit
            self.pass_block_as_is();
        }
        match kind {
            HEADERS | CONTINUATION => return self.header_frame(frame),
            SETTINGS if flags & ACK == 0 => self.caller_settings(payload),
            PING if flags & ACK != 0 && payload == CLOSE_PING => {
                if self.closing == Closing::Announced {
                    self.final_go_away(NO_ERROR);
                }
                return Ok(());
            }
            DATA if self.diverted.contains_key(&stream) => {
                // what the typed calls hold of their requests (at most MAX_DIVERTED),
                // summed only for a typed call's data, off the forwarding path
                let held: usize = self.diverted.values().map(|d| d.body.len()).sum();
                if let Some(d) = self.diverted.get_mut(&stream) {
                    let data = unpad(flags, payload).unwrap_or_default();
                    let room = held + data.len() <= MAX_DIVERTED_BYTES;
                    if d.parts.is_some() && d.body.len() + data.len() <= MAX_MESSAGE + 5 && room {
                        d.body.extend_from_slice(data);
                    } else if d.parts.is_some() {
                        d.parts = None;
                        let status = tonic::Status::resource_exhausted(
                            "the request exceeds the proxy's message limit",
                        );
                        self.answer_status(stream, &status);
                    }
                    // the caller's window comes back at once: the proxy holds the message
                    let len = payload.len() as u32;
                    if len > 0 {
                        window_update(&mut self.to_caller, 0, len);
                        if flags & END_STREAM == 0 {
                            window_update(&mut self.to_caller, stream, len);
                        }
                    }
                    if flags & END_STREAM != 0 {
                        self.start_handler(stream);
                    }
                }
                return Ok(());
            }
            DATA if stream > self.highest_forwarded => {
                // a stream the runtime never saw (refused, or reset by the proxy): its
                // data goes no further, and the caller gets its window back
                if !payload.is_empty() {
                    window_update(&mut self.to_caller, 0, payload.len() as u32);
                }
                return Ok(());
            }
            WINDOW_UPDATE if payload.len() == 4 => {
                let inc = i64::from(
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
                );
                if stream == 0 {
                    self.caller_window += inc;
                    let kept = self.debt.min(inc);
                    self.debt -= kept;
                    if inc - kept > 0 {
                        window_update(&mut self.to_runtime, 0, (inc - kept) as u32);
                    }
                    return Ok(());
                }
                if let Some(d) = self.diverted.get_mut(&stream) {
                    d.window += inc;
                    return Ok(());
                }
                if stream > self.highest_forwarded {
                    return Ok(());
                }
            }
            RST_STREAM => {
                if self.diverted.remove(&stream).is_some() || stream > self.highest_forwarded {
                    return Ok(());
                }
                self.forwarded.remove(&stream);
            }
            _ => {}
        }
        self.to_runtime.extend_from_slice(frame);
        Ok(())
    }

    fn caller_settings(&mut self, payload: &[u8]) {
        for setting in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            match id {
                SETTINGS_HEADER_TABLE_SIZE => self.runtime_decoder.set_max_allowed_table_size(value as usize),
                SETTINGS_INITIAL_WINDOW_SIZE => {
                    let delta = i64::from(value) - self.caller_initial;
                    self.caller_initial = i64::from(value);
                    for d in self.diverted.values_mut() {
                        d.window += delta;
                    }
                }
                SETTINGS_MAX_FRAME_SIZE => self.caller_max_frame = value as usize,
                _ => {}
            }
        }
    }

    /// A block whose frames are out of order goes to the runtime as it came.
    fn pass_block_as_is(&mut self) {
        self.block.stream = None;
        self.to_runtime.extend_from_slice(&self.block.frames);
    }

    fn header_frame(&mut self, frame: &[u8]) -> Result<(), Stop> {
        let (kind, flags, stream) = (frame[3], frame[4], stream_id(frame));
        let mut payload = &frame[FRAME_HEADER..];
        match (kind, self.block.stream) {
            (HEADERS, None) => {
                let Some(p) = unpad(flags, payload) else {
                    self.to_runtime.extend_from_slice(frame);
                    return Ok(());
                };
                payload = p;
                if flags & PRIORITY != 0 {
                    payload = payload.get(5..).unwrap_or_default();
                }
                self.block.stream = Some(stream);
                self.block.end_stream = flags & END_STREAM != 0;
                self.block.fragment.clear();
                self.block.frames.clear();
            }
            (CONTINUATION, Some(s)) if s == stream => {}
            _ => {
                // out of place: the runtime answers it with its own error
                self.to_runtime.extend_from_slice(frame);
                return Ok(());
            }
        }
        if self.block.fragment.len() + payload.len() > MAX_BLOCK {
            // grpc-go's header list limit; past it, the connection is not worth keeping
            self.final_go_away(ENHANCE_YOUR_CALM);
            return Err(Stop::TooLarge);
        }
        self.block.fragment.extend_from_slice(payload);
        self.block.frames.extend_from_slice(frame);
        if flags & END_HEADERS == 0 {
            return Ok(());
        }
        self.block.stream = None;
        // decoded into buffers kept from block to block: a call allocates nothing here
        let mut fields = std::mem::take(&mut self.fields);
        fields.clear();
        if decode(&mut self.decoder, &self.block.fragment, |name, value| fields.push(name, value)).is_err() {
            self.final_go_away(COMPRESSION_ERROR);
            return Err(Stop::Compression);
        }
        if fields.too_large {
            // decoded (the HPACK state follows the caller's) but not served
            self.in_sync = false;
            self.highest = self.highest.max(stream);
            rst_stream(&mut self.to_caller, stream, ENHANCE_YOUR_CALM);
        } else {
            self.route_block(stream, self.block.end_stream, &fields);
        }
        self.fields = fields;
        Ok(())
    }

    fn route_block(&mut self, stream: u32, end_stream: bool, fields: &Fields) {
        if self.diverted.contains_key(&stream) {
            // the request's trailers: the message is complete
            self.in_sync = false;
            if end_stream {
                self.start_handler(stream);
            }
            return;
        }
        if stream <= self.highest {
            // trailers of a forwarded call, or a stream the runtime judges
            self.forward_block(stream, end_stream, fields);
            return;
        }
        self.highest = stream;
        if self.goaway.is_some_and(|last| stream > last) {
            // after the last stream the caller was told of: not served, to be retried
            self.in_sync = false;
            rst_stream(&mut self.to_caller, stream, REFUSED_STREAM);
            return;
        }
        let path = fields.get(b":path").unwrap_or_default();
        let path = std::str::from_utf8(path).unwrap_or_default();
        if stream > self.runtime_last && !self.proxy.has_handler(path) {
            // the runtime said it will not serve it: never processed, to be retried
            self.in_sync = false;
            rst_stream(&mut self.to_caller, stream, REFUSED_STREAM);
            return;
        }
        if (self.runtime.is_none() || self.runtime_unwritable) && !self.proxy.has_handler(path) {
            // the runtime's connection ended (or is ending) while the caller had this
            // call on its way
            self.in_sync = false;
            let call = Call::begin(self.proxy.metrics(), path);
            answer_unavailable(
                &mut self.to_caller,
                stream,
                false,
                &unavailable("the runtime closed its connection"),
            );
            call.finish(Code::Unavailable);
            return;
        }
        if self.proxy.has_handler(path) {
            self.in_sync = false;
            if self.diverted.len() >= MAX_DIVERTED {
                rst_stream(&mut self.to_caller, stream, REFUSED_STREAM);
                return;
            }
            match request_parts(fields) {
                Some(parts) => {
                    self.diverted.insert(
                        stream,
                        Diverted {
                            parts: Some(parts),
                            body: BytesMut::new(),
                            task: None,
                            window: self.caller_initial,
                            pending: VecDeque::new(),
                        },
                    );
                    if end_stream {
                        self.start_handler(stream);
                    }
                }
                // a field HTTP forbids: grpc-go resets the stream for it
                None => rst_stream(&mut self.to_caller, stream, PROTOCOL_ERROR),
            }
            return;
        }
        self.highest_forwarded = stream;
        let call = Call::begin(self.proxy.metrics(), path);
        self.forwarded.insert(stream, Forwarded { call, answered: false });
        self.forward_block(stream, end_stream, fields);
    }

    fn forward_block(&mut self, stream: u32, end_stream: bool, fields: &Fields) {
        if self.in_sync {
            self.to_runtime.extend_from_slice(&self.block.frames);
            return;
        }
        // kept from block to block: a connection out of sync encodes every call
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.clear();
        for (name, value) in fields.iter() {
            literal(&mut encoded, name, value);
        }
        write_block(&mut self.to_runtime, stream, end_stream, &encoded);
        self.encoded = encoded;
    }

    fn start_handler(&mut self, stream: u32) {
        let Some(d) = self.diverted.get_mut(&stream) else { return };
        let Some(parts) = d.parts.take() else { return };
        let body = d.body.split().freeze();
        let req = Request::from_parts(parts, Either::Right(Full::new(body)));
        let proxy = self.proxy.clone();
        let done = self.done_tx.clone();
        let task = tokio::spawn(async move {
            // a handler that panics answers INTERNAL rather than leave the call hanging
            let handled = std::panic::AssertUnwindSafe(proxy.handle(req)).catch_unwind().await;
            let resp = handled.unwrap_or_else(|_| {
                tonic::Status::internal("the proxy's handler for this method failed").into_http()
            });
            let (parts, body) = resp.into_parts();
            let mut head = Vec::with_capacity(128);
            literal(&mut head, b":status", parts.status.as_str().as_bytes());
            headers(&mut head, &parts.headers);
            let (data, trailers) = match body.collect().await {
                Ok(collected) => {
                    let trailers = collected.trailers().map(|t| {
                        let mut block = Vec::with_capacity(64);
                        headers(&mut block, t);
                        block
                    });
                    (collected.to_bytes(), trailers)
                }
                Err(error) => (Bytes::new(), Some(status_block(&unavailable(&error.to_string()), true))),
            };
            let _ = done.send(Done { stream, head, data, trailers });
        });
        d.task = Some(task.abort_handle());
    }

    /// Queues a typed handler's answer for the caller.
    fn answer(&mut self, done: Done) {
        let Some(d) = self.diverted.get_mut(&done.stream) else { return };
        d.task = None;
        let Done { head, data, trailers, .. } = done;
        let ends_with_data = trailers.is_none();
        let trailers_only = data.is_empty() && trailers.is_none();
        d.pending.push_back(Pending::Headers { block: head, end_stream: trailers_only });
        if !data.is_empty() || (ends_with_data && !trailers_only) {
            d.pending.push_back(Pending::Data { data, end_stream: ends_with_data });
        }
        if let Some(block) = trailers {
            d.pending.push_back(Pending::Headers { block, end_stream: true });
        }
    }

    /// Answers a diverted call with `status` and nothing else.
    fn answer_status(&mut self, stream: u32, status: &tonic::Status) {
        let Some(d) = self.diverted.get_mut(&stream) else { return };
        d.pending.push_back(Pending::Headers { block: status_block(status, false), end_stream: true });
    }

    /// Writes what the diverted calls have ready, as far as the windows allow.
    fn send_diverted(&mut self) {
        let mut finished = Vec::new();
        for (&stream, d) in &mut self.diverted {
            while let Some(next) = d.pending.front_mut() {
                match next {
                    Pending::Headers { block, end_stream } => {
                        write_block(&mut self.to_caller, stream, *end_stream, block);
                        let end = *end_stream;
                        d.pending.pop_front();
                        if end {
                            finished.push(stream);
                            break;
                        }
                    }
                    Pending::Data { data, end_stream } => {
                        let n = (data.len() as i64)
                            .min(d.window)
                            .min(self.caller_window)
                            .min(self.caller_max_frame as i64)
                            .max(0) as usize;
                        if n == 0 && !data.is_empty() {
                            break;
                        }
                        let last = n == data.len();
                        let flags = if last && *end_stream { END_STREAM } else { 0 };
                        frame_header(&mut self.to_caller, n, DATA, flags, stream);
                        self.to_caller.extend_from_slice(&data[..n]);
                        data.advance(n);
                        d.window -= n as i64;
                        self.caller_window -= n as i64;
                        self.debt += n as i64;
                        if last {
                            let end = *end_stream;
                            d.pending.pop_front();
                            if end {
                                finished.push(stream);
                                break;
                            }
                        }
                    }
                }
            }
        }
        for stream in finished {
            self.diverted.remove(&stream);
        }
    }

    // ----- the runtime's frames -----

    /// Passes the runtime's frames in `inbox` to the caller, written straight from
    /// the buffer; stops at data the caller's window cannot take yet.
    async fn runtime_frames(&mut self, inbox: &mut Inbox) -> Result<(), Stop> {
        loop {
            let mut pass = 0;
            let mut action = Action::More;
            loop {
                let data = &inbox.data()[pass..];
                if data.len() < FRAME_HEADER {
                    break;
                }
                let whole = FRAME_HEADER + frame_len(data);
                if data.len() < whole {
                    break;
                }
                match self.runtime_frame(&data[..whole]) {
                    Action::Pass => pass += whole,
                    other => {
                        action = other;
                        break;
                    }
                }
            }
            if pass > 0 {
                self.caller.write_all(&inbox.data()[..pass]).await.map_err(Stop::Caller)?;
                inbox.consume(pass);
            }
            self.read_runtime_blocks();
            match action {
                Action::More | Action::Pass => {
                    let whole = if inbox.len() >= FRAME_HEADER {
                        FRAME_HEADER + frame_len(inbox.data())
                    } else {
                        FRAME_HEADER
                    };
                    inbox.make_room(whole);
                    return Ok(());
                }
                Action::Drop => {
                    let whole = FRAME_HEADER + frame_len(inbox.data());
                    inbox.consume(whole);
                }
                Action::Blocked => {
                    self.runtime_blocked = true;
                    return Ok(());
                }
                Action::Split(n) => {
                    // the first `n` bytes of data go now, the rest as a frame of its own
                    let data = inbox.data();
                    let (len, flags, stream) = (frame_len(data), data[4], stream_id(data));
                    let mut head = BytesMut::with_capacity(FRAME_HEADER);
                    frame_header(&mut head, n, DATA, 0, stream);
                    self.caller.write_all(&head).await.map_err(Stop::Caller)?;
                    self.caller
                        .write_all(&data[FRAME_HEADER..FRAME_HEADER + n])
                        .await
                        .map_err(Stop::Caller)?;
                    self.caller_window -= n as i64;
                    inbox.consume(n);
                    let at = inbox.start;
                    let mut rest = BytesMut::with_capacity(FRAME_HEADER);
                    frame_header(&mut rest, len - n, DATA, flags, stream);
                    inbox.buf[at..at + FRAME_HEADER].copy_from_slice(&rest);
                    self.runtime_blocked = true;
                    return Ok(());
                }
            }
        }
    }

    fn runtime_frame(&mut self, frame: &[u8]) -> Action {
        let (kind, flags, stream) = (frame[3], frame[4], stream_id(frame));
        let payload = &frame[FRAME_HEADER..];
        match kind {
            DATA => {
                let len = payload.len() as i64;
                if len > self.caller_window {
                    if flags & PADDED == 0 && self.caller_window > 0 {
                        return Action::Split(self.caller_window as usize);
                    }
                    return Action::Blocked;
                }
                self.caller_window -= len;
                if flags & END_STREAM != 0 {
                    // a gRPC answer ends with trailers; one that does not is malformed
                    if let Some(f) = self.forwarded.remove(&stream) {
                        f.call.finish(Code::Unknown);
                    }
                }
            }
            HEADERS => {
                let Some(mut p) = unpad(flags, payload) else { return Action::Pass };
                if flags & PRIORITY != 0 {
                    p = p.get(5..).unwrap_or_default();
                }
                self.runtime_fragment.clear();
                self.runtime_fragment.extend_from_slice(p);
                self.runtime_block = Some((stream, flags & END_STREAM != 0));
                if flags & END_HEADERS != 0 {
                    self.runtime_headers();
                }
            }
            CONTINUATION => {
                self.runtime_fragment.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    self.runtime_headers();
                }
            }
            PING if flags & ACK == 0 => {
                // Answered here, not by the caller: grpc-go pings with every request
                // (to size its windows), and an answer from the caller would wake
                // the proxy and the runtime once more per call. The answer goes
                // with the next frames for the runtime, or at the next tick of
                // [`ACK_TICK`]: the runtime is not woken for it alone. Whether the
                // caller is alive, the proxy knows from its connection.
                frame_header(&mut self.held_acks, payload.len(), PING, ACK, 0);
                self.held_acks.extend_from_slice(payload);
                return Action::Drop;
            }
            SETTINGS if flags & ACK != 0 && !self.own_settings_acked => {
                self.own_settings_acked = true;
                return Action::Drop;
            }
            SETTINGS => {
                for setting in payload.chunks_exact(6) {
                    if u16::from_be_bytes([setting[0], setting[1]]) == SETTINGS_HEADER_TABLE_SIZE {
                        let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                        self.decoder.set_max_allowed_table_size(value as usize);
                    }
                }
            }
            RST_STREAM => {
                if let Some(f) = self.forwarded.remove(&stream) {
                    f.call.finish(Code::Unavailable);
                }
            }
            GOAWAY if payload.len() >= 4 => {
                // The runtime is leaving: it serves the streams up to `last`. The
                // caller is not sent the runtime's GOAWAY (a caller does not retry
                // every stream it cuts); the proxy answers the streams after `last`
                // with UNAVAILABLE, as it does those sent once the runtime is gone,
                // and closes the caller's connection the way it closes any.
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
                self.runtime_last = self.runtime_last.min(last);
                // the streams after `last` were never processed: refused, so that
                // callers such as grpc-go retry them
                let cut: Vec<u32> = self.forwarded.keys().copied().filter(|&s| s > last).collect();
                for stream in cut {
                    if let Some(f) = self.forwarded.remove(&stream) {
                        rst_stream(&mut self.to_caller, stream, REFUSED_STREAM);
                        f.call.finish(Code::Unavailable);
                    }
                }
                self.begin_close();
                return Action::Drop;
            }
            _ => {}
        }
        Action::Pass
    }

    /// The runtime's header block is complete: a call's response headers, or its
    /// trailers with the status.
    ///
    /// Read once the frames have gone to the caller (see [`Self::read_runtime_blocks`]),
    /// so the caller's answer does not wait for it.
    fn runtime_headers(&mut self) {
        let Some((stream, end_stream)) = self.runtime_block.take() else { return };
        let start = self.runtime_blocks.len();
        self.runtime_blocks.extend_from_slice(&self.runtime_fragment);
        self.runtime_block_spans.push((stream, end_stream, start, self.runtime_blocks.len()));
        if !end_stream && let Some(f) = self.forwarded.get_mut(&stream) {
            f.answered = true;
        }
    }

    /// Reads the runtime's header blocks passed since the last time, in order (the
    /// HPACK state follows them): the status of each call that ended.
    fn read_runtime_blocks(&mut self) {
        for i in 0..self.runtime_block_spans.len() {
            let (stream, end_stream, start, end) = self.runtime_block_spans[i];
            let mut status = None;
            let decoded =
                decode(&mut self.runtime_decoder, &self.runtime_blocks[start..end], |name, value| {
                    if name == b"grpc-status" {
                        status = Some(Code::from_bytes(value));
                    }
                });
            // a block that does not decode: the caller's decoder fails the same way
            // and closes the connection
            if end_stream && let Some(f) = self.forwarded.remove(&stream) {
                f.call.finish(if decoded.is_ok() { status.unwrap_or(Code::Unknown) } else { Code::Internal });
            }
        }
        self.runtime_block_spans.clear();
        self.runtime_blocks.clear();
    }

    /// The runtime's connection ended: the calls on it end with `UNAVAILABLE`, and
    /// the caller is told to take its next calls elsewhere.
    fn runtime_ended(&mut self, why: &str) {
        if self.runtime.take().is_none() {
            return;
        }
        debug!(reason = why, calls = self.forwarded.len(), "runtime connection ended");
        if self.runtime_block.is_some() {
            // a header block cut in the middle: the caller's connection cannot go on
            self.forwarded.clear();
            self.diverted.clear();
            return;
        }
        let t = unavailable(why);
        for (stream, f) in self.forwarded.drain() {
            answer_unavailable(&mut self.to_caller, stream, f.answered, &t);
            f.call.finish(Code::Unavailable);
        }
        self.begin_close();
    }

    /// Starts closing the caller's connection as HTTP/2 servers do: a GOAWAY that
    /// still takes every stream, and a ping; the streams the caller opened before it
    /// answers the ping are served, and then the last one is announced.
    fn begin_close(&mut self) {
        if self.closing != Closing::Open {
            return;
        }
        if self.goaway.is_some() {
            // the runtime already told the caller its last stream
            self.final_go_away(NO_ERROR);
            return;
        }
        goaway_frame(&mut self.to_caller, MAX_STREAM, NO_ERROR);
        self.goaway = Some(MAX_STREAM);
        frame_header(&mut self.to_caller, 8, PING, 0, 0);
        self.to_caller.extend_from_slice(CLOSE_PING);
        self.closing = Closing::Announced;
        self.close_deadline = tokio::time::Instant::now() + CLOSE_PING_WAIT;
    }

    /// Tells the caller the last stream served; the connection closes once the calls
    /// up to it have been answered.
    fn final_go_away(&mut self, code: u32) {
        let last = self.goaway.map_or(self.highest, |g| g.min(self.highest));
        self.goaway = Some(last);
        goaway_frame(&mut self.to_caller, last, code);
        self.closing = Closing::Final;
    }
}

/// Where closing the caller's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// GOAWAY for every stream and a ping sent; waiting for the ping's answer.
    Announced,
    /// The last stream announced.
    Final,
    /// Every call answered: waiting a little for the caller to close.
    Lingering,
}

fn goaway_frame(out: &mut BytesMut, last: u32, code: u32) {
    frame_header(out, 8, GOAWAY, 0, 0);
    out.extend_from_slice(&last.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
}

/// The header block that ends a call with `status`: a trailers-only answer, or
/// trailers after response headers that have passed (`answered`).
fn status_block(status: &tonic::Status, answered: bool) -> Vec<u8> {
    let mut trailers = HeaderMap::new();
    let _ = status.add_header(&mut trailers);
    let mut block = Vec::with_capacity(128);
    if !answered {
        literal(&mut block, b":status", b"200");
        literal(&mut block, b"content-type", b"application/grpc");
    }
    headers(&mut block, &trailers);
    block
}

/// Ends a call with `status` (see [`status_block`]).
fn answer_unavailable(out: &mut BytesMut, stream: u32, answered: bool, status: &tonic::Status) {
    write_block(out, stream, true, &status_block(status, answered));
}

/// The status of a call the runtime could not answer.
fn unavailable(why: &str) -> tonic::Status {
    tonic::Status::unavailable(format!("runtime unavailable: {why}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// The frame passes as it came.
    Pass,
    /// Incomplete: more bytes are needed.
    More,
    /// The frame is the proxy's business and goes no further.
    Drop,
    /// Data the caller's window cannot take yet.
    Blocked,
    /// Data of which only this much fits the caller's window.
    Split(usize),
}

/// A frame's payload without its padding; `None` when the padding does not fit.
fn unpad(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.get(..rest.len().checked_sub(usize::from(pad))?)
}

/// A decoded header block: each field's start in `bytes`, name length and value
/// length.
#[derive(Debug, Default)]
struct Fields {
    spans: Vec<(usize, usize, usize)>,
    bytes: Vec<u8>,
    /// Past `MAX_BLOCK` decoded: the rest is not kept.
    too_large: bool,
}

impl Fields {
    fn clear(&mut self) {
        self.spans.clear();
        self.bytes.clear();
        self.too_large = false;
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        // a small block may reference large table entries many times over
        if self.too_large || self.bytes.len() + name.len() + value.len() + 32 * self.spans.len() > MAX_BLOCK {
            self.too_large = true;
            return;
        }
        self.spans.push((self.bytes.len(), name.len(), value.len()));
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|&(at, n, v)| (&self.bytes[at..at + n], &self.bytes[at + n..at + n + v]))
    }

    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// The request a typed handler sees; `None` when a field is one HTTP forbids.
fn request_parts(fields: &Fields) -> Option<request::Parts> {
    let method = Method::from_bytes(fields.get(b":method").unwrap_or(b"POST")).ok()?;
    let path = fields.get(b":path").unwrap_or(b"/");
    let path = match http::uri::PathAndQuery::try_from(path) {
        Ok(p) => p,
        Err(_) => http::uri::PathAndQuery::try_from(percent_encode(path)).ok()?,
    };
    let authority = fields
        .get(b":authority")
        .and_then(|a| http::uri::Authority::try_from(a).ok())
        .filter(|a| !a.as_str().is_empty())
        .unwrap_or_else(|| http::uri::Authority::from_static("localhost"));
    let uri = Uri::builder().scheme("http").authority(authority).path_and_query(path).build().ok()?;
    let (mut parts, ()) =
        Request::builder().method(method).uri(uri).version(http::Version::HTTP_2).body(()).ok()?.into_parts();
    for (name, value) in fields.iter().filter(|(n, _)| !n.starts_with(b":")) {
        let name = http::HeaderName::from_bytes(name).ok()?;
        let value = http::HeaderValue::from_bytes(value).ok()?;
        parts.headers.append(name, value);
    }
    Some(parts)
}

/// Header fields as HPACK literals that leave the caller's table alone.
fn headers(out: &mut Vec<u8>, map: &HeaderMap) {
    for (name, value) in map {
        literal(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

fn window_update(out: &mut BytesMut, stream: u32, inc: u32) {
    frame_header(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&inc.to_be_bytes());
}

fn rst_stream(out: &mut BytesMut, stream: u32, code: u32) {
    frame_header(out, 4, RST_STREAM, 0, stream);
    out.extend_from_slice(&code.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::Response;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::{
        body::{RequestBody, ResponseBody},
        metrics::Metrics,
        proxy::{Handler, HandlerFuture, Handlers},
        upstream::Upstream,
    };

    const TYPED: &str = "/test.Typed/Call";
    const VERSION: &str = "/runtime.v1.RuntimeService/Version";

    /// A typed handler that answers with `0` bytes of data, never reaching the runtime.
    #[derive(Debug)]
    struct Answers(usize);

    impl Handler for Answers {
        fn call<'a>(&'a self, _: &'a Proxy, _: Request<RequestBody>) -> HandlerFuture<'a> {
            Box::pin(async move {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                let mut resp = Response::new(ResponseBody::full(Bytes::from(vec![7u8; self.0]), trailers));
                resp.headers_mut().insert("content-type", "application/grpc".parse().unwrap());
                Ok(resp)
            })
        }
    }

    /// The relay between a test caller and a test runtime, both raw sockets.
    struct Bed {
        caller: tokio::net::UnixStream,
        runtime: tokio::net::UnixStream,
        stop: CancellationToken,
    }

    impl Bed {
        async fn start(answer: usize) -> Bed {
            let (caller, caller_side) = tokio::net::UnixStream::pair().unwrap();
            let (runtime, runtime_side) = tokio::net::UnixStream::pair().unwrap();
            let metrics = Arc::new(Metrics::default());
            let upstream =
                Upstream::new("/nonexistent/runtime.sock".into(), Duration::from_secs(1), metrics.clone());
            let mut handlers = Handlers::new();
            handlers.insert(TYPED, Arc::new(Answers(answer)) as Arc<dyn Handler>);
            let proxy = Proxy::new(upstream, metrics, handlers);
            // the runtime's settings, as the probe would have read them
            let mut inbox = Inbox::new();
            inbox.buf[..FRAME_HEADER].copy_from_slice(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
            inbox.end = FRAME_HEADER;
            let rt = Runtime { stream: LeanStream::new(runtime_side).unwrap(), inbox };
            let stop = CancellationToken::new();
            tokio::spawn(run(proxy, LeanStream::new(caller_side).unwrap(), rt, stop.clone()));
            let mut bed = Bed { caller, runtime, stop };
            let mut hello = PREFACE.to_vec();
            hello.extend_from_slice(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
            bed.caller.write_all(&hello).await.unwrap();
            assert_eq!(read_frame(&mut bed.caller).await, (SETTINGS, 0, 0, vec![]), "the runtime's settings");
            assert_eq!(read_frame(&mut bed.runtime).await, (SETTINGS, 0, 0, vec![]), "the caller's settings");
            bed
        }
    }

    async fn read_frame(s: &mut tokio::net::UnixStream) -> (u8, u8, u32, Vec<u8>) {
        let mut head = [0u8; FRAME_HEADER];
        s.read_exact(&mut head).await.unwrap();
        let mut payload = vec![0; frame_len(&head)];
        s.read_exact(&mut payload).await.unwrap();
        (head[3], head[4], stream_id(&head), payload)
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    /// An HPACK string without Huffman coding.
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    }

    /// `:method POST`, `:scheme http`, then `:path` as a literal added to the table.
    fn request_head(path: &str) -> Vec<u8> {
        let mut b = vec![0x83, 0x86, 0x44];
        string(&mut b, path.as_bytes());
        b
    }

    /// A `Version` call's block: `request_head`, then `:authority localhost`, added to
    /// the table after the path (`:path` at index 63, `:authority` at 62).
    fn version_block() -> Vec<u8> {
        let mut head = request_head(VERSION);
        head.push(0x41);
        string(&mut head, b"localhost");
        head
    }

    fn decode(decoder: &mut fluke_hpack::Decoder<'_>, block: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        decoder
            .decode_with_cb(block, |n, v| {
                fields.push((
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .unwrap();
        fields
    }

    #[tokio::test(flavor = "current_thread")]
    async fn blocks_pass_as_they_came_until_a_diverted_one_and_are_written_again_after() {
        let mut bed = Bed::start(3).await;
        // stream 1, forwarded: every field added to the caller's table
        let mut first = request_head(VERSION);
        first.push(0x41);
        string(&mut first, b"localhost");
        first.push(0x40);
        string(&mut first, b"x-test");
        string(&mut first, b"one");
        let sent = frame(HEADERS, END_HEADERS | END_STREAM, 1, &first);
        bed.caller.write_all(&sent).await.unwrap();
        let (kind, flags, stream, payload) = read_frame(&mut bed.runtime).await;
        assert_eq!(frame(kind, flags, stream, &payload), sent, "a block passes byte for byte");
        let mut runtime_decoder = fluke_hpack::Decoder::new();
        let expected = decode(&mut runtime_decoder, &payload);
        // stream 3, typed: diverted, and it adds its path to the caller's table
        let mut typed = request_head(TYPED);
        typed.push(0x80 | 64); // :authority localhost
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &typed)).await.unwrap();
        // stream 5, forwarded, by indexes the runtime's table never had
        let third = [0x83, 0x86, 0x80 | 65, 0x80 | 64, 0x80 | 63];
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 5, &third)).await.unwrap();
        let (kind, flags, stream, payload) = read_frame(&mut bed.runtime).await;
        assert_eq!(
            (kind, flags & (END_HEADERS | END_STREAM), stream),
            (HEADERS, END_HEADERS | END_STREAM, 5)
        );
        assert_ne!(payload, third, "written again: the runtime's table does not follow the caller's");
        assert_eq!(decode(&mut runtime_decoder, &payload), expected);
        // the typed stream's answer: headers, its data, trailers
        let mut caller_decoder = fluke_hpack::Decoder::new();
        let (kind, _, stream, head) = read_frame(&mut bed.caller).await;
        assert_eq!((kind, stream), (HEADERS, 3));
        let head = decode(&mut caller_decoder, &head);
        assert_eq!(head[0], (":status".to_owned(), "200".to_owned()));
        assert_eq!(read_frame(&mut bed.caller).await, (DATA, 0, 3, vec![7, 7, 7]));
        let (kind, flags, stream, trailers) = read_frame(&mut bed.caller).await;
        assert_eq!((kind, flags & END_STREAM, stream), (HEADERS, END_STREAM, 3));
        assert_eq!(decode(&mut caller_decoder, &trailers), [("grpc-status".to_owned(), "0".to_owned())]);
        bed.stop.cancel();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_proxys_own_data_is_kept_back_from_the_callers_window_updates() {
        let mut bed = Bed::start(100).await;
        let mut typed = request_head(TYPED);
        typed.push(0x41);
        string(&mut typed, b"localhost");
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &typed)).await.unwrap();
        assert_eq!(read_frame(&mut bed.caller).await.0, HEADERS);
        let (kind, _, _, data) = read_frame(&mut bed.caller).await;
        assert_eq!((kind, data.len()), (DATA, 100));
        assert_eq!(read_frame(&mut bed.caller).await.0, HEADERS);
        // the caller hands back 150 bytes of window: 100 were the proxy's data
        bed.caller.write_all(&frame(WINDOW_UPDATE, 0, 0, &150u32.to_be_bytes())).await.unwrap();
        assert_eq!(read_frame(&mut bed.runtime).await, (WINDOW_UPDATE, 0, 0, 50u32.to_be_bytes().to_vec()));
        bed.stop.cancel();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runtime_data_beyond_the_callers_window_waits_for_it() {
        let mut bed = Bed::start(0).await;
        let head = version_block();
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &head)).await.unwrap();
        read_frame(&mut bed.runtime).await;
        // the runtime answers with the caller's whole window, and then 10 bytes more
        let mut answer = frame(HEADERS, END_HEADERS, 1, &[0x88]);
        for len in [16_384, 16_384, 16_384, 16_383, 10] {
            answer.extend_from_slice(&frame(DATA, 0, 1, &vec![1; len]));
        }
        bed.runtime.write_all(&answer).await.unwrap();
        assert_eq!(read_frame(&mut bed.caller).await.0, HEADERS);
        let mut got = 0;
        while got < 65_535 {
            got += read_frame(&mut bed.caller).await.3.len();
        }
        assert_eq!(got, 65_535, "exactly the caller's window");
        // 5 bytes of window: the next frame is those 5 bytes, not the 10
        bed.caller.write_all(&frame(WINDOW_UPDATE, 0, 0, &5u32.to_be_bytes())).await.unwrap();
        assert_eq!(read_frame(&mut bed.caller).await, (DATA, 0, 1, vec![1; 5]));
        bed.caller.write_all(&frame(WINDOW_UPDATE, 0, 0, &100u32.to_be_bytes())).await.unwrap();
        assert_eq!(read_frame(&mut bed.caller).await, (DATA, 0, 1, vec![1; 5]));
        bed.stop.cancel();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_runtimes_pings_are_answered_by_the_proxy_and_the_callers_pass() {
        let mut bed = Bed::start(0).await;
        // alone, the answer goes at the next tick
        bed.runtime.write_all(&frame(PING, 0, 0, b"bdp-ping")).await.unwrap();
        assert_eq!(read_frame(&mut bed.runtime).await, (PING, ACK, 0, b"bdp-ping".to_vec()));
        // with the caller's next frames, it goes just before them
        bed.runtime.write_all(&frame(PING, 0, 0, b"second!!")).await.unwrap();
        let head = version_block();
        tokio::time::sleep(Duration::from_millis(20)).await;
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &head)).await.unwrap();
        assert_eq!(read_frame(&mut bed.runtime).await, (PING, ACK, 0, b"second!!".to_vec()));
        assert_eq!(read_frame(&mut bed.runtime).await.0, HEADERS);
        bed.caller.write_all(&frame(PING, 0, 0, b"keepaliv")).await.unwrap();
        assert_eq!(read_frame(&mut bed.runtime).await, (PING, 0, 0, b"keepaliv".to_vec()));
        bed.runtime.write_all(&frame(PING, ACK, 0, b"keepaliv")).await.unwrap();
        assert_eq!(read_frame(&mut bed.caller).await, (PING, ACK, 0, b"keepaliv".to_vec()));
        bed.stop.cancel();
    }

    /// Reads frames from `s` until one of `kind`.
    async fn until_frame(s: &mut tokio::net::UnixStream, kind: u8) -> (u8, u8, u32, Vec<u8>) {
        loop {
            let f = read_frame(s).await;
            if f.0 == kind {
                return f;
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_block_that_does_not_decode_closes_the_connection_with_compression_error() {
        let mut bed = Bed::start(0).await;
        // a table size update whose integer never ends: the decoder library panics on it
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0x3f])).await.unwrap();
        let (_, _, _, goaway) = until_frame(&mut bed.caller, GOAWAY).await;
        assert_eq!(&goaway[4..8], &COMPRESSION_ERROR.to_be_bytes());
        let mut rest = Vec::new();
        bed.caller.read_to_end(&mut rest).await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_header_list_past_16_mib_resets_its_stream_and_the_connection_goes_on() {
        let mut bed = Bed::start(0).await;
        // a 2,000-byte entry, then a block of 9,000 one-byte references to it: 18 MB
        // decoded
        let mut first = request_head(VERSION);
        first.push(0x41);
        string(&mut first, b"localhost");
        first.push(0x40);
        string(&mut first, b"x-big");
        first.extend_from_slice(&[0x7f, 0xd1, 0x0e]); // a 2,000-byte value: 127 + 1,873
        first.extend(std::iter::repeat_n(b'v', 2000));
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &first)).await.unwrap();
        assert_eq!(read_frame(&mut bed.runtime).await.2, 1);
        let mut huge = vec![0x83, 0x86, 0x80 | 64, 0x80 | 63];
        huge.extend(std::iter::repeat_n(0x80 | 62, 9000));
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &huge)).await.unwrap();
        assert_eq!(
            until_frame(&mut bed.caller, RST_STREAM).await,
            (RST_STREAM, 0, 3, ENHANCE_YOUR_CALM.to_be_bytes().to_vec())
        );
        // the next call is forwarded, written again (the runtime never saw stream 3)
        let next = [0x83, 0x86, 0x80 | 64, 0x80 | 63];
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 5, &next)).await.unwrap();
        assert_eq!(read_frame(&mut bed.runtime).await.2, 5);
        bed.stop.cancel();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn calls_after_the_runtimes_last_stream_are_refused_for_the_caller_to_retry() {
        let mut bed = Bed::start(0).await;
        let head = version_block();
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &head)).await.unwrap();
        read_frame(&mut bed.runtime).await;
        bed.caller
            .write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0x83, 0x86, 0x80 | 63, 0x80 | 62]))
            .await
            .unwrap();
        read_frame(&mut bed.runtime).await;
        // the runtime serves stream 1 only
        let mut goaway = 1u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&NO_ERROR.to_be_bytes());
        bed.runtime.write_all(&frame(GOAWAY, 0, 0, &goaway)).await.unwrap();
        assert_eq!(
            until_frame(&mut bed.caller, RST_STREAM).await,
            (RST_STREAM, 0, 3, REFUSED_STREAM.to_be_bytes().to_vec())
        );
        bed.stop.cancel();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_runtime_that_leaves_ends_open_calls_unavailable_and_the_caller_is_sent_away() {
        let mut bed = Bed::start(0).await;
        let head = version_block();
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &head)).await.unwrap();
        read_frame(&mut bed.runtime).await;
        drop(bed.runtime);
        let mut decoder = fluke_hpack::Decoder::new();
        let (kind, flags, stream, block) = read_frame(&mut bed.caller).await;
        assert_eq!((kind, flags & END_STREAM, stream), (HEADERS, END_STREAM, 1));
        let fields = decode(&mut decoder, &block);
        assert!(fields.contains(&("grpc-status".to_owned(), "14".to_owned())), "{fields:?}");
        let (kind, _, _, goaway) = read_frame(&mut bed.caller).await;
        assert_eq!((kind, &goaway[..4]), (GOAWAY, &MAX_STREAM.to_be_bytes()[..]));
        let (kind, flags, _, ping) = read_frame(&mut bed.caller).await;
        assert_eq!((kind, flags), (PING, 0));
        // a call sent before the caller saw the GOAWAY is answered, not lost
        let again = [0x83, 0x86, 0x80 | 63, 0x80 | 62];
        bed.caller.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &again)).await.unwrap();
        let (kind, _, stream, block) = read_frame(&mut bed.caller).await;
        assert_eq!((kind, stream), (HEADERS, 3));
        assert!(decode(&mut decoder, &block).contains(&("grpc-status".to_owned(), "14".to_owned())));
        bed.caller.write_all(&frame(PING, ACK, 0, &ping)).await.unwrap();
        let (kind, _, _, goaway) = read_frame(&mut bed.caller).await;
        assert_eq!((kind, &goaway[..4]), (GOAWAY, &3u32.to_be_bytes()[..]));
    }
}
