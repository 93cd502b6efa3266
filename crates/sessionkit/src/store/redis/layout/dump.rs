//! A session hash in Redis's serialization format (the payload of `DUMP`
//! and `RESTORE`), so that a new session is one `RESTORE key deadline
//! payload ABSTTL`: created with its expiry in one command, refused with
//! `BUSYKEY` if the key exists, and no Lua script run per creation.
//!
//! Two layouts, then a two-byte RDB version and the CRC-64 (Jones) of
//! everything before it, both little-endian:
//!
//! - [`Layout::Listpack`] (RDB 10, Redis 7.0+): the hash as the listpack
//!   Redis itself keeps small hashes in, built entry for entry as Redis
//!   builds it (numbers as integers), so Redis adopts the bytes as they are
//!   instead of building the listpack field by field. For records that fit
//!   Redis's default listpack limits.
//! - [`Layout::Hash`] (RDB 6, every Redis since 2.6): a count, then field
//!   and value strings, which Redis re-encodes by its own rules. For large
//!   records and servers before 7.0.
//!
//! Tests check both against Redis itself: every test server runs with
//! `sanitize-dump-payload yes` (a malformed payload is refused, not
//! loaded), and a property test compares what `RESTORE` makes with what
//! `HSET` makes, `DUMP` bytes included (`tests/it/store.rs`). Why the
//! listpack is worth its code: `docs/bench/2026-12-02-recut.md`.

use crc::{Crc, Table, CRC_64_REDIS};

/// Payload layouts, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// RDB type 16, a hash stored as one listpack.
    Listpack,
    /// RDB type 4, a hash stored as plain field/value strings.
    Hash,
}

impl Layout {
    fn rdb(self) -> (u8, u16) {
        match self {
            Layout::Listpack => (16, 10),
            Layout::Hash => (4, 6),
        }
    }
}

/// The most fields (`hash-max-listpack-entries`) and the longest name or
/// value (`hash-max-listpack-value`) Redis keeps in a listpack by default.
/// A server configured lower still loads such a payload (it converts by the
/// field count only), so these only decide what is worth sending.
pub(crate) const LISTPACK_MAX_FIELDS: usize = 128;
pub(crate) const LISTPACK_MAX_LEN: usize = 64;

// Slice-by-16 tables: the checksum is most of the encoding cost.
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// Builds one payload: [`HashDump::new`] with the field count, one
/// [`field`](HashDump::field) per field, then [`finish`](HashDump::finish).
pub(crate) struct HashDump {
    out: Vec<u8>,
    layout: Layout,
    entries: usize,
}

/// Bytes before a listpack's first entry: RDB type, the RDB string length
/// (always in its 5-byte form, patched in `finish`), the listpack header
/// (total bytes, element count).
const LISTPACK_HEAD: usize = 1 + 5 + 6;

