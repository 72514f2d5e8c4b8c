//! The caller's side of a connection, made acceptable to the HTTP/2 server.
//!
//! The proxy must take every request that a grpc-go server (containerd) takes. Its
//! HTTP/2 server (h2) is stricter in a few places, and refuses whole streams with
//! `RST_STREAM(PROTOCOL_ERROR)` for them: an `:authority` that is not a URI authority
//! (grpc C-core clients on a unix socket send the socket path, percent-encoded), an
//! empty one, a missing `:scheme`, a `:path` with bytes a URI may not hold, the
//! hop-by-hop headers of HTTP/1 (`transfer-encoding`, `upgrade`, `keep-alive`,
//! `proxy-connection`) and `te` other than `trailers`. grpc-go ignores all of these.
//!
//! [`Sanitized`] sits between the socket and the server. It passes every frame
//! through as it is, except header blocks: each block (HEADERS and its CONTINUATION
//! frames, padding and priority included) is decoded with the caller's HPACK state
//! and written again as one block of literal fields that never touch the server's
//! dynamic table, with those fields made acceptable: a bad or empty `:authority`
//! becomes `localhost` (what grpc-go clients send on unix sockets), a missing or bad
//! `:scheme` becomes `http`, bad `:path` bytes are percent-encoded, the hop-by-hop
//! headers are dropped. A field that neither server accepts (a header name or value
//! that HTTP forbids) still resets that stream only, as grpc-go does. Nothing is
//! buffered but header blocks; the write side is untouched.

use std::{
    borrow::Cow,
    fmt, io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE_LEN: usize = 24;
pub(crate) const FRAME_HEADER: usize = 9;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const CONTINUATION: u8 = 0x9;
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY: u8 = 0x20;
/// Every HTTP/2 peer accepts frames this large before settings are exchanged.
const SAFE_FRAME: usize = 16_384;
/// The largest header block (and, in the relay, header list) taken: grpc-go's
/// default header list limit is 16 MiB.
pub(crate) const MAX_BLOCK: usize = 16 << 20;
/// The HPACK table size the server allows the caller (h2's default, which the
/// proxy's server keeps).
const HPACK_TABLE: usize = 4096;
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 16 << 10;

/// Where the parser is in the caller's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The connection preface, this many bytes still to pass.
    Preface(usize),
    /// At a frame boundary.
    Frame,
    /// Inside the payload of a frame that passes as it is, this many bytes left.
    Payload(usize),
    /// Something could not be parsed: everything passes as it is from here on, and
    /// the server reports the error as it sees fit.
    Passthrough,
}

/// A header block being gathered across HEADERS and CONTINUATION frames. Its buffers
/// are kept from block to block, so a connection's calls allocate nothing here.
#[derive(Debug, Default)]
struct Block {
    /// The stream of the block being gathered, if one is.
    stream: Option<u32>,
    end_stream: bool,
    fragment: Vec<u8>,
    /// The block's frames before the current one, exactly as they came.
    original: Vec<u8>,
    /// The decoded fields: (start in `bytes`, name length, value length).
    fields: Vec<(usize, usize, usize)>,
    bytes: Vec<u8>,
    /// The block encoded again.
    encoded: Vec<u8>,
}

impl Block {
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.fields.iter().map(|&(at, n, v)| (&self.bytes[at..at + n], &self.bytes[at + n..at + n + v]))
    }
}

/// A caller's connection whose header blocks are rewritten as described in the
/// module docs.
pub struct Sanitized<T> {
    inner: T,
    state: State,
    /// Bytes read and not yet parsed.
    raw: BytesMut,
    /// Bytes parsed and ready for the server.
    out: BytesMut,
    block: Block,
    decoder: fluke_hpack::Decoder<'static>,
    /// Whether a block has been changed: then every later block is written again
    /// (the server's HPACK table no longer follows the caller's). Until then blocks
    /// pass as they came.
    rewriting: bool,
    eof: bool,
}

impl<T> fmt::Debug for Sanitized<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sanitized").field("state", &self.state).field("buffered", &self.raw.len()).finish()
    }
}

