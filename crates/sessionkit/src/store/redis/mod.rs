//! [`RedisStore`]: one Redis HASH per session.
//!
//! Layout (see ARCHITECTURE.md): key `<prefix><storage id>`; data fields
//! `d:<key>` holding encoded values; metadata fields `m:v` (layout version),
//! `m:created`, `m:expires` (Unix ms), `m:permanent` (`0`/`1`), `m:lifetime`
//! (ms, `0` = configured). The key's TTL is set with `PEXPIREAT m:expires`.
//!
//! Writes are atomic and one round trip each. A new session is one
//! `RESTORE` of the whole hash with its expiry (the `dump` module), refused
//! if the key exists. A change is one `MULTI`/`EXEC` transaction that bumps
//! the record's revision `m:rev`, writes, and sets the expiry; the revision
//! it returns tells whether it hit the record (else one more read decides),
//! so a deleted session is never brought back (its remains are deleted at
//! once) and a moved one forwards.
//! The Lua script `save.lua` (EVALSHA) does the rest: emptying a session
//! (delete the key when no data is left) and creating where `RESTORE` is
//! not allowed. Every call touches exactly one key, so every operation stays
//! within one Cluster slot.
//!
//! With a [`ClientCache`] (the `cache` module), loads are answered in
//! process when possible and Redis keeps them coherent (RESP3 client
//! tracking on the store's connection; with several connections, each
//! caches its share of the sessions: the `lanes` module).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

use redis::{Client, Cmd, IntoConnectionInfo, RedisWrite as _, Script, Value};

use super::{BoxFuture, Changes, Meta, Record, SessionStore, UpdateOutcome, LAYOUT_VERSION};
use crate::{Error, StorageId};

mod cache;
mod dump;
mod lanes;
mod lru;

use cache::Outcome;
pub use cache::{
    CacheStats, ClientCache, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_HEARTBEAT, DEFAULT_CACHE_TTL,
};
use lanes::{Lane, Lanes, Opener};

/// Default key prefix (the seed's).
pub const DEFAULT_PREFIX: &str = "session:";
/// Default bound on one Redis call, connection included.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Default bound on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The address used when none is given, as in the seed.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";

const DATA: &str = "d:";

/// A [`SessionStore`] on Redis, through redis-rs's [`ConnectionManager`]
/// (multiplexed connections that reconnect by themselves). Cloning is cheap
/// and shares the connections (and the [`ClientCache`], if any).
///
/// [`connect`](RedisStore::connect) opens the connection; under actix-web
/// it reopens on the first worker thread, whose I/O it then runs, rather
/// than staying on the thread that built the store. More connections, each
/// serving a fixed share of the sessions: [`RedisStoreBuilder::with_connections`].
///
/// ```no_run
/// # async fn run() -> Result<(), sessionkit::Error> {
/// use sessionkit::RedisStore;
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// // or: RedisStore::builder().with_prefix("myapp:session:").connect(url).await?
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    lanes: Arc<Lanes>,
    prefix: String,
    save: Script,
    take: Script,
    /// How creates use `RESTORE`: [`RESTORE_LISTPACK`], [`RESTORE_HASH`] or
    /// [`RESTORE_NONE`]; only ever lowered, when the server refuses a payload.
    restore: Arc<AtomicU8>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.lanes.timeout())
            .field("connections", &self.lanes.len())
            .field("client_cache", &self.lanes.cached())
            .finish_non_exhaustive()
    }
}

/// Options for a [`RedisStore`]; start with [`RedisStore::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    prefix: String,
    response_timeout: Duration,
    connect_timeout: Duration,
    cache: Option<ClientCache>,
    connections: usize,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            prefix: DEFAULT_PREFIX.to_owned(),
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            cache: Some(ClientCache::default()),
            connections: 1,
        }
    }
}

