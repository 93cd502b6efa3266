//! Server-side web sessions for Rust, kept in Redis.
//!
//! sessionkit starts from the classic Flask recipe — a session that behaves
//! like a map and tracks its changes, a cookie that holds only a random id,
//! data in Redis under `session:<id>` with a TTL, an emptied session deleting
//! its key and cookie — and makes it correct under concurrency:
//!
//! - **Lazy**: a handler that never touches the session costs no Redis call.
//! - **Deltas**: each changed key is one hash field; concurrent requests
//!   changing different keys lose nothing.
//! - **No resurrection**: a save never recreates a session deleted meanwhile
//!   (logout in another tab), and never overwrites on create.
//! - **No raw ids in Redis**: keys are a versioned SHA-256 of the cookie id.
//! - **Bounded**: every Redis call has a timeout; failures are values for
//!   handlers and a bare 503 from the middleware, never a hang.
//! - **Cached**: [`RedisStore`] keeps recently used sessions in process,
//!   coherent through Redis's client tracking ([`ClientCache`], on by
//!   default): a read of a cached session costs no Redis round trip, a
//!   write one.
//! - **Who is signed in where**: a session attached to its user
//!   ([`Session::set_user`]) is listed in that user's index; the user sees
//!   their devices ([`Session::devices`]) and ends one or all
//!   ([`Session::logout_everywhere`]), an admin does the same through
//!   [`admin::UserSessions`], and revocation is final on every instance.
//!   [`events`] tells the application what happened to sessions,
//!   [`telemetry`] lists the metrics; flash messages ([`Session::flash`]).
//! - **Same-key updates that lose nothing**: [`Session::increment`] adds in
//!   the store, [`Session::update`] is a read-modify-write retried when
//!   another request changed the key meanwhile.
//! - **Codecs and transports**: values in JSON or MessagePack ([`Codec`],
//!   kept per record); the id in a cookie or, for APIs, a header
//!   ([`Transport::Bearer`], [`Session::token`]).
//! - **Migrating from Flask**: `store::flask::FlaskStore` (feature `flask`)
//!   shares sessions with a Flask app running the recipe; `testing`
//!   (feature `testing`) helps test handlers and other stores.
//!
//! New to server-side sessions? The [`guide`] explains lifetimes, the
//! security defaults and what happens when Redis fails.
//!
//! # Install
//!
//! ```toml
//! [dependencies]
//! sessionkit = "0.1"          # axum + Redis; for actix-web:
//! # sessionkit = { version = "0.1", default-features = false, features = ["redis", "actix"] }
//! ```
//!
//! Rust 1.85 or later; Redis 6 or later.
//!
//! # Quick start (axum)
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use sessionkit::{RedisStore, Session, SessionConfig, SessionLayer};
//!
//! async fn visits(session: Session) -> Result<String, sessionkit::Error> {
//!     let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
//!     session.insert("visits", &n).await?;
//!     Ok(format!("{n} visits"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
//! let app: Router = Router::new()
//!     .route("/", get(visits))
//!     .layer(SessionLayer::new(store, SessionConfig::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! Sign in, sign out, and sign out everywhere:
//!
//! ```no_run
//! # async fn demo(session: sessionkit::Session) -> Result<(), sessionkit::Error> {
//! // Sign in: a new id (no fixation), the user's data, listed as a device.
//! session.cycle_id().await?;
//! session.insert("name", "ann").await?;
//! session.set_user("ann").await?;
//! // Sign out on this device: the record and the cookie go.
//! session.flush().await;
//! // Or everywhere the user is signed in, this device included.
//! let others = session.logout_everywhere().await?;
//! # let _ = others; Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `redis` | yes | [`RedisStore`] |
//! | `tower` | yes (via `axum`) | [`SessionLayer`], [`SessionService`] |
//! | `axum` | yes | `tower` + [`Session`] as an axum extractor, [`Error`] as an axum response |
//! | `actix` | no | `SessionMiddleware` for actix-web 4, [`Session`] as an actix-web extractor, [`Error`] as a `ResponseError` |
//! | `cluster` | no | `RedisStoreBuilder::cluster`: a Redis Cluster, each call routed by its key's slot (the client cache tracks every primary) |
//! | `sentinel` | no | `RedisStoreBuilder::sentinel`: the primary found through Redis Sentinel, again after a failover |
//! | `tls` | no | `rediss://` URLs for [`RedisStore`] (one server, Sentinel's sentinel URLs, Cluster's seed nodes), and a CA or client certificate given to [`RedisStoreBuilder`] (rustls) |
//! | `flask` | no | `store::flask::FlaskStore`: the Flask recipe's Redis format (pickled dicts under `session:<uuid4>`), to share sessions with a Flask app during a migration |
//! | `testing` | no | `testing::Client` (a handler's sessions in a unit test) and `testing::check_store` (the store contract, for other backends) |
//! | `fuzzing` | no | entry points for the fuzz targets in `fuzz/`; **not part of the API**, no stability promise |
//!
//! With `actix`, the same [`Session`] and the same request lifecycle serve
//! actix-web: `App::new().wrap(SessionMiddleware::new(store, config))`, and
//! handlers take `session: Session` exactly as in axum.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
// Without a framework adapter nothing drives the lifecycle (it is still
// compiled, so that store implementations can be built and tested alone).
#![cfg_attr(not(any(feature = "tower", feature = "actix")), allow(dead_code))]

mod codec;
mod config;
mod cookie;
#[macro_use]
mod error;
pub mod admin;
pub mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod guide;
mod id;
mod integration;
mod lifecycle;
mod session;
mod state;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use codec::Codec;
pub use config::{
    ConfigError, ErrorKind, ErrorPage, FailurePolicy, SameSite, SessionConfig,
    SessionConfigBuilder, Transport, DEFAULT_COOKIE_NAME, DEFAULT_IDLE_LIFETIME, DEFAULT_MAX_SIZE,
    DEFAULT_PERMANENT_LIFETIME, MIN_SIGNING_KEY_LEN, PLAIN_COOKIE_NAME,
};
pub use error::{BoxError, Error};
pub use id::{IdFormat, ParseIdError, SessionHandle, SessionId, StorageId};
#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub use integration::actix::{SessionMiddleware, SessionMiddlewareService};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use integration::tower::{SessionLayer, SessionService};
pub use session::{Session, FLASHES_KEY};
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::redis::{ClientCache, RedisStore, RedisStoreBuilder};
pub use store::SessionStore;
