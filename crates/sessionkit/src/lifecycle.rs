//! The request lifecycle, framework-free: the seed's `open_session` and
//! `save_session` hooks, made precise. Every decision about a session's
//! fate is made here.
//!
//! - [`open`] finds the id in the request's cookies (no I/O).
//! - [`load`] runs on the handler's first session call (one store round trip).
//! - [`read`] says what a stored value that does not decode means.
//! - [`decide`] is pure: from the session's state, the config, what the
//!   request brought, the response status and the time, the next step.
//! - [`finish`] carries the steps out against the store and says which
//!   headers the adapter adds.
//!
//! | state at the end | store | cookie |
//! |---|---|---|
//! | untouched | nothing | nothing (no `Vary` either) |
//! | status 5xx | nothing | nothing |
//! | load failed | nothing | none; a bare 503 unless `FailurePolicy::Open` |
//! | unchanged, inside the touch interval | nothing | re-signed if signed by an older key |
//! | unchanged, touch due | update (expiry only) | refreshed if permanent |
//! | changed | one update | refreshed if the deadline moved and it is permanent or its flags changed |
//! | emptied | update deletes the record | expired |
//! | new with data | create (never overwrites) | set |
//! | new, too large | nothing | none; a bare 413 |
//! | new and empty | nothing | expired if the request had one |
//! | flushed | delete, then as new | expired, or set if refilled |
//! | cycled | create the new record, then take the old one (it forwards) and add what others wrote meanwhile | set to the new id, even when a later step fails |
//!
//! An update that finds its record moved (another request cycled the id)
//! forwards its data changes to the new record; one that finds it gone
//! writes nothing (no resurrection).
//!
//! Architecture invariant: adapters contain no session logic; everything a
//! request decides about its session is decided here. This module knows
//! nothing of the [`Session`](crate::Session) handle: it works on the
//! [`SessionState`] it is given.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::codec::{self, Decoded};
use crate::config::IdHeaders;
use crate::cookie::{self as cookies, Offered};
use crate::events::SessionEvent;
use crate::state::{Phase, Retire, SessionState};
use crate::store::{ms, now_ms, Changes, SessionStore, UpdateOutcome};
use crate::telemetry::{self, names};
use crate::{error::Chain, Error, FailurePolicy, SessionConfig, SessionId, StorageId};

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
            store: Arc::new(crate::telemetry::Measured(store)),
        })
    }
}

/// Finds the session id candidates in the request's `Cookie` header
/// values. No I/O.
pub(crate) fn open<'a>(
    shared: &Shared,
    cookie_headers: impl IntoIterator<Item = &'a [u8]>,
) -> Offered {
    cookies::find_ids(&shared.config, cookie_headers)
}

