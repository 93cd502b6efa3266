//! How a session lies in Redis: one HASH per session, its field names, how
//! a record is encoded into fields (and into a `RESTORE` payload) and
//! decoded back, and the Lua scripts with the arguments they take.
//!
//! - Key: `<prefix><storage id>`.
//! - Data fields `d:<key>`, each an encoded value.
//! - Metadata fields: `m:v` (layout version), `m:created`, `m:expires`
//!   (Unix ms; the key's TTL is `PEXPIREAT m:expires`), `m:permanent`
//!   (`0`/`1`), `m:lifetime` (ms, `0` = configured), `m:absolute` (Unix ms,
//!   `0` = none), `m:size` (the bytes of the data keys and values: what the
//!   size limit counts, kept exact by every save so that the save script
//!   checks the limit without reading the data).
//! - `m:user`: the user the session is attached to (empty: none), listed
//!   in the index `<prefix>user:<base64url(SHA-256(user))>`, a sorted set
//!   of storage ids scored by deadline (Unix ms) that expires with its
//!   latest deadline (`index.lua`); `m:seen`: when a request last saved
//!   or touched it (Unix ms); `m:i:<key>`: the application's notes about
//!   the session's device (an empty value: none).
//! - A forwarding marker (left by a cycled session): `m:v` and `m:moved`
//!   (the new storage id), expiring after `MOVED_GRACE`.
//! - `m:codec`: the values' format when it is not JSON (`msgpack`),
//!   written on create.
//! - Records of earlier versions may hold `m:rev` (a revision): ignored.
//!
//! The scripts name the same fields as literals (`save.lua`, `take.lua`).
//! Nothing here does I/O.

use std::io::Write as _;

use redis::{Cmd, RedisWrite as _, Script, Value};

use crate::store::{Meta, Record, LAYOUT_VERSION};
use crate::{Error, StorageId};

mod dump;

/// Prefix of data fields.
pub(super) const DATA: &str = "d:";
pub(super) const VERSION: &str = "m:v";
pub(super) const CREATED: &str = "m:created";
pub(super) const EXPIRES: &str = "m:expires";
pub(super) const PERMANENT: &str = "m:permanent";
pub(super) const LIFETIME: &str = "m:lifetime";
pub(super) const ABSOLUTE: &str = "m:absolute";
pub(super) const SIZE: &str = "m:size";
/// Only in a forwarding marker: the storage id the session moved to.
pub(super) const MOVED: &str = "m:moved";
pub(super) const USER: &str = "m:user";
pub(super) const SEEN: &str = "m:seen";
pub(super) const CODEC: &str = "m:codec";
/// Prefix of the device notes' fields.
pub(super) const INFO: &str = "m:i:";

/// The key of `user`'s index under `prefix` (a hash of the user id: any
/// id makes a well-formed key, and none shows in a key listing).
pub(crate) fn index_key(prefix: &str, user: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(user.as_bytes());
    let mut key = format!("{prefix}user:");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(digest, &mut key);
    key
}

/// Metadata a save writes besides the flags: the user attached by it
/// (`Some("")`: detached) and when the session was seen.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Extra<'a> {
    pub(super) user: Option<&'a str>,
    pub(super) seen_ms: Option<u64>,
    /// Device notes to write (`""`: removed).
    pub(super) info: &'a [(&'a str, &'a str)],
}

/// `d:<key>`, as one argument of `cmd`.
pub(super) fn data_arg(cmd: &mut Cmd, key: &str) {
    let mut w = cmd.writer_for_next_arg();
    // Writing into a command's buffer extends a Vec: it cannot fail.
    let _ = w.write_all(DATA.as_bytes());
    let _ = w.write_all(key.as_bytes());
}

