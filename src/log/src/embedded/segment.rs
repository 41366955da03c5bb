//! One segment file of a partition: its naming, its sparse offset index, scanning its
//! frames, and reading records from it.
//!
//! A segment is `<partition dir>/<base_offset, 20 digits>.log`. Its index is kept in
//! memory only and rebuilt by scanning the frame headers when the partition is opened
//! (a sidecar index could skip that scan; it is not needed at today's sizes). The index
//! holds `(frame base offset, byte position)` for the first frame and then for a frame
//! every `index_interval_bytes`, so finding an offset is a binary search plus a scan of
//! at most one interval.
//!
//! Reads hand out records whose keys and payloads are slices of the segment's memory
//! map (or, where a segment may not be mapped, of a `pread` buffer), and check the
//! checksum of each frame beyond the segment's verified prefix ([`super::mapping`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::frame::{self, FrameHead, BODY_PREFIX, HEADER, RECORD_OVERHEAD};
use super::mapping::SegmentCache;
use crate::{LogError, Record, Result};

/// The file name of the segment whose first offset is `base`.
pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// The base offset encoded in a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment as known to readers: only its committed (acknowledged) bytes.
pub(crate) struct Segment {
    /// Offset of the segment's first record.
    pub base: u64,
    /// The segment file.
    pub path: PathBuf,
    /// Shared handle; reads use positioned reads, the writer positioned writes.
    pub file: Arc<File>,
    /// Committed bytes; frames beyond are invisible.
    pub len: u64,
    /// One past the last committed record's offset.
    pub end: u64,
    /// Sparse index: `(frame base offset, byte position)`, ascending.
    pub index: Vec<(u64, u64)>,
    /// Byte position of the last index entry.
    last_indexed: Option<u64>,
    /// The memory map and verified prefix that reads share.
    pub cache: Arc<SegmentCache>,
}

impl Segment {
    /// An empty segment starting at `base`.
    pub(crate) fn new(base: u64, path: PathBuf, file: Arc<File>) -> Self {
        Segment {
            base,
            path,
            file,
            len: 0,
            end: base,
            index: Vec::new(),
            last_indexed: None,
            cache: Arc::default(),
        }
    }

    /// Records a committed frame at `pos` of `total_len` bytes holding `count` records;
    /// `verified` says whether its checksum is known to match.
    pub(crate) fn push_frame(
        &mut self,
        pos: u64,
        base_offset: u64,
        count: u32,
        total_len: u64,
        interval: u64,
        verified: bool,
    ) {
        debug_assert_eq!(pos, self.len);
        debug_assert_eq!(base_offset, self.end);
        if self.last_indexed.is_none_or(|last| pos - last >= interval) {
            self.index.push((base_offset, pos));
            self.last_indexed = Some(pos);
        }
        self.len = pos + total_len;
        self.end = base_offset + u64::from(count);
        if verified {
            self.cache.mark_verified(pos, self.len);
        }
    }

    /// The byte position of a frame at or before the one holding `offset`.
    pub(crate) fn seek(&self, offset: u64) -> u64 {
        let i = self.index.partition_point(|&(base, _)| base <= offset);
        if i == 0 {
            0
        } else {
            self.index[i - 1].1
        }
    }
}

/// Where a scan stopped before the end of the file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadFrame {
    /// Byte position of the frame that is not valid.
    pub pos: u64,
    /// The offset that frame should start at.
    pub offset: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Positioned reads through a buffer, for sequential scans.
pub(crate) struct ChunkReader<'a> {
    file: &'a File,
    file_len: u64,
    buf: Vec<u8>,
    buf_pos: u64,
    chunk: usize,
}

impl<'a> ChunkReader<'a> {
    pub(crate) fn new(file: &'a File, file_len: u64) -> Self {
        ChunkReader {
            file,
            file_len,
            buf: Vec::new(),
            buf_pos: 0,
            chunk: 1 << 20,
        }
    }

    /// The bytes `pos..pos + len`, or fewer if the file ends first.
    pub(crate) fn get(&mut self, pos: u64, len: usize) -> std::io::Result<&[u8]> {
        let want_end = (pos + len as u64).min(self.file_len);
        let have_end = self.buf_pos + self.buf.len() as u64;
        if pos < self.buf_pos || want_end > have_end {
            let n = (self.file_len - pos).min(len.max(self.chunk) as u64) as usize;
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_pos = pos;
        }
        let start = (pos - self.buf_pos) as usize;
        let end = (want_end - self.buf_pos) as usize;
        Ok(&self.buf[start..end.max(start)])
    }
}

