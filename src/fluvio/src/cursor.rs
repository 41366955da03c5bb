//! A cursor: one Fluvio consumer stream over one partition, filling a bounded buffer of
//! contiguous records that [`crate::FluvioLog`]'s non-blocking `read` serves from.
//!
//! The buffer is a window `start..end` of consecutive offsets. The consumer task (see
//! [`run`]) appends at `end`; a reader trims below the offset it asks for, which frees
//! room (the task waits while the buffer holds [`crate::FluvioOptions::buffer_bytes`]).
//!
//! **Gap detection.** Offsets in a Fluvio partition are dense, so the task knows the
//! offset the next record must have. The published client (0.50.1) silently drops the
//! tail of a fetch response that the server cut at `max_bytes` and continues after it;
//! the task sees the jump, drops the stream, reopens it at `Offset::absolute(expected)`
//! and counts the event in [`crate::FluvioStats::gaps`]. Records at or below what it
//! already has (a client-side retry replaying them) are skipped and counted as
//! duplicates. A jump that repeats at the same offset [`MAX_SAME_GAP`] times is a real
//! hole (records removed by retention) and fails the cursor with
//! [`LogError::OffsetOutOfRange`] rather than skipping records silently.
//!
//! **Liveness.** A stream whose SPU went away does not always end: it can stay silent
//! like an idle partition. So a stream silent for [`PROBE_IDLE`] is probed by asking
//! the leader for the partition's end offset; a failure is retried like any transient
//! one, and an end beyond what the stream delivered reopens it. While the task retries
//! a transient failure, a read finding nothing buffered returns that failure
//! ([`Served::Unavailable`]) instead of an empty batch, so that a source can report its
//! partition unreachable.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fluvio::consumer::ConsumerConfigExtBuilder;
use fluvio::Offset;
use futures_util::{FutureExt, StreamExt};
use kappa_log::{LogError, Notify, Record};

use crate::errors::{classify, classify_code, Op};
use crate::Shared;

/// How often the same gap may recur before it is taken for a real hole.
pub const MAX_SAME_GAP: u32 = 8;

/// How long a stream may deliver nothing before the leader is asked for the end offset.
pub const PROBE_IDLE: Duration = Duration::from_secs(3);

/// Records taken from the stream per lock of the buffer.
const DRAIN: usize = 2_048;

/// One consumer stream and its buffer.
pub(crate) struct Cursor {
    inner: Mutex<Inner>,
    space: tokio::sync::Notify,
    closed: AtomicBool,
}

struct Inner {
    start: u64,
    records: VecDeque<Record>,
    bytes: usize,
    callbacks: Vec<(u64, Notify)>,
    failed: Option<LogError>,
    /// The transient failure the consumer task is retrying, until a stream opens.
    retrying: Option<String>,
    last_used: Instant,
}

/// What a reader gets from a cursor.
pub(crate) enum Served {
    /// Records from the requested offset (possibly none yet).
    Records(Vec<Record>),
    /// The cursor failed; it is to be dropped and the error returned.
    Failed(LogError),
    /// Nothing is buffered and the consumer task is retrying this failure: the
    /// partition cannot be read now (the cursor is kept).
    Unavailable(String),
}

