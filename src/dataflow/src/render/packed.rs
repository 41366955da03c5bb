//! Packed rows: the compact form of rows inside arrangements.
//!
//! Keys of reductions, distinct `(key, value)` pairs and top-k groups live in
//! arrangements, where they are sorted, merged and sought many times and kept for
//! as long as the view lives. As `Vec<Value>` each would be a heap allocation of
//! 24-byte values (long strings behind a pointer and a reference count), compared
//! value by value. A [`PackedRow`] is the row's values encoded into (usually
//! inline) bytes, with a 64-bit hash of those bytes computed once:
//!
//! - order is by hash, then bytes: a total order consistent with equality, which is
//!   all arrangements need (nothing may depend on it meaning anything else);
//!   different keys almost always differ in the hash, equal keys compare by one
//!   `memcmp` of a few bytes;
//! - the encoding is canonical (floats are canonicalised by [`F64`]), so equal rows
//!   have equal bytes and equal hashes, in every process of a cluster (xxh3 with a
//!   fixed seed): exchange reuses the hash;
//! - rows of up to [`INLINE`] bytes need no allocation at all.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use kappa_sql::types::{SmolStr, F64};
use kappa_sql::{Row, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::graded::Shard;

/// Encoded bytes kept inline, without allocating.
pub(crate) const INLINE: usize = 24;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const TEXT: u8 = 5;
const TIMESTAMP: u8 = 6;

/// A row encoded as bytes, ordered by the hash of those bytes first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct PackedRow {
    hash: u64,
    bytes: SmallVec<[u8; INLINE]>,
}

impl Hash for PackedRow {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PackedRow {
    /// Packs `values`, in order.
    pub(crate) fn pack<'a>(values: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut encoder = Encoder::default();
        for value in values {
            encoder.push(value);
        }
        encoder.finish()
    }

    /// This row with `value` appended.
    pub(crate) fn with(&self, value: &Value) -> Self {
        self.extended(std::slice::from_ref(value))
    }

    /// This row with `values` appended: a key's row and its aggregates, packed
    /// without decoding the key.
    pub(crate) fn extended(&self, values: &[Value]) -> Self {
        let mut encoder = Encoder::default();
        encoder.put(&self.bytes);
        for value in values {
            encoder.push(value);
        }
        encoder.finish()
    }

    /// The row of encoded `bytes`. Hashed from the slice, before the bytes are
    /// copied: hashing the `SmallVec` just built read its length back from stores
    /// not yet retired, a store-forwarding stall that was ~6% of a run.
    #[inline]
    fn from_slice(bytes: &[u8]) -> Self {
        PackedRow {
            hash: xxhash_rust::xxh3::xxh3_64(bytes),
            bytes: SmallVec::from_slice(bytes),
        }
    }

    /// Each value's encoding, in column order: what [`crate::store::RowFilter`]
    /// compares, without decoding (equal values have equal encodings).
    pub(crate) fn encoded_values(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest: &[u8] = &self.bytes;
        std::iter::from_fn(move || {
            let value = rest;
            if value.is_empty() {
                return None;
            }
            skip(&mut rest);
            Some(&value[..value.len() - rest.len()])
        })
    }

    /// The encoded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The row's first `width` values, packed, and the value after them.
    ///
    /// # Panics
    /// When the row has fewer than `width + 1` values.
    pub(crate) fn split_last(&self, width: usize) -> (PackedRow, Value) {
        let mut rest: &[u8] = &self.bytes;
        for _ in 0..width {
            decode(&mut rest);
        }
        let cut = self.bytes.len() - rest.len();
        let last = decode(&mut rest);
        (Self::from_slice(&self.bytes[..cut]), last)
    }

    /// The row's first `width` values (all of them when it has fewer), packed,
    /// without decoding them.
    pub(crate) fn prefix(&self, width: usize) -> PackedRow {
        Self::from_slice(&self.bytes[..self.leading_len(width)])
    }

