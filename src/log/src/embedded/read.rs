//! Reading the records of one segment: the run of frames from the one holding the first
//! offset wanted, until the read's budget is spent or the segment ends. Both
//! [`crate::Log::read`] and [`crate::Log::read_batch`] of the embedded log walk frames
//! here; they differ only in the [`Sink`] the records go to: [`RecordSink`] makes a
//! [`Record`] per record (for as many segments as the budget allows), [`BatchSink`] a
//! [`RecordBatch`] index over one window of bytes.
//!
//! A segment that may be memory-mapped ([`super::mapping`]) is read in place: a batch's
//! buffer is a zero-copy slice of the mapping, from the body of its first frame to the
//! end of its last. A segment that may not (the active one, in a read-only process) is
//! read with `pread` in chunks, and a batch holds the frames of one chunk. Either way,
//! every frame decoded beyond the segment's verified prefix has its checksum checked.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::frame::{self, Decoded, FrameHead, ReadBudget, Sink, BODY_PREFIX, HEADER};
use super::mapping::SegmentCache;
use crate::batch::{Entry, NO_KEY};
use crate::{LogError, Record, RecordBatch, Result};

/// The most bytes read from a segment file at once with `pread` (larger frames are read
/// whole).
const READ_CHUNK: usize = 120 << 10;

/// A consistent view of a segment for one read, taken under the partition's lock.
pub(crate) struct SegmentView {
    pub path: PathBuf,
    pub file: Arc<File>,
    pub cache: Arc<SegmentCache>,
    /// Read through a memory map of at least this many bytes, or with `pread` when `None`
    /// (see [`super::mapping`] for which segments may be mapped).
    pub map_reserve: Option<u64>,
    /// An index position at or before the frame holding the first offset wanted.
    pub start_pos: u64,
    pub len: u64,
}

/// Reads the records at or after `from_offset` (which the segment holds) from the
/// committed part of a segment into `sink`, as far as `budget` allows. A batch ends
/// early at the end of a `pread` chunk, or where its buffer would exceed 4 GiB; it is
/// empty only if the budget is spent already.
pub(crate) fn read_segment(
    view: &SegmentView,
    from_offset: u64,
    max_body: u32,
    budget: &mut ReadBudget,
    sink: &mut impl Sink,
) -> Result<()> {
    let mut run = Run {
        view,
        from_offset,
        max_body,
        checks: Checks::new(&view.cache),
        reserved: false,
    };
    // A segment that cannot be mapped (say, the process's limit of mappings is reached)
    // is read with `pread` instead.
    let mapped = view.map_reserve.and_then(|reserve| {
        view.cache
            .mapped(&view.file, view.len, reserve)
            .inspect_err(|e| {
                tracing::debug!(file = %view.path.display(), error = %e, "mmap failed; reading with pread")
            })
            .ok()
    });
    if let Some(map) = mapped {
        // Only the committed bytes may be touched.
        let window = map.slice(..view.len as usize);
        return match run.walk(&window, 0, view.start_pos as usize, budget, sink)? {
            Walked::End(at) if at < window.len() => Err(corrupt(
                view,
                at as u64,
                "committed data ends inside a frame header".into(),
            )),
            _ => Ok(()),
        };
    }
    // `pread` chunks are small enough that a read limited by record count wastes little,
    // and below the allocator's mmap threshold so they are recycled rather than faulted
    // in anew.
    let chunk = budget
        .max_bytes
        .saturating_add(4096)
        .clamp(4096, READ_CHUNK) as u64;
    let mut pos = view.start_pos;
    let mut want = chunk;
    while pos < view.len {
        let window = read_at(view, pos, (view.len - pos).min(want) as usize)?;
        match run.walk(&window, pos, 0, budget, sink)? {
            Walked::Stopped => break,
            Walked::End(0) => {
                // Not one whole frame in the chunk: the next frame is larger than a chunk
                // (read exactly that frame), or the committed data is cut short.
                if window.len() < HEADER + BODY_PREFIX {
                    return Err(corrupt(
                        view,
                        pos,
                        "committed data ends inside a frame header".into(),
                    ));
                }
                want = parse(view, pos, &window, max_body)?.total_len();
            }
            Walked::End(at) => {
                if !sink.spans_windows() {
                    break;
                }
                pos += at as u64;
                want = chunk;
            }
        }
    }
    Ok(())
}

