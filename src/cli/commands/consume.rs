//! `kappa consume`: print a topic's payloads, one per line, optionally following it.
//!
//! The log is opened read-only, so consuming works beside a running producer. Without
//! `--partition` every partition is read: without `--follow` one after the other up to
//! the end offsets seen at start; with `--follow` round-robin, then waiting (without
//! polling in this thread) until any partition grows.

use std::io::{BufWriter, ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use kappa_log::Log;

use super::backend::{open_log, Access};
use crate::Context;

/// Arguments of `kappa consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Start at the first record of each partition (the default).
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start at this offset in each partition read.
    #[arg(long)]
    pub offset: Option<u64>,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Keep waiting for new records after reaching the end.
    #[arg(long)]
    pub follow: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub max: Option<u64>,
}

const MAX_RECORDS: usize = 10_000;
const MAX_BYTES: usize = 4 << 20;
/// How long a record below the end offset may take to become readable.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `kappa consume`.
pub fn run(ctx: &Context, args: ConsumeArgs) -> anyhow::Result<()> {
    let log = open_log(ctx, Access::Read)?;
    let count = log.partition_count(&args.topic)?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p >= count => bail!(
            "topic '{}' has no partition {p} (it has {count})",
            args.topic
        ),
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match consume(&*log, &args, &partitions, &mut out).and_then(|()| Ok(out.flush()?)) {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
}

fn consume(
    log: &dyn Log,
    args: &ConsumeArgs,
    partitions: &[u32],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let start = args.offset.unwrap_or(0);
    let mut positions: Vec<u64> = vec![start; partitions.len()];
    let mut left = args.max.unwrap_or(u64::MAX);
    if !args.follow {
        for (i, &p) in partitions.iter().enumerate() {
            let end = log.end_offset(&args.topic, p)?;
            while positions[i] < end && left > 0 {
                let n = print_available(log, &args.topic, p, &mut positions[i], &mut left, out)?;
                // A remote log (Fluvio) serves records once its consumer has fetched them.
                if n == 0 && !log.wait_for(&args.topic, p, positions[i], FETCH_TIMEOUT)? {
                    bail!(
                        "{}/{p}: no record at offset {} within {FETCH_TIMEOUT:?}",
                        args.topic,
                        positions[i]
                    );
                }
            }
        }
        return Ok(());
    }
    // Following: one outstanding wake-up registration per partition at a time.
    let (tx, rx) = mpsc::channel::<()>();
    let armed: Vec<Arc<AtomicBool>> = partitions
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    while left > 0 {
        let mut printed = 0;
        for (i, &p) in partitions.iter().enumerate() {
            let step = log
                .end_offset(&args.topic, p)
                .map_err(anyhow::Error::from)
                .and_then(|end| match left > 0 && positions[i] <= end {
                    true => print_available(log, &args.topic, p, &mut positions[i], &mut left, out),
                    false => Ok(0),
                });
            match step {
                Ok(n) => printed += n,
                // A remote log's cluster or partition may be down for a while: keep following.
                Err(e) if is_transient(&e) => {
                    eprintln!("kappa: {e:#}; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
        if printed > 0 || left == 0 {
            continue;
        }
        out.flush()?;
        for (i, &p) in partitions.iter().enumerate() {
            if !armed[i].swap(true, Ordering::SeqCst) {
                let (tx, flag) = (tx.clone(), armed[i].clone());
                let wake = Box::new(move || {
                    flag.store(false, Ordering::SeqCst);
                    let _ = tx.send(());
                });
                log.notify_when_beyond(&args.topic, p, positions[i], wake)?;
            }
        }
        // The timeout only bounds how long a missed wake-up could delay us.
        let _ = rx.recv_timeout(Duration::from_secs(1));
    }
    Ok(())
}

fn is_transient(e: &anyhow::Error) -> bool {
    e.downcast_ref::<kappa_log::LogError>()
        .is_some_and(kappa_log::LogError::is_transient)
}

/// Prints what one read returns from `position`, advancing it; returns how many.
fn print_available(
    log: &dyn Log,
    topic: &str,
    partition: u32,
    position: &mut u64,
    left: &mut u64,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let max = (*left).min(MAX_RECORDS as u64) as usize;
    let records = log.read(topic, partition, *position, max, MAX_BYTES)?;
    for r in &records {
        out.write_all(&r.payload)?;
        out.write_all(b"\n")?;
        *position = r.offset + 1;
    }
    *left -= records.len() as u64;
    Ok(records.len() as u64)
}