/// The metadata fields a save writes: `m:v` and `m:created` only on
/// create, `m:expires` when the expiry changes, the flags on create or
/// when changed. Numbers are decimal; 0 means "none".
pub(super) fn meta_fields(
    meta: Option<&Meta>,
    on_create: bool,
    expires: Option<u64>,
    extra: Extra<'_>,
    mut field: impl FnMut(&str, &[u8]),
) {
    let mut num = itoa::Buffer::new();
    if let Some(ms) = expires {
        field(EXPIRES, num.format(ms).as_bytes());
    }
    if let Some(user) = extra.user {
        field(USER, user.as_bytes());
    }
    for (k, v) in extra.info {
        field(&format!("{INFO}{k}"), v.as_bytes());
    }
    if let Some(ms) = extra.seen_ms {
        field(SEEN, num.format(ms).as_bytes());
    }
    let Some(meta) = meta else { return };
    if on_create {
        field(VERSION, num.format(LAYOUT_VERSION).as_bytes());
        field(CREATED, num.format(meta.created_ms).as_bytes());
        if meta.codec != crate::Codec::Json {
            field(CODEC, meta.codec.name().as_bytes());
        }
    }
    field(PERMANENT, if meta.permanent { b"1" } else { b"0" });
    field(
        ABSOLUTE,
        num.format(meta.absolute_ms.unwrap_or(0)).as_bytes(),
    );
    field(
        LIFETIME,
        num.format(meta.lifetime_ms.unwrap_or(0)).as_bytes(),
    );
}

/// How many fields [`meta_fields`] writes.
pub(super) fn meta_count(
    meta: Option<&Meta>,
    on_create: bool,
    expires: Option<u64>,
    extra: Extra<'_>,
) -> usize {
    let mut n = 0;
    meta_fields(meta, on_create, expires, extra, |_, _| n += 1);
    n
}

/// What a new record writes besides its flags (`info`: its notes, as
/// [`info_pairs`] gives them).
pub(super) fn extra_of<'a>(record: &'a Record, info: &'a [(&'a str, &'a str)]) -> Extra<'a> {
    Extra {
        user: record.user.as_deref(),
        seen_ms: (record.meta.seen_ms > 0).then_some(record.meta.seen_ms),
        info,
    }
}

/// A record's device notes as pairs.
pub(super) fn info_pairs(record: &Record) -> Vec<(&str, &str)> {
    record
        .info
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A new record as a `RESTORE` payload (as the save script's create writes
/// it, fields in the same order): a listpack where
/// `listpack` allows it (the server reads RDB 10) and the record fits
/// Redis's default listpack limits, else the plain hash layout.
pub(crate) fn dump_record(record: &Record, listpack: bool) -> Vec<u8> {
    let expires = Some(record.meta.expires_ms);
    let info = info_pairs(record);
    let extra = extra_of(record, &info);
    let fields = 1 + record.data.len() + meta_count(Some(&record.meta), true, expires, extra);
    // The metadata fields are short names with numbers (at most 20 digits),
    // and the user id.
    let fits = fields <= dump::LISTPACK_MAX_FIELDS
        && record
            .user
            .as_ref()
            .is_none_or(|u| u.len() <= dump::LISTPACK_MAX_LEN)
        && record.info.iter().all(|(k, v)| {
            INFO.len() + k.len() <= dump::LISTPACK_MAX_LEN && v.len() <= dump::LISTPACK_MAX_LEN
        })
        && record.data.iter().all(|(k, v)| {
            DATA.len() + k.len() <= dump::LISTPACK_MAX_LEN && v.len() <= dump::LISTPACK_MAX_LEN
        });
    let layout = if listpack && fits {
        dump::Layout::Listpack
    } else {
        dump::Layout::Hash
    };
    let size: usize = record.data.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    let mut dump = dump::HashDump::new(layout, fields, size + 160);
    dump.field(
        &[SIZE.as_bytes()],
        itoa::Buffer::new().format(record.size()).as_bytes(),
    );
    for (k, v) in &record.data {
        dump.field(&[DATA.as_bytes(), k.as_bytes()], v);
    }
    meta_fields(Some(&record.meta), true, expires, extra, |f, v| {
        dump.field(&[f.as_bytes()], v);
    });
    dump.finish()
}

/// Whether a server of `version` (`major.minor`) reads listpack payloads
/// (RDB 10): Redis 7.0 and later.
pub(super) fn reads_listpack(version: Option<(u32, u32)>) -> bool {
    version.is_some_and(|v| v >= (7, 0))
}

/// The `major.minor` in an `INFO server` reply (`redis_version:7.0.15`).
pub(super) fn server_version(info: &str) -> Option<(u32, u32)> {
    let v = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))?
        .trim();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// An HGETALL reply: field/value pairs.
pub(super) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The field/value pairs of an HGETALL reply: a flat array (RESP2, and
/// from a script) or a map (RESP3).
pub(super) fn hash_reply(v: Value) -> Result<Fields, Error> {
    let not_a_hash = || Error::Corrupt("not a hash".to_owned());
    let bytes = |v: Value| match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        _ => Err(not_a_hash()),
    };
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(f, v)| Ok((bytes(f)?, bytes(v)?)))
            .collect(),
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(not_a_hash());
            }
            let mut fields = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(f), Some(v)) = (items.next(), items.next()) {
                fields.push((bytes(f)?, bytes(v)?));
            }
            Ok(fields)
        }
        _ => Err(not_a_hash()),
    }
}