/// Scans frames of `seg` from its committed end up to `file_len`, committing every valid
/// frame. Checks checksums when `verify` is set (the tail of a partition); otherwise only
/// the framing (sealed segments, whose checksums are checked on read). Returns the first
/// invalid frame, if the scan stopped before `file_len`.
pub(crate) fn scan(
    seg: &mut Segment,
    file_len: u64,
    verify: bool,
    max_body: u32,
    interval: u64,
) -> Result<Option<BadFrame>> {
    let file = seg.file.clone();
    let mut reader = ChunkReader::new(&file, file_len);
    let mut pos = seg.len;
    while pos < file_len {
        let ctx = || format!("reading {}", seg.path.display());
        let head_bytes = reader
            .get(pos, HEADER + BODY_PREFIX)
            .map_err(|e| LogError::io(ctx(), e))?;
        let bad = |reason: String| {
            Some(BadFrame {
                pos,
                offset: seg.end,
                reason,
            })
        };
        let head = match frame::parse_head(head_bytes, max_body) {
            Ok(head) => head,
            Err(reason) => return Ok(bad(reason)),
        };
        if pos + head.total_len() > file_len {
            return Ok(bad(format!(
                "frame of {} bytes extends past the end of the file",
                head.total_len()
            )));
        }
        if head.base_offset != seg.end {
            return Ok(bad(format!(
                "frame starts at offset {}, expected {}",
                head.base_offset, seg.end
            )));
        }
        if verify {
            let body = reader
                .get(pos + HEADER as u64, head.body_len as usize)
                .map_err(|e| LogError::io(ctx(), e))?;
            if !frame::body_ok(&head, body) {
                return Ok(bad("checksum mismatch".to_string()));
            }
        }
        seg.push_frame(
            pos,
            head.base_offset,
            head.count,
            head.total_len(),
            interval,
            verify,
        );
        pos += head.total_len();
    }
    Ok(None)
}

/// Looks for a valid frame (plausible head, offset at least `min_offset`, matching
/// checksum) starting anywhere after `after`: evidence that a bad frame is corruption in
/// the middle of the data rather than a torn write at its end.
pub(crate) fn valid_frame_after(
    file: &File,
    file_len: u64,
    after: u64,
    min_offset: u64,
    max_body: u32,
) -> std::io::Result<Option<u64>> {
    let mut reader = ChunkReader::new(file, file_len);
    let min_len = (HEADER + BODY_PREFIX) as u64;
    let mut pos = after + 1;
    while pos + min_len <= file_len {
        let head = reader.get(pos, HEADER + BODY_PREFIX)?;
        if let Ok(head) = frame::parse_head(head, max_body) {
            let plausible = pos + head.total_len() <= file_len
                && head.base_offset >= min_offset
                && head.base_offset - min_offset < 1 << 40;
            if plausible {
                let body = reader.get(pos + HEADER as u64, head.body_len as usize)?;
                if frame::body_ok(&head, body) {
                    return Ok(Some(pos));
                }
            }
        }
        pos += 1;
    }
    Ok(None)
}

/// What a read from one segment is limited by, and what it has produced so far.
pub(crate) struct ReadBudget {
    /// Stop once this many records are in `out`.
    pub max_records: usize,
    /// Stop once key and payload bytes would exceed this (after the first record).
    pub max_bytes: usize,
    /// Key and payload bytes in `out`.
    pub bytes_used: usize,
    /// Records at or after the read's first offset when it started.
    pub available: u64,
    /// The records read.
    pub out: Vec<Record>,
}

impl ReadBudget {
    /// A budget for a read of at most `max_records` records and `max_bytes` bytes.
    pub(crate) fn new(max_records: usize, max_bytes: usize) -> Self {
        ReadBudget {
            max_records,
            max_bytes,
            bytes_used: 0,
            available: u64::MAX,
            out: Vec::new(),
        }
    }

    /// Sizes `out`, before its first record, for as many records as the limits allow if
    /// they are like those of the frame `head` (up to [`MAX_RESERVE`]): growing it by
    /// doubling instead would copy about as many bytes as a read of small records hands
    /// out.
    fn reserve_like(&mut self, head: &FrameHead) {
        let body = head.body_len as usize - BODY_PREFIX;
        let per_record = body / head.count as usize;
        let fit = self.max_bytes / per_record.saturating_sub(RECORD_OVERHEAD).max(1);
        let records = fit
            .saturating_add(1)
            .min(self.max_records)
            .min(usize::try_from(self.available).unwrap_or(usize::MAX))
            .min(MAX_RESERVE);
        self.out.reserve_exact(records);
    }
}

/// The most records a read makes room for up front; beyond, its vector grows as usual.
const MAX_RESERVE: usize = 1 << 16;

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
    pub start_pos: u64,
    pub len: u64,
    pub end: u64,
}

