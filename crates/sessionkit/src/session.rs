//! [`Session`]: the handle a request handler uses.
//!
//! It owns the request's view of the session: the loaded values (still
//! encoded), which keys changed, and the pending id operations (cycle, flush).
//! It performs no decision about saving: that is the `lifecycle` module's job
//! at the end of the request. Loading is lazy: nothing is read from the store
//! until the first call that needs the data.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{Mutex, MutexGuard};

use crate::lifecycle::{self, Shared};
use crate::store::Meta;
use crate::{Error, SessionId, StorageId};

/// The session of one request.
///
/// Cheap to clone (an `Arc`); every clone is the same session. Values are
/// stored with serde (JSON). The first call that needs data loads the session
/// with one store round trip; a request that never calls it costs nothing.
///
/// In axum, take it as an extractor:
///
/// ```
/// use sessionkit::Session;
///
/// async fn counter(session: Session) -> Result<String, sessionkit::Error> {
///     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
///     session.insert("n", &n).await?;
///     Ok(n.to_string())
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    /// The id the request's cookie carried, if it parsed.
    pub(crate) incoming: Option<SessionId>,
    /// The cookie was signed with an older key: send it re-signed.
    pub(crate) resign: bool,
    /// Set by any call; lets the end of the request skip everything otherwise.
    pub(crate) accessed: AtomicBool,
    pub(crate) state: Mutex<State>,
}

/// What happens to the stored record the request started with.
#[derive(Debug)]
pub(crate) enum Retire {
    /// Delete it (flush).
    Delete(StorageId),
    /// Read it back, merge this request's changes, store under a new id, delete (cycle).
    Move(StorageId),
}

/// The request's view of its session.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) loaded: bool,
    /// A load was tried and failed (the store was unavailable).
    pub(crate) load_failed: bool,
    /// The stored record this view is based on (None: a new session).
    pub(crate) existing: Option<StorageId>,
    /// Current values, encoded.
    pub(crate) data: HashMap<String, Vec<u8>>,
    /// Keys inserted or removed since the load.
    pub(crate) dirty: HashSet<String>,
    pub(crate) meta: Meta,
    /// `permanent` or `lifetime_ms` changed.
    pub(crate) meta_changed: bool,
    pub(crate) retire: Option<Retire>,
    /// Encoded size of `data` (keys + values).
    pub(crate) size: usize,
}

impl State {
    /// Starts a new, empty session (nothing stored yet).
    pub(crate) fn fresh(&mut self, now_ms: u64) {
        self.existing = None;
        self.data.clear();
        self.dirty.clear();
        self.meta = Meta {
            created_ms: now_ms,
            ..Meta::default()
        };
        self.meta_changed = false;
        self.size = 0;
        self.loaded = true;
    }
}

