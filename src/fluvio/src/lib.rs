//! [`FluvioLog`]: kappa's [`Log`] over a [Fluvio](https://www.fluvio.io) cluster, the
//! distributed log behind the same trait as the embedded one.
//!
//! The trait is synchronous and `read` must not block, while the `fluvio` client is
//! async and streams records. So a `FluvioLog` owns a small tokio runtime and:
//!
//! - **reads** through [`cursor`]s: a consumer stream per partition being read, opened at
//!   the absolute offset a reader asks for, filling a bounded buffer that `read` serves
//!   from without waiting; a read outside every cursor's window opens a new cursor there
//!   (at most [`FluvioOptions::max_cursors`] per partition, so an old version following
//!   the tip and a new one replaying from 0 each keep theirs). The consumer task runs
//!   the `notify_when_beyond` callbacks when records arrive, and **detects gaps** (see
//!   [`cursor`]) so that the client bug that skips records on large backlogs never loses
//!   one; [`FluvioLog::stats`] counts them.
//! - **appends** through a producer per partition ([`writer`]): acknowledged once the
//!   leader has the whole batch, offsets taken from the produce metadata.
//! - **administers** topics through the SC ([`topics`]); end offsets come from the
//!   partition leaders, exactly.
//!
//! Topic names are mapped to Fluvio's stricter alphabet by [`names`]. Errors map to
//! [`LogError`]: an unreachable cluster is [`LogError::Unreachable`], an offline
//! partition [`LogError::PartitionOffline`] (both transient, retried with backoff by
//! readers), a missing topic [`LogError::UnknownTopic`].
//!
//! Records' timestamps are Fluvio's: the producer stamps each batch with its creation
//! time, so [`NewRecord::timestamp_ms`] is not preserved (kappa stamps records with the
//! ingestion time anyway).
//!
//! ```no_run
//! use kappa_fluvio::{FluvioLog, FluvioOptions};
//! use kappa_log::{Log, NewRecord};
//! let log = FluvioLog::connect(FluvioOptions::endpoint("127.0.0.1:9003")).unwrap();
//! log.create_topic("clicks", 2).unwrap();
//! let range = log.append("clicks", 0, &[NewRecord::new(&b"{}"[..], 0)]).unwrap();
//! assert_eq!(range.len(), 1);
//! ```

pub mod cursor;
mod errors;
pub mod names;
mod options;
mod topics;
pub mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fluvio::Fluvio;
use kappa_log::{
    validate_topic, Log, LogError, NewRecord, Notify, OffsetRange, Record, Result, TopicDescription,
};

use crate::cursor::{Cursor, Served, Target};
use crate::errors::{classify, Op};
pub use crate::options::FluvioOptions;

/// Counters of what the backend did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FluvioStats {
    /// Jumps in a consumer stream's offsets (records the client skipped), each repaired
    /// by reopening the stream at the expected offset.
    pub gaps: u64,
    /// Records a stream delivered again (below the expected offset), dropped.
    pub duplicates: u64,
    /// Consumer streams opened (one per cursor, plus one per reopen).
    pub streams_opened: u64,
    /// Error codes consumer streams yielded (each followed by a reopen).
    pub stream_errors: u64,
    /// Records delivered into read buffers.
    pub records_read: u64,
    /// Records acknowledged by appends.
    pub records_appended: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub gaps: AtomicU64,
    pub duplicates: AtomicU64,
    pub streams_opened: AtomicU64,
    pub stream_errors: AtomicU64,
    pub records_read: AtomicU64,
    pub records_appended: AtomicU64,
}

type Key = (String, u32);

/// What the log's tasks share.
pub(crate) struct Shared {
    pub fluvio: Fluvio,
    pub endpoint: String,
    pub options: FluvioOptions,
    pub stats: Stats,
    pub producers: writer::Producers,
    cursors: Mutex<HashMap<Key, Vec<Arc<Cursor>>>>,
    ends: Mutex<HashMap<Key, u64>>,
    partitions: Mutex<HashMap<String, u32>>,
}

