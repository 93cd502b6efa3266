//! `sessionctl` against a real redis-server, with sessions made by the
//! contract app: every command's output, and that no output ever holds a
//! cookie id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use serde_json::Value;
use sessionkit::{RedisStore, SessionConfig};
use testkit::client::Browser;
use testkit::RedisServer;

/// `sessionctl --url <redis> --json ARGS…`: its JSON output, checked to
/// hold none of `cookies`.
fn ctl(redis: &RedisServer, cookies: &[String], args: &[&str]) -> Value {
    let out = Command::cargo_bin("sessionctl")
        .expect("binary")
        .args(["--url", &redis.url(), "--json"])
        .args(args)
        .env_remove("REDIS_CLUSTER_URLS")
        .env_remove("REDIS_SENTINEL_URLS")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    for c in cookies {
        assert!(
            !stdout.contains(c.as_str()) && !stderr.contains(c.as_str()),
            "{args:?} printed a cookie id"
        );
    }
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_a_real_redis() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(redis.url()).await.expect("store");
    let app = testkit::contract::axum_router(store, SessionConfig::default());
    let base = testkit::serve_axum(app).await;
    let browser = || Browser::new(base.clone(), sessionkit::DEFAULT_COOKIE_NAME);
    let mut ann = Vec::new();
    for _ in 0..3 {
        let mut b = browser();
        assert_eq!(b.get("/login?user=ann").await.status, 200);
        ann.push(b);
    }
    let mut bob = browser();
    bob.get("/login?user=bob").await;
    for _ in 0..5 {
        browser().get("/new").await;
    }
    let cookies: Vec<String> = ann
        .iter()
        .chain([&bob])
        .filter_map(|b| b.cookie.clone())
        .collect();
    assert_eq!(cookies.len(), 4);

    let count = ctl(&redis, &cookies, &["count"]);
    assert_eq!(count["sessions"], 9, "{count}");
    assert_eq!(count["attached"], 4, "{count}");
    assert_eq!(count["users"], 2, "{count}");

    let listed = ctl(&redis, &cookies, &["list", "--user", "ann"]);
    let handles: Vec<String> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| s["handle"].as_str().expect("handle").to_owned())
        .collect();
    assert_eq!(handles.len(), 3, "{listed}");
    let everyone = ctl(&redis, &cookies, &["list"]);
    assert_eq!(everyone.as_array().map(Vec::len), Some(9));

    let shown = ctl(&redis, &cookies, &["show", &handles[0]]);
    assert_eq!(shown["user"], "ann", "{shown}");
    assert_eq!(shown["handle"], handles[0].as_str());

    let stats = ctl(&redis, &cookies, &["stats"]);
    assert_eq!(stats["sessions"], 9, "{stats}");
    assert_eq!(stats["users"], 2, "{stats}");
    assert_eq!(stats["anonymous"], 5, "{stats}");
    assert_eq!(stats["sessions_per_user"]["max"], 3, "{stats}");
    assert_eq!(stats["top_users"][0]["user"], "ann", "{stats}");

    // Ending one of ann's devices leaves the others.
    let revoked = ctl(&redis, &cookies, &["revoke", &handles[0]]);
    assert_eq!(revoked["revoked"], true);
    let mut signed_in = 0;
    for b in &mut ann {
        if b.get("/whoami").await.status == 200 {
            signed_in += 1;
        }
    }
    assert_eq!(signed_in, 2, "exactly the revoked device signed out");

    // revoke-user ends exactly ann's sessions.
    let ended = ctl(&redis, &cookies, &["revoke-user", "ann"]);
    assert_eq!(ended["revoked"], 2, "{ended}");
    for b in &mut ann {
        assert_eq!(b.get("/whoami").await.status, 401);
    }
    assert_eq!(bob.get("/whoami").await.body, "bob");
    assert_eq!(ctl(&redis, &cookies, &["count"])["sessions"], 6);

    // A stale index entry (a session that ended without its index hearing
    // of it) goes at the purge; bob's live one stays.
    let index: Vec<String> = redis.cmd(&["KEYS", "session:user:*"]);
    assert_eq!(index.len(), 1, "only bob's index is left: {index:?}");
    let stale = format!("1.{}", "A".repeat(43));
    let _: i64 = redis.cmd(&["ZADD", &index[0], "99999999999999", &stale]);
    let purged = ctl(&redis, &cookies, &["purge"]);
    assert_eq!(purged["fixed"], 1, "{purged}");
    let held: i64 = redis.cmd(&["ZCARD", &index[0]]);
    assert_eq!(held, 1);
    assert_eq!(bob.get("/whoami").await.body, "bob");

    // An unknown handle is an error, with a message.
    let out = Command::cargo_bin("sessionctl")
        .expect("binary")
        .args(["--url", &redis.url(), "show", "h.AAAAAAAAAAAAAAAAAAAAAA"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session has the handle"));
}

/// On each topology, found through the environment alone: `revoke-user`
/// signs every device of that user out on both of two app instances (each
/// with the client cache) within the cache's bound, and no one else;
/// `count` sees every session on every primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_user_on_every_topology_and_two_instances() {
    use std::time::Duration;
    use testkit::topology::Topology;
    const BOUND: Duration = Duration::from_millis(100);

    for start in Topology::all() {
        let topology = start();
        let name = topology.name();
        let serve = |store: RedisStore| async move {
            let app = testkit::contract::axum_router(store, SessionConfig::default());
            testkit::serve_axum(app).await
        };
        let a = serve(topology.store(RedisStore::builder()).await).await;
        let b = serve(topology.store(RedisStore::builder()).await).await;
        let mut devices = Vec::new();
        for user in ["ann", "ann", "ann", "bob"] {
            let mut on_a = Browser::new(a.clone(), sessionkit::DEFAULT_COOKIE_NAME);
            assert_eq!(on_a.get(&format!("/login?user={user}")).await.status, 200);
            let mut on_b = Browser::new(b.clone(), sessionkit::DEFAULT_COOKIE_NAME)
                .with_cookie(on_a.cookie.as_deref());
            for _ in 0..2 {
                assert_eq!(on_a.get("/whoami").await.body, user, "{name}");
                assert_eq!(on_b.get("/whoami").await.body, user, "{name}");
            }
            devices.push((on_a, on_b));
        }
        let run = |args: &[&str]| -> Value {
            let out = Command::cargo_bin("sessionctl")
                .expect("binary")
                .args(["--json", "--quiet"])
                .args(args)
                .env_remove("REDIS_URL")
                .env_remove("REDIS_CLUSTER_URLS")
                .env_remove("REDIS_SENTINEL_URLS")
                .envs(topology.env())
                .output()
                .expect("run");
            assert!(
                out.status.success(),
                "{name}: {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).expect("json")
        };
        assert_eq!(run(&["count"])["sessions"], 4, "{name}");
        assert_eq!(run(&["revoke-user", "ann"])["revoked"], 3, "{name}");
        for (i, (on_a, on_b)) in devices.iter_mut().take(3).enumerate() {
            let took = on_a.poll("/whoami", BOUND, |r| r.status == 401).await;
            assert!(took < BOUND, "{name}: device {i} on A after {took:?}");
            let took = on_b.poll("/whoami", BOUND, |r| r.status == 401).await;
            assert!(took < BOUND, "{name}: device {i} on B after {took:?}");
        }
        let (bob_a, bob_b) = &mut devices[3];
        assert_eq!(bob_a.get("/whoami").await.body, "bob", "{name}");
        assert_eq!(bob_b.get("/whoami").await.body, "bob", "{name}");
        assert_eq!(run(&["count"])["sessions"], 1, "{name}");
    }
}
