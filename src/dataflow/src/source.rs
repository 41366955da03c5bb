//! The source operator: log partitions in, timestamped rows out.
//!
//! Each worker reads the partitions assigned to it (`(source + partition) % peers
//! == index`), in bounded batches, decodes each record with the source's
//! [`JsonDecoder`] into one reused row, applies the per-partition lateness rule, and
//! hands the row, at one logical time per batch, to the plan's stateless nodes
//! fused into this operator ([`crate::render`]), which emit what the rest of the
//! dataflow reads. Logical times are wall-clock milliseconds, kept
//! strictly increasing per operator, so frontiers mean "everything ingested
//! before this instant".
//!
//! The operator never blocks its worker: with nothing to read it asks the log to
//! activate it when a partition grows, and otherwise ticks every `idle_tick` to
//! advance its capability, so that an idle partition never holds frontiers back.
//! Backpressure: it stops reading while `max_batches_in_flight` of its batches are
//! not yet through the whole dataflow (as seen by the probe), so memory does not
//! grow with the log.
//!
//! A failed read (an unreachable cluster, an offline partition) is retried with
//! backoff ([`retry_backoff`]) and reported as data: a [`SourceProgress`] carrying a
//! [`ReadFailure`] and no records, which the version's store turns into the
//! partition's read-error state (status, metrics); the next successful read clears it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kappa_log::Log;
use kappa_sql::decode::JsonDecoder;
use kappa_sql::lateness::LatenessTracker;
use kappa_sql::plan::SourceDef;
use kappa_sql::Row;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::{Scope, Stream};

use crate::error::{DataError, Origin};
use crate::pacer::ReplayPacer;
use crate::render::FusedSink;
use crate::{Diff, Time};

/// How sources read the log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceConfig {
    /// Most records read from one partition per activation.
    pub max_batch_records: usize,
    /// Most payload bytes read from one partition per activation.
    pub max_batch_bytes: usize,
    /// Batches emitted but not yet through the dataflow before reading pauses.
    pub max_batches_in_flight: usize,
    /// How often an idle source advances its time.
    pub idle_tick: Duration,
    /// Stop at the log end observed when the pipeline starts (a bounded run), or follow.
    pub bounded: bool,
    /// Most records read per activation while throttled (replaying beside a live
    /// version), so that the live version's batches are not delayed. The source
    /// decodes a batch and runs the fused stages on it in one activation, during which
    /// the live version waits: 512 keeps that near 1 ms (`replay_bench`: the live p99
    /// 39 ms during a replay at 59k events/s; 2,048 gave 66–79 ms at ~100k).
    pub throttled_batch_records: usize,
    /// While throttled, reading pauses whenever the live version sharing the
    /// workers lags wall-clock time by more than this (see [`crate::pacer`]).
    #[serde(default = "default_live_lag_bound")]
    pub live_lag_bound: Duration,
    /// While behind (replaying, catching up), up to this many records read by one
    /// worker share one logical time, over several activations ([`Span`]).
    #[serde(default = "default_catch_up_span_records")]
    pub catch_up_span_records: usize,
    /// Spans are for history: only records appended at least this long before they
    /// are read join one ([`Span`]).
    #[serde(default = "default_catch_up_min_age")]
    pub catch_up_min_age: Duration,
}

/// Steering of a running version's sources, changed by sequenced commands on every
/// worker (so it works the same across processes).
#[derive(Debug, Default)]
pub struct SourceControl {
    /// Read no partition beyond these offsets (exclusive), by `(topic, partition)`.
    hold: RefCell<Option<BTreeMap<(String, u32), u64>>>,
    /// Replaying beside a live version: read paced batches, one in flight.
    throttled: Cell<bool>,
    /// How far (ms) the live version on this worker lags wall-clock time, as last
    /// seen by the engine; read by throttled sources.
    live_lag_ms: Cell<u64>,
    /// The version's live rounds, shared by its sources on every worker of this
    /// process, so that their batches share times.
    rounds: Arc<LiveRounds>,
}

impl SourceControl {
    /// Control of a version whose sources in this process keep their live rounds
    /// together in `rounds` (one per version and process).
    pub fn sharing(rounds: Arc<LiveRounds>) -> SourceControl {
        SourceControl {
            rounds,
            ..SourceControl::default()
        }
    }

