//! Shared helpers for kappa's benchmark harnesses: workload generation, timing and
//! resource measurement. Each harness is a binary under `src/bin/` that prints its
//! figures beside a plain single-threaded baseline measured in the same run.
//!
//! - [`baseline`]: the clickstream views computed by a plain single-threaded program;
//! - [`clickstream`]: what the clickstream harness compares (answers) and measures
//!   (CPU time, peak memory);
//! - [`interference`]: CPU taken in bursts, to measure latency under a busy host;
//! - [`latency`]: append → visible latency of a live pipeline;
//! - [`queries`]: reads of a finished pipeline's views, timed as the API makes them;
//! - [`spread`]: a figure repeated over rounds, as median and range.

pub mod baseline;
pub mod clickstream;
pub mod interference;
pub mod latency;
pub mod queries;
pub mod spread;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The value after `--name` among a harness's command-line `args`, if given.
pub fn option_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// `count` JSON-ish payloads of exactly `size` bytes each, distinct and deterministic.
pub fn payloads(count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut p = format!("{{\"i\":{i},\"pad\":\"").into_bytes();
            let tail = b"\"}";
            let fill = size.saturating_sub(p.len() + tail.len());
            p.extend(std::iter::repeat_n(b'x', fill));
            p.extend_from_slice(tail);
            p.truncate(size.max(1));
            p
        })
        .collect()
}

/// A scratch directory on the real disk (under `KAPPA_BENCH_DIR`, default the system
/// temp dir), removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh, empty directory named after `name` and the process id.
    pub fn new(name: &str) -> std::io::Result<Self> {
        let base =
            std::env::var_os("KAPPA_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = base.join(format!("kappa-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` once and returns its result with the wall-clock time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Records per second and megabytes (10^6 bytes) per second of payload.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Records per second.
    pub records_per_sec: f64,
    /// Payload megabytes per second.
    pub mb_per_sec: f64,
}

impl Throughput {
    /// The throughput of moving `records` records of `bytes` total payload in `elapsed`.
    pub fn new(records: usize, bytes: usize, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Throughput {
            records_per_sec: records as f64 / secs,
            mb_per_sec: bytes as f64 / secs / 1e6,
        }
    }
}

impl std::fmt::Display for Throughput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>10.0} rec/s {:>8.1} MB/s",
            self.records_per_sec, self.mb_per_sec
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_asked_size() {
        for size in [1, 10, 100, 1024] {
            let p = payloads(50, size);
            assert!(p.iter().all(|x| x.len() == size), "size {size}");
        }
        assert_ne!(payloads(2, 100)[0], payloads(2, 100)[1]);
        let t = Throughput::new(1000, 1_000_000, Duration::from_secs(2));
        assert_eq!((t.records_per_sec, t.mb_per_sec), (500.0, 0.5));
    }

    #[test]
    fn an_option_value_is_the_argument_after_its_name() {
        let args: Vec<String> = ["--rows", "10", "--quick", "--runs"]
            .map(String::from)
            .to_vec();
        assert_eq!(option_value(&args, "--rows"), Some("10"));
        assert_eq!(option_value(&args, "--runs"), None, "no value after it");
        assert_eq!(option_value(&args, "--secs"), None, "not given");
    }
}
