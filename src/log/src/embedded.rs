//! [`EmbeddedLog`]: the log as files in a data directory.
//!
//! ```text
//! <dir>/LOCK                                   writer lock + LockInfo JSON
//! <dir>/topics/<topic>/topic.json              partition count (atomic write)
//! <dir>/topics/<topic>/<partition>/<base>.log  segments of CRC32C-framed batches
//! ```
//! One writer process per directory ([`EmbeddedLog::open`], enforced by the lock), any
//! number of readers in any process ([`EmbeddedLog::open_read_only`], no lock). Readers
//! in the writer's process are woken by the appending thread; readers in other processes
//! notice growth by `stat`-ing the active segment with a short backoff (at most 10 ms).
//! Those cross-process readers see a batch once it is written to the OS, which survives
//! a crash of the writer process but, under [`Durability::Interval`], not of the machine.

mod frame;
mod lock;
mod mapping;
mod meta;
mod partition;
mod read;
mod recovery;
mod segment;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

pub use lock::{read_lock_info, LockInfo};
pub use meta::validate_topic;

use crate::error::IoContext;
use crate::NewRecord;
use crate::{Log, LogError, Notify, OffsetRange, Record, RecordBatch, Result, TopicDescription};
use lock::DirLock;
use meta::TopicMeta;
use partition::Partition;

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every append is fsynced before it returns (the default).
    PerBatch,
    /// Appends return once written to the OS; a background thread fsyncs every
    /// partition with pending writes at this interval, and [`Log::flush`] does so at
    /// once. A machine crash can lose up to one interval of acknowledged appends; a
    /// process crash cannot.
    Interval(Duration),
}

/// Tuning of an [`EmbeddedLog`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Roll to a new segment once the active one would exceed this many bytes.
    pub segment_bytes: u64,
    /// The fsync policy.
    pub durability: Durability,
    /// Largest frame body; a larger length on disk is corruption, and a larger single
    /// record is [`LogError::RecordTooLarge`]. Bigger batches are split into frames.
    pub max_frame_bytes: u32,
    /// Distance in bytes between entries of the in-memory sparse offset index.
    pub index_interval_bytes: u64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            segment_bytes: 64 << 20,
            durability: Durability::PerBatch,
            max_frame_bytes: 64 << 20,
            index_interval_bytes: 4096,
        }
    }
}

/// The embedded, file-backed log. See the module documentation for the layout.
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    /// Dropping this stops the background flusher or poller.
    stop: Option<mpsc::Sender<()>>,
    stop_rx: Mutex<Option<mpsc::Receiver<()>>>,
    /// The background thread, joined on drop so that the lock and files are released
    /// when the log is.
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    dir: PathBuf,
    opts: Arc<EmbeddedOptions>,
    read_only: bool,
    lock: Option<DirLock>,
    topics: RwLock<BTreeMap<String, Arc<Vec<Arc<Partition>>>>>,
    poller_started: AtomicBool,
    /// Set by [`EmbeddedLog::register_metrics`]; given to every partition.
    metrics: OnceLock<crate::metrics::LogMetrics>,
}

