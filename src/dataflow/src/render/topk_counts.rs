//! The first stage of a global top-k over a reduction's running counts, ranking the
//! counts themselves rather than rows made of them.
//!
//! `SELECT page, COUNT(*) AS events FROM clicks GROUP BY page ORDER BY events DESC,
//! page LIMIT 10` (the clickstream's `top_pages`): live, most of a worker's running
//! totals change at every time, and each change (a key's old count retracted, its
//! new one inserted) was made a row (the key unpacked into a fresh vector of
//! values) and handed to the top-k's per-worker stage ([`super::topk`]), which
//! compared it with its last leader and hashed it, value by value, into its map of
//! the rows outside the leaders. At 440k events/s those two operators took ~16% of
//! the workers' time (`clickstream_bench`, session 11) for a view whose ten rows
//! rarely change. Here the stage reads the totals' `(key, count)` changes and keeps
//! every key's count by its packed key (hash carried, bytes compared): the rows
//! outside the leaders are those counts, not a copy of them. A change whose count
//! alone places it after the last leader (most of them, for `ORDER BY count DESC`)
//! costs a hash-map update and one comparison; the others decode the key into a
//! reused buffer, and only one that joins the leaders becomes a row of its own. The
//! counts are kept twice (here and in the running totals): one entry per key of
//! the worker's share.
//!
//! Each worker selects the first `wanted` (`offset + limit`) rows of its keys; the
//! top-k's final stage ranks those few rows of every worker ([`super::topk`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

use kappa_sql::plan::{compare_rows, SortKey};
use kappa_sql::Row;
use timely::dataflow::channels::pact::Pipeline;

use super::packed::{PackedMap, PackedRow};
use super::pending::per_complete_time;
use super::reduce::{CountRow, Counts};
use super::topk::{Ranked, Selection};
use super::Rows;
use crate::Diff;

/// Each worker's first `wanted` rows, in `order_by` order, of the rows `count_row`
/// makes of the running counts `counts`; rows change only at complete times.
pub(super) fn first_rows_of_counts<'s>(
    counts: Counts<'s>,
    count_row: CountRow,
    order_by: Rc<[SortKey]>,
    wanted: u64,
) -> Rows<'s> {
    let mut leaders = Leaders::new(count_row, order_by);
    per_complete_time(
        counts.inner,
        Pipeline,
        "TopK counts",
        move |_time, changes| {
            leaders.apply(changes.iter().map(|(kc, _, diff)| (kc, *diff)), wanted)
        },
    )
}

/// One worker's counts and its first rows among them.
struct Leaders {
    /// Every key's count: the rows of the reduction, one per key.
    counts: PackedMap<Diff>,
    /// The first rows in order, with multiplicities: at least `wanted` of them while
    /// the counts have that many, about twice that at most; every row outside
    /// sorts after all of them.
    sorted: BTreeMap<Ranked, Diff>,
    /// The rows last selected.
    emitted: Vec<(Row, Diff)>,
    count_row: CountRow,
    order_by: Rc<[SortKey]>,
    /// When the first sort key is an aggregate's column: that key (as the column of
    /// a one-value row) and the column's place among the aggregates' values.
    lead: Option<(SortKey, usize)>,
    /// The row of the change at hand, reused.
    scratch: Row,
    /// The aggregates' values of the change at hand, reused.
    values: Row,
}

impl Leaders {
    fn new(count_row: CountRow, order_by: Rc<[SortKey]>) -> Self {
        let lead = order_by
            .first()
            .filter(|key| key.column >= count_row.width)
            .map(|key| {
                let place = key.column - count_row.width;
                (SortKey { column: 0, ..*key }, place)
            });
        Leaders {
            counts: PackedMap::default(),
            sorted: BTreeMap::new(),
            emitted: Vec::new(),
            count_row,
            order_by,
            lead,
            scratch: Row::new(),
            values: Row::new(),
        }
    }

    /// Whether the row of `count` sorts after the last leader by the first sort
    /// key alone, known without the key's values (most counts of an `ORDER BY
    /// count DESC` are below the leaders': their keys are never decoded).
    fn trails_leaders(&mut self, count: Diff) -> bool {
        let (Some((lead, place)), Some((last, _))) = (&self.lead, self.sorted.last_key_value())
        else {
            return false;
        };
        self.count_row.write_values(count, &mut self.values);
        let ours = std::slice::from_ref(&self.values[*place]);
        let theirs = std::slice::from_ref(&last.row[self.count_row.width + place]);
        compare_rows(std::slice::from_ref(lead), ours, theirs) == Ordering::Greater
    }

    /// Applies one complete time's changes of the counts, `((key, count), diff)`,
    /// and returns how the first `wanted` rows changed.
    fn apply<'a>(
        &mut self,
        changes: impl Iterator<Item = (&'a (PackedRow, Diff), Diff)>,
        wanted: u64,
    ) -> Vec<(Row, Diff)> {
        let mut changes: Vec<_> = changes.collect();
        // Insertions first: a key's new count joins the leaders before its old one
        // leaves them, so they do not run empty mid-time (every leader's count
        // moves at most times), which would need a scan of all counts to refill.
        changes.sort_unstable_by_key(|(_, diff)| std::cmp::Reverse(*diff));
        for ((key, count), diff) in changes {
            if diff > 0 {
                self.counts.insert(key.clone(), *count);
            } else if self.counts.get(key) == Some(count) {
                self.counts.remove(key);
            }
            if self.trails_leaders(*count) {
                continue;
            }
            self.count_row.write(key, *count, &mut self.scratch);
            if self.sorts_among_leaders(&self.scratch) {
                self.update_sorted(diff);
            }
        }
        self.rebalance(wanted);
        let firsts = Selection {
            limit: wanted,
            offset: 0,
            row_number: false,
        };
        let sorted = self.sorted.iter().map(|(r, n)| (&r.row, *n));
        firsts.reselect(sorted, &mut self.emitted)
    }