impl Cursor {
    pub(crate) fn new(start: u64) -> Arc<Self> {
        Arc::new(Cursor {
            inner: Mutex::new(Inner {
                start,
                records: VecDeque::new(),
                bytes: 0,
                callbacks: Vec::new(),
                failed: None,
                retrying: None,
                last_used: Instant::now(),
            }),
            space: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Callbacks never run under the lock, so a poisoned lock holds consistent state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The window `start..end` of offsets the cursor holds.
    pub(crate) fn window(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.start, inner.start + inner.records.len() as u64)
    }

    /// Whether the cursor can serve a read from `offset` (now or once records arrive).
    pub(crate) fn covers(&self, offset: u64) -> bool {
        let (start, end) = self.window();
        start <= offset && offset <= end && !self.is_closed()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn idle_for(&self) -> Duration {
        self.lock().last_used.elapsed()
    }

    pub(crate) fn has_callbacks(&self) -> bool {
        !self.lock().callbacks.is_empty()
    }

    /// Serves a read from `from` (which the cursor covers) and trims below it.
    pub(crate) fn serve(&self, from: u64, max_records: usize, max_bytes: usize) -> Served {
        let mut inner = self.lock();
        inner.last_used = Instant::now();
        if let Some(error) = inner.failed.take() {
            return Served::Failed(error);
        }
        let mut trimmed = false;
        while inner.start < from {
            let Some(record) = inner.records.pop_front() else {
                break;
            };
            inner.bytes -= record_bytes(&record);
            inner.start += 1;
            trimmed = true;
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for record in inner.records.iter().take(max_records) {
            bytes += record_bytes(record);
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(record.clone());
        }
        let retrying = inner.retrying.clone().filter(|_| out.is_empty());
        drop(inner);
        if trimmed {
            self.space.notify_one();
        }
        match retrying {
            Some(reason) => Served::Unavailable(reason),
            None => Served::Records(out),
        }
    }

    /// Whether the record at `offset` is buffered; the cursor's failure, once.
    pub(crate) fn readable(&self, offset: u64) -> Result<bool, LogError> {
        let mut inner = self.lock();
        if let Some(error) = inner.failed.take() {
            return Err(error);
        }
        Ok(inner.start <= offset && offset < inner.start + inner.records.len() as u64)
    }

    /// Runs `callback` once the record at `offset` is buffered (now if it is).
    pub(crate) fn notify_beyond(&self, offset: u64, callback: Notify) {
        let mut inner = self.lock();
        inner.last_used = Instant::now();
        if inner.start + inner.records.len() as u64 > offset
            || inner.failed.is_some()
            || self.is_closed()
        {
            drop(inner);
            callback();
        } else {
            inner.callbacks.push((offset, callback));
        }
    }

    /// Appends records at the end of the window and runs the callbacks now due.
    fn push(&self, records: Vec<Record>) {
        let due = {
            let mut inner = self.lock();
            for record in records {
                inner.bytes += record_bytes(&record);
                inner.records.push_back(record);
            }
            let end = inner.start + inner.records.len() as u64;
            take_callbacks(&mut inner, |offset| offset < end)
        };
        for callback in due {
            callback();
        }
    }

    /// Moves an empty window to `start` (the partition ends below where it was opened).
    fn restart_at(&self, start: u64) {
        let mut inner = self.lock();
        if inner.records.is_empty() {
            inner.start = start;
        }
    }

    /// Notes that the consumer task is retrying `error` (or, with `None`, that a stream
    /// is open again). On the first failure waiters are woken, so that a reader waiting
    /// for records learns that none can come for now.
    fn set_retrying(&self, error: Option<&LogError>) {
        let due = {
            let mut inner = self.lock();
            let first = inner.retrying.is_none() && error.is_some();
            inner.retrying = error.map(ToString::to_string);
            if first {
                take_callbacks(&mut inner, |_| true)
            } else {
                Vec::new()
            }
        };
        for callback in due {
            callback();
        }
    }

    /// Fails the cursor: the next read returns `error`; waiters are woken to see it.
    fn fail(&self, error: LogError) {
        let due = {
            let mut inner = self.lock();
            inner.failed = Some(error);
            take_callbacks(&mut inner, |_| true)
        };
        self.closed.store(true, Ordering::Release);
        for callback in due {
            callback();
        }
    }

    /// Stops the consumer task; waiters are woken (spuriously) so they read again and
    /// open a new cursor if they still need one.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.space.notify_one();
        let due = take_callbacks(&mut self.lock(), |_| true);
        for callback in due {
            callback();
        }
    }

    fn is_full(&self, limit: usize) -> bool {
        self.lock().bytes >= limit
    }
}

fn take_callbacks(inner: &mut Inner, due: impl Fn(u64) -> bool) -> Vec<Notify> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < inner.callbacks.len() {
        if due(inner.callbacks[i].0) {
            out.push(inner.callbacks.swap_remove(i).1);
        } else {
            i += 1;
        }
    }
    out
}

fn record_bytes(record: &Record) -> usize {
    record.payload.len() + record.key.as_ref().map_or(0, |k| k.len())
}

/// Where the consumer task is reading.
pub(crate) struct Target {
    pub topic: String,
    pub fluvio_topic: String,
    pub partition: u32,
}

/// The consumer task of a cursor: opens a stream at the cursor's end, fills the buffer,
/// detects gaps and reopens, retries transient failures with backoff, and stops when
/// the cursor is closed.
pub(crate) async fn run(shared: Arc<Shared>, target: Target, cursor: Arc<Cursor>) {
    let Target {
        topic,
        fluvio_topic,
        partition,
    } = target;
    let op = Op::Read(&topic, partition);
    let mut backoff = Backoff::default();
    let mut same_gap = (u64::MAX, 0u32);
    'open: while !cursor.is_closed() {
        let mut expected = cursor.window().1;
        if expected > shared.known_end(&topic, partition) {
            // Opening beyond the end is an error in Fluvio: start at the end instead.
            match crate::topics::fetch_end(&shared, &fluvio_topic, partition).await {
                Ok(end) => {
                    shared.note_end(&topic, partition, end);
                    if expected > end {
                        cursor.restart_at(end);
                        expected = end;
                    }
                }
                Err(e) => {
                    let error = classify(&shared.endpoint, op, &e);
                    if !error.is_transient() {
                        cursor.fail(error);
                        return;
                    }
                    cursor.set_retrying(Some(&error));
                    backoff.wait(&error).await;
                    continue 'open;
                }
            }
        }
        let config = ConsumerConfigExtBuilder::default()
            .topic(fluvio_topic.clone())
            .partition(partition)
            .offset_start(Offset::absolute(expected as i64).expect("offsets fit in i64"))
            .max_bytes(shared.options.fetch_max_bytes)
            .build();
        let config = match config {
            Ok(config) => config,
            Err(e) => {
                cursor.fail(LogError::Backend {
                    backend: "fluvio",
                    context: "building a consumer configuration".into(),
                    reason: e.to_string(),
                    may_have_been_written: false,
                });
                return;
            }
        };
        let opened = tokio::time::timeout(
            shared.options.request_timeout,
            shared.fluvio.consumer_with_config(config),
        )
        .await;
        let mut stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                let error = classify(&shared.endpoint, op, &e);
                if !error.is_transient() {
                    cursor.fail(error);
                    return;
                }
                cursor.set_retrying(Some(&error));
                backoff.wait(&error).await;
                continue 'open;
            }
            Err(_) => {
                let error = LogError::PartitionOffline {
                    topic: topic.clone(),
                    partition,
                    reason: "opening a consumer stream timed out".into(),
                };
                cursor.set_retrying(Some(&error));
                backoff.wait(&error).await;
                continue 'open;
            }
        };
        shared.stats.streams_opened.fetch_add(1, Ordering::Relaxed);
        cursor.set_retrying(None);
        let mut silent_since = Instant::now();
        loop {
            while cursor.is_full(shared.options.buffer_bytes) {
                if cursor.is_closed() {
                    return;
                }
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), cursor.space.notified()).await;
            }
            let first = tokio::select! {
                item = stream.next() => item,
                () = tokio::time::sleep(Duration::from_millis(250)) => {
                    if cursor.is_closed() {
                        return;
                    }
                    if silent_since.elapsed() < PROBE_IDLE {
                        continue;
                    }
                    silent_since = Instant::now();
                    match crate::topics::fetch_end(&shared, &fluvio_topic, partition).await {
                        Ok(end) if end <= expected => continue,
                        // The leader has records the stream did not deliver: reopen.
                        Ok(_) => continue 'open,
                        Err(e) => {
                            let error = classify(&shared.endpoint, op, &e);
                            cursor.set_retrying(Some(&error));
                            backoff.wait(&error).await;
                            continue 'open;
                        }
                    }
                }
            };
            silent_since = Instant::now();
            let mut batch = match first {
                Some(Ok(record)) => vec![record],
                Some(Err(code)) => {
                    let error = classify_code(op, &code);
                    shared.stats.stream_errors.fetch_add(1, Ordering::Relaxed);
                    cursor.set_retrying(Some(&error));
                    backoff.wait(&error).await;
                    continue 'open;
                }
                None => continue 'open,
            };
            let mut tail_error = false;
            while batch.len() < DRAIN {
                match stream.next().now_or_never() {
                    Some(Some(Ok(record))) => batch.push(record),
                    Some(Some(Err(_))) | Some(None) => {
                        tail_error = true;
                        break;
                    }
                    None => break,
                }
            }
            let mut records = Vec::with_capacity(batch.len());
            let mut gap = None;
            for r in batch {
                let offset = r.offset() as u64;
                if offset < expected {
                    shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if offset > expected {
                    gap = Some(offset);
                    break;
                }
                records.push(Record {
                    offset,
                    timestamp_ms: r.timestamp(),
                    key: r.key().map(Bytes::copy_from_slice),
                    payload: Bytes::copy_from_slice(r.value()),
                });
                expected += 1;
            }
            let delivered = records.len() as u64;
            if delivered > 0 {
                cursor.push(records);
                shared.note_end(&topic, partition, expected);
                shared
                    .stats
                    .records_read
                    .fetch_add(delivered, Ordering::Relaxed);
                backoff.reset();
            }
            if let Some(found) = gap {
                shared.stats.gaps.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    %topic, partition, expected, found,
                    "fluvio stream skipped records; reopening at the expected offset"
                );
                if same_gap.0 == expected {
                    same_gap.1 += 1;
                } else {
                    same_gap = (expected, 1);
                }
                if same_gap.1 >= MAX_SAME_GAP {
                    cursor.fail(LogError::OffsetOutOfRange {
                        topic: topic.clone(),
                        partition,
                        offset: expected,
                        start: found,
                        end: shared.known_end(&topic, partition),
                    });
                    return;
                }
                continue 'open;
            }
            if tail_error {
                continue 'open;
            }
        }
    }
}