    /// Stops reading at `offsets` (`None` lifts the hold).
    pub fn set_hold(&self, offsets: Option<BTreeMap<(String, u32), u64>>) {
        *self.hold.borrow_mut() = offsets;
    }

    /// Throttles reading (replay) or lets it run at full speed.
    pub fn set_throttled(&self, throttled: bool) {
        self.throttled.set(throttled);
    }

    /// Whether the version replays beside a live one.
    pub(crate) fn is_throttled(&self) -> bool {
        self.throttled.get()
    }

    /// Tells a throttled source how far (ms) the live version lags.
    pub(crate) fn set_live_lag_ms(&self, lag_ms: u64) {
        self.live_lag_ms.set(lag_ms);
    }

    fn held_at(&self, topic: &str, partition: u32) -> Option<u64> {
        self.hold
            .borrow()
            .as_ref()
            .and_then(|h| h.get(&(topic.to_string(), partition)).copied())
    }
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            max_batch_records: 16_384,
            max_batch_bytes: 4 << 20,
            max_batches_in_flight: 4,
            idle_tick: Duration::from_millis(5),
            bounded: false,
            throttled_batch_records: 512,
            live_lag_bound: default_live_lag_bound(),
            catch_up_span_records: default_catch_up_span_records(),
            catch_up_min_age: default_catch_up_min_age(),
        }
    }
}

fn default_catch_up_min_age() -> Duration {
    Duration::from_secs(1)
}

fn default_catch_up_span_records() -> usize {
    262_144
}

fn default_live_lag_bound() -> Duration {
    Duration::from_millis(20)
}

/// The longest a throttled source pauses for a lagging live version before it
/// reads one (small) batch anyway.
const STARVATION_LIMIT: Duration = Duration::from_millis(50);

/// Live batches are stamped with times rounded up to a multiple of a *quantum* of
/// milliseconds, a power of two on one grid for every worker: batches that workers
/// read within one quantum share one logical time, so the operators that act once
/// per time (top-k, running totals, arrangement batchers sealing, the store) do that
/// work once for all of them rather than once per worker's batch. A time may lie up
/// to a quantum ahead of the wall clock; that never delays a batch (frontiers follow
/// capabilities, which move past a batch's time as soon as it is sent).
///
/// The quantum follows the dataflow's round trip (a batch's time from sending to
/// the probe passing it, [`quantum_for`]). Under load each worker reads again only
/// once its previous batch is through, and with a fixed 5 ms quantum two workers
/// whose round trips were ~35 ms fell into alternation, each batch its own time:
/// twice the per-time work for the same events. Workers whose batches went apart
/// come together again only if a quantum outlasts a round (the one that finishes
/// first then reads before the other's time has passed), so the quantum is about
/// twice the round trip. Workers whose quanta differ part too, so the workers of a
/// process share one estimate ([`LiveRounds`]); below 16 ms there is no step
/// at all (round trips of 4–15 ms, a live pipeline under moderate load, straddled
/// 4 and 8 ms when the floor was 4 ms and each worker estimated alone: two workers
/// at 222k events/s shared a time for a third of their batches, and then for ~95%,
/// which halved the median latency; `clickstream_bench`, session 8).
pub const MIN_TIME_QUANTUM_MS: u64 = 16;
/// The longest quantum: a batch's time is at most this far ahead of the wall clock.
pub const MAX_TIME_QUANTUM_MS: u64 = 64;

/// A version's live rounds in this process, shared by its sources on every worker:
/// the time of the latest round opened, which a worker reading later joins if it
/// can, and one smoothed round trip, for the quantum of new times.
///
/// Each worker stamping its own `now` rounded up to the quantum was not enough:
/// two workers that see a round through a millisecond or two apart read on either
/// side of a quantum's end about one round in ten and part, and parted workers
/// (one's batch through while the other's is still in flight) met again only by
/// chance. In a slow spell the round trip then rose past a step of the quantum,
/// and workers with their own estimates also chose different quanta. Either way the
/// per-time work doubled, which kept the round trip up: at 335k events/s, spells of
/// 0.5–1.5 s with 10–50% of times shared (95% otherwise) and 2–4× the latency were
/// most of a live run's p99 (`clickstream_bench`, session 9). Now a worker that
/// reads while the latest round's time is still open to it (not before its own
/// capability) sends at that time, so workers of a process that part come together
/// at the next read; and one estimate, moved once per time by whichever worker
/// first sees that time through, gives them one quantum. Workers of other processes
/// keep their own rounds (the powers of two still nest).
#[derive(Debug, Default)]
pub struct LiveRounds {
    state: Mutex<RoundsState>,
}

