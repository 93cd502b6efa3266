//! The test-bed app of `shared/bench/CONTRACT.md`: the routes the benchmark
//! and the conformance suite drive. Each route's body is written once,
//! framework-free (a [`Session`] and the parsed query in, a [`Reply`] out);
//! [`axum_router`] and [`actix_routes`] only wire them to their framework.
//! Used by `bench-server`, `bench-server-actix` and the tests.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use sessionkit::{Session, SessionConfig, SessionLayer, SessionStore};

/// The contract's axum router with `store` and `config`.
pub fn axum_router(store: impl SessionStore, config: SessionConfig) -> axum::Router {
    use axum::extract::Query;
    use axum::routing::get;

    axum::Router::new()
        .route("/baseline", get(|| async { "ok" }))
        .route("/new", get(new))
        .route("/read", get(read))
        .route("/write", get(write))
        .route(
            "/set",
            get(|s: Session, Query(q)| set(s, q))
                .post(|s: Session, Query(q), body| set_body(s, q, body)),
        )
        .route("/get", get(|s: Session, Query(q)| get_key(s, q)))
        .route("/remove", get(|s: Session, Query(q)| remove(s, q)))
        .route("/clear", get(clear))
        .route("/login", get(|s: Session, Query(q)| login(s, q)))
        .route("/logout", get(logout))
        .route("/whoami", get(whoami))
        .route("/sessions", get(sessions))
        .route("/revoke", get(|s: Session, Query(q)| revoke(s, q)))
        .route("/logout-everywhere", get(logout_everywhere))
        .layer(SessionLayer::new(store, config))
}

/// The contract's routes for actix-web; wrap the app in a
/// `sessionkit::SessionMiddleware`:
/// `App::new().wrap(sessions.clone()).configure(actix_routes)`.
pub fn actix_routes(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web::{get, post, resource, Query};

    cfg.route("/baseline", get().to(|| async { "ok" }))
        .route("/new", get().to(new))
        .route("/read", get().to(read))
        .route("/write", get().to(write))
        .service(
            resource("/set")
                .route(get().to(|s: Session, Query(q)| set(s, q)))
                .route(post().to(|s: Session, Query(q), body| set_body(s, q, body))),
        )
        .route("/get", get().to(|s: Session, Query(q)| get_key(s, q)))
        .route("/remove", get().to(|s: Session, Query(q)| remove(s, q)))
        .route("/clear", get().to(clear))
        .route("/login", get().to(|s: Session, Query(q)| login(s, q)))
        .route("/logout", get().to(logout))
        .route("/whoami", get().to(whoami))
        .route("/sessions", get().to(sessions))
        .route("/revoke", get().to(|s: Session, Query(q)| revoke(s, q)))
        .route("/logout-everywhere", get().to(logout_everywhere));
}

/// A route's answer, framework-free: a status and a `text/plain` (or JSON)
/// body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Cow<'static, str>,
    /// The body is JSON.
    pub json: bool,
}

impl Reply {
    fn ok(body: impl Into<Cow<'static, str>>) -> Self {
        Reply {
            status: 200,
            body: body.into(),
            json: false,
        }
    }

    fn status(status: u16) -> Self {
        Reply {
            status,
            body: Cow::Borrowed(""),
            json: false,
        }
    }
}

impl axum::response::IntoResponse for Reply {
    fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(self.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let kind = if self.json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        (
            status,
            [(axum::http::header::CONTENT_TYPE, kind)],
            self.body,
        )
            .into_response()
    }
}

impl actix_web::Responder for Reply {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &actix_web::HttpRequest) -> actix_web::HttpResponse {
        let status = actix_web::http::StatusCode::from_u16(self.status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        actix_web::HttpResponse::build(status)
            .content_type(if self.json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            })
            .body(self.body)
    }
}

type Result<T> = std::result::Result<T, sessionkit::Error>;

async fn new(session: Session) -> Result<Reply> {
    session.insert("user", "bench").await?;
    Ok(Reply::ok("ok"))
}

/// The integer `count`: 0 when absent, and when it holds something else
/// (a string stored under that key through `/set`): the contract's number
/// starts over rather than failing every request of that session.
async fn count(session: &Session) -> Result<i64> {
    match session.get::<i64>("count").await {
        Ok(n) => Ok(n.unwrap_or(0)),
        Err(e) if e.is_decode() => Ok(0),
        Err(e) => Err(e),
    }
}