    /// How many of the row's bytes encode its first `width` values (all of them
    /// when the row has fewer).
    pub(crate) fn leading_len(&self, width: usize) -> usize {
        let mut rest: &[u8] = &self.bytes;
        for _ in 0..width {
            if rest.is_empty() {
                break;
            }
            skip(&mut rest);
        }
        self.bytes.len() - rest.len()
    }

    /// Bytes held outside the row itself (0 for rows kept inline).
    pub(crate) fn heap_bytes(&self) -> usize {
        if self.bytes.spilled() {
            self.bytes.capacity()
        } else {
            0
        }
    }

    /// The 64-bit hash of the packed bytes: the same in every process.
    pub(crate) fn hash_code(&self) -> u64 {
        self.hash
    }

    /// A 128-bit fingerprint of the packed bytes, independent of [`Self::hash_code`].
    ///
    /// Where a set of rows is too large to keep their bytes (the distinct pairs of a
    /// `COUNT(DISTINCT)`), rows are told apart by fingerprint: two of `n` distinct rows
    /// share one with probability about `n² / 2^129` (10^-21 for a billion rows),
    /// far below the rate of undetected memory errors. ClickHouse's `uniqExact`
    /// keeps 128-bit hashes of strings for the same reason. The distinct pairs'
    /// table keeps 96 of the bits (`n² / 2^97`: 6·10^-12 for a billion rows), so
    /// that an entry with its time fits in 16 bytes.
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        let hash = xxhash_rust::xxh3::xxh3_128(&self.bytes);
        Fingerprint(hash as u64, (hash >> 64) as u64)
    }

    /// The values, unpacked.
    pub(crate) fn unpack(&self) -> Row {
        unpack_bytes(&self.bytes)
    }

    /// Appends the values to `row`.
    pub(crate) fn unpack_into(&self, row: &mut Row) {
        unpack_bytes_into(&self.bytes, row);
    }
}

/// The values of a row's encoded bytes ([`PackedRow::as_bytes`]), unpacked.
pub(crate) fn unpack_bytes(bytes: &[u8]) -> Row {
    let mut row = Vec::new();
    unpack_bytes_into(bytes, &mut row);
    row
}

fn unpack_bytes_into(mut bytes: &[u8], row: &mut Row) {
    while !bytes.is_empty() {
        row.push(decode(&mut bytes));
    }
}

/// Unpacks keys, remembering the last one: a running total's change comes out as
/// its old value's retraction then its new value's insertion, both of one key, so
/// every other key unpacked is the one just before.
///
/// The remembered values live in a buffer reused from key to key, and each row
/// handed out is one allocation of exactly the size asked for: a live pipeline
/// unpacks two rows per changed key per time, and the rows are freed on the
/// store's thread, so every allocation here costs twice.
#[derive(Default)]
pub(crate) struct LastUnpacked(std::cell::RefCell<Option<(PackedRow, Row)>>);

impl LastUnpacked {
    /// `key`'s values, with room for `extra` more.
    pub(crate) fn unpack(&self, key: PackedRow, extra: usize) -> Row {
        let mut last = self.0.borrow_mut();
        match &mut *last {
            Some((previous, _)) if *previous == key => {}
            Some((previous, values)) => {
                values.clear();
                key.unpack_into(values);
                *previous = key;
            }
            None => {
                let mut values = Row::new();
                key.unpack_into(&mut values);
                *last = Some((key, values));
            }
        }
        let (_, values) = last.as_ref().expect("a key was just remembered");
        let mut row = Vec::with_capacity(values.len() + extra);
        row.extend_from_slice(values);
        row
    }
}

/// Hashes a [`PackedRow`] by the hash it already carries.
#[derive(Default)]
pub(crate) struct CarriedHash(u64);

impl Hasher for CarriedHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `PackedRow`; fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A hash map keyed by packed rows, hashed by the hash they carry.
pub(crate) type PackedMap<R> = HashMap<PackedRow, R, BuildHasherDefault<CarriedHash>>;

