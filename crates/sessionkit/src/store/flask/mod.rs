//! [`FlaskStore`]: sessions in the Redis format of the Flask recipe
//! "Server-side Sessions with Redis", to share them with a Flask app that
//! runs the recipe while an application moves to Rust.
//!
//! The recipe keeps one string per session under `<prefix><uuid4>`: the
//! session dict, pickled, with `SETEX` for the permanent lifetime or one
//! day. This store reads and writes exactly that. Values map to serde
//! values through JSON (str, int, float, bool, None, list, tuple, dict with
//! str keys); Flask's `_permanent` flag is the session's permanent flag
//! and its `_flashes` list of `(category, message)` tuples holds
//! [`Session::flash`](crate::Session::flash)'s messages. Pickles are read
//! by `pickle`, which executes nothing.

use std::collections::HashMap;

use redis::Value;

use super::{BoxFuture, Changes, Meta, Record, SessionStore, UpdateOutcome};
use crate::{Error, RedisStore, StorageId};

pub(crate) mod pickle;

use pickle::Py;

/// The key Flask keeps the permanent flag under.
const PERMANENT: &str = "_permanent";
/// Flask's category for a message flashed without one.
const DEFAULT_CATEGORY: &str = "message";
/// Saves retried when the session changed between reading and writing it
/// (a Flask request in between): each retry means another write landed.
const ATTEMPTS: usize = 16;

/// Writes `ARGV[2]` at `KEYS[1]` (`''`: deletes it) only if the key still
/// holds a value whose SHA-1 is `ARGV[1]`; `ARGV[3]` is a new TTL in ms
/// (`''` keeps the current one). Returns 1 done, 0 changed meanwhile, -1
/// gone.
const SWAP: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then return -1 end
if redis.sha1hex(held) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
";

/// A [`SessionStore`] in the Flask recipe's format, on a [`RedisStore`]'s
/// connection (so TLS, Sentinel, Cluster and the timeouts work as there).
///
/// Use it with [`IdFormat::Uuid4`](crate::IdFormat::Uuid4) ids and the
/// Flask app's cookie name (Flask's default is `session`), and only during
/// a migration. It gives up, by the recipe's design:
///
/// - **hashed storage ids**: the raw id is the Redis key, so anyone who can
///   list keys can use them as cookies;
/// - **per-key deltas**: every change rewrites the whole pickled dict (read,
///   changed, written back only if nobody wrote in between, else again —
///   so changes from both sides are kept, key by key);
/// - **per-user indexes, device notes and forwarding** of cycled ids: no
///   device lists or "log out everywhere", and a request still running on
///   an id that was just cycled loses its write;
/// - **the client cache**, and values that do not round-trip (`datetime`,
///   `Markup`, `UUID`, `Decimal`, sets, bytes): those are left out of the
///   session with a log line, and dropped from the stored dict when the
///   Rust side writes it.
///
/// A session the Rust side only changes keeps its remaining TTL; making it
/// permanent (or not) sets the TTL the recipe would.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use sessionkit::store::flask::FlaskStore;
/// use sessionkit::{IdFormat, SessionConfig, SessionLayer};
///
/// let store = FlaskStore::connect("redis://127.0.0.1:6379/").await?;
/// let config = SessionConfig::builder()
///     .with_id_format(IdFormat::Uuid4)
///     .with_cookie_name("session")
///     .build()?;
/// let layer = SessionLayer::new(store, config);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct FlaskStore {
    redis: RedisStore,
    limits: pickle::Limits,
}

impl FlaskStore {
    /// A store on the Redis at `url`, with the recipe's prefix `session:`.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the URL is invalid.
    pub async fn connect(url: impl redis::IntoConnectionInfo) -> Result<Self, Error> {
        let redis = RedisStore::builder()
            .without_client_cache()
            .connect(url)
            .await?;
        Ok(Self::new(redis))
    }

    /// A store on `redis`'s connection, under its key prefix (build it
    /// with `without_client_cache`: this format does not use the cache).
    pub fn new(redis: RedisStore) -> Self {
        FlaskStore {
            redis,
            limits: pickle::Limits::default(),
        }
    }

    /// The Redis key of `id`: the recipe's `<prefix><uuid4>`.
    fn key(&self, id: &StorageId) -> Result<String, Error> {
        let uuid = id.flask_uuid().ok_or_else(|| {
            Error::unavailable("FlaskStore needs the Flask recipe's ids: configure IdFormat::Uuid4")
        })?;
        Ok(format!("{}{uuid}", self.redis.prefix()))
    }

    /// The pickle at `key` with its TTL in ms (negative: none).
    async fn fetch(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>, Error> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (held, ttl): (Option<Vec<u8>>, i64) = self.redis.run_pipe(&pipe).await?;
        Ok(held.map(|h| (h, ttl)))
    }

