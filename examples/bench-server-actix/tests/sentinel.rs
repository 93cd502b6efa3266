//! The test-bed serves the contract through Sentinel, set up by the
//! contract's environment variables alone, and follows a failover.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_through_sentinel() {
    testkit::contract::check_serves_through_sentinel(env!("CARGO_BIN_EXE_bench-server-actix"))
        .await;
}
