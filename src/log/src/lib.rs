//! kappa's durable, replayable log.
//!
//! This crate owns the [`Log`] trait — the narrow, synchronous, object-safe interface
//! through which the rest of kappa appends to and replays topics — together with its
//! record types and two backends:
//!
//! - [`EmbeddedLog`]: segmented append-only files in a data directory, framed with
//!   CRC32C, recovered on open, with a per-batch or interval fsync policy;
//! - [`MemLog`]: an in-memory log with the same semantics, for tests of other crates;
//!
//! and [`UnreliableLog`], a wrapper over either whose reads fail on demand (tests of
//! how kappa reports an unreachable log).
//!
//! Reads return either a [`Record`] per record ([`Log::read`]) or one [`RecordBatch`]
//! ([`Log::read_batch`]), the cheaper shape for replaying many small records.
//!
//! Every backend is held as `Arc<dyn Log>`. Offsets are per partition, dense, and start
//! at 0; reading from offset 0 replays a partition from the beginning.
//!
//! ```
//! use kappa_log::{Log, MemLog, NewRecord};
//! let log = MemLog::new();
//! log.create_topic("events", 2).unwrap();
//! let range = log.append("events", 0, &[NewRecord::new(&b"{\"a\":1}"[..], 0)]).unwrap();
//! assert_eq!((range.start, range.end), (0, 1));
//! let records = log.read("events", 0, 0, 10, 1 << 20).unwrap();
//! assert_eq!(&records[0].payload[..], b"{\"a\":1}");
//! ```

mod batch;
#[cfg(feature = "conformance")]
pub mod conformance;
mod embedded;
mod error;
mod mem;
pub mod metrics;
mod routing;
mod unreliable;
mod watch;

use std::time::Duration;

use bytes::Bytes;

pub use batch::{Iter as RecordBatchIter, RecordBatch, RecordRef};
pub use embedded::{
    read_lock_info, validate_topic, Durability, EmbeddedLog, EmbeddedOptions, LockInfo,
};
pub use error::{LogError, Result};
pub use mem::MemLog;
pub use routing::{partition_for_key, round_robin_start};
pub use unreliable::UnreliableLog;

/// A record to be appended; the log assigns its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Optional key; routes the record to a partition in [`Log::append_routed`].
    pub key: Option<Bytes>,
    /// The record's bytes (kappa stores JSON, but the log does not look inside).
    pub payload: Bytes,
    /// Milliseconds since the Unix epoch, chosen by the producer.
    pub timestamp_ms: i64,
}

impl NewRecord {
    /// A record without a key.
    pub fn new(payload: impl Into<Bytes>, timestamp_ms: i64) -> Self {
        NewRecord {
            key: None,
            payload: payload.into(),
            timestamp_ms,
        }
    }

    /// A record with a key.
    pub fn with_key(key: impl Into<Bytes>, payload: impl Into<Bytes>, timestamp_ms: i64) -> Self {
        NewRecord {
            key: Some(key.into()),
            payload: payload.into(),
            timestamp_ms,
        }
    }
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's offset within its partition.
    pub offset: u64,
    /// The timestamp given at append time.
    pub timestamp_ms: i64,
    /// The key given at append time.
    pub key: Option<Bytes>,
    /// The payload given at append time.
    pub payload: Bytes,
}

/// A half-open range of offsets `start..end` assigned to one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    /// The first offset of the batch.
    pub start: u64,
    /// One past the last offset of the batch.
    pub end: u64,
}

impl OffsetRange {
    /// The number of offsets in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty (an empty batch was appended).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// What [`Log::describe_topic`] reports for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition number, `0..partitions`.
    pub partition: u32,
    /// The lowest readable offset (0 until retention exists).
    pub start_offset: u64,
    /// The high watermark: the next offset to be written.
    pub end_offset: u64,
    /// Bytes the partition occupies on disk, framing included ([`MemLog`] reports the
    /// key and payload bytes it holds).
    pub bytes: u64,
}

/// What [`Log::describe_topic`] reports for a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// One entry per partition, in partition order.
    pub partitions: Vec<PartitionInfo>,
}

/// A callback run once a partition's end offset moves beyond a given offset.
pub type Notify = Box<dyn FnOnce() + Send + 'static>;

/// The log: topics of partitions of offset-addressed records.
///
/// All methods are synchronous and never block on other readers; only
/// [`Log::wait_for`] blocks (bounded by its timeout), and [`Log::append`] blocks until its
/// batch is durable per the backend's durability policy.
pub trait Log: Send + Sync {
    /// Creates a topic with `partitions` partitions (at least 1).
    /// Fails with [`LogError::TopicExists`] if it exists.
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<()>;