/// Where [`Run::walk`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walked {
    /// The budget is spent, or the sink takes no more frames.
    Stopped,
    /// At this position of the window: fewer bytes than a whole frame remain after it.
    End(usize),
}

/// One read's progress through a segment.
struct Run<'a> {
    view: &'a SegmentView,
    from_offset: u64,
    max_body: u32,
    checks: Checks<'a>,
    /// Whether the sink was sized for the records of this read.
    reserved: bool,
}

impl Run<'_> {
    /// Decodes the whole frames of `window` (the segment's bytes from `window_pos`) from
    /// its byte `at` on into `sink`.
    fn walk(
        &mut self,
        window: &Bytes,
        window_pos: u64,
        mut at: usize,
        budget: &mut ReadBudget,
        sink: &mut impl Sink,
    ) -> Result<Walked> {
        while at + HEADER + BODY_PREFIX <= window.len() {
            let frame_pos = window_pos + at as u64;
            let head = parse(self.view, frame_pos, &window[at..], self.max_body)?;
            if frame_pos + head.total_len() > self.view.len {
                return Err(corrupt(
                    self.view,
                    frame_pos,
                    format!(
                        "frame of {} bytes extends past the committed data",
                        head.total_len()
                    ),
                ));
            }
            let end = at + head.total_len() as usize;
            if end > window.len() {
                break;
            }
            if head.base_offset + u64::from(head.count) <= self.from_offset {
                at = end;
                continue;
            }
            let body = at + HEADER..end;
            if !sink.frame(window, body.clone()) {
                return Ok(Walked::Stopped);
            }
            self.check(frame_pos, &head, &window[body.clone()])?;
            if !self.reserved {
                sink.reserve(budget.records_like(&head));
                self.reserved = true;
            }
            let spent = frame::decode_body(
                &window[body.clone()],
                body.start,
                self.from_offset,
                budget,
                sink,
            )
            .map_err(|reason| LogError::Corrupt {
                file: self.view.path.clone(),
                position: frame_pos,
                offset: head.base_offset,
                reason,
            })?;
            if spent {
                return Ok(Walked::Stopped);
            }
            at = end;
        }
        Ok(Walked::End(at))
    }

    /// Checks the frame at `pos` unless it is known to be good.
    fn check(&mut self, pos: u64, head: &FrameHead, body: &[u8]) -> Result<()> {
        let end = pos + head.total_len();
        if self.checks.needed(end) && !frame::body_ok(head, body) {
            return Err(LogError::Corrupt {
                file: self.view.path.clone(),
                position: pos,
                offset: head.base_offset,
                reason: "checksum mismatch".to_string(),
            });
        }
        self.checks.passed(pos, end);
        Ok(())
    }
}

/// A [`Sink`] building a [`RecordBatch`] from the frames of one window: its buffer is
/// the span of the window from the body of its first frame to the end of its last.
pub(crate) struct BatchSink {
    window: Bytes,
    /// The span; `None` until a frame is taken.
    span: Option<(usize, usize)>,
    entries: Vec<Entry>,
}

impl BatchSink {
    pub(crate) fn new() -> Self {
        BatchSink {
            window: Bytes::new(),
            span: None,
            entries: Vec::new(),
        }
    }

    /// The batch, whose first record is at `first_offset` (where the read started).
    pub(crate) fn finish(self, first_offset: u64) -> RecordBatch {
        match self.span {
            Some((start, end)) => {
                RecordBatch::from_parts(first_offset, self.window.slice(start..end), self.entries)
            }
            None => RecordBatch::empty(first_offset),
        }
    }
}

