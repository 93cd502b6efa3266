//! Helpers for the tests of applications and of other stores (feature
//! `testing`).
//!
//! - [`Client`]: sessions for a handler's unit test, without a server or
//!   Redis — each [`request`](Client::request) is the session of one
//!   request, [`respond`](Client::respond) ends it as the middleware would
//!   (saving what changed) and keeps the cookie for the next one.
//! - [`check_store`]: the contract every [`SessionStore`] keeps, as a
//!   suite an author of another store (Postgres, say) runs against theirs.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sessionkit::Error> {
//! use sessionkit::testing::Client;
//! use sessionkit::Session;
//!
//! // The handler under test.
//! async fn visit(session: Session) -> Result<String, sessionkit::Error> {
//!     let n = session.increment("visits", 1).await?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! let client = Client::new();
//! let session = client.request();
//! assert_eq!(visit(session.clone()).await?, "visit 1");
//! client.respond(&session).await?;
//! let session = client.request();
//! assert_eq!(visit(session.clone()).await?, "visit 2");
//! client.respond(&session).await?;
//! assert_eq!(client.store().len(), 1);
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::lifecycle::Shared;
use crate::store::{Changes, Meta, Record, SessionStore, UpdateOutcome};
use crate::{Error, MemoryStore, Session, SessionConfig, SessionId, Transport};

/// A client of an application, in process: the sessions of its requests,
/// on a [`MemoryStore`] (or any store), with its cookie kept between them.
#[derive(Clone, Debug)]
pub struct Client {
    shared: Arc<Shared>,
    memory: Option<MemoryStore>,
    /// The session cookie's value (or header transport's token).
    cookie: Arc<Mutex<Option<String>>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client of an app with the default config, on a new memory store.
    pub fn new() -> Self {
        Self::with_config(SessionConfig::default())
    }

    /// A client of an app with `config`, on a new memory store.
    pub fn with_config(config: SessionConfig) -> Self {
        let memory = MemoryStore::new();
        let mut client = Self::with_store(memory.clone(), config);
        client.memory = Some(memory);
        client
    }

    /// A client of an app with `config` on `store`.
    pub fn with_store(store: impl SessionStore, config: SessionConfig) -> Self {
        Client {
            shared: Shared::new(store, config),
            memory: None,
            cookie: Arc::new(Mutex::new(None)),
        }
    }

    /// The memory store of a client made by [`new`](Self::new) or
    /// [`with_config`](Self::with_config) (an empty one otherwise).
    pub fn store(&self) -> MemoryStore {
        self.memory.clone().unwrap_or_default()
    }

    /// The cookie's value (or token) the client holds now.
    pub fn cookie(&self) -> Option<String> {
        self.cookie
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the cookie the client holds (`None`: a new visitor).
    pub fn set_cookie(&self, value: Option<&str>) {
        *self.cookie.lock().unwrap_or_else(PoisonError::into_inner) = value.map(str::to_owned);
    }

    /// The session of a new request, carrying the client's cookie (no
    /// I/O until the handler uses it).
    pub fn request(&self) -> Session {
        let config = &self.shared.config;
        let header = self.cookie().map(|c| match config.transport() {
            Transport::Cookie => format!("{}={c}", config.cookie_name()),
            Transport::Bearer => format!("Bearer {c}"),
            _ => c,
        });
        Session::open(&self.shared, header.iter().map(String::as_bytes), || None)
    }

    /// Ends the request of `session` with a `200` response, as the
    /// middleware does; the client keeps the cookie it was sent.
    ///
    /// # Errors
    ///
    /// The status the middleware would have answered with instead (503 when
    /// the store failed, 413 for a session too large), as
    /// [`Error::Unavailable`] or [`Error::TooLarge`].
    pub async fn respond(&self, session: &Session) -> Result<(), Error> {
        self.respond_with(session, 200).await
    }

    /// [`respond`](Self::respond) for a response with `status`.
    ///
    /// # Errors
    ///
    /// As [`respond`](Self::respond).
    pub async fn respond_with(&self, session: &Session, status: u16) -> Result<(), Error> {
        let finish = session.finish(status).await;
        let config = &self.shared.config;
        let id_header = &*config.id_headers.response;
        for (name, value) in finish.headers(false) {
            if name != id_header {
                continue;
            }
            let value = match config.transport() {
                Transport::Cookie => {
                    let Ok(cookie) = cookie::Cookie::parse(value) else {
                        continue;
                    };
                    let removal = cookie.max_age() == Some(cookie::time::Duration::ZERO);
                    (!removal).then(|| cookie.value().to_owned())
                }
                _ => (!value.is_empty()).then(|| value.to_owned()),
            };
            self.set_cookie(value.as_deref());
        }
        match finish.replacement() {
            Some(413) => Err(Error::TooLarge {
                size: 0,
                limit: config.max_size(),
            }),
            Some(status) if status >= 500 => Err(Error::unavailable(format!(
                "the middleware would answer {status}"
            ))),
            _ => Ok(()),
        }
    }
}

/// What a store under [`check_store`] offers besides the core operations.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct StoreFeatures {
    /// Users' indexes ([`SessionStore::sessions_of`], [`Record::user`],
    /// [`Record::info`]); off for a store that keeps none.
    pub user_index: bool,
    /// Forwarding markers ([`UpdateOutcome::Moved`] after a
    /// [`take`](SessionStore::take)); off for a store that keeps none.
    pub forwarding: bool,
}

