//! A gRPC client written frame by frame, to send what the common stacks do not: each
//! call takes one of four shapes in turn, so a scenario covers them all:
//!
//! | shape | `:authority` | header block | request DATA |
//! |---|---|---|---|
//! | 0 | none | one HEADERS | one frame |
//! | 1 | the socket path, percent-encoded (grpc C-core's) | padded, with priority, in HEADERS + 2 CONTINUATION | split over a padded frame, a second one and an empty END_STREAM one |
//! | 2 | `localhost` | a 20 KiB header, so HEADERS + CONTINUATION | padded |
//! | 3 | the socket path, as is | padded with 255 bytes | one frame, after a PING |
//!
//! Header blocks use an HPACK encoder with a dynamic table, so later calls refer to
//! earlier ones' fields. Answers are read the same way: padding, CONTINUATION,
//! trailers-only answers, RST_STREAM.

use std::{collections::HashMap, path::Path, time::Duration};

use anyhow::{Context as _, bail};
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::UnixStream,
};

use super::{CALL_TIMEOUT, Reply, StreamEvent};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const MAX_FRAME: usize = 16_384;

/// One stream's answer so far.
#[derive(Debug, Default)]
struct Answer {
    headers: Option<Vec<(String, String)>>,
    trailers: Option<Vec<(String, String)>>,
    data: BytesMut,
    reset: Option<u32>,
    ended: bool,
}

impl Answer {
    fn status(&self) -> (i32, String) {
        if let Some(code) = self.reset {
            return (13, format!("stream reset with HTTP/2 error code {code}"));
        }
        let fields = self.trailers.as_ref().or(self.headers.as_ref());
        let get = |name: &str| fields.and_then(|f| f.iter().find(|(n, _)| n == name)).map(|(_, v)| v.clone());
        match get("grpc-status").and_then(|s| s.parse().ok()) {
            Some(code) => (code, percent_decode(&get("grpc-message").unwrap_or_default())),
            None => (2, format!("no grpc-status; headers {:?}", self.headers)),
        }
    }

    /// The next complete gRPC message, if one has arrived.
    fn message(&mut self) -> Option<Bytes> {
        if self.data.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([self.data[1], self.data[2], self.data[3], self.data[4]]) as usize;
        if self.data.len() < 5 + len {
            return None;
        }
        self.data.advance(5);
        Some(self.data.split_to(len).freeze())
    }
}

/// The raw client; see the module docs.
pub struct RawClient {
    io: UnixStream,
    socket: String,
    rbuf: BytesMut,
    encoder: fluke_hpack::Encoder<'static>,
    decoder: fluke_hpack::Decoder<'static>,
    next_stream: u32,
    calls: usize,
    answers: HashMap<u32, Answer>,
    /// Stream ids by the caller's stream number.
    opened: HashMap<u32, u32>,
    /// A header block being gathered: stream, flags of its HEADERS, fragment.
    block: Option<(u32, u8, Vec<u8>)>,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient").field("socket", &self.socket).field("calls", &self.calls).finish()
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.put_uint(payload.len() as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
    out.extend_from_slice(payload);
}

fn padded(pad: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![pad];
    p.extend_from_slice(body);
    p.extend(std::iter::repeat_n(0u8, usize::from(pad)));
    p
}

impl RawClient {
    /// Connects and sends the preface, settings (huge windows) and a window update.
    ///
    /// # Errors
    /// The socket cannot be reached.
    pub async fn connect(socket: &Path) -> anyhow::Result<Self> {
        let mut io = UnixStream::connect(socket)
            .await
            .with_context(|| format!("connecting to {}", socket.display()))?;
        let mut out = PREFACE.to_vec();
        // ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 2^31-1, an unknown setting (ignored by peers)
        let mut settings = Vec::new();
        for (id, v) in [(0x2u16, 0u32), (0x4, 0x7fff_ffff), (0xf0f0, 7)] {
            settings.put_u16(id);
            settings.put_u32(v);
        }
        frame(&mut out, SETTINGS, 0, 0, &settings);
        frame(&mut out, WINDOW_UPDATE, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes());
        io.write_all(&out).await?;
        Ok(Self {
            io,
            socket: socket.display().to_string(),
            rbuf: BytesMut::with_capacity(64 << 10),
            encoder: fluke_hpack::Encoder::new(),
            decoder: fluke_hpack::Decoder::new(),
            next_stream: 1,
            calls: 0,
            answers: HashMap::new(),
            opened: HashMap::new(),
            block: None,
        })
    }

