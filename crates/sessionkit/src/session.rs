//! [`Session`]: the handle a request handler uses.
//!
//! It holds the request's `SessionState` behind a lock and forwards: the
//! state records what the handler does, the `lifecycle` module loads it on
//! first use, reads values, and decides at the end of the request what to
//! store. Loading is lazy: nothing is read from the store until the first
//! call that needs the data.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument as _;

use crate::admin::{SessionInfo, UserSessions};
use crate::cookie::Offered;
use crate::lifecycle::{self, Finish, OtherShape, Shared};
use crate::state::{SessionState, Step};
use crate::{codec, Codec, Error, SessionHandle, StorageId};

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
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// The ids the request's cookies offered (parsed, and verified when
    /// signed).
    offered: Offered,
    /// Set by any call; lets the end of the request skip everything otherwise.
    accessed: AtomicBool,
    state: Mutex<SessionState>,
    /// The request's `session` span (its `session` field: the short tag
    /// of the stored session, once loaded); store calls run inside it.
    span: tracing::Span,
    /// The host of a plain-HTTP request that a `Secure` cookie would not
    /// reach ([`lifecycle::insecure_origin`]).
    insecure: Option<Box<str>>,
}

impl Session {
    /// The session of a request with these `Cookie` header values (no I/O).
    /// `insecure` tells whether the request came over plain HTTP to a host
    /// a `Secure` cookie does not reach; asked only of a request that
    /// brought no session id (one that did shows the cookie works).
    pub(crate) fn open<'a>(
        shared: &Arc<Shared>,
        cookie_headers: impl IntoIterator<Item = &'a [u8]>,
        insecure: impl FnOnce() -> Option<Box<str>>,
    ) -> Self {
        let offered = lifecycle::open(shared, cookie_headers);
        let insecure = if offered.candidates().is_empty() {
            insecure()
        } else {
            None
        };
        Session {
            inner: Arc::new(Inner {
                offered,
                shared: Arc::clone(shared),
                accessed: AtomicBool::new(false),
                state: Mutex::new(SessionState::new(shared.config.codec)),
                span: tracing::debug_span!("session", session = tracing::field::Empty),
                insecure,
            }),
        }
    }

    /// Ends the request (the lifecycle saves what changed); what the
    /// adapter must do to the response with `status`.
    pub(crate) async fn finish(&self, status: u16) -> Finish<'_> {
        let inner = &self.inner;
        if !inner.accessed.load(Ordering::Relaxed) {
            // Nothing to lock or decide: the common case of a route that
            // never uses the session.
            return Finish::default();
        }
        let mut state = inner.state.lock().await;
        let finish = lifecycle::finish(&inner.shared, &inner.offered, &mut state, status)
            .instrument(inner.span.clone())
            .await;
        lifecycle::warn_if_insecure(&finish, inner.insecure.as_deref());
        finish
    }

    /// Locks the state, loading the session first if needed.
    async fn loaded(&self) -> Result<MutexGuard<'_, SessionState>, Error> {
        self.inner.accessed.store(true, Ordering::Relaxed);
        let mut state = self.inner.state.lock().await;
        if !state.is_loaded() {
            let span = &self.inner.span;
            lifecycle::load(&self.inner.shared, &self.inner.offered, &mut state)
                .instrument(span.clone())
                .await?;
            // The tag is a hash: only for a span that is recorded.
            if let (false, Some(base)) = (span.is_disabled(), state.base()) {
                span.record("session", base.short());
            }
        }
        Ok(state)
    }

    /// The value under `key`, decoded as `T`; `None` if absent.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded,
    /// [`Error::Decode`] if the stored value is not a `T` (it stays stored:
    /// see [`get_or_remove`](Self::get_or_remove) to drop it instead). A
    /// stored value that is not valid JSON at all is damaged data: it is
    /// logged, removed, and reads as absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        lifecycle::read(&mut *self.loaded().await?, key, OtherShape::Fail)
    }

    /// Like [`get`](Self::get), but a stored value that is not a `T` — say,
    /// a struct that changed shape in a deploy — reads as absent and is
    /// removed from the session (logged at info level), instead of failing
    /// every request of that user until the session expires.
    ///
    /// ```
    /// # async fn demo(session: sessionkit::Session) -> Result<(), sessionkit::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Cart { items: Vec<String> }
    /// // A cart stored by the previous release (a plain list) starts over empty.
    /// let cart: Option<Cart> = session.get_or_remove("cart").await?;
    /// # let _ = cart; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn get_or_remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        lifecycle::read(&mut *self.loaded().await?, key, OtherShape::Remove)
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
        let limit = self.inner.shared.config.max_size;
        let mut state = self.loaded().await?;
        let encoded = codec::encode(state.codec(), key, value)?;
        state
            .insert(key, encoded, limit)
            .map_err(|over| Error::TooLarge {
                size: over.size,
                limit,
            })
    }

    /// Adds `by` to the integer under `key` (absent, or not an integer:
    /// 0) and returns the result as this request sees it. Saved as an
    /// increment that the store applies to what it holds then, so that
    /// requests incrementing the same key at once lose nothing (an
    /// `insert` of `get + 1` keeps only the last one). Read it back with
    /// `get::<i64>`. (If this request also `insert`s or `remove`s the key,
    /// the key is saved as a plain value.)
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded,
    /// [`Error::TooLarge`] past the size limit.
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64, Error> {
        let limit = self.inner.shared.config.max_size;
        let mut state = self.loaded().await?;
        let current = lifecycle::read::<i64>(&mut state, key, OtherShape::Remove)?.unwrap_or(0);
        let now = current.checked_add(by).unwrap_or(by);
        let encoded = codec::encode(state.codec(), key, &now)?;
        if state.is_guarded(key) {
            // After an `update` of the key: one more step of it.
            let add = step(state.codec(), key, move |n: Option<i64>| {
                Some(n.unwrap_or(0).checked_add(by).unwrap_or(by))
            });
            state.update(key, Some(encoded), add, limit)?;
            return Ok(now);
        }
        state
            .increment(key, by, encoded, limit)
            .map_err(|over| Error::TooLarge {
                size: over.size,
                limit,
            })?;
        Ok(now)
    }

    /// Changes the value under `key` with `f`, from the value it holds
    /// (`None`: absent, or not a `T`) to the one it returns (`None`:
    /// remove), and returns that. A read-modify-write that loses nothing:
    /// the save writes the key only if the store still holds what `f`
    /// started from; if another request changed it meanwhile, `f` runs
    /// again on the newer value and the save is retried. So `f` may run
    /// more than once, and the value returned here is the one this request
    /// computed (another's change may come first in the stored one).
    ///
    /// ```
    /// # async fn demo(session: sessionkit::Session) -> Result<(), sessionkit::Error> {
    /// // Two tabs adding at once both land in the cart.
    /// let item = "socks".to_owned();
    /// session
    ///     .update("cart", move |cart: Option<Vec<String>>| {
    ///         let mut cart = cart.unwrap_or_default();
    ///         cart.push(item.clone());
    ///         Some(cart)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// For counters, [`increment`](Self::increment) costs no retry. (A
    /// key this request also `insert`s, `remove`s or `increment`s before is
    /// saved as a plain value.)
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the new value cannot be serialized,
    /// [`Error::TooLarge`] past the size limit, [`Error::Unavailable`] if
    /// the session could not be loaded.
    pub async fn update<T, F>(&self, key: &str, mut f: F) -> Result<Option<T>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Option<T> + Send + Sync + 'static,
    {
        let limit = self.inner.shared.config.max_size;
        let mut state = self.loaded().await?;
        let codec = state.codec();
        let new = f(state.value(key).and_then(|b| decoded(codec, key, b)));
        let encoded = new
            .as_ref()
            .map(|v| codec::encode(codec, key, v))
            .transpose()?;
        // Runs again on a conflict, from what the store holds then.
        state.update(key, encoded, step(codec, key, f), limit)?;
        Ok(new)
    }

    /// The token the client is to present from now on — what a client of
    /// a header transport ([`Transport::Bearer`](crate::Transport::Bearer))
    /// sends back, for the application to hand out in its response body
    /// (the middleware also sends it in the transport's response header
    /// when the session starts or changes id). For a session not stored yet,
    /// or after [`cycle_id`](Self::cycle_id), it is the id the session
    /// will be stored under; ask for it after the call that changes the id
    /// (and it names nothing if the session ends up empty, so not stored).
    /// With the cookie transport it is the cookie's value.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn token(&self) -> Result<String, Error> {
        let config = &self.inner.shared.config;
        let mut state = self.loaded().await?;
        if let Some(id) = state.reissue() {
            return Ok(crate::cookie::token(config, id));
        }
        if let Some(found) = state.base().and_then(|sid| self.inner.offered.naming(sid)) {
            return Ok(crate::cookie::token(config, &found.id));
        }
        Ok(crate::cookie::token(
            config,
            state.reserve_id(config.id_format),
        ))
    }

    /// Removes `key`; returns whether it was there.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn remove(&self, key: &str) -> Result<bool, Error> {
        Ok(self.loaded().await?.remove(key))
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn contains(&self, key: &str) -> Result<bool, Error> {
        Ok(self.loaded().await?.value(key).is_some())
    }

    /// The keys that have values, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        Ok(self.loaded().await?.keys())
    }

    /// Whether the session holds no value.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.loaded().await?.is_empty())
    }

    /// Removes every value. An emptied session is deleted from the store at
    /// the end of the request and its cookie is expired.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn clear(&self) -> Result<(), Error> {
        self.loaded().await?.clear();
        Ok(())
    }

    /// Destroys the session (logout): its record is deleted and its cookie
    /// expired at the end of the request. Values inserted afterwards start a
    /// new session with a new id. Needs no store round trip of its own.
    ///
    /// Called before anything was loaded, it deletes the record of every
    /// session id the request's cookies offered (more than one only when
    /// someone planted a cookie of the same name beside the user's).
    pub async fn flush(&self) {
        self.inner.accessed.store(true, Ordering::Relaxed);
        let mut state = self.inner.state.lock().await;
        state.flush(crate::store::now_ms(), || {
            self.inner
                .offered
                .candidates()
                .iter()
                .map(|f| f.id.storage_id())
                .collect()
        });
    }

    /// Gives the session a new id, keeping its data (call it on login, to
    /// defeat session fixation). At the end of the request the data moves
    /// to a record under the new id, and the old id becomes a short-lived
    /// forwarding marker ([`MOVED_GRACE`](crate::store::MOVED_GRACE)): it
    /// loads as no session, and requests that had loaded the session before
    /// the move land their changes in the new record. The new id is sent
    /// only to this request's client.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn cycle_id(&self) -> Result<(), Error> {
        self.loaded().await?.cycle();
        Ok(())
    }

    /// Makes the session permanent (persistent cookie, permanent lifetime)
    /// or not (browser-session cookie, idle lifetime).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn set_permanent(&self, permanent: bool) -> Result<(), Error> {
        self.loaded().await?.set_permanent(permanent);
        Ok(())
    }

    /// Whether the session is permanent.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn is_permanent(&self) -> Result<bool, Error> {
        Ok(self.loaded().await?.meta().permanent)
    }

    /// Sets this session's lifetime, overriding the configured idle or
    /// permanent lifetime (`None` goes back to the configured one). The
    /// absolute lifetime, if configured, still applies.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn set_expiry(&self, lifetime: Option<Duration>) -> Result<(), Error> {
        let ms = lifetime.map(|d| crate::store::ms(d).max(1));
        self.loaded().await?.set_lifetime(ms);
        Ok(())
    }

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
        let created = state.meta().created_ms;
        let end = lifetime.map(|d| created.saturating_add(crate::store::ms(d).max(1)));
        state.set_absolute(end);
        Ok(())
    }
}

