//! The on-disk frame: one batch of records, length-prefixed and CRC32C-checked.
//!
//! ```text
//! frame   = body_len:u32le crc32c(body):u32le body
//! body    = base_offset:u64le count:u32le record{count}
//! record  = timestamp_ms:i64le key_len:u32le key payload_len:u32le payload
//! ```
//! `key_len == u32::MAX` means "no key". A frame's body is at most the configured
//! maximum frame size; a length outside `BODY_PREFIX..=max` is corruption, never an
//! allocation. Integers are little-endian.

use crate::batch::NO_KEY;
use crate::{LogError, NewRecord, Result};

/// Bytes before the body: length and checksum.
pub(crate) const HEADER: usize = 8;
/// Bytes at the start of every body: base offset and record count.
pub(crate) const BODY_PREFIX: usize = 12;
/// Per-record overhead: timestamp and two lengths.
pub(crate) const RECORD_OVERHEAD: usize = 16;

/// Where a frame written by [`encode_batch`] landed in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    /// Byte position of the frame within the encoded buffer.
    pub pos: usize,
    /// Offset of the frame's first record.
    pub base_offset: u64,
    /// Records in the frame.
    pub count: u32,
}

/// The encoded size of one record within a body.
pub(crate) fn record_len(record: &NewRecord) -> usize {
    RECORD_OVERHEAD + record.key.as_ref().map_or(0, |k| k.len()) + record.payload.len()
}

