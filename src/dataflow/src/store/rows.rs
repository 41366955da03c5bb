//! A view's rows as the store keeps them: packed, with multiplicities
//! ([`RowCounts`]), and copies of them taken to be read outside the store's lock
//! ([`ViewRows`]).

use kappa_sql::plan::{compare_rows, SortKey};
use kappa_sql::{Row, Value};

use super::placement::Placement;
use crate::graded::Graded;
use crate::render::{unpack_bytes, PackedRow};

/// Rows with their multiplicities, kept packed ([`PackedRow`]: the row's values
/// encoded into bytes, inline up to 24, with a hash computed once, by the worker
/// that made the row): applying a change costs a probe by that hash and a `memcmp`,
/// not a hash of the row's values and a comparison value by value, and a new row
/// is a copy of its bytes, not a vector of values. Live, each event makes about two
/// view changes (a key's old row retracted, its new one inserted, at every time the
/// key moves); hashing, comparing and cloning them as `Vec<Value>`s was ~12% of a
/// live run's samples, and making them on the workers ~5% more (session 11). Rows
/// are unpacked only when read.
///
/// Each entry keeps its row's hash. A hash map grows by moving every entry to a
/// table twice the size, and rehashing ~57k rows of strings at once (the
/// clickstream's `page_minute_counts` after ~1M events) stalled a live pipeline
/// ~100 ms; with the hashes kept, growing only moves entries. Moving them all at
/// once still stalled it: ~229k rows (~3M events, a 10 s latency run at 300k
/// events/s) took the store's thread ~20 ms of copying and page faults, and the
/// appends waiting on that batch saw p99-sized latencies. So the rows, once many,
/// are split into graded shards ([`crate::graded`]) that double one at a time.
///
/// A keyed view's rows are placed by their key's hash ([`Placement`]), so that a
/// read fixing the whole key probes one bucket ([`RowCounts::matching`]); applying a
/// change then hashes the row's key once more (a few bytes).
pub struct RowCounts {
    shards: Graded<hashbrown::HashTable<(PackedRow, i64)>>,
    placement: Placement,
    /// Distinct rows over all shards.
    len: usize,
    /// The sum of the multiplicities.
    total: i64,
    /// The sum of each row's hash times its multiplicity (wrapping): see
    /// [`RowCounts::fingerprint`].
    fingerprint: u64,
}

impl Default for RowCounts {
    fn default() -> Self {
        RowCounts {
            shards: Graded::unsplit(),
            placement: Placement::Row,
            len: 0,
            total: 0,
            fingerprint: 0,
        }
    }
}

impl std::fmt::Debug for RowCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl RowCounts {
    /// Rows of a view whose key is `key` (its columns; none for a view without a
    /// key), placed by the key's hash.
    pub fn keyed(key: &[usize]) -> Self {
        RowCounts {
            placement: Placement::by_key(key),
            ..RowCounts::default()
        }
    }

    /// Adds `diff` to `row`'s multiplicity; a row whose multiplicity becomes zero
    /// is removed. Returns the new multiplicity.
    pub fn add(&mut self, row: &Row, diff: i64) -> i64 {
        self.add_packed(PackedRow::pack(row), diff).0
    }

    /// [`RowCounts::add`] for a packed row, moved in when it is new. Returns the
    /// new multiplicity and the hash the row is placed by (for
    /// [`RowCounts::negative`]).
    pub(crate) fn add_packed(&mut self, row: PackedRow, diff: i64) -> (i64, u64) {
        let place = self.placement.of(&row);
        (self.add_placed(row, place, diff, |row| row), place)
    }

    /// [`RowCounts::add`] for a packed row, cloned when it is new; `place` must be
    /// what [`RowCounts::placement`] places it by.
    pub(super) fn add_placed_ref(&mut self, row: &PackedRow, place: u64, diff: i64) -> i64 {
        debug_assert_eq!(place, self.placement.of(row));
        self.add_placed(row, place, diff, PackedRow::clone)
    }

