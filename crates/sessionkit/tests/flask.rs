//! The Flask recipe and a Rust app on one redis-server, sharing sessions:
//! the recipe's real code (`testkit/flask/recipe.py`, Flask and redis-py
//! from PyPI in a virtualenv) on one side, `FlaskStore` on the other, one
//! browser cookie between them. Its own test binary: it reads the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::Query;
use axum::routing::get;
use serde_json::{json, Value};
use sessionkit::store::flask::FlaskStore;
use sessionkit::{IdFormat, Session, SessionConfig, SessionLayer};
use testkit::client::Browser;
use testkit::flask::{python, unpickle, FlaskApp};
use testkit::log::MemoryLog;
use testkit::RedisServer;

type Q = Query<std::collections::HashMap<String, String>>;

fn arg(q: &Q, name: &str) -> String {
    q.0.get(name).cloned().unwrap_or_default()
}

/// The Rust side: the Flask app's routes, on `FlaskStore`.
async fn rust_app(redis: &RedisServer) -> String {
    let store = FlaskStore::connect(redis.url()).await.expect("store");
    let config = SessionConfig::builder()
        .with_id_format(IdFormat::Uuid4)
        .with_cookie_name("session")
        .build()
        .expect("config");
    type R = Result<String, sessionkit::Error>;
    let router =
        axum::Router::new()
            .route(
                "/login",
                get(|s: Session, q: Q| async move {
                    s.insert("user", &arg(&q, "user")).await?;
                    R::Ok("ok".into())
                }),
            )
            .route(
                "/whoami",
                get(|s: Session| async move {
                    R::Ok(s.get::<String>("user").await?.unwrap_or_default())
                }),
            )
            .route(
                "/cart",
                get(|s: Session| async move {
                    let cart: Vec<String> = s.get("cart").await?.unwrap_or_default();
                    R::Ok(json!(cart).to_string())
                }),
            )
            .route(
                "/cart/add",
                get(|s: Session, q: Q| async move {
                    let item = arg(&q, "item");
                    let cart = s
                        .update("cart", move |c: Option<Vec<String>>| {
                            let mut c = c.unwrap_or_default();
                            c.push(item.clone());
                            Some(c)
                        })
                        .await?;
                    R::Ok(json!(cart).to_string())
                }),
            )
            .route(
                "/flash",
                get(|s: Session, q: Q| async move {
                    let category = q.0.get("category").cloned().unwrap_or("message".into());
                    s.flash(&(category, arg(&q, "msg"))).await?;
                    R::Ok("ok".into())
                }),
            )
            .route(
                "/flashes",
                get(|s: Session| async move {
                    let flashes: Vec<(String, String)> = s.take_flashes().await?;
                    R::Ok(json!(flashes).to_string())
                }),
            )
            .route(
                "/permanent",
                get(|s: Session| async move {
                    s.set_permanent(true).await?;
                    R::Ok("ok".into())
                }),
            )
            .route(
                "/rotate",
                get(|s: Session| async move {
                    s.cycle_id().await?;
                    R::Ok("ok".into())
                }),
            )
            .route(
                "/logout",
                get(|s: Session| async move {
                    s.flush().await;
                    R::Ok("ok".into())
                }),
            )
            .layer(SessionLayer::new(store, config));
    testkit::serve_axum(router).await
}

/// One browser, two apps: the cookie goes with it from one to the other.
struct Both {
    flask: Browser,
    rust: Browser,
}

impl Both {
    async fn flask(&mut self, path: &str) -> String {
        self.flask.cookie.clone_from(&self.rust.cookie);
        let r = self.flask.get(path).await;
        assert_eq!(r.status, 200, "Flask {path}: {r:?}");
        self.rust.cookie.clone_from(&self.flask.cookie);
        r.body.trim().to_owned()
    }

    async fn rust(&mut self, path: &str) -> String {
        self.rust.cookie.clone_from(&self.flask.cookie);
        let r = self.rust.get(path).await;
        assert_eq!(r.status, 200, "Rust {path}: {r:?}");
        self.flask.cookie.clone_from(&self.rust.cookie);
        r.body.trim().to_owned()
    }

