//! What the run measured, printed, and the assertions on it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::faults::{Fault, Scenario, Timeline};
use crate::load::{Losses, Outcome, Route, Sample};
use crate::{ms, secs_str, CLIENT_TIMEOUT, RECOVERY_BOUND};

/// RSS tolerance: after ≤ max(before × RSS_FACTOR, before + RSS_SLACK_KIB).
/// Both points are taken under the same load, so the allowance is for what
/// the allocator keeps after the burst of failures and reconnects (freed but
/// not returned to the OS) — measured at a few hundred KiB on a ~6 MiB
/// bench-server; 8 MiB is far above that, yet a leak of ~60 bytes per
/// request (>150k requests per run) or ~15 KiB per failed request (~600
/// per run) goes over it.
const RSS_FACTOR: f64 = 1.5;
const RSS_SLACK_KIB: u64 = 8 * 1024;

/// How the service came back after one fault.
pub(crate) struct Recovery {
    /// Requests answered 503 overlapping this fault's window.
    pub(crate) unavailable: usize,
    /// Median and maximum latency of those 503s.
    unavailable_p50: Duration,
    unavailable_max: Duration,
    /// Serving again → end of the first 200, per session route.
    first_ok: Vec<(Route, Option<Duration>)>,
    /// Serving again → end of the last 503 (none: no 503 after it).
    last_503: Option<Duration>,
    /// Serving again → whole again (the killed node back as a replica).
    healing: Duration,
}

impl Recovery {
    /// The recovery time: Redis serving again → every session route has
    /// answered 200 and none answers 503 any more (None if a route never
    /// answered 200).
    pub(crate) fn time(&self) -> Option<Duration> {
        let first_ok = self
            .first_ok
            .iter()
            .map(|(_, d)| *d)
            .try_fold(Duration::ZERO, |acc, d| Some(acc.max(d?)))?;
        Some(first_ok.max(self.last_503.unwrap_or_default()))
    }

    /// The recovery time after the topology was whole again (what the
    /// bound applies to: with replica acknowledgements a shard without its
    /// replica refuses writes until the replica is back).
    pub(crate) fn after_healing(&self) -> Option<Duration> {
        self.time().map(|t| t.saturating_sub(self.healing))
    }

