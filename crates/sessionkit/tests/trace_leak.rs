//! No session id or signature in a trace-level log (issue 5, point 4).
//!
//! The test-bed app runs on a real redis-server with a global `tracing`
//! subscriber at TRACE for every crate (sessionkit, axum, hyper-util, mio,
//! reqwest, and `log` records through tracing-log) writing into memory. The
//! test drives every contract route with several sessions, unsigned and
//! signed (including a key rotation), plus the paths that log on purpose
//! (corrupt record, write after logout, write after login, store outage),
//! then searches the whole log for every cookie value the server issued, its
//! id part and its signature part, and for the values an attacker sent.
//!
//! Its own test binary, the documented exception to the one-binary rule
//! (`tests/it`): a global TRACE subscriber would slow down every other test
//! and mix their logs into this one's.

use std::time::Duration;

use sessionkit::{RedisStore, SessionConfig, SessionId};
use testkit::client::{Browser, Reply};
use testkit::log::MemoryLog as Log;
use testkit::RedisServer;

const KEY_OLD: [u8; 32] = [0x5a; 32];
const KEY_NEW: [u8; 32] = [0xa5; 32];

fn config(keys: &[[u8; 32]]) -> SessionConfig {
    SessionConfig::builder()
        .with_signing_keys(keys)
        .with_touch_interval(Duration::ZERO)
        .build()
        .unwrap_or_else(|e| panic!("config: {e}"))
}

/// Serves the contract app for `config` on `redis`; returns its base URL.
async fn serve(redis: &RedisServer, config: SessionConfig) -> String {
    let store = RedisStore::connect(redis.url())
        .await
        .unwrap_or_else(|e| panic!("connect to test redis: {e}"));
    testkit::serve_axum(testkit::contract::axum_router(store, config)).await
}

/// Every session cookie value the server set, and the values sent to it
/// that it did not issue: none of them may be logged.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn collect(&mut self, r: &Reply) {
        for sc in &r.set_cookies {
            let value = sc
                .split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .map(|(_, v)| v);
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                self.add(v);
            }
        }
    }

    fn add(&mut self, value: &str) {
        self.0.push(value.to_owned());
        if let Some((id, tag)) = value.split_once('.') {
            self.0.push(id.to_owned());
            self.0.push(tag.to_owned());
        }
    }
}

/// `GET path`, keeping whatever cookie it set.
async fn get(b: &mut Browser, secrets: &mut Secrets, path: &str) -> Reply {
    let r = b.get(path).await;
    secrets.collect(&r);
    r
}

/// Every contract route, twice over, for one browser; the session is left
/// logged in.
async fn every_route(b: &mut Browser, s: &mut Secrets, user: &str) {
    for path in [
        "/new",
        "/read",
        "/write",
        "/write",
        "/set?key=colour&value=green",
        "/get?key=colour",
        "/get?key=missing",
        "/remove?key=colour",
        "/whoami",
        "/clear",
        "/read",
        "/write",
        "/logout",
        "/whoami",
        &format!("/login?user={user}"),
        "/whoami",
        "/write",
        "/set?key=a&value=1",
        "/get", // a query rejection (axum logs it)
        "/baseline",
    ] {
        let r = get(b, s, path).await;
        assert!(r.status < 500, "{path}: {r:?}");
    }
    let r = b.post("/set?key=note", "posted").await;
    s.collect(&r);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(get(b, s, "/whoami").await.body, user);
}