impl RedisStoreBuilder {
    /// Key prefix (default `session:`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound on each Redis call (default 500 ms). A call that takes longer
    /// fails with [`Error::Unavailable`].
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Bound on each connection attempt (default 500 ms).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many connections to Redis the store keeps (default 1; 1 to 64,
    /// values outside count as the nearest).
    ///
    /// Each session always goes through the same connection (chosen by its
    /// storage id), so its commands — and, with the client cache, the
    /// invalidations about it — arrive in one order, and each connection
    /// caches only its own share of the sessions (the cache's
    /// [`max_entries`](ClientCache::with_max_entries) is split evenly among
    /// them). The cost: every connection hears of every session write made
    /// on the others (one short push each, ignored). On a 2-CPU machine
    /// under actix-web, two connections did 0.84× the `new` and 0.79× the
    /// write throughput of one; more may pay with many worker threads, when
    /// a single connection's I/O would keep its thread busy.
    ///
    /// The first connection opens in [`connect`](Self::connect) (and, under
    /// actix-web, again on a worker thread), the others when first needed.
    /// Under actix-web, connection `k` opens on worker thread `k` (modulo
    /// the worker count), which then runs its I/O: see
    /// [`SessionStore::worker_started`].
    pub fn with_connections(mut self, connections: usize) -> Self {
        self.connections = connections.clamp(1, crate::id::MAX_SHARDS);
        self
    }

    /// Caches session records in process, kept coherent by Redis (on by
    /// default, with [`ClientCache::default`]).
    ///
    /// A load of a session this process read or wrote recently then costs
    /// no Redis round trip, and a write one (the save script) instead of
    /// two. Any write by any client invalidates the entry here (RESP3
    /// `CLIENT TRACKING`, which needs Redis 6 or later; the connection is
    /// switched to RESP3 whatever the URL says). Connection loss flushes the
    /// cache. Memory is bounded by [`ClientCache::with_max_entries`].
    ///
    /// If the server refuses RESP3 or client tracking (Redis 5, or an ACL
    /// without `CLIENT`), the store logs a warning and runs without the
    /// cache.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionkit::Error> {
    /// use sessionkit::store::redis::ClientCache;
    /// use sessionkit::RedisStore;
    ///
    /// let store = RedisStore::builder()
    ///     .with_client_cache(ClientCache::default().with_max_entries(100_000))
    ///     .connect("redis://127.0.0.1:6379/")
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn with_client_cache(mut self, cache: ClientCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// No client cache: every load is one Redis round trip (`HGETALL`).
    pub fn without_client_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/`).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the URL is invalid or Redis cannot be reached.
    pub async fn connect(self, url: impl IntoConnectionInfo) -> Result<RedisStore, Error> {
        let client = Client::open(url).map_err(Error::unavailable)?;
        self.client(client).await
    }

    /// Connects with an existing [`redis::Client`].
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if Redis cannot be reached.
    pub async fn client(self, client: Client) -> Result<RedisStore, Error> {
        let mut opener = Opener {
            client,
            options: self.clone(),
        };
        // Lane 0 now: it proves Redis reachable, finds out whether the
        // server allows the client cache (if not, no other lane asks
        // again), and loads the scripts. It serves as lane 0 unless actix-web
        // workers start: lane 0 then reopens on one of them.
        let first = opener.clone().open(0).await?;
        if first.cache().is_none() {
            opener.options.cache = None;
        }
        let scripts = Scripts::new();
        first.load_scripts(&[&scripts.save, &scripts.take]).await?;
        Ok(self.store(Lanes::new(opener, first), scripts))
    }

    /// Uses an existing [`ConnectionManager`] (its own timeouts apply, and
    /// this builder's response timeout bounds each call on top): one
    /// connection, whatever [`with_connections`](Self::with_connections)
    /// says.
    ///
    /// Never caches: the [`ClientCache`] needs a connection of its own,
    /// which [`connect`](Self::connect) and [`client`](Self::client) make.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the scripts cannot be loaded into Redis.
    pub async fn manager(self, conn: ConnectionManager) -> Result<RedisStore, Error> {
        let lanes = Lanes::given(conn, &self.prefix, self.response_timeout);
        let store = self.store(lanes, Scripts::new());
        let lane = store.lanes.get(0).await?;
        lane.load_scripts(&[&store.save, &store.take]).await?;
        Ok(store)
    }

    fn store(self, lanes: Lanes, scripts: Scripts) -> RedisStore {
        RedisStore {
            lanes: Arc::new(lanes),
            save: scripts.save,
            take: scripts.take,
            prefix: self.prefix,
            restore: Arc::new(AtomicU8::new(RESTORE_LISTPACK)),
        }
    }
}

/// The store's Lua scripts.
struct Scripts {
    save: Script,
    take: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            save: Script::new(include_str!("save.lua")),
            take: Script::new(include_str!("take.lua")),
        }
    }
}

impl RedisStore {
    /// Options: prefix, timeouts, client cache.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// Connects to `url` with the default options.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the URL is invalid or Redis cannot be reached.
    pub async fn connect(url: impl IntoConnectionInfo) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }

    /// Connects with an existing [`redis::Client`] and the default options.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if Redis cannot be reached.
    pub async fn new(client: Client) -> Result<Self, Error> {
        Self::builder().client(client).await
    }

    /// Connects to `redis://127.0.0.1:6379/`, as the seed does when given no client.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if Redis cannot be reached.
    pub async fn connect_default() -> Result<Self, Error> {
        Self::connect(DEFAULT_URL).await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The client cache's counters (over all connections); `None` when the
    /// store runs without one ([`RedisStoreBuilder::without_client_cache`],
    /// or the server refused it).
    pub fn client_cache_stats(&self) -> Option<CacheStats> {
        self.lanes.stats()
    }

    /// The lane (connection, cache) that serves `id`.
    async fn lane(&self, id: &StorageId) -> Result<&Lane, Error> {
        let k = id.shard(self.lanes.len());
        match self.lanes.ready(k) {
            Some(lane) => Ok(lane),
            None => self.lanes.get(k).await,
        }
    }

    /// The Redis key of a session.
    pub fn key(&self, id: &StorageId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.as_str().len());
        key.push_str(&self.prefix);
        key.push_str(id.as_str());
        key
    }

    /// Creates with one `RESTORE` (see [`dump`]); `None` if this server
    /// refuses RESTORE (an ACL without `@dangerous`, a renamed command, a
    /// payload it cannot read), which switches this store to the save script.
    /// A listpack payload refused with `ERR` (a Redis before 7.0 reads no
    /// RDB 10) is retried at once in the plain hash layout, which every
    /// Redis reads, and the store keeps to that layout.
    async fn restore(
        &self,
        lane: &Lane,
        key: &str,
        record: &Record,
    ) -> Result<Option<bool>, Error> {
        loop {
            let (payload, layout) = match self.restore.load(Ordering::Relaxed) {
                RESTORE_NONE => return Ok(None),
                allowed => dump_record(record, allowed == RESTORE_LISTPACK),
            };
            let mut cmd = redis::cmd("RESTORE");
            cmd.arg(key)
                .arg(record.meta.expires_ms)
                .arg(&payload[..])
                .arg("ABSTTL");
            let mut conn = lane.conn();
            match lane
                .bounded_raw(cmd.query_async::<Value>(&mut conn))
                .await?
            {
                Ok(_) => return Ok(Some(true)),
                Err(e) if e.code() == Some("BUSYKEY") => return Ok(Some(false)),
                // Not permitted, unknown (renamed away), or a payload this
                // server cannot read: all answered with NOPERM or ERR.
                // Anything else (LOADING, READONLY, OOM…) is a state of the
                // server, not a refusal.
                Err(e) if !matches!(e.code(), Some("NOPERM" | "ERR")) => {
                    return Err(Error::unavailable(e))
                }
                Err(e) if layout == dump::Layout::Listpack && e.code() == Some("ERR") => {
                    self.restore.fetch_min(RESTORE_HASH, Ordering::Relaxed);
                    tracing::info!(
                        error = %e,
                        "Redis refused a listpack RESTORE payload (Redis before 7.0?); sessions are created in the plain hash layout from now on"
                    );
                }
                Err(e) => {
                    self.restore.store(RESTORE_NONE, Ordering::Relaxed);
                    tracing::warn!(
                        error = %e,
                        "Redis refused RESTORE; sessions are created with the save script from now on"
                    );
                    return Ok(None);
                }
            }
        }
    }
}

/// The `m:rev` of a forwarding marker (`take.lua` writes it): far enough
/// below zero that no number of late updates (each an `HINCRBY m:rev 1`)
/// brings it near a record's revision.
pub(crate) const MARKER_REV: i64 = -(1 << 62);

/// Creates send listpack payloads ([`dump::Layout::Listpack`]) when the
/// record fits.
const RESTORE_LISTPACK: u8 = 2;
/// Creates send plain hash payloads ([`dump::Layout::Hash`]).
const RESTORE_HASH: u8 = 1;
/// Creates run the save script.
const RESTORE_NONE: u8 = 0;

impl RedisStore {
    /// An update as one `MULTI`/`EXEC` transaction (no script): bump the
    /// revision, write. The revision tells what was there: a record of this
    /// layout has `m:rev` ≥ 1, so the new revision is ≥ 2; anything else —
    /// no hash (deleted or expired meanwhile: the transaction just created
    /// one), a forwarding marker (its `m:rev` is [`MARKER_REV`], far below
    /// zero), a record from before revisions — is classified afterwards
    /// with one `HMGET m:v m:moved`, a rare second round trip. A missing
    /// record leaves a hash without `m:v` (never a session: a load deletes it
    /// as corrupt), deleted here at once; a forwarding marker keeps its own
    /// short expiry.
    async fn transact(lane: &Lane, key: &str, changes: &Changes<'_>) -> Result<SaveReply, Error> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HINCRBY").arg(key).arg("m:rev").arg(1);
        let fields =
            changes.set.len() + meta_count(changes.flags.as_ref(), false, changes.expires_ms);
        if fields > 0 {
            let mut hset = redis::cmd("HSET");
            hset.arg(key);
            for (k, v) in &changes.set {
                data_arg(&mut hset, k);
                hset.arg(*v);
            }
            meta_fields(changes.flags.as_ref(), false, changes.expires_ms, |f, v| {
                hset.arg(f).arg(v);
            });
            pipe.add_command(hset).ignore();
        }
        if !changes.remove.is_empty() {
            let mut hdel = redis::cmd("HDEL");
            hdel.arg(key);
            for k in &changes.remove {
                data_arg(&mut hdel, k);
            }
            pipe.add_command(hdel).ignore();
        }
        if let Some(ms) = changes.expires_ms {
            pipe.cmd("PEXPIREAT").arg(key).arg(ms).ignore();
        }
        let mut conn = lane.conn();
        let (rev,): (i64,) = lane
            .bounded(pipe.query_async(&mut conn))
            .await
            .map_err(load_error)?;
        if let Ok(rev @ 2..) = u64::try_from(rev) {
            return Ok(SaveReply::Saved(rev));
        }
        let marks = redis::cmd("HMGET")
            .arg(key)
            .arg("m:v")
            .arg("m:moved")
            .to_owned();
        let (version, moved): (Option<Vec<u8>>, Option<String>) = lane
            .bounded(marks.query_async(&mut conn))
            .await
            .map_err(load_error)?;
        if let Some(to) = moved {
            if changes.expires_ms.is_some() {
                let grace = super::ms(super::MOVED_GRACE);
                let cmd = redis::cmd("PEXPIRE").arg(key).arg(grace).to_owned();
                lane.bounded(cmd.query_async::<i64>(&mut conn)).await?;
            }
            return match StorageId::parse(to) {
                Some(to) => Ok(SaveReply::Moved(to)),
                None => Err(Error::Corrupt("bad forwarding marker".to_owned())),
            };
        }
        if version.is_none() {
            let del = redis::cmd("DEL").arg(key).to_owned();
            if let Err(e) = lane.bounded(del.query_async::<i64>(&mut conn)).await {
                tracing::warn!(error = %crate::error::Chain(&e), "could not delete the remains of a late save");
            }
            return Ok(SaveReply::Gone);
        }
        // A record from before revisions: it has one now.
        Ok(SaveReply::Saved(1))
    }
}

/// `d:<key>`, as one argument.
fn data_arg(cmd: &mut Cmd, key: &str) {
    let mut w = cmd.writer_for_next_arg();
    // Writing into a command's buffer extends a Vec: it cannot fail.
    let _ = w.write_all(DATA.as_bytes());
    let _ = w.write_all(key.as_bytes());
}

/// The metadata fields a save writes: `m:v` and `m:created` only on create,
/// `m:expires` when the expiry changes, the flags on create or when changed.
/// Numbers are decimal; 0 means "none".
fn meta_fields(
    meta: Option<&Meta>,
    on_create: bool,
    expires: Option<u64>,
    mut field: impl FnMut(&'static str, &[u8]),
) {
    let mut num = itoa::Buffer::new();
    if let Some(ms) = expires {
        field("m:expires", num.format(ms).as_bytes());
    }
    let Some(meta) = meta else { return };
    if on_create {
        field("m:v", num.format(LAYOUT_VERSION).as_bytes());
        field("m:created", num.format(meta.created_ms).as_bytes());
    }
    field("m:permanent", if meta.permanent { b"1" } else { b"0" });
    field(
        "m:absolute",
        num.format(meta.absolute_ms.unwrap_or(0)).as_bytes(),
    );
    field(
        "m:lifetime",
        num.format(meta.lifetime_ms.unwrap_or(0)).as_bytes(),
    );
}

/// How many fields [`meta_fields`] writes.
fn meta_count(meta: Option<&Meta>, on_create: bool, expires: Option<u64>) -> usize {
    let mut n = 0;
    meta_fields(meta, on_create, expires, |_, _| n += 1);
    n
}

/// A new record as a `RESTORE` payload, revision 1 (as the save script's
/// create), and its layout: a listpack where `listpack` allows it and the
/// record fits Redis's default listpack limits, else the plain hash layout.
pub(crate) fn dump_record(record: &Record, listpack: bool) -> (Vec<u8>, dump::Layout) {
    let expires = Some(record.meta.expires_ms);
    let fields = record.data.len() + meta_count(Some(&record.meta), true, expires) + 1;
    // The metadata fields are short names with numbers (at most 20 digits).
    let fits = fields <= dump::LISTPACK_MAX_FIELDS
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
    // In the save script's order (revision, data, metadata), so that both
    // build the same listpack.
    dump.field(&[b"m:rev"], b"1");
    for (k, v) in &record.data {
        dump.field(&[DATA.as_bytes(), k.as_bytes()], v);
    }
    meta_fields(Some(&record.meta), true, expires, |f, v| {
        dump.field(&[f.as_bytes()], v);
    });
    (dump.finish(), layout)
}

/// One save, as the script takes it (see `save.lua`).
struct Save<'a, I> {
    /// Create (refuse if the key exists) rather than update.
    create: bool,
    expires: Option<u64>,
    /// Delete the key when no data field remains (the script's `e` flag).
    delete_if_empty: bool,
    /// Metadata to write: all of it on create, the flags when they changed.
    meta: Option<&'a Meta>,
    set: I,
    remove: &'a [&'a str],
}

impl<'a, I: ExactSizeIterator<Item = (&'a str, &'a [u8])>> Save<'a, I> {
    /// The EVALSHA command.
    fn cmd(self, script: &Script, key: &str) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(1).arg(key);
        cmd.arg(if self.create { "c" } else { "u" });
        match self.expires {
            Some(ms) => cmd.arg(ms),
            None => cmd.arg(""),
        };
        cmd.arg(if self.delete_if_empty { "e" } else { "" });
        cmd.arg(self.set.len() + meta_count(self.meta, self.create, self.expires));
        for (k, v) in self.set {
            data_arg(&mut cmd, k);
            cmd.arg(v);
        }
        meta_fields(self.meta, self.create, self.expires, |f, v| {
            cmd.arg(f).arg(v);
        });
        for k in self.remove {
            data_arg(&mut cmd, k);
        }
        cmd
    }
}

