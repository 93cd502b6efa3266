//! The metrics move as documented (`sessionkit::telemetry::names`): a test
//! binary of its own, because it installs the process's recorder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use sessionkit::telemetry::names;
use sessionkit::{RedisStore, SessionConfig};
use testkit::client::Browser;

/// Counter values by name (labels summed); histogram sample counts by
/// name.
fn read(snapshotter: &Snapshotter) -> (HashMap<String, u64>, HashMap<String, usize>) {
    let (mut counters, mut histograms) = (HashMap::new(), HashMap::new());
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        match value {
            DebugValue::Counter(n) => *counters.entry(name).or_default() += n,
            DebugValue::Histogram(samples) => *histograms.entry(name).or_default() += samples.len(),
            DebugValue::Gauge(_) => {}
        }
    }
    (counters, histograms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_move_as_documented() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let mut redis = testkit::RedisServer::start();
    let store = RedisStore::connect(redis.url()).await.expect("store");
    let config = SessionConfig::builder()
        .with_touch_interval(std::time::Duration::ZERO)
        .build()
        .expect("config");
    let app = testkit::contract::axum_router(store, config);
    let base = testkit::serve_axum(app).await;
    let mut b = Browser::new(base.clone(), sessionkit::DEFAULT_COOKIE_NAME);
    let mut other = Browser::new(base, sessionkit::DEFAULT_COOKIE_NAME);

    let _ = read(&snapshotter); // the snapshot drains: start from zero
    assert_eq!(b.get("/new").await.status, 200); // create
    assert_eq!(b.get("/read").await.status, 200); // load (miss), touch
    assert_eq!(b.get("/read").await.status, 200); // load (hit), touch
    assert_eq!(b.get("/write").await.status, 200); // load, update
    assert_eq!(b.get("/login?user=ann").await.status, 200); // load, cycle: create + take
    assert_eq!(other.get("/login?user=ann").await.status, 200); // create
    assert_eq!(b.get("/logout-everywhere").await.status, 200); // revoke other, delete self
    assert_eq!(other.get("/whoami").await.status, 401);
    redis.kill();
    assert_eq!(b.get("/new").await.status, 503);
    let (c, h) = read(&snapshotter);
    let n = |name: &str| c.get(name).copied().unwrap_or(0);
    assert_eq!(n(names::CREATES), 3, "{c:?}");
    assert!(n(names::LOADS) >= 6, "{c:?}");
    assert!(n(names::CACHE_HITS) >= 1, "{c:?}");
    assert!(n(names::CACHE_MISSES) >= 1, "{c:?}");
    assert_eq!(
        n(names::UPDATES),
        1,
        "the write (the login's data goes to its new record, a create): {c:?}"
    );
    assert!(n(names::TOUCHES) >= 2, "{c:?}");
    assert_eq!(n(names::REVOCATIONS), 1, "{c:?}");
    assert_eq!(n(names::DELETES), 1, "{c:?}");
    assert_eq!(n(names::UNAVAILABLE), 1, "{c:?}");
    assert!(
        h.get(names::STORE_CALL).copied().unwrap_or(0) >= 10,
        "{h:?}"
    );
    assert!(
        h.get(names::SESSION_BYTES).copied().unwrap_or(0) >= 4,
        "{h:?}"
    );
}