impl Session {
    /// The session of a request whose cookie carried `found` (if anything).
    pub(crate) fn new(shared: Arc<Shared>, found: Option<crate::cookie::Found>) -> Self {
        let (incoming, resign) = match found {
            Some(f) => (Some(f.id), f.resign),
            None => (None, false),
        };
        Session {
            inner: Arc::new(Inner {
                shared,
                incoming,
                resign,
                accessed: AtomicBool::new(false),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Locks the state, loading the session first if needed.
    async fn loaded(&self) -> Result<MutexGuard<'_, State>, Error> {
        self.inner.accessed.store(true, Ordering::Relaxed);
        let mut state = self.inner.state.lock().await;
        if !state.loaded {
            if let Err(e) = lifecycle::load(&self.inner, &mut state).await {
                state.load_failed = true;
                return Err(e);
            }
        }
        Ok(state)
    }

    /// The value under `key`, decoded as `T`; `None` if absent.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded,
    /// [`Error::Decode`] if the stored value is not a `T`. A stored value that
    /// is not valid JSON at all is damaged data: it is logged, removed, and
    /// reads as absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let mut state = self.loaded().await?;
        let Some(bytes) = state.data.get(key) else {
            return Ok(None);
        };
        match serde_json::from_slice(bytes) {
            Ok(v) => Ok(Some(v)),
            // Not JSON at all: stored data is damaged. Drop the value (it is
            // removed at the end of the request) rather than fail every
            // request of this user with the same error.
            Err(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() => {
                tracing::warn!(key, "undecodable session value dropped");
                if let Some(v) = state.data.remove(key) {
                    state.size -= key.len() + v.len();
                }
                state.dirty.insert(key.to_owned());
                Ok(None)
            }
            Err(e) => Err(Error::Decode {
                key: key.to_owned(),
                source: e.into(),
            }),
        }
    }

    /// Stores `value` under `key`. Storing the value a key already holds is
    /// not a change (nothing is written for it).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if `value` cannot be serialized, [`Error::TooLarge`]
    /// if the session would exceed the configured maximum size (the session is
    /// left as it was), [`Error::Unavailable`] if it could not be loaded.
    pub async fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        let encoded = serde_json::to_vec(value).map_err(|e| Error::Encode {
            key: key.to_owned(),
            source: e.into(),
        })?;
        let mut state = self.loaded().await?;
        let old = state.data.get(key).map(Vec::len);
        if state.data.get(key).is_some_and(|v| *v == encoded) {
            return Ok(());
        }
        let size = state.size - old.map_or(0, |n| n + key.len()) + key.len() + encoded.len();
        let limit = self.inner.shared.config.max_size;
        if size > limit {
            return Err(Error::TooLarge { size, limit });
        }
        state.size = size;
        state.data.insert(key.to_owned(), encoded);
        state.dirty.insert(key.to_owned());
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn remove(&self, key: &str) -> Result<bool, Error> {
        let mut state = self.loaded().await?;
        match state.data.remove(key) {
            None => Ok(false),
            Some(v) => {
                state.size -= key.len() + v.len();
                state.dirty.insert(key.to_owned());
                Ok(true)
            }
        }
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn contains(&self, key: &str) -> Result<bool, Error> {
        Ok(self.loaded().await?.data.contains_key(key))
    }

    /// The keys that have values, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        let mut keys: Vec<String> = self.loaded().await?.data.keys().cloned().collect();
        keys.sort_unstable();
        Ok(keys)
    }

    /// Whether the session holds no value.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.loaded().await?.data.is_empty())
    }

    /// Removes every value. An emptied session is deleted from the store at
    /// the end of the request and its cookie is expired.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn clear(&self) -> Result<(), Error> {
        let mut state = self.loaded().await?;
        let keys: Vec<String> = state.data.drain().map(|(k, _)| k).collect();
        state.dirty.extend(keys);
        state.size = 0;
        Ok(())
    }

    /// Destroys the session (logout): its record is deleted and its cookie
    /// expired at the end of the request. Values inserted afterwards start a
    /// new session with a new id. Needs no store round trip of its own.
    pub async fn flush(&self) {
        self.inner.accessed.store(true, Ordering::Relaxed);
        let mut state = self.inner.state.lock().await;
        let old = match (state.existing.take(), state.retire.take()) {
            (Some(sid), _) | (None, Some(Retire::Move(sid) | Retire::Delete(sid))) => Some(sid),
            // Not loaded yet: delete whatever the cookie points at, unseen.
            (None, None) if !state.loaded => {
                self.inner.incoming.as_ref().map(SessionId::storage_id)
            }
            (None, None) => None,
        };
        if let Some(sid) = old {
            state.retire = Some(Retire::Delete(sid));
        }
        state.fresh(crate::store::now_ms());
    }

    /// Gives the session a new id, keeping its data (call it on login, to
    /// defeat session fixation). The old id stops working at the end of the
    /// request; values written meanwhile through the old id are carried over.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn cycle_id(&self) -> Result<(), Error> {
        let mut state = self.loaded().await?;
        if let Some(sid) = state.existing.take() {
            state.retire = Some(Retire::Move(sid));
        }
        Ok(())
    }

    /// Makes the session permanent (persistent cookie, permanent lifetime)
    /// or not (browser-session cookie, idle lifetime).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn set_permanent(&self, permanent: bool) -> Result<(), Error> {
        let mut state = self.loaded().await?;
        if state.meta.permanent != permanent {
            state.meta.permanent = permanent;
            state.meta_changed = true;
        }
        Ok(())
    }

    /// Whether the session is permanent.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn is_permanent(&self) -> Result<bool, Error> {
        Ok(self.loaded().await?.meta.permanent)
    }

    /// Sets this session's lifetime, overriding the configured idle or
    /// permanent lifetime (`None` goes back to the configured one). The
    /// absolute lifetime, if configured, still applies.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn set_expiry(&self, lifetime: Option<Duration>) -> Result<(), Error> {
        let mut state = self.loaded().await?;
        let ms = lifetime.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        if state.meta.lifetime_ms != ms {
            state.meta.lifetime_ms = ms;
            state.meta_changed = true;
        }
        Ok(())
    }
}

impl Session {
    /// Ends this session for good `lifetime` after its creation, however
    /// active it is (`None` removes this session's own limit; the configured
    /// absolute lifetime, if any, still applies). Use it, for instance, to
    /// give an elevated (admin) session a short hard limit.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn set_absolute_lifetime(&self, lifetime: Option<Duration>) -> Result<(), Error> {
        let mut state = self.loaded().await?;
        let end = lifetime.map(|d| {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            state.meta.created_ms.saturating_add(ms.max(1))
        });
        if state.meta.absolute_ms != end {
            state.meta.absolute_ms = end;
            state.meta_changed = true;
        }
        Ok(())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the id; not even the storage id (it names the record).
        f.debug_struct("Session")
            .field("has_cookie_id", &self.inner.incoming.is_some())
            .finish_non_exhaustive()
    }
}