impl<T> Sanitized<T> {
    /// Wraps the server side of a caller's connection.
    pub fn new(inner: T) -> Self {
        let mut decoder = fluke_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HPACK_TABLE);
        Self {
            inner,
            state: State::Preface(PREFACE_LEN),
            raw: BytesMut::with_capacity(READ_CHUNK),
            out: BytesMut::new(),
            block: Block::default(),
            decoder,
            rewriting: false,
            eof: false,
        }
    }

    /// Parses what has been read, moving whatever is ready to `out`.
    fn process(&mut self) {
        loop {
            match self.state {
                State::Passthrough => {
                    if self.block.stream.take().is_some() {
                        self.out.extend_from_slice(&self.block.original);
                    }
                    let all = self.raw.split();
                    self.out.unsplit(all);
                    return;
                }
                State::Preface(left) | State::Payload(left) => {
                    let n = left.min(self.raw.len());
                    if n == 0 && left > 0 {
                        return;
                    }
                    let chunk = self.raw.split_to(n);
                    self.out.unsplit(chunk);
                    self.state = if left == n { State::Frame } else { self.state.with_left(left - n) };
                }
                State::Frame => {
                    if self.raw.len() < FRAME_HEADER {
                        return;
                    }
                    let len = (usize::from(self.raw[0]) << 16)
                        | (usize::from(self.raw[1]) << 8)
                        | usize::from(self.raw[2]);
                    let kind = self.raw[3];
                    let in_block = self.block.stream.is_some();
                    if kind != HEADERS && kind != CONTINUATION && !in_block {
                        let header = self.raw.split_to(FRAME_HEADER);
                        self.out.unsplit(header);
                        self.state = State::Payload(len);
                        continue;
                    }
                    if len > MAX_BLOCK {
                        self.state = State::Passthrough;
                        continue;
                    }
                    if self.raw.len() < FRAME_HEADER + len {
                        self.raw.reserve(FRAME_HEADER + len - self.raw.len());
                        return;
                    }
                    let frame = self.raw.split_to(FRAME_HEADER + len);
                    if !self.header_frame(&frame) {
                        // a frame out of place, or a block that cannot be parsed: the
                        // server sees them as they came and answers with its own error
                        if self.block.stream.take().is_some() {
                            self.out.extend_from_slice(&self.block.original);
                        }
                        self.out.extend_from_slice(&frame);
                        self.state = State::Passthrough;
                    }
                }
            }
        }
    }

    /// Takes one HEADERS or CONTINUATION frame; false when it is out of place or
    /// malformed (the frames of the block so far are then still in `original`).
    fn header_frame(&mut self, frame: &[u8]) -> bool {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let mut payload = &frame[FRAME_HEADER..];
        let block = &mut self.block;
        match (kind, block.stream) {
            (HEADERS, None) => {
                if flags & PADDED != 0 {
                    let Some((&pad, rest)) = payload.split_first() else { return false };
                    let Some(keep) = rest.len().checked_sub(usize::from(pad)) else { return false };
                    payload = &rest[..keep];
                }
                if flags & PRIORITY != 0 {
                    let Some(rest) = payload.get(5..) else { return false };
                    payload = rest;
                }
                block.stream = Some(stream);
                block.end_stream = flags & END_STREAM != 0;
                block.fragment.clear();
                block.original.clear();
                block.fragment.extend_from_slice(payload);
            }
            (CONTINUATION, Some(s)) if s == stream => {
                if block.fragment.len() + payload.len() > MAX_BLOCK {
                    return false;
                }
                block.fragment.extend_from_slice(payload);
            }
            _ => return false,
        }
        if flags & END_HEADERS == 0 {
            block.original.extend_from_slice(frame);
            return true;
        }
        block.fields.clear();
        block.bytes.clear();
        let (fields, bytes) = (&mut block.fields, &mut block.bytes);
        // fluke-hpack panics on some malformed input: that is a block that does not
        // decode, for the server to refuse, not a lost connection
        let decoder = &mut self.decoder;
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder
                .decode_with_cb(&block.fragment, |name, value| {
                    fields.push((bytes.len(), name.len(), value.len()));
                    bytes.extend_from_slice(&name);
                    bytes.extend_from_slice(&value);
                })
                .is_ok()
        }));
        if !matches!(decoded, Ok(true)) {
            return false;
        }
        let mut encoded = std::mem::take(&mut block.encoded);
        encoded.clear();
        let changed = rewrite(block.fields(), &mut encoded);
        if changed || self.rewriting {
            self.rewriting = true;
            write_block(&mut self.out, stream, block.end_stream, &encoded);
        } else {
            self.out.extend_from_slice(&block.original);
            self.out.extend_from_slice(frame);
        }
        block.encoded = encoded;
        block.stream = None;
        true
    }
}

impl State {
    fn with_left(self, left: usize) -> State {
        match self {
            State::Preface(_) => State::Preface(left),
            State::Payload(_) => State::Payload(left),
            other => other,
        }
    }
}