/// Decodes an HGETALL reply into a record; `None` for no record or for the
/// forwarding marker a moved session leaves behind.
pub(crate) fn decode_record(fields: Fields) -> Result<Option<Record>, Error> {
    Ok(decode_revision(fields)?.map(|(record, _)| record))
}

/// [`decode_record`], with the record's revision (`m:rev`; 0 for a record
/// no save has touched since revisions exist).
fn decode_revision(fields: Fields) -> Result<Option<(Record, u64)>, Error> {
    if fields.is_empty() || fields.iter().any(|(f, _)| f == b"m:moved") {
        return Ok(None);
    }
    let corrupt = |what: &str| Error::Corrupt(what.to_owned());
    let mut record = Record::default();
    let mut version = None;
    let mut revision = 0;
    let num = |v: &[u8], what: &str| -> Result<u64, Error> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt(what))
    };
    for (field, value) in fields {
        if let Some(name) = field.strip_prefix(DATA.as_bytes()) {
            let name = String::from_utf8(name.to_vec()).map_err(|_| corrupt("non-UTF-8 key"))?;
            record.data.insert(name, value);
            continue;
        }
        match field.as_slice() {
            b"m:v" => version = Some(num(&value, "bad layout version")?),
            b"m:created" => record.meta.created_ms = num(&value, "bad m:created")?,
            b"m:expires" => record.meta.expires_ms = num(&value, "bad m:expires")?,
            b"m:permanent" => record.meta.permanent = value == b"1",
            b"m:lifetime" => {
                let ms = num(&value, "bad m:lifetime")?;
                record.meta.lifetime_ms = (ms > 0).then_some(ms);
            }
            b"m:absolute" => {
                let ms = num(&value, "bad m:absolute")?;
                record.meta.absolute_ms = (ms > 0).then_some(ms);
            }
            b"m:rev" => revision = num(&value, "bad m:rev")?,
            // Metadata added by later minor versions is ignored, not fatal.
            f if f.starts_with(b"m:") => {}
            _ => return Err(corrupt("unknown field namespace")),
        }
    }
    match version {
        Some(v) if v == u64::from(LAYOUT_VERSION) => Ok(Some((record, revision))),
        Some(_) => Err(corrupt("unknown layout version")),
        None => Err(corrupt("no layout version")),
    }
}