    /// Sends one request in the next shape; returns its stream id.
    async fn send(&mut self, path: &str, metadata: &[(&str, &str)], message: &[u8]) -> anyhow::Result<u32> {
        let shape = self.calls % 4;
        self.calls += 1;
        let stream = self.next_stream;
        self.next_stream += 2;
        let percent = self.socket.trim_start_matches('/').replace('/', "%2F");
        let large = "x".repeat(20 << 10);
        let timeout = format!("{}S", CALL_TIMEOUT.as_secs());
        let mut fields: Vec<(&[u8], &[u8])> =
            vec![(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.as_bytes())];
        match shape {
            1 => fields.push((b":authority", percent.as_bytes())),
            2 => fields.push((b":authority", b"localhost")),
            3 => fields.push((b":authority", self.socket.as_bytes())),
            _ => {}
        }
        fields.extend([
            (&b"content-type"[..], &b"application/grpc"[..]),
            (b"te", b"trailers"),
            (b"user-agent", b"stevedore-raw-h2/1"),
            (b"grpc-timeout", timeout.as_bytes()),
        ]);
        fields.extend(metadata.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        if shape == 2 {
            fields.push((b"x-stevedore-large", large.as_bytes()));
        }
        let block = self.encoder.encode(fields);
        let mut out = Vec::new();
        match shape {
            1 => {
                let third = block.len() / 3;
                let mut first = vec![0, 0, 0, 0, 16];
                first.extend_from_slice(&block[..third]);
                frame(&mut out, HEADERS, PADDED | PRIORITY, stream, &padded(13, &first));
                frame(&mut out, CONTINUATION, 0, stream, &block[third..2 * third]);
                frame(&mut out, CONTINUATION, END_HEADERS, stream, &block[2 * third..]);
            }
            2 => {
                let mut chunks = block.chunks(MAX_FRAME).peekable();
                let mut kind = HEADERS;
                while let Some(c) = chunks.next() {
                    frame(&mut out, kind, if chunks.peek().is_none() { END_HEADERS } else { 0 }, stream, c);
                    kind = CONTINUATION;
                }
            }
            3 => {
                frame(&mut out, PING, 0, 0, b"stvdore!");
                frame(&mut out, HEADERS, PADDED | END_HEADERS, stream, &padded(255, &block));
            }
            _ => frame(&mut out, HEADERS, END_HEADERS, stream, &block),
        }
        let mut msg = Vec::with_capacity(5 + message.len());
        msg.put_u8(0);
        msg.put_u32(message.len() as u32);
        msg.extend_from_slice(message);
        match shape {
            1 => {
                let cut = msg.len().min(3);
                frame(&mut out, DATA, PADDED, stream, &padded(7, &msg[..cut]));
                frame(&mut out, DATA, 0, stream, &msg[cut..]);
                frame(&mut out, DATA, END_STREAM, stream, &[]);
            }
            2 => frame(&mut out, DATA, PADDED | END_STREAM, stream, &padded(40, &msg)),
            _ => frame(&mut out, DATA, END_STREAM, stream, &msg),
        }
        self.io.write_all(&out).await?;
        self.answers.insert(stream, Answer::default());
        Ok(stream)
    }

    /// A unary call.
    ///
    /// # Errors
    /// The connection failed or broke the protocol.
    pub async fn unary(
        &mut self,
        path: &str,
        metadata: &[(&str, &str)],
        req: Bytes,
    ) -> anyhow::Result<Reply> {
        let stream = self.send(path, metadata, &req).await?;
        while !self.answers[&stream].ended {
            tokio::time::timeout(CALL_TIMEOUT, self.read_frame()).await.context("no answer")??;
        }
        let mut answer = self.answers.remove(&stream).expect("inserted by send");
        let (code, message) = answer.status();
        let resp =
            if code == 0 { Some(answer.message().context("an OK answer without a message")?) } else { None };
        Ok(Reply { code, message, resp })
    }

    /// Starts a server stream.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn open(
        &mut self,
        id: u32,
        path: &str,
        metadata: &[(&str, &str)],
        req: Bytes,
    ) -> anyhow::Result<()> {
        let stream = self.send(path, metadata, &req).await?;
        self.opened.insert(id, stream);
        Ok(())
    }

