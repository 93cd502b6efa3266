//! The test-bed serves the contract over TLS, set up by the contract's
//! environment variables alone (`shared/bench/CONTRACT.md`, "Topologies").

#[tokio::test]
async fn serves_over_tls() {
    testkit::contract::check_serves_over_tls(env!("CARGO_BIN_EXE_bench-server-actix")).await;
}
