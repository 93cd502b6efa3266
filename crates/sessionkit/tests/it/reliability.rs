//! Outages, stalls, corrupt records, races and durability, against a real
//! redis-server started by the test.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use sessionkit::{FailurePolicy, RedisStore, Session, SessionConfig, SessionLayer};
use testkit::client::Browser;
use testkit::conformance::{Framework, StoreKind, Subject};
use testkit::RedisServer;

async fn redis_subject() -> Subject {
    Subject::start(StoreKind::Redis, Framework::Axum).await
}

fn server(s: &Subject) -> &RedisServer {
    s.redis.as_ref().expect("a Redis subject")
}

fn only_key(s: &Subject) -> String {
    let keys = s.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.into_iter().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_redis_fails_fast_and_spares_sessionless_routes() {
    let s = redis_subject().await;
    let mut b = s.browser();
    b.get("/write").await;
    // Pause every client (including ours) for 3 s: a stalled Redis.
    let _: String = server(&s).cmd(&["CLIENT", "PAUSE", "3000", "ALL"]);
    let started = Instant::now();
    let r = b.get("/read").await;
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(r.body.is_empty(), "opaque to clients: {:?}", r.body);
    assert!(
        took < Duration::from_millis(2500),
        "stalled Redis must not hang a request ({took:?})"
    );
    let r = b.get("/baseline").await;
    assert_eq!(r.status, 200, "a route without session use is unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_recovers_without_app_restart() {
    let mut s = redis_subject().await;
    let mut b = s.browser();
    assert_eq!(b.get("/write").await.body, "1");
    s.redis.as_mut().expect("redis").kill();
    let r = b.get("/read").await;
    assert_eq!(r.status, 503, "outage: {r:?}");
    s.redis.as_mut().expect("redis").restart();
    let mut fresh = s.browser();
    // Scripts are gone after the restart: the save must reload them (NOSCRIPT).
    fresh
        .poll("/write", Duration::from_secs(2), |r| r.status == 200)
        .await;
    assert_eq!(
        fresh.get("/write").await.body,
        "2",
        "writes work again after recovery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_are_replaced_by_a_fresh_session() {
    let s = redis_subject().await;
    let redis = server(&s);
    let corruptions: [&[&str]; 4] = [
        &["SET", "{key}", "not a hash"],
        &["HSET", "{key}", "m:expires", "tomorrow"],
        &["HSET", "{key}", "m:v", "99"],
        &["HSET", "{key}", "x:foreign", "1"],
    ];
    for corrupt in corruptions {
        let mut b = s.browser();
        b.get("/write").await;
        let key = only_key(&s);
        if corrupt[0] == "SET" {
            let _: i64 = redis.cmd(&["DEL", &key]);
        }
        let args: Vec<&str> = corrupt
            .iter()
            .map(|a| if *a == "{key}" { key.as_str() } else { a })
            .collect();
        let _: redis::Value = redis.cmd(&args);
        let r = b.get("/read").await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "0"),
            "{corrupt:?}: a fresh session"
        );
        assert!(
            s.keys().is_empty(),
            "{corrupt:?}: the corrupt record is deleted"
        );
        let r = b.get("/write").await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "1"),
            "{corrupt:?}: no 500 loop"
        );
        let _: String = redis.cmd(&["FLUSHALL"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_value_is_dropped_not_a_500_loop() {
    let s = redis_subject().await;
    let mut b = s.browser();
    b.get("/write").await;
    b.get("/set?key=keep&value=yes").await;
    let key = only_key(&s);
    let _: i64 = server(&s).cmd(&["HSET", &key, "d:count", "{not json"]);
    let r = b.get("/read").await;
    assert_eq!((r.status, r.body.as_str()), (200, "0"), "{r:?}");
    assert_eq!(b.get("/write").await.body, "1");
    assert_eq!(
        b.get("/get?key=keep").await.body,
        "yes",
        "the rest of the session is intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycle_concurrent_with_writes_keeps_one_session_with_all_data() {
    let s = redis_subject().await;
    let mut b = s.browser();
    b.get("/new").await;
    let mut writers = Vec::new();
    for i in 0..20 {
        let mut tab = b.fork();
        writers.push(tokio::spawn(async move {
            let r = tab
                .get(&format!(
                    "/set?key=k{i}&value=v{i}&delay_ms={}",
                    20 + 10 * i
                ))
                .await;
            // A writer that (on a loaded machine) only loaded after the move
            // sees no session and starts its own: it gets a new cookie.
            (r.status, !r.set_cookies.is_empty())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.get("/login?user=dana").await.status, 200);
    let mut separate = Vec::new();
    for (i, w) in writers.into_iter().enumerate() {
        let (status, new_session) = w.await.expect("writer");
        assert_eq!(status, 200);
        if new_session {
            separate.push(i);
        }
    }
    assert!(
        separate.len() <= 10,
        "too few writers loaded before the login: {separate:?}"
    );
    assert_eq!(
        s.stored_sessions(),
        1 + separate.len(),
        "one live session for the user (plus any started after the move)"
    );
    assert_eq!(b.get("/whoami").await.body, "dana");
    for i in (0..20).filter(|i| !separate.contains(i)) {
        let r = b.get(&format!("/get?key=k{i}")).await;
        assert_eq!(r.body, format!("v{i}"), "k{i} lost across cycle_id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiring_mid_request_is_not_recreated() {
    let config = SessionConfig::builder()
        .with_idle_lifetime(Duration::from_millis(400))
        .build()
        .expect("config");
    let s = Subject::start_with(StoreKind::Redis, Framework::Axum, config).await;
    let mut b = s.browser();
    b.get("/set?key=a&value=1").await;
    let r = b.get("/set?key=b&value=2&delay_ms=700").await;
    assert_eq!(r.status, 200);
    assert!(
        s.keys().is_empty(),
        "expired session recreated: {:?}",
        s.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_redis_restart_with_aof() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = RedisStore::connect(redis.url()).await.expect("connect");
    let app = testkit::contract::axum_router(store, SessionConfig::default());
    let mut b = Browser::new(
        testkit::serve_axum(app).await,
        sessionkit::DEFAULT_COOKIE_NAME,
    );
    for _ in 0..5 {
        b.get("/write").await;
    }
    b.get("/login?user=erin").await;
    redis.restart(); // SIGKILL, then start again on the same port and directory
    let deadline = Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = b.get("/read").await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.body, "5");
    assert_eq!(b.get("/whoami").await.body, "erin");
}

async fn ignores_errors(session: Session) -> &'static str {
    // A read path that copes with a missing session by itself.
    let _ = session.get::<String>("user").await;
    "page without personalisation"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policy_closed_by_default_open_when_asked() {
    let mut redis = RedisServer::start();
    let mut bases = Vec::new();
    for policy in [None, Some(FailurePolicy::Open)] {
        let store = RedisStore::connect(redis.url()).await.expect("connect");
        let mut config = SessionConfig::builder();
        if let Some(p) = policy {
            config = config.with_failure_policy(p);
        }
        let app = Router::new()
            .route("/page", get(ignores_errors))
            .layer(SessionLayer::new(store, config.build().expect("config")));
        bases.push(testkit::serve_axum(app).await);
    }
    let cookie = sessionkit::SessionId::generate().expose();
    redis.kill();
    let mut closed =
        Browser::new(bases[0].clone(), sessionkit::DEFAULT_COOKIE_NAME).with_cookie(Some(&cookie));
    let r = closed.get("/page").await;
    assert_eq!(r.status, 503, "fail closed: {r:?}");
    assert!(r.body.is_empty());
    let mut open =
        Browser::new(bases[1].clone(), sessionkit::DEFAULT_COOKIE_NAME).with_cookie(Some(&cookie));
    let r = open.get("/page").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "page without personalisation"),
        "fail open"
    );
    assert!(
        r.set_cookies.is_empty(),
        "nothing written when failing open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_cannot_grow_a_session_past_the_limit() {
    let config = SessionConfig::builder()
        .with_max_size(1024)
        .build()
        .expect("config");
    let s = Subject::start_with(StoreKind::Redis, Framework::Axum, config).await;
    let big = "x".repeat(400);
    let mut b = s.browser();
    assert_eq!(b.get(&format!("/set?key=a&value={big}")).await.status, 200);
    // Two requests each add 400 bytes; each alone stays under the limit,
    // both together would not: the one that saves second is refused.
    let mut slow = b.fork();
    let path = format!("/set?key=b&value={big}&delay_ms=300");
    let writer = tokio::spawn(async move { slow.get(&path).await.status });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.get(&format!("/set?key=c&value={big}")).await.status, 200);
    assert_eq!(
        writer.await.expect("writer"),
        413,
        "the limit holds in Redis"
    );
    assert_eq!(b.get("/get?key=b").await.status, 404);
    // The session is whole and works: login cycles it with its data.
    let before = b.cookie.clone();
    let r = b.get("/login?user=fay").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_ne!(b.cookie, before, "the id was cycled");
    assert_eq!(s.stored_sessions(), 1);
    for k in ["a", "c"] {
        assert_eq!(b.get(&format!("/get?key={k}")).await.body, big, "{k} lost");
    }
}

/// The cart as the current release stores it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cart {
    items: Vec<String>,
}

async fn store_old_cart(session: Session) -> Result<&'static str, sessionkit::Error> {
    // What the previous release stored: a plain list.
    session.insert("cart", &["apple"]).await?;
    session.insert("user", "ann").await?;
    Ok("ok")
}

async fn strict(session: Session) -> Result<String, sessionkit::Error> {
    let cart: Option<Cart> = session.get("cart").await?;
    Ok(cart.map_or("none".to_owned(), |c| c.items.join(",")))
}

async fn lenient(session: Session) -> Result<String, sessionkit::Error> {
    let cart: Option<Cart> = session.get_or_remove("cart").await?;
    Ok(cart.map_or("none".to_owned(), |c| c.items.join(",")))
}

/// A value stored by an older shape of its type: `get` reports it (and
/// keeps it), `get_or_remove` reads it as absent and removes it, keeping
/// the rest of the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_an_older_shape_fails_get_and_is_dropped_by_get_or_remove() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(redis.url()).await.expect("connect");
    let app = Router::new()
        .route("/old", get(store_old_cart))
        .route("/strict", get(strict))
        .route("/lenient", get(lenient))
        .route(
            "/whoami",
            get(|s: Session| async move {
                s.get::<String>("user").await.map(|u| u.unwrap_or_default())
            }),
        )
        .layer(SessionLayer::new(store, SessionConfig::default()));
    let mut b = Browser::new(
        testkit::serve_axum(app).await,
        sessionkit::DEFAULT_COOKIE_NAME,
    );
    b.get("/old").await;
    let keys: Vec<String> = redis.cmd(&["KEYS", "session:*"]);
    let key = keys.first().cloned().unwrap_or_default();
    for _ in 0..2 {
        assert_eq!(b.get("/strict").await.status, 500, "by default: an error");
    }
    assert_eq!(redis.cmd::<i64>(&["HEXISTS", &key, "d:cart"]), 1, "kept");
    let r = b.get("/lenient").await;
    assert_eq!((r.status, r.body.as_str()), (200, "none"), "{r:?}");
    assert_eq!(redis.cmd::<i64>(&["HEXISTS", &key, "d:cart"]), 0, "removed");
    assert_eq!(b.get("/strict").await.body, "none");
    assert_eq!(b.get("/whoami").await.body, "ann", "the rest is kept");
}

/// A store that stalls Redis just before the armed step of a request
/// (`DEBUG SLEEP`: everything waits; `CLIENT PAUSE … WRITE`: writes wait),
/// so that the step times out and Redis carries it out later.
struct Stalling {
    inner: RedisStore,
    url: String,
    armed: std::sync::Arc<std::sync::Mutex<Option<&'static str>>>,
    pause: bool,
}

impl Stalling {
    async fn before(&self, step: &'static str) {
        let fire = {
            let mut armed = self.armed.lock().expect("lock");
            let fire = *armed == Some(step);
            if fire {
                *armed = None;
            }
            fire
        };
        if fire {
            let (url, pause) = (self.url.clone(), self.pause);
            let (started, stalled) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut conn = redis::Client::open(url)
                    .and_then(|c| c.get_connection())
                    .expect("side connection");
                let mut cmd = if pause {
                    redis::cmd("CLIENT")
                } else {
                    redis::cmd("DEBUG")
                };
                if pause {
                    cmd.arg("PAUSE").arg(1200).arg("WRITE");
                } else {
                    cmd.arg("SLEEP").arg("1.2");
                }
                let _ = started.send(());
                let answer: redis::RedisResult<String> = cmd.query(&mut conn);
                answer.expect("the stall");
            });
            let _ = stalled.recv();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

impl sessionkit::SessionStore for Stalling {
    fn load<'a>(
        &'a self,
        id: &'a sessionkit::StorageId,
    ) -> sessionkit::store::BoxFuture<
        'a,
        Result<Option<sessionkit::store::Record>, sessionkit::Error>,
    > {
        self.inner.load(id)
    }

    fn create<'a>(
        &'a self,
        id: &'a sessionkit::StorageId,
        record: &'a sessionkit::store::Record,
    ) -> sessionkit::store::BoxFuture<'a, Result<bool, sessionkit::Error>> {
        Box::pin(async move {
            self.before("create").await;
            self.inner.create(id, record).await
        })
    }

    fn update<'a>(
        &'a self,
        id: &'a sessionkit::StorageId,
        changes: &'a sessionkit::store::Changes<'a>,
    ) -> sessionkit::store::BoxFuture<'a, Result<sessionkit::store::UpdateOutcome, sessionkit::Error>>
    {
        Box::pin(async move {
            self.before("update").await;
            self.inner.update(id, changes).await
        })
    }

    fn delete<'a>(
        &'a self,
        id: &'a sessionkit::StorageId,
    ) -> sessionkit::store::BoxFuture<'a, Result<(), sessionkit::Error>> {
        self.inner.delete(id)
    }

    fn sessions_of<'a>(
        &'a self,
        user: &'a str,
    ) -> sessionkit::store::BoxFuture<
        'a,
        Result<Vec<(sessionkit::StorageId, sessionkit::store::Record)>, sessionkit::Error>,
    > {
        self.inner.sessions_of(user)
    }

    fn revoke<'a>(
        &'a self,
        id: &'a sessionkit::StorageId,
    ) -> sessionkit::store::BoxFuture<'a, Result<bool, sessionkit::Error>> {
        self.inner.revoke(id)
    }

    fn take<'a>(
        &'a self,
        id: &'a sessionkit::StorageId,
        moved_to: &'a sessionkit::StorageId,
    ) -> sessionkit::store::BoxFuture<
        'a,
        Result<Option<sessionkit::store::Record>, sessionkit::Error>,
    > {
        Box::pin(async move {
            self.before("take").await;
            self.inner.take(id, moved_to).await
        })
    }
}

