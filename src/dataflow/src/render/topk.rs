//! Top-k per group (`ORDER BY ... LIMIT`, `ROW_NUMBER() ... <= k`).
//!
//! Rows are exchanged by group, and each worker keeps, per group, its rows in sort
//! order (sort keys, then the whole row: deterministic ties, the same rule as the
//! oracle's `compare_rows`) with their multiplicities, and the rows it last emitted.
//! Once the input frontier has passed a time, that time's changes are applied in
//! time order; each group they touched selects its ranks `offset + 1 ..= offset +
//! limit` again and emits the difference from what it emitted before, at that
//! time, each row with its rank when asked.
//!
//! Why not differential's `reduce`: it recomputes a changed group from the group's
//! whole history in the input trace, at every time. A global top-k (one group of
//! every page, changing at every batch) then costs the group's size per batch, and
//! was the largest cost of a live pipeline at 20k events/s. Here a change costs a
//! `log n` insertion and the selection walks at most `offset + limit` rows.

use std::cmp::Ordering;
use std::collections::btree_map::Entry;
use std::collections::{hash_map, BTreeMap, HashMap};
use std::rc::Rc;

use differential_dataflow::consolidation::consolidate;
use kappa_sql::plan::{compare_rows, SortKey};
use kappa_sql::{Row, Value};
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};

use super::packed::{PackedMap, PackedRow};
use super::pending::per_complete_time;
use super::reduce::{CountRow, Counts};
use super::topk_counts::first_rows_of_counts;
use super::Rows;
use crate::{Diff, Time};

/// A row ordered by the top-k's sort keys, then by itself.
#[derive(Clone, Debug)]
pub(super) struct Ranked {
    pub(super) row: Row,
    pub(super) order_by: Rc<[SortKey]>,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_rows(&self.order_by, &self.row, &other.row)
    }
}

/// One group's rows and what was last emitted for it.
///
/// Only the group's first rows are kept in order: a top-k reads at most
/// `offset + limit` of them, and most changes of a large group (10k pages, each
/// count moving at every live time) fall far below. `sorted` holds the first rows,
/// with multiplicities; `rest` the others, unordered, every one of them sorting
/// after all of `sorted`. A change below `sorted`'s last row costs a comparison and
/// a hash-map update instead of a `log n` walk of ordered rows. After each time's
/// changes `sorted` is trimmed to about twice what is read (the slack absorbs a
/// top row's retraction without a refill) or, if it fell short, refilled with the
/// first of `rest` by one scan.
#[derive(Default)]
struct Group {
    sorted: BTreeMap<Ranked, Diff>,
    /// Sum of `sorted`'s multiplicities.
    sorted_rows: Diff,
    rest: HashMap<Row, Diff, foldhash::fast::RandomState>,
    emitted: Vec<(Row, Diff)>,
}

impl Group {
    /// Adds `diff` copies of `ranked`.
    fn update(&mut self, ranked: Ranked, diff: Diff) {
        // A row that sorts after `sorted`'s last row lives in `rest` (if anywhere).
        let in_sorted = match self.sorted.last_key_value() {
            Some((last, _)) => ranked <= *last,
            None => self.rest.is_empty(),
        };
        if in_sorted {
            self.sorted_rows += diff;
            match self.sorted.entry(ranked) {
                Entry::Vacant(entry) => {
                    entry.insert(diff);
                }
                Entry::Occupied(mut entry) => {
                    *entry.get_mut() += diff;
                    if *entry.get() == 0 {
                        entry.remove();
                    }
                }
            }
        } else {
            match self.rest.entry(ranked.row) {
                hash_map::Entry::Vacant(entry) => {
                    entry.insert(diff);
                }
                hash_map::Entry::Occupied(mut entry) => {
                    *entry.get_mut() += diff;
                    if *entry.get() == 0 {
                        entry.remove();
                    }
                }
            }
        }
    }

    /// Restores `sorted` to hold at least `wanted` rows (if the group has them) and
    /// not much more than twice that.
    fn rebalance(&mut self, wanted: u64, order_by: &Rc<[SortKey]>) {
        let wanted = Diff::try_from(wanted).unwrap_or(Diff::MAX);
        let most = wanted.saturating_mul(2);
        while let Some((_, last)) = self.sorted.last_key_value() {
            if self.sorted_rows - *last < most {
                break;
            }
            let (ranked, count) = self.sorted.pop_last().expect("a last row");
            self.sorted_rows -= count;
            self.rest.insert(ranked.row, count);
        }
        if self.sorted_rows < wanted && !self.rest.is_empty() {
            let mut rest: Vec<(Ranked, Diff)> = self
                .rest
                .drain()
                .map(|(row, n)| {
                    let order_by = order_by.clone();
                    (Ranked { row, order_by }, n)
                })
                .collect();
            rest.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut rest = rest.into_iter();
            for (ranked, count) in rest.by_ref() {
                self.sorted_rows += count;
                self.sorted.insert(ranked, count);
                if self.sorted_rows >= most {
                    break;
                }
            }
            self.rest.extend(rest.map(|(ranked, n)| (ranked.row, n)));
        }
    }