/// The host of a request that evidently came over plain HTTP to a host
/// other than localhost or a loopback address, when the config sends
/// `Secure` cookies — which browsers then do not store, so every page
/// view starts a new session. `None` when there is any sign of HTTPS
/// (`https` scheme or TLS, `X-Forwarded-Proto: https`, `Forwarded:
/// proto=https`), or no cookie transport, or no `Secure`.
pub(crate) fn insecure_origin<'a>(
    config: &SessionConfig,
    host: Option<&[u8]>,
    tls: bool,
    forwarded: impl IntoIterator<Item = &'a [u8]>,
) -> Option<Box<str>> {
    if !config.secure || tls || config.transport != crate::Transport::Cookie {
        return None;
    }
    let host = std::str::from_utf8(host?).ok()?.trim();
    let name = match host.strip_prefix('[') {
        // An IPv6 literal: `[::1]:3000`.
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    // Checked on every request (the cookie is not known yet): no allocation.
    let ends_localhost = name.len() >= 10
        && name
            .get(name.len() - 10..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"));
    let local = name.eq_ignore_ascii_case("localhost")
        || ends_localhost
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local || name.is_empty() {
        return None;
    }
    let https = forwarded.into_iter().any(|v| {
        v.split(|b| *b == b',' || *b == b';').any(|part| {
            let part = part.trim_ascii();
            ["https", "proto=https", "proto=\"https\""]
                .iter()
                .any(|p| part.eq_ignore_ascii_case(p.as_bytes()))
        })
    });
    (!https).then(|| host.into())
}

/// Loads the session the cookie names into `state` (on first use). A
/// corrupt record is deleted and a record past a stored deadline too; the
/// session then starts fresh. A store failure leaves the state in
/// [`Phase::LoadFailed`] (another call tries again).
///
/// With several candidate cookies (someone planted one beside the user's),
/// the one that resolves to a live session is used: an unknown one never
/// shadows a live one. Two live ones are ambiguous — either may be the
/// planted one — so neither is used and the session starts fresh.
pub(crate) async fn load(
    shared: &Shared,
    offered: &Offered,
    state: &mut SessionState,
) -> Result<(), Error> {
    let now = now_ms();
    let mut live = None;
    for found in offered.candidates() {
        let sid = found.id.storage_id();
        match load_one(shared, &sid, now).await {
            Ok(None) => {}
            Ok(Some(record)) if live.is_none() => live = Some((sid, record)),
            Ok(Some(_)) => {
                limited!(
                    AMBIGUOUS,
                    warn,
                    "several session cookies name live sessions (cookie tossing?); none is used"
                );
                live = None;
                break;
            }
            Err(e) => {
                state.load_failed();
                return Err(e);
            }
        }
    }
    match live {
        Some((sid, record)) => state.start_from(sid, record),
        None => state.start_fresh(now),
    }
    Ok(())
}

/// The live record under `sid`, if any; a corrupt one, or one past a stored
/// deadline, is deleted.
async fn load_one(
    shared: &Shared,
    sid: &StorageId,
    now: u64,
) -> Result<Option<crate::store::Record>, Error> {
    let store = &shared.store;
    let record = match store.load(sid).await {
        Ok(r) => r,
        Err(Error::Corrupt(why)) => {
            telemetry::count(names::CORRUPT);
            limited!(CORRUPT, warn, storage = %sid.short(), why, "corrupt session record deleted; starting a fresh session");
            if let Err(e) = store.delete(sid).await {
                tracing::warn!(storage = %sid.short(), error = %Chain(&e), "could not delete corrupt session record");
            }
            None
        }
        Err(e) => return Err(e),
    };
    match record {
        Some(r) if !expired(&shared.config, &r.meta, now) => Ok(Some(r)),
        Some(_) => {
            // Past a stored deadline even if the TTL was extended by hand.
            tracing::debug!(storage = %sid.short(), "session past its deadline deleted");
            store.delete(sid).await?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// What [`read`] does with a stored value that is well formed but not of
/// the type asked for (e.g. a struct that changed in a deploy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OtherShape {
    /// Return [`Error::Decode`]; the value stays.
    Fail,
    /// Treat it as absent and remove it from the session.
    Remove,
}

/// The value under `key` as a `T`. A value that is not valid data at all
/// is damaged: logged, removed, absent — never the same error on every
/// request of that user. One of another shape: as `other` says.
pub(crate) fn read<T: DeserializeOwned>(
    state: &mut SessionState,
    key: &str,
    other: OtherShape,
) -> Result<Option<T>, Error> {
    let Some(bytes) = state.value(key) else {
        return Ok(None);
    };
    match codec::decode(state.codec(), key, bytes) {
        Decoded::Value(v) => Ok(Some(v)),
        Decoded::Damaged => {
            limited!(DAMAGED, warn, key, "undecodable session value dropped");
            state.discard(key);
            Ok(None)
        }
        Decoded::OtherShape(e) if other == OtherShape::Remove => {
            limited!(OTHER_SHAPE, info, key, error = %Chain(&e), "session value of another shape removed");
            state.discard(key);
            Ok(None)
        }
        Decoded::OtherShape(e) => Err(e),
    }
}

fn expired(config: &SessionConfig, meta: &crate::store::Meta, now: u64) -> bool {
    meta.expires_ms <= now || absolute_end(config, meta).is_some_and(|end| end <= now)
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

/// What the request brought besides its session state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Facts {
    /// The handler called the session at all.
    pub(crate) accessed: bool,
    /// The request carried a well-formed (and well-signed) session cookie.
    pub(crate) had_cookie: bool,
    /// That cookie was signed with an older key: send it re-signed.
    pub(crate) resign: bool,
}

/// The next step for a session at the end of its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The handler never used the session: no store call, no header.
    Untouched,
    /// Nothing is written (a 5xx, a load that never happened or failed
    /// under `FailurePolicy::Open`); the response says `Vary: Cookie`.
    Skip,
    /// The load failed and the policy is closed: a bare 503.
    Unavailable,
    /// First deal with the record the request started from; then decide
    /// again.
    Retire(Retire),
    /// Nothing to write; the cookie is re-sent, re-signed, if `resign`.
    Keep {
        /// Re-send the cookie signed with the current key.
        resign: bool,
    },
    /// Write changes (or a touch) to the loaded record.
    Update(Update),
    /// Create the record (under the cycled session's new id, if it has one).
    Create {
        /// Its expiry (Unix ms).
        deadline: u64,
    },
    /// A new record over the size limit: nothing is written, a bare 413.
    TooLarge {
        /// The encoded size it would have.
        size: usize,
    },
    /// Nothing to store: the session is empty and has no record.
    Forget {
        /// Expire the cookie the request came with.
        expire_cookie: bool,
    },
}

/// An update of the loaded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Update {
    /// The new expiry, when this save moves it (a touch, or new flags); a
    /// data change inside the touch interval keeps the stored one.
    pub(crate) expires_ms: Option<u64>,
    /// Send the cookie again once saved (a permanent cookie carries the
    /// deadline, new flags may change its kind, a cycled session has a new
    /// id).
    pub(crate) cookie: bool,
    /// Re-sign the cookie once saved, if nothing else sends it.
    pub(crate) resign: bool,
    /// The session holds no data: the record goes if none remains.
    pub(crate) delete_if_empty: bool,
}

/// The next step for `state` (see the module's table).
pub(crate) fn decide(
    state: &SessionState,
    config: &SessionConfig,
    facts: Facts,
    status: u16,
    now: u64,
) -> Decision {
    if !facts.accessed {
        return Decision::Untouched;
    }
    if status >= 500 {
        return Decision::Skip;
    }
    match state.phase() {
        Phase::LoadFailed if config.failure_policy == FailurePolicy::Closed => {
            return Decision::Unavailable
        }
        Phase::LoadFailed | Phase::NotLoaded => return Decision::Skip,
        Phase::Fresh | Phase::Loaded => {}
    }
    if let Some(retire) = state.retire() {
        return Decision::Retire(retire.clone());
    }
    if state.base().is_some() {
        let changed = state.changed();
        let new_deadline = deadline(config, state, now);
        let touch_due = new_deadline.saturating_sub(state.meta().expires_ms)
            >= ms(config.touch_interval_for(lifetime(config, state)));
        // A cycled session's new cookie is always sent.
        let reissued = state.reissue().is_some();
        if !changed && !touch_due {
            return Decision::Keep {
                resign: facts.resign || reissued,
            };
        }
        // New flags (permanence, an absolute lifetime) may move the
        // deadline either way, so they always set it.
        let moves_deadline = touch_due || state.meta_changed();
        return Decision::Update(Update {
            expires_ms: moves_deadline.then_some(new_deadline),
            cookie: reissued || moves_deadline && (state.meta().permanent || state.meta_changed()),
            resign: facts.resign,
            delete_if_empty: state.is_empty(),
        });
    }
    if state.is_empty() {
        return Decision::Forget {
            expire_cookie: facts.had_cookie,
        };
    }
    // The limit guards what requests add: checked on insert, here for a
    // new record, and by the store for an update.
    if state.size() > config.max_size {
        return Decision::TooLarge { size: state.size() };
    }
    Decision::Create {
        deadline: deadline(config, state, now),
    }
}

/// What follows an update, by its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AfterUpdate {
    /// Send the live cookie, expiring at this deadline.
    Cookie(u64),
    /// Expire the cookie (the update emptied and deleted the record).
    ExpireCookie,
    /// Another request moved the session here after this one loaded it:
    /// land the data changes there. This client keeps its old cookie: the
    /// new id is never sent to a holder of the old one.
    Forward(StorageId),
    /// Nothing more (saved with no cookie to send, or the record is gone:
    /// never resurrected).
    Nothing,
}

/// The step after an update answered `outcome`; `stored_deadline` is the
/// record's expiry as loaded.
pub(crate) fn after_update(
    update: &Update,
    outcome: UpdateOutcome,
    stored_deadline: u64,
) -> AfterUpdate {
    match outcome {
        UpdateOutcome::Saved if update.cookie || update.resign => {
            AfterUpdate::Cookie(update.expires_ms.unwrap_or(stored_deadline))
        }
        UpdateOutcome::Saved => AfterUpdate::Nothing,
        UpdateOutcome::Deleted => AfterUpdate::ExpireCookie,
        UpdateOutcome::Moved(to) => AfterUpdate::Forward(to),
        _ => AfterUpdate::Nothing,
    }
}

/// What the adapter must do to the handler's response, framework-free.
///
/// The adapters apply it in two steps and nothing else: replace the response
/// by an empty one if [`replacement`](Self::replacement) says so, then append
/// every header [`headers`](Self::headers) lists. Header names are
/// lowercase and valid (the config checked a transport's), so any
/// framework's header map accepts them as they are.
#[derive(Debug, Default)]
pub(crate) struct Finish<'a> {
    /// Replace the response with an empty one with this status.
    replace: Option<u16>,
    /// Add `Retry-After: 1` (the store is unavailable; retrying soon may work).
    retry_after: bool,
    /// The handler looked at the session: add `Vary: Cookie`.
    vary_cookie: bool,
    /// A `Set-Cookie` value (or, with a header transport, the token) to
    /// append.
    set_cookie: Option<String>,
    /// The transport's header names (`None`: a cookie's).
    names: Option<&'a IdHeaders>,
}