    /// How the rows are placed.
    pub(super) fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Adds `diff` to the multiplicity of `row`, placed by `place`, storing
    /// `own(row)` when the row is new. Rows are compared as bytes (and the hashes
    /// they carry).
    fn add_placed<R: std::borrow::Borrow<PackedRow>>(
        &mut self,
        row: R,
        place: u64,
        diff: i64,
        own: impl FnOnce(R) -> PackedRow,
    ) -> i64 {
        self.total += diff;
        // `diff as u64` wraps a negative diff: the product is then -hash × |diff|.
        // The row's own hash, not its placement: rows sharing a key differ here.
        self.fingerprint = self
            .fingerprint
            .wrapping_add(row.borrow().hash_code().wrapping_mul(diff as u64));
        let RowCounts {
            shards, placement, ..
        } = self;
        let shard = shards.shard_mut(place);
        let found = shard.find_entry(place, |(r, _)| r == row.borrow());
        match found {
            Ok(mut entry) => {
                entry.get_mut().1 += diff;
                let count = entry.get().1;
                if count == 0 {
                    entry.remove();
                    self.len -= 1;
                }
                count
            }
            Err(_) if diff == 0 => 0,
            Err(_) => {
                shard.insert_unique(place, (own(row), diff), |(r, _)| placement.of(r));
                self.len += 1;
                let placement = &self.placement;
                self.shards
                    .split_at_size_with(self.len, |whole, into, shards| {
                        for entry in whole {
                            let place = placement.of(&entry.0);
                            shards[into(place)]
                                .insert_unique(place, entry, |(r, _)| placement.of(r));
                        }
                    });
                diff
            }
        }
    }

    /// An entry placed by `place` whose multiplicity is negative, if any.
    pub(super) fn negative(&self, place: u64) -> Option<&(PackedRow, i64)> {
        self.shards
            .shard(place)
            .find(place, |(r, n)| *n < 0 && self.placement.of(r) == place)
    }

    /// The entries `filter` matches: by one probe of the key's hash when the
    /// filter fixes every column of the view's key, else by testing every row.
    pub(super) fn matching<'a>(
        &'a self,
        filter: &'a RowFilter,
    ) -> Box<dyn Iterator<Item = &'a (PackedRow, i64)> + 'a> {
        if filter.contradictory {
            return Box::new(std::iter::empty());
        }
        match self.placement.of_key(|column| filter.fixed(column)) {
            Some(place) => Box::new(
                self.shards
                    .shard(place)
                    .iter_hash(place)
                    .filter(|(row, _)| filter.matches(row)),
            ),
            None => Box::new(self.entries().filter(|(row, _)| filter.matches(row))),
        }
    }

    /// Each distinct row with its multiplicity, in no order (rows are unpacked as
    /// they are read: the store keeps them packed).
    pub fn iter(&self) -> impl Iterator<Item = (Row, i64)> + '_ {
        self.entries().map(|(row, n)| (row.unpack(), *n))
    }

    /// The distinct rows, in no order.
    pub fn keys(&self) -> impl Iterator<Item = Row> + '_ {
        self.entries().map(|(row, _)| row.unpack())
    }

    /// The multiplicities, in no order.
    pub fn values(&self) -> impl Iterator<Item = &i64> {
        self.entries().map(|(_, n)| n)
    }

    pub(super) fn entries(&self) -> impl Iterator<Item = &(PackedRow, i64)> {
        self.shards.shards().flat_map(|shard| shard.iter())
    }

    /// [`RowCounts::entries`] as encoded bytes with multiplicities.
    pub(super) fn encoded(&self) -> impl Iterator<Item = (&[u8], i64)> {
        self.entries().map(|(row, n)| (row.as_bytes(), *n))
    }

    /// Bytes the rows take as stored, estimated from the first `sample` rows: an
    /// entry each, plus the bytes of rows too long to be kept inline.
    pub fn estimated_bytes(&self, sample: usize) -> usize {
        let (mut rows, mut bytes) = (0, 0);
        for (row, _) in self.entries().take(sample) {
            rows += 1;
            bytes += std::mem::size_of::<(PackedRow, i64)>() + row.heap_bytes();
        }
        if rows == 0 {
            return 0;
        }
        bytes * self.len / rows
    }

    /// The number of distinct rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The sum of the multiplicities: the number of rows, counting repeats.
    pub fn total(&self) -> i64 {
        self.total
    }

    /// An order-independent hash of the contents: the sum of each row's hash (of its
    /// packed bytes, the same in every process) times its multiplicity, kept as rows
    /// change. Equal contents have equal fingerprints, whatever the history that
    /// produced them, so two versions' views can be compared without reading them.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromIterator<(Row, i64)> for RowCounts {
    fn from_iter<I: IntoIterator<Item = (Row, i64)>>(rows: I) -> Self {
        let mut counts = RowCounts::default();
        for (row, n) in rows {
            counts.add(&row, n);
        }
        counts
    }
}