    /// The names of all topics, sorted.
    fn list_topics(&self) -> Result<Vec<String>>;

    /// The topic's partitions with their offsets and sizes.
    fn describe_topic(&self, topic: &str) -> Result<TopicDescription>;

    /// The number of partitions of a topic.
    fn partition_count(&self, topic: &str) -> Result<u32>;

    /// Appends a batch to one partition and returns the offsets assigned to it.
    ///
    /// Returns only once the batch is durable per the durability policy; a batch is
    /// all-or-nothing with respect to recovery. On error, nothing of the batch is
    /// visible to readers; see [`LogError::may_have_been_written`] for whether it could
    /// reappear after a crash.
    fn append(&self, topic: &str, partition: u32, records: &[NewRecord]) -> Result<OffsetRange>;

    /// Reads records of one partition starting at `from_offset`, without blocking.
    ///
    /// Returns what is available now, possibly nothing: at most `max_records` records
    /// and, beyond the first record (always returned when one is available, so that a
    /// reader makes progress), at most `max_bytes` of key and payload bytes.
    /// `from_offset == end_offset` yields an empty vector; an offset below the start or
    /// beyond the end is [`LogError::OffsetOutOfRange`].
    fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>>;

    /// Reads like [`Log::read`] — same limits, same errors, the first record always
    /// returned when one is available — but returns the records as one [`RecordBatch`]:
    /// one buffer and a compact index instead of a [`Record`] per record, which is most
    /// of the cost of reading small records.
    ///
    /// A batch may hold fewer records than [`Log::read`] would return with the same
    /// limits (the embedded log stops a batch at the end of a segment); read on from
    /// [`RecordBatch::next_offset`]. It is empty only where `read` would be.
    ///
    /// The default implementation copies what [`Log::read`] returns into a batch.
    fn read_batch(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RecordBatch> {
        let records = self.read(topic, partition, from_offset, max_records, max_bytes)?;
        Ok(RecordBatch::from_records(from_offset, &records))
    }

    /// The high watermark: the next offset to be written. In the writer's process only
    /// acknowledged (durable) records count.
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64>;

    /// Blocks until the partition's end offset is beyond `offset` (that is, the record at
    /// `offset` is readable) or `timeout` passes; returns whether it is.
    fn wait_for(&self, topic: &str, partition: u32, offset: u64, timeout: Duration)
        -> Result<bool>;

    /// Runs `callback` once the partition's end offset is beyond `offset` — at once, on
    /// the calling thread, if it already is; otherwise later on the appending (or
    /// polling) thread. The callback must be quick and must not call back into the log
    /// (a timely source passes a closure calling `SyncActivator::activate`).
    fn notify_when_beyond(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        callback: Notify,
    ) -> Result<()>;

    /// Makes every acknowledged append durable now (meaningful for the interval policy).
    fn flush(&self) -> Result<()>;

    /// Appends records to a topic, choosing each record's partition: keyed records go to
    /// [`partition_for_key`], keyless ones round-robin starting at
    /// [`round_robin_start`]. Returns each record's `(partition, offset)` in input order.
    ///
    /// One [`Log::append`] is made per partition touched, so the call is atomic per
    /// partition, not across partitions; records of one partition keep their input order.
    fn append_routed(&self, topic: &str, records: &[NewRecord]) -> Result<Vec<(u32, u64)>> {
        let partitions = self.partition_count(topic)?;
        let mut rr = round_robin_start(records.iter().filter(|r| r.key.is_none()).count());
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); partitions as usize];
        for (i, record) in records.iter().enumerate() {
            let p = match &record.key {
                Some(key) => partition_for_key(key, partitions),
                None => {
                    let p = (rr % u64::from(partitions)) as u32;
                    rr = rr.wrapping_add(1);
                    p
                }
            };
            groups[p as usize].push(i);
        }
        let mut out = vec![(0u32, 0u64); records.len()];
        let mut batch = Vec::new();
        for (p, indices) in groups.iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            batch.clear();
            batch.extend(indices.iter().map(|&i| records[i].clone()));
            let range = self.append(topic, p as u32, &batch)?;
            for (k, &i) in indices.iter().enumerate() {
                out[i] = (p as u32, range.start + k as u64);
            }
        }
        Ok(out)
    }
}