async fn read(session: Session) -> Result<Reply> {
    let n = count(&session).await?;
    Ok(Reply::ok(n.to_string()))
}

async fn write(session: Session) -> Result<Reply> {
    let n = count(&session).await?.saturating_add(1);
    session.insert("count", &n).await?;
    Ok(Reply::ok(n.to_string()))
}

#[derive(Deserialize)]
struct SetQuery {
    key: String,
    value: Option<String>,
    delay_ms: Option<u64>,
}

async fn set(session: Session, q: SetQuery) -> Result<Reply> {
    // Load first, then wait: the contract's window for concurrent requests.
    session.contains(&q.key).await?;
    if let Some(ms) = q.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let Some(value) = q.value else {
        return Ok(Reply {
            status: 400,
            body: Cow::Borrowed("value missing"),
            json: false,
        });
    };
    session.insert(&q.key, &value).await?;
    Ok(Reply::ok("ok"))
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

async fn set_body(session: Session, q: KeyQuery, body: String) -> Result<Reply> {
    session.insert(&q.key, &body).await?;
    Ok(Reply::ok("ok"))
}

/// The string under `key`; a value of another type (`count` is a number)
/// reads as absent.
async fn string(session: &Session, key: &str) -> Result<Option<String>> {
    match session.get::<String>(key).await {
        Err(e) if e.is_decode() => Ok(None),
        other => other,
    }
}

async fn get_key(session: Session, q: KeyQuery) -> Result<Reply> {
    Ok(match string(&session, &q.key).await? {
        Some(v) => Reply::ok(v),
        None => Reply::status(404),
    })
}

async fn remove(session: Session, q: KeyQuery) -> Result<Reply> {
    session.remove(&q.key).await?;
    Ok(Reply::ok("ok"))
}

async fn clear(session: Session) -> Result<Reply> {
    session.clear().await?;
    Ok(Reply::ok("ok"))
}

#[derive(Deserialize)]
struct UserQuery {
    user: String,
}

async fn login(session: Session, q: UserQuery) -> Result<Reply> {
    session.cycle_id().await?;
    session.insert("user", &q.user).await?;
    session.set_user(&q.user).await?;
    session.set_permanent(true).await?;
    Ok(Reply::ok("ok"))
}

/// Unix seconds of `t`.
fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn sessions(session: Session) -> Result<Reply> {
    if session.user().await?.is_none() {
        return Ok(Reply::status(401));
    }
    let list: Vec<serde_json::Value> = session
        .devices()
        .await?
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "handle": d.handle.as_str(),
                "current": d.current,
                "created": unix(d.created),
                "last_seen": d.last_seen.map_or(unix(d.created), unix),
            })
        })
        .collect();
    Ok(Reply {
        status: 200,
        body: Cow::Owned(serde_json::Value::Array(list).to_string()),
        json: true,
    })
}

#[derive(Deserialize)]
struct HandleQuery {
    handle: String,
}

async fn revoke(session: Session, q: HandleQuery) -> Result<Reply> {
    if session.user().await?.is_none() {
        return Ok(Reply::status(401));
    }
    let found = match sessionkit::SessionHandle::parse(&q.handle) {
        Some(h) => session.revoke_device(&h).await?,
        None => false,
    };
    Ok(if found {
        Reply::ok("ok")
    } else {
        Reply::status(404)
    })
}

async fn logout_everywhere(session: Session) -> Result<Reply> {
    session.logout_everywhere().await?;
    Ok(Reply::ok("ok"))
}

async fn logout(session: Session) -> Reply {
    session.flush().await;
    Reply::ok("ok")
}

async fn whoami(session: Session) -> Result<Reply> {
    Ok(match string(&session, "user").await? {
        Some(u) => Reply::ok(u),
        None => Reply::status(401),
    })
}