#[derive(Debug, Default)]
struct RoundsState {
    round_trip_ms: f64,
    /// The latest time whose round trip `round_trip_ms` holds.
    observed: Time,
    /// The time of the latest round opened.
    latest: Option<Time>,
}

impl LiveRounds {
    /// Notes that a batch at `time` took `took_ms` to get through, unless a batch
    /// at `time` (another worker's) or a later one was noted already.
    fn observe(&self, time: Time, took_ms: f64) {
        let mut state = self.lock();
        if time > state.observed {
            state.round_trip_ms += (took_ms - state.round_trip_ms) / 4.0;
            state.observed = time;
        }
    }

    /// The time for a live batch read at `now_ms` by a source whose capability is at
    /// `capability`: the latest round's time if the source may still send at it,
    /// otherwise a new [`live_time`], which opens a round for the other sources if
    /// `reading` (the source expects records). Opened before the read, not once a
    /// batch is sent: workers that see a round through together read together, and
    /// the second must find the first's time. A source with nothing to read (an idle
    /// tick moving its capability every few milliseconds) opens none, or it would
    /// move the round under workers that read a little apart.
    fn time_for(&self, now_ms: u64, capability: Time, reading: bool) -> Time {
        let mut state = self.lock();
        if let Some(latest) = state.latest.filter(|latest| *latest >= capability) {
            return latest;
        }
        let time = live_time(now_ms, capability, quantum_for(state.round_trip_ms));
        if reading {
            state.latest = Some(time);
        }
        time
    }

    fn round_trip_ms(&self) -> f64 {
        self.lock().round_trip_ms
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RoundsState> {
        self.state.lock().expect("live rounds lock")
    }
}

/// The quantum for a round trip of `round_trip_ms`: the largest power of two not
/// above twice it, within [`MIN_TIME_QUANTUM_MS`] and [`MAX_TIME_QUANTUM_MS`].
/// Above the floor, rounds are then at least half a quantum long and times keep
/// pace with the wall clock. At the floor rounds may be shorter: a source reading
/// several times in one quantum moves its time a millisecond per read
/// ([`live_time`]), so its times stay within a quantum of the clock as long as its
/// rounds take a millisecond or more (shorter ones run its times ahead of the
/// clock, which changes no result). Powers of two nest, so the times of workers
/// whose estimates differ by one step still often coincide.
fn quantum_for(round_trip_ms: f64) -> u64 {
    let ms = (2.0 * round_trip_ms).max(0.0) as u64;
    if ms < MIN_TIME_QUANTUM_MS {
        return MIN_TIME_QUANTUM_MS;
    }
    (1u64 << ms.ilog2()).min(MAX_TIME_QUANTUM_MS)
}

/// The time of a live batch read at `now_ms` by a source whose capability is at
/// `capability`: `now_ms` rounded up to the quantum, or the capability if that is
/// later. Never rounded beyond the capability: a source that reads more often than
/// its quantum moves its time a millisecond per batch, not a quantum, and workers
/// whose last batches shared a time (so their capabilities too) still share it.
fn live_time(now_ms: u64, capability: Time, quantum: u64) -> Time {
    aligned_time(now_ms, quantum).max(capability)
}

/// A logical time kept open over several activations while the source is behind.
///
/// Work downstream of a source is per logical time as much as per record: each
/// time a key changes, its count moves in an arrangement, a retraction and an
/// insertion reach the view and its subscribers, a top-k group is selected
/// again. Live, a time per batch keeps latency low. Behind — replaying a log from
/// offset zero, catching up after a restart — nobody waits on a single batch, so
/// the batches of a span share one time: the fused key stages sum the whole span
/// before they send anything, and everything after them sees one change per key
/// per span. The span closes (its time is released) once it holds
/// `catch_up_span_records`, when a read finds the source caught up or reads records
/// younger than `catch_up_min_age` (a live pipeline that is a little behind wants
/// its results soon, not a quarter-million records later), or when reading pauses;
/// so a span adds no latency to a live pipeline, and while replaying history it
/// delays results by one span, about a quarter-million records per worker by default.
struct Span {
    time: Time,
    records: usize,
}

/// `ms` rounded up to a multiple of `quantum`.
fn aligned_time(ms: u64, quantum: u64) -> u64 {
    ms.div_ceil(quantum) * quantum
}

/// What one batch of one partition did, sent to worker 0 beside the rows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceProgress {
    /// The topic read.
    pub topic: String,
    /// The partition read.
    pub partition: u32,
    /// The next offset to read after this batch.
    pub next_offset: u64,
    /// Records read in this batch.
    pub records: u64,
    /// Payload bytes read in this batch.
    pub bytes: u64,
    /// Records that failed to decode.
    pub decode_errors: u64,
    /// Records dropped as late.
    pub late: u64,
    /// Append timestamp (ms) of the batch's last record, for freshness metrics.
    pub max_append_ms: i64,
    /// The partition's event-time watermark (ms) after this batch, if it has event times.
    pub watermark_ms: Option<i64>,
    /// Set when this is the report of a failed read rather than of a batch.
    pub read_failure: Option<ReadFailure>,
}