    fn is_empty(&self) -> bool {
        self.sorted.is_empty() && self.rest.is_empty()
    }
}

/// The rows of ranks `offset + 1 ..= offset + limit` of `sorted` (each distinct row
/// with its multiplicity), with their rank appended when `row_number` is set.
fn select<'a>(
    sorted: impl Iterator<Item = (&'a Row, Diff)>,
    offset: u64,
    limit: u64,
    row_number: bool,
) -> Vec<(Row, Diff)> {
    let (mut skip, mut take) = (offset, limit);
    // Ranks count from 1 after the offset (see `Node::TopK`).
    let mut rank = 0u64;
    let mut out = Vec::new();
    for (row, count) in sorted {
        if take == 0 {
            break;
        }
        let mut count = u64::try_from(count).unwrap_or(0);
        let skipped = count.min(skip);
        skip -= skipped;
        count -= skipped;
        let kept = count.min(take);
        take -= kept;
        if kept == 0 {
            continue;
        }
        if row_number {
            for _ in 0..kept {
                rank += 1;
                let mut ranked = row.clone();
                ranked.push(Value::Int(rank as i64));
                out.push((ranked, 1));
            }
        } else {
            out.push((row.clone(), kept as Diff));
        }
    }
    out
}

/// Renders a `TopK` node.
///
/// A global top-k (no group key) is one group, which one worker would otherwise
/// rank alone, every change of every row: on the clickstream's `top_pages` (10k
/// pages, most changing at every live time) that worker spent ~2.4 ms per time
/// while the other idled. With several workers each first ranks the rows it
/// already holds and keeps only its own first `offset + limit` (a part's rows
/// outside its top `offset + limit` cannot be in the whole's), and the group's
/// worker ranks just those: the ranking is split between the workers and what
/// crosses between them is a few rows per time. Groups of a grouped top-k are
/// spread over the workers by the exchange already.
pub(super) fn top_k<'s>(
    rows: Rows<'s>,
    group_key: Vec<usize>,
    order_by: Vec<SortKey>,
    selection: Selection,
) -> Rows<'s> {
    let Selection { limit, offset, .. } = selection;
    let order_by: Rc<[SortKey]> = order_by.into();
    let exchange_key = group_key.clone();
    let by_group = Exchange::new(move |(row, _, _): &(Row, Time, Diff)| {
        PackedRow::pack(exchange_key.iter().map(|c| &row[*c])).hash_code()
    });
    let peers = rows.inner.scope().peers();
    let rows = if group_key.is_empty() && peers > 1 {
        let local = Selection {
            limit: offset.saturating_add(limit),
            offset: 0,
            row_number: false,
        };
        rank(rows, Pipeline, "TopK local", &group_key, &order_by, local)
    } else {
        rows
    };
    rank(rows, by_group, "TopK", &group_key, &order_by, selection)
}

/// Renders a global `TopK` node (no group key) over a reduction of plain counts
/// ([`super::reduce::Reduction::is_plain_counts`]) from the running counts: each
/// worker's first rows come from [`super::topk_counts`] rather than from rows made
/// of every count's change, and one worker ranks those.
pub(super) fn top_k_of_counts<'s>(
    counts: Counts<'s>,
    count_row: CountRow,
    order_by: Vec<SortKey>,
    selection: Selection,
) -> Rows<'s> {
    let order_by: Rc<[SortKey]> = order_by.into();
    let wanted = selection.offset.saturating_add(selection.limit);
    let firsts = first_rows_of_counts(counts, count_row, order_by.clone(), wanted);
    let whole = PackedRow::pack(std::iter::empty::<&Value>()).hash_code();
    let to_one = Exchange::new(move |_: &(Row, Time, Diff)| whole);
    rank(firsts, to_one, "TopK", &[], &order_by, selection)
}

/// Which ranks a top-k emits: `offset + 1 ..= offset + limit`, each row with its
/// rank appended when `row_number` is set.
#[derive(Clone, Copy)]
pub(super) struct Selection {
    pub(super) limit: u64,
    pub(super) offset: u64,
    pub(super) row_number: bool,
}

impl Selection {
    /// How the selected rows change from `emitted` to this selection of `sorted`
    /// (each distinct row in order, with its multiplicity), consolidated;
    /// `emitted` becomes the new selection.
    pub(super) fn reselect<'a>(
        &self,
        sorted: impl Iterator<Item = (&'a Row, Diff)>,
        emitted: &mut Vec<(Row, Diff)>,
    ) -> Vec<(Row, Diff)> {
        let selected = select(sorted, self.offset, self.limit, self.row_number);
        let mut changes: Vec<(Row, Diff)> = emitted
            .drain(..)
            .map(|(row, n)| (row, -n))
            .chain(selected.iter().cloned())
            .collect();
        consolidate(&mut changes);
        *emitted = selected;
        changes
    }
}

