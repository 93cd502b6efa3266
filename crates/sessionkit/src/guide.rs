//! A guide to sessionkit's behaviour, for someone new to server-side
//! sessions. (This module holds only documentation.)
//!
//! # What a session is here
//!
//! A session is a small map of values (any serde type) that belongs to one
//! browser (or API client). The browser holds only a random id, in a
//! cookie; the values stay on the server, in Redis (or in memory for
//! development). A handler takes a [`Session`](crate::Session) and calls
//! `get`, `insert`, `remove`, `update`, `increment`; the middleware loads
//! the session on first use (a route that never touches it costs nothing)
//! and, after the handler, saves only the keys that changed.
//!
//! # Lifetimes
//!
//! - **Idle lifetime** (default one day): a session nobody uses for that
//!   long ends. Each use moves the end forward — but at most once per
//!   *touch interval* (a tenth of the lifetime), so a busy session does not
//!   cost a write per request. The cookie of such a session is a
//!   browser-session cookie: closing the browser forgets it.
//! - **Permanent lifetime** (default 31 days), after
//!   [`set_permanent(true)`](crate::Session::set_permanent) (at sign-in,
//!   for "remember me"): the cookie is persistent (`Max-Age`) and the
//!   session lives that long after its last use.
//! - **Absolute lifetime** (none by default,
//!   [`with_absolute_lifetime`](crate::SessionConfigBuilder::with_absolute_lifetime)):
//!   a hard end counted from creation, however active the session is —
//!   for sites that must make users sign in again every day, say.
//!   [`set_expiry`](crate::Session::set_expiry) and
//!   [`set_absolute_lifetime`](crate::Session::set_absolute_lifetime) set
//!   both for one session.
//!
//! An emptied session (every key removed) is deleted, with its cookie; a
//! new session with nothing in it is never stored.
//!
//! # Security defaults
//!
//! - The cookie is `__Host-session`, `Secure`, `HttpOnly`, `SameSite=Lax`,
//!   `Path=/`: scripts cannot read it, it never travels over plain HTTP
//!   (but browsers accept it on `http://localhost`), cross-site requests do
//!   not carry it, and no other subdomain or path can plant one beside it.
//!   Over plain HTTP to any other host browsers drop it: sessionkit logs a
//!   warning when it sees that.
//! - The id is 192 random bits. Redis never sees it: keys are a SHA-256 of
//!   it, so a copy of the database, a replica or `MONITOR` yields no
//!   usable cookie.
//! - An id the server did not issue is never adopted (no session
//!   fixation); call [`cycle_id`](crate::Session::cycle_id) at sign-in so
//!   that an id someone saw before sign-in is useless after it.
//! - Optional signing ([`with_signing_keys`](crate::SessionConfigBuilder::with_signing_keys))
//!   rejects forged ids before any store call; keys rotate without
//!   logging anyone out.
//! - A sign-out ([`flush`](crate::Session::flush)) deletes the record; a
//!   request still running for that session cannot bring it back.
//!
//! # When the store fails
//!
//! Every Redis call is bounded (500 ms by default). When Redis cannot be
//! reached, a session call returns [`Error::Unavailable`](crate::Error) and,
//! with the default *closed* [`FailurePolicy`](crate::FailurePolicy), the
//! middleware answers `503 Service Unavailable` with `Retry-After: 1`
//! whatever the handler made — a page built without the session (an empty
//! cart, a signed-out view) is never shown as if it were the user's. With
//! the *open* policy the handler's response stands and it decides. Give
//! these responses the site's look with
//! [`with_error_page`](crate::SessionConfigBuilder::with_error_page). A
//! sign-out while Redis is down still expires the cookie (this browser is
//! signed out; the record ends with its TTL). When Redis is back, sessions
//! work again without a restart.
//!
//! # Concurrent requests
//!
//! Requests of one session run at the same time (two tabs, a page and its
//! XHRs). Changes to *different* keys never overwrite each other (each key
//! is saved on its own). For the *same* key, a plain `insert` keeps the
//! last writer's value; use [`increment`](crate::Session::increment) for
//! counters and [`update`](crate::Session::update) for any
//! read-modify-write (a cart) so that none is lost.
