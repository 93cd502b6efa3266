//! The contract's optional modes (`shared/bench/CONTRACT.md`):
//! `SESSION_FORMAT=flask` beside the Flask recipe on one Redis, and
//! `SESSION_TRANSPORT=header`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_sessions_with_the_flask_recipe() {
    testkit::contract::check_shares_sessions_with_flask(env!("CARGO_BIN_EXE_bench-server-actix"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carries_the_id_in_a_header() {
    testkit::contract::check_header_transport(env!("CARGO_BIN_EXE_bench-server-actix")).await;
}