const VARY: &str = "vary";
const SET_COOKIE: &str = "set-cookie";
const CACHE_CONTROL: &str = "cache-control";
const RETRY_AFTER: &str = "retry-after";

impl Finish<'_> {
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
        if status == 503 {
            telemetry::count(names::UNAVAILABLE);
        }
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
    pub(crate) fn headers(&self, has_cache_control: bool) -> impl Iterator<Item = (&str, &str)> {
        let retry_after = self.retry_after.then_some((RETRY_AFTER, "1"));
        let (vary_on, id_header) = self
            .names
            .map_or(("Cookie", SET_COOKIE), |n| (&*n.vary, &*n.response));
        let vary = self.vary_cookie.then_some((VARY, vary_on));
        let cookie = self.set_cookie.as_deref().map(|c| (id_header, c));
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

/// Ends the request: carries out [`decide`]'s steps and says which headers
/// to set. `status` is the handler's response status.
pub(crate) async fn finish<'a>(
    shared: &'a Shared,
    offered: &Offered,
    state: &mut SessionState,
    status: u16,
) -> Finish<'a> {
    let config = &shared.config;
    // The cookie the session came with: the one whose record was loaded.
    let incoming = state.base().and_then(|sid| offered.naming(sid));
    let facts = Facts {
        accessed: true,
        // Only a lone cookie is expired: with several, the request proved
        // nothing about which one is the user's.
        had_cookie: offered.single().is_some(),
        resign: incoming.is_some_and(|f| f.resign),
    };
    let incoming = incoming.map(|f| f.id.clone());
    let mut decision = decide(state, config, facts, status, now_ms());
    if let Decision::Retire(retire) = decision {
        if let Err(e) = carry_out_retire(shared, state, retire).await {
            return failed(config, state, &e);
        }
        // The retired record is dealt with: the next step is a write.
        decision = decide(state, config, facts, status, now_ms());
    }
    // A cycled session's new id, once its record exists, or the id the
    // request came with.
    let id = state.reissue().cloned().or(incoming);
    let vary = Finish {
        vary_cookie: true,
        names: Some(&config.id_headers),
        ..Finish::default()
    };
    let cookie = match decision {
        Decision::Untouched => return Finish::default(),
        Decision::Unavailable => return Finish::bare(503),
        Decision::TooLarge { size } => {
            let e = Error::TooLarge {
                size,
                limit: config.max_size,
            };
            return failed(config, state, &e);
        }
        // `decide` returns a retirement only while one is pending.
        Decision::Skip | Decision::Retire(_) => None,
        Decision::Keep { resign } => id
            .filter(|_| resign)
            .map(|id| live_cookie(config, &id, state, state.meta().expires_ms)),
        Decision::Forget { expire_cookie } => {
            expire_cookie.then(|| cookies::removal(config)).flatten()
        }
        Decision::Update(update) => {
            match carry_out_update(shared, id.as_ref(), state, &update).await {
                Ok(cookie) => cookie,
                Err(e) => return failed(config, state, &e),
            }
        }
        Decision::Create { deadline } => match carry_out_create(shared, state, deadline).await {
            Ok(id) => {
                // Hashes only for a listener that is there.
                config.listener.emit(|| SessionEvent::Created {
                    handle: id.storage_id().handle(),
                    user: state.user().map(str::to_owned),
                });
                if let Some(user) = state.user() {
                    config.listener.emit(|| SessionEvent::UserAttached {
                        handle: id.storage_id().handle(),
                        user: user.to_owned(),
                    });
                }
                Some(live_cookie(config, &id, state, deadline))
            }
            Err(e) => return failed(config, state, &e),
        },
    };
    Finish {
        set_cookie: cookie,
        ..vary
    }
}

