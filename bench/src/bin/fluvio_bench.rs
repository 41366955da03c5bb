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
//! Then the clickstream pipeline end to end on each log: the same generated events
//! (200k by default) are loaded into a topic of each log first (not timed: the produce
//! cases above measure that), and `pipelines/clickstream.sql` runs as a bounded run
//! with 2 workers (`write_outputs = false`, as in `clickstream_bench`), timed from
//! `start` until every view reflects the whole topic. Both runs must give the same
//! answers.
//!
//! ```text
//! KAPPA_FLUVIO_ENDPOINT=127.0.0.1:9003 cargo run --release -p kappa-bench --bin fluvio_bench
//! options: --events N (clickstream events)  --workers N  --skip-log  --skip-clickstream
//! ```
//! Without `KAPPA_FLUVIO_ENDPOINT` only the embedded log is measured.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kappa_bench::clickstream::{load_topic, log_options, Answers, TOPIC};
use kappa_bench::{payloads, timed, Scratch, Throughput};
use kappa_dataflow::{start, RunConfig};
use kappa_fluvio::{FluvioLog, FluvioOptions};
use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions, Log, NewRecord};

type Error = Box<dyn std::error::Error>;

const BATCH: usize = 5_000;
const PARTITIONS: u32 = 2;
/// Seed of the generated clickstream events.
const SEED: u64 = 42;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| kappa_bench::option_value(&args, name);
    let events: usize = value("--events").map_or(Ok(200_000), |n| n.replace('_', "").parse())?;
    let workers: usize = value("--workers").map_or(Ok(2), |n| n.parse())?;
    let endpoint = std::env::var("KAPPA_FLUVIO_ENDPOINT").ok();
    if endpoint.is_none() {
        eprintln!("KAPPA_FLUVIO_ENDPOINT is not set: measuring the embedded log only");
    }
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    if !flag("--skip-log") {
        log_cases(endpoint.as_deref(), run)?;
    }
    if !flag("--skip-clickstream") {
        clickstream(endpoint.as_deref(), run, events, workers)?;
    }
    Ok(())
}

/// Produce and replay through each backend's `Log`.
fn log_cases(endpoint: Option<&str>, run: u64) -> Result<(), Error> {
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

        if let Some(endpoint) = endpoint {
            let topic = format!("bench-{size}-{run}");
            let writer = FluvioLog::connect(FluvioOptions::endpoint(endpoint))?;
            let produced = produce(&writer, &topic, &data)?;
            drop(writer);
            let reader = FluvioLog::connect(FluvioOptions::endpoint(endpoint))?;
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

/// The clickstream pipeline as a bounded run on each backend; the answers must agree.
fn clickstream(
    endpoint: Option<&str>,
    run: u64,
    events: usize,
    workers: usize,
) -> Result<(), Error> {
    println!();
    println!("backend    clickstream pipeline, {events} events, {workers} workers: load (untimed), run to the end");
    let scratch = Scratch::new("fluvio-bench-clickstream")?;
    let writer = EmbeddedLog::open(&scratch.0, log_options())?;
    let (loaded, load_time) = timed(|| load_topic(&writer, TOPIC, events, SEED));
    loaded?;
    drop(writer);
    // Each run reads through a freshly opened log, as a restarted kappa would.
    let reader = Arc::new(EmbeddedLog::open(&scratch.0, log_options())?);
    let (expected, secs) = run_clickstream(reader, TOPIC, workers)?;
    report("embedded", events, load_time, secs);
    let Some(endpoint) = endpoint else {
        return Ok(());
    };
    let topic = format!("clicks-{run}");
    let writer = FluvioLog::connect(FluvioOptions::endpoint(endpoint))?;
    let (loaded, load_time) = timed(|| load_topic(&writer, &topic, events, SEED));
    loaded?;
    drop(writer);
    let fluvio = Arc::new(FluvioLog::connect(FluvioOptions::endpoint(endpoint))?);
    let (answers, secs) = run_clickstream(fluvio.clone(), &topic, workers)?;
    report("fluvio", events, load_time, secs);
    let stats = fluvio.stats();
    println!(
        "           (fluvio: gaps repaired: {}, streams opened: {})",
        stats.gaps, stats.streams_opened
    );
    assert_eq!(answers, expected, "both backends give the same answers");
    println!("answers: equal on both backends");
    Ok(())
}

fn report(backend: &str, events: usize, load: Duration, run_secs: f64) {
    println!(
        "{backend:<10} load {:>6.1} s ({:>8.0} ev/s)   run {run_secs:>6.2} s ({:>8.0} ev/s)",
        load.as_secs_f64(),
        events as f64 / load.as_secs_f64().max(1e-9),
        events as f64 / run_secs.max(1e-9),
    );
}

/// Runs `pipelines/clickstream.sql`, reading `topic`, to the end of `log`; returns its
/// answers and the seconds from start to every view complete.
fn run_clickstream(
    log: Arc<dyn Log>,
    topic: &str,
    workers: usize,
) -> Result<(Answers, f64), Error> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/clickstream.sql");
    let sql = std::fs::read_to_string(&path)?
        .replace(&format!("topic = '{TOPIC}'"), &format!("topic = '{topic}'"));
    let plan = Arc::new(kappa_sql::compile_str("clickstream.sql", &sql)?);
    assert_eq!(
        plan.sources[0].topic, topic,
        "clickstream.sql reads topic '{TOPIC}'"
    );
    let mut config = RunConfig::threads(workers);
    config.source.bounded = true;
    config.write_outputs = false;
    let (store, elapsed) = timed(|| -> Result<_, Error> {
        let running = start(plan, log, config)?;
        let store = running.store().clone();
        running.join()?;
        Ok(store)
    });
    let store = store?;
    Ok((store.read(Answers::from_store), elapsed.as_secs_f64()))
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