impl HashDump {
    /// A hash of `fields` fields; `capacity` is a size hint in bytes. The
    /// caller picks [`Layout::Listpack`] only for at most
    /// [`LISTPACK_MAX_FIELDS`] fields of names and values no longer than
    /// [`LISTPACK_MAX_LEN`].
    pub(crate) fn new(layout: Layout, fields: usize, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity + 32);
        out.push(layout.rdb().0);
        match layout {
            Layout::Listpack => out.resize(LISTPACK_HEAD, 0),
            Layout::Hash => write_len(&mut out, fields),
        }
        HashDump {
            out,
            layout,
            entries: 0,
        }
    }

    /// One field, its name given in parts (e.g. `["d:", key]`), and its value.
    pub(crate) fn field(&mut self, name: &[&[u8]], value: &[u8]) {
        match self.layout {
            Layout::Listpack => {
                self.lp_entry(name);
                self.lp_entry(&[value]);
                self.entries += 2;
            }
            Layout::Hash => {
                write_len(&mut self.out, name.iter().map(|p| p.len()).sum());
                for part in name {
                    self.out.extend_from_slice(part);
                }
                write_len(&mut self.out, value.len());
                self.out.extend_from_slice(value);
            }
        }
    }

    /// One listpack entry: an integer if the bytes are one as Redis reads
    /// them (`lpStringToInt64`), else a string; then its own length
    /// (`backlen`).
    fn lp_entry(&mut self, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let start = self.out.len();
        let mut digits = [0u8; 20];
        let int = if len <= digits.len() {
            let mut at = 0;
            for part in parts {
                digits[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            canonical_int(&digits[..len])
        } else {
            None
        };
        match int {
            Some(v) => write_lp_int(&mut self.out, v),
            None => {
                write_lp_str_len(&mut self.out, len);
                for part in parts {
                    self.out.extend_from_slice(part);
                }
            }
        }
        let entry = self.out.len() - start;
        write_lp_backlen(&mut self.out, entry);
    }

    /// The finished payload.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let (_, version) = self.layout.rdb();
        if self.layout == Layout::Listpack {
            self.out.push(0xff);
            let lp_len = self.out.len() - (1 + 5);
            // The caller sends listpacks only for small records (at most 128
            // fields of 64-byte names and values), far below 4 GiB.
            let lp_len = u32::try_from(lp_len).unwrap_or(u32::MAX);
            self.out[1] = 0x80;
            self.out[2..6].copy_from_slice(&lp_len.to_be_bytes());
            self.out[6..10].copy_from_slice(&lp_len.to_le_bytes());
            let count = self.entries.min(usize::from(u16::MAX)) as u16;
            self.out[10..12].copy_from_slice(&count.to_le_bytes());
        }
        self.out.extend_from_slice(&version.to_le_bytes());
        let crc = CRC64.checksum(&self.out);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out
    }
}

