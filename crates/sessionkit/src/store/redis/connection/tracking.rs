//! Keeping the client cache's invalidation stream flowing: what a RESP3
//! push means to the cache, the commands that turn tracking on, the
//! heartbeat of one server's connection, and — on Cluster, where the
//! store's calls go through redis-rs' cluster connection, which reports no
//! pushes — a tracking connection of our own to every primary.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Pipeline, PushInfo, PushKind, Value};

use super::super::cache::Cache;
use crate::Error;

/// Hands the cache what a RESP3 push says. Runs on the connection's push
/// task: no blocking, only map operations.
pub(super) fn on_push(cache: &Cache, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => match push.data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    // Our keys are UTF-8; anything else is not ours.
                    if let Value::BulkString(bytes) = key {
                        if let Ok(key) = std::str::from_utf8(bytes) {
                            cache.invalidate(key);
                        }
                    }
                }
            }
            // A null list: FLUSHALL / FLUSHDB. Anything unexpected is
            // treated the same way: forget everything.
            _ => cache.flush(),
        },
        PushKind::Disconnection => cache.flush(),
        _ => {}
    }
}

/// Appends to `pipe` the commands that (re-)enable tracking on the
/// connection, in broadcast mode for the store's prefix: Redis reports every
/// change by another client to any session key, keeps no per-key state, and
/// the store's own plain writes (`RESTORE`, `DEL`) need no read-back to stay
/// covered. (A script's writes are reported back even to the NOLOOP client
/// that ran it; a write of ours drops the entry anyway.)
/// Tracking is switched off first: Redis refuses a prefix the connection
/// already tracks. Both go in one write, and Redis runs one client's
/// pipelined commands back to back, so no change falls between them. Two
/// replies; the second says whether tracking is on.
pub(super) fn track_keys(pipe: &mut Pipeline, prefix: &str) {
    pipe.cmd("CLIENT").arg("TRACKING").arg("OFF");
    let on = pipe.cmd("CLIENT").arg("TRACKING").arg("ON").arg("BCAST");
    if !prefix.is_empty() {
        on.arg("PREFIX").arg(prefix);
    }
    on.arg("NOLOOP");
}

/// Whether a connection error says the server does not do RESP3 client
/// tracking (it answered, with an error), rather than that it is unreachable.
pub(super) fn refused(e: &Error) -> bool {
    let Error::Unavailable(src) = e else {
        return false;
    };
    src.downcast_ref::<redis::RedisError>().is_some_and(|re| {
        !(re.is_io_error()
            || re.is_timeout()
            || re.is_connection_dropped()
            || re.is_connection_refusal())
    })
}

/// Checks the connection when nothing else has for a heartbeat; a failed
/// check flushes the cache (invalidations may have been lost).
pub(super) async fn heartbeat(cache: Arc<Cache>, mut conn: ConnectionManager, timeout: Duration) {
    let every = cache.heartbeat();
    loop {
        tokio::time::sleep(every).await;
        if cache.silent_for() < every {
            continue;
        }
        let ping = redis::cmd("PING");
        match tokio::time::timeout(timeout, ping.query_async::<Value>(&mut conn)).await {
            Ok(Ok(_)) => cache.alive(),
            _ => cache.flush(),
        }
    }
}

#[cfg(feature = "cluster")]
pub(super) use cluster::{primaries_in, ClusterTracker};

#[cfg(feature = "cluster")]
mod cluster {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use redis::aio::MultiplexedConnection;
    use redis::{
        AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo,
        Value,
    };

    use super::super::super::cache::Cache;
    use super::super::Certificates;
    use super::{on_push, track_keys};
    use crate::Error;

    /// A node's address, as `CLUSTER NODES` gives it.
    pub(in super::super) type Addr = (String, u16);

    /// The first wait before trying again to track every primary.
    const RETRY_FROM: Duration = Duration::from_millis(50);

    /// Tracking on a Redis Cluster: one RESP3 connection to every primary,
    /// each tracking the prefix in broadcast mode and handing its pushes to
    /// the cache. Every primary is tracked, so a key that moves between
    /// them (a reshard, a `MOVED`) stays covered. The cache serves only
    /// while tracking is confirmed on all of them: any of those connections
    /// dropping, a heartbeat that finds one silent, or a change in the set
    /// of primaries (a failover, a node added or removed) flushes it, and
    /// the tracker tracks the primaries of the moment again before anything
    /// is cached anew.
    pub(in super::super) struct ClusterTracker {
        pub(in super::super) cache: Arc<Cache>,
        pub(in super::super) seeds: Vec<ConnectionInfo>,
        pub(in super::super) certificates: Option<Certificates>,
        pub(in super::super) prefix: String,
        pub(in super::super) timeout: Duration,
        pub(in super::super) connect_timeout: Duration,
        /// The primaries tracked (empty at first).
        pub(in super::super) nodes: BTreeMap<Addr, Tracked>,
    }

