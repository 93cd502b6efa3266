//! [`Topology`]: one of the harness's Redis topologies, for tests that run
//! the same steps on each — a store on it, the environment a test-bed or
//! `sessionctl` reads to reach it, and a look at the users' indexes.

use crate::cluster::ClusterSetup;
use crate::sentinel::{SentinelSetup, SERVICE};
use crate::RedisServer;

/// One server, a Cluster, or a primary behind Sentinel.
pub enum Topology {
    /// One redis-server.
    One(RedisServer),
    /// Three primaries with a replica each.
    Cluster(ClusterSetup),
    /// A primary, two replicas, three sentinels.
    Sentinel(SentinelSetup),
}

impl Topology {
    /// A starter for each topology.
    pub fn all() -> [fn() -> Topology; 3] {
        [
            || Topology::One(RedisServer::start()),
            || Topology::Cluster(ClusterSetup::start()),
            || Topology::Sentinel(SentinelSetup::start()),
        ]
    }

    /// For messages.
    pub fn name(&self) -> &'static str {
        match self {
            Topology::One(_) => "one server",
            Topology::Cluster(_) => "cluster",
            Topology::Sentinel(_) => "sentinel",
        }
    }

    /// A store `builder` makes for this topology.
    ///
    /// # Panics
    ///
    /// If the store cannot be built.
    pub async fn store(&self, builder: sessionkit::RedisStoreBuilder) -> sessionkit::RedisStore {
        match self {
            Topology::One(r) => builder.connect(r.url()).await,
            Topology::Cluster(c) => builder.cluster(c.urls()).await,
            Topology::Sentinel(s) => builder.sentinel(s.sentinel_urls(), SERVICE).await,
        }
        .unwrap_or_else(|e| panic!("a store on the {}: {e}", self.name()))
    }

    /// The environment that selects it (`RedisStoreBuilder::from_env`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Topology::One(r) => vec![("REDIS_URL", r.url())],
            Topology::Cluster(c) => vec![("REDIS_CLUSTER_URLS", c.urls().join(","))],
            Topology::Sentinel(s) => vec![
                ("REDIS_SENTINEL_URLS", s.sentinel_urls().join(",")),
                ("REDIS_SENTINEL_SERVICE", SERVICE.to_owned()),
            ],
        }
    }

    /// The entries of each user's index (`session:user:*`), sorted.
    pub fn indexes(&self) -> Vec<i64> {
        let on = |n: &RedisServer| -> Vec<i64> {
            let keys: Vec<String> = n.cmd(&["KEYS", "session:user:*"]);
            keys.iter().map(|k| n.cmd(&["ZCARD", k])).collect()
        };
        let mut found = match self {
            Topology::One(r) => on(r),
            Topology::Sentinel(s) => on(s.primary()),
            Topology::Cluster(c) => c.primaries().into_iter().flat_map(on).collect(),
        };
        found.sort_unstable();
        found
    }
}