/// Reads records at or after `from_offset` from the committed part of a segment, from
/// `view.start_pos` (an index position at or before the frame holding `from_offset`).
/// Checks the checksum of every frame it decodes beyond the segment's verified prefix.
/// Returns whether the whole segment was consumed (the budget was not the limit).
pub(crate) fn read_segment(
    view: &SegmentView,
    from_offset: u64,
    max_body: u32,
    budget: &mut ReadBudget,
) -> Result<bool> {
    if view.start_pos >= view.len {
        return Ok(true);
    }
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
    let fetch = |pos: u64, len: usize| match &mapped {
        Some(map) => Ok(map.slice(pos as usize..pos as usize + len)),
        None => read_at(view, pos, len),
    };
    // A mapping is read as one chunk. `pread` chunks are small enough that a read
    // limited by record count wastes little, and below the allocator's mmap threshold
    // so they are recycled rather than faulted in anew.
    let chunk = match mapped {
        Some(_) => usize::MAX,
        None => budget
            .max_bytes
            .saturating_add(4096)
            .clamp(4096, READ_CHUNK),
    };
    let mut checks = Checks::new(&view.cache);
    let mut pos = view.start_pos;
    while pos < view.len {
        let want = (view.len - pos).min(chunk as u64) as usize;
        let buf = fetch(pos, want)?;
        let mut at = 0usize;
        let mut progressed = false;
        while at + HEADER + BODY_PREFIX <= buf.len() {
            let frame_pos = pos + at as u64;
            let head = parse(view, frame_pos, &buf[at..], max_body)?;
            let total = head.total_len() as usize;
            if frame_pos + total as u64 > view.len {
                return Err(corrupt(
                    view,
                    frame_pos,
                    format!("frame of {total} bytes extends past the committed data"),
                ));
            }
            if at + total > buf.len() {
                if !progressed {
                    // A frame larger than the chunk: read exactly that frame.
                    let whole = fetch(pos, total)?;
                    let body = whole.slice(HEADER..);
                    if decode_frame(view, pos, &head, body, from_offset, budget, &mut checks)? {
                        return Ok(false);
                    }
                    at = total;
                }
                break;
            }
            let body = buf.slice(at + HEADER..at + total);
            if decode_frame(
                view,
                frame_pos,
                &head,
                body,
                from_offset,
                budget,
                &mut checks,
            )? {
                return Ok(false);
            }
            at += total;
            progressed = true;
        }
        if at == 0 {
            // Fewer bytes than a frame head remain in the committed length: corrupt.
            return Err(corrupt(
                view,
                pos,
                "committed data ends inside a frame header".into(),
            ));
        }
        pos += at as u64;
    }
    Ok(true)
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

/// Decodes one frame into the budget, checking its checksum unless it is known to be
/// good; returns whether the budget ran out.
fn decode_frame(
    view: &SegmentView,
    pos: u64,
    head: &FrameHead,
    body: Bytes,
    from_offset: u64,
    budget: &mut ReadBudget,
    checks: &mut Checks<'_>,
) -> Result<bool> {
    if head.base_offset + u64::from(head.count) <= from_offset {
        return Ok(false);
    }
    let end = pos + head.total_len();
    if checks.needed(end) && !frame::body_ok(head, &body) {
        return Err(LogError::Corrupt {
            file: view.path.clone(),
            position: pos,
            offset: head.base_offset,
            reason: "checksum mismatch".to_string(),
        });
    }
    checks.passed(pos, end);
    if budget.out.capacity() == 0 {
        budget.reserve_like(head);
    }
    let ReadBudget {
        max_records,
        max_bytes,
        bytes_used,
        out,
        ..
    } = budget;
    frame::decode_body(
        &body,
        from_offset,
        *max_records,
        *max_bytes,
        bytes_used,
        out,
    )
    .map_err(|reason| LogError::Corrupt {
        file: view.path.clone(),
        position: pos,
        offset: head.base_offset,
        reason,
    })
}

fn corrupt(view: &SegmentView, pos: u64, reason: String) -> LogError {
    LogError::Corrupt {
        file: view.path.clone(),
        position: pos,
        offset: 0,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = segment_path(Path::new("/d"), 42);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_segment_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("00000000000000000042.tmp"), None);
    }

    #[test]
    fn sparse_index_seeks_to_the_frame_at_or_before() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let mut seg = Segment::new(10, PathBuf::from("x"), file);
        // Frames of 100 bytes and 5 records each; index every 250 bytes.
        for i in 0..10u64 {
            seg.push_frame(i * 100, 10 + i * 5, 5, 100, 250, false);
        }
        assert_eq!(seg.index, vec![(10, 0), (25, 300), (40, 600), (55, 900)]);
        assert_eq!(seg.seek(10), 0);
        assert_eq!(seg.seek(24), 0);
        assert_eq!(seg.seek(25), 300);
        assert_eq!(seg.seek(47), 600);
        assert_eq!(seg.seek(1000), 900);
        assert_eq!((seg.len, seg.end), (1000, 60));
    }
}