impl Shared {
    /// The highest end offset seen for a partition (appends, end-offset requests,
    /// records read); 0 if none.
    pub(crate) fn known_end(&self, topic: &str, partition: u32) -> u64 {
        let ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        ends.get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn note_end(&self, topic: &str, partition: u32, end: u64) {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        let known = ends.entry((topic.to_string(), partition)).or_insert(0);
        *known = (*known).max(end);
    }
}

/// A [`Log`] over a Fluvio cluster. See the crate docs.
pub struct FluvioLog {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
}

impl FluvioLog {
    /// Connects to the cluster, retrying for [`FluvioOptions::connect_timeout`];
    /// [`LogError::Unreachable`] if it does not answer.
    pub fn connect(options: FluvioOptions) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kappa-fluvio")
            .enable_all()
            .build()
            .map_err(|source| LogError::Io {
                context: "starting the fluvio client runtime".into(),
                source,
                may_have_been_written: false,
            })?;
        let config = options.cluster_config()?;
        let endpoint = config.endpoint.clone();
        let timeout = options.connect_timeout;
        let fluvio = run_on(runtime.handle(), async move {
            let deadline = Instant::now() + timeout;
            let mut delay = Duration::from_millis(100);
            loop {
                let attempt =
                    tokio::time::timeout(timeout, Fluvio::connect_with_config(&config)).await;
                let error = match attempt {
                    Ok(Ok(fluvio)) => return Ok(fluvio),
                    Ok(Err(e)) => classify(&config.endpoint, Op::Connect, &e),
                    Err(_) => LogError::Unreachable {
                        endpoint: config.endpoint.clone(),
                        reason: format!("no answer within {timeout:?}"),
                    },
                };
                if Instant::now() + delay >= deadline {
                    return Err(match error {
                        e @ LogError::Unreachable { .. } => e,
                        other => LogError::Unreachable {
                            endpoint: config.endpoint.clone(),
                            reason: other.to_string(),
                        },
                    });
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        })??;
        let shared = Arc::new(Shared {
            fluvio,
            endpoint,
            options,
            stats: Stats::default(),
            producers: writer::Producers::default(),
            cursors: Mutex::new(HashMap::new()),
            ends: Mutex::new(HashMap::new()),
            partitions: Mutex::new(HashMap::new()),
        });
        runtime.spawn(collect_idle_cursors(Arc::downgrade(&shared)));
        Ok(FluvioLog {
            runtime: Some(runtime),
            shared,
        })
    }

    /// The cluster address this log talks to.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// What the backend did so far (gaps repaired, streams opened, records moved).
    pub fn stats(&self) -> FluvioStats {
        let s = &self.shared.stats;
        FluvioStats {
            gaps: s.gaps.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            streams_opened: s.streams_opened.load(Ordering::Relaxed),
            stream_errors: s.stream_errors.load(Ordering::Relaxed),
            records_read: s.records_read.load(Ordering::Relaxed),
            records_appended: s.records_appended.load(Ordering::Relaxed),
        }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("runtime lives until drop")
            .handle()
    }

    /// Runs a request on the runtime, bounded by `timeout`.
    fn request<T: Send + 'static>(
        &self,
        timeout: Duration,
        on_timeout: impl FnOnce() -> LogError,
        f: impl FnOnce(Arc<Shared>) -> std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send>>,
    ) -> Result<T> {
        let fut = f(self.shared.clone());
        run_on(self.handle(), async move {
            tokio::time::timeout(timeout, fut).await.ok()
        })?
        .unwrap_or_else(|| Err(on_timeout()))
    }

    fn unreachable(&self, what: &str) -> impl FnOnce() -> LogError {
        let endpoint = self.shared.endpoint.clone();
        let timeout = self.shared.options.request_timeout;
        let what = what.to_string();
        move || LogError::Unreachable {
            endpoint,
            reason: format!("no answer within {timeout:?} while {what}"),
        }
    }

