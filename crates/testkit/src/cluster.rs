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
    /// For a TLS cluster ([`start_tls`](Self::start_tls)): its
    /// certificates, each node's TLS port, the files the nodes read.
    tls: Option<(crate::tls::TestCerts, Vec<u16>, crate::tls::TlsFiles)>,
}

impl ClusterSetup {
    /// Starts the nodes, creates the cluster and waits until every node
    /// says `cluster_state:ok` and every primary has its replica.
    ///
    /// # Panics
    ///
    /// If `redis-cli` is missing or the cluster does not form within 30 s.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// The same cluster, with TLS between its nodes (`tls-cluster`,
    /// `tls-replication`) and on a TLS port of each node besides its plain
    /// one (for the test's own commands and `redis-cli`), with certificates
    /// made now ([`certs`](Self::certs), [`tls_urls`](Self::tls_urls)).
    ///
    /// [`wait_for_replicas`](Self::wait_for_replicas) is not tested on it
    /// (it matches replicas to primaries by their plain ports).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_tls() -> Self {
        let certs = crate::tls::TestCerts::generate();
        let files = crate::tls::TlsFiles::write(&certs);
        Self::start_with(Some((certs, files)))
    }

    fn start_with(tls: Option<(crate::tls::TestCerts, crate::tls::TlsFiles)>) -> Self {
        let mut tls_ports = Vec::new();
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                let mut args: Vec<String> = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    // A node that rejoins is synced at once, not after
                    // the default 5 s wait for other replicas.
                    "--repl-diskless-sync-delay",
                    "0",
                ]
                .map(str::to_owned)
                .to_vec();
                if let Some((_, files)) = &tls {
                    let port = crate::server::free_port();
                    tls_ports.push(port);
                    args.extend(files.args(port, false));
                    args.extend(
                        ["--tls-cluster", "yes", "--tls-replication", "yes"].map(str::to_owned),
                    );
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                // The cluster's own commands between nodes are not a
                // request's cost (`REPLCONF`, `PSYNC`, …).
                RedisServer::start_with(&args).watched()
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
        let setup = ClusterSetup {
            nodes,
            tls: tls.map(|(certs, files)| (certs, tls_ports, files)),
        };
        setup.wait_until(Duration::from_secs(30), "a formed cluster", Self::formed);
        setup
    }

    /// `redis://127.0.0.1:<port>/` of every node (seed nodes).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `rediss://127.0.0.1:<tls port>/` of every node of a TLS cluster
    /// (none for a plain one).
    pub fn tls_urls(&self) -> Vec<String> {
        self.tls.as_ref().map_or_else(Vec::new, |(_, ports, _)| {
            ports
                .iter()
                .map(|p| format!("rediss://127.0.0.1:{p}/"))
                .collect()
        })
    }

    /// The certificates of a TLS cluster.
    pub fn certs(&self) -> Option<&crate::tls::TestCerts> {
        self.tls.as_ref().map(|(certs, _, _)| certs)
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

    /// The live primary that serves `key`'s hash slot.
    ///
    /// # Panics
    ///
    /// If no live primary claims the slot (the cluster is not whole).
    pub fn node_for(&self, key: &str) -> &RedisServer {
        let primaries = self.primaries();
        let Some(any) = primaries.first() else {
            panic!("cluster: no live primary");
        };
        let slot: u16 = any.cmd(&["CLUSTER", "KEYSLOT", key]);
        primaries
            .into_iter()
            .find(|n| serves(n, slot))
            .unwrap_or_else(|| panic!("cluster: no primary serves slot {slot}"))
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

    /// A planned failover, nothing killed: the replica of a primary that
    /// holds keys matching `pattern` (or of the first one) takes over with
    /// `CLUSTER FAILOVER` (the two in step, no write lost), and the old
    /// primary serves on as its replica. Waits until every node agrees
    /// (within 30 s) and returns how long that took.
    ///
    /// # Panics
    ///
    /// If the primary has no replica or the roles do not swap in time.
    pub fn switch_over(&self, pattern: &str) -> Duration {
        let primaries = self.primaries();
        let old = primaries
            .iter()
            .find(|n| !n.cmd::<Vec<String>>(&["KEYS", pattern]).is_empty())
            .or(primaries.first())
            .map(|n| n.port())
            .unwrap_or_else(|| panic!("no primary"));
        let replica = self
            .nodes
            .iter()
            .find(|n| {
                n.is_running() && role(n) == "slave" && {
                    let info: String = n.cmd(&["INFO", "replication"]);
                    info.contains(&format!("master_port:{old}\r"))
                }
            })
            .unwrap_or_else(|| panic!("cluster: the primary on {old} has no replica"));
        // The primary acts on the replica's request only once it knows it
        // as its replica (cluster gossip may not have got there yet).
        let primary = self
            .nodes
            .iter()
            .find(|n| n.port() == old)
            .unwrap_or_else(|| panic!("cluster: no node on {old}"));
        let id: String = primary.cmd(&["CLUSTER", "MYID"]);
        let listed = format!("127.0.0.1:{}@", replica.port());
        self.wait_until(
            Duration::from_secs(10),
            "the primary knows its replica",
            |_| {
                let replicas: Vec<String> = primary.cmd(&["CLUSTER", "REPLICAS", &id]);
                replicas.iter().any(|r| r.contains(&listed))
            },
        );
        let started = Instant::now();
        let new = replica.port();
        let swapped = |s: &Self| {
            s.nodes.iter().all(|n| {
                let want = if n.port() == new {
                    "master"
                } else if n.port() == old {
                    "slave"
                } else {
                    return true;
                };
                role(n) == want
            }) && s.formed()
        };
        // A request not acted on within Redis's manual-failover timeout
        // (5 s) lapses: ask again.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !swapped(self) {
            assert!(
                Instant::now() < deadline,
                "cluster: roles not swapped within 30 s"
            );
            let _: String = replica.cmd(&["CLUSTER", "FAILOVER"]);
            let asked = Instant::now();
            while !swapped(self) && asked.elapsed() < Duration::from_secs(6) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        started.elapsed()
    }

    /// Restarts every node that is down (after [`fail_over`](Self::fail_over)):
    /// it rejoins as the replica of the node that took over, and this waits
    /// until it is in sync (within 30 s). Returns how long that took.
    ///
    /// # Panics
    ///
    /// If the cluster is not whole again in time.
    pub fn rejoin(&mut self) -> Duration {
        let started = Instant::now();
        for n in self.nodes.iter_mut().filter(|n| !n.is_running()) {
            n.restart();
        }
        self.wait_until(Duration::from_secs(30), "every node back", |s| s.formed());
        started.elapsed()
    }

    /// Moves `slots` hash slots, with their keys, from one primary to the
    /// next (by port, turn `round` picking the pair), with `redis-cli
    /// --cluster reshard` (which migrates key by key, `MIGRATE`, while the
    /// cluster serves), and waits until every node agrees again. Returns how
    /// long that took.
    ///
    /// # Panics
    ///
    /// If `redis-cli` fails or the cluster does not settle within 30 s.
    pub fn reshard(&self, round: usize, slots: u32) -> Duration {
        let mut primaries: Vec<(u16, String)> = self
            .primaries()
            .iter()
            .map(|n| (n.port(), n.cmd(&["CLUSTER", "MYID"])))
            .collect();
        primaries.sort();
        assert!(primaries.len() >= 2, "resharding needs two primaries");
        let from = &primaries[round % primaries.len()];
        let to = &primaries[(round + 1) % primaries.len()];
        let started = Instant::now();
        let output = Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{}", from.0)])
            .args(["--cluster-from", &from.1, "--cluster-to", &to.1])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli (Debian: redis-tools): {e}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster reshard failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        );
        self.wait_until(Duration::from_secs(30), "a settled cluster", |s| s.formed());
        started.elapsed()
    }

    /// Every node up and saying `cluster_state:ok`, three primaries, each
    /// with its replica in sync, and every node's view (`CLUSTER NODES`)
    /// agreeing: three primaries and three replicas (a node that has not
    /// heard of the replica assignments yet lists six primaries).
    fn formed(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.is_running()
                && {
                    let info: String = n.cmd(&["CLUSTER", "INFO"]);
                    info.contains("cluster_state:ok")
                }
                && {
                    let view: String = n.cmd(&["CLUSTER", "NODES"]);
                    let flagged = |role: &str| {
                        view.lines()
                            .filter(|l| {
                                l.split_whitespace().nth(2).is_some_and(|f| {
                                    let flags: Vec<&str> = f.split(',').collect();
                                    flags.contains(&role) && !flags.contains(&"fail")
                                })
                            })
                            .count()
                    };
                    flagged("master") == 3 && flagged("slave") == 3
                }
        }) && self.primaries().len() == 3
            && self.replicas_in_sync() == 3
    }

    fn wait_until(&self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        crate::server::wait_until(within, &format!("cluster: {what}"), || done(self));
    }
}

/// Whether `node` (a primary) serves hash `slot`, by its own word
/// (`CLUSTER NODES`, the `myself` line: `0-5460 5462 …`; a slot being
/// migrated, `[…]`, is skipped).
fn serves(node: &RedisServer, slot: u16) -> bool {
    let nodes: String = node.cmd(&["CLUSTER", "NODES"]);
    let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
        return false;
    };
    me.split_whitespace().skip(8).any(|range| {
        let (from, to) = range.split_once('-').unwrap_or((range, range));
        match (from.parse::<u16>(), to.parse::<u16>()) {
            (Ok(from), Ok(to)) => (from..=to).contains(&slot),
            _ => false,
        }
    })
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