/// What a test-bed server reads from its environment (CONTRACT.md):
/// `PORT` (3000), `REDIS_URL` (redis://127.0.0.1:6379/, or `rediss://` for
/// TLS), `REDIS_CA_FILE` (the PEM of the CA to trust for TLS),
/// `REDIS_CLIENT_CERT` / `REDIS_CLIENT_KEY` (PEM, for a server that asks for a
/// client certificate), `REDIS_SENTINEL_URLS` (comma-separated) with
/// `REDIS_SENTINEL_SERVICE` (the primary's name: the store finds it through
/// the sentinels, `REDIS_URL` is then unused), `REDIS_CLUSTER_URLS`
/// (comma-separated seed nodes of a Redis Cluster), `SESSION_PREFIX` (the
/// library's), `CLIENT_CACHE=off` to run without the client cache (for A/B
/// runs). Beyond the contract: `SESSIONKIT_REPLICA_ACKS=N` acknowledges a
/// write only once `N` replicas have it (`with_replica_acks`, waiting at
/// most `SESSIONKIT_REPLICA_ACK_WAIT_MS`, default 400).
pub struct ServerEnv {
    /// The port to listen on (127.0.0.1 only).
    pub port: u16,
    /// The store: a [`RedisStore`](sessionkit::RedisStore), or with
    /// `SESSION_FORMAT=flask` a [`FlaskStore`](sessionkit::store::flask::FlaskStore)
    /// on its connection.
    pub store: std::sync::Arc<dyn SessionStore>,
    /// The library's defaults, but for the modes the environment asks
    /// for: `SESSION_FORMAT=flask` (the recipe's uuid4 ids, cookie
    /// `session`), `SESSION_TRANSPORT=header` (`Authorization: Bearer`).
    pub config: SessionConfig,
}

impl ServerEnv {
    /// Reads the environment and builds the store (which connects when a
    /// request first needs Redis: the server starts while Redis is down).
    ///
    /// # Errors
    ///
    /// If `SESSIONKIT_REPLICA_ACKS` or `SESSIONKIT_REPLICA_ACK_WAIT_MS` is
    /// not a number, or the topology's variables are wrong
    /// ([`RedisStoreBuilder::from_env`](sessionkit::RedisStoreBuilder::from_env)).
    pub async fn from_env() -> std::result::Result<Self, Box<dyn std::error::Error>> {
        let port: u16 = std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3000);
        let mut store = sessionkit::RedisStore::builder();
        if let Ok(prefix) = std::env::var("SESSION_PREFIX") {
            store = store.with_prefix(prefix);
        }
        if std::env::var("CLIENT_CACHE").is_ok_and(|v| v == "off") {
            store = store.without_client_cache();
        }
        let number = |var: &str| -> std::result::Result<Option<u32>, String> {
            std::env::var(var)
                .ok()
                .map(|v| v.parse().map_err(|_| format!("{var}={v}: not a number")))
                .transpose()
        };
        if let Some(replicas) = number("SESSIONKIT_REPLICA_ACKS")? {
            let wait = number("SESSIONKIT_REPLICA_ACK_WAIT_MS")?.unwrap_or(400);
            store = store.with_replica_acks(replicas, Duration::from_millis(wait.into()));
        }
        let mut config = SessionConfig::builder();
        let flask = match std::env::var("SESSION_FORMAT").as_deref() {
            Err(_) | Ok("" | "native") => false,
            Ok("flask") => true,
            Ok(other) => return Err(format!("SESSION_FORMAT={other}: expected flask").into()),
        };
        if flask {
            // The recipe's cookie: Flask's default name, a bare uuid4.
            config = config
                .with_id_format(sessionkit::IdFormat::Uuid4)
                .with_cookie_name("session");
            store = store.without_client_cache();
        }
        match std::env::var("SESSION_TRANSPORT").as_deref() {
            Err(_) | Ok("" | "cookie") => {}
            Ok("header") => config = config.with_transport(sessionkit::Transport::Bearer),
            Ok(other) => return Err(format!("SESSION_TRANSPORT={other}: expected header").into()),
        }
        let config = config.build()?;
        // The topology and its certificates: the library reads them.
        let redis = store.from_env().await.map_err(|e| e.chain().to_string())?;
        let store: std::sync::Arc<dyn SessionStore> = if flask {
            std::sync::Arc::new(sessionkit::store::flask::FlaskStore::new(redis))
        } else {
            std::sync::Arc::new(redis)
        };
        Ok(ServerEnv {
            port,
            store,
            config,
        })
    }
}

/// Logs of a test-bed server: to stderr, filtered by `RUST_LOG` (default
/// `warn`, so nothing per request).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// A test-bed server process, killed when dropped.
struct TestBed(std::process::Child);

