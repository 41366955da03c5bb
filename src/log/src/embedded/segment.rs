//! One segment file of a partition: its naming, its sparse offset index, scanning its
//! frames, and reading records from it.
//!
//! A segment is `<partition dir>/<base_offset, 20 digits>.log`. Its index is kept in
//! memory only and rebuilt by scanning the frame headers when the partition is opened
//! (a sidecar index could skip that scan; it is not needed at today's sizes). The index
//! holds `(frame base offset, byte position)` for the first frame and then for a frame
//! every `index_interval_bytes`, so finding an offset is a binary search plus a scan of
//! at most one interval. Reading records from a segment is [`super::read`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{self, BODY_PREFIX, HEADER};
use super::mapping::SegmentCache;
use crate::{LogError, Result};

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
