//! Simulated steal: CPU taken from a benchmark in bursts, the way other guests of a
//! shared host take it, so that a live pipeline's latency under such load can be
//! measured on demand instead of whenever the host happens to be busy.
//!
//! On this project's machines a live run's p99 follows the host's steal (2–25%,
//! changing within minutes; `clickstream_bench`, sessions 9–10), which made a
//! change's effect on latency under load impossible to tell from the host's mood.
//! [`Interference`] runs one thread per CPU, pinned to it and, where the process may
//! (root or `CAP_SYS_NICE`), at real-time priority (`SCHED_FIFO`): during a burst
//! the CPU runs nothing else, as a descheduled virtual CPU does. Bursts and the
//! gaps between them are exponentially distributed (mean burst given, gaps chosen
//! so that the bursts take the requested share), from a fixed seed per CPU, so
//! runs see the same pattern. Unlike real steal, the kernel may move the
//! benchmark's threads off a CPU in a burst to the other; at normal priority (no
//! privilege) a burst only competes for its CPU. Either way the share taken is
//! measured and reported ([`Interference::taken`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kappa::workload::SplitMix64;

/// Bursts of CPU taken from every CPU of the machine until dropped.
pub struct Interference {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Nanoseconds spent in bursts, over all CPUs.
    busy_nanos: Arc<AtomicU64>,
    /// Whether every thread got real-time priority.
    realtime: Arc<AtomicBool>,
    started: Instant,
}

impl Interference {
    /// Takes about `share` (0–1) of each CPU, in bursts of `mean_burst` on average.
    ///
    /// # Panics
    /// When `share` is not within (0, 1) or a thread cannot be spawned.
    pub fn start(share: f64, mean_burst: Duration) -> Interference {
        assert!(share > 0.0 && share < 1.0, "a share of the CPU, in (0, 1)");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let busy_nanos = Arc::new(AtomicU64::new(0));
        let realtime = Arc::new(AtomicBool::new(true));
        let threads = (0..cpus)
            .map(|cpu| {
                let (stop, busy_nanos, realtime) =
                    (stop.clone(), busy_nanos.clone(), realtime.clone());
                std::thread::Builder::new()
                    .name(format!("interference-{cpu}"))
                    .spawn(move || {
                        if !pin_realtime(cpu) {
                            realtime.store(false, Ordering::Relaxed);
                        }
                        let mut bursts = Bursts::new(cpu as u64, share, mean_burst);
                        while !stop.load(Ordering::Relaxed) {
                            let (gap, burst) = bursts.next();
                            std::thread::sleep(gap);
                            let began = Instant::now();
                            while began.elapsed() < burst && !stop.load(Ordering::Relaxed) {
                                std::hint::spin_loop();
                            }
                            let spun = began.elapsed().as_nanos() as u64;
                            busy_nanos.fetch_add(spun, Ordering::Relaxed);
                        }
                    })
                    .expect("spawn an interference thread")
            })
            .collect();
        Interference {
            stop,
            threads,
            busy_nanos,
            realtime,
            started: Instant::now(),
        }
    }

    /// The share (0–1) of the machine's CPU time taken so far.
    pub fn taken(&self) -> f64 {
        let capacity = self.started.elapsed().as_nanos() as f64 * self.threads.len() as f64;
        self.busy_nanos.load(Ordering::Relaxed) as f64 / capacity.max(1.0)
    }

    /// Whether the bursts run at real-time priority (the CPU runs nothing else).
    pub fn is_realtime(&self) -> bool {
        self.realtime.load(Ordering::Relaxed)
    }
}

impl Drop for Interference {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Pins the calling thread to `cpu` and raises it to `SCHED_FIFO`; false if either
/// was refused (the thread then runs where and as the kernel likes).
#[allow(unsafe_code)]
fn pin_realtime(cpu: usize) -> bool {
    // SAFETY: plain system calls on the calling thread (pid 0) with initialized
    // arguments; a failure is reported by the return value.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let pinned = libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) == 0;
        let param = libc::sched_param { sched_priority: 50 };
        let raised = libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0;
        pinned && raised
    }
}

/// The (gap, burst) sequence of one CPU: exponential bursts of mean `mean_burst`,
/// exponential gaps of mean `mean_burst × (1 − share) / share`.
struct Bursts {
    rng: SplitMix64,
    mean_burst: f64,
    mean_gap: f64,
}

impl Bursts {
    fn new(seed: u64, share: f64, mean_burst: Duration) -> Bursts {
        let mean_burst = mean_burst.as_secs_f64();
        Bursts {
            rng: SplitMix64::new(seed),
            mean_burst,
            mean_gap: mean_burst * (1.0 - share) / share,
        }
    }

    fn next(&mut self) -> (Duration, Duration) {
        let gap = self.exponential(self.mean_gap);
        let burst = self.exponential(self.mean_burst);
        (Duration::from_secs_f64(gap), Duration::from_secs_f64(burst))
    }

    /// An exponentially distributed value of mean `mean`.
    fn exponential(&mut self, mean: f64) -> f64 {
        // A uniform in (0, 1], whose logarithm is finite.
        let uniform = 1.0 - self.rng.next_f64();
        -uniform.ln() * mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_take_the_requested_share_on_average() {
        let mut bursts = Bursts::new(3, 0.1, Duration::from_millis(10));
        let (mut gaps, mut busy) = (0.0, 0.0);
        for _ in 0..100_000 {
            let (gap, burst) = bursts.next();
            gaps += gap.as_secs_f64();
            busy += burst.as_secs_f64();
        }
        let share = busy / (gaps + busy);
        assert!((share - 0.1).abs() < 0.005, "share {share}");
        assert!((busy / 100_000.0 - 0.010).abs() < 0.0005);
    }

    #[test]
    fn interference_takes_cpu_while_it_runs_and_stops_on_drop() {
        let interference = Interference::start(0.3, Duration::from_millis(2));
        std::thread::sleep(Duration::from_millis(300));
        let taken = interference.taken();
        drop(interference);
        // Loose bounds: the test machine is shared, and sleeps overshoot.
        assert!(taken > 0.05 && taken < 0.6, "taken {taken}");
    }
}