impl Drop for TestBed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the test-bed `bin` on a free loopback port with `env`, and waits
/// until it listens; the process and a browser for it.
async fn start_test_bed(bin: &str, env: &[(&str, String)]) -> (TestBed, crate::client::Browser) {
    use std::time::Instant;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let child = std::process::Command::new(bin)
        .env("PORT", port.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let mut child = TestBed(child);
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{bin} exited: {status}");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{bin} does not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = crate::client::Browser::new(
        format!("http://127.0.0.1:{port}"),
        sessionkit::DEFAULT_COOKIE_NAME,
    );
    (child, b)
}

/// Checks a test-bed server binary against the contract's start-up rule:
/// started while its Redis is down, it answers `/baseline`, answers `/new`
/// with 503, and serves `/new` once Redis is up — within 2 s, with no
/// restart. The server runs on free loopback ports and is killed at the end.
///
/// # Panics
///
/// If the binary does not behave so (the message says how), or cannot be
/// started.
pub async fn check_starts_before_redis(bin: &str) {
    let mut redis = crate::RedisServer::start();
    redis.kill();
    let (_bed, mut b) = start_test_bed(bin, &[("REDIS_URL", redis.url())]).await;
    assert_eq!(b.get("/baseline").await.status, 200, "{bin}: /baseline");
    let r = b.get("/new").await;
    assert_eq!(r.status, 503, "{bin}: /new with Redis down: {r:?}");
    redis.restart();
    b.poll("/new", Duration::from_secs(2), |r| r.status == 200)
        .await;
    assert_eq!(b.get("/whoami").await.body, "bench");
}

/// Checks that a test-bed server binary refuses wrong topology settings at
/// start, with a message naming what is wrong, instead of serving with
/// another store: both a cluster and sentinels, sentinels without a
/// service name, a `REDIS_URL` that is not a URL, a client certificate
/// without its key, and a CA file that does not exist.
///
/// # Panics
///
/// If it starts anyway, or its message does not say why (the message says
/// which), or it cannot be started.
pub fn check_refuses_wrong_topology_settings(bin: &str) {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[
                ("REDIS_CLUSTER_URLS", "redis://127.0.0.1:1/"),
                ("REDIS_SENTINEL_URLS", "redis://127.0.0.1:2/"),
            ],
            "REDIS_CLUSTER_URLS and REDIS_SENTINEL_URLS exclude each other",
        ),
        (
            &[("REDIS_SENTINEL_URLS", "redis://127.0.0.1:2/")],
            "REDIS_SENTINEL_URLS needs REDIS_SENTINEL_SERVICE",
        ),
        (&[("REDIS_URL", "127.0.0.1:6410")], "REDIS_URL"),
        (
            &[("REDIS_CLIENT_CERT", "/dev/null")],
            "REDIS_CLIENT_CERT and REDIS_CLIENT_KEY go together",
        ),
        (
            &[("REDIS_CA_FILE", "/nonexistent/ca.pem")],
            "REDIS_CA_FILE=/nonexistent/ca.pem",
        ),
    ];
    for (env, says) in cases {
        let out = std::process::Command::new(bin)
            .env("PORT", "0")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bin} started with {env:?}");
        assert!(
            stderr.contains(says),
            "{bin} with {env:?} should say {says:?}, said: {stderr}"
        );
    }
}

/// Checks that a test-bed server binary serves the contract over TLS,
/// configured by the contract's variables alone: `REDIS_URL=rediss://…`,
/// `REDIS_CA_FILE`, and `REDIS_CLIENT_CERT` / `REDIS_CLIENT_KEY` for a
/// Redis that requires a client certificate.
///
/// # Panics
///
/// If it does not (the message says how), or cannot be started.
pub async fn check_serves_over_tls(bin: &str) {
    let redis = crate::tls::TlsRedis::start(true);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let write = |name: &str, pem: &str| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {name}: {e}"));
        path.display().to_string()
    };
    let env = [
        ("REDIS_URL", redis.url()),
        ("REDIS_CA_FILE", write("ca.pem", &redis.certs.ca)),
        (
            "REDIS_CLIENT_CERT",
            write("client.pem", &redis.certs.client_cert),
        ),
        (
            "REDIS_CLIENT_KEY",
            write("client.key", &redis.certs.client_key),
        ),
    ];
    let (_bed, mut b) = start_test_bed(bin, &env).await;
    assert_eq!(b.get("/new").await.status, 200, "{bin}: /new over TLS");
    assert_eq!(b.get("/whoami").await.body, "bench");
    assert_eq!(b.get("/write").await.body, "1");
    let keys: Vec<String> = redis.server.cmd(&["KEYS", "session:1.*"]);
    assert_eq!(
        keys.len(),
        1,
        "{bin}: one session in the TLS Redis: {keys:?}"
    );
}

