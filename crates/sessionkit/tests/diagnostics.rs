//! Diagnostics a developer sees: a `Secure` cookie sent in answer to a
//! plain-HTTP request for a host other than localhost is logged once (a
//! second at most), saying what to do — on both frameworks; nothing is
//! logged for localhost, a loopback address, or a request that came
//! through HTTPS at a proxy.
//!
//! Its own test binary: it needs a global `tracing` subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sessionkit::{MemoryStore, SessionConfig};
use testkit::client::Browser;
use testkit::conformance::{serve, Framework};
use testkit::log::MemoryLog;

const WARNING: &str = "a Secure session cookie went to a plain-HTTP request";

fn warnings(log: &MemoryLog) -> Vec<String> {
    log.text()
        .lines()
        .filter(|l| l.contains(WARNING))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_cookie_over_plain_http_is_explained_once() {
    let log = MemoryLog::default();
    tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();
    for fw in [Framework::Axum, Framework::Actix] {
        let (addr, _server) = serve(fw, MemoryStore::new(), SessionConfig::default()).await;
        let mut b = Browser::new(format!("http://{addr}"), sessionkit::DEFAULT_COOKIE_NAME);
        // Fine: what a browser stores.
        for host in [
            "localhost:3000",
            "127.0.0.1:8080",
            "[::1]:3000",
            "app.localhost",
        ] {
            let r = b.get_with_header("/new", "host", host).await;
            assert_eq!(r.status, 200);
            assert!(!r.set_cookies.is_empty(), "a cookie for {host}");
        }
        for forwarded in [
            [("host", "devbox.test"), ("x-forwarded-proto", "https")],
            [
                ("host", "devbox.test"),
                ("forwarded", "for=10.0.0.1;proto=https"),
            ],
        ] {
            assert_eq!(b.get_with_headers("/new", &forwarded).await.status, 200);
        }
        assert!(
            warnings(&log).is_empty(),
            "{fw:?}: nothing to say:\n{}",
            log.text()
        );

        // A plain-HTTP visit to a named host: one line for a burst.
        for _ in 0..5 {
            let r = b.get_with_header("/new", "host", "devbox.test:3000").await;
            assert_eq!(r.status, 200);
        }
        let lines = warnings(&log);
        assert_eq!(lines.len(), 1, "{fw:?}: one line:\n{}", log.text());
        assert!(lines[0].contains("devbox.test:3000"), "{}", lines[0]);
        assert!(
            lines[0].contains("X-Forwarded-Proto: https"),
            "says what to do: {}",
            lines[0]
        );
        // The next framework starts after the gate's second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        log.clear();
    }
}
