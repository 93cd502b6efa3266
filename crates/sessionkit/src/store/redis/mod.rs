//! [`RedisStore`]: one Redis HASH per session.
//!
//! Layout (see ARCHITECTURE.md): key `<prefix><storage id>`; data fields
//! `d:<key>` holding encoded values; metadata fields `m:v` (layout version),
//! `m:created`, `m:expires` (Unix ms), `m:permanent` (`0`/`1`), `m:lifetime`
//! (ms, `0` = configured). The key's TTL is set with `PEXPIREAT m:expires`.
//!
//! Writes go through one cached Lua script (EVALSHA) that checks existence,
//! sets and deletes fields, and sets the expiry atomically: it never
//! recreates a deleted session and never overwrites on create. Every call
//! touches exactly one key, so every operation stays within one Cluster slot.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, Script, Value};

use super::{BoxFuture, Changes, Meta, Record, SessionStore, UpdateOutcome, LAYOUT_VERSION};
use crate::{Error, StorageId};

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
/// (one multiplexed connection that reconnects by itself). Cloning is cheap
/// and shares the connection.
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
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    save: Script,
    take: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
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
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            prefix: DEFAULT_PREFIX.to_owned(),
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
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
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connect_timeout))
            // No retry loop inside the connection: while Redis is down, each
            // request makes (at most) one bounded reconnect attempt and fails
            // fast with a 503, and the first request after Redis is back
            // reconnects. Sleeping retries would make every request wait for
            // them (about 500 ms per request during an outage, measured).
            .set_number_of_retries(0);
        let connect = ConnectionManager::new_with_config(client, config);
        let conn = tokio::time::timeout(self.connect_timeout * 4, connect)
            .await
            .map_err(Error::unavailable)?
            .map_err(Error::unavailable)?;
        self.manager(conn).await
    }

    /// Uses an existing [`ConnectionManager`] (its own timeouts apply, and
    /// this builder's response timeout bounds each call on top).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the scripts cannot be loaded into Redis.
    pub async fn manager(self, conn: ConnectionManager) -> Result<RedisStore, Error> {
        let store = RedisStore {
            conn,
            prefix: self.prefix,
            timeout: self.response_timeout,
            save: Script::new(include_str!("save.lua")),
            take: Script::new(include_str!("take.lua")),
        };
        // Load the scripts now, so that the first request's save is one EVALSHA.
        // (After a Redis restart, redis-rs reloads them on NOSCRIPT.)
        let mut conn = store.conn.clone();
        for script in [&store.save, &store.take] {
            store
                .bounded(script.prepare_invoke().load_async(&mut conn))
                .await?;
        }
        Ok(store)
    }
}

impl RedisStore {
    /// Options: prefix and timeouts.
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

    /// The Redis key of a session.
    pub fn key(&self, id: &StorageId) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.as_str().len());
        key.push_str(&self.prefix);
        key.push_str(id.as_str());
        key
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::unavailable(e)),
            Err(elapsed) => Err(Error::unavailable(elapsed)),
        }
    }

    async fn run_save(&self, key: String, args: SaveArgs<'_>) -> Result<Value, Error> {
        let mut inv = self.save.key(key);
        match args.expires_ms {
            Some(ms) => inv.arg(args.mode).arg(ms),
            None => inv.arg(args.mode).arg(""),
        };
        inv.arg(if args.delete_if_empty { "1" } else { "0" })
            .arg(args.pairs.len());
        for (f, v) in &args.pairs {
            inv.arg(f.as_bytes()).arg(*v);
        }
        for f in &args.remove {
            inv.arg(f.as_str());
        }
        let mut conn = self.conn.clone();
        self.bounded(inv.invoke_async::<Value>(&mut conn)).await
    }
}

struct SaveArgs<'a> {
    mode: &'static str,
    expires_ms: Option<u64>,
    delete_if_empty: bool,
    pairs: Vec<(String, &'a [u8])>,
    remove: Vec<String>,
}

/// Metadata fields as written: `m:v` and `m:created` only on create,
/// `m:expires` when the expiry changes, the flags on create or when changed.
fn meta_pairs(meta: Option<&Meta>, on_create: bool, expires: Option<u64>) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::with_capacity(5);
    if let Some(ms) = expires {
        v.push(("m:expires".to_owned(), ms.to_string().into_bytes()));
    }
    let Some(meta) = meta else { return v };
    if on_create {
        v.push(("m:v".to_owned(), LAYOUT_VERSION.to_string().into_bytes()));
        let created = meta.created_ms.to_string().into_bytes();
        v.push(("m:created".to_owned(), created));
    }
    let permanent = if meta.permanent { "1" } else { "0" };
    v.push(("m:permanent".to_owned(), permanent.as_bytes().to_vec()));
    let absolute = meta.absolute_ms.unwrap_or(0).to_string().into_bytes();
    v.push(("m:absolute".to_owned(), absolute));
    let lifetime = meta.lifetime_ms.unwrap_or(0).to_string().into_bytes();
    v.push(("m:lifetime".to_owned(), lifetime));
    v
}