    fn use_cookie(&mut self, value: &str) {
        self.rust.cookie = Some(value.to_owned());
        self.flask.cookie = Some(value.to_owned());
    }

    fn cookie(&self) -> String {
        self.rust.cookie.clone().expect("a session cookie")
    }
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

#[tokio::test]
async fn flask_and_rust_share_sessions() {
    let log = MemoryLog::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish(),
    );
    let redis = RedisServer::start();
    let flask_app = FlaskApp::start(&redis.url()).unwrap_or_else(|e| panic!("{e}"));
    let rust = rust_app(&redis).await;
    let mut both = Both {
        flask: Browser::new(flask_app.url(""), "session"),
        rust: Browser::new(rust, "session"),
    };
    let key = |both: &Both| format!("session:{}", both.cookie());

    // Signed in on Flask: signed in on Rust.
    assert_eq!(
        both.flask("/login?user=alice").await,
        "ok",
        "{}",
        flask_app.log()
    );
    assert_eq!(both.rust("/whoami").await, "alice");
    // The cart changed on either side is the other's.
    both.flask("/cart/add?item=apple").await;
    assert_eq!(
        json_of(&both.rust("/cart/add?item=pear").await),
        json!(["apple", "pear"])
    );
    assert_eq!(
        json_of(&both.flask("/cart").await),
        json!(["apple", "pear"])
    );
    // What Rust wrote is the recipe's pickle, Python reads it.
    let raw: Vec<u8> = redis.cmd(&["GET", &key(&both)]);
    assert_eq!(
        unpickle(&raw),
        json!({"user": "alice", "cart": ["apple", "pear"]})
    );
    // Rust changed only data: the TTL stays what Flask set (a day), less the
    // time since; here set lower to see it kept.
    redis.cmd::<()>(&["EXPIRE", &key(&both), "1000"]);
    both.rust("/cart/add?item=plum").await;
    let ttl: i64 = redis.cmd(&["TTL", &key(&both)]);
    assert!((990..=1000).contains(&ttl), "TTL kept: {ttl}");

    // A flash on one side is shown on the other, once.
    both.flask("/flash?msg=hello&category=info").await;
    both.rust("/flash?msg=from%20rust").await;
    assert_eq!(
        json_of(&both.flask("/flashes").await),
        json!([["info", "hello"], ["message", "from rust"]])
    );
    both.flask("/flash?msg=again").await;
    assert_eq!(
        json_of(&both.rust("/flashes").await),
        json!([["message", "again"]])
    );
    assert_eq!(json_of(&both.flask("/flashes").await), json!([]));

    // Permanent on the Rust side: the recipe's TTL and `_permanent`.
    both.rust("/permanent").await;
    let ttl: i64 = redis.cmd(&["TTL", &key(&both)]);
    assert!((31 * 86_400 - 10..=31 * 86_400).contains(&ttl), "TTL {ttl}");
    let raw: Vec<u8> = redis.cmd(&["GET", &key(&both)]);
    assert_eq!(unpickle(&raw)["_permanent"], json!(true));

    // A new id on the Rust side (a sign-in's fixation defence): Flask
    // follows the new cookie, the old key is gone.
    let before = key(&both);
    both.rust("/rotate").await;
    assert_ne!(key(&both), before);
    assert_eq!(redis.cmd::<i64>(&["EXISTS", &before]), 0);
    assert_eq!(both.flask("/whoami").await, "alice");

    // Signed out on Rust: signed out on both.
    both.rust("/logout").await;
    assert_eq!(both.rust.cookie, None);
    assert_eq!(both.flask("/whoami").await, "");
    let keys: Vec<String> = redis.cmd(&["KEYS", "session:*"]);
    assert!(keys.is_empty(), "{keys:?}");
    // Signed out on Flask: signed out on both.
    both.flask("/login?user=bob").await;
    assert_eq!(both.rust("/whoami").await, "bob");
    both.flask("/logout").await;
    assert_eq!(both.rust("/whoami").await, "");

