//! [`RecordBatch`]: a run of consecutive records of one partition held as one buffer
//! plus a compact index, what [`crate::Log::read_batch`] returns.
//!
//! A [`crate::Record`] costs 80 bytes and a reference-counted [`Bytes`] per key and
//! payload; for small records that per-record cost is most of a read. A batch instead
//! holds one [`Bytes`] (for the embedded log in the writer's process, a zero-copy slice of
//! a segment's memory map) and, per record, a 24-byte index entry: the timestamp and the
//! positions of key and payload within that buffer. Offsets are not stored: records are
//! consecutive from [`RecordBatch::first_offset`]. Iteration hands out [`RecordRef`]s,
//! borrowed views that cost nothing to make or drop.
//!
//! ```
//! use kappa_log::{Log, MemLog, NewRecord};
//! let log = MemLog::new();
//! log.create_topic("t", 1).unwrap();
//! log.append("t", 0, &[NewRecord::with_key(&b"k"[..], &b"{}"[..], 7)]).unwrap();
//! let batch = log.read_batch("t", 0, 0, 100, 1 << 20).unwrap();
//! assert_eq!((batch.len(), batch.next_offset()), (1, 1));
//! for record in &batch {
//!     assert_eq!((record.offset, record.key, record.payload), (0, Some(&b"k"[..]), &b"{}"[..]));
//! }
//! ```

use bytes::{Bytes, BytesMut};

use crate::Record;

/// One record of a [`RecordBatch`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The record's offset within its partition.
    pub offset: u64,
    /// The timestamp given at append time.
    pub timestamp_ms: i64,
    /// The key given at append time.
    pub key: Option<&'a [u8]>,
    /// The payload given at append time.
    pub payload: &'a [u8],
}

/// `Entry::key_len` of a record without a key (the same marker as on disk).
pub(crate) const NO_KEY: u32 = u32::MAX;

/// Where one record's parts are in the batch's buffer. Positions are `u32` to keep the
/// index small, which is why a batch's buffer is at most 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub timestamp_ms: i64,
    pub key_start: u32,
    /// [`NO_KEY`] for no key.
    pub key_len: u32,
    pub payload_start: u32,
    pub payload_len: u32,
}

/// Consecutive records of one partition: one buffer and an index into it. See the
/// module documentation. Two batches are equal when they hold the same records, however
/// their buffers are laid out.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    first_offset: u64,
    buf: Bytes,
    entries: Vec<Entry>,
}

impl RecordBatch {
    /// A batch with no records, positioned at `offset` (its [`RecordBatch::next_offset`]).
    pub fn empty(offset: u64) -> Self {
        RecordBatch {
            first_offset: offset,
            buf: Bytes::new(),
            entries: Vec::new(),
        }
    }

    /// A batch holding `records` (copied into one buffer). Records must be consecutive;
    /// the batch ends before the first gap in their offsets, if any. `offset` positions
    /// an empty batch.
    ///
    /// # Panics
    /// If the keys and payloads together exceed 4 GiB.
    pub fn from_records(offset: u64, records: &[Record]) -> Self {
        let first_offset = records.first().map_or(offset, |r| r.offset);
        let run = records
            .iter()
            .zip(first_offset..)
            .take_while(|(r, expected)| r.offset == *expected)
            .count();
        let records = &records[..run];
        let size: usize = records
            .iter()
            .map(|r| r.payload.len() + r.key.as_ref().map_or(0, Bytes::len))
            .sum();
        assert!(
            u32::try_from(size).is_ok(),
            "a record batch holds at most 4 GiB"
        );
        let mut buf = BytesMut::with_capacity(size);
        let mut entries = Vec::with_capacity(records.len());
        let mut put = |bytes: &[u8]| {
            let start = buf.len() as u32;
            buf.extend_from_slice(bytes);
            (start, bytes.len() as u32)
        };
        for r in records {
            let (key_start, key_len) = r.key.as_deref().map_or((0, NO_KEY), &mut put);
            let (payload_start, payload_len) = put(&r.payload);
            entries.push(Entry {
                timestamp_ms: r.timestamp_ms,
                key_start,
                key_len,
                payload_start,
                payload_len,
            });
        }
        RecordBatch {
            first_offset,
            buf: buf.freeze(),
            entries,
        }
    }

    /// A batch over `buf` whose records `entries` locate, the first at `first_offset`.
    /// The entries' positions must lie within `buf`.
    pub(crate) fn from_parts(first_offset: u64, buf: Bytes, entries: Vec<Entry>) -> Self {
        debug_assert!(entries.iter().all(|e| {
            let key_end = match e.key_len {
                NO_KEY => 0,
                len => e.key_start as usize + len as usize,
            };
            let payload_end = e.payload_start as usize + e.payload_len as usize;
            key_end.max(payload_end) <= buf.len()
        }));
        RecordBatch {
            first_offset,
            buf,
            entries,
        }
    }

