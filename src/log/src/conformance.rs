//! The conformance suite every [`Log`] backend must pass (cargo feature `conformance`).
//!
//! Each check takes a [`Backend`] — a factory that opens (and reopens) the log under
//! test, names fresh topics and states what the backend can and cannot do — and panics
//! with a message on the first violation, so a backend's test file is one `#[test]` per
//! check:
//!
//! ```
//! use std::sync::Arc;
//! use kappa_log::conformance::{self, Backend, Caps};
//! use kappa_log::{Log, MemLog};
//!
//! struct Mem(Arc<MemLog>);
//! impl Backend for Mem {
//!     fn open(&self) -> Arc<dyn Log> { self.0.clone() }
//!     fn topic(&self, base: &str) -> String { base.to_string() }
//!     fn caps(&self) -> Caps { Caps::default() }
//! }
//! conformance::round_trip(&Mem(Arc::new(MemLog::new())));
//! ```
//!
//! Remote backends make records readable asynchronously, so reads go through
//! [`read_exactly`] (or [`read_batch_exactly`]), which reads in bounded batches and waits with [`Log::wait_for`]
//! between them — the way the dataflow source reads.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::{partition_for_key, Log, LogError, NewRecord, Record};

/// What a backend can do, so that the suite checks what it promises and no more.
#[derive(Debug, Clone)]
pub struct Caps {
    /// Whether [`NewRecord::timestamp_ms`] comes back as given (Fluvio stamps records
    /// itself).
    pub exact_timestamps: bool,
    /// Whether [`Backend::open`] returns a log that survives the previous one being
    /// dropped (false for a log that lives only in memory).
    pub durable: bool,
    /// How long an appended record may take to become readable.
    pub visibility_timeout: Duration,
    /// Records per partition in [`large_backlog`].
    pub backlog_records: usize,
    /// Payload bytes per record in [`large_backlog`].
    pub backlog_payload: usize,
    /// Records per append in [`large_backlog`].
    pub backlog_batch: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            exact_timestamps: true,
            durable: true,
            visibility_timeout: Duration::from_secs(5),
            backlog_records: 20_000,
            backlog_payload: 200,
            backlog_batch: 5_000,
        }
    }
}

/// A log under test.
pub trait Backend {
    /// Opens the log. Called again after the previous handle was dropped, it must show
    /// everything acknowledged before (when [`Caps::durable`]).
    fn open(&self) -> Arc<dyn Log>;
    /// A topic name starting with `base` that no earlier run used (a cluster outlives
    /// test runs); names use `[a-z0-9._-]`.
    fn topic(&self, base: &str) -> String;
    /// What the backend promises.
    fn caps(&self) -> Caps;
}

/// Reads exactly `n` records of a partition from `from`, in batches of at most
/// `max_records` records and `max_bytes` bytes, waiting for records not yet readable.
///
/// # Panics
/// If the records are not contiguous from `from`, or `n` records are not readable
/// within `timeout` of the last progress.
pub fn read_exactly(
    log: &dyn Log,
    topic: &str,
    partition: u32,
    from: u64,
    n: usize,
    (max_records, max_bytes): (usize, usize),
    timeout: Duration,
) -> Vec<Record> {
    let fetch = |next: u64, want: usize| {
        log.read(topic, partition, next, want.min(max_records), max_bytes)
            .unwrap_or_else(|e| panic!("read {topic}/{partition}@{next}: {e}"))
    };
    read_until(log, (topic, partition), from, n, timeout, &fetch)
}

/// [`read_exactly`] with [`Log::read_batch`] instead of [`Log::read`]; the records are
/// those of the batches.
///
/// # Panics
/// As [`read_exactly`], and if a batch does not start at the offset asked for.
pub fn read_batch_exactly(
    log: &dyn Log,
    topic: &str,
    partition: u32,
    from: u64,
    n: usize,
    (max_records, max_bytes): (usize, usize),
    timeout: Duration,
) -> Vec<Record> {
    let fetch = |next: u64, want: usize| {
        let batch = log
            .read_batch(topic, partition, next, want.min(max_records), max_bytes)
            .unwrap_or_else(|e| panic!("read_batch {topic}/{partition}@{next}: {e}"));
        assert_eq!(batch.first_offset(), next, "a batch starts where asked");
        assert_eq!(batch.next_offset(), next + batch.len() as u64);
        let records = batch.to_records();
        assert_eq!(
            batch.last_timestamp_ms(),
            records.last().map(|r| r.timestamp_ms)
        );
        records
    };
    read_until(log, (topic, partition), from, n, timeout, &fetch)
}

