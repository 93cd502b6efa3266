//! The test-bed starts while Redis is down and serves once it is up
//! (`shared/bench/CONTRACT.md`, "Process").

#[tokio::test]
async fn starts_before_redis() {
    testkit::contract::check_starts_before_redis(env!("CARGO_BIN_EXE_bench-server")).await;
}