/// The integer `bytes` spell in Redis's canonical form ("0", or an optional
/// `-` and no leading zero; fits in an i64), as Redis stores such strings
/// in a listpack.
fn canonical_int(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    // Accumulated as a negative number, so that i64::MIN fits.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// A listpack string entry's header: 6-bit, 12-bit or 32-bit length.
fn write_lp_str_len(out: &mut Vec<u8>, len: usize) {
    if len < 1 << 6 {
        // Fits: checked just above.
        out.push(0x80 | len as u8);
    } else if len < 1 << 12 {
        out.push(0xe0 | (len >> 8) as u8);
        out.push((len & 0xff) as u8);
    } else {
        out.push(0xf0);
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
    }
}

/// A listpack entry's `backlen`: the entry's length, 7 bits per byte, read
/// from its last byte backwards (Redis's `lpEncodeBacklen`).
fn write_lp_backlen(out: &mut Vec<u8>, len: usize) {
    let bytes = match len {
        0..=127 => 1,
        128..=16_382 => 2,
        16_383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    for i in (0..bytes).rev() {
        // 7 bits per byte; every byte but the first flags "more".
        let seven = ((len >> (7 * i)) & 0x7f) as u8;
        out.push(if i + 1 == bytes { seven } else { seven | 0x80 });
    }
}

/// A listpack integer entry in the smallest of Redis's encodings.
fn write_lp_int(out: &mut Vec<u8>, v: i64) {
    match v {
        0..=127 => out.push(v as u8),
        -4096..=4095 => {
            let u = (v as u16) & 0x1fff;
            out.push(0xc0 | (u >> 8) as u8);
            out.push((u & 0xff) as u8);
        }
        -32_768..=32_767 => {
            out.push(0xf1);
            out.extend_from_slice(&(v as i16).to_le_bytes());
        }
        -8_388_608..=8_388_607 => {
            out.push(0xf2);
            out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        }
        -2_147_483_648..=2_147_483_647 => {
            out.push(0xf3);
            out.extend_from_slice(&(v as i32).to_le_bytes());
        }
        _ => {
            out.push(0xf4);
            out.extend_from_slice(&v.to_le_bytes());
        }
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
        let mut d = HashDump::new(Layout::Hash, 1, 0);
        d.field(&[b"d:", b"k"], b"v");
        let p = d.finish();
        assert_eq!(&p[..8], &[4, 1, 3, b'd', b':', b'k', 1, b'v']);
        assert_eq!(&p[8..10], &[6, 0]);
        assert_eq!(p[10..], CRC64.checksum(&p[..10]).to_le_bytes());
    }

    #[test]
    fn listpack_layout_is_what_redis_dumps() {
        // `HSET h f 1` then `DUMP h` on Redis 7.0: type 16, the listpack
        // (12 bytes: header, "f" as a 6-bit string, 1 as a 7-bit integer,
        // terminator), RDB version 10, checksum. Redis writes the length
        // in its shortest form, this encoder always in the 5-byte form.
        let mut d = HashDump::new(Layout::Listpack, 1, 0);
        d.field(&[b"f"], b"1");
        let p = d.finish();
        assert_eq!(p[0], 16);
        assert_eq!(&p[1..6], &[0x80, 0, 0, 0, 12]);
        let lp = [12, 0, 0, 0, 2, 0, 0x81, b'f', 2, 0x01, 1, 0xff];
        assert_eq!(&p[6..18], &lp);
        assert_eq!(&p[18..20], &[10, 0]);
        assert_eq!(p[20..], CRC64.checksum(&p[..20]).to_le_bytes());
    }

    #[test]
    fn listpack_integers_as_redis_encodes_them() {
        let enc = |s: &str| {
            let mut d = HashDump::new(Layout::Listpack, 1, 0);
            d.lp_entry(&[s.as_bytes()]);
            d.out[LISTPACK_HEAD..].to_vec()
        };
        assert_eq!(enc("0"), [0x00, 1]);
        assert_eq!(enc("127"), [0x7f, 1]);
        assert_eq!(enc("128"), [0xc0, 0x80, 2]);
        assert_eq!(enc("-1"), [0xdf, 0xff, 2]);
        assert_eq!(enc("4095"), [0xcf, 0xff, 2]);
        assert_eq!(enc("-4096"), [0xd0, 0x00, 2]);
        assert_eq!(enc("4096"), [0xf1, 0x00, 0x10, 3]);
        assert_eq!(enc("-32769"), [0xf2, 0xff, 0x7f, 0xff, 4]);
        assert_eq!(enc("8388608"), [0xf3, 0, 0, 0x80, 0, 5]);
        let ms = enc("1795000000000");
        assert_eq!(ms[0], 0xf4);
        assert_eq!(ms[1..9], 1_795_000_000_000i64.to_le_bytes());
        assert_eq!(ms[9], 9);
        // Not canonical: strings.
        assert_eq!(enc("01"), [0x82, b'0', b'1', 3]);
        assert_eq!(enc("-0"), [0x82, b'-', b'0', 3]);
        assert_eq!(enc("+1"), [0x82, b'+', b'1', 3]);
        assert_eq!(enc("")[..], [0x80, 1]);
        assert_eq!(enc("9223372036854775808")[0], 0x80 | 19);
        assert_eq!(enc("-9223372036854775808")[0], 0xf4);
        // A 64-byte string takes the 12-bit length form.
        let long = enc(&"x".repeat(64));
        assert_eq!(&long[..2], &[0xe0, 64]);
        assert_eq!(long.len(), 2 + 64 + 1);
        assert_eq!(long[66], 66);
    }

    #[test]
    fn long_listpack_strings_and_backlens_as_redis_encodes_them() {
        let enc = |n: usize| {
            let mut d = HashDump::new(Layout::Listpack, 1, 0);
            d.lp_entry(&[&vec![b'x'; n]]);
            d.out[LISTPACK_HEAD..].to_vec()
        };
        // 200 bytes: 12-bit length, a 202-byte entry, two-byte backlen.
        let e = enc(200);
        assert_eq!(&e[..2], &[0xe0, 200]);
        assert_eq!(&e[202..], &[0x01, 0x80 | 74]);
        // 5000 bytes: 32-bit length, a 5005-byte entry.
        let e = enc(5000);
        assert_eq!(&e[..5], &[0xf0, 0x88, 0x13, 0, 0]);
        assert_eq!(&e[5005..], &[39, 0x80 | 13]); // 5005 = 39 × 128 + 13
                                                  // 20000 bytes: a three-byte backlen.
        let e = enc(20_000);
        let l = 20_005;
        assert_eq!(
            &e[l..],
            &[
                (l >> 14) as u8,
                0x80 | ((l >> 7) & 0x7f) as u8,
                0x80 | (l & 0x7f) as u8
            ]
        );
    }
}
