//! The Redis topologies the chaos run starts, and the faults it makes
//! them suffer while the load runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::cluster::ClusterSetup;
use testkit::sentinel::{SentinelSetup, SERVICE};
use testkit::RedisServer;

use crate::server::rss_kib;

/// Which Redis the test-bed runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Standalone,
    Sentinel,
    Cluster,
}

impl Kind {
    pub(crate) fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "standalone" => Ok(Kind::Standalone),
            "sentinel" => Ok(Kind::Sentinel),
            "cluster" => Ok(Kind::Cluster),
            other => Err(format!(
                "unknown topology {other:?} (standalone, sentinel, cluster)"
            )),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Standalone => "standalone",
            Kind::Sentinel => "sentinel",
            Kind::Cluster => "cluster",
        }
    }
}

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// Standalone: Redis killed (SIGKILL) and restarted on its port, twice.
    Outage,
    /// Sentinel or Cluster: the primary killed until a replica takes over,
    /// then brought back as a replica.
    Failover,
    /// Cluster: hash slots moved between primaries, keys and all.
    Reshard,
}

impl Scenario {
    pub(crate) fn parse(s: &str) -> Result<Scenario, String> {
        match s {
            "outage" => Ok(Scenario::Outage),
            "failover" => Ok(Scenario::Failover),
            "reshard" => Ok(Scenario::Reshard),
            other => Err(format!(
                "unknown fault {other:?} (outage, failover, reshard)"
            )),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Outage => "outage",
            Scenario::Failover => "failover",
            Scenario::Reshard => "reshard",
        }
    }

    /// The scenario a topology has by default.
    pub(crate) fn default_for(kind: Kind) -> Scenario {
        match kind {
            Kind::Standalone => Scenario::Outage,
            Kind::Sentinel | Kind::Cluster => Scenario::Failover,
        }
    }

    pub(crate) fn fits(self, kind: Kind) -> bool {
        matches!(
            (kind, self),
            (Kind::Standalone, Scenario::Outage)
                | (Kind::Sentinel, Scenario::Failover)
                | (Kind::Cluster, Scenario::Failover | Scenario::Reshard)
        )
    }
}

/// A running topology; torn down on drop.
pub(crate) enum Topology {
    Standalone(RedisServer),
    Sentinel(SentinelSetup),
    Cluster(ClusterSetup),
}

impl Topology {
    /// Starts one (blocking: seconds for Sentinel and Cluster).
    pub(crate) fn start(kind: Kind) -> Topology {
        match kind {
            Kind::Standalone => Topology::Standalone(RedisServer::start()),
            Kind::Sentinel => Topology::Sentinel(SentinelSetup::start()),
            Kind::Cluster => Topology::Cluster(ClusterSetup::start()),
        }
    }

    /// The test-bed's environment for it (CONTRACT.md).
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        let var = |k: &str, v: String| (k.to_owned(), v);
        match self {
            Topology::Standalone(redis) => vec![var("REDIS_URL", redis.url())],
            Topology::Sentinel(setup) => vec![
                var("REDIS_SENTINEL_URLS", setup.sentinel_urls().join(",")),
                var("REDIS_SENTINEL_SERVICE", SERVICE.to_owned()),
            ],
            Topology::Cluster(setup) => vec![var("REDIS_CLUSTER_URLS", setup.urls().join(","))],
        }
    }
}

/// One fault, as offsets from the start of the load.
pub(crate) struct Fault {
    /// Just before the kill, or the reshard's start.
    pub(crate) begun: Duration,
    /// Redis serves again: the restart answers PING, the sentinels or the
    /// cluster name the promoted replica, the reshard is done.
    pub(crate) restored: Duration,
    /// The topology is whole again: the killed node is back as a replica
    /// in sync (for an outage or a reshard, as `restored`).
    pub(crate) healed: Duration,
    /// What happened, in words.
    pub(crate) what: String,
}

impl Fault {
    /// A fault after which the topology is whole as soon as it serves.
    fn whole_at_once(begun: Duration, restored: Duration, what: String) -> Fault {
        Fault {
            begun,
            restored,
            healed: restored,
            what,
        }
    }
}

/// What actually happened.
pub(crate) struct Timeline {
    pub(crate) faults: Vec<Fault>,
    pub(crate) rss_before: Option<(Duration, u64)>,
    pub(crate) rss_after: Option<(Duration, u64)>,
    pub(crate) rss_peak: u64,
}

/// How many faults a run makes, and for an outage how long it lasts.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) scenario: Scenario,
    /// Outage: the whole run, the kills at fixed fractions of it.
    pub(crate) duration: Duration,
    /// Failovers or reshards.
    pub(crate) rounds: usize,
    /// Hash slots per reshard.
    pub(crate) slots: u32,
}

/// Time with the load running before the first fault and after the last.
const WARM_UP: Duration = Duration::from_secs(4);
/// Time after a failover or reshard before the next one.
const SETTLE: Duration = Duration::from_secs(3);

/// Ends the load when the controller is done, or fails (a panic of the
/// topology's setup): the load must not run on into its time limit.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Sleeps on the controller's thread, sampling the server's RSS.
struct Watch {
    pid: u32,
    t0: Instant,
    peak: u64,
}

