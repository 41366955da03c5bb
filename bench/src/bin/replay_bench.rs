//! Replay benchmark: what replaying a new pipeline version costs the live one.
//!
//! It isolates the effect of a version's replay (reading the whole log from offset 0
//! beside a live version, in the same timely workers) on the live version's
//! append → visible latency, and how fast that replay goes, throttled (as the
//! controller deploys a version while another is active) and not.
//!
//! In one process: an embedded log is loaded with N generated clickstream events
//! ([`kappa_bench::clickstream::load_log`], the clickstream harness's loader), a
//! [`kappa_dataflow::Engine`] is started (2 workers by default) and
//! `pipelines/clickstream.sql` is deployed as v1, which replays the log until it is
//! caught up. Then a producer thread appends the continuation of the same event
//! stream at a steady rate (2,000 events/s, a batch every 5 ms), and a subscriber of
//! v1's `ViewStore` notes when each append's offsets become visible (the clickstream
//! harness's method). Phases:
//!
//! - **baseline**: v1 alone, latency over `--secs` after a 1 s warm-up;
//! - **replay, throttled**: 1 s into the phase v2 (the same plan) is deployed with
//!   `throttled = true`; v1's latency is measured from that deploy until v2's offsets
//!   reach the log end observed at the deploy, and v2's replay rate is that backlog
//!   over that time; v2 is then retired;
//! - **replay, unthrottled**: the same with v3 deployed `throttled = false`.
//!
//! ```text
//! nice cargo run --release -p kappa-bench --bin replay_bench -- --events 1000000
//! options: --events N (1000000)  --rate R (2000)  --secs S (5)  --workers W (2)
//!          --max-replay-secs S (300: a replay still going then is reported as such)
//! ```
//! `KAPPA_BENCH_DIR` chooses the disk (default the system temp dir).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kappa_bench::clickstream::{
    covers, end_offsets, load_log, log_options, percentile, record, visible_offsets, TOPIC,
};
use kappa_bench::latency::{latencies, Observation, Observer};
use kappa_bench::Scratch;
use kappa_dataflow::source::SourceConfig;
use kappa_dataflow::{Engine, RunConfig, VersionId, ViewStore};
use kappa_log::{EmbeddedLog, Log, NewRecord};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error>;

/// Seed of the generated events (the clickstream harness's).
const SEED: u64 = 42;
/// The producer appends what is due every this often.
const TICK: Duration = Duration::from_millis(5);
/// The pipeline's name in version ids.
const PIPELINE: &str = "clickstream";

/// The events the producer appends: the continuation of the loaded stream.
type Events = Box<dyn Iterator<Item = NewRecord> + Send>;

/// One measured phase.
struct Phase {
    name: String,
    /// v1's append → visible latencies in ms: p50, p99, max, samples.
    latency: (f64, f64, f64, usize),
    /// The replaying version: events replayed, seconds, whether it caught up.
    replay: Option<(u64, f64, bool)>,
}

struct Settings {
    rate: f64,
    secs: f64,
    max_replay_secs: f64,
}

fn main() -> Result<(), Error> {
    kappa::allocator::tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| kappa_bench::option_value(&args, name).map(|v| v.replace('_', ""));
    let events: usize = value("--events").map_or(Ok(1_000_000), |v| v.parse())?;
    let workers: usize = value("--workers").map_or(Ok(2), |v| v.parse())?;
    let settings = Settings {
        rate: value("--rate").map_or(Ok(2_000.0), |v| v.parse())?,
        secs: value("--secs").map_or(Ok(5.0), |v| v.parse())?,
        max_replay_secs: value("--max-replay-secs").map_or(Ok(300.0), |v| v.parse())?,
    };

    let scratch = Scratch::new("replay")?;
    let dir = scratch.0.join("log");
    let (loaded, took) = kappa_bench::timed(|| load_log(&dir, events, SEED));
    loaded?;
    eprintln!("loaded {events} events in {took:.2?}");
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(&dir, log_options())?);
    let plan = kappa_sql::compile_file(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/clickstream.sql"),
    )?;
    let engine = Engine::start(RunConfig::threads(workers).communication, log.clone())?;

    // v1 replays the loaded log, then is the live version.
    let started = Instant::now();
    let v1 = engine.deploy(version(1), &plan, SourceConfig::default(), false);
    let target = end_offsets(log.as_ref())?;
    if !wait_for(&v1, &target, started + Duration::from_secs(1800)) {
        return Err("v1 did not catch up within 30 minutes".into());
    }
    let catch_up = started.elapsed().as_secs_f64();
    eprintln!(
        "v1 caught up with {events} events in {catch_up:.1} s ({:.0} events/s, nothing else running)",
        events as f64 / catch_up
    );

    let mut stream: Events = Box::new(
        kappa::workload::clicks(usize::MAX, SEED)
            .skip(events)
            .map(record),
    );
    let mut phases = Vec::new();
    for (name, replay) in [
        ("baseline (v1 alone)", None),
        ("v2 replaying, throttled", Some((2, true))),
        ("v2 replaying, unthrottled", Some((3, false))),
    ] {
        let (phase, rest) = run_phase(name, &engine, &plan, &log, &v1, stream, replay, &settings)?;
        stream = rest;
        eprintln!("{name}: done");
        phases.push(phase);
    }

    println!(
        "\n{events} events loaded, {workers} workers, producer at {:.0} events/s (a batch every {} ms)\n",
        settings.rate,
        TICK.as_millis()
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>8}  {:>16}",
        "case", "v1 p50", "v1 p99", "v1 max", "samples", "replay events/s"
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>8}  {:>16}",
        "v1 initial catch-up",
        "",
        "",
        "",
        "",
        format!("{:.0}", events as f64 / catch_up)
    );
    for phase in &phases {
        let (p50, p99, max, samples) = phase.latency;
        let replay = match phase.replay {
            Some((n, secs, true)) => format!("{:.0}", n as f64 / secs),
            Some((n, secs, false)) => format!("{:.0} (unfinished)", n as f64 / secs),
            None => "-".into(),
        };
        println!(
            "{:<28} {:>6.1} ms {:>6.1} ms {:>6.0} ms {samples:>8}  {replay:>16}",
            phase.name, p50, p99, max
        );
    }
    engine.shutdown()?;
    Ok(())
}

