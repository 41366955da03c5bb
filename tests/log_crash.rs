//! Crash safety of the embedded log with the real binary: `kappa produce
//! --print-offsets` is fed from a pipe and killed with SIGKILL at random moments, many
//! times. After each kill the log is reopened (running recovery): every acknowledged
//! record is present and intact at its offset, offsets are contiguous, and every record
//! present is one that was sent, whole, in order.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kappa_log::{EmbeddedLog, EmbeddedOptions, Log};

/// A small deterministic generator (xorshift64*), seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn line(run: usize, i: u64, pad: usize) -> String {
    format!(
        "{{\"run\":{run},\"i\":{i},\"pad\":\"{}\"}}",
        "x".repeat(pad)
    )
}

/// Every record of every partition, checking offsets are contiguous from 0.
fn read_all(log: &dyn Log, partitions: u32) -> Vec<Vec<String>> {
    (0..partitions)
        .map(|p| {
            let mut out = Vec::new();
            loop {
                let records = log.read("c", p, out.len() as u64, 5000, 4 << 20).unwrap();
                if records.is_empty() {
                    break;
                }
                for r in records {
                    assert_eq!(r.offset, out.len() as u64, "offsets are contiguous");
                    out.push(String::from_utf8(r.payload.to_vec()).expect("intact UTF-8"));
                }
            }
            out
        })
        .collect()
}

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let partitions = 2;
    EmbeddedLog::open(data, EmbeddedOptions::default())
        .unwrap()
        .create_topic("c", partitions)
        .unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    // All acknowledged records so far: (partition, offset) -> payload.
    let mut acked: Vec<((u32, u64), String)> = Vec::new();
    let started = Instant::now();
    let mut runs = 0;
    while runs < 20 && started.elapsed() < Duration::from_secs(12) {
        runs += 1;
        let interval = rng.below(2) == 0;
        let pad = rng.below(200) as usize;
        let (sent, acks, stderr) = produce_and_kill(data, runs, pad, interval, rng.below(250) + 20);
        // Acks are printed in input order, so the k-th ack is the k-th line sent.
        assert!(
            acks.len() <= sent.lock().unwrap().len(),
            "run {runs}: stderr {stderr}"
        );
        let sent = sent.lock().unwrap();
        for (k, &(p, o)) in acks.iter().enumerate() {
            acked.push(((p, o), sent[k].clone()));
        }
        let log = EmbeddedLog::open(data, EmbeddedOptions::default()).unwrap();
        let all = read_all(&log, partitions);
        for ((p, o), payload) in &acked {
            assert_eq!(
                all[*p as usize].get(*o as usize),
                Some(payload),
                "run {runs}: acknowledged {p}/{o} lost"
            );
        }
        // Whatever else is there was sent whole, and in sending order per run.
        for records in &all {
            let mut last: Option<(u64, u64)> = None;
            for r in records {
                let v: serde_json::Value = serde_json::from_str(r).expect("a whole JSON record");
                let key = (v["run"].as_u64().unwrap(), v["i"].as_u64().unwrap());
                assert!(last.is_none_or(|l| l < key), "order within a partition");
                last = Some(key);
            }
        }
        println!(
            "run {runs}: interval={interval} sent {} acked {} total {:?}",
            sent.len(),
            acks.len(),
            all.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
    assert!(
        acked.len() > 100,
        "the test acknowledged too little to mean anything: {}",
        acked.len()
    );
}

/// What a killed producer run leaves: the lines sent (shared with the feeder thread),
/// the acknowledgements read, and its stderr.
type Killed = (Arc<Mutex<Vec<String>>>, Vec<(u32, u64)>, String);

/// Starts a producer, feeds it lines until killed after `kill_after_ms`; returns the lines
/// sent, the acknowledgements read, and its stderr.
fn produce_and_kill(
    data: &Path,
    run: usize,
    pad: usize,
    interval: bool,
    kill_after_ms: u64,
) -> Killed {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kappa"));
    cmd.env("KAPPA_DATA_DIR", data).args([
        "produce",
        "c",
        "--print-offsets",
        "--batch-size",
        "200",
    ]);
    if interval {
        cmd.args(["--fsync-interval-ms", "50"]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let feeder = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            loop {
                // Varying chunk sizes make varying batch sizes.
                let n = 1 + (i * 7919 % 97);
                let mut chunk = String::new();
                let mut lines = Vec::new();
                for _ in 0..n {
                    let l = line(run, i, pad);
                    chunk.push_str(&l);
                    chunk.push('\n');
                    lines.push(l);
                    i += 1;
                }
                // Record before writing: a line may be consumed as soon as it is written.
                sent.lock().unwrap().extend(lines);
                if stdin.write_all(chunk.as_bytes()).is_err() {
                    return;
                }
                if i.is_multiple_of(5) {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        })
    };
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|l| {
                let (p, o) = l.split_once(' ').unwrap();
                (p.parse().unwrap(), o.parse().unwrap())
            })
            .collect::<Vec<(u32, u64)>>()
    });
    std::thread::sleep(Duration::from_millis(kill_after_ms));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let acks = reader.join().unwrap();
    feeder.join().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
    (sent, acks, err)
}
