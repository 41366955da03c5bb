//! One partition of the embedded log: appending (framing, rolling segments, fsync per
//! the durability policy), reading through the segments' indexes, and — in a read-only
//! log — noticing what another process appended.
//!
//! Two locks: `writer` serializes appends and is held across the write and fsync;
//! `segments` is held only briefly, to publish a committed batch or to take a view for a
//! read, so readers never wait for an fsync.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::frame::{self, ReadBudget, Sink};
use super::meta::sync_dir;
use super::read::{read_segment, BatchSink, RecordSink, SegmentView};
use super::segment::{self, segment_path, Segment};
use super::{Durability, EmbeddedOptions};
use crate::error::IoContext;
use crate::metrics::LogMetrics;
use crate::watch::Watch;
use crate::{LogError, NewRecord, OffsetRange, PartitionInfo, Record, RecordBatch, Result};

/// One partition's files and state.
pub(crate) struct Partition {
    pub topic: String,
    pub id: u32,
    pub dir: PathBuf,
    opts: Arc<EmbeddedOptions>,
    /// Opened by a read-only log: another process writes, so the active segment is not
    /// memory-mapped (see [`super::mapping`]).
    read_only: bool,
    segments: RwLock<Vec<Segment>>,
    writer: Mutex<WriterState>,
    pub watch: Watch,
    /// Set once metrics are registered.
    pub(crate) metrics: OnceLock<LogMetrics>,
}

#[derive(Default)]
struct WriterState {
    buf: Vec<u8>,
    /// Bytes written to the active segment but not yet fsynced (interval policy).
    dirty: bool,
    /// A write or fsync failed: what is on disk is unknown until reopened.
    poisoned: bool,
}

impl Partition {
    /// A partition over already recovered `segments` (at least one).
    pub(crate) fn new(
        topic: &str,
        id: u32,
        dir: PathBuf,
        opts: Arc<EmbeddedOptions>,
        read_only: bool,
        segments: Vec<Segment>,
    ) -> Self {
        let end = segments.last().map_or(0, |s| s.end);
        Partition {
            topic: topic.to_string(),
            id,
            dir,
            opts,
            read_only,
            segments: RwLock::new(segments),
            writer: Mutex::new(WriterState::default()),
            watch: Watch::new(end),
            metrics: OnceLock::new(),
        }
    }

    fn read_segments(&self) -> RwLockReadGuard<'_, Vec<Segment>> {
        self.segments.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_segments(&self) -> RwLockWriteGuard<'_, Vec<Segment>> {
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The committed end offset.
    pub(crate) fn end_offset(&self) -> u64 {
        self.read_segments().last().map_or(0, |s| s.end)
    }

    /// The number of segment files.
    pub(crate) fn segment_count(&self) -> usize {
        self.read_segments().len()
    }

    /// Offsets and size of the committed data.
    pub(crate) fn info(&self) -> PartitionInfo {
        let segments = self.read_segments();
        PartitionInfo {
            partition: self.id,
            start_offset: segments.first().map_or(0, |s| s.base),
            end_offset: segments.last().map_or(0, |s| s.end),
            bytes: segments.iter().map(|s| s.len).sum(),
        }
    }

    /// Appends a batch; returns once it is written and, for [`Durability::PerBatch`],
    /// fsynced.
    pub(crate) fn append(&self, records: &[NewRecord]) -> Result<OffsetRange> {
        let started = Instant::now();
        let mut w = self.lock_writer();
        if w.poisoned {
            return Err(self.poisoned());
        }
        let (mut file, mut path, mut pos, base) = {
            let segments = self.read_segments();
            let active = segments
                .last()
                .expect("a writable partition has an active segment");
            (
                active.file.clone(),
                active.path.clone(),
                active.len,
                active.end,
            )
        };
        if records.is_empty() {
            return Ok(OffsetRange {
                start: base,
                end: base,
            });
        }
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        let frames = frame::encode_batch(records, base, self.opts.max_frame_bytes, &mut buf);
        let result = frames.and_then(|frames| {
            if pos > 0 && pos + buf.len() as u64 > self.opts.segment_bytes {
                (file, path) = self.roll(&mut w, base)?;
                pos = 0;
            }
            self.write(&mut w, &file, &path, pos, &buf)?;
            let mut segments = self.write_segments();
            let active = segments.last_mut().expect("active segment");
            for (i, f) in frames.iter().enumerate() {
                let next = frames.get(i + 1).map_or(buf.len(), |n| n.pos);
                let len = (next - f.pos) as u64;
                active.push_frame(
                    pos + f.pos as u64,
                    f.base_offset,
                    f.count,
                    len,
                    self.opts.index_interval_bytes,
                    // Checksummed from memory by `encode_batch`.
                    true,
                );
            }
            Ok(OffsetRange {
                start: base,
                end: active.end,
            })
        });
        let bytes = buf.len() as u64;
        w.buf = buf;
        drop(w);
        let range = result?;
        if let Some(metrics) = self.metrics.get() {
            metrics.appended(
                &self.topic,
                range.len(),
                bytes,
                started.elapsed().as_secs_f64(),
            );
        }
        self.watch.advance(range.end);
        Ok(range)
    }