/// Collects `n` records from `from` with `fetch(next offset, records still wanted)`,
/// waiting with [`Log::wait_for`] whenever it returns none.
fn read_until(
    log: &dyn Log,
    (topic, partition): (&str, u32),
    from: u64,
    n: usize,
    timeout: Duration,
    fetch: &dyn Fn(u64, usize) -> Vec<Record>,
) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::with_capacity(n);
    let mut next = from;
    let mut last_progress = Instant::now();
    while out.len() < n {
        let want = n - out.len();
        let batch = fetch(next, want);
        if batch.is_empty() {
            assert!(
                last_progress.elapsed() < timeout,
                "{topic}/{partition}: only {} of {n} records from {from} readable after {timeout:?}",
                out.len()
            );
            log.wait_for(topic, partition, next, Duration::from_millis(200))
                .unwrap_or_else(|e| panic!("wait_for {topic}/{partition}@{next}: {e}"));
            continue;
        }
        assert!(batch.len() <= want, "read returned more than max_records");
        for record in batch {
            assert_eq!(
                record.offset, next,
                "{topic}/{partition}: offsets not contiguous"
            );
            next += 1;
            out.push(record);
        }
        last_progress = Instant::now();
    }
    out
}

fn records(partition: u32, from: usize, n: usize, payload: usize) -> Vec<NewRecord> {
    (from..from + n)
        .map(|i| {
            let mut body = format!("{{\"p\":{partition},\"i\":{i},\"pad\":\"").into_bytes();
            body.resize(payload.max(body.len() + 2) - 2, b'x');
            body.extend_from_slice(b"\"}");
            NewRecord::with_key(format!("k{i}"), body, 1_700_000_000_000 + i as i64)
        })
        .collect()
}

fn assert_same(caps: &Caps, got: &[Record], want: &[NewRecord], first_offset: u64) {
    assert_eq!(got.len(), want.len(), "record count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.offset, first_offset + i as u64, "offset of record {i}");
        assert_eq!(g.payload, w.payload, "payload at offset {}", g.offset);
        assert_eq!(g.key, w.key, "key at offset {}", g.offset);
        if caps.exact_timestamps {
            assert_eq!(
                g.timestamp_ms, w.timestamp_ms,
                "timestamp at offset {}",
                g.offset
            );
        }
    }
}

