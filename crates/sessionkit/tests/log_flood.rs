//! A client cannot flood the log: every line a request can cause (a value
//! that does not decode, a session over the size limit, damaged data) is
//! written at most once a second per kind, with the number held back.
//!
//! Its own test binary (like `trace_leak`): it needs a global `tracing`
//! subscriber writing into memory.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use sessionkit::{MemoryStore, Session, SessionConfig, SessionLayer};
use testkit::client::Browser;
use testkit::log::MemoryLog as Log;

async fn number(session: Session) -> Result<String, sessionkit::Error> {
    let n: Option<u64> = session.get("n").await?;
    Ok(n.unwrap_or(0).to_string())
}

async fn text(session: Session) -> Result<&'static str, sessionkit::Error> {
    session.insert("n", "not a number").await?;
    Ok("ok")
}

async fn big(session: Session) -> Result<&'static str, sessionkit::Error> {
    session.insert("big", &"x".repeat(2048)).await?;
    Ok("ok")
}

async fn lenient(session: Session) -> Result<String, sessionkit::Error> {
    // A damaged value is dropped (and logged) on every read of a session
    // that a client keeps sending it in, here stored again each time.
    let n: Option<u64> = session.get_or_remove("n").await?;
    session.insert("n", "again").await?;
    Ok(format!("{n:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_requests_logs_a_line_a_second() {
    let log = Log::default();
    tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let config = SessionConfig::builder()
        .with_max_size(1024)
        .build()
        .expect("config");
    let app = Router::new()
        .route("/number", get(number))
        .route("/text", get(text))
        .route("/big", get(big))
        .route("/lenient", get(lenient))
        .layer(SessionLayer::new(MemoryStore::new(), config));
    let mut b = Browser::new(
        testkit::serve_axum(app).await,
        sessionkit::DEFAULT_COOKIE_NAME,
    );
    assert_eq!(b.get("/text").await.status, 200);
    // Long enough to cross two second boundaries, whatever the machine.
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_millis(2500) || requests < 100 {
        assert_eq!(
            b.get("/number").await.status,
            500,
            "a value of another type"
        );
        assert_eq!(b.get("/big").await.status, 413, "over the limit");
        assert_eq!(b.get("/lenient").await.status, 200);
        requests += 1;
    }
    let seconds = started.elapsed().as_secs() + 1;
    let text = log.text();
    let lines: Vec<&str> = text.lines().collect();
    for what in [
        ["session error in handler", "could not be decoded"],
        ["session error in handler", "session too large"],
        ["session value of another shape removed", ""],
    ] {
        let n = lines
            .iter()
            .filter(|l| what.iter().all(|w| l.contains(w)))
            .count();
        assert!(
            (1..=usize::try_from(seconds).unwrap_or(usize::MAX) + 1).contains(&n),
            "{n} lines of {what:?} for {requests} requests in {seconds} s"
        );
    }
    // What was held back is counted on the next line that goes out.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("suppressed=") && !l.contains("suppressed=0")),
        "{lines:#?}"
    );
}