fn data_field(key: &str) -> String {
    let mut f = String::with_capacity(DATA.len() + key.len());
    f.push_str(DATA);
    f.push_str(key);
    f
}

/// Decodes an HGETALL reply into a record; `None` for no record or for the
/// forwarding marker a moved session leaves behind.
pub(crate) fn decode_record(fields: Fields) -> Result<Option<Record>, Error> {
    if fields.is_empty() || fields.iter().any(|(f, _)| f == b"m:moved") {
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
            // Metadata added by later minor versions is ignored, not fatal.
            f if f.starts_with(b"m:") => {}
            _ => return Err(corrupt("unknown field namespace")),
        }
    }
    match version {
        Some(v) if v == u64::from(LAYOUT_VERSION) => Ok(Some(record)),
        Some(_) => Err(corrupt("unknown layout version")),
        None => Err(corrupt("no layout version")),
    }
}

/// An HGETALL reply: field/value pairs.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn hash_reply(v: Value) -> Result<Fields, Error> {
    match redis::from_redis_value::<Fields>(v) {
        Ok(fields) => Ok(fields),
        Err(_) => Err(Error::Corrupt("not a hash".to_owned())),
    }
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
            let mut conn = self.conn.clone();
            let cmd = redis::cmd("HGETALL").arg(self.key(id)).to_owned();
            let reply: Value = self
                .bounded(cmd.query_async(&mut conn))
                .await
                .map_err(load_error)?;
            decode_record(hash_reply(reply)?)
        })
    }

    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let meta = meta_pairs(Some(&record.meta), true, Some(record.meta.expires_ms));
            let mut pairs: Vec<(String, &[u8])> = record
                .data
                .iter()
                .map(|(k, v)| (data_field(k), v.as_slice()))
                .collect();
            pairs.extend(meta.iter().map(|(k, v)| (k.clone(), v.as_slice())));
            let args = SaveArgs {
                mode: "c",
                expires_ms: Some(record.meta.expires_ms),
                delete_if_empty: false,
                pairs,
                remove: Vec::new(),
            };
            let reply = self.run_save(self.key(id), args).await?;
            Ok(matches!(reply, Value::Int(1)))
        })
    }

    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        Box::pin(async move {
            let meta = meta_pairs(changes.flags.as_ref(), false, changes.expires_ms);
            let mut pairs: Vec<(String, &[u8])> = changes
                .set
                .iter()
                .map(|(k, v)| (data_field(k), *v))
                .collect();
            pairs.extend(meta.iter().map(|(k, v)| (k.clone(), v.as_slice())));
            let args = SaveArgs {
                mode: "u",
                expires_ms: changes.expires_ms,
                delete_if_empty: changes.delete_if_empty,
                pairs,
                remove: changes.remove.iter().map(|k| data_field(k)).collect(),
            };
            Ok(match self.run_save(self.key(id), args).await? {
                Value::Int(1) => UpdateOutcome::Saved,
                Value::Int(2) => UpdateOutcome::Deleted,
                Value::BulkString(to) => match String::from_utf8(to).ok().and_then(StorageId::parse) {
                    Some(to) => UpdateOutcome::Moved(to),
                    None => return Err(Error::Corrupt("bad forwarding marker".to_owned())),
                },
                _ => UpdateOutcome::Gone,
            })
        })
    }

    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let cmd = redis::cmd("DEL").arg(self.key(id)).to_owned();
            self.bounded(cmd.query_async::<i64>(&mut conn)).await?;
            Ok(())
        })
    }

    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut inv = self.take.prepare_invoke();
            inv.key(self.key(id))
                .arg(moved_to.as_str())
                .arg(super::ms(super::MOVED_GRACE));
            let reply: Value = self
                .bounded(inv.invoke_async(&mut conn))
                .await
                .map_err(load_error)?;
            decode_record(hash_reply(reply)?)
        })
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
        assert_eq!(ok.meta, Meta { created_ms: 5, expires_ms: 9, permanent: true, ..Meta::default() });
        assert_eq!(ok.data.get("user").map(Vec::as_slice), Some(&b"\"bob\""[..]));
        assert!(decode_record(vec![field("m:v", "2")]).unwrap_err().is_corrupt());
        assert!(decode_record(vec![field("d:a", "1")]).unwrap_err().is_corrupt());
        assert!(decode_record(vec![field("m:v", "1"), field("x", "1")]).unwrap_err().is_corrupt());
        assert!(decode_record(vec![field("m:v", "1"), field("m:expires", "soon")])
            .unwrap_err()
            .is_corrupt());
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
