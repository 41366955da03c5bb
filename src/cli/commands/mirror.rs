//! `kappa topic mirror SRC --to fluvio|embedded`: copies a topic between the embedded
//! log and a Fluvio cluster, partition by partition, keeping partitions and offsets.
//!
//! The destination topic is created with the source's partition count if it does not
//! exist. Each partition is copied from the destination's end offset, so an interrupted
//! mirror resumes where it stopped and a repeated one copies only what is new; a
//! destination partition longer than its source is an error (it is not a mirror).

use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use kappa_log::{Durability, Log, LogError, NewRecord};

use super::backend::{open_backend, Access, LogBackend};
use crate::Context;

/// Arguments of `kappa topic mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The topic to copy.
    pub topic: String,
    /// The backend to copy into; the source is the other one.
    #[arg(long, value_enum)]
    pub to: LogBackend,
    /// The destination topic's name (default: the source's).
    #[arg(long = "as")]
    pub dest_topic: Option<String>,
    /// Records per read and append.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
}

/// Runs `kappa topic mirror`.
pub fn run(ctx: &Context, args: MirrorArgs) -> anyhow::Result<()> {
    let from = match args.to {
        LogBackend::Fluvio => LogBackend::Embedded,
        LogBackend::Embedded => LogBackend::Fluvio,
    };
    let source = open_backend(ctx, from, Access::Read)?;
    let dest = open_backend(ctx, args.to, Access::Write(Durability::PerBatch))?;
    let dest_topic = args.dest_topic.as_deref().unwrap_or(&args.topic);
    let started = Instant::now();
    let copied = mirror(&*source, &args.topic, &*dest, dest_topic, args.batch.max(1))?;
    eprintln!(
        "mirrored {copied} record(s) of {} ({from:?}) to {dest_topic} ({:?}) in {:.1?}",
        args.topic,
        args.to,
        started.elapsed()
    );
    Ok(())
}

/// Copies `topic` of `source` into `dest_topic` of `dest` from the destination's end
/// offsets up to the source's end offsets at the start; returns the records copied.
pub fn mirror(
    source: &dyn Log,
    topic: &str,
    dest: &dyn Log,
    dest_topic: &str,
    batch: usize,
) -> anyhow::Result<u64> {
    let partitions = source.partition_count(topic)?;
    match dest.create_topic(dest_topic, partitions) {
        Ok(()) | Err(LogError::TopicExists(_)) => {}
        Err(e) => return Err(e).context(format!("creating {dest_topic}")),
    }
    let dest_partitions = dest.partition_count(dest_topic)?;
    if dest_partitions != partitions {
        bail!("{dest_topic} has {dest_partitions} partition(s), {topic} has {partitions}");
    }
    let mut copied = 0;
    for p in 0..partitions {
        let end = source.end_offset(topic, p)?;
        let mut next = dest.end_offset(dest_topic, p)?;
        if next > end {
            bail!("{dest_topic}/{p} has {next} records, more than its source's {end}");
        }
        while next < end {
            let want = batch.min((end - next) as usize);
            let records = source.read(topic, p, next, want, 16 << 20)?;
            if records.is_empty() {
                source.wait_for(topic, p, next, std::time::Duration::from_secs(1))?;
                continue;
            }
            let batch: Vec<NewRecord> = records
                .into_iter()
                .map(|r| NewRecord {
                    key: r.key,
                    payload: r.payload,
                    timestamp_ms: r.timestamp_ms,
                })
                .collect();
            let range = dest.append(dest_topic, p, &batch)?;
            if range.start != next {
                bail!(
                    "{dest_topic}/{p}: appended at {} instead of {next}: another writer?",
                    range.start
                );
            }
            next = range.end;
            copied += range.len();
        }
    }
    dest.flush()?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kappa_log::MemLog;

    #[test]
    fn copies_partitions_and_offsets_and_resumes() {
        let (a, b) = (MemLog::new(), MemLog::new());
        a.create_topic("t", 2).unwrap();
        for p in 0..2 {
            let records: Vec<NewRecord> = (0..25)
                .map(|i| NewRecord::new(format!("{{\"p\":{p},\"i\":{i}}}"), i))
                .collect();
            a.append("t", p, &records).unwrap();
        }
        assert_eq!(mirror(&a, "t", &b, "u", 7).unwrap(), 50);
        for p in 0..2 {
            assert_eq!(
                a.read("t", p, 0, 100, usize::MAX).unwrap(),
                b.read("u", p, 0, 100, usize::MAX).unwrap()
            );
        }
        a.append("t", 1, &[NewRecord::new(&b"{}"[..], 0)]).unwrap();
        assert_eq!(
            mirror(&a, "t", &b, "u", 7).unwrap(),
            1,
            "copies only what is new"
        );
        b.append("u", 0, &[NewRecord::new(&b"{}"[..], 0)]).unwrap();
        assert!(
            mirror(&a, "t", &b, "u", 7).is_err(),
            "a longer destination is no mirror"
        );
    }
}
