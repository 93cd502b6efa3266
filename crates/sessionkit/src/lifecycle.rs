//! The request lifecycle, framework-free: the seed's `open_session` and
//! `save_session` hooks, made precise.
//!
//! - [`open`] reads the cookie and builds the request's [`Session`] (no I/O).
//! - `load` runs on the handler's first session call (one store round trip).
//! - [`finish`] decides, from the session's state and the response status,
//!   what to write and which headers to add; the adapters only apply that.
//!
//! | state at the end | store | cookie |
//! |---|---|---|
//! | untouched, or status 5xx | nothing | nothing |
//! | unchanged, inside the touch interval | nothing | nothing |
//! | unchanged, touch due | update (meta only) | refreshed if permanent |
//! | changed | one update | refreshed if permanent or permanence changed |
//! | emptied | update deletes the record | expired |
//! | new with data | create (never overwrites) | set |
//! | flushed | delete | expired |
//! | cycled | take old, create new | set to the new id |
//!
//! Architecture invariant: adapters contain no session logic; everything a
//! request decides about its session is decided here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::cookie as cookies;
use crate::session::{Inner, Retire, State};
use crate::store::{ms, now_ms, Changes, Record, SessionStore, UpdateOutcome};
use crate::{error::Chain, Error, FailurePolicy, Session, SessionConfig, SessionId, StorageId};

/// What every request shares: the configuration and the store.
pub(crate) struct Shared {
    pub(crate) config: SessionConfig,
    pub(crate) store: Arc<dyn SessionStore>,
}

/// The adapters' `Debug` shows the config (the store has no `Debug`).
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(store: impl SessionStore, config: SessionConfig) -> Arc<Self> {
        Arc::new(Shared {
            config,
            store: Arc::new(store),
        })
    }
}

/// Opens the request's session from its `Cookie` header values. No I/O.
pub(crate) fn open<'a>(
    shared: &Arc<Shared>,
    cookie_headers: impl IntoIterator<Item = &'a [u8]>,
) -> Session {
    let incoming = cookies::find_id(&shared.config, cookie_headers);
    Session::new(Arc::clone(shared), incoming)
}

/// Loads the session into `state` (called once, on first use).
pub(crate) async fn load(inner: &Inner, state: &mut State) -> Result<(), Error> {
    let now = now_ms();
    let Some(id) = &inner.incoming else {
        state.fresh(now);
        return Ok(());
    };
    let store = &inner.shared.store;
    let sid = id.storage_id();
    let record = match store.load(&sid).await {
        Ok(r) => r,
        Err(Error::Corrupt(why)) => {
            tracing::warn!(
                storage = %sid.short(),
                why,
                "corrupt session record deleted; starting a fresh session"
            );
            if let Err(e) = store.delete(&sid).await {
                tracing::warn!(storage = %sid.short(), error = %Chain(&e), "could not delete corrupt session record");
            }
            None
        }
        Err(e) => return Err(e),
    };
    match record {
        Some(r) if !expired(&inner.shared.config, &r, now) => {
            state.size = r.data.iter().map(|(k, v)| k.len() + v.len()).sum();
            state.data = r.data;
            state.meta = r.meta;
            state.existing = Some(sid);
            state.dirty.clear();
            state.meta_changed = false;
            state.loaded = true;
        }
        Some(_) => {
            // Past a stored deadline even if the TTL was extended by hand.
            tracing::debug!(storage = %sid.short(), "session past its deadline deleted");
            store.delete(&sid).await?;
            state.fresh(now);
        }
        None => state.fresh(now),
    }
    Ok(())
}

fn expired(config: &SessionConfig, r: &Record, now: u64) -> bool {
    r.meta.expires_ms <= now || absolute_end(config, &r.meta).is_some_and(|end| end <= now)
}

