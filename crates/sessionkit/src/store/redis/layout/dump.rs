//! A session hash in Redis's serialization format (the payload of `DUMP`
//! and `RESTORE`), so that a new session is one `RESTORE key deadline
//! payload ABSTTL`: created with its expiry in one command, refused with
//! `BUSYKEY` if the key exists, and no Lua script run per creation.
//!
//! The plain hash layout (RDB type 4, readable by every Redis since 2.6): a
//! field count, then field and value strings, each with its RDB length;
//! then the two-byte RDB version and the CRC-64 (Jones) of everything
//! before it, both little-endian. Redis re-encodes the hash by its own
//! rules as it loads it (a listpack when small). Tests check the payload
//! against Redis itself: every test server runs with
//! `sanitize-dump-payload yes`, and a property test compares what a
//! `RESTORE` made with what `HSET` makes (`tests/it/store.rs`).

use crc::{Crc, Table, CRC_64_REDIS};

/// RDB type of a hash stored as plain field/value strings.
const RDB_TYPE_HASH: u8 = 4;
/// The RDB version the payload claims: the oldest that has type 4 as it is.
const RDB_VERSION: u16 = 6;

// Slice-by-16 tables: the checksum is most of the encoding cost.
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// Builds one payload: [`HashDump::new`] with the field count, one
/// [`field`](HashDump::field) per field, then [`finish`](HashDump::finish).
pub(crate) struct HashDump {
    out: Vec<u8>,
}

impl HashDump {
    /// A hash of `fields` fields; `capacity` is a size hint in bytes.
    pub(crate) fn new(fields: usize, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity + 32);
        out.push(RDB_TYPE_HASH);
        write_len(&mut out, fields);
        HashDump { out }
    }

    /// One field, its name given in parts (e.g. `["d:", key]`), and its value.
    pub(crate) fn field(&mut self, name: &[&[u8]], value: &[u8]) {
        write_len(&mut self.out, name.iter().map(|p| p.len()).sum());
        for part in name {
            self.out.extend_from_slice(part);
        }
        write_len(&mut self.out, value.len());
        self.out.extend_from_slice(value);
    }

    /// The finished payload.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = CRC64.checksum(&self.out);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out
    }
}

/// An RDB length: 6 bits, 14 bits, 32 bits or 64 bits (big-endian).
fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 1 << 6 {
        // Fits: checked just above.
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push((len & 0xff) as u8);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(0x80);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_redis_crc64() {
        // The check value of CRC-64/REDIS, as in Redis's own crc64 test.
        assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn lengths_use_the_shortest_encoding() {
        let enc = |n| {
            let mut v = Vec::new();
            write_len(&mut v, n);
            v
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(63), [63]);
        assert_eq!(enc(64), [0x40, 64]);
        assert_eq!(enc(300), [0x41, 0x2c]);
        assert_eq!(enc(16383), [0x7f, 0xff]);
        assert_eq!(enc(16384), [0x80, 0, 0, 0x40, 0]);
    }

    #[test]
    fn payload_layout() {
        let mut d = HashDump::new(1, 0);
        d.field(&[b"d:", b"k"], b"v");
        let p = d.finish();
        assert_eq!(&p[..8], &[4, 1, 3, b'd', b':', b'k', 1, b'v']);
        assert_eq!(&p[8..10], &[6, 0]);
        assert_eq!(p[10..], CRC64.checksum(&p[..10]).to_le_bytes());
    }
}