/// Decodes an HGETALL reply into a record; `None` for no record or for the
/// forwarding marker a moved session leaves behind.
pub(crate) fn decode_record(fields: Fields) -> Result<Option<Record>, Error> {
    if fields.is_empty() || fields.iter().any(|(f, _)| f == MOVED.as_bytes()) {
        return Ok(None);
    }
    let corrupt = |what: &str| Error::Corrupt(what.to_owned());
    let mut record = Record::default();
    let mut version = None;
    let num = |v: &[u8], what: &str| -> Result<u64, Error> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt(what))
    };
    let none_if_zero = |ms: u64| (ms > 0).then_some(ms);
    for (field, value) in fields {
        if let Some(name) = field.strip_prefix(DATA.as_bytes()) {
            let name = String::from_utf8(name.to_vec()).map_err(|_| corrupt("non-UTF-8 key"))?;
            record.data.insert(name, value);
            continue;
        }
        let Ok(field) = std::str::from_utf8(&field) else {
            return Err(corrupt("unknown field namespace"));
        };
        match field {
            VERSION => version = Some(num(&value, "bad layout version")?),
            CREATED => record.meta.created_ms = num(&value, "bad m:created")?,
            EXPIRES => record.meta.expires_ms = num(&value, "bad m:expires")?,
            PERMANENT => record.meta.permanent = value == b"1",
            LIFETIME => record.meta.lifetime_ms = none_if_zero(num(&value, "bad m:lifetime")?),
            ABSOLUTE => record.meta.absolute_ms = none_if_zero(num(&value, "bad m:absolute")?),
            SEEN => record.meta.seen_ms = num(&value, "bad m:seen")?,
            CODEC => {
                record.meta.codec = std::str::from_utf8(&value)
                    .ok()
                    .and_then(crate::Codec::from_name)
                    .ok_or_else(|| corrupt("unknown m:codec"))?;
            }
            USER if value.is_empty() => record.user = None,
            USER => {
                record.user =
                    Some(String::from_utf8(value).map_err(|_| corrupt("non-UTF-8 m:user"))?);
            }
            f if f.starts_with(INFO) => {
                if !value.is_empty() {
                    let value = String::from_utf8(value).map_err(|_| corrupt("non-UTF-8 note"))?;
                    record.info.insert(f[INFO.len()..].to_owned(), value);
                }
            }
            // Metadata added by later minor versions is ignored, not fatal.
            f if f.starts_with("m:") => {}
            _ => return Err(corrupt("unknown field namespace")),
        }
    }
    match version {
        Some(v) if v == u64::from(LAYOUT_VERSION) => Ok(Some(record)),
        Some(_) => Err(corrupt("unknown layout version")),
        None => Err(corrupt("no layout version")),
    }
}

/// A Lua script of the store: its source and SHA-1 (what `EVALSHA` names).
pub(super) struct Lua {
    source: &'static str,
    hash: String,
}