    /// Writes `buf` at `pos` and makes it durable per the policy; on failure, undoes the
    /// write or poisons the partition.
    fn write(
        &self,
        w: &mut WriterState,
        file: &File,
        path: &Path,
        pos: u64,
        buf: &[u8],
    ) -> Result<()> {
        if let Err(e) = file.write_all_at(buf, pos) {
            // Cut off whatever part of the batch reached the file; if even that fails,
            // the file's tail is unknown until recovery.
            let undone = file.set_len(pos).is_ok();
            w.poisoned |= !undone;
            return Err(LogError::Io {
                context: format!("appending to {} at byte {pos}", path.display()),
                source: e,
                may_have_been_written: !undone,
            });
        }
        match self.opts.durability {
            Durability::PerBatch => self.sync(w, file),
            Durability::Interval(_) => {
                w.dirty = true;
                Ok(())
            }
        }
    }

    /// Fsyncs `file`; a failure poisons the partition (the kernel may have dropped the
    /// dirty pages, so retrying could report success for lost data).
    fn sync(&self, w: &mut WriterState, file: &File) -> Result<()> {
        let started = Instant::now();
        let synced = file.sync_data();
        if let Some(metrics) = self.metrics.get() {
            metrics.fsynced(started.elapsed().as_secs_f64());
        }
        match synced {
            Ok(()) => {
                w.dirty = false;
                Ok(())
            }
            Err(e) => {
                w.poisoned = true;
                Err(LogError::Io {
                    context: format!("fsync of {}/{}", self.topic, self.id),
                    source: e,
                    may_have_been_written: true,
                })
            }
        }
    }