/// The value `bytes` hold as a `T`, if they hold one.
fn decoded<T: DeserializeOwned>(codec: Codec, key: &str, bytes: &[u8]) -> Option<T> {
    match codec::decode(codec, key, bytes) {
        codec::Decoded::Value(v) => Some(v),
        _ => None,
    }
}

/// A read-modify-write step of `key` ([`Session::update`]): `f` applied to
/// the value held there.
fn step<T, F>(codec: Codec, key: &str, mut f: F) -> Step
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> Option<T> + Send + Sync + 'static,
{
    let key = key.to_owned();
    Box::new(move |held| {
        f(held.and_then(|b| decoded(codec, &key, b)))
            .map(|v| codec::encode(codec, &key, &v))
            .transpose()
    })
}

/// The session key flash messages are kept under (as Flask keeps them).
pub const FLASHES_KEY: &str = "_flashes";

/// Flash messages: set now, shown once on a later page.
impl Session {
    /// Adds a message for the next page that reads them
    /// ([`take_flashes`](Self::take_flashes)); any serde value.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded,
    /// [`Error::Encode`] if `message` does not serialize.
    pub async fn flash<T: Serialize + ?Sized>(&self, message: &T) -> Result<(), Error> {
        let value = serde_json::to_value(message).map_err(|e| Error::Encode {
            key: FLASHES_KEY.to_owned(),
            source: Box::new(e),
        })?;
        // An update: messages flashed by requests at once all stay.
        self.update(FLASHES_KEY, move |list: Option<Vec<serde_json::Value>>| {
            let mut list = list.unwrap_or_default();
            list.push(value.clone());
            Some(list)
        })
        .await?;
        Ok(())
    }

