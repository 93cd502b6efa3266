//! The Flask launcher (`testkit::flask`) against a private redis-server: the
//! recipe app signs in, fills a cart and flashes, and what it leaves in Redis
//! is the recipe's (a pickle under `<prefix><cookie>`, a one-day TTL, or the
//! permanent lifetime; the key deleted on logout).

use serde_json::{json, Value};
use testkit::client::Browser;
use testkit::flask::{unpickle, FlaskApp, FlaskOptions};
use testkit::RedisServer;

fn stored(redis: &RedisServer, key: &str) -> Option<Vec<u8>> {
    redis.cmd(&["GET", key])
}

fn set_cookie<'a>(reply: &'a testkit::client::Reply, name: &str) -> Option<&'a str> {
    reply
        .set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(String::as_str)
}

#[tokio::test]
async fn recipe_app_stores_pickled_sessions_in_redis() {
    let redis = RedisServer::start();
    let app = FlaskApp::start(&redis.url()).unwrap_or_else(|e| panic!("{e}"));
    let mut b = Browser::new(app.url(""), app.cookie_name());

    let r = b.get("/whoami").await;
    assert_eq!((r.status, r.body.as_str()), (200, ""), "{}", app.log());
    assert!(r.set_cookies.is_empty(), "an empty session sets no cookie");

    let r = b.get("/login?user=alice").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{}", app.log());
    let sc = set_cookie(&r, "session").unwrap_or_else(|| panic!("no cookie: {r:?}"));
    assert!(sc.contains("HttpOnly"), "{sc}");
    assert!(
        !sc.contains("Expires"),
        "not permanent: a browser-session cookie: {sc}"
    );
    let sid = b
        .cookie
        .clone()
        .unwrap_or_else(|| panic!("no session cookie"));
    assert_eq!(sid.len(), 36, "a uuid4: {sid}");
    let key = format!("session:{sid}");
    assert_eq!(app.key(&sid), key);

    assert_eq!(b.get("/whoami").await.body, "alice");
    assert_eq!(
        b.get("/cart/add?item=apple").await.body.trim(),
        r#"["apple"]"#
    );
    assert_eq!(
        serde_json::from_str::<Value>(&b.get("/cart/add?item=pear").await.body).ok(),
        Some(json!(["apple", "pear"]))
    );
    assert_eq!(b.get("/flash?msg=hello&category=info").await.body, "ok");
    assert_eq!(b.get("/flash?msg=plain").await.body, "ok");

    let raw = stored(&redis, &key).unwrap_or_else(|| panic!("no {key}:\n{}", app.log()));
    assert_eq!(raw.first(), Some(&0x80), "a pickle (PROTO opcode)");
    assert_eq!(raw.last(), Some(&b'.'), "a pickle (STOP opcode)");
    assert_eq!(
        unpickle(&raw),
        json!({
            "user": "alice",
            "cart": ["apple", "pear"],
            "_flashes": [["info", "hello"], ["message", "plain"]],
        })
    );
    let ttl: i64 = redis.cmd(&["TTL", &key]);
    assert!((86_390..=86_400).contains(&ttl), "TTL {ttl}, not one day");

    assert_eq!(
        serde_json::from_str::<Value>(&b.get("/flashes").await.body).ok(),
        Some(json!([["info", "hello"], ["message", "plain"]]))
    );
    assert_eq!(
        b.get("/flashes").await.body.trim(),
        "[]",
        "flashes are read once"
    );
    let raw = stored(&redis, &key).unwrap_or_else(|| panic!("no {key}"));
    assert_eq!(
        unpickle(&raw),
        json!({"user": "alice", "cart": ["apple", "pear"]})
    );

    let r = b.get("/permanent").await;
    assert_eq!(r.body, "ok");
    let sc = set_cookie(&r, "session").unwrap_or_else(|| panic!("no cookie: {r:?}"));
    assert!(sc.contains("Expires="), "permanent: {sc}");
    let ttl: i64 = redis.cmd(&["TTL", &key]);
    assert!(
        (31 * 86_400 - 10..=31 * 86_400).contains(&ttl),
        "TTL {ttl}, not Flask's default permanent_session_lifetime (31 days)"
    );
    assert_eq!(
        unpickle(&stored(&redis, &key).unwrap_or_default())["_permanent"],
        json!(true)
    );

    let r = b.get("/logout").await;
    assert_eq!(r.body, "ok");
    let sc = set_cookie(&r, "session").unwrap_or_else(|| panic!("no removal: {r:?}"));
    assert!(sc.contains("Max-Age=0"), "{sc}");
    assert_eq!(b.cookie, None);
    let exists: i64 = redis.cmd(&["EXISTS", &key]);
    assert_eq!(exists, 0, "logout deletes {key}");
    let sessions: Vec<String> = redis.cmd(&["KEYS", "session:*"]);
    assert!(sessions.is_empty(), "{sessions:?}");
}

#[tokio::test]
async fn recipe_app_takes_prefix_and_cookie_name() {
    let redis = RedisServer::start();
    let options = FlaskOptions {
        prefix: "flask:sess:".to_owned(),
        cookie_name: "sid".to_owned(),
    };
    let app = FlaskApp::start_with(&redis.url(), options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((app.prefix(), app.cookie_name()), ("flask:sess:", "sid"));
    let mut b = Browser::new(app.url(""), "sid");

    assert_eq!(b.get("/login?user=bob").await.body, "ok", "{}", app.log());
    let sid = b
        .cookie
        .clone()
        .unwrap_or_else(|| panic!("no `sid` cookie"));
    let raw = stored(&redis, &format!("flask:sess:{sid}"))
        .unwrap_or_else(|| panic!("nothing under the prefix:\n{}", app.log()));
    assert_eq!(unpickle(&raw), json!({"user": "bob"}));
    assert_eq!(b.get("/whoami").await.body, "bob");
    let plain: Vec<String> = redis.cmd(&["KEYS", "session:*"]);
    assert!(plain.is_empty(), "{plain:?}");

    // A cookie the app never issued: an empty new session, nothing stored.
    let mut stranger = b.clone().with_cookie(Some("no-such-session"));
    assert_eq!(stranger.get("/whoami").await.body, "");
    assert!(app.log().contains("GET /whoami"), "the log is captured");
}