impl Default for StoreFeatures {
    fn default() -> Self {
        StoreFeatures {
            user_index: true,
            forwarding: true,
        }
    }
}

/// Runs the store contract (see [`SessionStore`]) against `store`: create
/// never overwrites, load returns what was stored, update applies changes
/// and never recreates a record that is gone, the size limit, increments,
/// expected values ([`Changes::expect`]), delete-if-empty, expiry, take and
/// forwarding, revoke, and the users' index — each with fresh ids, so the
/// store may hold other data. Takes about two seconds (it waits for a
/// record to expire).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use sessionkit::testing::{check_store, StoreFeatures};
/// check_store(&sessionkit::MemoryStore::new(), StoreFeatures::default()).await;
/// # }
/// ```
///
/// # Panics
///
/// On the first broken rule, saying which.
pub async fn check_store<S: SessionStore + ?Sized>(store: &S, features: StoreFeatures) {
    // A store for the Flask recipe's ids gets those.
    let kind = if probe_uuid_ids(store).await {
        crate::IdFormat::Uuid4
    } else {
        crate::IdFormat::Random
    };
    let new_id = || SessionId::generate_as(kind).storage_id();
    let now = crate::store::now_ms();
    let day = 86_400_000;
    let meta = |expires_ms: u64| Meta {
        created_ms: now,
        expires_ms,
        ..Meta::default()
    };
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
    let failed = |what: &str, e: Error| -> ! { panic!("{what}: {}", e.chain()) };

    // Create, load, and create again.
    let a = new_id();
    let mut record = Record::new(
        [
            ("user".to_owned(), json(serde_json::json!("ann"))),
            ("cart".to_owned(), json(serde_json::json!(["a", "b"]))),
        ]
        .into(),
        meta(now + day),
    );
    record.meta.permanent = true;
    if features.user_index {
        record.user = Some("check-store-ann".to_owned());
        record.info.insert("device".to_owned(), "laptop".to_owned());
    }
    let created = store
        .create(&a, &record)
        .await
        .unwrap_or_else(|e| failed("create", e));
    assert!(created, "create: a new id is created");
    let loaded = load(store, &a)
        .await
        .unwrap_or_else(|| panic!("load: the created record"));
    assert_eq!(loaded.data, record.data, "load: the data created");
    assert!(loaded.meta.permanent, "load: the permanent flag");
    assert!(
        loaded.meta.expires_ms.abs_diff(record.meta.expires_ms) < 5_000,
        "load: the expiry ({} vs {})",
        loaded.meta.expires_ms,
        record.meta.expires_ms
    );
    if features.user_index {
        assert_eq!(loaded.user, record.user, "load: the user");
        assert_eq!(loaded.info, record.info, "load: the device notes");
    }
    let other = Record::new(
        [("x".to_owned(), json(serde_json::json!(1)))].into(),
        meta(now + day),
    );
    let again = store
        .create(&a, &other)
        .await
        .unwrap_or_else(|e| failed("create", e));
    assert!(!again, "create: an existing id is refused");
    assert_eq!(
        load(store, &a).await.map(|r| r.data),
        Some(record.data.clone()),
        "create never overwrites"
    );

    // Update: set, remove, increment, flags.
    let one = json(serde_json::json!("v"));
    let changes = Changes {
        set: vec![("k", one.as_slice())],
        remove: vec!["cart"],
        increments: vec![("n", 2)],
        flags: Some(Meta {
            permanent: false,
            ..Meta::default()
        }),
        ..Changes::default()
    };
    let outcome = update(store, &a, &changes).await;
    assert_eq!(outcome, UpdateOutcome::Saved, "update: saved");
    let after = load(store, &a)
        .await
        .unwrap_or_else(|| panic!("load after update"));
    assert_eq!(after.data.get("k"), Some(&one), "update: a key set");
    assert!(!after.data.contains_key("cart"), "update: a key removed");
    assert_eq!(
        after.data.get("n"),
        Some(&json(serde_json::json!(2))),
        "update: an increment of nothing"
    );
    assert!(!after.meta.permanent, "update: the flags");
    let more = Changes {
        increments: vec![("n", 3), ("k", 5)],
        ..Changes::default()
    };
    update(store, &a, &more).await;
    let after = load(store, &a)
        .await
        .unwrap_or_else(|| panic!("load after increments"));
    assert_eq!(
        after.data.get("n"),
        Some(&json(serde_json::json!(5))),
        "increments add up"
    );
    assert_eq!(
        after.data.get("k"),
        Some(&json(serde_json::json!(5))),
        "a non-integer starts over"
    );

    // Expected values: a mismatch writes nothing and says what is held.
    let n = json(serde_json::json!(5));
    let stale = json(serde_json::json!(4));
    let six = json(serde_json::json!(6));
    fn guarded<'a>(six: &'a [u8], expected: &'a [u8]) -> Changes<'a> {
        Changes {
            set: vec![("n", six)],
            expect: vec![("n", Some(expected))],
            ..Changes::default()
        }
    }
    let c = guarded(&six, &stale);
    match update(store, &a, &c).await {
        UpdateOutcome::Conflict(held) => {
            assert_eq!(
                held,
                vec![("n".to_owned(), Some(n.clone()))],
                "a conflict says what is held"
            );
        }
        other => panic!("an expected value that is not held: Conflict, not {other:?}"),
    }
    assert_eq!(
        load(store, &a).await.and_then(|r| r.data.get("n").cloned()),
        Some(n.clone()),
        "a conflict writes nothing"
    );
    let c = guarded(&six, &n);
    assert_eq!(update(store, &a, &c).await, UpdateOutcome::Saved);
    let absent = Changes {
        set: vec![("fresh", one.as_slice())],
        expect: vec![("fresh", None)],
        ..Changes::default()
    };
    assert_eq!(
        update(store, &a, &absent).await,
        UpdateOutcome::Saved,
        "an expected absence"
    );

    // The size limit.
    let big = vec![b'"'; 1]
        .into_iter()
        .chain(std::iter::repeat_n(b'x', 4000))
        .chain([b'"'])
        .collect::<Vec<u8>>();
    let too_large = Changes {
        set: vec![("big", big.as_slice())],
        max_size: Some(1000),
        ..Changes::default()
    };
    match store.update(&a, &too_large).await {
        Err(Error::TooLarge { .. }) => {}
        other => panic!("past max_size: TooLarge, not {other:?}"),
    }
    assert!(
        !load(store, &a)
            .await
            .is_some_and(|r| r.data.contains_key("big")),
        "a refused change writes nothing"
    );

    // Delete-if-empty, and no update brings a record back.
    let keys: Vec<String> = load(store, &a)
        .await
        .map(|r| r.data.into_keys().collect())
        .unwrap_or_default();
    let emptied = Changes {
        remove: keys.iter().map(String::as_str).collect(),
        delete_if_empty: true,
        ..Changes::default()
    };
    assert_eq!(
        update(store, &a, &emptied).await,
        UpdateOutcome::Deleted,
        "emptied: deleted"
    );
    assert!(load(store, &a).await.is_none(), "an emptied record is gone");
    let late = Changes {
        set: vec![("late", one.as_slice())],
        ..Changes::default()
    };
    assert_eq!(
        update(store, &a, &late).await,
        UpdateOutcome::Gone,
        "update never recreates"
    );
    assert!(
        load(store, &a).await.is_none(),
        "still gone after a late update"
    );

    // Take, and forwarding.
    let b = new_id();
    let moved_to = new_id();
    store
        .create(&b, &record)
        .await
        .unwrap_or_else(|e| failed("create", e));
    let taken = store
        .take(&b, &moved_to)
        .await
        .unwrap_or_else(|e| failed("take", e));
    assert_eq!(
        taken.map(|r| r.data),
        Some(record.data.clone()),
        "take: the record"
    );
    assert!(load(store, &b).await.is_none(), "taken: nothing to load");
    let outcome = update(store, &b, &late).await;
    if features.forwarding {
        assert_eq!(
            outcome,
            UpdateOutcome::Moved(moved_to.clone()),
            "a moved record forwards"
        );
    } else {
        assert_eq!(outcome, UpdateOutcome::Gone, "a taken record is gone");
    }
    assert!(
        store
            .take(&b, &moved_to)
            .await
            .unwrap_or_else(|e| failed("take", e))
            .is_none(),
        "take twice: nothing"
    );

    // Revoke, and the users' index.
    let c = new_id();
    store
        .create(&c, &record)
        .await
        .unwrap_or_else(|e| failed("create", e));
    if features.user_index {
        let listed = listed(store, "check-store-ann").await;
        assert!(listed.contains(&c), "sessions_of lists an attached session");
        assert!(!listed.contains(&a), "sessions_of drops ended sessions");
    }
    assert!(
        store
            .revoke(&c)
            .await
            .unwrap_or_else(|e| failed("revoke", e)),
        "revoke: ended"
    );
    assert!(load(store, &c).await.is_none(), "revoked: gone");
    assert!(
        !store
            .revoke(&c)
            .await
            .unwrap_or_else(|e| failed("revoke", e)),
        "revoke twice: nothing to end"
    );
    if features.user_index {
        let listed = listed(store, "check-store-ann").await;
        assert!(!listed.contains(&c), "a revoked session is not listed");
    }
    store
        .delete(&c)
        .await
        .unwrap_or_else(|e| failed("delete of nothing", e));

    // Expiry.
    let d = new_id();
    let short = Record::new(record.data.clone(), meta(crate::store::now_ms() + 1_000));
    store
        .create(&d, &short)
        .await
        .unwrap_or_else(|e| failed("create", e));
    assert!(
        load(store, &d).await.is_some(),
        "a record before its expiry"
    );
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert!(
        load(store, &d).await.is_none(),
        "a record past its expiry is gone"
    );
}