    /// The next message or end of a server stream, waiting at most `wait`.
    ///
    /// # Errors
    /// The connection failed or broke the protocol.
    pub async fn next(&mut self, id: u32, wait: Duration) -> anyhow::Result<StreamEvent> {
        let stream = *self.opened.get(&id).context("no such stream")?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let answer = self.answers.get_mut(&stream).context("stream gone")?;
            if let Some(m) = answer.message() {
                return Ok(StreamEvent::Msg(m));
            }
            if answer.ended {
                let (code, message) = answer.status();
                return Ok(StreamEvent::End { code, message });
            }
            match tokio::time::timeout_at(deadline, self.read_frame()).await {
                Ok(r) => r?,
                Err(_) => return Ok(StreamEvent::Nothing),
            }
        }
    }

    /// Resets a server stream with CANCEL.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn cancel(&mut self, id: u32) -> anyhow::Result<()> {
        let stream = self.opened.remove(&id).context("no such stream")?;
        let mut out = Vec::new();
        frame(&mut out, RST_STREAM, 0, stream, &8u32.to_be_bytes());
        self.io.write_all(&out).await?;
        self.answers.remove(&stream);
        Ok(())
    }

    /// Reads and handles one frame. Cancel-safe: a partial frame stays buffered.
    async fn read_frame(&mut self) -> anyhow::Result<()> {
        loop {
            if self.rbuf.len() >= 9 {
                let len = (usize::from(self.rbuf[0]) << 16)
                    | (usize::from(self.rbuf[1]) << 8)
                    | usize::from(self.rbuf[2]);
                if self.rbuf.len() >= 9 + len {
                    let head = self.rbuf.split_to(9);
                    let payload = self.rbuf.split_to(len).freeze();
                    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    return self.handle(head[3], head[4], stream, payload).await;
                }
            }
            if self.io.read_buf(&mut self.rbuf).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }

    async fn handle(&mut self, kind: u8, flags: u8, stream: u32, mut payload: Bytes) -> anyhow::Result<()> {
        if matches!(kind, DATA | HEADERS) && flags & PADDED != 0 {
            let pad = usize::from(payload.get_u8());
            payload.truncate(payload.len().checked_sub(pad).context("padding longer than the frame")?);
        }
        match kind {
            DATA => {
                if let Some(a) = self.answers.get_mut(&stream) {
                    a.data.extend_from_slice(&payload);
                    a.ended |= flags & END_STREAM != 0;
                }
            }
            HEADERS => {
                if flags & PRIORITY != 0 {
                    payload.advance(5);
                }
                self.block = Some((stream, flags, payload.to_vec()));
                if flags & END_HEADERS != 0 {
                    self.end_block()?;
                }
            }
            CONTINUATION => {
                let (s, _, block) = self.block.as_mut().context("CONTINUATION without HEADERS")?;
                anyhow::ensure!(*s == stream, "CONTINUATION of another stream");
                block.extend_from_slice(&payload);
                if flags & END_HEADERS != 0 {
                    self.end_block()?;
                }
            }
            RST_STREAM => {
                if let Some(a) = self.answers.get_mut(&stream) {
                    a.reset = Some(u32::from_be_bytes(payload[..4].try_into()?));
                    a.ended = true;
                }
            }
            SETTINGS if flags & ACK == 0 => {
                let mut out = Vec::new();
                frame(&mut out, SETTINGS, ACK, 0, &[]);
                self.io.write_all(&out).await?;
            }
            PING if flags & ACK == 0 => {
                let mut out = Vec::new();
                frame(&mut out, PING, ACK, 0, &payload);
                self.io.write_all(&out).await?;
            }
            GOAWAY => bail!(
                "GOAWAY from the server: {:?}",
                String::from_utf8_lossy(&payload[8.min(payload.len())..])
            ),
            _ => {}
        }
        Ok(())
    }

    fn end_block(&mut self) -> anyhow::Result<()> {
        let (stream, flags, block) = self.block.take().context("no block")?;
        let fields: Vec<(String, String)> = self
            .decoder
            .decode(&block)
            .map_err(|e| anyhow::anyhow!("HPACK: {e:?}"))?
            .into_iter()
            .map(|(n, v)| {
                (String::from_utf8_lossy(&n).into_owned(), String::from_utf8_lossy(&v).into_owned())
            })
            .collect();
        if let Some(a) = self.answers.get_mut(&stream) {
            if a.headers.is_none() {
                a.headers = Some(fields);
            } else {
                a.trailers = Some(fields);
            }
            a.ended |= flags & END_STREAM != 0;
        }
        Ok(())
    }
}

/// `grpc-message` is percent-encoded on the wire.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
