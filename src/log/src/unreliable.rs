//! [`UnreliableLog`]: a fault-injecting wrapper over any [`Log`], for tests of how the
//! rest of kappa behaves while its log is unreachable.
//!
//! Reads (`read`, `read_batch`, `end_offset`) fail with [`LogError::Unreachable`] while
//! switched off ([`UnreliableLog::fail_reads`]), as they would with a Fluvio cluster that
//! went away; everything else is passed through, so a test can keep appending to the
//! inner log and then let reads succeed again. [`UnreliableLog::fail_appends`] fails
//! appends alone; [`UnreliableLog::fail_all`] takes the whole log down: metadata calls,
//! appends and reads.
//!
//! ```
//! use std::sync::Arc;
//! use kappa_log::{Log, MemLog, UnreliableLog};
//! let log = UnreliableLog::new(Arc::new(MemLog::new()));
//! log.create_topic("t", 1).unwrap();
//! log.fail_reads(true);
//! assert!(log.read("t", 0, 0, 10, 1 << 20).unwrap_err().is_transient());
//! assert!(log.read_batch("t", 0, 0, 10, 1 << 20).unwrap_err().is_transient());
//! assert_eq!(log.failed_reads(), 2);
//! log.fail_reads(false);
//! assert!(log.read("t", 0, 0, 10, 1 << 20).unwrap().is_empty());
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{
    Log, LogError, NewRecord, Notify, OffsetRange, Record, RecordBatch, Result, TopicDescription,
};

/// A [`Log`] whose reads fail on demand.
pub struct UnreliableLog {
    inner: Arc<dyn Log>,
    reads_fail: AtomicBool,
    all_fail: AtomicBool,
    appends_fail: AtomicBool,
    failed_reads: AtomicU64,
}

impl UnreliableLog {
    /// Wraps `inner`; reads succeed until [`UnreliableLog::fail_reads`] says otherwise.
    pub fn new(inner: Arc<dyn Log>) -> Self {
        UnreliableLog {
            inner,
            reads_fail: AtomicBool::new(false),
            all_fail: AtomicBool::new(false),
            appends_fail: AtomicBool::new(false),
            failed_reads: AtomicU64::new(0),
        }
    }

    /// Makes every read fail as unreachable (`true`) or pass through (`false`).
    pub fn fail_reads(&self, fail: bool) {
        self.reads_fail.store(fail, Ordering::SeqCst);
    }

    /// Makes every call fail as unreachable — metadata, appends and reads — (`true`),
    /// or lets them through again (`false`; reads still obey [`UnreliableLog::fail_reads`]).
    pub fn fail_all(&self, fail: bool) {
        self.all_fail.store(fail, Ordering::SeqCst);
    }

    /// Makes every append fail as unreachable (`true`) or pass through (`false`).
    pub fn fail_appends(&self, fail: bool) {
        self.appends_fail.store(fail, Ordering::SeqCst);
    }

    /// Reads failed so far.
    pub fn failed_reads(&self) -> u64 {
        self.failed_reads.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<()> {
        if self.reads_fail.load(Ordering::SeqCst) || self.all_fail.load(Ordering::SeqCst) {
            self.failed_reads.fetch_add(1, Ordering::SeqCst);
            return Err(Self::unreachable("reads are switched off"));
        }
        Ok(())
    }

    fn check_up(&self) -> Result<()> {
        if self.all_fail.load(Ordering::SeqCst) {
            return Err(Self::unreachable("the log is switched off"));
        }
        Ok(())
    }

    fn unreachable(reason: &str) -> LogError {
        LogError::Unreachable {
            endpoint: "unreliable-log".into(),
            reason: reason.into(),
        }
    }
}

impl Log for UnreliableLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        self.check_up()?;
        self.inner.create_topic(topic, partitions)
    }

    fn list_topics(&self) -> Result<Vec<String>> {
        self.check_up()?;
        self.inner.list_topics()
    }

    fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        self.check_up()?;
        self.inner.describe_topic(topic)
    }

    fn partition_count(&self, topic: &str) -> Result<u32> {
        self.check_up()?;
        self.inner.partition_count(topic)
    }

    fn append(&self, topic: &str, partition: u32, records: &[NewRecord]) -> Result<OffsetRange> {
        self.check_up()?;
        if self.appends_fail.load(Ordering::SeqCst) {
            return Err(Self::unreachable("appends are switched off"));
        }
        self.inner.append(topic, partition, records)
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        self.check()?;
        self.inner
            .read(topic, partition, from_offset, max_records, max_bytes)
    }

    fn read_batch(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RecordBatch> {
        self.check()?;
        // The inner log's own batch read, not the default built on `read`.
        self.inner
            .read_batch(topic, partition, from_offset, max_records, max_bytes)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        self.check()?;
        self.inner.end_offset(topic, partition)
    }

    fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<bool> {
        self.inner.wait_for(topic, partition, offset, timeout)
    }

    fn notify_when_beyond(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        callback: Notify,
    ) -> Result<()> {
        self.inner
            .notify_when_beyond(topic, partition, offset, callback)
    }

    fn flush(&self) -> Result<()> {
        self.check_up()?;
        self.inner.flush()
    }
}
