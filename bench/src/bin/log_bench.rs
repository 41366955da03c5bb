//! Log benchmark: what the embedded log costs over plain buffered file I/O.
//!
//! It isolates the log's own overhead — framing, CRC32C, the index, locking, segment
//! rolls, decoding into records — by measuring, in the same run and on the same disk, a
//! baseline that writes (or reads) the same payload bytes with a `BufWriter`/`BufReader`
//! over one `std::fs::File` and the same fsync cadence. Cases:
//!
//! - append 100 B and 1 KiB records in batches of 1,000, fsync per batch
//!   (baseline: `sync_data` after every 1,000 records);
//! - the same with the interval policy (fsync every 100 ms in the background; baseline:
//!   no fsync until the end), both ending with a flush;
//! - sequential read from offset 0 of what was written, page cache warm for both, with
//!   `Log::read_batch` (the ratio that counts) and with `Log::read` (one `Record` each).
//!
//! Each line prints the log's throughput, the baseline's, and their ratio (goal:
//! append ≥ 0.5, read ≥ 0.7). Run with:
//!
//! ```text
//! cargo run --release -p kappa-bench --bin log_bench            # KAPPA_BENCH_DIR=... to pick the disk
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use kappa_bench::{payloads, timed, Scratch, Throughput};
use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions, Log, NewRecord};

const BATCH: usize = 1000;
/// Limits of each read.
const READ_RECORDS: usize = 10_000;
const READ_BYTES: usize = 4 << 20;

struct Case {
    size: usize,
    records: usize,
    interval: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cases = [
        Case {
            size: 100,
            records: 500_000,
            interval: false,
        },
        Case {
            size: 1024,
            records: 150_000,
            interval: false,
        },
        Case {
            size: 100,
            records: 2_000_000,
            interval: true,
        },
        Case {
            size: 1024,
            records: 500_000,
            interval: true,
        },
    ];
    println!(
        "{:<34} {:>29}   {:>29}   ratio",
        "case", "kappa log", "plain std::fs"
    );
    for case in &cases {
        run_case(case)?;
    }
    Ok(())
}

fn run_case(case: &Case) -> Result<(), Box<dyn std::error::Error>> {
    let scratch = Scratch::new("log")?;
    let data = payloads(case.records, case.size);
    let bytes = case.records * case.size;
    let batches: Vec<Vec<NewRecord>> = data
        .chunks(BATCH)
        .map(|c| c.iter().map(|p| NewRecord::new(p.clone(), 0)).collect())
        .collect();
    let policy = if case.interval {
        "interval 100ms"
    } else {
        "fsync/1000"
    };
    let durability = if case.interval {
        Durability::Interval(Duration::from_millis(100))
    } else {
        Durability::PerBatch
    };

    // Append through the log.
    let log = EmbeddedLog::open(
        scratch.0.join("log"),
        EmbeddedOptions {
            durability,
            ..EmbeddedOptions::default()
        },
    )?;
    log.create_topic("bench", 1)?;
    let (result, log_append) = timed(|| -> kappa_log::Result<()> {
        for batch in &batches {
            log.append("bench", 0, batch)?;
        }
        log.flush()
    });
    result?;

    // The same bytes through a BufWriter, same fsync cadence.
    let raw_path = scratch.0.join("raw.bin");
    let (result, raw_append) = timed(|| raw_write(&raw_path, &data, !case.interval));
    result?;

    let name = format!("append {:>4} B, {policy}", case.size);
    report(
        &name,
        Throughput::new(case.records, bytes, log_append),
        Throughput::new(case.records, bytes, raw_append),
    );

    // Sequential read from offset 0, page cache warm for both; best of three. Batches
    // are what a replaying reader uses; `read` (a `Record` per record) is shown beside.
    let batch_read = best_of(3, || read_batches(&log), bytes)?;
    let record_read = best_of(3, || read_records(&log), bytes)?;
    let raw_read = best_of(3, || raw_read(&raw_path), bytes)?;
    let baseline = Throughput::new(case.records, bytes, raw_read);
    let name = format!("read   {:>4} B from offset 0", case.size);
    report(
        &name,
        Throughput::new(case.records, bytes, batch_read),
        baseline,
    );
    report(
        "  (Log::read, Vec<Record>)",
        Throughput::new(case.records, bytes, record_read),
        baseline,
    );
    // A per-record baseline: the same payloads as lines, split by a BufReader.
    let lines_path = scratch.0.join("raw.jsonl");
    raw_write_lines(&lines_path, &data)?;
    let lines_read = best_of(3, || raw_read_lines(&lines_path), bytes)?;
    let name = "  (vs a JSON-lines file, per line)";
    report(
        name,
        Throughput::new(case.records, bytes, batch_read),
        Throughput::new(case.records, bytes, lines_read),
    );
    Ok(())
}

/// Reads the partition from offset 0 with [`Log::read_batch`]; returns the payload bytes.
fn read_batches(log: &EmbeddedLog) -> kappa_log::Result<usize> {
    let (mut offset, mut seen) = (0u64, 0usize);
    loop {
        let batch = log.read_batch("bench", 0, offset, READ_RECORDS, READ_BYTES)?;
        if batch.is_empty() {
            return Ok(seen);
        }
        offset = batch.next_offset();
        seen += batch.iter().map(|r| r.payload.len()).sum::<usize>();
    }
}

/// Reads the partition from offset 0 with [`Log::read`]; returns the payload bytes.
fn read_records(log: &EmbeddedLog) -> kappa_log::Result<usize> {
    let (mut offset, mut seen) = (0u64, 0usize);
    loop {
        let records = log.read("bench", 0, offset, READ_RECORDS, READ_BYTES)?;
        let Some(last) = records.last() else {
            return Ok(seen);
        };
        offset = last.offset + 1;
        seen += records.iter().map(|r| r.payload.len()).sum::<usize>();
    }
}

fn raw_write(path: &Path, data: &[Vec<u8>], sync_every_batch: bool) -> std::io::Result<()> {
    let file = File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 16, &file);
    for (i, p) in data.iter().enumerate() {
        out.write_all(p)?;
        if sync_every_batch && (i + 1) % BATCH == 0 {
            out.flush()?;
            file.sync_data()?;
        }
    }
    out.flush()?;
    file.sync_data()
}

/// Runs `f` `n` times, checks it returns `expect` bytes, and returns the fastest time.
fn best_of<E>(
    n: usize,
    mut f: impl FnMut() -> Result<usize, E>,
    expect: usize,
) -> Result<Duration, E> {
    let mut best = Duration::MAX;
    for _ in 0..n {
        let (got, took) = timed(&mut f);
        assert_eq!(got?, expect, "read back every byte");
        best = best.min(took);
    }
    Ok(best)
}

fn raw_write_lines(path: &Path, data: &[Vec<u8>]) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, File::create(path)?);
    for p in data {
        out.write_all(p)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads newline-separated records one at a time into a fresh `Vec` each, as a plain
/// reader of a JSON-lines file would; returns the payload bytes (newlines excluded).
fn raw_read_lines(path: &Path) -> std::io::Result<usize> {
    let mut input = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(total);
        }
        total += n - 1;
    }
}

fn raw_read(path: &Path) -> std::io::Result<usize> {
    let mut input = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

fn report(name: &str, log: Throughput, raw: Throughput) {
    let ratio = log.records_per_sec / raw.records_per_sec;
    println!("{name:<34} {log}   {raw}   {ratio:.2}");
}
