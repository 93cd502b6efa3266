//! The test-bed serves the contract on a Redis Cluster, set up by the
//! contract's environment variable alone, and follows a failover.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_cluster() {
    testkit::contract::check_serves_on_cluster(env!("CARGO_BIN_EXE_bench-server")).await;
}

/// The same on a TLS cluster (`rediss://` seeds and `REDIS_CA_FILE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_a_tls_cluster() {
    testkit::contract::check_serves_on_tls_cluster(env!("CARGO_BIN_EXE_bench-server")).await;
}