/// Appends return dense offsets from 0 per partition; reads from any offset, with
/// [`Log::read`] or [`Log::read_batch`], return the records as appended; typed errors for
/// misuse.
pub fn round_trip(backend: &dyn Backend) {
    let caps = backend.caps();
    let log = backend.open();
    let topic = backend.topic("round-trip");
    log.create_topic(&topic, 2).expect("create topic");
    assert!(matches!(
        log.create_topic(&topic, 2),
        Err(LogError::TopicExists(_))
    ));
    assert_eq!(log.partition_count(&topic).unwrap(), 2);

    let first = records(1, 0, 10, 40);
    let second = records(1, 10, 5, 40);
    let r1 = log.append(&topic, 1, &first).unwrap();
    let r2 = log.append(&topic, 1, &second).unwrap();
    assert_eq!((r1.start, r1.end, r2.start, r2.end), (0, 10, 10, 15));
    let keyless = vec![NewRecord::new(&b"{\"solo\":true}"[..], 5)];
    assert_eq!(log.append(&topic, 0, &keyless).unwrap().start, 0);
    let empty = log.append(&topic, 0, &[]).unwrap();
    assert!(empty.is_empty(), "an empty batch gets an empty range");

    let all: Vec<NewRecord> = first.iter().chain(&second).cloned().collect();
    let t = caps.visibility_timeout;
    let got = read_exactly(&*log, &topic, 1, 0, 15, (100, 1 << 20), t);
    assert_same(&caps, &got, &all, 0);
    let got = read_exactly(&*log, &topic, 1, 7, 8, (3, 1 << 20), t);
    assert_same(&caps, &got, &all[7..], 7);
    let got = read_exactly(&*log, &topic, 0, 0, 1, (10, 1 << 20), t);
    assert_eq!(
        (got[0].key.clone(), got[0].payload.clone()),
        (None, keyless[0].payload.clone())
    );

    // Limits: at most max_records; the first record even over max_bytes. (A remote log
    // may have to fetch records again before serving them: wait until it has.)
    assert!(log.wait_for(&topic, 1, 0, t).unwrap());
    let one = log.read(&topic, 1, 0, 10, 1).unwrap();
    assert_eq!(one.len(), 1, "max_bytes never starves a reader");
    assert!(log.read(&topic, 1, 0, 4, usize::MAX).unwrap().len() <= 4);
    assert!(
        log.read(&topic, 1, 15, 10, 1 << 20).unwrap().is_empty(),
        "read at the end"
    );
    assert!(matches!(
        log.read(&topic, 1, 1_000, 10, 1 << 20),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(&topic, 2, 0, 10, 10),
        Err(LogError::UnknownPartition { .. })
    ));
    check_read_batch(&caps, &*log, &topic, &all);
    let got = read_batch_exactly(&*log, &topic, 0, 0, 1, (10, 1 << 20), t);
    assert_eq!(
        (got[0].key.clone(), got[0].payload.clone()),
        (None, keyless[0].payload.clone())
    );

    let missing = backend.topic("missing");
    assert!(matches!(
        log.read_batch(&missing, 0, 0, 10, 10),
        Err(LogError::UnknownTopic(_))
    ));
    assert!(matches!(
        log.end_offset(&missing, 0),
        Err(LogError::UnknownTopic(_))
    ));
    assert!(matches!(
        log.append(&missing, 0, &keyless),
        Err(LogError::UnknownTopic(_))
    ));
}

/// [`Log::read_batch`] on partition 1 of [`round_trip`]'s topic, which holds `all`: the
/// records, limits and errors of [`Log::read`].
fn check_read_batch(caps: &Caps, log: &dyn Log, topic: &str, all: &[NewRecord]) {
    let t = caps.visibility_timeout;
    let got = read_batch_exactly(log, topic, 1, 0, all.len(), (100, 1 << 20), t);
    assert_same(caps, &got, all, 0);
    let got = read_batch_exactly(log, topic, 1, 7, all.len() - 7, (3, 1 << 20), t);
    assert_same(caps, &got, &all[7..], 7);
    // As for `read`: a remote backend may have to fetch the records again first.
    assert!(log.wait_for(topic, 1, 0, t).unwrap());
    let one = log.read_batch(topic, 1, 0, 10, 1).unwrap();
    assert_eq!(
        (one.len(), one.first_offset(), one.next_offset()),
        (1, 0, 1),
        "max_bytes never starves a batch reader"
    );
    let record = one.iter().next().unwrap();
    assert_eq!(
        (record.offset, record.key, record.payload),
        (0, all[0].key.as_deref(), &all[0].payload[..])
    );
    assert!(log.read_batch(topic, 1, 0, 4, usize::MAX).unwrap().len() <= 4);
    let end = all.len() as u64;
    let at_end = log.read_batch(topic, 1, end, 10, 1 << 20).unwrap();
    assert!(
        at_end.is_empty() && at_end.next_offset() == end,
        "read_batch at the end"
    );
    assert!(matches!(
        log.read_batch(topic, 1, 1_000, 10, 1 << 20),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read_batch(topic, 2, 0, 10, 10),
        Err(LogError::UnknownPartition { .. })
    ));
}

