//! The client cache's coherence window, measured: two app instances with
//! the cache on a private redis-server; a client writes (or logs out) on
//! A and, as soon as A answered, reads on B. Prints how often B still
//! served the old value and how long until it did not, idle and with other
//! clients loading B.
//!
//!   cargo run --release -p testkit --bin coherence [-- TRIALS [A_URL B_URL]]
//!
//! With two URLs it probes two running test-bed servers (say two
//! `bench-server` processes on one Redis) instead of two in-process ones.
//!
//! The figures belong in docs/bench/; the bound the tests assert is
//! `sessionkit`'s documented one, with margin.

use std::time::{Duration, Instant};

use sessionkit::store::redis::ClientCache;
use sessionkit::{RedisStore, SessionConfig, DEFAULT_COOKIE_NAME};
use testkit::client::Browser;
use testkit::RedisServer;

async fn instance(redis: &RedisServer) -> String {
    let store = RedisStore::builder()
        .with_client_cache(ClientCache::default())
        .connect(redis.url())
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    testkit::serve_axum(testkit::contract::axum_router(
        store,
        SessionConfig::default(),
    ))
    .await
}

/// Delays (after A answered) until B served the new state; zero when B's
/// first read already did.
#[derive(Default)]
struct Window(Vec<Duration>);

impl Window {
    fn report(&mut self, what: &str) {
        self.0.sort();
        let stale = self.0.iter().filter(|d| !d.is_zero()).count();
        let q = |p: f64| {
            let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
            self.0.get(i).copied().unwrap_or_default()
        };
        println!(
            "{what}: {stale} of {} first reads stale; window p50 {:?} p99 {:?} max {:?}",
            self.0.len(),
            q(0.5),
            q(0.99),
            self.0.last().copied().unwrap_or_default()
        );
    }
}

async fn until(
    b: &mut Browser,
    path: &str,
    done: impl Fn(&testkit::client::Reply) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut first = true;
    loop {
        let r = b.get(path).await;
        if done(&r) {
            return if first {
                Duration::ZERO
            } else {
                started.elapsed()
            };
        }
        first = false;
        assert!(started.elapsed() < Duration::from_secs(5), "never coherent");
    }
}

async fn trials(a: &str, b: &str, n: usize, label: &str) {
    let mut writes = Window::default();
    let mut on_a = Browser::new(a.to_owned(), DEFAULT_COOKIE_NAME);
    on_a.get("/write").await;
    let mut on_b =
        Browser::new(b.to_owned(), DEFAULT_COOKIE_NAME).with_cookie(on_a.cookie.as_deref());
    on_b.get("/read").await;
    for _ in 0..n {
        let v = on_a.get("/write").await.body;
        writes
            .0
            .push(until(&mut on_b, "/read", |r| r.body == v).await);
    }
    writes.report(&format!("{label} write on A, read on B"));
    let mut logouts = Window::default();
    for _ in 0..n / 4 {
        let mut on_a = Browser::new(a.to_owned(), DEFAULT_COOKIE_NAME);
        on_a.get("/login?user=ann").await;
        let mut on_b =
            Browser::new(b.to_owned(), DEFAULT_COOKIE_NAME).with_cookie(on_a.cookie.as_deref());
        on_b.get("/whoami").await;
        on_b.get("/whoami").await;
        on_a.get("/logout").await;
        logouts
            .0
            .push(until(&mut on_b, "/whoami", |r| r.status == 401).await);
    }
    logouts.report(&format!("{label} logout on A, whoami on B"));
}

#[tokio::main(worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let redis = RedisServer::start();
    let (a, b) = (instance(&redis).await, instance(&redis).await);
    trials(&a, &b, n, "idle:").await;
    // Other clients keep B busy with cached reads of their own sessions.
    let mut load = Vec::new();
    for _ in 0..8 {
        let b = b.clone();
        load.push(tokio::spawn(async move {
            let mut c = Browser::new(b, DEFAULT_COOKIE_NAME);
            c.get("/write").await;
            loop {
                c.get("/read").await;
            }
        }));
    }
    trials(&a, &b, n, "loaded:").await;
    for l in load {
        l.abort();
    }
}