    // Values that do not round-trip are left out, the rest is kept.
    let stored = python(
        "import datetime, decimal, pickle, sys, uuid\n\
         sys.stdout.buffer.write(pickle.dumps({'user': 'carol', 'when': datetime.datetime.now(), \
         'id': uuid.uuid4(), 'price': decimal.Decimal('1.5'), 'tags': {'a'}, 'cart': ['x']}))",
        b"",
    );
    let sid = "0b7e4a52-7c1e-4b1f-9a52-3f1c2d4e5f60";
    let mut set = redis::cmd("SET");
    set.arg(format!("session:{sid}"))
        .arg(&stored)
        .arg("EX")
        .arg(600);
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = set.query(&mut conn).unwrap();
    both.use_cookie(sid);
    assert_eq!(both.rust("/whoami").await, "carol", "{}", log.text());
    assert_eq!(json_of(&both.rust("/cart").await), json!(["x"]));
    for what in ["datetime.datetime", "uuid.UUID", "decimal.Decimal", "set"] {
        assert!(
            log.text().contains(what),
            "{what} refused in the log:\n{}",
            log.text()
        );
    }
    // A read leaves them stored; a Rust write drops them (logged).
    let raw: Vec<u8> = redis.cmd(&["GET", &format!("session:{sid}")]);
    assert_eq!(raw, stored, "a read (and a touch) rewrites nothing");
    both.rust("/cart/add?item=y").await;
    let raw: Vec<u8> = redis.cmd(&["GET", &format!("session:{sid}")]);
    assert_eq!(unpickle(&raw), json!({"user": "carol", "cart": ["x", "y"]}));
    assert!(log.text().contains("dropped on write"), "{}", log.text());

    // A session the Rust side starts is the recipe's: a uuid4 cookie,
    // Flask reads it.
    both.rust.cookie = None;
    both.flask.cookie = None;
    assert_eq!(both.rust("/login?user=dave").await, "ok");
    let cookie = both.cookie();
    assert!(
        cookie.len() == 36 && cookie.as_bytes()[14] == b'4',
        "a uuid4: {cookie}"
    );
    assert_eq!(both.flask("/whoami").await, "dave");
    let ttl: i64 = redis.cmd(&["TTL", &key(&both)]);
    assert!((86_390..=86_400).contains(&ttl), "a day: {ttl}");

    // A hostile pickle (os.system under pickle.loads): nothing runs, the
    // session starts fresh, the record is deleted, the log says so.
    let pwned = tempfile_path("pwned");
    let hostile = format!("cos\nsystem\n(S'touch {}'\ntR.", pwned.display());
    let sid = "1c9d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e";
    let mut set = redis::cmd("SET");
    set.arg(format!("session:{sid}"))
        .arg(hostile.as_bytes())
        .arg("EX")
        .arg(600);
    let () = set.query(&mut conn).unwrap();
    both.use_cookie(sid);
    assert_eq!(both.rust("/whoami").await, "", "a fresh session");
    assert!(!pwned.exists(), "the pickle ran code");
    assert_eq!(redis.cmd::<i64>(&["EXISTS", &format!("session:{sid}")]), 0);
    assert!(
        log.text().contains("corrupt session record deleted"),
        "{}",
        log.text()
    );
    // The same pickle under the recipe's `pickle.loads` does run it: the
    // check above would catch a decoder that did.
    python(
        "import pickle, sys; pickle.loads(sys.stdin.buffer.read())",
        hostile.as_bytes(),
    );
    assert!(pwned.exists(), "the control: Python's pickle runs it");
    let _ = std::fs::remove_file(&pwned);
}

/// A path in the temp dir no test has used.
fn tempfile_path(what: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "sessionkit-flask-{what}-{}-{nanos}",
        std::process::id()
    ))
}