    /// The messages flashed so far, oldest first, taken out of the
    /// session (each is shown once). A message that is not a `T` is
    /// dropped with the others.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn take_flashes<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        let Some(list) = self
            .get_or_remove::<Vec<serde_json::Value>>(FLASHES_KEY)
            .await?
        else {
            return Ok(Vec::new());
        };
        self.remove(FLASHES_KEY).await?;
        Ok(list
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect())
    }
}

/// A user's sessions, seen from one of them.
impl Session {
    /// Attaches the session to `user` (at login, next to
    /// [`cycle_id`](Self::cycle_id)), in the same save as its data: the
    /// session is then listed among the user's sessions, and ends with
    /// them ([`logout_everywhere`](Self::logout_everywhere),
    /// [`UserSessions`](crate::admin::UserSessions)). An empty `user`
    /// detaches it.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn set_user(&self, user: &str) -> Result<(), Error> {
        let user = (!user.is_empty()).then(|| user.to_owned());
        self.loaded().await?.set_user(user);
        Ok(())
    }

    /// Notes `value` under `key` about this session's device, for its
    /// user's device list ([`SessionInfo::info`](crate::admin::SessionInfo::info)):
    /// a user agent, a sign-in method; the client's IP address only if you
    /// choose to keep it. An empty `value` removes the note. Saved with
    /// the session's data; not counted in its size limit, so bounded here.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded;
    /// [`Error::TooLarge`] if `key` is longer than 32 bytes, `value` than
    /// 256, or the session would have more than 8 notes;
    /// [`Error::Encode`] if `key` is empty or not ASCII letters, digits,
    /// `-` and `_`.
    pub async fn set_info(&self, key: &str, value: &str) -> Result<(), Error> {
        const KEY: usize = 32;
        const VALUE: usize = 256;
        const NOTES: usize = 8;
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Encode {
                key: "info".to_owned(),
                source: "a note's key is ASCII letters, digits, `-` and `_`".into(),
            });
        }
        if key.len() > KEY {
            return Err(Error::TooLarge {
                size: key.len(),
                limit: KEY,
            });
        }
        if value.len() > VALUE {
            return Err(Error::TooLarge {
                size: value.len(),
                limit: VALUE,
            });
        }
        let mut state = self.loaded().await?;
        let adds = !value.is_empty() && !state.info().contains_key(key);
        if adds && state.info().len() >= NOTES {
            return Err(Error::TooLarge {
                size: NOTES + 1,
                limit: NOTES,
            });
        }
        state.set_info(key, value);
        Ok(())
    }

    /// The note under `key` about this session's device.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn info(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self.loaded().await?.info().get(key).cloned())
    }

    /// The user the session is attached to.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the session could not be loaded.
    pub async fn user(&self) -> Result<Option<String>, Error> {
        Ok(self.loaded().await?.user().map(str::to_owned))
    }

    /// The sessions of this session's user (none if it has no user),
    /// oldest first; this one is marked [`current`](crate::admin::SessionInfo::current)
    /// once it is stored.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn devices(&self) -> Result<Vec<SessionInfo>, Error> {
        let (user, current) = self.user_and_current().await?;
        match user {
            Some(user) => self.admin().list_marking(&user, current.as_ref()).await,
            None => Ok(Vec::new()),
        }
    }

    /// Ends the session of this session's user that `handle` names, on
    /// every device and app instance: whether it was one of theirs. This
    /// session's own handle destroys this session, as
    /// [`flush`](Self::flush) does.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn revoke_device(&self, handle: &SessionHandle) -> Result<bool, Error> {
        let (user, current) = self.user_and_current().await?;
        let Some(user) = user else { return Ok(false) };
        if current.is_some_and(|c| c.handle() == *handle) {
            self.flush().await;
            return Ok(true);
        }
        self.admin().revoke(&user, handle).await
    }

    /// Ends every session of this session's user, this one included ("log
    /// out everywhere"): how many others ended.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn logout_everywhere(&self) -> Result<usize, Error> {
        let ended = self.logout_others().await?;
        self.flush().await;
        Ok(ended)
    }

    /// Ends every other session of this session's user (keeps this one):
    /// how many.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn logout_others(&self) -> Result<usize, Error> {
        let (user, current) = self.user_and_current().await?;
        let Some(user) = user else { return Ok(0) };
        let keep = current.map(|c| c.handle());
        self.admin().revoke_all_but(&user, keep.as_ref()).await
    }

    async fn user_and_current(&self) -> Result<(Option<String>, Option<StorageId>), Error> {
        let state = self.loaded().await?;
        Ok((state.user().map(str::to_owned), state.base().cloned()))
    }

    fn admin(&self) -> UserSessions {
        let shared = &self.inner.shared;
        UserSessions::of_store(
            std::sync::Arc::clone(&shared.store),
            shared.config.listener.clone(),
        )
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the id; not even the storage id (it names the record).
        f.debug_struct("Session")
            .field("cookie_ids", &self.inner.offered.candidates().len())
            .finish_non_exhaustive()
    }
}