    fn per_route(&self) -> String {
        self.first_ok
            .iter()
            .map(|(r, d)| {
                let d = d.map_or("never".to_owned(), |d| format!("+{}", ms(d)));
                format!("{} {d}", r.path())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the read-back after the load found.
pub(crate) struct Durability {
    /// Whether writes waited for replica acknowledgements.
    pub(crate) replica_acks: u32,
    /// Sessions read back.
    pub(crate) sessions: usize,
    /// Losses the load saw while running, and those the read-back found.
    pub(crate) during: Losses,
    pub(crate) after: Losses,
    /// Sessions on which the test-bed under test and a fresh one without
    /// the client cache disagree.
    pub(crate) stale: usize,
}

impl Durability {
    fn writes_lost(&self) -> u64 {
        self.during.writes + self.after.writes
    }

    fn sessions_lost(&self) -> u64 {
        self.during.sessions + self.after.sessions
    }
}

pub(crate) struct Figures {
    duration: Duration,
    total: usize,
    /// (route, status) → count.
    statuses: BTreeMap<(Route, u16), usize>,
    pub(crate) timeouts: usize,
    pub(crate) errors: Vec<Sample>,
    p50: Duration,
    p99: Duration,
    max: Duration,
    max_route: Option<Route>,
    pub(crate) recoveries: Vec<Recovery>,
    /// /baseline requests in fault windows: all, and those not answered 200.
    baseline_in_faults: (usize, usize),
    /// 503s outside every fault window, or on /baseline.
    pub(crate) stray_503: Vec<Sample>,
}

impl Figures {
    pub(crate) fn compute(samples: &[Sample], timeline: &Timeline, duration: Duration) -> Figures {
        let mut statuses = BTreeMap::new();
        let mut timeouts = 0;
        let mut errors = Vec::new();
        for s in samples {
            match &s.outcome {
                Outcome::Status(code) => *statuses.entry((s.route, *code)).or_insert(0) += 1,
                Outcome::Timeout => timeouts += 1,
                Outcome::Error(_) => errors.push(s.clone()),
            }
        }
        let mut latencies: Vec<Duration> = samples.iter().map(Sample::latency).collect();
        latencies.sort();
        let slowest = samples.iter().max_by_key(|s| s.latency());
        let windows: Vec<_> = timeline.faults.iter().map(window).collect();
        let in_windows = |s: &Sample| windows.iter().any(|w| overlaps(s, *w));
        Figures {
            duration,
            total: samples.len(),
            statuses,
            timeouts,
            errors,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            max: slowest.map(Sample::latency).unwrap_or_default(),
            max_route: slowest.map(|s| s.route),
            recoveries: recoveries(samples, &timeline.faults, duration),
            baseline_in_faults: baseline_in(samples, in_windows),
            stray_503: samples
                .iter()
                .filter(|s| s.status() == Some(503))
                .filter(|s| !s.route.uses_session() || !in_windows(s))
                .cloned()
                .collect(),
        }
    }

    pub(crate) fn count(&self, pred: impl Fn(Route, u16) -> bool) -> usize {
        self.statuses
            .iter()
            .filter(|((r, s), _)| pred(*r, *s))
            .map(|(_, n)| n)
            .sum()
    }

    fn per_route(&self, status: u16) -> String {
        Route::ALL
            .iter()
            .map(|r| {
                let n = self.statuses.get(&(*r, status)).copied().unwrap_or(0);
                format!("{} {n}", r.path())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn print(&self, timeline: &Timeline, durability: &Durability) {
        let secs = self.duration.as_secs_f64();
        println!(
            "requests           {} in {:.1} s ({:.0}/s)",
            self.total,
            secs,
            self.total as f64 / secs
        );
        println!(
            "  200              {} ({})",
            self.count(|_, s| s == 200),
            self.per_route(200)
        );
        println!(
            "  503              {} ({})",
            self.count(|_, s| s == 503),
            self.per_route(503)
        );
        let other: Vec<String> = self
            .statuses
            .iter()
            .filter(|((_, s), _)| *s != 200 && *s != 503)
            .map(|((r, s), n)| format!("{} {s}: {n}", r.path()))
            .collect();
        println!(
            "  other statuses   {} {}",
            self.count(|_, s| s != 200 && s != 503),
            if other.is_empty() {
                String::new()
            } else {
                format!("({})", other.join(", "))
            }
        );
        println!(
            "  client errors    {} (timeouts > {} s: {})",
            self.errors.len() + self.timeouts,
            CLIENT_TIMEOUT.as_secs(),
            self.timeouts
        );
        println!(
            "latency            p50 {}, p99 {}, max {} ({})",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.max_route.map_or("-", Route::path)
        );
        for (i, (f, r)) in timeline.faults.iter().zip(&self.recoveries).enumerate() {
            println!("fault {:<13}{}", i + 1, f.what);
            println!(
                "  when             from {}, serving again {}, whole again {}",
                secs_str(f.begun),
                secs_str(f.restored),
                secs_str(f.healed)
            );
            println!(
                "  503s             {} (latency p50 {}, max {})",
                r.unavailable,
                ms(r.unavailable_p50),
                ms(r.unavailable_max)
            );
            println!(
                "  recovery         {} (serving again -> every session route answered 200, \
                 no 503 after: {})",
                r.time().map_or("never".to_owned(), ms),
                r.per_route()
            );
            println!(
                "  last 503         {}",
                r.last_503
                    .map_or("before serving again".to_owned(), |d| format!(
                        "at +{}",
                        ms(d)
                    ))
            );
        }
        println!(
            "/baseline          {} requests during faults (incl. recovery bound), {} not 200",
            self.baseline_in_faults.0, self.baseline_in_faults.1
        );
        let d = durability;
        println!(
            "acknowledged       {} writes lost, {} sessions lost (seen during the load: {} / {}; \
             at the read-back of {} sessions: {} / {}), replica acks {}",
            d.writes_lost(),
            d.sessions_lost(),
            d.during.writes,
            d.during.sessions,
            d.sessions,
            d.after.writes,
            d.after.sessions,
            if d.replica_acks == 0 {
                "off".to_owned()
            } else {
                format!("{} (WAIT)", d.replica_acks)
            }
        );
        if timeline
            .faults
            .iter()
            .all(|f| f.what.starts_with("Redis killed"))
        {
            println!(
                "                   (this redis-server has no persistence: a restart empties it)"
            );
        }
        println!(
            "read-back          {} sessions differ between the server under test and a fresh one \
             without the client cache",
            d.stale
        );
        println!("RSS (VmRSS)        {}", rss_line(timeline));
    }
}

/// A fault's window for 503s: from its start to `RECOVERY_BOUND` after the
/// topology is whole again.
fn window(f: &Fault) -> (Duration, Duration) {
    (f.begun, f.healed + RECOVERY_BOUND)
}

fn overlaps(s: &Sample, (from, to): (Duration, Duration)) -> bool {
    s.end >= from && s.start <= to
}

fn baseline_in(samples: &[Sample], in_windows: impl Fn(&Sample) -> bool) -> (usize, usize) {
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.route == Route::Baseline && in_windows(s))
        .collect();
    let failed = during.iter().filter(|s| s.status() != Some(200)).count();
    (during.len(), failed)
}

fn recoveries(samples: &[Sample], faults: &[Fault], duration: Duration) -> Vec<Recovery> {
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut failed: Vec<Duration> = samples
                .iter()
                .filter(|s| s.status() == Some(503) && overlaps(s, window(f)))
                .map(Sample::latency)
                .collect();
            failed.sort();
            // Answered after it serves again and before the next fault (or the end).
            let until = faults.get(i + 1).map_or(duration * 2, |n| n.begun);
            let after = |s: &&Sample| s.end >= f.restored && s.end < until;
            Recovery {
                unavailable: failed.len(),
                unavailable_p50: percentile(&failed, 0.5),
                unavailable_max: failed.last().copied().unwrap_or_default(),
                first_ok: Route::ALL
                    .into_iter()
                    .filter(|r| r.uses_session())
                    .map(|r| {
                        let first = samples
                            .iter()
                            .filter(after)
                            .filter(|s| s.route == r && s.status() == Some(200))
                            .map(|s| s.end - f.restored)
                            .min();
                        (r, first)
                    })
                    .collect(),
                last_503: samples
                    .iter()
                    .filter(after)
                    .filter(|s| s.status() == Some(503))
                    .map(|s| s.end - f.restored)
                    .max(),
                healing: f.healed - f.restored,
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The RSS bound for a measurement before the faults, in KiB.
fn rss_limit(before: u64) -> u64 {
    ((before as f64 * RSS_FACTOR) as u64).max(before + RSS_SLACK_KIB)
}

fn rss_line(t: &Timeline) -> String {
    let at = |m: Option<(Duration, u64)>| {
        m.map_or("unknown".to_owned(), |(when, kib)| {
            format!("{kib} KiB (t={})", secs_str(when))
        })
    };
    let limit = t
        .rss_before
        .map_or("-".to_owned(), |(_, b)| format!("{} KiB", rss_limit(b)));
    format!(
        "before {}, after {}, peak {} KiB; limit {limit}",
        at(t.rss_before),
        at(t.rss_after),
        t.rss_peak
    )
}

/// Every failed assertion, as a sentence.
pub(crate) fn check(
    f: &Figures,
    t: &Timeline,
    d: &Durability,
    expected: (Scenario, usize),
    alive: bool,
    log: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    if !alive {
        failures.push("the server process is not alive at the end".to_owned());
    }
    if log.contains("panicked") {
        failures.push("the server's stderr contains \"panicked\"".to_owned());
    }
    if f.timeouts > 0 {
        failures.push(format!(
            "{} requests got no response within {} s",
            f.timeouts,
            CLIENT_TIMEOUT.as_secs()
        ));
    }
    if let Some(first) = f.errors.first() {
        failures.push(format!(
            "{} requests failed without a response (first: {} at {}: {})",
            f.errors.len(),
            first.route.path(),
            secs_str(first.start),
            first.outcome
        ));
    }
    let other = f.count(|_, s| s != 200 && s != 503);
    if other > 0 {
        failures.push(format!("{other} responses were neither 200 nor 503"));
    }
    if let Some(first) = f.stray_503.first() {
        failures.push(format!(
            "{} 503s outside a fault's window or on /baseline (first: {} {}..{})",
            f.stray_503.len(),
            first.route.path(),
            secs_str(first.start),
            secs_str(first.end)
        ));
    }
    let (scenario, rounds) = expected;
    if t.faults.len() != rounds {
        failures.push(format!("{} faults happened, not {rounds}", t.faults.len()));
    }
    for (i, r) in f.recoveries.iter().enumerate() {
        let n = i + 1;
        // A kill must show; moving slots ideally shows nothing.
        if r.unavailable == 0 && scenario != Scenario::Reshard {
            failures.push(format!(
                "fault {n} produced no 503: the kill had no visible effect"
            ));
        }
        match r.after_healing() {
            None => failures.push(format!(
                "fault {n}: a session route never answered 200 after Redis served again ({})",
                r.per_route()
            )),
            Some(d) if d >= RECOVERY_BOUND => failures.push(format!(
                "fault {n}: recovery took {} after the topology was whole (bound {} s)",
                ms(d),
                RECOVERY_BOUND.as_secs()
            )),
            Some(_) => {}
        }
    }
    if d.replica_acks > 0 && (d.writes_lost() > 0 || d.sessions_lost() > 0) {
        failures.push(format!(
            "with replica acknowledgements, {} acknowledged writes and {} sessions were lost",
            d.writes_lost(),
            d.sessions_lost()
        ));
    }
    if d.stale > 0 {
        failures.push(format!(
            "{} sessions read differently through the server under test than through a fresh \
             one: its client cache is stale",
            d.stale
        ));
    }
    match (t.rss_before, t.rss_after) {
        (Some((_, before)), Some((_, after))) if after > rss_limit(before) => {
            failures.push(format!(
                "RSS after the faults {after} KiB exceeds the limit {} KiB (before: {before} KiB)",
                rss_limit(before)
            ));
        }
        (Some(_), Some(_)) => {}
        _ => failures.push("the server's RSS could not be measured".to_owned()),
    }
    failures
}