/// A read of a partition that failed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadFailure {
    /// What the log said.
    pub error: String,
    /// When it failed (ms since the epoch).
    pub at_ms: u64,
}

impl SourceProgress {
    /// A report about a partition that carries no records: a failed read when
    /// `read_failure` is set, a recovery otherwise.
    fn health(
        topic: &str,
        partition: u32,
        next_offset: u64,
        read_failure: Option<ReadFailure>,
    ) -> Self {
        SourceProgress {
            topic: topic.to_string(),
            partition,
            next_offset,
            records: 0,
            bytes: 0,
            decode_errors: 0,
            late: 0,
            max_append_ms: 0,
            watermark_ms: None,
            read_failure,
        }
    }
}

/// How long a source waits before reading a partition again after `failures`
/// consecutive failed reads: 10 ms, doubling, at most 1 s.
pub fn retry_backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64 << failures.saturating_sub(1).min(7)).min(Duration::from_secs(1))
}

/// The streams a source operator produces besides its sink's.
pub struct SourceStreams<'s> {
    /// Records that failed to decode, and rows that failed in the sink.
    pub errors: Stream<'s, Time, Vec<(DataError, Time, Diff)>>,
    /// Per-batch progress.
    pub progress: Stream<'s, Time, Vec<(SourceProgress, Time, Diff)>>,
}

struct PartitionReader {
    partition: u32,
    next_offset: u64,
    /// Where a bounded run stops.
    stop_at: Option<u64>,
    lateness: LatenessTracker,
    /// Set by the log's notification when the partition grows.
    grew: Arc<AtomicBool>,
    /// A notification is registered and has not fired yet.
    waiting: bool,
    /// Reads that failed in a row.
    failures: u32,
    /// When a failing partition may be read again.
    retry_at: Option<Instant>,
}

impl PartitionReader {
    fn finished(&self) -> bool {
        self.stop_at.is_some_and(|end| self.next_offset >= end)
    }

    /// Whether a read now may find records: the partition is not finished, not known
    /// to be empty beyond `next_offset`, and not waiting to retry a failed read.
    fn may_have_records(&self) -> bool {
        let grew = !self.waiting || self.grew.load(Ordering::Acquire);
        grew && !self.finished() && self.retry_at.is_none_or(|at| Instant::now() >= at)
    }
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Builds the source operator for `def` on this worker. Its decoded, admitted rows
/// go to the sink that `sink` builds on the operator (the plan's stateless nodes
/// below the source, fused: [`crate::render`]), whose outputs follow the source's
/// own (errors, progress) among the operator's ports.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render_source<'s>(
    scope: Scope<'s, Time>,
    source_index: usize,
    def: &SourceDef,
    log: Arc<dyn Log>,
    config: &SourceConfig,
    probe: ProbeHandle<Time>,
    control: Rc<SourceControl>,
    sink: impl FnOnce(&mut OperatorBuilder<'s, Time>) -> FusedSink,
) -> Result<SourceStreams<'s>, kappa_log::LogError> {
    let (index, peers) = (scope.index(), scope.peers());
    let partition_count = log.partition_count(&def.topic)?;
    let mut readers = Vec::new();
    for partition in 0..partition_count {
        if (source_index + partition as usize) % peers != index {
            continue;
        }
        let stop_at = if config.bounded {
            Some(log.end_offset(&def.topic, partition)?)
        } else {
            None
        };
        readers.push(PartitionReader {
            partition,
            next_offset: 0,
            stop_at,
            lateness: LatenessTracker::new(def.lateness_ms),
            grew: Arc::new(AtomicBool::new(true)),
            waiting: false,
            failures: 0,
            retry_at: None,
        });
    }