/// Checks that a test-bed server binary serves the contract through
/// Sentinel, configured by `REDIS_SENTINEL_URLS` and
/// `REDIS_SENTINEL_SERVICE` alone, and follows a failover.
///
/// # Panics
///
/// If it does not (the message says how), or cannot be started.
pub async fn check_serves_through_sentinel(bin: &str) {
    let mut setup = crate::sentinel::SentinelSetup::start();
    let env = [
        ("REDIS_SENTINEL_URLS", setup.sentinel_urls().join(",")),
        (
            "REDIS_SENTINEL_SERVICE",
            crate::sentinel::SERVICE.to_owned(),
        ),
    ];
    let (_bed, mut b) = start_test_bed(bin, &env).await;
    assert_eq!(
        b.get("/new").await.status,
        200,
        "{bin}: /new through Sentinel"
    );
    assert_eq!(b.get("/write").await.body, "1");
    setup.wait_for_replicas();
    setup.fail_over();
    b.poll("/read", Duration::from_secs(10), |r| r.status == 200)
        .await;
    assert_eq!(
        b.get("/read").await.body,
        "1",
        "{bin}: the session survived"
    );
    assert_eq!(b.get("/write").await.body, "2");
}

/// Checks that a test-bed server binary serves the contract on a Redis
/// Cluster, configured by `REDIS_CLUSTER_URLS` alone, and follows the
/// failover of a primary.
///
/// # Panics
///
/// If it does not (the message says how), or cannot be started.
pub async fn check_serves_on_cluster(bin: &str) {
    let mut cluster = crate::cluster::ClusterSetup::start();
    let env = [("REDIS_CLUSTER_URLS", cluster.urls().join(","))];
    let (_bed, mut b) = start_test_bed(bin, &env).await;
    assert_eq!(b.get("/new").await.status, 200, "{bin}: /new on Cluster");
    assert_eq!(b.get("/login?user=ann").await.status, 200);
    assert_eq!(b.get("/write").await.body, "1");
    cluster.wait_for_replicas();
    cluster.fail_over("session:1.*");
    b.poll("/whoami", Duration::from_secs(10), |r| r.status == 200)
        .await;
    assert_eq!(
        b.get("/whoami").await.body,
        "ann",
        "{bin}: the session survived"
    );
    assert_eq!(b.get("/write").await.body, "2");
}

/// Checks that a test-bed server binary serves the contract on a TLS
/// Redis Cluster, configured by `REDIS_CLUSTER_URLS` (`rediss://` seeds)
/// and `REDIS_CA_FILE` alone.
///
/// # Panics
///
/// If it does not (the message says how), or cannot be started.
pub async fn check_serves_on_tls_cluster(bin: &str) {
    let cluster = crate::cluster::ClusterSetup::start_tls();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let ca = dir.path().join("ca.pem");
    let pem = cluster.certs().map(|c| c.ca.clone()).unwrap_or_default();
    std::fs::write(&ca, pem).unwrap_or_else(|e| panic!("write ca.pem: {e}"));
    let env = [
        ("REDIS_CLUSTER_URLS", cluster.tls_urls().join(",")),
        ("REDIS_CA_FILE", ca.display().to_string()),
    ];
    let (_bed, mut b) = start_test_bed(bin, &env).await;
    assert_eq!(
        b.get("/new").await.status,
        200,
        "{bin}: /new on a TLS cluster"
    );
    assert_eq!(b.get("/login?user=ann").await.status, 200);
    assert_eq!(b.get("/write").await.body, "1");
    assert_eq!(b.get("/whoami").await.body, "ann");
    assert_eq!(
        cluster.keys("session:1.*").len(),
        2,
        "{bin}: the session and its forwarding marker"
    );
}