impl<'a> IntoIterator for &'a RowCounts {
    type Item = (Row, i64);
    type IntoIter = Box<dyn Iterator<Item = (Row, i64)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// A view's rows copied out of the store, still packed: copied under the store's
/// read lock (bytes only), unpacked, filtered and ordered after it is released, so
/// that a large read or a subscription's snapshot does not hold up the applier
/// (which waits for the lock, and every append's visibility with it).
///
/// The copy is one buffer of the rows' bytes back to back: copying rows one by one
/// allocated each row too long to be kept inline (all of `page_minute_counts`'),
/// and those allocations were most of the lock's hold time for a large read.
#[derive(Debug, Clone, Default)]
pub struct ViewRows {
    /// The rows' encoded bytes, back to back.
    bytes: Vec<u8>,
    /// Each row's end in `bytes`, and its multiplicity.
    ends: Vec<(usize, i64)>,
}

impl ViewRows {
    /// A copy of `entries`.
    pub(super) fn copy<'a>(entries: impl Iterator<Item = &'a (PackedRow, i64)>) -> Self {
        let mut copy = ViewRows::default();
        for (row, n) in entries {
            copy.bytes.extend_from_slice(row.as_bytes());
            copy.ends.push((copy.bytes.len(), *n));
        }
        copy
    }

    /// Each row's encoded bytes with its multiplicity.
    fn entries(&self) -> impl Iterator<Item = (&[u8], i64)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(end, n)| {
            let row = &self.bytes[start..end];
            start = end;
            (row, n)
        })
    }

    /// The number of distinct rows.
    pub fn distinct(&self) -> usize {
        self.ends.len()
    }

    /// As [`ViewContents::iter_unordered`].
    pub fn iter_unordered(&self) -> impl Iterator<Item = Row> + '_ {
        unordered(self.entries())
    }

    /// As [`ViewContents::iter_rows`].
    pub fn iter_rows(&self) -> impl Iterator<Item = Row> {
        page_of(self.entries(), &[], 0, usize::MAX).1.into_iter()
    }

    /// Page `offset..offset + limit` of the rows in `order_by` order (ties by the
    /// whole row, so that pages are stable), and how many rows there are in all
    /// (counting repeats): see [`page_of`].
    pub fn page(&self, order_by: &[SortKey], offset: usize, limit: usize) -> (usize, Vec<Row>) {
        page_of(self.entries(), order_by, offset, limit)
    }
}

/// Equality filters on columns, tested on packed rows: a row is compared as bytes,
/// value by value, and never unpacked (the encoding is canonical: equal values,
/// equal bytes). A read that filters copies only the rows that match out of the
/// store, under its lock, rather than all of them.
///
/// Filters on the leading columns (a view's key comes first) are one comparison:
/// a value's encoding says where it ends, so no encoding is a prefix of another, and
/// a row whose bytes start with the wanted values' encodings back to back has those
/// values. Testing a row value by value took longer than copying it.
#[derive(Debug, Clone, Default)]
pub struct RowFilter {
    /// `(column, the wanted value's encoding)`, by column.
    equal: Vec<(usize, PackedRow)>,
    /// How many of `equal` are on columns `0..leading`.
    leading: usize,
    /// The wanted values of those columns, encoded back to back.
    prefix: Vec<u8>,
    /// Two filters want different values of one column: nothing matches.
    contradictory: bool,
}

impl RowFilter {
    /// Rows whose value in each `column` equals `value` (all of them: several
    /// filters on one column with different values match nothing).
    pub fn new(equal: impl IntoIterator<Item = (usize, Value)>) -> Self {
        let mut equal: Vec<(usize, PackedRow)> = equal
            .into_iter()
            .map(|(column, value)| (column, PackedRow::pack([&value])))
            .collect();
        equal.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
        });
        // Duplicates of one (column, value) are harmless; two values of a column
        // cannot both be.
        equal.dedup();
        let contradictory = equal.windows(2).any(|pair| pair[0].0 == pair[1].0);
        let leading = equal
            .iter()
            .enumerate()
            .take_while(|(i, (c, _))| i == c)
            .count();
        let prefix = equal[..leading]
            .iter()
            .flat_map(|(_, v)| v.as_bytes())
            .copied()
            .collect();
        RowFilter {
            equal,
            leading,
            prefix,
            contradictory,
        }
    }

    /// True when the filter passes every row.
    pub fn is_empty(&self) -> bool {
        self.equal.is_empty()
    }

    /// The encoding of the value wanted in `column`, if the filter fixes it.
    fn fixed(&self, column: usize) -> Option<&[u8]> {
        let at = self.equal.binary_search_by_key(&column, |(c, _)| *c).ok()?;
        Some(self.equal[at].1.as_bytes())
    }

    /// Whether `row` passes every filter; a filter on a column the row does not
    /// have fails.
    pub(crate) fn matches(&self, row: &PackedRow) -> bool {
        if self.contradictory || !row.as_bytes().starts_with(&self.prefix) {
            return false;
        }
        let mut wanted = self.equal[self.leading..].iter().peekable();
        for (column, encoded) in row.encoded_values().enumerate() {
            let Some((c, value)) = wanted.peek() else {
                return true;
            };
            if *c == column {
                if value.as_bytes() != encoded {
                    return false;
                }
                wanted.next();
            }
        }
        wanted.peek().is_none()
    }
}