    /// Reads a stored pickle: the session dict (str keys, in order).
    fn read(&self, bytes: &[u8]) -> Result<Vec<(String, Py)>, Error> {
        let value = pickle::read(bytes, &self.limits)
            .map_err(|e| Error::Corrupt(format!("not a readable Flask session: {e}")))?;
        let Py::Dict(items) = value else {
            return Err(Error::Corrupt(
                "a Flask session that is not a dict".to_owned(),
            ));
        };
        let mut dict = Vec::with_capacity(items.len());
        for (k, v) in items {
            match k {
                Py::Str(k) => dict.push((k, v)),
                other => {
                    limited!(FLASK_KEY, warn, key = ?other, "Flask session key that is not a str left out")
                }
            }
        }
        Ok(dict)
    }
}

/// The record a session dict is, expiring `ttl_ms` from now (negative:
/// no TTL, counted as a day).
fn record_of(dict: &[(String, Py)], ttl_ms: i64) -> Record {
    let now = super::now_ms();
    let ttl = u64::try_from(ttl_ms).unwrap_or(86_400_000);
    let mut record = Record::new(
        HashMap::new(),
        Meta {
            // The recipe keeps no creation time.
            created_ms: now,
            expires_ms: now.saturating_add(ttl),
            ..Meta::default()
        },
    );
    let mut refused = Vec::new();
    for (key, value) in dict {
        if key == PERMANENT {
            record.meta.permanent = truthy(value);
            continue;
        }
        match value.to_json() {
            // Encoding a JSON value cannot fail.
            Ok(json) => {
                if let Ok(bytes) = serde_json::to_vec(&json) {
                    record.data.insert(key.clone(), bytes);
                }
            }
            Err(what) => refused.push(format!("{key} ({what})")),
        }
    }
    if !refused.is_empty() {
        let refused = refused.join(", ");
        limited!(FLASK_VALUE, warn, %refused, "Flask session values that cannot be carried over left out");
    }
    record
}

/// Python's truth of a plain value.
fn truthy(value: &Py) -> bool {
    match value {
        Py::None | Py::Refused(_) => false,
        Py::Bool(b) => *b,
        Py::Int(n) => *n != 0,
        Py::Float(f) => *f != 0.0,
        Py::Str(s) => !s.is_empty(),
        Py::List(v) | Py::Tuple(v) => !v.is_empty(),
        Py::Dict(v) => !v.is_empty(),
    }
}

/// A session value (JSON, as the lifecycle encodes it) as a Python value.
/// Flashes become `(category, message)` tuples, a message flashed without
/// a category in Flask's default one.
fn py_of(key: &str, bytes: &[u8]) -> Result<Py, Error> {
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::Encode {
        key: key.to_owned(),
        source: format!("the Flask format holds JSON values (Codec::Json): {e}").into(),
    })?;
    let value = Py::from_json(&json);
    if key != crate::FLASHES_KEY {
        return Ok(value);
    }
    let Py::List(messages) = value else {
        return Ok(value);
    };
    Ok(Py::List(
        messages
            .into_iter()
            .map(|m| match m {
                Py::List(pair) if pair.len() == 2 => Py::Tuple(pair),
                m => Py::Tuple(vec![Py::Str(DEFAULT_CATEGORY.to_owned()), m]),
            })
            .collect(),
    ))
}

/// The pickle of a session dict; what cannot be written (refused values)
/// is dropped, logged.
fn pickle_of(dict: &[(String, Py)]) -> Vec<u8> {
    let (items, dropped): (Vec<_>, Vec<_>) = dict
        .iter()
        .map(|(k, v)| (Py::Str(k.clone()), v.clone()))
        .partition(|(_, v)| !v.contains_refused());
    if !dropped.is_empty() {
        let dropped: Vec<String> = dropped.iter().map(|(k, _)| format!("{k:?}")).collect();
        let dropped = dropped.join(", ");
        limited!(FLASK_DROPPED, warn, %dropped, "Flask session values that cannot be carried over dropped on write");
    }
    pickle::write(&Py::Dict(items))
}

/// Sets `key` in a session dict, in place if it is there.
fn put(dict: &mut Vec<(String, Py)>, key: &str, value: Py) {
    match dict.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => dict.push((key.to_owned(), value)),
    }
}

/// The SHA-1 of `bytes` in hex, as Redis's `redis.sha1hex` writes it.
fn sha1_hex(bytes: &[u8]) -> String {
    use sha1_smol::Sha1;
    Sha1::from(bytes).digest().to_string()
}

