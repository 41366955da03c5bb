//! The clickstream harness's shared parts: loading the workload into a log, the
//! answers both engines must agree on, and per-process resource figures.
//!
//! Answers are a cheap fingerprint of the four views of `pipelines/clickstream.sql`
//! (row counts and sums of every aggregate column, plus the whole `top_pages`), so
//! the harness can check kappa against the baseline without shipping whole views
//! between processes.

use std::path::Path;

use kappa_dataflow::store::StoreState;
use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions, Log, LogError, NewRecord};
use kappa_sql::Value;
use serde::{Deserialize, Serialize};

/// The topic the clickstream pipeline reads.
pub const TOPIC: &str = "clicks";
/// Partitions of the topic: enough for two workers to read in parallel.
pub const PARTITIONS: u32 = 4;

/// A fingerprint of the four clickstream views.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// Rows of `page_minute_counts`.
    pub minute_rows: u64,
    /// Sum of its `views`: every admitted event once.
    pub minute_views: i64,
    /// Rows of `page_distinct_users`.
    pub page_rows: u64,
    /// Sum of its `users`: distinct `(page, user)` pairs.
    pub page_users: i64,
    /// Rows of `user_revenue`.
    pub user_rows: u64,
    /// Sum of its `purchases`.
    pub purchases: i64,
    /// Sum of its `revenue`, each rounded to cents first.
    pub revenue_cents: i64,
    /// `top_pages` in rank order: `(page, events)`.
    pub top_pages: Vec<(String, i64)>,
}

/// A revenue value in whole cents, the unit in which [`Answers`] sums it.
pub fn cents(revenue: f64) -> i64 {
    (revenue * 100.0).round() as i64
}

impl Answers {
    /// The fingerprint of a kappa store holding the clickstream views.
    pub fn from_store(state: &StoreState) -> Answers {
        let view = |name: &str| {
            state
                .view(name)
                .unwrap_or_else(|| panic!("the clickstream pipeline has a view `{name}`"))
        };
        let int = |v: &Value| match v {
            Value::Int(i) => *i,
            other => panic!("expected an integer, got {other:?}"),
        };
        let mut answers = Answers::default();
        for row in view("page_minute_counts").iter_rows() {
            answers.minute_rows += 1;
            answers.minute_views += int(&row[2]);
        }
        for row in view("page_distinct_users").iter_rows() {
            answers.page_rows += 1;
            answers.page_users += int(&row[1]);
        }
        for row in view("user_revenue").iter_rows() {
            answers.user_rows += 1;
            answers.purchases += int(&row[2]);
            if let Value::Float(revenue) = &row[1] {
                answers.revenue_cents += cents(revenue.get());
            }
        }
        let mut top: Vec<(String, i64)> = view("top_pages")
            .iter_rows()
            .map(|row| (row[0].to_string(), int(&row[1])))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        answers.top_pages = top;
        answers
    }
}

/// Creates an embedded log in `dir` holding `events` generated clickstream events
/// (`kappa::workload::clicks(events, seed)`) in topic [`TOPIC`], keyed by user as
/// `kappa demo` does. Appends use the interval fsync policy: loading is not measured.
pub fn load_log(dir: &Path, events: usize, seed: u64) -> Result<(), LogError> {
    load_topic(&EmbeddedLog::open(dir, log_options())?, TOPIC, events, seed)
}

/// Creates `topic` with [`PARTITIONS`] partitions in any log and appends `events`
/// generated clickstream events to it, keyed by user, in batches of 10,000.
pub fn load_topic(log: &dyn Log, topic: &str, events: usize, seed: u64) -> Result<(), LogError> {
    log.create_topic(topic, PARTITIONS)?;
    let mut batch = Vec::with_capacity(10_000);
    for line in kappa::workload::clicks(events, seed) {
        batch.push(record(line));
        if batch.len() == batch.capacity() {
            log.append_routed(topic, &batch)?;
            batch.clear();
        }
    }
    log.append_routed(topic, &batch)?;
    log.flush()
}

/// One generated event as a log record keyed by its user.
pub fn record(line: String) -> NewRecord {
    let user = line
        .split(r#""user":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    NewRecord::with_key(user, line.into_bytes(), 0)
}

/// The log options of every harness case: fsync in the background, so that appends
/// in the latency case cost a write, not a disk flush.
pub fn log_options() -> EmbeddedOptions {
    EmbeddedOptions {
        durability: Durability::Interval(std::time::Duration::from_millis(100)),
        ..EmbeddedOptions::default()
    }
}

/// User plus system CPU seconds this process has used so far (`getrusage`).
#[allow(unsafe_code)]
pub fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes a `rusage` into the pointer it is given, which points
    // at one zero-initialised `rusage` owned here.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The machine's CPU time as `/proc/stat` counts it, to tell how much of it other
/// guests of the host took (steal) while a case ran: on a shared VM a live run's
/// tail latency follows the steal as much as the code.
#[derive(Clone, Copy, Debug)]
pub struct MachineTicks {
    steal: u64,
    total: u64,
}

impl MachineTicks {
    /// The counters now, where `/proc/stat` has them.
    pub fn now() -> Option<MachineTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let steal = *ticks.get(7)?;
        Some(MachineTicks {
            steal,
            total: ticks.iter().take(8).sum(),
        })
    }

    /// The share (0–1) of the machine's CPU time stolen since `self`.
    pub fn steal_since(&self) -> Option<f64> {
        let now = MachineTicks::now()?;
        let total = now.total.checked_sub(self.total).filter(|t| *t > 0)?;
        Some(now.steal.saturating_sub(self.steal) as f64 / total as f64)
    }
}

/// This process's peak resident set size in bytes (`VmHWM` of `/proc/self/status`),
/// or 0 where that is not available.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kb| kb * 1024)
}

/// Each partition of [`TOPIC`]'s next offset reflected in `store` (0 where none yet).
pub fn visible_offsets(store: &kappa_dataflow::ViewStore) -> Vec<u64> {
    store.read(|s| {
        (0..PARTITIONS)
            .map(|p| {
                s.offsets
                    .get(&(TOPIC.to_string(), p))
                    .map_or(0, |o| o.next_offset)
            })
            .collect()
    })
}

/// Each partition of [`TOPIC`]'s end offset in `log`.
pub fn end_offsets(log: &dyn Log) -> Result<Vec<u64>, LogError> {
    (0..PARTITIONS).map(|p| log.end_offset(TOPIC, p)).collect()
}

/// Whether offsets `seen` reach `ends` in every partition.
pub fn covers(seen: &[u64], ends: &[u64]) -> bool {
    seen.iter().zip(ends).all(|(s, e)| s >= e)
}

/// The `p` quantile (0..=1) of sorted samples, NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steal_share_is_read_from_proc_stat_as_a_fraction() {
        let Some(start) = MachineTicks::now() else {
            // Not Linux: nothing to read, and the harness prints "unknown".
            return;
        };
        // Burn a little CPU so that the machine's counters move.
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        while std::time::Instant::now() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let steal = start.steal_since().expect("counters moved");
        assert!((0.0..=1.0).contains(&steal), "{steal}");
    }
}