/// Rows with multiplicities (encoded bytes), unpacked, each repeated by its
/// multiplicity.
pub(super) fn unordered<'a>(
    entries: impl Iterator<Item = (&'a [u8], i64)> + 'a,
) -> impl Iterator<Item = Row> + 'a {
    entries.flat_map(|(row, n)| std::iter::repeat_n(unpack_bytes(row), n as usize))
}

/// Rows `offset..offset + limit` of `entries` (encoded rows with multiplicities) in
/// `order_by` order, ties by the whole row, and how many rows there are in all
/// (counting repeats). Only the distinct rows up to the page's end are sorted: a
/// first page of a large view costs a selection over its rows, not a sort of all
/// of them; and a row repeated many times (a view without aggregation) is repeated
/// only as far as the page reaches.
pub(super) fn page_of<'a>(
    entries: impl Iterator<Item = (&'a [u8], i64)>,
    order_by: &[SortKey],
    offset: usize,
    limit: usize,
) -> (usize, Vec<Row>) {
    let mut rows: Vec<(Row, i64)> = entries.map(|(bytes, n)| (unpack_bytes(bytes), n)).collect();
    let total = rows.iter().map(|(_, n)| (*n).max(0) as usize).sum();
    let order = |a: &(Row, i64), b: &(Row, i64)| {
        compare_rows(order_by, &a.0, &b.0).then_with(|| a.0.cmp(&b.0))
    };
    // Each distinct row is at least one row, so the page lies within the first
    // `end` distinct rows.
    let end = offset.saturating_add(limit);
    if end < rows.len() {
        rows.select_nth_unstable_by(end, order);
        rows.truncate(end);
    }
    rows.sort_unstable_by(order);
    let page = rows
        .into_iter()
        .flat_map(|(row, n)| std::iter::repeat_n(row, n.max(0) as usize))
        .skip(offset)
        .take(limit)
        .collect();
    (total, page)
}

#[cfg(test)]
mod tests {
    use kappa_sql::Value;

    use super::*;

    #[test]
    fn estimated_bytes_count_entries_and_spilled_rows() {
        let entry = std::mem::size_of::<(PackedRow, i64)>();
        let mut short = RowCounts::default();
        assert_eq!(short.estimated_bytes(16), 0);
        for i in 0..100 {
            short.add(&vec![Value::Int(i)], 1);
        }
        // Nine bytes each: inline.
        assert_eq!(short.estimated_bytes(16), 100 * entry);
        let mut long = RowCounts::default();
        for i in 0..100 {
            long.add(
                &vec![Value::text(&format!("a longer text than fits {i:03}"))],
                1,
            );
        }
        let each = long.estimated_bytes(16) / 100;
        assert!(each > entry + 24, "{each} bytes per row");
    }

    #[test]
    fn row_counts_add_and_drop_rows_through_growth() {
        let mut counts = RowCounts::default();
        let row = |i: i64| vec![Value::Int(i), Value::Text(format!("p{i}").into())];
        // Enough rows to grow the table several times and split it into shards.
        let rows = crate::graded::SPLIT_AT as i64 + 5_000;
        for i in 0..rows {
            assert_eq!(counts.add(&row(i), 2), 2);
            // One table until it holds `SPLIT_AT` rows, shards from then on.
            assert_eq!(
                counts.shards.is_split(),
                i + 1 >= crate::graded::SPLIT_AT as i64
            );
        }
        for i in 0..rows {
            assert_eq!(counts.add(&row(i), -1), 1);
        }
        assert_eq!(counts.len(), rows as usize);
        for i in (0..rows).step_by(2) {
            assert_eq!(counts.add(&row(i), -1), 0, "a row at zero is removed");
        }
        let odd = (rows / 2) as usize;
        assert_eq!(counts.len(), odd);
        assert_eq!(counts.add(&row(0), 0), 0);
        assert_eq!(
            counts.len(),
            odd,
            "adding nothing to an absent row keeps it absent"
        );
        assert!(counts
            .iter()
            .all(|(r, n)| n == 1 && matches!(r[0], Value::Int(i) if i % 2 == 1)));
        assert_eq!(counts.iter().count(), odd);
        assert_eq!(counts.values().sum::<i64>(), odd as i64);
    }