/// A backlog far larger than any fetch size, appended in large batches, replays from
/// offset 0 with every offset exactly once and every payload intact, through
/// [`Log::read`] and through [`Log::read_batch`].
pub fn large_backlog(backend: &dyn Backend) {
    let caps = backend.caps();
    let log = backend.open();
    let topic = backend.topic("backlog");
    log.create_topic(&topic, 2).unwrap();
    let n = caps.backlog_records;
    for p in 0..2 {
        let mut done = 0;
        while done < n {
            let batch = records(
                p,
                done,
                caps.backlog_batch.min(n - done),
                caps.backlog_payload,
            );
            let range = log.append(&topic, p, &batch).unwrap();
            assert_eq!(range.start, done as u64, "append offsets are dense");
            done += batch.len();
        }
        assert_eq!(log.end_offset(&topic, p).unwrap(), n as u64);
    }
    let deadline = caps.visibility_timeout.max(Duration::from_secs(10));
    for p in 0..2 {
        let got = read_exactly(&*log, &topic, p, 0, n, (4_096, 256 << 10), deadline);
        let mut seen = BTreeSet::new();
        for (i, record) in got.iter().enumerate() {
            assert!(seen.insert(record.offset), "offset {} twice", record.offset);
            let expect = format!("{{\"p\":{p},\"i\":{i},\"pad\":\"");
            assert!(
                record.payload.starts_with(expect.as_bytes()),
                "offset {} holds the wrong record",
                record.offset
            );
            assert_eq!(
                record.payload.len(),
                caps.backlog_payload.max(expect.len() + 2)
            );
        }
        assert_eq!(seen.len(), n);
        let batched = read_batch_exactly(&*log, &topic, p, 0, n, (4_096, 256 << 10), deadline);
        assert!(batched == got, "read_batch replays what read does");
    }
}