impl Watch {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn sample(&mut self) -> Option<(Duration, u64)> {
        let kib = rss_kib(self.pid)?;
        self.peak = self.peak.max(kib);
        Some((self.now(), kib))
    }

    fn sleep_until(&mut self, offset: Duration) {
        while self.now() < offset {
            self.sample();
            let left = offset.saturating_sub(self.now());
            std::thread::sleep(left.min(Duration::from_millis(250)));
        }
    }

    fn sleep(&mut self, d: Duration) {
        self.sleep_until(self.now() + d);
    }
}

/// Runs on a blocking thread: makes `topology` suffer `plan` while
/// sampling the server's RSS, sets `stop` when done, and gives the
/// topology back, to be dropped after the load.
pub(crate) fn run(
    mut topology: Topology,
    plan: Plan,
    pid: u32,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> (Timeline, Topology) {
    let _stop = StopOnDrop(stop);
    let mut w = Watch { pid, t0, peak: 0 };
    let (faults, rss_before, rss_after) = match &mut topology {
        Topology::Standalone(redis) => outages(redis, plan, &mut w),
        Topology::Sentinel(setup) => rounds(plan, &mut w, |w, _| sentinel_failover(setup, w)),
        Topology::Cluster(setup) => rounds(plan, &mut w, |w, round| match plan.scenario {
            Scenario::Reshard => reshard(setup, plan.slots, round, w),
            _ => cluster_failover(setup, w),
        }),
    };
    w.sample();
    let timeline = Timeline {
        faults,
        rss_before,
        rss_after,
        rss_peak: w.peak,
    };
    (timeline, topology)
}

/// The faults, and the server's RSS before the first and after the last.
type Faults = (Vec<Fault>, Option<(Duration, u64)>, Option<(Duration, u64)>);

/// Standalone: Redis killed and restarted twice, at fixed fractions of
/// the run (for 40 s: kill at 8 s, restart at 13 s, kill at 23 s, restart
/// at 28 s).
fn outages(redis: &mut RedisServer, plan: Plan, w: &mut Watch) -> Faults {
    let at = |f: f64| plan.duration.mul_f64(f);
    w.sleep_until(at(0.2) - Duration::from_millis(500));
    let rss_before = w.sample();
    let mut faults = Vec::new();
    for (kill_at, restart_at) in [(at(0.2), at(0.325)), (at(0.575), at(0.7))] {
        w.sleep_until(kill_at);
        let begun = w.now();
        redis.kill();
        w.sleep_until(restart_at);
        let restarting = w.now();
        redis.restart();
        let restored = w.now();
        let what = format!(
            "Redis killed, restarted {} later (the restart took {})",
            crate::ms(restarting - begun),
            crate::ms(restored - restarting)
        );
        faults.push(Fault::whole_at_once(begun, restored, what));
    }
    w.sleep_until(plan.duration - Duration::from_millis(500));
    let rss_after = w.sample();
    w.sleep_until(plan.duration);
    (faults, rss_before, rss_after)
}

/// `plan.rounds` faults made by `fault` (given the round), with load
/// before, between and after.
fn rounds(plan: Plan, w: &mut Watch, mut fault: impl FnMut(&Watch, usize) -> Fault) -> Faults {
    w.sleep(WARM_UP);
    let rss_before = w.sample();
    let mut faults = Vec::new();
    for round in 0..plan.rounds {
        faults.push(fault(w, round));
        w.sleep(SETTLE);
    }
    w.sleep(WARM_UP - Duration::from_millis(500));
    let rss_after = w.sample();
    w.sleep(Duration::from_millis(500));
    (faults, rss_before, rss_after)
}

/// Sentinel: the primary killed until the sentinels promote a replica,
/// then back as a replica.
fn sentinel_failover(setup: &mut SentinelSetup, w: &Watch) -> Fault {
    let begun = w.now();
    let old = setup.primary().port();
    let took = setup.fail_over();
    let new = setup.primary().port();
    let primaries = setup.primaries();
    let rejoined = setup.rejoin();
    Fault {
        begun,
        restored: begun + took,
        healed: w.now(),
        what: format!(
            "primary :{old} killed, :{new} promoted by the sentinels in {}{}; \
             :{old} back as a replica {} later",
            crate::ms(took),
            if primaries > 1 {
                format!(" ({primaries} servers answered as primary then)")
            } else {
                String::new()
            },
            crate::ms(rejoined)
        ),
    }
}

/// Cluster: a primary killed until its replica takes over, then back as
/// a replica.
fn cluster_failover(setup: &mut ClusterSetup, w: &Watch) -> Fault {
    let begun = w.now();
    let took = setup.fail_over("session:1.*");
    let restored = w.now();
    let rejoined = setup.rejoin();
    Fault {
        begun,
        restored,
        healed: w.now(),
        what: format!(
            "a primary killed, its replica took over in {}; \
             the killed node back as a replica {} later",
            crate::ms(took),
            crate::ms(rejoined)
        ),
    }
}

/// Cluster: `slots` hash slots moved from one primary to the next.
fn reshard(setup: &ClusterSetup, slots: u32, round: usize, w: &Watch) -> Fault {
    let begun = w.now();
    let took = setup.reshard(round, slots);
    let what = format!("{slots} slots moved in {}", crate::ms(took));
    Fault::whole_at_once(begun, w.now(), what)
}