/// Checks `SESSION_FORMAT=flask`: the test-bed and the Flask recipe
/// (`testkit::flask`) on one redis-server share sessions through one
/// cookie (`session`, a uuid4): a sign-in on either side is the other's,
/// values set on the test-bed are in the recipe's pickle, a sign-in makes
/// the TTL the permanent lifetime, a logout on the test-bed signs out both.
///
/// # Panics
///
/// If they do not (the message says how), or cannot be started.
pub async fn check_shares_sessions_with_flask(bin: &str) {
    let redis = crate::RedisServer::start();
    let flask =
        crate::flask::FlaskApp::start(&redis.url()).unwrap_or_else(|e| panic!("Flask app: {e}"));
    let (_bed, bed) = start_test_bed(
        bin,
        &[
            ("REDIS_URL", redis.url()),
            ("SESSION_FORMAT", "flask".to_owned()),
        ],
    )
    .await;
    let mut rust = crate::client::Browser::new(bed.base().to_owned(), "session");
    let mut py = crate::client::Browser::new(flask.url(""), "session");

    assert_eq!(
        rust.get("/login?user=ann").await.status,
        200,
        "{bin}: /login"
    );
    let sid = rust.cookie.clone().unwrap_or_default();
    assert!(sid.len() == 36, "{bin}: a uuid4 cookie: {sid:?}");
    py.cookie = Some(sid.clone());
    assert_eq!(
        py.get("/whoami").await.body.trim(),
        "ann",
        "{}",
        flask.log()
    );
    let ttl: i64 = redis.cmd(&["TTL", &format!("session:{sid}")]);
    assert!(
        (31 * 86_400 - 10..=31 * 86_400).contains(&ttl),
        "{bin}: a sign-in is permanent: TTL {ttl}"
    );
    assert_eq!(rust.get("/set?key=cart&value=apple").await.status, 200);
    let raw: Vec<u8> = redis.cmd(&["GET", &format!("session:{sid}")]);
    let dict = crate::flask::unpickle(&raw);
    assert_eq!(
        (
            dict["user"].as_str(),
            dict["cart"].as_str(),
            dict["_permanent"].as_bool()
        ),
        (Some("ann"), Some("apple"), Some(true)),
        "{bin}: {dict}"
    );
    assert_eq!(rust.get("/logout").await.status, 200);
    assert_eq!(
        py.get("/whoami").await.body.trim(),
        "",
        "signed out on both"
    );

    let mut py = crate::client::Browser::new(flask.url(""), "session");
    assert_eq!(
        py.get("/login?user=bob").await.body,
        "ok",
        "{}",
        flask.log()
    );
    rust.cookie.clone_from(&py.cookie);
    assert_eq!(
        rust.get("/whoami").await.body,
        "bob",
        "{bin}: Flask's session"
    );
    assert_eq!(rust.get("/get?key=user").await.body, "bob");
}

/// Checks `SESSION_TRANSPORT=header`: the id travels in `Authorization:
/// Bearer`, a new or changed one comes back in `Session-Token`, and no
/// response has a `Set-Cookie` (the client fails on one).
///
/// # Panics
///
/// If it does not (the message says how), or cannot be started.
pub async fn check_header_transport(bin: &str) {
    let redis = crate::RedisServer::start();
    let (_bed, b) = start_test_bed(
        bin,
        &[
            ("REDIS_URL", redis.url()),
            ("SESSION_TRANSPORT", "header".to_owned()),
        ],
    )
    .await;
    let mut b = b.with_header_transport("authorization", "session-token", true);
    let r = b.get("/new").await;
    assert!(
        r.status == 200 && b.cookie.is_some(),
        "{bin}: a token: {r:?}"
    );
    assert_eq!(b.get("/whoami").await.body, "bench");
    assert_eq!(b.get("/write").await.body, "1");
    let before = b.cookie.clone();
    b.get("/login?user=ann").await;
    assert!(
        b.cookie.is_some() && b.cookie != before,
        "{bin}: a new token"
    );
    assert_eq!(b.get("/whoami").await.body, "ann");
    let r = b.get("/logout").await;
    assert!(r.ends_session && b.cookie.is_none(), "{bin}: logout: {r:?}");
    let mut anonymous = b.clone().with_cookie(before.as_deref());
    assert_eq!(
        anonymous.get("/whoami").await.status,
        401,
        "{bin}: the old token is dead"
    );
}