    let mut builder = OperatorBuilder::new(format!("Source({})", def.name), scope);
    let address = builder.operator_info().address;
    let activator = scope.activator_for(address.clone());
    let sync_activator = Arc::new(scope.worker().sync_activator_for(address.to_vec()));
    let (errors_output, errors) = builder.new_output::<Vec<(DataError, Time, Diff)>>();
    let (progress_output, progress) = builder.new_output::<Vec<(SourceProgress, Time, Diff)>>();
    let mut sink = sink(&mut builder);
    let mut errors_output = OutputBuilder::from(errors_output);
    let mut progress_output = OutputBuilder::from(progress_output);

    let decoder = JsonDecoder::new(def);
    let event_time = def.event_time;
    let topic = def.topic.clone();
    let config = config.clone();

    builder.build(move |mut capabilities| {
        // Times sent and not yet through the dataflow, with when they were sent.
        let mut in_flight: VecDeque<(Time, Instant)> = VecDeque::new();
        let mut last_read = Instant::now();
        let mut behind = true;
        let mut pacer = ReplayPacer::new(config.throttled_batch_records);
        let lag_bound_ms = config.live_lag_bound.as_millis() as u64;
        // Every record is decoded into this one row, which the sink reads by reference.
        let mut row = Row::new();
        let mut failed = Vec::new();
        let mut span: Option<Span> = None;
        move |_frontiers| {
            if capabilities.is_empty() {
                return;
            }
            if readers.iter().all(PartitionReader::finished) {
                capabilities.clear();
                return;
            }
            let throttled = control.throttled.get();
            let live_fresh = control.live_lag_ms.get() <= lag_bound_ms;
            while in_flight.front().is_some_and(|(t, _)| !probe.less_equal(t)) {
                let (sent_at, sent) = in_flight.pop_front().expect("a front");
                control.rounds.observe(sent_at, sent.elapsed().as_secs_f64() * 1e3);
                if throttled && live_fresh {
                    pacer.live_fresh();
                }
            }
            // A live version that lags pauses the replay, but never for long: a live
            // version that cannot keep up (or is itself catching up) must not starve it.
            if throttled && !live_fresh && last_read.elapsed() < STARVATION_LIMIT {
                pacer.live_lagging();
                activator.activate_after(Duration::from_millis(1));
                return;
            }
            last_read = Instant::now();
            // A paced replay batch is shared among the partitions read.
            let paced_records = (pacer.batch_records() / readers.len().max(1)).max(1);
            // Caught up (the last read found less than a full batch), one batch in
            // flight: what arrives meanwhile joins the next batch, so batches grow with
            // the load and a live pipeline is not swamped by one logical time per
            // millisecond. Behind, several full batches keep the dataflow busy.
            let max_in_flight = if throttled || !behind { 1 } else { config.max_batches_in_flight };
            if in_flight.len() >= max_in_flight {
                activator.activate_after(Duration::from_millis(1));
                return;
            }
            // Decided once, before the time: a partition that grows from here on wakes
            // the operator again, and that read then opens a round for the others.
            let reading = readers.iter().any(PartitionReader::may_have_records);
            let time = match &span {
                Some(span) => span.time,
                None => control.rounds.time_for(now_ms(), *capabilities[0].time(), reading),
            };
            let mut errors_handle = errors_output.activate();
            let mut progress_handle = progress_output.activate();
            let mut errors_session = errors_handle.session(&capabilities[0]);
            let mut progress_session = progress_handle.session(&capabilities[1]);
            let (mut emitted, mut more, mut read, mut newest_ms) = (false, false, 0, 0);
            for reader in readers.iter_mut() {
                if !reading || reader.finished() {
                    continue;
                }
                if reader.waiting && !reader.grew.swap(false, Ordering::AcqRel) {
                    continue;
                }
                if reader.retry_at.is_some_and(|at| Instant::now() < at) {
                    continue;
                }
                reader.waiting = false;
                let mut limit = if throttled {
                    paced_records
                } else {
                    config.max_batch_records
                };
                if let Some(end) = reader.stop_at {
                    limit = limit.min((end - reader.next_offset) as usize);
                }
                if let Some(hold) = control.held_at(&topic, reader.partition) {
                    limit = limit.min(hold.saturating_sub(reader.next_offset) as usize);
                    if limit == 0 {
                        continue;
                    }
                }
                let records = match log.read_batch(
                    &topic,
                    reader.partition,
                    reader.next_offset,
                    limit,
                    config.max_batch_bytes,
                ) {
                    Ok(records) => records,
                    Err(error) => {
                        reader.failures += 1;
                        reader.retry_at = Some(Instant::now() + retry_backoff(reader.failures));
                        if reader.failures == 1 {
                            tracing::error!(%topic, partition = reader.partition, %error, "source read failed; retrying with backoff");
                        }
                        let failure = ReadFailure { error: error.to_string(), at_ms: now_ms() };
                        let report = SourceProgress::health(&topic, reader.partition, reader.next_offset, Some(failure));
                        progress_session.give((report, time, 1));
                        continue;
                    }
                };
                if reader.failures > 0 {
                    tracing::info!(%topic, partition = reader.partition, failures = reader.failures, "source read recovered");
                    (reader.failures, reader.retry_at) = (0, None);
                    if records.is_empty() {
                        let report = SourceProgress::health(&topic, reader.partition, reader.next_offset, None);
                        progress_session.give((report, time, 1));
                    }
                }
                if records.is_empty() {
                    let grew = reader.grew.clone();
                    let wake = sync_activator.clone();
                    reader.waiting = true;
                    grew.store(false, Ordering::Release);
                    let notify = Box::new(move || {
                        grew.store(true, Ordering::Release);
                        let _ = wake.activate();
                    });
                    if let Err(error) =
                        log.notify_when_beyond(&topic, reader.partition, reader.next_offset, notify)
                    {
                        tracing::error!(%topic, partition = reader.partition, %error, "cannot watch partition");
                    }
                    continue;
                }
                let mut progress = SourceProgress {
                    topic: topic.clone(),
                    partition: reader.partition,
                    next_offset: reader.next_offset,
                    records: 0,
                    bytes: 0,
                    decode_errors: 0,
                    late: 0,
                    max_append_ms: records.last_timestamp_ms().unwrap_or(0),
                    watermark_ms: None,
                    read_failure: None,
                };
                for record in &records {
                    progress.records += 1;
                    progress.bytes += record.payload.len() as u64;
                    match decoder.decode_into(record.payload, &mut row) {
                        Ok(()) => {
                            let admitted = match event_time.map(|c| &row[c]) {
                                Some(kappa_sql::Value::Timestamp(ts)) => reader.lateness.admit(*ts),
                                _ => true,
                            };
                            if admitted {
                                sink.push(&row, time, &capabilities, &mut failed);
                                errors_session.give_iterator(failed.drain(..).map(|e| (e, time, 1)));
                            } else {
                                progress.late += 1;
                            }
                        }
                        Err(error) => {
                            progress.decode_errors += 1;
                            errors_session.give((
                                DataError {
                                    origin: Origin::Source {
                                        topic: topic.clone(),
                                        partition: reader.partition,
                                        offset: record.offset,
                                    },
                                    reason: error.to_string(),
                                    payload: record.payload.to_vec(),
                                },
                                time,
                                1,
                            ));
                        }
                    }
                }
                reader.next_offset = records.next_offset();
                progress.next_offset = reader.next_offset;
                progress.watermark_ms = reader.lateness.watermark();
                read += records.len();
                newest_ms = newest_ms.max(progress.max_append_ms);
                progress_session.give((progress, time, 1));
                emitted = true;
                // A full batch suggests more is waiting: come back soon.
                more |= records.len() >= limit && !reader.finished();
            }
            drop((errors_session, progress_session));
            let finished = readers.iter().all(PartitionReader::finished);
            let spanned = span.as_ref().map_or(0, |s| s.records) + read;
            let history = (now_ms() as i64).saturating_sub(newest_ms)
                >= config.catch_up_min_age.as_millis() as i64;
            if more && history && !throttled && !finished && spanned < config.catch_up_span_records
            {
                // Behind: the next batch joins this one's time.
                sink.flush_rows(&capabilities);
                span = Some(Span { time, records: spanned });
                activator.activate();
                return;
            }
            sink.flush(&capabilities);
            if emitted || span.is_some() {
                // Which workers' batches share a time, and how long rounds take:
                // `RUST_LOG=kappa_dataflow::source=trace` (bench/README.md).
                // Fields are evaluated only when the event is enabled: no lock otherwise.
                tracing::trace!(
                    worker = index,
                    records = read,
                    time,
                    round_trip_ms = control.rounds.round_trip_ms(),
                    "batch sent"
                );
                in_flight.push_back((time, Instant::now()));
            }
            span = None;
            // Nothing more is emitted at `time`, read or not: later batches take a
            // later aligned time.
            let next = time + 1;
            for capability in capabilities.iter_mut() {
                capability.downgrade(&next);
            }
            if emitted {
                behind = more;
            }
            if finished {
                capabilities.clear();
            } else if more {
                activator.activate();
            } else {
                activator.activate_after(config.idle_tick);
            }
        }
    });

