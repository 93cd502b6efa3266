//! [`ClusterSetup`]: a Redis Cluster of three primaries with a replica
//! each, on free loopback ports (`--cluster-enabled yes`, then
//! `redis-cli --cluster create`), torn down on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::RedisServer;

/// Six nodes: three primaries, three replicas.
pub struct ClusterSetup {
    /// Every node, primaries and replicas (roles change on a failover).
    pub nodes: Vec<RedisServer>,
}

impl ClusterSetup {
    /// Starts the nodes, creates the cluster and waits until every node
    /// says `cluster_state:ok` and every primary has its replica.
    ///
    /// # Panics
    ///
    /// If `redis-cli` is missing or the cluster does not form within 30 s.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run redis-cli (Debian: redis-tools): {e}"));
        assert!(
            status.success(),
            "redis-cli --cluster create failed: {status}"
        );
        let setup = ClusterSetup { nodes };
        setup.wait_until(Duration::from_secs(30), "a formed cluster", |s| {
            s.nodes.iter().all(|n| {
                let info: String = n.cmd(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok")
            }) && s.primaries().len() == 3
                && s.replicas_in_sync() == 3
        });
        setup
    }

    /// `redis://127.0.0.1:<port>/` of every node (seed nodes).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The live nodes that are primaries now.
    pub fn primaries(&self) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && role(n) == "master")
            .collect()
    }

    fn replicas_in_sync(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && role(n) == "slave")
            .filter(|n| {
                let info: String = n.cmd(&["INFO", "replication"]);
                info.contains("master_link_status:up")
            })
            .count()
    }

    /// Waits until every live replica has everything its primary has
    /// (replication offsets), within 5 s.
    ///
    /// # Panics
    ///
    /// If they do not catch up in time.
    pub fn wait_for_replicas(&self) {
        self.wait_until(Duration::from_secs(5), "replicas caught up", |s| {
            crate::server::replicas_caught_up(&s.nodes)
        });
    }

    /// The keys matching `pattern` on every primary.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.primaries()
            .iter()
            .flat_map(|n| n.cmd::<Vec<String>>(&["KEYS", pattern]))
            .collect()
    }

    /// Kills a primary that holds keys matching `pattern` (or the first
    /// one), waits until its replica took over (within 30 s), and returns
    /// how long that took.
    ///
    /// # Panics
    ///
    /// If no replica takes over in time.
    pub fn fail_over(&mut self, pattern: &str) -> Duration {
        let victim = {
            let primaries = self.primaries();
            let with_keys = primaries
                .iter()
                .find(|n| !n.cmd::<Vec<String>>(&["KEYS", pattern]).is_empty())
                .or(primaries.first())
                .map(|n| n.port());
            with_keys.unwrap_or_else(|| panic!("no primary"))
        };
        let started = Instant::now();
        if let Some(n) = self.nodes.iter_mut().find(|n| n.port() == victim) {
            n.kill();
        }
        self.wait_until(Duration::from_secs(30), "a replica promoted", |s| {
            s.primaries().len() == 3
                && s.primaries().iter().all(|n| {
                    let info: String = n.cmd(&["CLUSTER", "INFO"]);
                    info.contains("cluster_state:ok")
                })
        });
        started.elapsed()
    }

    fn wait_until(&self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        crate::server::wait_until(within, &format!("cluster: {what}"), || done(self));
    }
}

/// `master` or `slave`, as `ROLE` says.
fn role(n: &RedisServer) -> String {
    let role: Vec<redis::Value> = n.cmd(&["ROLE"]);
    match role.first() {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(redis::Value::SimpleString(s)) => s.clone(),
        _ => String::new(),
    }
}