/// Encodes a decoded header block again into `out`, fixed as the module docs say;
/// true when anything was changed.
fn rewrite<'a>(fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone, out: &mut Vec<u8>) -> bool {
    let is_request = fields.clone().any(|(n, _)| n == b":method");
    let is_connect = fields.clone().any(|(n, v)| n == b":method" && v == b"CONNECT");
    let mut changed = false;
    let mut refused = false;
    let mut has_scheme = false;
    for (name, value) in fields {
        let fixed: Cow<'_, [u8]> = match name {
            b":authority" if value.is_empty() || http::uri::Authority::try_from(value).is_err() => {
                Cow::Borrowed(b"localhost")
            }
            b":scheme" => {
                has_scheme = true;
                if http::uri::Scheme::try_from(value).is_err() {
                    Cow::Borrowed(b"http")
                } else {
                    Cow::Borrowed(value)
                }
            }
            b":path" if http::uri::PathAndQuery::try_from(value).is_err() => {
                Cow::Owned(percent_encode(value))
            }
            b"transfer-encoding" | b"upgrade" | b"keep-alive" | b"proxy-connection" => {
                changed = true;
                continue;
            }
            b"te" if value != b"trailers" => {
                changed = true;
                continue;
            }
            n if n.starts_with(b":") => Cow::Borrowed(value),
            _ => {
                if http::HeaderName::from_bytes(name).is_err()
                    || http::HeaderValue::from_bytes(value).is_err()
                {
                    refused = true;
                    continue;
                }
                Cow::Borrowed(value)
            }
        };
        if !has_scheme && is_request && !is_connect && !name.starts_with(b":") {
            // pseudo-headers come first: the missing scheme goes before the first field
            literal(out, b":scheme", b"http");
            has_scheme = true;
            changed = true;
        }
        changed |= *fixed != *value;
        literal(out, name, &fixed);
    }
    if !has_scheme && is_request && !is_connect {
        literal(out, b":scheme", b"http");
        changed = true;
    }
    if refused {
        // h2 resets just this stream on a connection-specific header, which is what
        // grpc-go does with a field it cannot accept
        literal(out, b"connection", b"close");
        changed = true;
    }
    changed
}