    /// Whether `row` sorts at or before the last leader (so is, or belongs, among
    /// them). With no leaders, none does: a refill finds them.
    fn sorts_among_leaders(&self, row: &[kappa_sql::Value]) -> bool {
        self.sorted.last_key_value().is_some_and(|(last, _)| {
            compare_rows(&self.order_by, row, &last.row) != Ordering::Greater
        })
    }

    /// Adds `diff` copies of the row in `scratch` to the leaders. The buffer is
    /// kept for the next row unless the row is new among them.
    fn update_sorted(&mut self, diff: Diff) {
        let probe = Ranked {
            row: std::mem::take(&mut self.scratch),
            order_by: self.order_by.clone(),
        };
        match self.sorted.get_mut(&probe) {
            Some(n) => {
                *n += diff;
                if *n == 0 {
                    self.sorted.remove(&probe);
                }
                self.scratch = probe.row;
            }
            None => {
                self.sorted.insert(probe, diff);
            }
        }
    }

    /// Keeps the leaders at `wanted` rows or more (while the counts have them) and
    /// not much more than twice that.
    fn rebalance(&mut self, wanted: u64) {
        let wanted = Diff::try_from(wanted).unwrap_or(Diff::MAX);
        let most = wanted.saturating_mul(2);
        let mut held: Diff = self.sorted.values().sum();
        while let Some((_, last)) = self.sorted.last_key_value() {
            if held - *last < most {
                break;
            }
            held -= *last;
            self.sorted.pop_last();
        }
        if held >= wanted || self.counts.len() <= self.sorted.len() {
            return;
        }
        // Short of leaders (the first times, or leaders retracted): the next rows
        // come from all the counts, in one scan.
        let mut outside: Vec<Ranked> = Vec::new();
        for (key, count) in &self.counts {
            let mut row = Row::new();
            self.count_row.write(key, *count, &mut row);
            if !self.sorts_among_leaders(&row) {
                outside.push(Ranked {
                    row,
                    order_by: self.order_by.clone(),
                });
            }
        }
        outside.sort_unstable();
        for ranked in outside {
            if held >= most {
                break;
            }
            held += 1;
            self.sorted.insert(ranked, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kappa_sql::Value;
    use proptest::prelude::*;

    use super::*;

    /// Rows `[key, count]`.
    fn count_row() -> CountRow {
        CountRow::new(1, |count, out: &mut Row| out.push(Value::Int(count as i64)))
    }

    fn key(k: i64) -> PackedRow {
        PackedRow::pack(&[Value::Int(k)])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever the counts do (rise, fall, vanish, ties), the selected rows are
        /// the first `wanted` of all the counts' rows in order.
        #[test]
        fn leaders_select_as_a_full_sort_of_the_counts_would(
            times in prop::collection::vec(prop::collection::vec((0i64..25, -3i64..6), 0..15), 1..15),
            wanted in 1u64..5,
            order in 0usize..3,
        ) {
            let sort_keys = match order {
                // ORDER BY count DESC, key
                0 => vec![SortKey { column: 1, descending: true, nulls_first: false },
                          SortKey { column: 0, descending: false, nulls_first: false }],
                // ORDER BY count
                1 => vec![SortKey { column: 1, descending: false, nulls_first: false }],
                // ORDER BY key DESC
                _ => vec![SortKey { column: 0, descending: true, nulls_first: false }],
            };
            let order_by: Rc<[SortKey]> = sort_keys.into();
            let mut leaders = Leaders::new(count_row(), order_by.clone());
            let mut counts: BTreeMap<i64, Diff> = BTreeMap::new();
            let mut shown: BTreeMap<Row, Diff> = BTreeMap::new();
            for moves in times {
                // Each key moves at most once per time, as a running total does.
                let mut changes: BTreeMap<i64, i64> = BTreeMap::new();
                for (k, by) in moves {
                    changes.insert(k, by);
                }
                let mut updates = Vec::new();
                for (k, by) in changes {
                    let old = counts.get(&k).copied().unwrap_or(0);
                    let new = (old + by as Diff).max(0);
                    if new == old {
                        continue;
                    }
                    if old != 0 {
                        updates.push(((key(k), old), -1));
                    }
                    if new != 0 {
                        updates.push(((key(k), new), 1));
                        counts.insert(k, new);
                    } else {
                        counts.remove(&k);
                    }
                }
                let got = leaders.apply(updates.iter().map(|(kc, d)| (kc, *d)), wanted);
                for (row, diff) in got {
                    *shown.entry(row).or_insert(0) += diff;
                }
                shown.retain(|_, n| *n != 0);
                let mut all: Vec<Ranked> = counts
                    .iter()
                    .map(|(k, n)| Ranked { row: vec![Value::Int(*k), Value::Int(*n as i64)], order_by: order_by.clone() })
                    .collect();
                all.sort();
                let want: BTreeMap<Row, Diff> =
                    all.into_iter().take(wanted as usize).map(|r| (r.row, 1)).collect();
                prop_assert_eq!(&shown, &want);
            }
        }
    }
}