impl Lua {
    fn new(source: &'static str) -> Self {
        Lua {
            source,
            hash: Script::new(source).get_hash().to_owned(),
        }
    }

    /// The command that runs the script on `key`, by its hash (`EVALSHA`),
    /// or by its source (`EVAL`, which also caches it in the server: the
    /// answer to `NOSCRIPT`); the script's arguments follow.
    pub(super) fn cmd(&self, by_source: bool, key: &str) -> Cmd {
        let mut cmd = if by_source {
            let mut c = redis::cmd("EVAL");
            c.arg(self.source);
            c
        } else {
            let mut c = redis::cmd("EVALSHA");
            c.arg(&self.hash);
            c
        };
        cmd.arg(1).arg(key);
        cmd
    }
}

/// The store's Lua scripts.
pub(super) struct Scripts {
    /// `save.lua`: every update, and creates where `RESTORE` is refused.
    pub(super) save: Lua,
    /// `take.lua`: read a session and leave a forwarding marker (cycle).
    pub(super) take: Lua,
    /// `index.lua`: list a session in its user's index.
    pub(super) index: Lua,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            save: Lua::new(include_str!("save.lua")),
            take: Lua::new(include_str!("take.lua")),
            index: Lua::new(include_str!("index.lua")),
        }
    }
}

/// One save by the script (see `save.lua`).
pub(super) struct Save<'a, I> {
    /// Create (refuse if the key exists) rather than update.
    pub(super) create: bool,
    pub(super) expires: Option<u64>,
    /// Delete the key when no data field remains (the script's `e` flag).
    pub(super) delete_if_empty: bool,
    /// Metadata to write: all of it on create, the flags when they changed.
    pub(super) meta: Option<&'a Meta>,
    /// Refuse an update that would take the data past this size.
    pub(super) limit: Option<usize>,
    pub(super) set: I,
    pub(super) remove: &'a [&'a str],
    pub(super) extra: Extra<'a>,
    /// Integers to add to data fields (`HINCRBY`).
    pub(super) increments: &'a [(&'a str, i64)],
    /// Fields that must hold these values for the update to write.
    pub(super) expect: &'a [(&'a str, Option<&'a [u8]>)],
}

impl<'a, I: ExactSizeIterator<Item = (&'a str, &'a [u8])>> Save<'a, I> {
    /// The script's arguments, appended to `cmd` (from [`Lua::cmd`]).
    pub(super) fn args(self, cmd: &mut Cmd) {
        cmd.arg(if self.create { "c" } else { "u" });
        match self.expires {
            Some(ms) => cmd.arg(ms),
            None => cmd.arg(""),
        };
        cmd.arg(if self.delete_if_empty { "e" } else { "" });
        match self.limit {
            Some(bytes) => cmd.arg(bytes),
            None => cmd.arg(""),
        };
        cmd.arg(self.set.len() + meta_count(self.meta, self.create, self.expires, self.extra));
        cmd.arg(self.increments.len());
        cmd.arg(self.expect.len());
        for (k, v) in self.set {
            data_arg(cmd, k);
            cmd.arg(v);
        }
        meta_fields(self.meta, self.create, self.expires, self.extra, |f, v| {
            cmd.arg(f).arg(v);
        });
        for (k, by) in self.increments {
            data_arg(cmd, k);
            cmd.arg(*by);
        }
        for (k, v) in self.expect {
            data_arg(cmd, k);
            cmd.arg(expected_arg(*v));
        }
        for k in self.remove {
            data_arg(cmd, k);
        }
    }
}

/// An expected value as the save script compares it: `=` and the value,
/// or `-` for none.
fn expected_arg(v: Option<&[u8]>) -> Vec<u8> {
    match v {
        Some(v) => [b"=".as_slice(), v].concat(),
        None => b"-".to_vec(),
    }
}

/// What the save script's conflict reply says a field holds (see
/// [`expected_arg`]); `None` for a reply that is neither form.
pub(super) fn held_value(arg: &[u8]) -> Option<Option<Vec<u8>>> {
    match arg.split_first() {
        Some((b'=', v)) => Some(Some(v.to_vec())),
        Some((b'-', [])) => Some(None),
        _ => None,
    }
}