/// `%XX` for every byte a URI path may not hold.
pub(crate) fn percent_encode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    for &b in value {
        if b.is_ascii_graphic()
            && !matches!(b, b'"' | b'#' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}')
        {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// One HPACK "literal header field never indexed" with a literal name: it leaves
/// the server's dynamic table alone.
pub(crate) fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x10);
    string(out, name);
    string(out, value);
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// An HPACK integer with an `n`-bit prefix, the prefix's other bits being `first`.
fn integer(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// Writes a header block as HEADERS plus CONTINUATION frames.
pub(crate) fn write_block(out: &mut BytesMut, stream: u32, end_stream: bool, block: &[u8]) {
    let mut chunks = block.chunks(SAFE_FRAME).peekable();
    let mut first = true;
    if block.is_empty() {
        frame_header(out, 0, HEADERS, END_HEADERS | if end_stream { END_STREAM } else { 0 }, stream);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let (kind, mut flags) = if first { (HEADERS, 0) } else { (CONTINUATION, 0) };
        if first && end_stream {
            flags |= END_STREAM;
        }
        if last {
            flags |= END_HEADERS;
        }
        frame_header(out, chunk.len(), kind, flags, stream);
        out.extend_from_slice(chunk);
        first = false;
    }
}

pub(crate) fn frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.reserve(FRAME_HEADER + len);
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

impl<T: AsyncRead + Unpin> AsyncRead for Sanitized<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // whatever is left unparsed (a truncated frame) goes as it is
                let rest = this.raw.split();
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.out.unsplit(rest);
                continue;
            }
            if this.raw.capacity() - this.raw.len() < READ_CHUNK / 4 {
                this.raw.reserve(READ_CHUNK);
            }
            if ready!(tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.raw))? == 0 {
                this.eof = true;
                continue;
            }
            this.process();
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sanitized<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    fn encode(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in fields {
            literal(&mut out, n.as_bytes(), v.as_bytes());
        }
        out
    }

    /// Reads everything through a [`Sanitized`] fed `chunk` bytes per read.
    async fn sanitize(input: &[u8], chunk: usize) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let writer = {
            let input = input.to_vec();
            tokio::spawn(async move {
                for c in input.chunks(chunk) {
                    tokio::io::AsyncWriteExt::write_all(&mut client, c).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut out = Vec::new();
        Sanitized::new(server).read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    /// Splits the server's input into frames: (type, flags, stream, payload); header
    /// blocks decoded.
    /// A frame as the server sees it: type, flags, stream, decoded fields, payload.
    type Seen = (u8, u8, u32, Vec<(String, String)>, Vec<u8>);

    fn frames(bytes: &[u8]) -> Vec<Seen> {
        assert_eq!(&bytes[..24], PREFACE);
        let mut rest = &bytes[24..];
        let mut decoder = fluke_hpack::Decoder::new();
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
            let payload = rest[9..9 + len].to_vec();
            let fields = if rest[3] == HEADERS && rest[4] & END_HEADERS != 0 {
                decoder
                    .decode(&payload)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect()
            } else {
                Vec::new()
            };
            out.push((rest[3], rest[4], stream, fields, payload));
            rest = &rest[9 + len..];
        }
        out
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn grpc_c_core_authorities_and_odd_headers_become_acceptable() {
        let block = encode(&[
            (":method", "POST"),
            (":authority", "tmp%2Fx%2Fproxy.sock"),
            (":path", "/runtime.v1.RuntimeService/Version x"),
            ("content-type", "application/grpc"),
            ("te", "gzip"),
            ("transfer-encoding", "chunked"),
            ("x-big", &"v".repeat(40_000)),
        ]);
        // padded and with priority, split over a HEADERS and two CONTINUATIONs
        let mut first = vec![3u8, 0, 0, 0, 0, 7];
        first.extend_from_slice(&block[..100]);
        first.extend_from_slice(&[0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
        input.extend(frame(HEADERS, PADDED | PRIORITY, 1, &first));
        input.extend(frame(CONTINUATION, 0, 1, &block[100..30_000]));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, &block[30_000..]));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        for chunk in [1, 7, 1 << 20] {
            let out = frames(&sanitize(&input, chunk).await);
            let kinds: Vec<_> = out.iter().map(|f| (f.0, f.1)).collect();
            assert_eq!(
                kinds,
                [(0x4, 0), (HEADERS, 0), (CONTINUATION, 0), (CONTINUATION, END_HEADERS), (0x0, END_STREAM)]
            );
            let mut block = out[1].4.clone();
            block.extend_from_slice(&out[2].4);
            block.extend_from_slice(&out[3].4);
            let fields: Vec<(String, String)> = fluke_hpack::Decoder::new()
                .decode(&block)
                .unwrap()
                .into_iter()
                .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                .collect();
            let big = "v".repeat(40_000);
            assert_eq!(
                fields,
                pairs(&[
                    (":method", "POST"),
                    (":authority", "localhost"),
                    (":path", "/runtime.v1.RuntimeService/Version%20x"),
                    (":scheme", "http"),
                    ("content-type", "application/grpc"),
                    ("x-big", &big),
                ])
            );
            assert_eq!(out[4].4, b"\0\0\0\0\0");
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_callers_dynamic_table_and_huffman_strings_are_followed() {
        // RFC 7541 C.4.1 and C.4.2: Huffman-coded, the second refers to the first's entry
        let first = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4,
            0xff,
        ];
        let second = [0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf];
        let empty_authority = encode(&[(":method", "POST"), (":path", "/a"), (":authority", "")]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &first));
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &second));
        input.extend(frame(HEADERS, END_HEADERS, 5, &empty_authority));
        let out = frames(&sanitize(&input, 3).await);
        let base =
            [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
        assert_eq!(out[0].3, pairs(&base));
        // blocks that need no change pass as they came, Huffman strings and all
        assert_eq!(out[0].4, first);
        assert_eq!((out[0].1, out[0].2), (END_HEADERS | END_STREAM, 1));
        let mut with_cache = base.to_vec();
        with_cache.push(("cache-control", "no-cache"));
        assert_eq!(out[1].3, pairs(&with_cache));
        assert_eq!(
            out[2].3,
            pairs(&[(":method", "POST"), (":path", "/a"), (":authority", "localhost"), (":scheme", "http")])
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn fields_no_server_takes_reset_the_stream_and_garbage_passes_as_it_came() {
        let bad = encode(&[(":method", "POST"), (":scheme", "http"), (":path", "/a"), ("x-bad", "a\u{1}b")]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &bad));
        let out = frames(&sanitize(&input, 1 << 20).await);
        assert_eq!(out[0].3.last().unwrap(), &("connection".to_owned(), "close".to_owned()));
        // an index the table does not have: the block goes to the server unchanged
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0x7f]));
        input.extend(frame(0x0, 0, 1, b"abc"));
        assert_eq!(sanitize(&input, 2).await, input);
        // a table size update whose integer never ends (the decoder library panics on
        // it): the same
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &[0x3f]));
        assert_eq!(sanitize(&input, 1 << 20).await, input);
    }
}
