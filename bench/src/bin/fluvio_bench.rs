//! Fluvio backend benchmark: produce and consume throughput through `kappa_fluvio::
//! FluvioLog`, beside the embedded log in the same run, both through the `Log` trait.
//!
//! It isolates what a pipeline's source and sink see of each backend: `append` of
//! batches of 5,000 records to 2 partitions (acknowledged by the Fluvio leader / written
//! to the OS with a 100 ms background fsync for the embedded log, the closest policies),
//! then a replay from offset 0 of both partitions through a freshly opened log with
//! `read` + `wait_for` in bounded batches (4,096 records, 1 MiB), as the dataflow source
//! reads. For Fluvio the replay also reports the gaps repaired (see `kappa_fluvio`).
//!
//! ```text
//! KAPPA_FLUVIO_ENDPOINT=127.0.0.1:9003 cargo run --release -p kappa-bench --bin fluvio_bench
//! ```
//! Without `KAPPA_FLUVIO_ENDPOINT` only the embedded log is measured.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kappa_bench::{payloads, timed, Scratch, Throughput};
use kappa_fluvio::{FluvioLog, FluvioOptions};
use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions, Log, NewRecord};

const BATCH: usize = 5_000;
const PARTITIONS: u32 = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::var("KAPPA_FLUVIO_ENDPOINT").ok();
    if endpoint.is_none() {
        eprintln!("KAPPA_FLUVIO_ENDPOINT is not set: measuring the embedded log only");
    }
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    println!("backend    case              produce                         replay from 0");
    for (size, records) in [(100usize, 200_000usize), (1024, 50_000)] {
        let data = payloads(records, size);
        let case = format!("{records} x {size} B");
        let scratch = Scratch::new("fluvio-bench")?;
        let options = || EmbeddedOptions {
            durability: Durability::Interval(Duration::from_millis(100)),
            ..EmbeddedOptions::default()
        };
        let writer: Arc<dyn Log> = Arc::new(EmbeddedLog::open(&scratch.0, options())?);
        let produced = produce(&*writer, "bench", &data)?;
        drop(writer);
        let reader: Arc<dyn Log> = Arc::new(EmbeddedLog::open(&scratch.0, options())?);
        let replayed = replay(&*reader, "bench", records)?;
        println!("embedded   {case:<16}  {produced}  {replayed}");

        if let Some(endpoint) = &endpoint {
            let topic = format!("bench-{size}-{run}");
            let writer = FluvioLog::connect(FluvioOptions::endpoint(endpoint.clone()))?;
            let produced = produce(&writer, &topic, &data)?;
            drop(writer);
            let reader = FluvioLog::connect(FluvioOptions::endpoint(endpoint.clone()))?;
            let replayed = replay(&reader, &topic, records)?;
            let stats = reader.stats();
            println!(
                "fluvio     {case:<16}  {produced}  {replayed}  (gaps repaired: {}, streams: {})",
                stats.gaps, stats.streams_opened
            );
        }
    }
    Ok(())
}

/// Appends `data` round-robin over the partitions in batches; returns the throughput.
fn produce(
    log: &dyn Log,
    topic: &str,
    data: &[Vec<u8>],
) -> Result<Throughput, kappa_log::LogError> {
    log.create_topic(topic, PARTITIONS)?;
    let bytes: usize = data.iter().map(Vec::len).sum();
    let (result, elapsed) = timed(|| {
        for (i, chunk) in data.chunks(BATCH).enumerate() {
            let batch: Vec<NewRecord> =
                chunk.iter().map(|p| NewRecord::new(p.clone(), 0)).collect();
            log.append(topic, i as u32 % PARTITIONS, &batch)?;
        }
        log.flush()
    });
    result?;
    Ok(Throughput::new(data.len(), bytes, elapsed))
}

/// Reads every partition from offset 0 to its end; returns the throughput.
fn replay(log: &dyn Log, topic: &str, records: usize) -> Result<Throughput, kappa_log::LogError> {
    let (result, elapsed) = timed(|| -> Result<(usize, usize), kappa_log::LogError> {
        let (mut count, mut bytes) = (0, 0);
        for p in 0..PARTITIONS {
            let end = log.end_offset(topic, p)?;
            let mut next = 0;
            while next < end {
                let batch = log.read(topic, p, next, 4_096, 1 << 20)?;
                if batch.is_empty() {
                    log.wait_for(topic, p, next, Duration::from_secs(10))?;
                    continue;
                }
                for r in &batch {
                    assert_eq!(r.offset, next, "contiguous offsets");
                    next += 1;
                    bytes += r.payload.len();
                }
                count += batch.len();
            }
        }
        Ok((count, bytes))
    });
    let (count, bytes) = result?;
    assert_eq!(count, records, "every record replayed once");
    Ok(Throughput::new(count, bytes, elapsed))
}