/// The storage ids `sessions_of(user)` lists, failing the check on an error.
async fn listed<S: SessionStore + ?Sized>(store: &S, user: &str) -> Vec<crate::StorageId> {
    store
        .sessions_of(user)
        .await
        .unwrap_or_else(|e| panic!("sessions_of: {}", e.chain()))
        .into_iter()
        .map(|(sid, _)| sid)
        .collect()
}

/// Applies `changes` to `id`, failing the check on an error.
async fn update<S: SessionStore + ?Sized>(
    store: &S,
    id: &crate::StorageId,
    changes: &Changes<'_>,
) -> UpdateOutcome {
    store
        .update(id, changes)
        .await
        .unwrap_or_else(|e| panic!("update: {}", e.chain()))
}

/// Loads `id`, failing the check on an error.
async fn load<S: SessionStore + ?Sized>(store: &S, id: &crate::StorageId) -> Option<Record> {
    store
        .load(id)
        .await
        .unwrap_or_else(|e| panic!("load: {}", e.chain()))
}

/// Whether `store` takes the Flask recipe's uuid ids (and not hashed
/// ones): it refuses a hashed id.
async fn probe_uuid_ids<S: SessionStore + ?Sized>(store: &S) -> bool {
    store
        .load(&SessionId::generate().storage_id())
        .await
        .is_err()
        && store
            .load(&SessionId::generate_as(crate::IdFormat::Uuid4).storage_id())
            .await
            .is_ok()
}