/// Exponential backoff between retries of transient failures, 50 ms to 2 s.
#[derive(Default)]
struct Backoff {
    delay: Duration,
}

impl Backoff {
    async fn wait(&mut self, error: &LogError) {
        self.delay = (self.delay * 2).clamp(Duration::from_millis(50), Duration::from_secs(2));
        tracing::debug!(%error, delay = ?self.delay, "fluvio read failed; retrying");
        tokio::time::sleep(self.delay).await;
    }

    fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn rec(offset: u64) -> Record {
        Record {
            offset,
            timestamp_ms: 0,
            key: None,
            payload: Bytes::from(vec![b'x'; 10]),
        }
    }

    #[test]
    fn serves_trims_and_notifies() {
        let cursor = Cursor::new(5);
        assert!(cursor.covers(5) && !cursor.covers(4) && !cursor.covers(6));
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        cursor.notify_beyond(
            6,
            Box::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            }),
        );
        cursor.push(vec![rec(5), rec(6)]);
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        cursor.push(vec![rec(7)]);
        let Served::Records(got) = cursor.serve(6, 10, 15) else {
            panic!("failed")
        };
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![6]);
        assert_eq!(cursor.window(), (6, 8), "trimmed below the read offset");
        assert!(cursor.is_full(20) && !cursor.is_full(21));
    }

    /// Registers a callback for `offset` that counts how often it runs.
    fn waiter(cursor: &Cursor, offset: u64) -> Arc<AtomicUsize> {
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        cursor.notify_beyond(
            offset,
            Box::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            }),
        );
        fired
    }

    #[test]
    fn failure_wakes_waiters_and_is_returned_once() {
        let cursor = Cursor::new(0);
        let fired = waiter(&cursor, 0);
        cursor.fail(LogError::UnknownTopic("t".into()));
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert!(cursor.is_closed());
        assert!(matches!(cursor.serve(0, 1, 1), Served::Failed(_)));
        assert!(matches!(cursor.serve(0, 1, 1), Served::Records(r) if r.is_empty()));
    }

    #[test]
    fn a_retried_failure_wakes_waiters_and_is_reported_until_a_stream_opens() {
        let cursor = Cursor::new(0);
        let fired = waiter(&cursor, 0);
        let error = LogError::Unreachable {
            endpoint: "sc".into(),
            reason: "connection refused".into(),
        };
        cursor.set_retrying(Some(&error));
        cursor.set_retrying(Some(&error));
        assert_eq!(fired.load(Ordering::SeqCst), 1, "woken once");
        assert!(!cursor.is_closed(), "the cursor is kept");
        for _ in 0..2 {
            assert!(
                matches!(cursor.serve(0, 1, 1), Served::Unavailable(r) if r.contains("refused"))
            );
        }
        cursor.set_retrying(None);
        assert!(matches!(cursor.serve(0, 1, 1), Served::Records(r) if r.is_empty()));
    }

    #[test]
    fn empty_window_moves_down_to_the_end() {
        let cursor = Cursor::new(100);
        cursor.restart_at(40);
        assert_eq!(cursor.window(), (40, 40));
        cursor.push(vec![rec(40)]);
        cursor.restart_at(0);
        assert_eq!(cursor.window(), (40, 41), "a filled window stays");
    }
}