impl Sink for BatchSink {
    fn reserve(&mut self, n: usize) {
        self.entries.reserve_exact(n);
    }

    fn frame(&mut self, window: &Bytes, body: Range<usize>) -> bool {
        let start = match self.span {
            Some((start, _)) => start,
            None => {
                self.window = window.clone();
                body.start
            }
        };
        // Index positions are u32. A first frame always fits (its body is at most
        // `max_body`), so a read makes progress.
        if body.end - start > u32::MAX as usize {
            return false;
        }
        self.span = Some((start, body.end));
        true
    }

    #[inline]
    fn push(&mut self, r: Decoded) {
        // `frame` checked that these fit in a u32.
        let start = self.span.map_or(0, |(start, _)| start);
        self.entries.push(Entry {
            timestamp_ms: r.timestamp_ms,
            key_start: (r.key_start - start) as u32,
            key_len: r.key_len,
            payload_start: (r.payload_start - start) as u32,
            payload_len: r.payload_len,
        });
    }

    fn spans_windows(&self) -> bool {
        self.span.is_none()
    }
}

/// A [`Sink`] making a [`Record`] per record, whose key and payload are slices of the
/// window (for [`crate::Log::read`]).
#[derive(Default)]
pub(crate) struct RecordSink {
    window: Bytes,
    pub out: Vec<Record>,
}

impl Sink for RecordSink {
    fn reserve(&mut self, n: usize) {
        self.out.reserve_exact(n);
    }

    fn frame(&mut self, window: &Bytes, _body: Range<usize>) -> bool {
        if self.window.as_ptr() != window.as_ptr() || self.window.len() != window.len() {
            self.window = window.clone();
        }
        true
    }

    #[inline]
    fn push(&mut self, r: Decoded) {
        let key = (r.key_len != NO_KEY).then(|| {
            self.window
                .slice(r.key_start..r.key_start + r.key_len as usize)
        });
        self.out.push(Record {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key,
            payload: self
                .window
                .slice(r.payload_start..r.payload_start + r.payload_len as usize),
        });
    }

    fn spans_windows(&self) -> bool {
        true
    }
}

fn read_at(view: &SegmentView, pos: u64, len: usize) -> Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    view.file
        .read_exact_at(&mut buf, pos)
        .map_err(|e| LogError::io(format!("reading {} at byte {pos}", view.path.display()), e))?;
    Ok(buf.freeze())
}

fn parse(view: &SegmentView, pos: u64, bytes: &[u8], max_body: u32) -> Result<FrameHead> {
    frame::parse_head(bytes, max_body).map_err(|reason| corrupt(view, pos, reason))
}

fn corrupt(view: &SegmentView, pos: u64, reason: String) -> LogError {
    LogError::Corrupt {
        file: view.path.clone(),
        position: pos,
        offset: 0,
        reason,
    }
}

/// Which frames one read must check, and how far the frames it checked extend the
/// segment's verified prefix (published when the read is done, whatever its outcome).
struct Checks<'a> {
    cache: &'a SegmentCache,
    /// The verified prefix when the read started.
    known: u64,
    /// The verified prefix including this read's checks so far.
    prefix: u64,
}

impl<'a> Checks<'a> {
    fn new(cache: &'a SegmentCache) -> Self {
        let known = cache.verified();
        Checks {
            cache,
            known,
            prefix: known,
        }
    }

    /// Whether the frame ending at `end` has yet to be checked.
    fn needed(&self, end: u64) -> bool {
        end > self.known
    }

    /// Notes that the frame `pos..end` is known to be good.
    fn passed(&mut self, pos: u64, end: u64) {
        if pos <= self.prefix {
            self.prefix = self.prefix.max(end);
        }
    }
}

impl Drop for Checks<'_> {
    fn drop(&mut self) {
        if self.prefix > self.known {
            self.cache.mark_verified(0, self.prefix);
        }
    }
}
