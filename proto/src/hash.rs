//! FNV, 32 bits, in the two variants Kubernetes and OpenKruise use: FNV-1a for
//! template hashes (`ComputeHash`, the CloneSet claim-template hash) and FNV-1 for
//! ControllerRevision names.

const OFFSET_BASIS: u32 = 0x811c_9dc5;
const PRIME: u32 = 0x0100_0193;

/// FNV-1a (32 bits) of `bytes`: XOR each byte in, then multiply.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    Fnv32a::default().write(bytes).sum32()
}

/// FNV-1 (32 bits) of `bytes`: multiply, then XOR each byte in.
pub fn fnv32(bytes: &[u8]) -> u32 {
    Fnv32::default().write(bytes).sum32()
}

/// An incremental FNV-1 (32 bits) hasher, like Go's `fnv.New32()`.
#[derive(Clone, Copy, Debug)]
pub struct Fnv32(u32);

impl Default for Fnv32 {
    fn default() -> Self {
        Self(OFFSET_BASIS)
    }
}

impl Fnv32 {
    /// Feeds `bytes` in.
    pub fn write(mut self, bytes: &[u8]) -> Self {
        for b in bytes {
            self.0 = self.0.wrapping_mul(PRIME);
            self.0 ^= u32::from(*b);
        }
        self
    }

    /// The hash of everything fed in so far.
    pub fn sum32(self) -> u32 {
        self.0
    }
}

/// An incremental FNV-1a (32 bits) hasher, like Go's `fnv.New32a()`.
#[derive(Clone, Copy, Debug)]
pub struct Fnv32a(u32);

impl Default for Fnv32a {
    fn default() -> Self {
        Self(OFFSET_BASIS)
    }
}

impl Fnv32a {
    /// Feeds `bytes` in.
    pub fn write(mut self, bytes: &[u8]) -> Self {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
        self
    }

    /// The hash of everything fed in so far.
    pub fn sum32(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn fnv1_known_values() {
        // Published FNV-1 32-bit test values (Go's hash/fnv tests).
        assert_eq!(fnv32(b""), 0x811c_9dc5);
        assert_eq!(fnv32(b"a"), 0x050c_5d7e);
        assert_eq!(fnv32(b"ab"), 0x7077_2d38);
        assert_eq!(fnv32(b"abc"), 0x439c_2f4b);
    }

    #[test]
    fn incremental_matches_one_shot() {
        let h = Fnv32::default().write(b"foo").write(b"bar").sum32();
        assert_eq!(h, fnv32(b"foobar"));
        let h = Fnv32a::default().write(b"foo").write(b"bar").sum32();
        assert_eq!(h, fnv32a(b"foobar"));
    }
}
