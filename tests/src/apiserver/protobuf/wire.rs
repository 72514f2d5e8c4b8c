//! The protobuf wire format: varints, keys, length-delimited fields.

/// Wire type of a field key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// int32, int64, bool.
    Varint,
    /// double.
    Fixed64,
    /// string, bytes, messages, packed repeated.
    Len,
    /// float.
    Fixed32,
}

/// A malformed message.
#[derive(Debug, thiserror::Error)]
#[error("malformed protobuf: {0}")]
pub struct Malformed(pub &'static str);

/// Reads from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Whether everything was read.
    pub fn done(&self) -> bool {
        self.buf.is_empty()
    }

    /// One varint.
    ///
    /// # Errors
    /// Truncated or longer than 10 bytes.
    pub fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(Malformed("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("varint too long"))
    }

    /// A field key: tag and wire type.
    ///
    /// # Errors
    /// A bad key or an unsupported wire type (groups).
    pub fn key(&mut self) -> Result<(u32, WireType), Malformed> {
        let k = self.varint()?;
        let wt = match k & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            _ => return Err(Malformed("unsupported wire type")),
        };
        let tag = u32::try_from(k >> 3).map_err(|_| Malformed("tag out of range"))?;
        Ok((tag, wt))
    }

    /// `n` raw bytes.
    ///
    /// # Errors
    /// Truncated.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(Malformed("truncated field"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A length-delimited payload.
    ///
    /// # Errors
    /// Truncated.
    pub fn len_delimited(&mut self) -> Result<&'a [u8], Malformed> {
        let n = usize::try_from(self.varint()?).map_err(|_| Malformed("length out of range"))?;
        self.bytes(n)
    }

    /// A fixed 64-bit value.
    ///
    /// # Errors
    /// Truncated.
    pub fn fixed64(&mut self) -> Result<u64, Malformed> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| Malformed("truncated fixed64"))?))
    }

    /// Skips a value of wire type `wt`.
    ///
    /// # Errors
    /// Truncated.
    pub fn skip(&mut self, wt: WireType) -> Result<(), Malformed> {
        match wt {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.bytes(8).map(drop),
            WireType::Fixed32 => self.bytes(4).map(drop),
            WireType::Len => self.len_delimited().map(drop),
        }
    }
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a field key.
pub fn put_key(out: &mut Vec<u8>, tag: u32, wt: WireType) {
    let code = match wt {
        WireType::Varint => 0,
        WireType::Fixed64 => 1,
        WireType::Len => 2,
        WireType::Fixed32 => 5,
    };
    put_varint(out, u64::from(tag) << 3 | code);
}

/// Appends a length-delimited field.
pub fn put_len(out: &mut Vec<u8>, tag: u32, payload: &[u8]) {
    put_key(out, tag, WireType::Len);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), (-1i64) as u64] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.done());
        }
        let mut b = Vec::new();
        put_len(&mut b, 3, b"abc");
        let mut r = Reader::new(&b);
        assert_eq!(r.key().unwrap(), (3, WireType::Len));
        assert_eq!(r.len_delimited().unwrap(), b"abc");
        assert!(Reader::new(&[0x80]).varint().is_err());
    }
}
