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
use crate::store::{now_ms, Changes, Record, SessionStore, UpdateOutcome};
use crate::{error::Chain, Error, Session, SessionConfig, SessionId};

/// What every request shares: the configuration and the store.
pub(crate) struct Shared {
    pub(crate) config: SessionConfig,
    pub(crate) store: Arc<dyn SessionStore>,
}

impl Shared {
    pub(crate) fn new(store: impl SessionStore, config: SessionConfig) -> Arc<Self> {
        Arc::new(Shared { config, store: Arc::new(store) })
    }
}

/// Opens the request's session from its `Cookie` header values. No I/O.
pub(crate) fn open<'a>(shared: &Arc<Shared>, cookie_headers: impl IntoIterator<Item = &'a [u8]>) -> Session {
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
            tracing::warn!(storage = sid.short(), why, "corrupt session record deleted; starting a fresh session");
            if let Err(e) = store.delete(&sid).await {
                tracing::warn!(storage = sid.short(), error = %Chain(&e), "could not delete corrupt session record");
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
            tracing::debug!(storage = sid.short(), "session past its deadline deleted");
            store.delete(&sid).await?;
            state.fresh(now);
        }
        None => state.fresh(now),
    }
    Ok(())
}

fn expired(config: &SessionConfig, r: &Record, now: u64) -> bool {
    r.meta.expires_ms <= now
        || config
            .absolute_lifetime
            .is_some_and(|abs| r.meta.created_ms.saturating_add(ms(abs)) <= now)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the adapter must do to the response.
#[derive(Debug, Default)]
pub(crate) struct Finish {
    /// A `Set-Cookie` value to append.
    pub(crate) set_cookie: Option<String>,
    /// The handler looked at the session: add `Vary: Cookie`.
    pub(crate) vary_cookie: bool,
    /// Saving failed: replace the response with this bare status.
    pub(crate) failure: Option<Failure>,
}

/// Why the end of a request failed; the adapter answers with the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 503: the store is unavailable.
    Unavailable,
    /// 413: the session is over its size limit.
    TooLarge,
}

impl Failure {
    pub(crate) fn status(self) -> u16 {
        match self {
            Failure::Unavailable => 503,
            Failure::TooLarge => 413,
        }
    }
}

/// Ends the request: saves what changed and says which headers to set.
/// `status` is the handler's response status; 5xx saves nothing.
pub(crate) async fn finish(session: &Session, status: u16) -> Finish {
    let inner = &session.inner;
    if !inner.accessed.load(Ordering::Relaxed) {
        return Finish::default();
    }
    let mut out = Finish { vary_cookie: true, ..Finish::default() };
    if status >= 500 {
        return out;
    }
    let mut state = inner.state.lock().await;
    if !state.loaded {
        // The load failed and the handler went on; there is nothing to save.
        return out;
    }
    match save(inner, &mut state).await {
        Ok(cookie) => out.set_cookie = cookie,
        Err(e) => {
            tracing::error!(error = %Chain(&e), "session could not be saved");
            out.failure = Some(if e.is_too_large() { Failure::TooLarge } else { Failure::Unavailable });
        }
    }
    out
}

/// The store's expiry instant for a session saved now.
fn deadline(config: &SessionConfig, state: &State, now: u64) -> u64 {
    let lifetime = lifetime(config, state);
    let idle = now.saturating_add(ms(lifetime));
    match config.absolute_lifetime {
        Some(abs) => idle.min(state.meta.created_ms.saturating_add(ms(abs))),
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
fn live_cookie(config: &SessionConfig, id: &SessionId, state: &State, deadline: u64, now: u64) -> String {
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

    let mut base = None;
    match state.retire.take() {
        Some(Retire::Delete(sid)) => store.delete(&sid).await?,
        Some(Retire::Move(sid)) => base = store.take(&sid).await.or_else(tolerate_corrupt)?,
        None => {}
    }

    if let Some(sid) = state.existing.clone() {
        let changed = !state.dirty.is_empty() || state.meta_changed;
        let new_deadline = deadline(config, state, now);
        let touch_due = new_deadline.saturating_sub(state.meta.expires_ms)
            >= ms(config.touch_interval_for(lifetime(config, state)));
        if !changed && !touch_due {
            return Ok(None);
        }
        let mut changes = Changes {
            set: Vec::new(),
            remove: Vec::new(),
            meta: state.meta,
            delete_if_empty: state.data.is_empty(),
        };
        changes.meta.expires_ms = new_deadline;
        for key in &state.dirty {
            match state.data.get(key) {
                Some(v) => changes.set.push((key.as_str(), v.as_slice())),
                None => changes.remove.push(key.as_str()),
            }
        }
        let outcome = store.update(&sid, &changes).await?;
        return Ok(match outcome {
            UpdateOutcome::Saved if state.meta.permanent || state.meta_changed => {
                // The cookie id is the one the request came with (existing ⇒ incoming).
                inner
                    .incoming
                    .as_ref()
                    .map(|id| live_cookie(config, id, state, new_deadline, now))
            }
            UpdateOutcome::Saved => None,
            UpdateOutcome::Deleted => Some(cookies::removal(config)),
            _ => {
                // Deleted meanwhile (logout elsewhere, expiry): never resurrect.
                tracing::debug!(storage = sid.short(), "session gone before save; changes dropped");
                None
            }
        });
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
    let size: usize = state.data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > config.max_size {
        return Err(Error::TooLarge { size, limit: config.max_size });
    }
    let expires = deadline(config, state, now);
    let mut record = Record { data: std::mem::take(&mut state.data), meta: state.meta };
    record.meta.expires_ms = expires;
    // 192 random bits make a collision practically impossible, but the store
    // refuses to overwrite, so a collision costs a retry, never someone's session.
    for _ in 0..3 {
        let id = SessionId::generate();
        if store.create(&id.storage_id(), &record).await? {
            state.data = record.data;
            return Ok(Some(live_cookie(config, &id, state, expires, now)));
        }
    }
    Err(Error::unavailable("could not allocate a unique session id"))
}

fn tolerate_corrupt(e: Error) -> Result<Option<Record>, Error> {
    match e {
        Error::Corrupt(_) => Ok(None),
        e => Err(e),
    }
}