/// Says, once a second at most, why a `Secure` cookie sent to a plain-HTTP
/// request for `host` (see [`insecure_origin`]) will not work.
pub(crate) fn warn_if_insecure(finish: &Finish<'_>, host: Option<&str>) {
    if let (Some(host), Some(_)) = (host, &finish.set_cookie) {
        limited!(
            INSECURE,
            warn,
            host,
            "a Secure session cookie went to a plain-HTTP request: browsers will not store it, so \
             every page view starts a new session; serve over HTTPS (behind a proxy, have it send \
             X-Forwarded-Proto: https), use http://localhost for development, or \
             SessionConfigBuilder::with_secure(false) where plain HTTP is intended"
        );
    }
}

/// A save that failed: logged, and a bare 413 (too large) or 503. A cycled
/// session whose new record exists gets its cookie all the same: the old
/// id may already forward to it, and the new record holds the data.
///
/// A sign-out (flush) whose delete failed still expires the cookie: the
/// user asked to be signed out on this device and is; the record, which
/// nobody can name any more from this browser, ends with its TTL.
fn failed<'a>(config: &'a SessionConfig, state: &SessionState, e: &Error) -> Finish<'a> {
    crate::error::log(e, "session could not be saved");
    let mut finish = Finish::bare(if e.is_too_large() { 413 } else { 503 });
    finish.names = Some(&config.id_headers);
    finish.set_cookie = match state.retire() {
        Some(Retire::Delete(_)) => cookies::removal(config),
        _ => state
            .reissue()
            .map(|id| live_cookie(config, id, state, state.meta().expires_ms)),
    };
    finish
}