/// A login (`cycle_id`) that meets a stalled Redis at any of its steps
/// keeps the session's data, with the client cache on and off: a stall
/// before the new record is created leaves the old session as it was (the
/// late create makes a record nobody points to); a stall once it exists
/// sends its cookie with the 503, so the user lands in it whether or not
/// the old one was retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_meeting_a_stalled_redis_keeps_the_session() {
    for (cache, pause, step) in [true, false]
        .into_iter()
        .flat_map(|c| [(c, false), (c, true)])
        .flat_map(|(c, p)| [(c, p, "create"), (c, p, "take")])
    {
        {
            let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
            let builder = if cache {
                RedisStore::builder()
            } else {
                RedisStore::builder().without_client_cache()
            };
            let inner = builder.connect(redis.url().as_str()).await.expect("store");
            let armed = std::sync::Arc::new(std::sync::Mutex::new(None));
            let store = Stalling {
                inner,
                url: redis.url(),
                armed: std::sync::Arc::clone(&armed),
                pause,
            };
            let app = testkit::contract::axum_router(store, SessionConfig::default());
            let base = testkit::serve_axum(app).await;
            let mut b = Browser::new(base.clone(), sessionkit::DEFAULT_COOKIE_NAME);
            assert_eq!(b.get("/set?key=cart&value=apple").await.status, 200);
            assert_eq!(b.get("/get?key=cart").await.body, "apple");
            let before = b.cookie.clone();
            *armed.lock().expect("lock") = Some(step);
            let r = b.get("/login?user=bob").await;
            let what = format!("cache {cache}, pause {pause}, stall before {step}: {r:?}");
            assert_eq!(r.status, 503, "{what}");
            // Redis wakes and runs what was queued.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(b.get("/get?key=cart").await.body, "apple", "{what}");
            match step {
                "create" => {
                    assert_eq!(b.cookie, before, "{what}");
                    assert_eq!(b.get("/whoami").await.status, 401, "{what}");
                }
                _ => {
                    assert_ne!(b.cookie, before, "the new cookie came with the 503: {what}");
                    assert_eq!(b.get("/whoami").await.body, "bob", "{what}");
                    let mut old = Browser::new(base.clone(), sessionkit::DEFAULT_COOKIE_NAME)
                        .with_cookie(before.as_deref());
                    assert_eq!(
                        old.get("/whoami").await.status,
                        401,
                        "the old id is retired: {what}"
                    );
                }
            }
            // And the session goes on working.
            assert_eq!(b.get("/set?key=more&value=1").await.status, 200, "{what}");
            assert_eq!(b.get("/get?key=cart").await.body, "apple", "{what}");
        }
    }
}