    /// Checks the partition exists; the partition count is cached per topic.
    fn check_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let partitions = self.partition_count(topic)?;
        if partition >= partitions {
            return Err(LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions,
            });
        }
        Ok(())
    }

    /// The cursor serving `offset`, opened there if none covers it and `open`.
    fn cursor(&self, topic: &str, partition: u32, offset: u64) -> Result<Arc<Cursor>> {
        let key = (topic.to_string(), partition);
        let mut cursors = self
            .shared
            .cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = cursors.entry(key).or_default();
        list.retain(|c| !c.is_closed() || c.has_callbacks());
        if let Some(c) = list.iter().find(|c| c.covers(offset)) {
            return Ok(c.clone());
        }
        if list.len() >= self.shared.options.max_cursors.max(1) {
            // Evict the idlest cursor, preferring one nobody waits on.
            let victim = (0..list.len())
                .max_by_key(|&i| (!list[i].has_callbacks(), list[i].idle_for()))
                .expect("non-empty");
            list.swap_remove(victim).close();
        }
        let cursor = Cursor::new(offset);
        list.push(cursor.clone());
        let target = Target {
            topic: topic.to_string(),
            fluvio_topic: names::to_fluvio(topic)?,
            partition,
        };
        self.handle()
            .spawn(cursor::run(self.shared.clone(), target, cursor.clone()));
        Ok(cursor)
    }

    fn drop_cursor(&self, topic: &str, partition: u32, cursor: &Arc<Cursor>) {
        let mut cursors = self
            .shared
            .cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = cursors.get_mut(&(topic.to_string(), partition)) {
            list.retain(|c| !Arc::ptr_eq(c, cursor));
        }
    }
}