/// One ranking stage: the rows that `pact` brings to each worker, grouped by
/// `group_key` and ordered by `order_by`; emits each touched group's `selection`.
fn rank<'s, P>(
    rows: Rows<'s>,
    pact: P,
    name: &str,
    group_key: &[usize],
    order_by: &Rc<[SortKey]>,
    selection: Selection,
) -> Rows<'s>
where
    P: ParallelizationContract<Time, Vec<(Row, Time, Diff)>>,
{
    let wanted = selection.offset.saturating_add(selection.limit);
    let (group_key, order_by) = (group_key.to_vec(), order_by.clone());
    // Found by the hash a packed key carries.
    let mut groups: PackedMap<Group> = PackedMap::default();
    // A top-k without a group key ranks one group: its key, packed once.
    let whole = group_key
        .is_empty()
        .then(|| PackedRow::pack(std::iter::empty::<&Value>()));
    per_complete_time(rows.inner, pact, name, move |_time, batch| {
        // Insertions first: a changed row's new version joins a group's first rows
        // before its old one leaves them, so they do not run empty mid-time (which
        // would send the new rows to `rest` and the group to a refill).
        batch.sort_unstable_by_key(|(_, _, diff)| std::cmp::Reverse(*diff));
        let mut touched: Vec<PackedRow> = Vec::new();
        let ranked = |row: &mut Row| Ranked {
            row: std::mem::take(row),
            order_by: order_by.clone(),
        };
        match &whole {
            // One group, found once per time rather than per row.
            Some(key) => {
                let group = groups.entry(key.clone()).or_default();
                for (row, _, diff) in batch.iter_mut() {
                    group.update(ranked(row), *diff);
                }
                touched.push(key.clone());
            }
            None => {
                for (row, _, diff) in batch.iter_mut() {
                    let key = PackedRow::pack(group_key.iter().map(|c| &row[*c]));
                    if touched.last() != Some(&key) {
                        touched.push(key.clone());
                    }
                    groups.entry(key).or_default().update(ranked(row), *diff);
                }
            }
        }
        touched.sort();
        touched.dedup();
        let mut out = Vec::new();
        for key in touched {
            let group = groups.get_mut(&key).expect("a touched group");
            group.rebalance(wanted, &order_by);
            let sorted = group.sorted.iter().map(|(r, n)| (&r.row, *n));
            out.extend(selection.reselect(sorted, &mut group.emitted));
            if group.is_empty() {
                groups.remove(&key);
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_skips_offset_and_takes_limit_across_multiplicities() {
        let (a, b, c) = (
            vec![Value::Int(1)],
            vec![Value::Int(2)],
            vec![Value::Int(3)],
        );
        let sorted = [(&a, 2), (&b, 3), (&c, 1)];
        assert_eq!(
            select(sorted.iter().copied(), 1, 3, false),
            vec![(a.clone(), 1), (b.clone(), 2)]
        );
        let ranked = select(sorted.iter().copied(), 4, 10, true);
        assert_eq!(
            ranked,
            vec![
                (vec![Value::Int(2), Value::Int(1)], 1),
                (vec![Value::Int(3), Value::Int(2)], 1)
            ]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Whatever the changes, a group selects what a fully ordered copy of its
        /// rows selects: `sorted` always holds the first rows.
        #[test]
        fn a_group_selects_as_if_all_its_rows_were_ordered(
            times in proptest::collection::vec(
                proptest::collection::vec((0i64..30, 1isize..3, proptest::bool::ANY), 0..12),
                1..12,
            ),
            offset in 0u64..3,
            limit in 1u64..4,
        ) {
            // Descending by the value, as `ORDER BY v DESC`.
            let order_by: Rc<[SortKey]> =
                vec![SortKey { column: 0, descending: true, nulls_first: false }].into();
            let ranked = |v: i64| Ranked { row: vec![Value::Int(v)], order_by: order_by.clone() };
            let mut group = Group::default();
            let mut all: BTreeMap<Ranked, Diff> = BTreeMap::new();
            for changes in times {
                // Retract only what is present (as a consistent input would), with the
                // retraction sometimes ahead of an insertion of the same time.
                for (v, n, retract) in changes {
                    let present = all.get(&ranked(v)).copied().unwrap_or(0);
                    let diff = if retract { -(n.min(present)) } else { n };
                    if diff == 0 {
                        continue;
                    }
                    group.update(ranked(v), diff);
                    *all.entry(ranked(v)).or_insert(0) += diff;
                    all.retain(|_, n| *n != 0);
                }
                group.rebalance(offset + limit, &order_by);
                let want = select(all.iter().map(|(r, n)| (&r.row, *n)), offset, limit, false);
                let got = select(group.sorted.iter().map(|(r, n)| (&r.row, *n)), offset, limit, false);
                proptest::prop_assert_eq!(got, want);
                proptest::prop_assert_eq!(group.is_empty(), all.is_empty());
            }
        }
    }
}