    /// Values from a small domain, so that filters match some rows and ties occur.
    fn small_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value::Null),
            (0i64..4).prop_map(Value::Int),
            (0i64..4).prop_map(Value::Timestamp),
            (0u8..3).prop_map(|i| Value::float(f64::from(i) / 2.0)),
            Just(Value::float(-0.0)),
            "[ab]{0,2}".prop_map(|s| Value::text(&s)),
            "[ab]{30}".prop_map(|s| Value::text(&s)),
        ]
    }

    fn copy_of(rows: &[(Row, i64)]) -> ViewRows {
        let counts: RowCounts = rows.iter().cloned().collect();
        ViewRows::copy(counts.entries())
    }

    proptest::proptest! {
        #[test]
        fn a_filter_on_packed_rows_matches_as_values_do(
            rows in proptest::collection::vec(proptest::collection::vec(small_value(), 3), 0..40),
            filters in proptest::collection::vec((0usize..4, small_value()), 0..3),
        ) {
            let filter = RowFilter::new(filters.clone());
            for row in &rows {
                let expected = filters.iter().all(|(c, v)| row.get(*c) == Some(v));
                proptest::prop_assert_eq!(filter.matches(&PackedRow::pack(row)), expected, "{:?} {:?}", row, filters);
            }
        }

        #[test]
        fn a_page_is_that_slice_of_all_rows_in_order(
            rows in proptest::collection::vec((proptest::collection::vec(small_value(), 2), 1i64..4), 0..40),
            keys in proptest::collection::vec((0usize..2, proptest::bool::ANY, proptest::bool::ANY), 0..3),
            offset in 0usize..50,
            limit in 0usize..50,
        ) {
            let order_by: Vec<SortKey> = keys
                .into_iter()
                .map(|(column, descending, nulls_first)| SortKey { column, descending, nulls_first })
                .collect();
            let copy = copy_of(&rows);
            let mut all: Vec<Row> = copy.iter_unordered().collect();
            all.sort_by(|a, b| compare_rows(&order_by, a, b).then_with(|| a.cmp(b)));
            let (total, page) = copy.page(&order_by, offset, limit);
            proptest::prop_assert_eq!(total, all.len());
            let expected: Vec<Row> = all.into_iter().skip(offset).take(limit).collect();
            proptest::prop_assert_eq!(page, expected);
        }
    }

    proptest::proptest! {
        #[test]
        fn a_keyed_view_holds_and_finds_what_an_unkeyed_one_does(
            updates in proptest::collection::vec((proptest::collection::vec(small_value(), 3), -1i64..3), 0..60),
            key_mask in 0u8..8,
            probe_row in 0usize..60,
            extra in proptest::collection::vec((0usize..3, small_value()), 0..2),
        ) {
            let key: Vec<usize> = (0..3).filter(|c| key_mask & (1 << c) != 0).collect();
            let (mut keyed, mut plain) = (RowCounts::keyed(&key), RowCounts::default());
            for (row, diff) in &updates {
                proptest::prop_assert_eq!(keyed.add(row, *diff), plain.add(row, *diff));
            }
            proptest::prop_assert_eq!(keyed.len(), plain.len());
            proptest::prop_assert_eq!(keyed.total(), plain.total());
            proptest::prop_assert_eq!(keyed.fingerprint(), plain.fingerprint());
            let sorted = |counts: &RowCounts| {
                let mut rows: Vec<(Row, i64)> = counts.iter().collect();
                rows.sort();
                rows
            };
            proptest::prop_assert_eq!(sorted(&keyed), sorted(&plain));
            // A filter fixing the key of some row (a probe when the view is keyed),
            // and maybe more columns.
            let fixed = updates.get(probe_row).map(|(row, _)| row.clone()).unwrap_or_default();
            let mut filters: Vec<(usize, Value)> = key
                .iter()
                .filter_map(|&c| fixed.get(c).map(|v| (c, v.clone())))
                .collect();
            filters.extend(extra);
            let filter = RowFilter::new(filters);
            // (Multiplicities may be negative here: rows are compared with them.)
            let found = |counts: &RowCounts| {
                let mut rows: Vec<(Row, i64)> =
                    counts.matching(&filter).map(|(row, n)| (row.unpack(), *n)).collect();
                rows.sort();
                rows
            };
            let expected = found(&plain);
            let all = sorted(&plain);
            let wanted: Vec<&(Row, i64)> =
                all.iter().filter(|(row, _)| filter.matches(&PackedRow::pack(row))).collect();
            proptest::prop_assert_eq!(expected.iter().collect::<Vec<_>>(), wanted);
            proptest::prop_assert_eq!(found(&keyed), expected);
        }
    }

    #[test]
    fn a_keyed_view_finds_a_row_by_its_key_after_splitting_into_shards() {
        let row = |i: i64| {
            vec![
                Value::Int(i % 7),
                Value::Int(1),
                Value::text(&format!("page {i}")),
            ]
        };
        let mut counts = RowCounts::keyed(&[2, 0]);
        let rows = crate::graded::SPLIT_AT as i64 + 5_000;
        for i in 0..rows {
            counts.add(&row(i), 1);
        }
        assert!(counts.shards.is_split());
        for i in [0, 1, rows / 2, rows - 1] {
            let filter = RowFilter::new([
                (2, Value::text(&format!("page {i}"))),
                (0, Value::Int(i % 7)),
            ]);
            let found: Vec<&(PackedRow, i64)> = counts.matching(&filter).collect();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].0.unpack(), row(i));
            // The key is looked up, not searched for: only its bucket is read.
            assert_eq!(
                counts.placement.of(&found[0].0),
                counts.placement.of(&PackedRow::pack(&row(i)))
            );
        }
        let wrong_key = RowFilter::new([(2, Value::text("page 3")), (0, Value::Int(4))]);
        assert_eq!(counts.matching(&wrong_key).count(), 0);
        for i in 0..rows {
            assert_eq!(counts.add(&row(i), -1), 0);
        }
        assert!(counts.is_empty());
    }

    #[test]
    fn a_page_of_a_row_repeated_a_billion_times_holds_only_the_page() {
        let copy = copy_of(&[
            (vec![Value::Int(1)], 1_000_000_000),
            (vec![Value::Int(0)], 2),
        ]);
        let (total, page) = copy.page(&[], 1, 3);
        assert_eq!(total, 1_000_000_002);
        assert_eq!(
            page,
            vec![
                vec![Value::Int(0)],
                vec![Value::Int(1)],
                vec![Value::Int(1)]
            ]
        );
    }

    #[test]
    fn totals_and_fingerprints_follow_the_contents_not_their_history() {
        let row = |i: i64| vec![Value::Int(i), Value::text("x")];
        let mut a = RowCounts::default();
        for i in 0..50 {
            a.add(&row(i), 2);
        }
        let mut b = RowCounts::default();
        for i in (0..60).rev() {
            b.add(&row(i), 1);
        }
        for i in 0..50 {
            b.add(&row(i), 1);
        }
        for i in 50..60 {
            b.add(&row(i), -1);
        }
        assert_eq!(a.total(), 100);
        assert_eq!(b.total(), 100);
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.add(&row(7), -1);
        assert_ne!(a.fingerprint(), b.fingerprint());
        b.add(&row(7), 1);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let recounted: i64 = a.values().sum();
        assert_eq!(recounted, a.total());
    }

    #[test]
    fn copy_matching_copies_only_the_rows_a_filter_matches() {
        let page =
            |p: &str, minute: i64| vec![Value::text(p), Value::Timestamp(minute), Value::Int(1)];
        let rows: Vec<(Row, i64)> = (0..100)
            .map(|i| (page(&format!("/p/{}", i % 10), i), 1))
            .collect();
        let contents = crate::store::ViewContents {
            name: "v".into(),
            rows: rows.into_iter().collect(),
        };
        let filter = RowFilter::new([(0, Value::text("/p/3"))]);
        let copy = contents.copy_matching(&filter);
        assert_eq!(copy.distinct(), 10);
        assert!(copy
            .iter_unordered()
            .all(|row| row[0] == Value::text("/p/3")));
        assert_eq!(
            contents.copy_matching(&RowFilter::default()).distinct(),
            100
        );
        let none = RowFilter::new([(0, Value::text("/p/3")), (0, Value::text("/p/4"))]);
        assert_eq!(contents.copy_matching(&none).distinct(), 0);
    }
}