/// Parses a forwarding marker's target.
pub(super) fn moved_to(to: Vec<u8>) -> Result<StorageId, Error> {
    String::from_utf8(to)
        .ok()
        .and_then(StorageId::parse)
        .ok_or_else(|| Error::Corrupt("bad forwarding marker".to_owned()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn field(f: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (f.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn decodes_a_record_and_rejects_foreign_layouts() {
        let ok = decode_record(vec![
            field("m:v", "1"),
            field("m:created", "5"),
            field("m:expires", "9"),
            field("m:permanent", "1"),
            field("m:lifetime", "0"),
            field("d:user", "\"bob\""),
        ])
        .unwrap()
        .unwrap();
        let meta = Meta {
            created_ms: 5,
            expires_ms: 9,
            permanent: true,
            ..Meta::default()
        };
        assert_eq!(ok.meta, meta);
        assert_eq!(
            ok.data.get("user").map(Vec::as_slice),
            Some(&b"\"bob\""[..])
        );
        assert!(decode_record(vec![field("m:v", "2")])
            .unwrap_err()
            .is_corrupt());
        assert!(decode_record(vec![field("d:a", "1")])
            .unwrap_err()
            .is_corrupt());
        assert!(decode_record(vec![field("m:v", "1"), field("x", "1")])
            .unwrap_err()
            .is_corrupt());
        assert!(
            decode_record(vec![field("m:v", "1"), field("m:expires", "soon")])
                .unwrap_err()
                .is_corrupt()
        );
        assert_eq!(
            decode_record(vec![field("m:v", "1"), field("m:moved", "x")]).unwrap(),
            None,
            "a forwarding marker is no session"
        );
    }

    #[test]
    fn listpack_payloads_go_to_redis_7_and_later_only() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(server_version(info), Some((7, 0)));
        assert_eq!(server_version("redis_version:6.2.14\n"), Some((6, 2)));
        assert_eq!(server_version("redis_version:8\n"), None);
        assert_eq!(server_version("no version here"), None);
        assert!(reads_listpack(Some((7, 0))) && reads_listpack(Some((8, 2))));
        assert!(!reads_listpack(Some((6, 2))) && !reads_listpack(None));
        // The same record, both ways: a listpack (RDB type 16) only when allowed.
        let meta = Meta {
            expires_ms: 9,
            ..Meta::default()
        };
        let record = Record::new([("a".to_owned(), b"1".to_vec())].into(), meta);
        assert_eq!(dump_record(&record, true)[0], 16);
        assert_eq!(dump_record(&record, false)[0], 4);
    }

    #[test]
    fn scripts_are_invoked_by_hash_or_by_source() {
        let scripts = Scripts::new();
        for (script, source) in [
            (&scripts.save, include_str!("save.lua")),
            (&scripts.take, include_str!("take.lua")),
        ] {
            let hash = Script::new(source).get_hash().to_owned();
            let by_hash = script.cmd(false, "k").get_packed_command();
            assert!(by_hash.windows(40).any(|w| w == hash.as_bytes()));
            let by_source = script.cmd(true, "k").get_packed_command();
            assert!(by_source
                .windows(source.len())
                .any(|w| w == source.as_bytes()));
        }
    }

    proptest! {
        /// Whatever a Redis hash holds, decoding returns a value or an error, never panics.
        #[test]
        fn any_hash_decodes_without_panic(
            fields in proptest::collection::vec(
                (prop_oneof![
                    Just(b"m:v".to_vec()), Just(b"m:created".to_vec()), Just(b"m:expires".to_vec()),
                    Just(b"m:lifetime".to_vec()), Just(b"m:permanent".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..12).prop_map(|mut v| { v.splice(0..0, *b"d:"); v }),
                    proptest::collection::vec(any::<u8>(), 0..12),
                ], proptest::collection::vec(any::<u8>(), 0..24)),
                0..10,
            )
        ) {
            let _ = decode_record(fields);
        }
    }
}