impl EmbeddedLog {
    /// Opens (creating if needed) the data directory `dir` for writing: takes the writer
    /// lock and recovers every partition.
    pub fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("topics"))
            .ctx(|| format!("creating {}", dir.display()))?;
        let lock = DirLock::acquire(&dir)?;
        let log = Self::build(dir, options, false, Some(lock));
        for name in log.topic_names_on_disk()? {
            log.load_topic(&name)?;
        }
        if let Durability::Interval(every) = log.shared.opts.durability {
            let rx = log
                .stop_rx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let weak = Arc::downgrade(&log.shared);
            let handle = std::thread::Builder::new()
                .name("kappa-log-flush".into())
                .spawn(move || flusher(weak, rx.expect("receiver"), every))
                .ctx(|| "starting the flush thread".to_string())?;
            *log.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        }
        Ok(log)
    }

    /// Opens `dir` for reading only, without the lock; any number of such readers may
    /// run beside one writer in another process. Topics are discovered lazily, so topics
    /// created later are found; a missing directory simply has no topics.
    pub fn open_read_only(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        Ok(Self::build(dir.as_ref().to_path_buf(), options, true, None))
    }

    fn build(
        dir: PathBuf,
        options: EmbeddedOptions,
        read_only: bool,
        lock: Option<DirLock>,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        EmbeddedLog {
            shared: Arc::new(Shared {
                dir,
                opts: Arc::new(options),
                read_only,
                lock,
                topics: RwLock::new(BTreeMap::new()),
                poller_started: AtomicBool::new(false),
                metrics: OnceLock::new(),
            }),
            stop: Some(tx),
            stop_rx: Mutex::new(Some(rx)),
            thread: Mutex::new(None),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Records the HTTP address of this writer's server in the lock file, for tools that
    /// want to find it. Fails with [`LogError::ReadOnly`] on a read-only log.
    pub fn record_http_addr(&self, addr: &str) -> Result<()> {
        let lock = self.shared.lock.as_ref().ok_or(LogError::ReadOnly)?;
        lock.write_info(&LockInfo {
            pid: std::process::id(),
            http_addr: Some(addr.to_string()),
        })
    }

    /// Registers the log's metrics into `registry`: appends and fsyncs as they
    /// happen, segments, bytes on disk and end offsets per partition at scrape time.
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        let metrics = crate::metrics::LogMetrics::register(registry)?;
        let _ = self.shared.metrics.set(metrics);
        self.give_metrics(&all_partitions(&self.shared));
        let weak = Arc::downgrade(&self.shared);
        let source = move || {
            let Some(shared) = weak.upgrade() else {
                return Vec::new();
            };
            all_partitions(&shared)
                .iter()
                .map(|p| {
                    let info = p.info();
                    crate::metrics::PartitionGauges {
                        topic: p.topic.clone(),
                        partition: p.id,
                        segments: p.segment_count() as u64,
                        bytes: info.bytes,
                        end_offset: info.end_offset,
                    }
                })
                .collect()
        };
        registry.register(Box::new(crate::metrics::ScrapeCollector::new(Box::new(
            source,
        ))))
    }

    /// Hands the registered metrics, if any, to these partitions.
    fn give_metrics(&self, partitions: &[Arc<Partition>]) {
        if let Some(metrics) = self.shared.metrics.get() {
            for p in partitions {
                let _ = p.metrics.set(metrics.clone());
            }
        }
    }

    fn topics_dir(&self) -> PathBuf {
        self.shared.dir.join("topics")
    }

    fn topic_names_on_disk(&self) -> Result<Vec<String>> {
        let dir = self.topics_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LogError::io(format!("listing {}", dir.display()), e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if entry.path().join(meta::META_FILE).exists() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Loads a topic from disk into the map; `None` if it does not exist.
    fn load_topic(&self, name: &str) -> Result<Option<Arc<Vec<Arc<Partition>>>>> {
        let topic_dir = self.topics_dir().join(name);
        let Some(meta) = meta::read_meta(&topic_dir)? else {
            return Ok(None);
        };
        let mut topics = self
            .shared
            .topics
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = topics.get(name) {
            return Ok(Some(existing.clone()));
        }
        let partitions = (0..meta.partitions)
            .map(|p| {
                let dir = topic_dir.join(p.to_string());
                recovery::open_partition(name, p, &dir, &self.shared.opts, self.shared.read_only)
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        let partitions = Arc::new(partitions);
        self.give_metrics(&partitions);
        topics.insert(name.to_string(), partitions.clone());
        Ok(Some(partitions))
    }

    fn topic(&self, name: &str) -> Result<Arc<Vec<Arc<Partition>>>> {
        let found = self
            .shared
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        match found {
            Some(t) => Ok(t),
            None if self.shared.read_only && validate_topic(name, 1).is_ok() => self
                .load_topic(name)?
                .ok_or_else(|| LogError::UnknownTopic(name.to_string())),
            None => Err(LogError::UnknownTopic(name.to_string())),
        }
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        let partitions = self.topic(topic)?;
        partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions: partitions.len() as u32,
            })
    }

    /// The partition to read from `from_offset`; a read-only log first looks for what
    /// the writer appended when the offset is at or beyond what it knows of.
    fn readable(&self, topic: &str, partition: u32, from_offset: u64) -> Result<Arc<Partition>> {
        let p = self.partition(topic, partition)?;
        if self.shared.read_only && from_offset >= p.end_offset() {
            p.refresh()?;
        }
        Ok(p)
    }

    fn start_poller(&self) {
        if self.shared.poller_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let rx = self
            .stop_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let weak = Arc::downgrade(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("kappa-log-poll".into())
            .spawn(move || poller(weak, rx.expect("receiver")));
        match spawned {
            Ok(handle) => {
                *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the log poller; follow callbacks will not fire")
            }
        }
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        if !self.shared.read_only {
            if let Err(e) = self.flush() {
                tracing::error!(error = %e, "flushing the log on close failed");
            }
        }
        drop(self.stop.take());
        let handle = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // A callback run by the poller may drop the last handle to the log.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// Fsyncs pending writes every `every` until the log is dropped.
fn flusher(shared: Weak<Shared>, stop: mpsc::Receiver<()>, every: Duration) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        for partition in all_partitions(&shared) {
            if let Err(e) = partition.flush() {
                tracing::error!(error = %e, "background fsync failed");
            }
        }
    }
}

/// In a read-only log: looks at partitions with pending callbacks every 2 ms (every
/// 20 ms when there are none) until the log is dropped.
fn poller(shared: Weak<Shared>, stop: mpsc::Receiver<()>) {
    let mut pause = Duration::from_millis(2);
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(pause) {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        pause = Duration::from_millis(20);
        for partition in all_partitions(&shared) {
            if partition.watch.has_callbacks() {
                pause = Duration::from_millis(2);
                if let Err(e) = partition.refresh() {
                    tracing::warn!(error = %e, topic = %partition.topic, partition = partition.id, "polling the log failed");
                }
            }
        }
    }
}

fn all_partitions(shared: &Shared) -> Vec<Arc<Partition>> {
    let topics = shared.topics.read().unwrap_or_else(PoisonError::into_inner);
    topics.values().flat_map(|t| t.iter().cloned()).collect()
}

impl Log for EmbeddedLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        validate_topic(topic, partitions)?;
        if self.shared.read_only {
            return Err(LogError::ReadOnly);
        }
        // Holding the map's write lock serializes creations within the (only) writer.
        let mut topics = self
            .shared
            .topics
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let topic_dir = self.topics_dir().join(topic);
        if topics.contains_key(topic) || meta::read_meta(&topic_dir)?.is_some() {
            return Err(LogError::TopicExists(topic.to_string()));
        }
        // Partition directories and first segments first, metadata last: a crash in
        // between leaves a directory without topic.json, which is not a topic and is
        // reused by the next creation of that name.
        let mut parts = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let dir = topic_dir.join(p.to_string());
            std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
            parts.push(Arc::new(recovery::open_partition(
                topic,
                p,
                &dir,
                &self.shared.opts,
                false,
            )?));
        }
        meta::sync_dir(&topic_dir)?;
        meta::sync_dir(&self.topics_dir())?;
        meta::write_meta(
            &topic_dir,
            &TopicMeta {
                version: 1,
                partitions,
            },
        )?;
        self.give_metrics(&parts);
        topics.insert(topic.to_string(), Arc::new(parts));
        Ok(())
    }

    fn list_topics(&self) -> Result<Vec<String>> {
        if self.shared.read_only {
            return self.topic_names_on_disk();
        }
        let topics = self
            .shared
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(topics.keys().cloned().collect())
    }

    fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        let partitions = self.topic(topic)?;
        let mut infos = Vec::with_capacity(partitions.len());
        for p in partitions.iter() {
            if self.shared.read_only {
                p.refresh()?;
            }
            infos.push(p.info());
        }
        Ok(TopicDescription {
            name: topic.to_string(),
            partitions: infos,
        })
    }

    fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.topic(topic)?.len() as u32)
    }

    fn append(&self, topic: &str, partition: u32, records: &[NewRecord]) -> Result<OffsetRange> {
        if self.shared.read_only {
            return Err(LogError::ReadOnly);
        }
        self.partition(topic, partition)?.append(records)
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        self.readable(topic, partition, from_offset)?
            .read(from_offset, max_records, max_bytes)
    }

    fn read_batch(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RecordBatch> {
        self.readable(topic, partition, from_offset)?.read_batch(
            from_offset,
            max_records,
            max_bytes,
        )
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        let p = self.partition(topic, partition)?;
        if self.shared.read_only {
            p.refresh()?;
        }
        Ok(p.end_offset())
    }

    fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<bool> {
        let p = self.partition(topic, partition)?;
        if self.shared.read_only {
            p.poll_beyond(offset, timeout)
        } else {
            Ok(p.watch.wait_beyond(offset, timeout))
        }
    }

    fn notify_when_beyond(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        callback: Notify,
    ) -> Result<()> {
        let p = self.partition(topic, partition)?;
        if self.shared.read_only {
            p.refresh()?;
            self.start_poller();
        }
        p.watch.notify_beyond(offset, callback);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        if self.shared.read_only {
            return Ok(());
        }
        let mut first_error = None;
        for partition in all_partitions(&self.shared) {
            if let Err(e) = partition.flush() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
