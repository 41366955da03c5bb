//! What the reads of one segment share: the segment file mapped into memory, so that
//! records are zero-copy slices of the page cache, and how far the segment's checksums
//! are known to be good, so that a frame is checked once per process, not once per read.
//!
//! # When a segment is mapped
//! A mapping is only safe while no one shortens the file under it: touching a mapped
//! page beyond the end of the file raises `SIGBUS`. The log never shortens committed
//! bytes: recovery cuts a torn tail before anything is mapped, and the writer's undo of
//! a failed append cuts only bytes that were never committed. So:
//! - in the writer's process every segment is mapped, the active one with room to grow
//!   (a shared mapping sees what is appended to the file later);
//! - in a read-only process only sealed segments are mapped. Its view of the active
//!   segment includes frames that the writer may still cut (a batch split into several
//!   frames whose write failed half-way), so that segment is read with `pread`.
//!
//! Someone else truncating a segment file that is in use is outside this contract (as it
//! is for the rest of the log) and may then end the process with `SIGBUS`.
//!
//! # What "verified" means
//! `verified` is the length of the segment's prefix whose frames have had their CRC32C
//! checked in this process: by recovery (the last segment), by a follower's scan, by the
//! writer (it computed the checksum of the bytes it wrote), or by an earlier read. Reads
//! check every frame beyond it and move it forward. Bytes that change on disk after their
//! frame was verified are therefore not noticed until the log is opened again.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use memmap2::MmapOptions;

/// Shared read state of one segment; see the module documentation.
#[derive(Default)]
pub(crate) struct SegmentCache {
    /// The current mapping, as one `Bytes` of which reads hand out slices.
    map: Mutex<Option<Bytes>>,
    /// Bytes from the start of the segment whose frames' checksums are verified.
    verified: AtomicU64,
}

impl SegmentCache {
    /// A mapping of `file` covering at least its first `need` bytes; when the current one
    /// is shorter, maps `reserve` bytes (at least `need`) anew. Only the first `need`
    /// bytes of the result may be touched unless the file is known to be longer.
    pub(crate) fn mapped(&self, file: &File, need: u64, reserve: u64) -> std::io::Result<Bytes> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bytes) = map.as_ref().filter(|b| b.len() as u64 >= need) {
            return Ok(bytes.clone());
        }
        let len = usize::try_from(reserve.max(need)).map_err(std::io::Error::other)?;
        // The crate's one `unsafe`, allowed here alone (the workspace denies it).
        // SAFETY: the bytes handed out are committed frames, which the log never changes
        // or truncates while the segment is open (module documentation); the `Bytes`
        // owns the mapping, so it outlives every slice of it.
        #[allow(unsafe_code)]
        let mmap = unsafe { MmapOptions::new().len(len).map(file)? };
        let bytes = Bytes::from_owner(mmap);
        *map = Some(bytes.clone());
        Ok(bytes)
    }

    /// The length of the verified prefix.
    pub(crate) fn verified(&self) -> u64 {
        self.verified.load(Ordering::Acquire)
    }

    /// Records that the frames of `pos..end` are verified; extends the verified prefix
    /// if that range touches it.
    pub(crate) fn mark_verified(&self, pos: u64, end: u64) {
        if self.verified() >= pos {
            self.verified.fetch_max(end, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_mapping_is_reused_until_the_file_outgrows_it() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"hello").unwrap();
        let cache = SegmentCache::default();
        let first = cache.mapped(&file, 5, 4096).unwrap();
        assert_eq!(&first[..5], b"hello");
        file.write_all(b" world").unwrap();
        let again = cache.mapped(&file, 11, 4096).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same mapping");
        assert_eq!(&again[..11], b"hello world", "it sees what was appended");
        let bigger = cache.mapped(&file, 5000, 4096).unwrap();
        assert_eq!(bigger.len(), 5000);
        assert_eq!(&bigger[..11], b"hello world");
        assert_eq!(&first[..5], b"hello", "old slices keep their mapping alive");
    }

    #[test]
    fn the_verified_prefix_grows_only_from_its_end() {
        let cache = SegmentCache::default();
        cache.mark_verified(10, 20);
        assert_eq!(cache.verified(), 0, "a gap before 10 is unverified");
        cache.mark_verified(0, 10);
        assert_eq!(cache.verified(), 10);
        cache.mark_verified(10, 20);
        assert_eq!(cache.verified(), 20);
        cache.mark_verified(0, 15);
        assert_eq!(cache.verified(), 20, "never shrinks");
    }
}