fn version(version: u64) -> VersionId {
    VersionId {
        pipeline: PIPELINE.into(),
        version,
    }
}

/// Waits until `store` reflects `target`, or `deadline`; whether it did.
fn wait_for(store: &ViewStore, target: &[u64], deadline: Instant) -> bool {
    while !covers(&visible_offsets(store), target) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Runs the producer and v1's observer for one phase, deploying (and afterwards
/// retiring) a replaying version `replay = (version, throttled)` 1 s in. Returns
/// the phase's figures and the rest of the event stream.
#[allow(clippy::too_many_arguments)]
fn run_phase(
    name: &str,
    engine: &Engine,
    plan: &kappa_sql::plan::Plan,
    log: &Arc<dyn Log>,
    v1: &Arc<ViewStore>,
    stream: Events,
    replay: Option<(u64, bool)>,
    settings: &Settings,
) -> Result<(Phase, Events), Error> {
    let stop_producer = Arc::new(AtomicBool::new(false));

    let observer = Observer::start(v1.clone());

    // The producer: every tick, append what is due by then at `rate`; remember when
    // each append started and the offsets it reached.
    let producer = {
        let (log, stop, rate) = (log.clone(), stop_producer.clone(), settings.rate);
        let mut stream = stream;
        std::thread::spawn(move || -> Result<(Vec<Observation>, Events), String> {
            let mut appends = Vec::new();
            let mut ends = end_offsets(log.as_ref()).map_err(|e| e.to_string())?;
            let started = Instant::now();
            let mut sent = 0;
            while !stop.load(Ordering::SeqCst) {
                let due = (started.elapsed().as_secs_f64() * rate) as usize;
                if due > sent {
                    // Stamped when appended, as a live producer's records are.
                    let now_ms = kappa_dataflow::source::now_ms() as i64;
                    let batch: Vec<NewRecord> = stream
                        .by_ref()
                        .take(due - sent)
                        .map(|record| NewRecord {
                            timestamp_ms: now_ms,
                            ..record
                        })
                        .collect();
                    let at = Instant::now();
                    let placed = log
                        .append_routed(TOPIC, &batch)
                        .map_err(|e| e.to_string())?;
                    for (partition, offset) in placed {
                        ends[partition as usize] = ends[partition as usize].max(offset + 1);
                    }
                    appends.push((at, ends.clone()));
                    sent = due;
                }
                std::thread::sleep(TICK);
            }
            Ok((appends, stream))
        })
    };

    std::thread::sleep(Duration::from_secs(1));
    let (window, replayed) = match replay {
        None => {
            let from = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(settings.secs));
            ((from, Instant::now()), None)
        }
        Some((number, throttled)) => {
            let id = version(number);
            let from = Instant::now();
            let store = engine.deploy(id.clone(), plan, SourceConfig::default(), throttled);
            let target = end_offsets(log.as_ref())?;
            let deadline = from + Duration::from_secs_f64(settings.max_replay_secs);
            let reached = wait_for(&store, &target, deadline);
            let to = Instant::now();
            let done: u64 = visible_offsets(&store)
                .iter()
                .zip(&target)
                .map(|(v, t)| v.min(t))
                .sum();
            engine.retire(&id);
            eprintln!(
                "{name}: {done} of {} events in {:.1} s",
                target.iter().sum::<u64>(),
                (to - from).as_secs_f64()
            );
            ((from, to), Some((done, (to - from).as_secs_f64(), reached)))
        }
    };
    stop_producer.store(true, Ordering::SeqCst);
    let (appends, stream) = producer.join().map_err(|_| "producer panicked")??;
    // Let v1 show every append before the observations are taken.
    if let Some((_, last)) = appends.last() {
        observer.wait_for(last, Instant::now() + Duration::from_secs(600));
    }
    let seen = observer.take();
    let in_window = |at: Instant| at >= window.0 && at <= window.1;
    let mut latencies: Vec<f64> = latencies(&appends, &seen, in_window)
        .into_iter()
        .map(|(_, ms)| ms)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&latencies, p);
    let phase = Phase {
        name: name.into(),
        latency: (
            pct(0.50),
            pct(0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
            latencies.len(),
        ),
        replay: replayed,
    };
    Ok((phase, stream))
}