    Ok(SourceStreams { errors, progress })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_up_to_the_quantum_and_never_down() {
        for q in [MIN_TIME_QUANTUM_MS, 16, MAX_TIME_QUANTUM_MS] {
            assert_eq!(aligned_time(0, q), 0);
            assert_eq!(aligned_time(1, q), q);
            assert_eq!(aligned_time(q, q), q);
            assert_eq!(aligned_time(q + 1, q), 2 * q);
            for ms in [3, 1_700_000_000_001, 1_700_000_000_005] {
                assert!(aligned_time(ms, q) >= ms && aligned_time(ms, q) < ms + q);
                assert_eq!(aligned_time(ms, q) % q, 0);
            }
        }
    }

    /// A wall-clock millisecond on every quantum's grid.
    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn workers_reading_on_either_side_of_a_quantum_end_share_the_round() {
        let rounds = LiveRounds::default();
        let capability = T0;
        // The first reader opens a round at its `now` rounded up; the second reads
        // 2 ms later, past that quantum's end, and still joins it.
        let first = rounds.time_for(T0 + 15, capability, true);
        assert_eq!(first, T0 + 16);
        assert_eq!(rounds.time_for(T0 + 17, capability, true), first);
        // Having sent at `first`, neither may again: the next reader opens a new
        // round (at its own rounded `now`), which the other then joins.
        let next = rounds.time_for(T0 + 40, first + 1, true);
        assert_eq!(next, T0 + 48);
        assert_eq!(rounds.time_for(T0 + 50, first + 1, true), next);
    }

