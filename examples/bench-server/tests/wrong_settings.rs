//! The test-bed refuses wrong topology settings at start, saying which.

#[test]
fn refuses_wrong_topology_settings() {
    testkit::contract::check_refuses_wrong_topology_settings(env!("CARGO_BIN_EXE_bench-server"));
}