/// Deletes (flush) or moves (cycle) the record the request started from.
async fn carry_out_retire(
    shared: &Shared,
    state: &mut SessionState,
    retire: Retire,
) -> Result<(), Error> {
    match retire {
        Retire::Delete(sids) => {
            for sid in &sids {
                shared.store.delete(sid).await?;
                telemetry::count(names::DELETES);
                shared.config.listener.emit(|| SessionEvent::Destroyed {
                    handle: sid.handle(),
                    user: state.retired_user().map(str::to_owned),
                });
            }
            state.retired();
        }
        Retire::Move(old) => carry_out_cycle(shared, state, &old).await?,
    }
    Ok(())
}

/// Moves a session to a new id, in an order that no failed or timed-out
/// call can turn into a lost session: first the new record is created (a
/// failure there leaves the old session as it was; a create that lands
/// late leaves a record nobody knows the id of, which expires), and only
/// then is the old one replaced by a marker pointing to it. From that
/// point the new cookie is sent, whatever fails next.
async fn carry_out_cycle(
    shared: &Shared,
    state: &mut SessionState,
    old: &StorageId,
) -> Result<(), Error> {
    let deadline = deadline(&shared.config, state, now_ms());
    let id = carry_out_create(shared, state, deadline).await?;
    let new = id.storage_id();
    let attached = state
        .user_changed()
        .then(|| state.user().map(str::to_owned))
        .flatten();
    let changed = state.reissued(id, deadline);
    match shared.store.take(old, &new).await {
        // Others' writes since the load: the next step writes them.
        Ok(Some(current)) => {
            let listener = &shared.config.listener;
            listener.emit(|| SessionEvent::IdCycled {
                from: old.handle(),
                to: new.handle(),
                user: state.user().map(str::to_owned),
            });
            if let Some(user) = attached {
                listener.emit(|| SessionEvent::UserAttached {
                    handle: new.handle(),
                    user,
                });
            }
            state.moved(current, &changed);
        }
        // The session was deleted meanwhile (a logout in another tab): it
        // stays deleted.
        Ok(None) | Err(Error::Corrupt(_)) => {
            shared.store.delete(&new).await?;
            state.gone(now_ms());
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// How often a save whose read-modify-write keys changed meanwhile is
/// computed again: each conflict means another request's save landed, so
/// with fewer requests than this updating one key at once, each lands.
const UPDATE_ATTEMPTS: usize = 64;

/// What a save of `state` asks of the store.
fn changes_of<'a>(config: &SessionConfig, state: &'a SessionState, update: &Update) -> Changes<'a> {
    let mut changes = Changes {
        flags: state.meta_changed().then_some(*state.meta()),
        expires_ms: update.expires_ms,
        delete_if_empty: update.delete_if_empty,
        max_size: Some(config.max_size),
        user: state.user(),
        attach: state.user_changed(),
        stored_expires_ms: state.meta().expires_ms,
        // Only a device list shows it: kept for sessions with a user.
        seen_ms: state.user().map(|_| now_ms()),
        info: state.info_changes().collect(),
        increments: state.increments().collect(),
        expect: state.expected().collect(),
        ..Changes::default()
    };
    for (key, value) in state.changes() {
        match value {
            Some(v) => changes.set.push((key, v)),
            None => changes.remove.push(key),
        }
    }
    changes
}

/// Saves changes to (or touches) the loaded record; the cookie to send
/// (for the session `id`). When a read-modify-write key changed meanwhile,
/// it is computed again from what the store holds and the save retried.
async fn carry_out_update(
    shared: &Shared,
    id: Option<&SessionId>,
    state: &mut SessionState,
    update: &Update,
) -> Result<Option<String>, Error> {
    let config = &shared.config;
    let Some(mut sid) = state.base() else {
        return Ok(None);
    };
    let mut changes = changes_of(config, state, update);
    let mut outcome = shared.store.update(sid, &changes).await?;
    let mut attempts = 1;
    while let UpdateOutcome::Conflict(held) = outcome {
        telemetry::count(names::CONFLICTS);
        if attempts == UPDATE_ATTEMPTS {
            return Err(Error::unavailable(
                "a session value kept changing under concurrent updates",
            ));
        }
        drop(changes);
        for (key, value) in held {
            state.recompute(&key, value)?;
        }
        let Some(base) = state.base() else {
            return Ok(None);
        };
        sid = base;
        changes = changes_of(config, state, update);
        outcome = shared.store.update(sid, &changes).await?;
        attempts += 1;
    }
    let data_changed = !changes.set.is_empty()
        || !changes.remove.is_empty()
        || !changes.increments.is_empty()
        || changes.flags.is_some()
        || changes.attach
        || !changes.info.is_empty();
    if data_changed {
        telemetry::count(names::UPDATES);
        telemetry::session_size(state.size());
    } else {
        telemetry::count(names::TOUCHES);
    }
    if outcome == UpdateOutcome::Deleted {
        telemetry::count(names::DELETES);
    }
    let listener = &config.listener;
    match (&outcome, changes.attach, changes.user) {
        (UpdateOutcome::Deleted, _, user) => listener.emit(|| SessionEvent::Destroyed {
            handle: sid.handle(),
            user: user.map(str::to_owned),
        }),
        (UpdateOutcome::Saved, true, Some(user)) => {
            listener.emit(|| SessionEvent::UserAttached {
                handle: sid.handle(),
                user: user.to_owned(),
            });
        }
        _ => {}
    }
    Ok(
        match after_update(update, outcome, state.meta().expires_ms) {
            AfterUpdate::Cookie(deadline) => id.map(|id| live_cookie(config, id, state, deadline)),
            AfterUpdate::ExpireCookie => cookies::removal(config),
            AfterUpdate::Forward(to) => {
                // Only the data changes: the moved record's flags and
                // expiry are its own.
                changes.flags = None;
                changes.expires_ms = None;
                changes.delete_if_empty = false;
                changes.attach = false;
                changes.user = None;
                changes.info.clear();
                if !changes.set.is_empty()
                    || !changes.remove.is_empty()
                    || !changes.increments.is_empty()
                {
                    telemetry::count(names::FORWARDED);
                    let outcome = shared.store.update(&to, &changes).await?;
                    tracing::debug!(?outcome, "changes forwarded to the moved session");
                }
                None
            }
            AfterUpdate::Nothing => None,
        },
    )
}

/// Creates the record under a new id; that id.
async fn carry_out_create(
    shared: &Shared,
    state: &mut SessionState,
    deadline: u64,
) -> Result<SessionId, Error> {
    let mut record = state.to_record(deadline);
    if record.user.is_some() {
        record.meta.seen_ms = now_ms();
    }
    // The id whose token the handler handed out, if it asked for one.
    let mut reserved = state.take_reserved();
    // 192 random bits make a collision practically impossible, but the store
    // refuses to overwrite, so a collision costs a retry, never someone's session.
    for _ in 0..3 {
        let id = reserved
            .take()
            .unwrap_or_else(|| SessionId::generate_as(shared.config.id_format));
        if shared.store.create(&id.storage_id(), &record).await? {
            telemetry::count(names::CREATES);
            telemetry::session_size(state.size());
            return Ok(id);
        }
    }
    Err(Error::unavailable("could not allocate a unique session id"))
}

/// The store's expiry instant for a session saved now.
fn deadline(config: &SessionConfig, state: &SessionState, now: u64) -> u64 {
    let idle = now.saturating_add(ms(lifetime(config, state)));
    match absolute_end(config, state.meta()) {
        Some(end) => idle.min(end),
        None => idle,
    }
}

fn lifetime(config: &SessionConfig, state: &SessionState) -> Duration {
    match state.meta().lifetime_ms {
        Some(ms) => Duration::from_millis(ms),
        None if state.meta().permanent => config.permanent_lifetime,
        None => config.idle_lifetime,
    }
}

/// The cookie for a live session: persistent (with the remaining lifetime)
/// when permanent, a browser-session cookie otherwise.
fn live_cookie(
    config: &SessionConfig,
    id: &SessionId,
    state: &SessionState,
    deadline: u64,
) -> String {
    let max_age = state
        .meta()
        .permanent
        .then(|| Duration::from_millis(deadline.saturating_sub(now_ms())));
    cookies::set_cookie(config, id, max_age)
}

#[cfg(test)]
mod tests {
    //! Every row of the state table, as a pure decision.

    use super::*;
    use crate::store::{Meta, Record};

    const NOW: u64 = 1_800_000_000_000;
    const DAY: u64 = 86_400_000;

    fn sid(c: char) -> StorageId {
        StorageId::parse(format!("1.{}", c.to_string().repeat(43))).unwrap()
    }

    /// A session loaded from a record of `user`, expiring a day from `NOW`.
    fn loaded() -> SessionState {
        let mut s = SessionState::default();
        let meta = Meta {
            created_ms: NOW - 1000,
            expires_ms: NOW + DAY,
            ..Meta::default()
        };
        s.start_from(
            sid('A'),
            Record::new([("user".to_owned(), b"\"ann\"".to_vec())].into(), meta),
        );
        s
    }

    fn fresh() -> SessionState {
        let mut s = SessionState::default();
        s.start_fresh(NOW);
        s
    }

    const USED: Facts = Facts {
        accessed: true,
        had_cookie: true,
        resign: false,
    };

    fn run(s: &SessionState, facts: Facts, status: u16) -> Decision {
        decide(s, &SessionConfig::default(), facts, status, NOW)
    }

    #[test]
    fn untouched_and_failed_responses_write_nothing() {
        assert_eq!(run(&loaded(), Facts::default(), 200), Decision::Untouched);
        let mut changed = loaded();
        changed.insert("a", b"1".to_vec(), 100).unwrap();
        assert_eq!(run(&changed, USED, 500), Decision::Skip, "5xx");
        assert_eq!(run(&changed, USED, 503), Decision::Skip, "5xx");
        assert_eq!(
            run(&SessionState::default(), USED, 200),
            Decision::Skip,
            "accessed, never loaded"
        );
    }

    #[test]
    fn a_failed_load_follows_the_failure_policy() {
        let mut s = SessionState::default();
        s.load_failed();
        assert_eq!(run(&s, USED, 200), Decision::Unavailable, "closed");
        let open = SessionConfig::builder()
            .with_failure_policy(FailurePolicy::Open)
            .build()
            .unwrap();
        assert_eq!(decide(&s, &open, USED, 200, NOW), Decision::Skip, "open");
        assert_eq!(run(&s, USED, 500), Decision::Skip, "5xx wins");
    }

    #[test]
    fn unchanged_inside_the_touch_interval_keeps_and_may_resign() {
        assert_eq!(run(&loaded(), USED, 200), Decision::Keep { resign: false });
        let resign = Facts {
            resign: true,
            ..USED
        };
        assert_eq!(run(&loaded(), resign, 200), Decision::Keep { resign: true });
    }

    #[test]
    fn changes_update_without_moving_the_deadline() {
        let mut s = loaded();
        s.insert("cart", b"[1]".to_vec(), 1000).unwrap();
        assert_eq!(
            run(&s, USED, 200),
            Decision::Update(Update {
                expires_ms: None,
                cookie: false,
                resign: false,
                delete_if_empty: false,
            })
        );
    }

    #[test]
    fn a_due_touch_moves_the_deadline_and_refreshes_a_permanent_cookie() {
        let config = SessionConfig::default();
        let later = NOW + DAY / 2;
        let d = decide(&loaded(), &config, USED, 200, later);
        assert_eq!(
            d,
            Decision::Update(Update {
                expires_ms: Some(later + DAY),
                cookie: false,
                resign: false,
                delete_if_empty: false,
            })
        );
        let mut permanent = loaded();
        permanent.set_permanent(true);
        let Decision::Update(u) = decide(&permanent, &config, USED, 200, NOW) else {
            panic!("an update");
        };
        assert!(u.cookie, "new flags send the cookie");
        assert_eq!(u.expires_ms, Some(NOW + 31 * DAY));
    }

    #[test]
    fn an_emptied_session_asks_for_deletion() {
        let mut s = loaded();
        s.clear();
        let Decision::Update(u) = run(&s, USED, 200) else {
            panic!("an update");
        };
        assert!(u.delete_if_empty);
    }

    #[test]
    fn new_sessions_are_created_forgotten_or_refused() {
        let mut s = fresh();
        assert_eq!(
            run(&s, USED, 200),
            Decision::Forget {
                expire_cookie: true
            }
        );
        let no_cookie = Facts {
            had_cookie: false,
            ..USED
        };
        assert_eq!(
            run(&s, no_cookie, 200),
            Decision::Forget {
                expire_cookie: false
            }
        );
        s.insert("user", b"\"bob\"".to_vec(), 1000).unwrap();
        assert_eq!(
            run(&s, no_cookie, 200),
            Decision::Create {
                deadline: NOW + DAY
            }
        );
        let small = SessionConfig::builder().with_max_size(4).build().unwrap();
        assert_eq!(
            decide(&s, &small, no_cookie, 200, NOW),
            Decision::TooLarge { size: 9 }
        );
    }

    #[test]
    fn flush_deletes_first_then_decides_on_what_remains() {
        let mut s = loaded();
        s.flush(NOW, Vec::new);
        assert_eq!(
            run(&s, USED, 200),
            Decision::Retire(Retire::Delete(vec![sid('A')]))
        );
        s.retired();
        assert_eq!(
            run(&s, USED, 200),
            Decision::Forget {
                expire_cookie: true
            }
        );
        s.insert("a", b"1".to_vec(), 100).unwrap();
        assert!(matches!(run(&s, USED, 200), Decision::Create { .. }));
        // Flushing what was never loaded deletes what the cookie names.
        let mut unseen = SessionState::default();
        unseen.flush(NOW, || vec![sid('B'), sid('C')]);
        assert_eq!(
            run(&unseen, USED, 200),
            Decision::Retire(Retire::Delete(vec![sid('B'), sid('C')]))
        );
    }

    #[test]
    fn a_cycle_creates_first_then_sends_the_new_cookie_and_others_writes() {
        let mut s = loaded();
        s.insert("cart", b"[1]".to_vec(), 1000).unwrap();
        s.cycle();
        assert_eq!(run(&s, USED, 200), Decision::Retire(Retire::Move(sid('A'))));
        // The new record was created from this state; the old one moved.
        let changed = s.reissued(SessionId::generate(), NOW + DAY);
        assert_eq!(
            run(&s, USED, 200),
            Decision::Keep { resign: true },
            "nothing more to write, and the new cookie goes out"
        );
        // Meanwhile another request had stored "tab" in the old record.
        let meta = Meta {
            expires_ms: NOW + DAY,
            ..Meta::default()
        };
        let current = Record::new(
            [
                ("user".to_owned(), b"\"ann\"".to_vec()),
                ("tab".to_owned(), b"2".to_vec()),
            ]
            .into(),
            meta,
        );
        s.moved(current, &changed);
        let Decision::Update(u) = run(&s, USED, 200) else {
            panic!("an update with the other request's write");
        };
        assert!(u.cookie && u.expires_ms.is_none());
        assert_eq!(s.keys(), ["cart", "tab", "user"]);
        // A session deleted meanwhile stays deleted.
        s.gone(NOW);
        assert!(s.reissue().is_none());
        assert_eq!(
            run(&s, USED, 200),
            Decision::Forget {
                expire_cookie: true
            }
        );
        // A cycle of a session with no record changes nothing.
        let mut new = fresh();
        new.cycle();
        assert_eq!(
            run(&new, USED, 200),
            Decision::Forget {
                expire_cookie: true
            }
        );
    }

    #[test]
    fn an_update_is_followed_by_its_outcome() {
        let plain = Update {
            expires_ms: None,
            cookie: false,
            resign: false,
            delete_if_empty: false,
        };
        assert_eq!(
            after_update(&plain, UpdateOutcome::Saved, 7),
            AfterUpdate::Nothing
        );
        let resign = Update {
            resign: true,
            ..plain.clone()
        };
        assert_eq!(
            after_update(&resign, UpdateOutcome::Saved, 7),
            AfterUpdate::Cookie(7),
            "re-signed, with the stored deadline"
        );
        let touched = Update {
            expires_ms: Some(9),
            cookie: true,
            ..plain.clone()
        };
        assert_eq!(
            after_update(&touched, UpdateOutcome::Saved, 7),
            AfterUpdate::Cookie(9)
        );
        assert_eq!(
            after_update(&plain, UpdateOutcome::Deleted, 7),
            AfterUpdate::ExpireCookie
        );
        assert_eq!(
            after_update(&touched, UpdateOutcome::Moved(sid('C')), 7),
            AfterUpdate::Forward(sid('C')),
            "a forwarded save, and no cookie for the old id's holder"
        );
        assert_eq!(
            after_update(&resign, UpdateOutcome::Gone, 7),
            AfterUpdate::Nothing,
            "a deleted session gets no cookie back"
        );
    }
}
