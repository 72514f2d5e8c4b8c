//! Small pieces of the gRPC-over-HTTP/2 wire protocol the proxy needs without
//! decoding messages: deadlines, statuses in headers or trailers, message framing.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use tonic::Code;

/// The header carrying the caller's deadline.
pub const TIMEOUT_HEADER: &str = "grpc-timeout";
/// The header or trailer carrying the call's status code.
pub const STATUS_HEADER: &str = "grpc-status";

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The caller's deadline, if it sent a valid one.
pub fn deadline(headers: &HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get(TIMEOUT_HEADER)?.as_bytes())
}

/// The status code in `grpc-status`, if present. An unparseable value counts as
/// `Unknown`, as gRPC clients treat it.
pub fn status_code(headers: &HeaderMap) -> Option<Code> {
    let v = headers.get(STATUS_HEADER)?;
    Some(
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32),
    )
}

/// Frames one message (uncompressed) the way gRPC puts it on the wire.
pub fn encode_frame(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode(&mut buf).expect("BytesMut grows as needed, so encoding cannot run out of room");
    buf.freeze()
}

/// Why a framed message could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the 5-byte prefix announces.
    #[error("truncated gRPC message: {have} bytes, the frame needs {need}")]
    Truncated {
        /// Bytes received.
        have: usize,
        /// Bytes the prefix announced (plus the prefix).
        need: usize,
    },
    /// The message is compressed; the proxy never negotiates compression.
    #[error("compressed gRPC messages are not supported by typed handlers")]
    Compressed,
    /// More than one message in a unary body.
    #[error("expected one gRPC message, found trailing bytes")]
    Trailing,
    /// Over the size limit.
    #[error("gRPC message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not a valid protobuf message of the expected type.
    #[error("cannot decode gRPC message: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Reads the single message of a unary body.
pub fn decode_frame<M: prost::Message + Default>(mut body: Bytes, limit: usize) -> Result<M, FrameError> {
    if body.len() < 5 {
        return Err(FrameError::Truncated { have: body.len(), need: 5 });
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err(FrameError::Compressed);
    }
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    if body.len() < len {
        return Err(FrameError::Truncated { have: body.len() + 5, need: len + 5 });
    }
    if body.len() > len {
        return Err(FrameError::Trailing);
    }
    Ok(M::decode(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stevedore_proto::cri::VersionRequest;

    #[test]
    fn timeouts_parse_in_every_unit() {
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout(b"10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout(b"99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse_timeout(b"7n"), Some(Duration::from_nanos(7)));
    }

    #[test]
    fn malformed_timeouts_are_ignored() {
        for bad in [&b""[..], b"S", b"123456789S", b"10x", b"1.5S", b"-1S"] {
            assert_eq!(parse_timeout(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn status_codes_are_read_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(status_code(&h), None);
        h.insert(STATUS_HEADER, "5".parse().unwrap());
        assert_eq!(status_code(&h), Some(Code::NotFound));
        h.insert(STATUS_HEADER, "junk".parse().unwrap());
        assert_eq!(status_code(&h), Some(Code::Unknown));
    }

    #[test]
    fn frames_round_trip_and_bad_frames_are_named() {
        let msg = VersionRequest { version: "v1".into() };
        let framed = encode_frame(&msg);
        assert_eq!(decode_frame::<VersionRequest>(framed.clone(), 1024).unwrap(), msg);
        assert_eq!(
            decode_frame::<VersionRequest>(framed.slice(..3), 1024).unwrap_err(),
            FrameError::Truncated { have: 3, need: 5 }
        );
        assert!(matches!(
            decode_frame::<VersionRequest>(framed.clone(), 2),
            Err(FrameError::TooLarge { len: 4, limit: 2 })
        ));
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert_eq!(
            decode_frame::<VersionRequest>(compressed.into(), 1024).unwrap_err(),
            FrameError::Compressed
        );
    }
}