impl Drop for FluvioLog {
    fn drop(&mut self) {
        let cursors = std::mem::take(
            &mut *self
                .shared
                .cursors
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for cursor in cursors.into_values().flatten() {
            cursor.close();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `fut` on the runtime and blocks the calling thread for its output. Works from
/// any thread, including one inside another tokio runtime (where `block_on` panics).
fn run_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| LogError::Backend {
        backend: "fluvio",
        context: "running a request".into(),
        reason: "the client runtime shut down".into(),
        may_have_been_written: true,
    })
}

/// Closes cursors nobody read or waited on for [`FluvioOptions::cursor_idle`].
async fn collect_idle_cursors(shared: std::sync::Weak<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let idle = shared.options.cursor_idle;
        let mut cursors = shared
            .cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for list in cursors.values_mut() {
            list.retain(|c| {
                let keep = !c.is_closed() && (c.has_callbacks() || c.idle_for() < idle);
                if !keep {
                    c.close();
                }
                keep
            });
        }
        cursors.retain(|_, list| !list.is_empty());
    }
}

fn boxed<T, F>(fut: F) -> std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send>>
where
    F: Future<Output = Result<T>> + Send + 'static,
{
    Box::pin(fut)
}

impl Log for FluvioLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        validate_topic(topic, partitions)?;
        names::to_fluvio(topic)?;
        let t = topic.to_string();
        let timeout = self.shared.options.topic_ready_timeout * 2;
        self.request(timeout, self.unreachable("creating a topic"), move |s| {
            boxed(async move { topics::create(&s, &t, partitions).await })
        })?;
        let mut cache = self
            .shared
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.insert(topic.to_string(), partitions);
        Ok(())
    }

    fn list_topics(&self) -> Result<Vec<String>> {
        let timeout = self.shared.options.request_timeout;
        self.request(timeout, self.unreachable("listing topics"), |s| {
            boxed(async move { topics::list(&s).await })
        })
    }

    fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        let t = topic.to_string();
        let timeout = self.shared.options.request_timeout * 4;
        let partitions = self.request(timeout, self.unreachable("describing a topic"), |s| {
            boxed(async move { topics::describe(&s, &t).await })
        })?;
        Ok(TopicDescription {
            name: topic.to_string(),
            partitions,
        })
    }

    fn partition_count(&self, topic: &str) -> Result<u32> {
        {
            let cache = self
                .shared
                .partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(&n) = cache.get(topic) {
                return Ok(n);
            }
        }
        let t = topic.to_string();
        let timeout = self.shared.options.request_timeout;
        let n = self.request(timeout, self.unreachable("looking up a topic"), |s| {
            boxed(async move { topics::partition_count(&s, &t).await })
        })?;
        let mut cache = self
            .shared
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.insert(topic.to_string(), n);
        Ok(n)
    }

    fn append(&self, topic: &str, partition: u32, records: &[NewRecord]) -> Result<OffsetRange> {
        self.check_partition(topic, partition)?;
        if records.is_empty() {
            let end = self.end_offset(topic, partition)?;
            return Ok(OffsetRange { start: end, end });
        }
        let (t, ft) = (topic.to_string(), names::to_fluvio(topic)?);
        let batch = records.to_vec();
        let timeout = self.shared.options.request_timeout * 4;
        let on_timeout = {
            let context = format!("appending to {topic}/{partition}");
            move || LogError::Backend {
                backend: "fluvio",
                context,
                reason: format!("no acknowledgement within {timeout:?}"),
                may_have_been_written: true,
            }
        };
        let range = self.request(timeout, on_timeout, move |s| {
            boxed(async move { writer::append(&s, &t, &ft, partition, batch).await })
        })?;
        self.shared.note_end(topic, partition, range.end);
        let appended = &self.shared.stats.records_appended;
        appended.fetch_add(range.len(), Ordering::Relaxed);
        Ok(range)
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        self.check_partition(topic, partition)?;
        if max_records == 0 {
            return Ok(Vec::new());
        }
        if from_offset > self.shared.known_end(topic, partition) {
            // Only here does a read ask the cluster (once per partition and position).
            let end = self.end_offset(topic, partition)?;
            if from_offset > end {
                return Err(LogError::OffsetOutOfRange {
                    topic: topic.to_string(),
                    partition,
                    offset: from_offset,
                    start: 0,
                    end,
                });
            }
        }
        let cursor = self.cursor(topic, partition, from_offset)?;
        match cursor.serve(from_offset, max_records, max_bytes) {
            Served::Records(records) => Ok(records),
            Served::Failed(error) => {
                self.drop_cursor(topic, partition, &cursor);
                Err(error)
            }
            Served::Unavailable(reason) => Err(LogError::PartitionOffline {
                topic: topic.to_string(),
                partition,
                reason,
            }),
        }
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        self.check_partition(topic, partition)?;
        let (t, ft) = (topic.to_string(), names::to_fluvio(topic)?);
        let timeout = self.shared.options.request_timeout * 2;
        let end = self.request(timeout, self.unreachable("fetching an end offset"), |s| {
            boxed(async move {
                topics::fetch_end(&s, &ft, partition)
                    .await
                    .map_err(|e| classify(&s.endpoint, Op::Read(&t, partition), &e))
            })
        })?;
        self.shared.note_end(topic, partition, end);
        Ok(self.shared.known_end(topic, partition))
    }

    fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let (tx, rx) = mpsc::channel();
            self.notify_when_beyond(
                topic,
                partition,
                offset,
                Box::new(move || {
                    let _ = tx.send(());
                }),
            )?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(remaining).is_err() {
                return Ok(false);
            }
            // Woken: the record is buffered, or the cursor failed or was closed.
            let cursor = self.cursor(topic, partition, offset)?;
            match cursor.readable(offset) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(error) => {
                    self.drop_cursor(topic, partition, &cursor);
                    return Err(error);
                }
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    fn notify_when_beyond(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        callback: Notify,
    ) -> Result<()> {
        self.check_partition(topic, partition)?;
        self.cursor(topic, partition, offset)?
            .notify_beyond(offset, callback);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // Every append already waited for the leader's acknowledgement.
        Ok(())
    }
}