/// Appends `records` to `out` as one or more frames, each body at most `max_body` bytes,
/// numbering records from `base_offset`. Returns one [`FrameInfo`] per frame written.
pub(crate) fn encode_batch(
    records: &[NewRecord],
    base_offset: u64,
    max_body: u32,
    out: &mut Vec<u8>,
) -> Result<Vec<FrameInfo>> {
    let mut frames = Vec::new();
    let mut i = 0;
    let mut offset = base_offset;
    while i < records.len() {
        // Choose the records of this frame.
        let mut body_len = BODY_PREFIX;
        let mut j = i;
        while j < records.len() {
            let len = record_len(&records[j]);
            if body_len + len > max_body as usize {
                break;
            }
            body_len += len;
            j += 1;
        }
        if j == i {
            let size = BODY_PREFIX + record_len(&records[i]);
            return Err(LogError::RecordTooLarge {
                size,
                max: max_body,
            });
        }
        let pos = out.len();
        out.reserve(HEADER + body_len);
        out.extend_from_slice(&(body_len as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let body_start = out.len();
        let count = (j - i) as u32;
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        for record in &records[i..j] {
            out.extend_from_slice(&record.timestamp_ms.to_le_bytes());
            match &record.key {
                Some(key) => {
                    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    out.extend_from_slice(key);
                }
                None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
            }
            out.extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&record.payload);
        }
        let crc = crc32c::crc32c(&out[body_start..]);
        out[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        frames.push(FrameInfo {
            pos,
            base_offset: offset,
            count,
        });
        offset += u64::from(count);
        i = j;
    }
    Ok(frames)
}

/// A frame's header and body prefix, parsed without looking at the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHead {
    /// Length of the body.
    pub body_len: u32,
    /// Expected CRC32C of the body.
    pub crc: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Number of records.
    pub count: u32,
}

impl FrameHead {
    /// Total bytes of the frame on disk.
    pub(crate) fn total_len(&self) -> u64 {
        HEADER as u64 + u64::from(self.body_len)
    }
}

/// Parses the first `HEADER + BODY_PREFIX` bytes of a frame; `Err` says why they cannot
/// start a valid frame.
pub(crate) fn parse_head(bytes: &[u8], max_body: u32) -> Result<FrameHead, String> {
    if bytes.len() < HEADER + BODY_PREFIX {
        return Err(format!("incomplete frame header ({} bytes)", bytes.len()));
    }
    let body_len = u32_at(bytes, 0);
    if (body_len as usize) < BODY_PREFIX || body_len > max_body {
        return Err(format!("frame length {body_len} out of range"));
    }
    let head = FrameHead {
        body_len,
        crc: u32_at(bytes, 4),
        base_offset: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        count: u32_at(bytes, 16),
    };
    if head.count == 0 {
        return Err("frame with no records".to_string());
    }
    Ok(head)
}

/// Whether `body` matches the checksum in `head`.
pub(crate) fn body_ok(head: &FrameHead, body: &[u8]) -> bool {
    crc32c::crc32c(body) == head.crc
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// What one read may take — across the segments it visits — and what it has taken.
pub(crate) struct ReadBudget {
    /// Take at most this many records.
    pub max_records: usize,
    /// Take records while their key and payload bytes stay within this (after the first
    /// record, which is taken regardless).
    pub max_bytes: usize,
    /// Records taken so far.
    pub records: usize,
    /// Key and payload bytes taken so far.
    pub bytes_used: usize,
    /// Records at or after the read's first offset when it started.
    pub available: u64,
    /// A limit stopped the read: the next record would break it.
    pub spent: bool,
}

impl ReadBudget {
    /// A budget for a read of at most `max_records` records and `max_bytes` bytes.
    pub(crate) fn new(max_records: usize, max_bytes: usize) -> Self {
        ReadBudget {
            max_records,
            max_bytes,
            records: 0,
            bytes_used: 0,
            available: u64::MAX,
            spent: max_records == 0,
        }
    }

    /// How many records to make room for, before the first, if they are like those of
    /// the frame `head` (at most [`MAX_RESERVE`]): growing the output by doubling
    /// instead would copy about as many bytes as a read of small records hands out.
    pub(crate) fn records_like(&self, head: &FrameHead) -> usize {
        let body = head.body_len as usize - BODY_PREFIX;
        let per_record = body / head.count as usize;
        let fit = self.max_bytes / per_record.saturating_sub(RECORD_OVERHEAD).max(1);
        fit.saturating_add(1)
            .min(self.max_records - self.records)
            .min(usize::try_from(self.available).unwrap_or(usize::MAX))
            .min(MAX_RESERVE)
    }
}

/// The most records a read makes room for up front; beyond, its index grows as usual.
const MAX_RESERVE: usize = 1 << 16;

/// One record as [`decode_body`] finds it; positions are those of its window (the
/// bytes a frame was read into).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoded {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key_start: usize,
    /// [`NO_KEY`] for no key.
    pub key_len: u32,
    pub payload_start: usize,
    pub payload_len: u32,
}

/// Where [`decode_body`] puts the records it decodes: a [`crate::RecordBatch`]'s index
/// or [`crate::Record`]s (see [`super::read`]).
pub(crate) trait Sink {
    /// Makes room for about `n` more records.
    fn reserve(&mut self, n: usize);
    /// Takes the frame whose body is `window[body]`, before its records; `false` if it
    /// cannot join what the sink holds (a batch's buffer would exceed 4 GiB).
    fn frame(&mut self, window: &bytes::Bytes, body: std::ops::Range<usize>) -> bool;
    /// A record of the frame last taken.
    fn push(&mut self, record: Decoded);
    /// Whether records from another window may follow those already taken.
    fn spans_windows(&self) -> bool;
}

/// Decodes the records of a checked body at `body_pos` of its window into `sink`,
/// skipping those below `from_offset` and stopping once the budget is spent. Returns
/// whether it stopped for the budget (`true`) rather than at the end of the body, or
/// `Err(reason)` if the body is malformed despite its checksum.
pub(crate) fn decode_body(
    body: &[u8],
    body_pos: usize,
    from_offset: u64,
    budget: &mut ReadBudget,
    sink: &mut impl Sink,
) -> Result<bool, String> {
    let base = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let count = u32_at(body, 8);
    // This loop is most of a read of small records: the budget lives in locals, and
    // every length is checked against the body once.
    let (mut records, mut bytes_used) = (budget.records, budget.bytes_used);
    let mut pos = BODY_PREFIX;
    let mut spent = false;
    for i in 0..u64::from(count) {
        let Some(head) = body.get(pos..pos + 12) else {
            return Err(past_body(pos));
        };
        let timestamp_ms = i64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let key_len = u32_at(head, 8);
        let key_start = pos + 12;
        let key_bytes = if key_len == NO_KEY {
            0
        } else {
            key_len as usize
        };
        let Some(len) = body.get(key_start + key_bytes..key_start + key_bytes + 4) else {
            return Err(past_body(key_start));
        };
        let payload_len = u32_at(len, 0);
        let payload_start = key_start + key_bytes + 4;
        pos = payload_start + payload_len as usize;
        if pos > body.len() {
            return Err(past_body(payload_start));
        }
        if base + i < from_offset {
            continue;
        }
        let size = payload_len as usize + key_bytes;
        if records >= budget.max_records || (records > 0 && bytes_used + size > budget.max_bytes) {
            spent = true;
            break;
        }
        bytes_used += size;
        records += 1;
        sink.push(Decoded {
            offset: base + i,
            timestamp_ms,
            key_start: body_pos + key_start,
            key_len,
            payload_start: body_pos + payload_start,
            payload_len,
        });
    }
    (budget.records, budget.bytes_used) = (records, bytes_used);
    budget.spent |= spent;
    if !spent && pos != body.len() {
        return Err(format!(
            "{} trailing bytes after the last record",
            body.len() - pos
        ));
    }
    Ok(spent)
}

fn past_body(pos: usize) -> String {
    format!("record extends past the frame body at {pos}")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::read::RecordSink;
    use super::*;
    use crate::Record;

    fn recs(n: usize) -> Vec<NewRecord> {
        (0..n)
            .map(|i| {
                let payload = format!("payload-{i}");
                if i % 2 == 0 {
                    NewRecord::with_key(format!("k{i}"), payload, i as i64 - 3)
                } else {
                    NewRecord::new(payload, i as i64)
                }
            })
            .collect()
    }

    /// Decodes the records of the body at `at` of `buf` from `from_offset` within the
    /// limits.
    fn decode(buf: &[u8], at: usize, from_offset: u64, limits: (usize, usize)) -> Vec<Record> {
        let mut budget = ReadBudget::new(limits.0, limits.1);
        let mut sink = RecordSink::default();
        let window = Bytes::copy_from_slice(buf);
        assert!(sink.frame(&window, at..buf.len()));
        decode_body(&buf[at..], at, from_offset, &mut budget, &mut sink).unwrap();
        sink.out
    }

    fn decode_all(buf: &[u8], max_body: u32) -> Vec<Record> {
        let mut at = 0;
        let mut budget = ReadBudget::new(usize::MAX, usize::MAX);
        let mut sink = RecordSink::default();
        let window = Bytes::copy_from_slice(buf);
        while at < buf.len() {
            let head = parse_head(&buf[at..], max_body).unwrap();
            let body = at + HEADER..at + head.total_len() as usize;
            assert!(body_ok(&head, &buf[body.clone()]));
            assert!(sink.frame(&window, body.clone()));
            decode_body(&buf[body.clone()], body.start, 0, &mut budget, &mut sink).unwrap();
            at = body.end;
        }
        sink.out
    }

    #[test]
    fn round_trip_splits_into_frames() {
        let records = recs(50);
        let mut buf = Vec::new();
        let frames = encode_batch(&records, 100, 200, &mut buf).unwrap();
        assert!(frames.len() > 1, "a small max body splits the batch");
        assert_eq!(frames[0].base_offset, 100);
        assert_eq!(frames.iter().map(|f| f.count).sum::<u32>(), 50);
        let back = decode_all(&buf, 200);
        assert_eq!(back.len(), 50);
        for (i, (r, n)) in back.iter().zip(&records).enumerate() {
            assert_eq!(r.offset, 100 + i as u64);
            assert_eq!(
                (&r.key, &r.payload, r.timestamp_ms),
                (&n.key, &n.payload, n.timestamp_ms)
            );
        }
    }

    #[test]
    fn corruption_is_detected() {
        let mut buf = Vec::new();
        encode_batch(&recs(3), 0, 1 << 20, &mut buf).unwrap();
        let head = parse_head(&buf, 1 << 20).unwrap();
        for i in HEADER..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(!body_ok(&head, &bad[HEADER..]), "flip at {i} undetected");
        }
        // An absurd length is rejected before anything is allocated.
        let mut huge = buf.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_head(&huge, 1 << 20)
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_head(&buf[..10], 1 << 20)
            .unwrap_err()
            .contains("incomplete"));
    }

    #[test]
    fn too_large_record_is_an_error() {
        let big = vec![NewRecord::new(vec![0u8; 1000], 0)];
        let err = encode_batch(&big, 0, 500, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, LogError::RecordTooLarge { max: 500, .. }));
    }

    #[test]
    fn decode_respects_limits_and_start() {
        let mut buf = Vec::new();
        encode_batch(&recs(10), 0, 1 << 20, &mut buf).unwrap();
        let out = decode(&buf, HEADER, 4, (3, usize::MAX));
        assert_eq!(
            out.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        assert_eq!(out[0].payload, "payload-4");
        assert_eq!(out[1].key, None);
        let out = decode(&buf, HEADER, 0, (100, 0));
        assert_eq!(
            out.len(),
            1,
            "the first record is returned even over budget"
        );
    }
}