impl<R> Shard for PackedMap<R> {
    fn split(self, mut into: impl FnMut(u64) -> usize, shards: &mut [Self]) {
        for (key, value) in self {
            shards[into(key.hash)].insert(key, value);
        }
    }
}

/// A row's 128-bit fingerprint ([`PackedRow::fingerprint`]), as two halves: a
/// `u128` is 16-byte aligned, which would pad an entry of it and a time to 32 bytes.
/// Both halves are well-mixed hash bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub(crate) u64, pub(crate) u64);

/// Bytes a row is encoded into on the stack before it becomes a [`PackedRow`].
const STACK: usize = 64;

/// Encodes a row's values: into a buffer on the stack while they fit (one copy into
/// the row at the end; keys are packed once or more per input row, and the checks
/// of a `SmallVec` on every push cost more than the encoding), on the heap beyond.
struct Encoder {
    stack: [u8; STACK],
    len: usize,
    /// All bytes, once they outgrew the stack.
    heap: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            stack: [0; STACK],
            len: 0,
            heap: Vec::new(),
        }
    }
}

impl Encoder {
    /// Appends `bytes`.
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end <= STACK {
            self.stack[self.len..end].copy_from_slice(bytes);
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.stack[..self.len]);
            }
            self.heap.extend_from_slice(bytes);
        }
        self.len = end;
    }

    /// Appends `value`'s encoding.
    #[inline]
    fn push(&mut self, value: &Value) {
        match value {
            Value::Null => self.put(&[NULL]),
            Value::Bool(false) => self.put(&[FALSE]),
            Value::Bool(true) => self.put(&[TRUE]),
            Value::Int(i) => self.put_tagged(INT, i.to_le_bytes()),
            Value::Float(f) => {
                self.put_tagged(FLOAT, F64::new(f.get()).get().to_bits().to_le_bytes())
            }
            Value::Text(s) => {
                // Text longer than 4 GiB cannot reach a row: payloads are bounded far below.
                let [a, b, c, d] = (s.len() as u32).to_le_bytes();
                self.put(&[TEXT, a, b, c, d]);
                self.put(s.as_bytes());
            }
            Value::Timestamp(ms) => self.put_tagged(TIMESTAMP, ms.to_le_bytes()),
        }
    }

    /// Appends a tag and eight bytes, as one copy of a fixed size.
    fn put_tagged(&mut self, tag: u8, bytes: [u8; 8]) {
        let mut tagged = [tag; 9];
        tagged[1..].copy_from_slice(&bytes);
        self.put(&tagged);
    }

    fn finish(self) -> PackedRow {
        if self.len <= STACK {
            PackedRow::from_slice(&self.stack[..self.len])
        } else {
            PackedRow {
                hash: xxhash_rust::xxh3::xxh3_64(&self.heap),
                bytes: SmallVec::from_vec(self.heap),
            }
        }
    }
}

/// Advances `bytes` past the value at its front.
fn skip(bytes: &mut &[u8]) {
    let (tag, rest) = bytes.split_first().expect("a packed value");
    let used = match *tag {
        NULL | FALSE | TRUE => 0,
        INT | FLOAT | TIMESTAMP => 8,
        TEXT => 4 + u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize,
        other => unreachable!("unknown packed tag {other}"),
    };
    *bytes = &rest[used..];
}