    /// Seals the active segment (fsync) and starts a new one at `base`.
    fn roll(&self, w: &mut WriterState, base: u64) -> Result<(Arc<File>, PathBuf)> {
        let active = self
            .read_segments()
            .last()
            .expect("active segment")
            .file
            .clone();
        self.sync(w, &active)?;
        let path = segment_path(&self.dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx(|| format!("creating segment {}", path.display()))?;
        sync_dir(&self.dir)?;
        let file = Arc::new(file);
        self.write_segments()
            .push(Segment::new(base, path.clone(), file.clone()));
        Ok((file, path))
    }

    /// Fsyncs the active segment if appends since the last fsync are pending.
    pub(crate) fn flush(&self) -> Result<()> {
        let mut w = self.lock_writer();
        if w.poisoned {
            return Err(self.poisoned());
        }
        if !w.dirty {
            return Ok(());
        }
        let file = self
            .read_segments()
            .last()
            .expect("active segment")
            .file
            .clone();
        self.sync(&mut w, &file)
    }

    fn poisoned(&self) -> LogError {
        LogError::Poisoned {
            topic: self.topic.clone(),
            partition: self.id,
        }
    }

    /// Reads from `from_offset`; see [`crate::Log::read`]. The records of as many
    /// segments as the limits allow.
    pub(crate) fn read(
        &self,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        let mut budget = ReadBudget::new(max_records, max_bytes);
        let mut sink = RecordSink::default();
        self.read_into(from_offset, &mut budget, true, &mut sink)?;
        loop {
            let taken = sink.out.len();
            if taken == 0 || budget.spent {
                return Ok(sink.out);
            }
            self.read_into(from_offset + taken as u64, &mut budget, false, &mut sink)?;
            if sink.out.len() == taken {
                return Ok(sink.out);
            }
        }
    }

    /// Reads from `from_offset` up to the end of the segment holding it; see
    /// [`crate::Log::read_batch`].
    pub(crate) fn read_batch(
        &self,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RecordBatch> {
        let mut budget = ReadBudget::new(max_records, max_bytes);
        let mut sink = BatchSink::new();
        self.read_into(from_offset, &mut budget, true, &mut sink)?;
        Ok(sink.finish(from_offset))
    }

    /// Reads records from `offset` within the segment holding it into `sink`, as far as
    /// `budget` allows. The `first` call of a read checks that `offset` is in range;
    /// later ones find nothing beyond the end.
    fn read_into(
        &self,
        offset: u64,
        budget: &mut ReadBudget,
        first: bool,
        sink: &mut impl Sink,
    ) -> Result<()> {
        let view = {
            let segments = self.read_segments();
            let start = segments.first().map_or(0, |s| s.base);
            let end = segments.last().map_or(0, |s| s.end);
            if first {
                if offset < start || offset > end {
                    return Err(LogError::OffsetOutOfRange {
                        topic: self.topic.clone(),
                        partition: self.id,
                        offset,
                        start,
                        end,
                    });
                }
                budget.available = end - offset;
            }
            if offset >= end || budget.spent {
                return Ok(());
            }
            let i = segments.partition_point(|s| s.end <= offset);
            let seg = &segments[i];
            let sealed = i + 1 < segments.len();
            SegmentView {
                path: seg.path.clone(),
                file: seg.file.clone(),
                cache: seg.cache.clone(),
                // A sealed segment is mapped as it is; the writer's active one with room
                // to grow, so that it is mapped once rather than per append.
                map_reserve: match (sealed, self.read_only) {
                    (true, _) => Some(seg.len),
                    (false, false) => Some(seg.len.max(self.opts.segment_bytes)),
                    (false, true) => None,
                },
                start_pos: seg.seek(offset),
                len: seg.len,
            }
        };
        read_segment(&view, offset, self.opts.max_frame_bytes, budget, sink)
    }

    /// For a read-only log: picks up frames and segments another process appended since
    /// the last look. Cheap when nothing changed (one `stat`); an invalid frame at the
    /// tail is taken to be a write in progress and stays invisible.
    pub(crate) fn refresh(&self) -> Result<()> {
        loop {
            let mut segments = self.write_segments();
            if let Some(active) = segments.last_mut() {
                let file_len = active
                    .file
                    .metadata()
                    .ctx(|| format!("stat {}", active.path.display()))?
                    .len();
                if file_len > active.len {
                    segment::scan(
                        active,
                        file_len,
                        true,
                        self.opts.max_frame_bytes,
                        self.opts.index_interval_bytes,
                    )?;
                }
            }
            let end = segments.last().map_or(0, |s| s.end);
            let next = segment_path(&self.dir, end);
            if segments.last().is_some_and(|s| s.path == next) {
                drop(segments);
                self.watch.advance(end);
                return Ok(());
            }
            match File::open(&next) {
                Ok(file) => {
                    // The writer rolled: the old segment was complete before this file
                    // existed, so rescan it to its final length before moving on.
                    if let Some(active) = segments.last_mut() {
                        let file_len = active
                            .file
                            .metadata()
                            .ctx(|| format!("stat {}", active.path.display()))?
                            .len();
                        segment::scan(
                            active,
                            file_len,
                            true,
                            self.opts.max_frame_bytes,
                            self.opts.index_interval_bytes,
                        )?;
                        if active.end != end {
                            continue;
                        }
                    }
                    segments.push(Segment::new(end, next, Arc::new(file)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    drop(segments);
                    self.watch.advance(end);
                    return Ok(());
                }
                Err(e) => return Err(LogError::io(format!("opening {}", next.display()), e)),
            }
        }
    }

    /// For a read-only log: polls the files with backoff (at most every 10 ms) until the
    /// end offset is beyond `offset` or `timeout` passes.
    pub(crate) fn poll_beyond(&self, offset: u64, timeout: Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + timeout;
        let mut pause = Duration::from_micros(500);
        loop {
            self.refresh()?;
            if self.end_offset() > offset {
                return Ok(true);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}
