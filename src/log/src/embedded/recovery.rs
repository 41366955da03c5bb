//! Opening a partition: finding its segments, rebuilding their indexes, and recovering
//! the tail after a crash.
//!
//! Sealed segments (all but the last) are checked for framing and offset continuity; any
//! defect there is [`LogError::Corrupt`]; their checksums are checked by the first read
//! of each frame (see [`super::mapping`]). The last segment is fully verified (checksums
//! included). An invalid frame at its end is a torn write of an unacknowledged batch:
//! the writer truncates it away and logs what was dropped. An invalid frame followed by
//! a valid one is corruption in the middle, and an error naming the file and position.
//! A read-only open never truncates; it stops at the first invalid frame.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use super::partition::Partition;
use super::segment::{self, parse_segment_name, segment_path, Segment};
use super::EmbeddedOptions;
use crate::error::IoContext;
use crate::{LogError, Result};

/// Opens the partition in `dir` (creating its first segment when `read_only` is false and
/// there is none), recovering its tail.
pub(crate) fn open_partition(
    topic: &str,
    id: u32,
    dir: &Path,
    opts: &Arc<EmbeddedOptions>,
    read_only: bool,
) -> Result<Partition> {
    let mut bases = Vec::new();
    let entries = std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_segment_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    if bases.is_empty() && !read_only {
        let path = segment_path(dir, 0);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx(|| format!("creating {}", path.display()))?;
        super::meta::sync_dir(dir)?;
        bases.push(0);
    }
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        let seg = open_segment(dir, base, last, opts, read_only)?;
        if let Some(prev) = segments.last() {
            if prev.end != base {
                return Err(LogError::Corrupt {
                    file: prev.path.clone(),
                    position: prev.len,
                    offset: prev.end,
                    reason: format!(
                        "segment ends at offset {} but the next segment starts at {base}",
                        prev.end
                    ),
                });
            }
        }
        segments.push(seg);
    }
    Ok(Partition::new(
        topic,
        id,
        dir.to_path_buf(),
        opts.clone(),
        read_only,
        segments,
    ))
}

fn open_segment(
    dir: &Path,
    base: u64,
    last: bool,
    opts: &EmbeddedOptions,
    read_only: bool,
) -> Result<Segment> {
    let path = segment_path(dir, base);
    let file = if read_only {
        File::open(&path)
    } else {
        OpenOptions::new().read(true).write(true).open(&path)
    }
    .ctx(|| format!("opening {}", path.display()))?;
    let file_len = file
        .metadata()
        .ctx(|| format!("stat {}", path.display()))?
        .len();
    let mut seg = Segment::new(base, path, Arc::new(file));
    let bad = segment::scan(
        &mut seg,
        file_len,
        last,
        opts.max_frame_bytes,
        opts.index_interval_bytes,
    )?;
    let Some(bad) = bad else { return Ok(seg) };
    let corrupt = |reason: String| LogError::Corrupt {
        file: seg.path.clone(),
        position: bad.pos,
        offset: bad.offset,
        reason,
    };
    if !last {
        return Err(corrupt(format!("{} in a sealed segment", bad.reason)));
    }
    if read_only {
        // Possibly a write in progress by the writer; it becomes visible once complete.
        return Ok(seg);
    }
    let resync = segment::valid_frame_after(
        &seg.file,
        file_len,
        bad.pos,
        bad.offset,
        opts.max_frame_bytes,
    )
    .ctx(|| format!("reading {}", seg.path.display()))?;
    if let Some(next) = resync {
        return Err(corrupt(format!(
            "{}, followed by a valid frame at byte {next}",
            bad.reason
        )));
    }
    tracing::warn!(
        file = %seg.path.display(),
        position = bad.pos,
        dropped_bytes = file_len - bad.pos,
        next_offset = bad.offset,
        reason = %bad.reason,
        "truncating a torn write at the end of the log (an append that was never acknowledged)"
    );
    seg.file
        .set_len(bad.pos)
        .ctx(|| format!("truncating {}", seg.path.display()))?;
    seg.file
        .sync_all()
        .ctx(|| format!("syncing {}", seg.path.display()))?;
    Ok(seg)
}