/// The same session, a slow write in one request and `other` in a second
/// one (a logout deletes it meanwhile; a login moves it meanwhile): the
/// paths where sessionkit logs about a session it is saving.
async fn race(b: &mut Browser, s: &mut Secrets, other: &str) {
    let mut tab = b.fork();
    let slow = async {
        let r = tab.get("/set?key=late&value=1&delay_ms=300").await;
        (r, tab)
    };
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.get(other).await
    };
    let ((r1, _tab), r2) = tokio::join!(slow, meanwhile);
    s.collect(&r1);
    s.collect(&r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_id_or_signature_in_a_trace_log() {
    let log = Log::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(log.clone())
        .init();
    assert_eq!(
        tracing::level_filters::STATIC_MAX_LEVEL,
        tracing::level_filters::LevelFilter::TRACE
    );
    assert!(tracing::enabled!(target: "sessionkit", tracing::Level::TRACE));
    assert!(tracing::enabled!(target: "hyper_util", tracing::Level::TRACE));

    let mut redis = RedisServer::start();
    let mut secrets = Secrets::default();

    // Unsigned cookies: three sessions, every route, races.
    let plain = serve(&redis, config(&[])).await;
    for user in ["ann", "bob", "cy"] {
        let mut b = Browser::new(plain.clone(), sessionkit::DEFAULT_COOKIE_NAME);
        every_route(&mut b, &mut secrets, user).await;
        race(&mut b, &mut secrets, "/logout").await;
        get(&mut b, &mut secrets, "/write").await;
        race(&mut b, &mut secrets, "/login?user=again").await;
    }

    // Signed cookies with the old key, then rotation: the same sessions
    // through an app that signs with a new key and still accepts the old one.
    let old = serve(&redis, config(&[KEY_OLD])).await;
    let rotated = serve(&redis, config(&[KEY_NEW, KEY_OLD])).await;
    for user in ["dee", "eve"] {
        let mut b = Browser::new(old.clone(), sessionkit::DEFAULT_COOKIE_NAME);
        every_route(&mut b, &mut secrets, user).await;
        race(&mut b, &mut secrets, "/logout").await;
        get(&mut b, &mut secrets, "/write").await;
        let before = b.cookie.clone();
        assert!(before.is_some(), "a session signed with the old key");
        let mut b = Browser::new(rotated.clone(), sessionkit::DEFAULT_COOKIE_NAME)
            .with_cookie(before.as_deref());
        let r = get(&mut b, &mut secrets, "/write").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_ne!(
            b.cookie, before,
            "a cookie signed with the old key is re-signed"
        );
        every_route(&mut b, &mut secrets, user).await;
        race(&mut b, &mut secrets, "/login?user=again").await;
    }

    // Values the server never issued: a well-formed id, a forged signature.
    let mut attacker = Browser::new(rotated.clone(), sessionkit::DEFAULT_COOKIE_NAME);
    let forged_id = SessionId::generate().expose();
    let forged_signed = format!("{}.{}", SessionId::generate().expose(), "Q".repeat(43));
    for forged in [forged_id, forged_signed] {
        secrets.add(&forged);
        attacker.cookie = Some(forged);
        let r = get(&mut attacker, &mut secrets, "/read").await;
        assert_eq!(r.body, "0", "{r:?}");
    }

    // A corrupt record (logged, then deleted) and a store outage (logged
    // with the error chain).
    let mut b = Browser::new(plain.clone(), sessionkit::DEFAULT_COOKIE_NAME);
    get(&mut b, &mut secrets, "/write").await;
    let keys: Vec<String> = redis.cmd(&["KEYS", "session:1.*"]);
    for key in &keys {
        let _: i64 = redis.cmd(&["HSET", key, "m:v", "99"]);
    }
    assert_eq!(get(&mut b, &mut secrets, "/read").await.body, "0");
    get(&mut b, &mut secrets, "/write").await;
    redis.kill();
    let r = get(&mut b, &mut secrets, "/write").await;
    assert_eq!(r.status, 503, "{r:?}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = log.text();
    // To read what was logged: SESSIONKIT_TRACE_LOG=/tmp/trace.log cargo test --test trace_leak
    if let Some(path) = std::env::var_os("SESSIONKIT_TRACE_LOG") {
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    }

    // The log is real: trace level, from the app's dependencies as well as
    // from sessionkit, and long. Otherwise the search below proves nothing.
    let lines = text.lines().count();
    assert!(lines > 500, "only {lines} log lines:\n{text}");
    for needle in [
        " TRACE hyper_util",
        " TRACE axum::serve",
        " TRACE axum::rejection",
    ] {
        assert!(
            text.contains(needle),
            "no {needle:?} line in the log:\n{text}"
        );
    }
    // sessionkit's lines may carry its spans before the target
    // (` WARN session{session=…}: sessionkit::lifecycle: …`).
    for level in [" WARN ", " ERROR ", " DEBUG "] {
        assert!(
            text.lines()
                .any(|l| l.contains(level) && l.contains(" sessionkit::")),
            "no {level:?} line of sessionkit in the log:\n{text}"
        );
    }
    assert!(
        text.contains("session{session="),
        "no request span with its session tag"
    );
    let issued = secrets.0.len();
    assert!(issued > 60, "only {issued} secrets collected");

    for secret in &secrets.0 {
        assert!(secret.len() >= 32, "not a cookie part: {secret:?}");
        if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
            panic!("a session cookie value ({secret}) is in the log:\n{line}");
        }
    }
}