    /// A primary's tracking connection.
    pub(in super::super) struct Tracked {
        conn: MultiplexedConnection,
        /// Set when the connection is let go: its closing is then no
        /// gap in the stream.
        retired: Arc<AtomicBool>,
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.retired.store(true, Ordering::Release);
        }
    }

    impl ClusterTracker {
        /// Runs for as long as the link: tracks every primary again after
        /// each flush (retrying, with a growing pause, while one cannot be
        /// reached), and checks on every heartbeat that every tracking
        /// connection answers and the primaries are still those tracked.
        pub(in super::super) async fn run(mut self) {
            let every = self.cache.heartbeat();
            let mut pause = RETRY_FROM;
            loop {
                if !self.cache.tracking_on() {
                    if let Err(e) = self.sync().await {
                        tracing::debug!(
                            error = %crate::error::Chain(&e),
                            "could not track every cluster primary; trying again"
                        );
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(every);
                        continue;
                    }
                    pause = RETRY_FROM;
                }
                if tokio::time::timeout(every, self.cache.flushed())
                    .await
                    .is_err()
                {
                    if self.check().await {
                        self.cache.alive();
                    } else {
                        self.cache.flush();
                    }
                }
            }
        }

        /// Turns tracking on at every primary of the moment (connecting to
        /// those not tracked yet, letting go of those no longer primaries)
        /// and confirms it to the cache for the epoch in which it began.
        pub(in super::super) async fn sync(&mut self) -> Result<(), Error> {
            let epoch = self.cache.epoch();
            let primaries = self.primaries().await?;
            self.nodes.retain(|addr, _| primaries.contains(addr));
            for addr in primaries {
                // A connection kept from before may be the one whose loss
                // caused the flush: on failure, once more on a new one.
                if let Some(mut node) = self.nodes.remove(&addr) {
                    if self.track(&mut node).await.is_ok() {
                        self.nodes.insert(addr, node);
                        continue;
                    }
                }
                let mut node = self.connect(&addr).await?;
                self.track(&mut node).await?;
                self.nodes.insert(addr, node);
            }
            self.cache.tracking_confirmed(epoch);
            self.cache.alive();
            Ok(())
        }

        /// Turns tracking on at `node`.
        async fn track(&self, node: &mut Tracked) -> Result<(), Error> {
            let mut pipe = redis::pipe();
            track_keys(&mut pipe, &self.prefix);
            let answer = tokio::time::timeout(
                self.timeout,
                pipe.query_async::<(Value, Value)>(&mut node.conn),
            )
            .await;
            match answer {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(Error::unavailable(e)),
                Err(elapsed) => Err(Error::unavailable(elapsed)),
            }
        }

        /// Whether every tracking connection answers and the primaries are
        /// still those tracked.
        async fn check(&mut self) -> bool {
            for node in self.nodes.values_mut() {
                let ping = redis::cmd("PING");
                let answer =
                    tokio::time::timeout(self.timeout, ping.query_async::<Value>(&mut node.conn))
                        .await;
                if !matches!(answer, Ok(Ok(_))) {
                    return false;
                }
            }
            match self.primaries().await {
                Ok(primaries) => primaries.iter().eq(self.nodes.keys()),
                Err(_) => false,
            }
        }

        /// The primaries of the moment, as a tracked primary (else a seed
        /// node) reports them. A primary that serves slots but is marked
        /// failed is an error: its replacement is not known yet, and
        /// changes on it would not be reported.
        async fn primaries(&mut self) -> Result<BTreeSet<Addr>, Error> {
            let mut nodes = redis::cmd("CLUSTER");
            nodes.arg("NODES");
            let mut last = Error::unavailable("no cluster node to ask");
            for (addr, node) in &mut self.nodes {
                let answer =
                    tokio::time::timeout(self.timeout, nodes.query_async::<String>(&mut node.conn))
                        .await;
                match answer {
                    Ok(Ok(text)) => return primaries_in(&text, &addr.0),
                    Ok(Err(e)) => last = Error::unavailable(e),
                    Err(elapsed) => last = Error::unavailable(elapsed),
                }
            }
            for seed in &self.seeds {
                let Ok(client) = self.client(seed.clone()) else {
                    continue;
                };
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.timeout));
                let ask = async {
                    let mut conn = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    nodes.query_async::<String>(&mut conn).await
                };
                match tokio::time::timeout(self.connect_timeout + self.timeout, ask).await {
                    Ok(Ok(text)) => return primaries_in(&text, host_of(seed.addr())),
                    Ok(Err(e)) => last = Error::unavailable(e),
                    Err(elapsed) => last = Error::unavailable(elapsed),
                }
            }
            Err(last)
        }

        /// A RESP3 connection to `addr` whose pushes go to the cache.
        async fn connect(&self, addr: &Addr) -> Result<Tracked, Error> {
            let Some(seed) = self.seeds.first() else {
                return Err(Error::unavailable("no cluster node given"));
            };
            let addr = match seed.addr() {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host: addr.0.clone(),
                    port: addr.1,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(addr.0.clone(), addr.1),
            };
            let settings = seed
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            let info = seed.clone().set_addr(addr).set_redis_settings(settings);
            let client = self.client(info)?;
            let retired = Arc::new(AtomicBool::new(false));
            let (cache, gone) = (Arc::clone(&self.cache), Arc::clone(&retired));
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                // Every call here is bounded by the tracker's own timeout.
                .set_response_timeout(None)
                .set_push_sender(move |push: PushInfo| {
                    if !gone.load(Ordering::Acquire) {
                        on_push(&cache, push);
                    }
                    Ok::<(), std::convert::Infallible>(())
                });
            let connect = client.get_multiplexed_async_connection_with_config(&config);
            let conn = tokio::time::timeout(self.connect_timeout * 2, connect)
                .await
                .map_err(Error::unavailable)?
                .map_err(Error::unavailable)?;
            Ok(Tracked { conn, retired })
        }

        /// A client for `info`, with the builder's certificates if any.
        fn client(&self, info: ConnectionInfo) -> Result<Client, Error> {
            #[cfg(feature = "tls")]
            if let Some(certs) = &self.certificates {
                return Client::build_with_tls(info, certs.clone()).map_err(Error::unavailable);
            }
            #[cfg(not(feature = "tls"))]
            let _ = &self.certificates;
            Client::open(info).map_err(Error::unavailable)
        }
    }

    fn host_of(addr: &ConnectionAddr) -> &str {
        match addr {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host,
            _ => "",
        }
    }

    /// The primaries in a `CLUSTER NODES` reply from a node reached at
    /// `asked` (a node that knows no address of its own reports none).
    /// Lines: `<id> <ip:port@cport[,hostname]> <flags> <primary> <ping>
    /// <pong> <epoch> <link> [<slot> …]`.
    pub(in super::super) fn primaries_in(text: &str, asked: &str) -> Result<BTreeSet<Addr>, Error> {
        let mut primaries = BTreeSet::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
                return Err(Error::unavailable("a CLUSTER NODES line without address"));
            };
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master")
                || flags.iter().any(|f| matches!(*f, "noaddr" | "handshake"))
            {
                continue;
            }
            let serves_slots = fields.len() > 8;
            if flags.contains(&"fail") {
                if serves_slots {
                    return Err(Error::unavailable(
                        "a cluster primary is down and not replaced yet",
                    ));
                }
                continue;
            }
            let host_port = addr.split(['@', ',']).next().unwrap_or_default();
            let parsed = host_port
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)));
            let Some((host, port)) = parsed else {
                return Err(Error::unavailable("a CLUSTER NODES address without port"));
            };
            let host = if host.is_empty() { asked } else { host };
            primaries.insert((host.to_owned(), port));
        }
        if primaries.is_empty() {
            return Err(Error::unavailable("CLUSTER NODES named no primary"));
        }
        Ok(primaries)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_primaries_of_a_cluster_nodes_reply() {
            let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,host-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
d4 127.0.0.1:7004@17004 slave a1 0 0 1 connected
e5 127.0.0.1:7005@17005 master,fail - 0 0 4 disconnected
f6 :7006@17006 master - 0 0 5 connected
";
            let got = primaries_in(text, "10.0.0.9").expect("parses");
            let want: BTreeSet<Addr> = [
                ("127.0.0.1", 7001),
                ("127.0.0.1", 7002),
                ("127.0.0.1", 7003),
                ("10.0.0.9", 7006),
            ]
            .into_iter()
            .map(|(h, p)| (h.to_owned(), p))
            .collect();
            assert_eq!(
                got, want,
                "replicas and failed primaries without slots left out"
            );
        }

        #[test]
        fn a_failed_primary_still_serving_slots_is_an_error() {
            let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-8000
b2 127.0.0.1:7002@17002 master,fail - 0 0 2 disconnected 8001-16383
";
            assert!(primaries_in(text, "127.0.0.1").is_err());
            assert!(primaries_in("garbage", "127.0.0.1").is_err());
            assert!(primaries_in("", "127.0.0.1").is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::cache::{ClientCache, Outcome};
    use crate::store::{now_ms, Meta, Record};

    fn filled(cache: &Cache) {
        cache.tracking_confirmed(cache.epoch());
        let meta = Meta {
            expires_ms: now_ms() + 60_000,
            ..Meta::default()
        };
        let record = Record::new(Default::default(), meta);
        cache.begin("k").finish(Outcome::Loaded(Some(&record)));
        assert!(cache.get("k").is_some());
    }

    fn cache() -> Cache {
        Cache::new(&ClientCache::default(), Duration::from_millis(500))
    }

    #[test]
    fn an_invalidation_push_reaches_the_cache() {
        let c = cache();
        filled(&c);
        on_push(
            &c,
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![Value::Array(vec![Value::BulkString(b"k".to_vec())])],
            },
        );
        assert!(c.get("k").is_none());
        assert_eq!(c.stats().invalidations, 1);
    }

    #[test]
    fn flushall_and_disconnection_pushes_flush() {
        for push in [
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![Value::Nil],
            },
            PushInfo {
                kind: PushKind::Disconnection,
                data: vec![],
            },
        ] {
            let c = cache();
            filled(&c);
            on_push(&c, push);
            assert!(c.get("k").is_none());
            assert_eq!(c.stats().flushes, 1);
        }
    }
}