    #[test]
    fn a_worker_behind_the_latest_round_joins_it() {
        // Workers that parted (one's batch still in flight at a later time than the
        // other's) meet at the later one's time when the first reads again.
        let rounds = LiveRounds::default();
        let late = rounds.time_for(T0 + 20, T0 + 17, true);
        assert_eq!(late, T0 + 32);
        assert_eq!(rounds.time_for(T0 + 21, T0 + 1, true), late);
        // A source past the round (its capability beyond it) cannot join.
        let own = rounds.time_for(T0 + 21, late + 1, true);
        assert_eq!(own, late + 1);
    }

    #[test]
    fn a_source_with_nothing_to_read_opens_no_round() {
        let rounds = LiveRounds::default();
        let idle = rounds.time_for(T0 + 1, T0, false);
        assert_eq!(idle, T0 + 16);
        // Ticking on, an idle source would otherwise move the round a millisecond at
        // a time under readers that come a little apart.
        assert_eq!(rounds.time_for(T0 + 5, idle + 1, false), idle + 1);
        let read = rounds.time_for(T0 + 5, T0, true);
        assert_eq!(read, T0 + 16);
        assert_eq!(rounds.time_for(T0 + 6, T0 + 10, true), read);
    }

    #[test]
    fn a_reader_may_have_records_unless_known_empty_finished_or_backing_off() {
        let reader = |waiting: bool, grew: bool| PartitionReader {
            partition: 0,
            next_offset: 5,
            stop_at: None,
            lateness: LatenessTracker::new(0),
            grew: Arc::new(AtomicBool::new(grew)),
            waiting,
            failures: 0,
            retry_at: None,
        };
        assert!(reader(false, false).may_have_records(), "never found empty");
        assert!(
            !reader(true, false).may_have_records(),
            "empty, no growth since"
        );
        assert!(
            reader(true, true).may_have_records(),
            "grew since it was empty"
        );
        let finished = PartitionReader {
            stop_at: Some(5),
            ..reader(false, true)
        };
        assert!(!finished.may_have_records());
        let backing_off = PartitionReader {
            retry_at: Some(Instant::now() + Duration::from_secs(60)),
            ..reader(false, true)
        };
        assert!(!backing_off.may_have_records());
    }

