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

/// CPU time of each thread of this process as `/proc/self/task` counts it, to tell
/// which thread a live run's CPU goes to (workers, the store's applier, the
/// harness's producer and observer).
pub struct ThreadTicks {
    /// `(thread id, name)` → user + system clock ticks.
    ticks: std::collections::BTreeMap<(u64, String), u64>,
    at: std::time::Instant,
}

impl ThreadTicks {
    /// Every thread's ticks now (none where `/proc` is missing).
    pub fn now() -> ThreadTicks {
        let mut ticks = std::collections::BTreeMap::new();
        for task in std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(id) = task.file_name().to_string_lossy().parse::<u64>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ...`: the name may hold spaces, so split after ')'.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
            let (Some(user), Some(system)) = (fields.get(11), fields.get(12)) else {
                continue;
            };
            let name = stat[open + 1..close].to_string();
            let used = user.parse::<u64>().unwrap_or(0) + system.parse::<u64>().unwrap_or(0);
            ticks.insert((id, name), used);
        }
        ThreadTicks {
            ticks,
            at: std::time::Instant::now(),
        }
    }

    /// Cores each thread name used since `self` (threads of one name summed),
    /// busiest first.
    pub fn cores_since(&self) -> Vec<(String, f64)> {
        let now = ThreadTicks::now();
        let seconds = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        // SAFETY: sysconf reads a constant of the system.
        #[allow(unsafe_code)]
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut by_name: std::collections::BTreeMap<String, f64> = Default::default();
        for ((id, name), used) in &now.ticks {
            let before = self.ticks.get(&(*id, name.clone())).copied().unwrap_or(0);
            let cores = used.saturating_sub(before) as f64 / per_second / seconds;
            *by_name.entry(name.clone()).or_default() += cores;
        }
        let mut cores: Vec<(String, f64)> = by_name.into_iter().collect();
        cores.sort_by(|a, b| b.1.total_cmp(&a.1));
        cores
    }
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
    fn thread_ticks_see_a_running_thread_by_its_name() {
        let running = ThreadTicks::now();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let spinner = std::thread::Builder::new()
            .name("ticks-spin".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let cores = running.cores_since();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().unwrap();
        let spin = cores
            .iter()
            .find(|(name, _)| name == "ticks-spin")
            .map(|c| c.1);
        // Loose: the machine is shared, but a spinning thread gets a good share.
        assert!(spin.is_some_and(|c| c > 0.2), "{cores:?}");
    }

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