    /// The number of records.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no records.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The offset of the first record (of the position asked for, if there is none).
    #[inline]
    pub fn first_offset(&self) -> u64 {
        self.first_offset
    }

    /// One past the offset of the last record: where the next read continues.
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.first_offset + self.entries.len() as u64
    }

    /// The timestamp of the last record, if any.
    #[inline]
    pub fn last_timestamp_ms(&self) -> Option<i64> {
        self.entries.last().map(|e| e.timestamp_ms)
    }

    /// The buffer the records' keys and payloads are slices of (it may hold other bytes,
    /// such as framing, between them).
    pub fn buffer(&self) -> &Bytes {
        &self.buf
    }

    /// The `i`-th record, if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<RecordRef<'_>> {
        self.entries.get(i).map(|e| self.view(i, e))
    }

    /// The records in offset order.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            batch: self,
            entries: self.entries.iter().enumerate(),
        }
    }

    /// The records as [`Record`]s, whose keys and payloads are zero-copy slices of the
    /// batch's buffer.
    pub fn to_records(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.entries.iter().enumerate().map(|(i, e)| Record {
            offset: self.first_offset + i as u64,
            timestamp_ms: e.timestamp_ms,
            key: (e.key_len != NO_KEY).then(|| self.buf.slice(range(e.key_start, e.key_len))),
            payload: self.buf.slice(range(e.payload_start, e.payload_len)),
        }));
        out
    }

    #[inline]
    fn view(&self, i: usize, e: &Entry) -> RecordRef<'_> {
        RecordRef {
            offset: self.first_offset + i as u64,
            timestamp_ms: e.timestamp_ms,
            key: (e.key_len != NO_KEY).then(|| &self.buf[range(e.key_start, e.key_len)]),
            payload: &self.buf[range(e.payload_start, e.payload_len)],
        }
    }
}

impl PartialEq for RecordBatch {
    fn eq(&self, other: &Self) -> bool {
        self.first_offset == other.first_offset && self.iter().eq(other.iter())
    }
}

impl Eq for RecordBatch {}

impl From<RecordBatch> for Vec<Record> {
    fn from(batch: RecordBatch) -> Self {
        batch.to_records()
    }
}

#[inline]
fn range(start: u32, len: u32) -> std::ops::Range<usize> {
    start as usize..start as usize + len as usize
}

/// The records of a [`RecordBatch`], in offset order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    batch: &'a RecordBatch,
    entries: std::iter::Enumerate<std::slice::Iter<'a, Entry>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = RecordRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        self.entries.next().map(|(i, e)| self.batch.view(i, e))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.entries.next_back().map(|(i, e)| self.batch.view(i, e))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a RecordBatch {
    type Item = RecordRef<'a>;
    type IntoIter = Iter<'a>;

    #[inline]
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, key: Option<&str>, payload: &str, ts: i64) -> Record {
        Record {
            offset,
            timestamp_ms: ts,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        }
    }

    #[test]
    fn from_records_round_trips() {
        let records = vec![
            record(5, Some("a"), "one", 1),
            record(6, None, "", -2),
            record(7, Some(""), "three", 3),
        ];
        let batch = RecordBatch::from_records(5, &records);
        assert_eq!((batch.len(), batch.first_offset()), (3, 5));
        assert_eq!(batch.next_offset(), 8);
        assert_eq!(batch.last_timestamp_ms(), Some(3));
        assert_eq!(batch.to_records(), records);
        let views: Vec<RecordRef<'_>> = batch.iter().collect();
        assert_eq!(views[1].key, None, "no key is not an empty key");
        assert_eq!(views[2].key, Some(&b""[..]));
        assert_eq!(batch.get(0).unwrap().payload, b"one");
        assert_eq!(batch.iter().next_back().unwrap().offset, 7);
        assert!(batch.get(3).is_none());
    }

    #[test]
    fn an_empty_batch_keeps_its_position() {
        let batch = RecordBatch::from_records(42, &[]);
        assert!(batch.is_empty());
        assert_eq!((batch.first_offset(), batch.next_offset()), (42, 42));
        assert_eq!(batch.last_timestamp_ms(), None);
        assert_eq!(batch, RecordBatch::empty(42));
    }

    #[test]
    fn a_gap_in_offsets_ends_the_batch() {
        let records = vec![record(0, None, "a", 0), record(2, None, "c", 0)];
        let batch = RecordBatch::from_records(0, &records);
        assert_eq!(batch.to_records(), records[..1]);
    }
}