impl SessionStore for FlaskStore {
    fn load<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        Box::pin(async move {
            let key = self.key(id)?;
            let Some((bytes, ttl)) = self.fetch(&key).await? else {
                return Ok(None);
            };
            Ok(Some(record_of(&self.read(&bytes)?, ttl)))
        })
    }

    fn create<'a>(
        &'a self,
        id: &'a StorageId,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let key = self.key(id)?;
            let mut dict = Vec::with_capacity(record.data.len() + 1);
            if record.meta.permanent {
                dict.push((PERMANENT.to_owned(), Py::Bool(true)));
            }
            let mut keys: Vec<&String> = record.data.keys().collect();
            keys.sort_unstable();
            for k in keys {
                dict.push((k.clone(), py_of(k, &record.data[k])?));
            }
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key)
                .arg(pickle_of(&dict))
                .arg("NX")
                .arg("PXAT")
                .arg(record.meta.expires_ms);
            let done: Option<String> = self.redis.run_command(&cmd).await?;
            Ok(done.is_some())
        })
    }

    fn update<'a>(
        &'a self,
        id: &'a StorageId,
        changes: &'a Changes<'a>,
    ) -> BoxFuture<'a, Result<UpdateOutcome, Error>> {
        Box::pin(async move {
            let key = self.key(id)?;
            let data_changed = !changes.set.is_empty()
                || !changes.remove.is_empty()
                || !changes.increments.is_empty();
            if !data_changed && changes.flags.is_none() {
                // A touch: the dict stays as it is.
                let Some(at) = changes.expires_ms else {
                    return Ok(UpdateOutcome::Saved);
                };
                let mut cmd = redis::cmd("PEXPIREAT");
                cmd.arg(&key).arg(at);
                let found: i64 = self.redis.run_command(&cmd).await?;
                return Ok(if found == 1 {
                    UpdateOutcome::Saved
                } else {
                    UpdateOutcome::Gone
                });
            }
            for _ in 0..ATTEMPTS {
                let Some((held, ttl)) = self.fetch(&key).await? else {
                    return Ok(UpdateOutcome::Gone);
                };
                let mut dict = self.read(&held)?;
                let before = record_of(&dict, ttl);
                if changes
                    .expect
                    .iter()
                    .any(|(k, v)| before.data.get(*k).map(Vec::as_slice) != *v)
                {
                    let held = changes
                        .expect
                        .iter()
                        .map(|(k, _)| ((*k).to_owned(), before.data.get(*k).cloned()))
                        .collect();
                    return Ok(UpdateOutcome::Conflict(held));
                }
                let size = changes.size_after(before.size(), |k| before.data.get(k).map(Vec::len));
                if let Some(limit) = changes
                    .max_size
                    .filter(|l| size > *l && size > before.size())
                {
                    return Err(Error::TooLarge { size, limit });
                }
                for (k, v) in &changes.set {
                    put(&mut dict, k, py_of(k, v)?);
                }
                dict.retain(|(k, _)| !changes.remove.contains(&k.as_str()));
                for (k, by) in &changes.increments {
                    let now = match dict.iter().find(|(key, _)| key == k) {
                        Some((_, Py::Int(n))) => n.checked_add(*by).unwrap_or(*by),
                        _ => *by,
                    };
                    put(&mut dict, k, Py::Int(now));
                }
                if let Some(flags) = changes.flags {
                    dict.retain(|(k, _)| k != PERMANENT);
                    if flags.permanent {
                        dict.push((PERMANENT.to_owned(), Py::Bool(true)));
                    }
                }
                let emptied = changes.delete_if_empty && dict.iter().all(|(k, _)| k == PERMANENT);
                // A change of data keeps the TTL the session has; a change
                // of lifetime sets the new one.
                let ttl = match changes.expires_ms {
                    Some(at) if changes.flags.is_some() => {
                        at.saturating_sub(super::now_ms()).max(1).to_string()
                    }
                    _ => String::new(),
                };
                let new = if emptied {
                    Vec::new()
                } else {
                    pickle_of(&dict)
                };
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(SWAP)
                    .arg(1)
                    .arg(&key)
                    .arg(sha1_hex(&held))
                    .arg(new)
                    .arg(ttl);
                match self.redis.run_command::<i64>(&cmd).await? {
                    1 if emptied => return Ok(UpdateOutcome::Deleted),
                    1 => return Ok(UpdateOutcome::Saved),
                    -1 => return Ok(UpdateOutcome::Gone),
                    _ => {}
                }
            }
            Err(Error::unavailable(
                "a Flask session kept changing while it was saved",
            ))
        })
    }

    fn delete<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.revoke(id).await?;
            Ok(())
        })
    }

    fn sessions_of<'a>(
        &'a self,
        _user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(StorageId, Record)>, Error>> {
        Box::pin(async {
            Err(Error::unavailable(
                "the Flask recipe's format keeps no per-user index",
            ))
        })
    }

    fn revoke<'a>(&'a self, id: &'a StorageId) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let key = self.key(id)?;
            let mut cmd = redis::cmd("DEL");
            cmd.arg(&key);
            let deleted: i64 = self.redis.run_command(&cmd).await?;
            Ok(deleted > 0)
        })
    }

    fn take<'a>(
        &'a self,
        id: &'a StorageId,
        _moved_to: &'a StorageId,
    ) -> BoxFuture<'a, Result<Option<Record>, Error>> {
        // No forwarding marker: Flask would read it as a session.
        Box::pin(async move {
            let key = self.key(id)?;
            let mut cmd = redis::cmd("GETDEL");
            cmd.arg(&key);
            let held: Value = self.redis.run_command(&cmd).await?;
            match held {
                Value::BulkString(bytes) => Ok(Some(record_of(&self.read(&bytes)?, -1))),
                _ => Ok(None),
            }
        })
    }
}