/// An HGETALL reply: field/value pairs.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The field/value pairs of an HGETALL reply: a flat array (RESP2, and
/// from a script) or a map (RESP3).
fn hash_reply(v: Value) -> Result<Fields, Error> {
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

/// What the save script answered.
enum SaveReply {
    /// Saved; the record's new revision.
    Saved(u64),
    /// Create refused: the key exists.
    Exists,
    /// Update refused: the record is gone.
    Gone,
    /// The update emptied the record, which was deleted.
    Deleted,
    /// The session moved to this storage id (update refused).
    Moved(StorageId),
}

fn save_reply(v: Value) -> Result<SaveReply, Error> {
    Ok(match v {
        Value::Array(items) => match items.as_slice() {
            [Value::Int(1), Value::Int(rev)] => SaveReply::Saved(u64::try_from(*rev).unwrap_or(0)),
            _ => return Err(Error::Corrupt("unexpected save reply".to_owned())),
        },
        Value::Int(0) => SaveReply::Exists,
        Value::Int(2) => SaveReply::Deleted,
        Value::BulkString(to) => match String::from_utf8(to).ok().and_then(StorageId::parse) {
            Some(to) => SaveReply::Moved(to),
            None => return Err(Error::Corrupt("bad forwarding marker".to_owned())),
        },
        _ => SaveReply::Gone,
    })
}

fn load_error(e: Error) -> Error {
    // WRONGTYPE means someone else's value sits at our key: that is corrupt
    // data for this session, not an outage.
    if let Error::Unavailable(src) = &e {
        if let Some(re) = src.downcast_ref::<redis::RedisError>() {
            if re.code() == Some("WRONGTYPE") {
                return Error::Corrupt("key holds a non-hash value".to_owned());
            }
        }
    }
    e
}

impl SessionStore for RedisStore {
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(async move {
            let key = self.key(id);
            let lane = self.lane(id).await?;
            let Some(cache) = lane.cache() else {
                return decode_record(hash_reply(lane.fetch(&key, false).await?.0)?);
            };
            if let Some(record) = cache.get(&key) {
                return Ok(Some(record));
            }
            let op = cache.begin(&key);
            let track = !cache.tracking(&op);
            let (reply, tracking) = lane.fetch(&key, track).await?;
            if tracking {
                op.confirm_tracking();
            }
            let found = decode_revision(hash_reply(reply)?)?;
            op.finish(Outcome::Loaded(found.as_ref().map(|(r, rev)| (r, *rev))));
            Ok(found.map(|(record, _)| record))
        })
    }

    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let key = self.key(id);
            // The cache is not involved: no entry can exist for an id nobody
            // has seen, and a new session is cached by its first load
            // (broadcast tracking needs no read to cover the key). Caching
            // every created session here cut `new` on actix-web from 26-27k
            // to 17-19k req/s (ARCHITECTURE.md).
            let lane = self.lane(id).await?;
            if let Some(created) = self.restore(lane, &key, record).await? {
                return Ok(created);
            }
            let save = Save {
                create: true,
                expires: Some(record.meta.expires_ms),
                delete_if_empty: false,
                meta: Some(&record.meta),
                set: record.data.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
                remove: &[],
            };
            let cmd = save.cmd(&self.save, &key);
            let created = matches!(
                save_reply(lane.eval(&self.save, &cmd).await?)?,
                SaveReply::Saved(_)
            );
            Ok(created)
        })
    }

    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        Box::pin(async move {
            let key = self.key(id);
            let lane = self.lane(id).await?;
            let op = lane.cache().map(|c| c.begin(&key));
            let reply = if changes.delete_if_empty {
                let save = Save {
                    create: false,
                    expires: changes.expires_ms,
                    delete_if_empty: true,
                    meta: changes.flags.as_ref(),
                    set: changes.set.iter().copied(),
                    remove: &changes.remove,
                };
                let cmd = save.cmd(&self.save, &key);
                save_reply(lane.eval(&self.save, &cmd).await?)?
            } else {
                Self::transact(lane, &key, changes).await?
            };
            if let Some(op) = op {
                op.finish(match reply {
                    // The script's write is reported back to this connection.
                    SaveReply::Saved(rev) if !changes.delete_if_empty => {
                        Outcome::Updated(changes, rev)
                    }
                    _ => Outcome::Dropped,
                });
            }
            Ok(match reply {
                SaveReply::Saved(_) => UpdateOutcome::Saved,
                SaveReply::Deleted => UpdateOutcome::Deleted,
                SaveReply::Moved(to) => UpdateOutcome::Moved(to),
                SaveReply::Gone | SaveReply::Exists => UpdateOutcome::Gone,
            })
        })
    }

    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let key = self.key(id);
            let lane = self.lane(id).await?;
            let op = lane.cache().map(|c| c.begin(&key));
            let mut conn = lane.conn();
            let cmd = redis::cmd("DEL").arg(&key).to_owned();
            lane.bounded(cmd.query_async::<i64>(&mut conn)).await?;
            drop(op); // the entry goes
            Ok(())
        })
    }

    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(async move {
            let key = self.key(id);
            let lane = self.lane(id).await?;
            let op = lane.cache().map(|c| c.begin(&key));
            let mut conn = lane.conn();
            let mut inv = self.take.prepare_invoke();
            inv.key(&key)
                .arg(moved_to.as_str())
                .arg(super::ms(super::MOVED_GRACE))
                .arg(MARKER_REV);
            let reply: Value = lane
                .bounded(inv.invoke_async(&mut conn))
                .await
                .map_err(load_error)?;
            drop(op); // the entry goes: the key now holds a forwarding marker
            decode_record(hash_reply(reply)?)
        })
    }

    fn worker_started(&self) {
        self.lanes.add_home();
    }
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
        assert_eq!(
            ok.meta,
            Meta {
                created_ms: 5,
                expires_ms: 9,
                permanent: true,
                ..Meta::default()
            }
        );
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