/// The earliest hard end of a session: the configured absolute lifetime
/// counted from creation, or the session's own absolute deadline.
fn absolute_end(config: &SessionConfig, meta: &crate::store::Meta) -> Option<u64> {
    let global = config
        .absolute_lifetime
        .map(|abs| meta.created_ms.saturating_add(ms(abs)));
    match (global, meta.absolute_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the adapter must do to the handler's response, framework-free.
///
/// The adapters apply it in two steps and nothing else: replace the response
/// by an empty one if [`replacement`](Self::replacement) says so, then append
/// every header [`headers`](Self::headers) lists. Header names are lowercase
/// static strings, so any framework's header map accepts them as they are.
#[derive(Debug, Default)]
pub(crate) struct Finish {
    /// Replace the response with an empty one with this status.
    replace: Option<u16>,
    /// Add `Retry-After: 1` (the store is unavailable; retrying soon may work).
    retry_after: bool,
    /// The handler looked at the session: add `Vary: Cookie`.
    vary_cookie: bool,
    /// A `Set-Cookie` value to append.
    set_cookie: Option<String>,
}

const VARY: &str = "vary";
const SET_COOKIE: &str = "set-cookie";
const CACHE_CONTROL: &str = "cache-control";
const RETRY_AFTER: &str = "retry-after";

impl Finish {
    /// The reply for a session error a handler returns: an empty response
    /// with [`error_status`] (a 503 says when to retry). The client gets no
    /// detail; the log gets the whole error chain (which never holds an id).
    #[cfg(any(feature = "axum", feature = "actix"))]
    pub(crate) fn handler_error(error: &Error) -> Self {
        crate::error::log(error, "session error in handler");
        Finish::bare(error_status(error))
    }

    /// An empty response with `status`; a 503 says when to retry.
    fn bare(status: u16) -> Self {
        Finish {
            replace: Some(status),
            retry_after: status == 503,
            ..Finish::default()
        }
    }

    /// `Some(status)`: replace the handler's response by an empty one with
    /// this status (then add [`headers`](Self::headers) to it).
    pub(crate) fn replacement(&self) -> Option<u16> {
        self.replace
    }

    /// The headers to append, as `(lowercase name, value)`. `has_cache_control`
    /// says whether the response already has a `Cache-Control`: a response
    /// that sets the cookie gets `no-store` unless the app chose its own.
    pub(crate) fn headers(
        &self,
        has_cache_control: bool,
    ) -> impl Iterator<Item = (&'static str, &str)> {
        let retry_after = self.retry_after.then_some((RETRY_AFTER, "1"));
        let vary = self.vary_cookie.then_some((VARY, "Cookie"));
        let cookie = self.set_cookie.as_deref().map(|c| (SET_COOKIE, c));
        let no_store = (self.set_cookie.is_some() && !has_cache_control)
            .then_some((CACHE_CONTROL, "no-store"));
        retry_after
            .into_iter()
            .chain(vary)
            .chain(cookie)
            .chain(no_store)
    }
}

/// The status answering a session error: 503 when the store is unavailable,
/// 413 when the session is too large, 500 otherwise.
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) fn error_status(error: &Error) -> u16 {
    if error.is_unavailable() {
        503
    } else if error.is_too_large() {
        413
    } else {
        500
    }
}

/// Ends the request: saves what changed and says which headers to set.
/// `status` is the handler's response status; 5xx saves nothing.
pub(crate) async fn finish(session: &Session, status: u16) -> Finish {
    let inner = &session.inner;
    if !inner.accessed.load(Ordering::Relaxed) {
        return Finish::default();
    }
    let mut out = Finish {
        vary_cookie: true,
        ..Finish::default()
    };
    if status >= 500 {
        return out;
    }
    let mut state = inner.state.lock().await;
    if !state.loaded {
        // The load failed and the handler went on. Fail closed (default):
        // the response is a bare 503, since it was built without the session.
        // Fail open: the handler's response stands. Nothing is saved either way.
        if state.load_failed && inner.shared.config.failure_policy == FailurePolicy::Closed {
            return Finish::bare(503);
        }
        return out;
    }
    match save(inner, &mut state).await {
        Ok(cookie) => out.set_cookie = cookie.or_else(|| resigned_cookie(inner, &state)),
        Err(e) => {
            crate::error::log(&e, "session could not be saved");
            out = Finish::bare(if e.is_too_large() { 413 } else { 503 });
        }
    }
    out
}

/// The same session's cookie, signed with the current key, when the request
/// came with a cookie signed by an older one (key rotation).
fn resigned_cookie(inner: &Inner, state: &State) -> Option<String> {
    let id = inner.incoming.as_ref().filter(|_| inner.resign)?;
    state.existing.as_ref()?;
    let config = &inner.shared.config;
    Some(live_cookie(
        config,
        id,
        state,
        state.meta.expires_ms,
        now_ms(),
    ))
}

/// The store's expiry instant for a session saved now.
fn deadline(config: &SessionConfig, state: &State, now: u64) -> u64 {
    let lifetime = lifetime(config, state);
    let idle = now.saturating_add(ms(lifetime));
    match absolute_end(config, &state.meta) {
        Some(end) => idle.min(end),
        None => idle,
    }
}

fn lifetime(config: &SessionConfig, state: &State) -> Duration {
    match state.meta.lifetime_ms {
        Some(ms) => Duration::from_millis(ms),
        None if state.meta.permanent => config.permanent_lifetime,
        None => config.idle_lifetime,
    }
}

/// The cookie for a live session: persistent (with the remaining lifetime)
/// when permanent, a browser-session cookie otherwise.
fn live_cookie(
    config: &SessionConfig,
    id: &SessionId,
    state: &State,
    deadline: u64,
    now: u64,
) -> String {
    let max_age = state
        .meta
        .permanent
        .then(|| Duration::from_millis(deadline.saturating_sub(now)));
    cookies::set_cookie(config, id, max_age)
}

/// Writes the session's changes; returns the `Set-Cookie` value, if any.
async fn save(inner: &Inner, state: &mut State) -> Result<Option<String>, Error> {
    let config = &inner.shared.config;
    let store = &inner.shared.store;
    let now = now_ms();
    let had_cookie = inner.incoming.is_some();

    // A cycled session gets its new id now, so that the old record can
    // forward late writes to it.
    let mut new_id = None;
    let mut base = None;
    match state.retire.take() {
        Some(Retire::Delete(sid)) => store.delete(&sid).await?,
        Some(Retire::Move(sid)) => {
            let id = SessionId::generate();
            base = store
                .take(&sid, &id.storage_id())
                .await
                .or_else(tolerate_corrupt)?;
            new_id = Some(id);
        }
        None => {}
    }

    if let Some(sid) = state.existing.clone() {
        return update_existing(inner, state, &sid, now).await;
    }

    // A new record: a fresh session, a flushed-then-refilled one, or a cycled one.
    if let Some(current) = base {
        // Cycled: what is stored now (including concurrent writes), with this
        // request's changes on top.
        let mut merged = current.data;
        for key in &state.dirty {
            match state.data.get(key) {
                Some(v) => merged.insert(key.clone(), v.clone()),
                None => merged.remove(key),
            };
        }
        state.data = merged;
    }
    if state.data.is_empty() {
        return Ok(had_cookie.then(|| cookies::removal(config)));
    }
    // The limit guards what requests add (checked on insert, and here for a
    // new record). A cycled session's data is already stored and its old
    // record already moved: refusing it now would lose the whole session,
    // so it moves as it is.
    let size: usize = state.data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > config.max_size && new_id.is_none() {
        return Err(Error::TooLarge {
            size,
            limit: config.max_size,
        });
    }
    let expires = deadline(config, state, now);
    let mut record = Record {
        data: std::mem::take(&mut state.data),
        meta: state.meta,
    };
    record.meta.expires_ms = expires;
    // 192 random bits make a collision practically impossible, but the store
    // refuses to overwrite, so a collision costs a retry, never someone's session.
    for _ in 0..3 {
        let id = new_id.take().unwrap_or_else(SessionId::generate);
        if store.create(&id.storage_id(), &record).await? {
            state.data = record.data;
            return Ok(Some(live_cookie(config, &id, state, expires, now)));
        }
    }
    Err(Error::unavailable("could not allocate a unique session id"))
}

/// Saves changes to (or touches) the stored record the request loaded.
async fn update_existing(
    inner: &Inner,
    state: &State,
    sid: &StorageId,
    now: u64,
) -> Result<Option<String>, Error> {
    let config = &inner.shared.config;
    let store = &inner.shared.store;
    let changed = !state.dirty.is_empty() || state.meta_changed;
    let new_deadline = deadline(config, state, now);
    let touch_due = new_deadline.saturating_sub(state.meta.expires_ms)
        >= ms(config.touch_interval_for(lifetime(config, state)));
    if !changed && !touch_due {
        return Ok(None);
    }
    // A data change inside the touch interval keeps the stored expiry, as a
    // read does: the idle deadline is exact to within one touch interval,
    // and the save skips PEXPIREAT. New flags (permanence, an absolute
    // lifetime) may move the deadline either way, so they always set it.
    let moves_deadline = touch_due || state.meta_changed;
    let mut changes = Changes {
        set: Vec::new(),
        remove: Vec::new(),
        flags: state.meta_changed.then_some(state.meta),
        expires_ms: moves_deadline.then_some(new_deadline),
        delete_if_empty: state.data.is_empty(),
    };
    for key in &state.dirty {
        match state.data.get(key) {
            Some(v) => changes.set.push((key.as_str(), v.as_slice())),
            None => changes.remove.push(key.as_str()),
        }
    }
    Ok(match store.update(sid, &changes).await? {
        // A permanent session's cookie carries its deadline: re-sent when
        // the deadline moved.
        UpdateOutcome::Saved if moves_deadline && (state.meta.permanent || state.meta_changed) => {
            // The cookie id is the one the request came with (existing ⇒ incoming).
            inner
                .incoming
                .as_ref()
                .map(|id| live_cookie(config, id, state, new_deadline, now))
        }
        UpdateOutcome::Saved => None,
        UpdateOutcome::Deleted => Some(cookies::removal(config)),
        UpdateOutcome::Moved(to) => {
            // Another request cycled the id after this one loaded: land the
            // data changes in the new record. Its flags and expiry are its
            // own, and this client keeps its old cookie: the new id is never
            // sent to a holder of the old one.
            changes.flags = None;
            changes.expires_ms = None;
            changes.delete_if_empty = false;
            if changed {
                let outcome = store.update(&to, &changes).await?;
                tracing::debug!(?outcome, "changes forwarded to the moved session");
            }
            None
        }
        _ => {
            // Deleted meanwhile (logout elsewhere, expiry): never resurrect.
            tracing::debug!(
                storage = %sid.short(),
                "session gone before save; changes dropped"
            );
            None
        }
    })
}

fn tolerate_corrupt(e: Error) -> Result<Option<Record>, Error> {
    match e {
        Error::Corrupt(_) => Ok(None),
        e => Err(e),
    }
}