/// Decodes the value at the front of `bytes` and advances past it. The bytes are
/// always produced by [`encode`] in this process or a peer running the same code.
fn decode(bytes: &mut &[u8]) -> Value {
    let (tag, rest) = bytes.split_first().expect("a packed value");
    let take8 = |rest: &[u8]| -> [u8; 8] { rest[..8].try_into().expect("8 bytes") };
    let (value, used) = match *tag {
        NULL => (Value::Null, 0),
        FALSE => (Value::Bool(false), 0),
        TRUE => (Value::Bool(true), 0),
        INT => (Value::Int(i64::from_le_bytes(take8(rest))), 8),
        FLOAT => (
            Value::Float(F64::new(f64::from_bits(u64::from_le_bytes(take8(rest))))),
            8,
        ),
        TIMESTAMP => (Value::Timestamp(i64::from_le_bytes(take8(rest))), 8),
        TEXT => {
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let text = std::str::from_utf8(&rest[4..4 + len]).expect("packed text is UTF-8");
            (Value::Text(SmolStr::new(text)), 4 + len)
        }
        other => unreachable!("unknown packed tag {other}"),
    };
    *bytes = &rest[used..];
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_last_key_unpacked_is_reused_and_others_unpacked_afresh() {
        let keys = LastUnpacked::default();
        let a = PackedRow::pack(&[Value::Text("/p/1".into()), Value::Int(7)]);
        let b = PackedRow::pack(&[Value::Text("/p/2".into())]);
        for (key, extra) in [(&a, 1), (&a, 2), (&b, 0), (&a, 1), (&b, 3), (&b, 0)] {
            let row = keys.unpack(key.clone(), extra);
            assert_eq!(row, key.unpack());
            assert!(row.capacity() >= row.len() + extra);
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::float),
            ".{0,40}".prop_map(|s| Value::text(&s)),
            any::<i64>().prop_map(Value::Timestamp),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_and_equality_matches_rows(a in prop::collection::vec(value(), 0..5),
                                                 b in prop::collection::vec(value(), 0..5)) {
            let (pa, pb) = (PackedRow::pack(&a), PackedRow::pack(&b));
            prop_assert_eq!(pa.unpack(), a.clone());
            prop_assert_eq!(pa == pb, a == b);
            prop_assert_eq!(pa.cmp(&pb) == std::cmp::Ordering::Equal, a == b);
        }

        #[test]
        fn split_last_and_prefix_invert_with(key in prop::collection::vec(value(), 0..4), last in value()) {
            let packed = PackedRow::pack(&key);
            let (prefix, value) = packed.with(&last).split_last(key.len());
            prop_assert_eq!(&prefix, &packed);
            prop_assert_eq!(packed.with(&last).prefix(key.len()), packed);
            prop_assert_eq!(value, last);
        }
    }

    #[test]
    fn fingerprints_tell_rows_apart_and_equal_rows_share_one() {
        let rows: Vec<PackedRow> = (0..10_000)
            .map(|i| {
                PackedRow::pack(&[Value::text(&format!("/p/{}", i % 100)), Value::Int(i / 100)])
            })
            .collect();
        let distinct: std::collections::HashSet<(u64, u64)> = rows
            .iter()
            .map(|r| (r.fingerprint().0, r.fingerprint().1))
            .collect();
        assert_eq!(distinct.len(), rows.len());
        let again = PackedRow::pack(&[Value::text("/p/7"), Value::Int(3)]);
        assert_eq!(again.fingerprint(), rows[307].fingerprint());
        // Not the carried hash: shards and exchange use that one's bits.
        assert_ne!(again.fingerprint().0, again.hash_code());
    }

    #[test]
    fn zero_and_negative_zero_pack_alike() {
        let a = PackedRow::pack(&[Value::float(0.0)]);
        let b = PackedRow::pack(&[Value::float(-0.0)]);
        assert_eq!(a, b);
    }

    #[test]
    fn rows_longer_than_the_stack_buffer_pack_alike_either_way() {
        let long = Value::text(&"x".repeat(STACK));
        let row = vec![Value::Int(1), long.clone(), Value::text("tail")];
        let packed = PackedRow::pack(&row);
        assert_eq!(packed.unpack(), row);
        assert_eq!(PackedRow::pack(&row[..2]).with(&row[2]), packed);
        assert_eq!(PackedRow::pack(&[long]).unpack().len(), 1);
    }

    #[test]
    fn short_rows_stay_inline() {
        let key = PackedRow::pack(&[Value::text("/p/281"), Value::Timestamp(1_700_000_000_000)]);
        assert!(!key.bytes.spilled());
    }
}
