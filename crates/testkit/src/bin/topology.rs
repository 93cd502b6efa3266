//! Starts a Redis topology of the test harness on free loopback ports and
//! prints the test-bed environment that selects it (CONTRACT.md), then
//! keeps it running until stdin closes or the process is stopped:
//!
//!   cargo run --release -p testkit --bin topology -- standalone|tls|sentinel|cluster
//!
//! For measuring a test-bed on each topology by hand (`docs/bench/`).

use std::io::Read as _;

fn main() {
    let which = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "standalone".to_owned());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let keep: Box<dyn std::any::Any> = match which.as_str() {
        "standalone" => {
            let r = testkit::RedisServer::start();
            println!("REDIS_URL={}", r.url());
            Box::new(r)
        }
        "tls" => {
            let t = testkit::tls::TlsRedis::start(false);
            let ca = dir.path().join("ca.pem");
            std::fs::write(&ca, &t.certs.ca).unwrap_or_else(|e| panic!("write: {e}"));
            println!("REDIS_URL={}", t.url());
            println!("REDIS_CA_FILE={}", ca.display());
            println!("# plain port for inspection: {}", t.server.port());
            Box::new(t)
        }
        "sentinel" => {
            let s = testkit::sentinel::SentinelSetup::start();
            println!("REDIS_SENTINEL_URLS={}", s.sentinel_urls().join(","));
            println!("REDIS_SENTINEL_SERVICE={}", testkit::sentinel::SERVICE);
            println!("# primary: {}", s.primary().port());
            Box::new(s)
        }
        "cluster" => {
            let c = testkit::cluster::ClusterSetup::start();
            println!("REDIS_CLUSTER_URLS={}", c.urls().join(","));
            Box::new(c)
        }
        other => {
            eprintln!("topology: unknown {other:?} (standalone, tls, sentinel, cluster)");
            std::process::exit(2);
        }
    };
    println!("READY");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(keep);
}