/// A follower is woken by [`Log::notify_when_beyond`] and [`Log::wait_for`] when new
/// records arrive, and not before.
pub fn follow(backend: &dyn Backend) {
    let caps = backend.caps();
    let log = backend.open();
    let topic = backend.topic("follow");
    log.create_topic(&topic, 1).unwrap();
    assert!(!log
        .wait_for(&topic, 0, 0, Duration::from_millis(50))
        .unwrap());

    let fired = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let f = fired.clone();
    log.notify_when_beyond(
        &topic,
        0,
        0,
        Box::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(());
        }),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "notified before any record"
    );

    let writer = {
        let log = log.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            for i in 0..20 {
                log.append(&topic, 0, &records(0, i, 1, 30)).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    rx.recv_timeout(caps.visibility_timeout)
        .expect("notify_when_beyond fired after an append");
    let got = read_exactly(
        &*log,
        &topic,
        0,
        0,
        20,
        (7, 1 << 20),
        caps.visibility_timeout,
    );
    writer.join().unwrap();
    assert_same(&caps, &got, &records(0, 0, 20, 30), 0);
    assert_eq!(fired.load(Ordering::SeqCst), 1, "a callback fires once");
    assert!(log
        .wait_for(&topic, 0, 19, caps.visibility_timeout)
        .unwrap());
    assert!(!log
        .wait_for(&topic, 0, 20, Duration::from_millis(100))
        .unwrap());

    // Already beyond: the callback runs at once (or very soon, for remote logs).
    let (tx, rx) = mpsc::channel();
    log.notify_when_beyond(&topic, 0, 3, Box::new(move || tx.send(()).unwrap()))
        .unwrap();
    rx.recv_timeout(caps.visibility_timeout)
        .expect("notified for an offset already there");
}

/// End offsets, descriptions and topic lists agree with what was appended.
pub fn end_offsets(backend: &dyn Backend) {
    let log = backend.open();
    let topic = backend.topic("ends");
    log.create_topic(&topic, 3).unwrap();
    for p in 0..3u32 {
        assert_eq!(log.end_offset(&topic, p).unwrap(), 0);
        let n = 4 * p as usize + 1;
        log.append(&topic, p, &records(p, 0, n, 50)).unwrap();
        assert_eq!(log.end_offset(&topic, p).unwrap(), n as u64);
    }
    let d = log.describe_topic(&topic).unwrap();
    assert_eq!(d.name, topic);
    let ends: Vec<u64> = d.partitions.iter().map(|p| p.end_offset).collect();
    assert_eq!(ends, vec![1, 5, 9]);
    assert!(d.partitions.iter().all(|p| p.start_offset == 0));
    assert_eq!(
        d.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let topics = log.list_topics().unwrap();
    assert!(topics.contains(&topic), "{topic} listed in {topics:?}");
    let mut sorted = topics.clone();
    sorted.sort();
    assert_eq!(topics, sorted, "list_topics is sorted");
    log.flush().unwrap();
}

/// [`Log::append_routed`]: keyed records go to [`partition_for_key`], keyless ones
/// spread over every partition; the returned positions hold the records.
pub fn routing(backend: &dyn Backend) {
    let caps = backend.caps();
    let log = backend.open();
    let topic = backend.topic("routing");
    log.create_topic(&topic, 4).unwrap();
    let mut batch: Vec<NewRecord> = (0..40)
        .map(|i| NewRecord::with_key(format!("user-{i}"), format!("{{\"k\":{i}}}"), i))
        .collect();
    batch.extend((0..8).map(|i| NewRecord::new(format!("{{\"nokey\":{i}}}"), i)));
    let placed = log.append_routed(&topic, &batch).unwrap();
    assert_eq!(placed.len(), batch.len());
    let mut keyless_partitions = BTreeSet::new();
    for (record, &(p, _)) in batch.iter().zip(&placed) {
        match &record.key {
            Some(key) => assert_eq!(p, partition_for_key(key, 4), "key {key:?}"),
            None => {
                keyless_partitions.insert(p);
            }
        }
    }
    assert_eq!(keyless_partitions.len(), 4, "keyless records round-robin");
    for p in 0..4 {
        let n = placed.iter().filter(|(q, _)| *q == p).count();
        let got = read_exactly(
            &*log,
            &topic,
            p,
            0,
            n,
            (100, 1 << 20),
            caps.visibility_timeout,
        );
        for (record, &(q, offset)) in batch.iter().zip(&placed) {
            if q == p {
                let back = &got[offset as usize];
                assert_eq!(back.payload, record.payload, "{p}@{offset}");
            }
        }
    }
}

/// After the log is dropped and reopened, everything acknowledged is there, appends
/// continue at the end, and a reader resumes from a stored position.
pub fn restart_and_resume(backend: &dyn Backend) {
    let caps = backend.caps();
    if !caps.durable {
        return;
    }
    let topic = backend.topic("restart");
    let first = records(0, 0, 30, 60);
    let resume_at;
    {
        let log = backend.open();
        log.create_topic(&topic, 2).unwrap();
        log.append(&topic, 0, &first).unwrap();
        log.append(&topic, 1, &first[..3]).unwrap();
        // A reader processes part of the partition and stores its position.
        let got = read_exactly(
            &*log,
            &topic,
            0,
            0,
            12,
            (5, 1 << 20),
            caps.visibility_timeout,
        );
        resume_at = got.last().unwrap().offset + 1;
        log.flush().unwrap();
    }
    let log = backend.open();
    assert_eq!(log.partition_count(&topic).unwrap(), 2);
    assert_eq!(log.end_offset(&topic, 0).unwrap(), 30);
    assert_eq!(log.end_offset(&topic, 1).unwrap(), 3);
    let more = records(0, 30, 10, 60);
    assert_eq!(log.append(&topic, 0, &more).unwrap().start, 30);
    let all: Vec<NewRecord> = first.into_iter().chain(more).collect();
    let rest = read_exactly(
        &*log,
        &topic,
        0,
        resume_at,
        40 - resume_at as usize,
        (8, 1 << 20),
        caps.visibility_timeout,
    );
    assert_same(&caps, &rest, &all[resume_at as usize..], resume_at);
}

/// Runs every check in order.
pub fn all(backend: &dyn Backend) {
    round_trip(backend);
    end_offsets(backend);
    routing(backend);
    follow(backend);
    restart_and_resume(backend);
    large_backlog(backend);
}