    #[test]
    fn the_round_trip_moves_once_per_time_for_all_workers() {
        let rounds = LiveRounds::default();
        rounds.observe(100, 40.0);
        // The other worker's batch at the same time, and a straggler at an earlier
        // one, leave the estimate where the first made it.
        rounds.observe(100, 400.0);
        rounds.observe(90, 400.0);
        assert_eq!(rounds.round_trip_ms(), 10.0);
        rounds.observe(101, 50.0);
        assert_eq!(rounds.round_trip_ms(), 20.0);
        // The quantum of new rounds follows the shared estimate: 2 × 20 ms → 32.
        assert_eq!(rounds.time_for(T0 + 1, 0, true), T0 + 32);
    }

    #[test]
    fn the_quantum_follows_the_round_trip_within_bounds() {
        assert_eq!(quantum_for(0.0), MIN_TIME_QUANTUM_MS);
        assert_eq!(quantum_for(3.2), MIN_TIME_QUANTUM_MS);
        // Round trips of 4 to 15 ms, which two workers' estimates straddled at the
        // old steps of 4 and 8 ms, all share one quantum.
        assert_eq!(quantum_for(4.5), quantum_for(15.9));
        assert_eq!(quantum_for(17.0), 32);
        assert_eq!(quantum_for(35.0), 64);
        assert_eq!(quantum_for(64.0), 64);
        assert_eq!(quantum_for(5_000.0), MAX_TIME_QUANTUM_MS);
        // One grid: a longer quantum's times are times of every shorter one.
        let ms = 1_700_000_000_123;
        assert_eq!(aligned_time(ms, 64) % 16, 0);
    }

    #[test]
    fn workers_whose_round_trip_estimates_straddle_a_few_ms_stamp_one_time() {
        // Two workers read in the same millisecond, their smoothed round trips just
        // either side of 8 ms (the old 4/8 ms step parted them in half the windows).
        let start = 1_700_000_000_000u64;
        for now in start..start + 256 {
            let capability = start;
            assert_eq!(
                live_time(now, capability, quantum_for(7.5)),
                live_time(now, capability, quantum_for(8.5)),
                "at {now}"
            );
        }
    }

    #[test]
    fn live_times_keep_pace_with_the_wall_clock() {
        let start = 1_700_000_000_000u64;
        for quantum in [MIN_TIME_QUANTUM_MS, 16, MAX_TIME_QUANTUM_MS] {
            // A batch every millisecond for a second: each time after the last, and
            // never more than a quantum ahead of the clock.
            let mut capability = 0;
            for now in start..start + 1_000 {
                let time = live_time(now, capability, quantum);
                assert!(time >= capability && time >= now);
                assert!(time < now + quantum, "{time} runs ahead of {now}");
                capability = time + 1;
            }
            // Two workers whose capabilities agree read onto one time.
            assert_eq!(
                live_time(start + 3, start + 17, quantum),
                live_time(start + 5, start + 17, quantum)
            );
        }
    }

    #[test]
    fn read_failures_back_off_to_a_second() {
        assert_eq!(retry_backoff(1), Duration::from_millis(10));
        assert_eq!(retry_backoff(2), Duration::from_millis(20));
        assert_eq!(retry_backoff(30), Duration::from_secs(1));
    }
}
