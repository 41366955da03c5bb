//! Running totals per key of an accumulable collection: what differential's
//! `arrange_by_self().count_total()` computes, on a hash map.
//!
//! The input is a collection of packed keys whose diffs are the aggregates'
//! accumulators (a row count, or an [`super::reduce::Accums`] vector): the sum of a
//! key's diffs up to a time is the key's aggregate state at that time. The output
//! is, at each time a key's total changes, `(key, old total)` −1 (unless it was
//! zero) and `(key, new total)` +1 (unless it is zero): exactly `count_total`'s.
//!
//! Why not `count_total`: it keeps the updates in an arrangement and, for every key
//! of a new batch, seeks the key in each of the trace's batches to find the total
//! so far: ~1.3 µs per changed key on the clickstream, and, with the arrangement
//! that feeds it, the largest per-time cost of a live pipeline after top-k (a live
//! time changes thousands of keys). Here the total so far is one hash-map probe.
//! The totals are all the state: one entry per key with a non-zero total, no
//! history of updates, so nothing to compact or merge. Times complete in order: the
//! updates wait until the input frontier has passed their time, then each time's
//! changes are applied in time order (several times may complete at once). Within
//! a time a key comes once per worker that read it: each change goes straight into
//! the key's total, whose value before the time is noted at the first, and the
//! outputs follow once the time's changes are in. (Sorting a time's changes by key
//! to sum them first was ~4% of a live run.)

use differential_dataflow::difference::Monoid;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;

use super::packed::{PackedMap, PackedRow};
use super::pending::Pending;
use super::state::StateSize;
use super::UpdateSizes;
use crate::graded::Graded;
use crate::{Diff, Time};

/// The running total of each key of `collection`, as `count_total` gives it.
/// Its entries count as the updates of an arrangement named `name` in the metrics.
pub(super) fn count_total<'s, R>(
    collection: VecCollection<'s, Time, PackedRow, R>,
    name: &str,
    sizes: &UpdateSizes,
) -> VecCollection<'s, Time, (PackedRow, R), Diff>
where
    R: Monoid + ExchangeData + PartialEq,
{
    // An entry: the key, the last time (counted) that changed it, its total.
    sizes.note::<PackedRow, u64, R>(name);
    let pact = Exchange::new(|(key, _, _): &(PackedRow, Time, R)| key.hash_code());
    let scope = collection.inner.scope();
    collection
        .inner
        .unary_frontier(pact, name, move |_capability, info| {
            let mut size = StateSize::new(scope, &info);
            // Each key's total, and the last time (counted) that changed it. Split
            // into graded shards once large: the keys of a windowed count grow for as
            // long as the pipeline runs, and one map of them doubling at once (~115k
            // keys per worker at 300k events/s) stalled both workers ~15 ms in the
            // same round.
            let mut totals: Graded<PackedMap<(R, u64)>> = Graded::unsplit();
            let mut keys = 0;
            let mut times_applied = 0u64;
            // The keys a time changes, each with its total before that time.
            let mut changed: Vec<(PackedRow, R)> = Vec::new();
            let mut pending = Pending::new();
            move |(input, frontier), output| {
                input.for_each(|capability, data| pending.hold(capability, data));
                let complete = pending.take_complete(frontier.frontier());
                if !complete.is_empty() {
                    let mut session = output.session(pending.capabilities());
                    // Complete times come in order; within one, a key may come once
                    // per worker that read it.
                    for updates in complete.chunk_by(|a, b| a.1 == b.1) {
                        let time = updates[0].1;
                        times_applied += 1;
                        for (key, _, delta) in updates {
                            let shard = totals.shard_mut(key.hash_code());
                            match shard.get_mut(key) {
                                Some((total, changed_at)) => {
                                    if *changed_at != times_applied {
                                        *changed_at = times_applied;
                                        changed.push((key.clone(), total.clone()));
                                    }
                                    total.plus_equals(delta);
                                }
                                None => {
                                    changed.push((key.clone(), R::zero()));
                                    shard.insert(key.clone(), (delta.clone(), times_applied));
                                    keys += 1;
                                }
                            }
                        }
                        for (key, old) in changed.drain(..) {
                            let shard = totals.shard_mut(key.hash_code());
                            let (total, _) = shard.get(&key).expect("a changed key's total");
                            // Unless its changes of this time cancelled out.
                            let moved = *total != old;
                            let gone = total.is_zero();
                            let new = (moved && !gone).then(|| total.clone());
                            if moved && !old.is_zero() {
                                session.give(((key.clone(), old), time, -1));
                            }
                            if gone {
                                shard.remove(&key);
                                keys -= 1;
                            }
                            if let Some(new) = new {
                                session.give(((key, new), time, 1));
                            }
                        }
                        totals.split_at_size(keys);
                    }
                    size.set(keys);
                }
                pending.release();
            }
        })
        .as_collection()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use differential_dataflow::operators::CountTotal;
    use kappa_sql::Value;
    use proptest::prelude::*;

    use super::super::testing::{int_key, run_keyed};
    use super::*;

    /// Output summed per `((key, total), time)`, zeros dropped.
    type Changes = BTreeMap<((u8, Diff), Time), Diff>;

    /// Runs `updates` (sent in the given order at time 0, each carrying its own time,
    /// spread over `workers` workers) through this `count_total` (`ours`) or
    /// differential's arrangement and `count_total`.
    fn run(updates: Vec<(u8, Time, Diff)>, workers: usize, ours: bool) -> Changes {
        fn observe((key, total): &(PackedRow, Diff)) -> (u8, Diff) {
            (int_key(key), *total)
        }
        if ours {
            run_keyed(
                updates,
                workers,
                |keys| count_total(keys, "test", &UpdateSizes::default()),
                observe,
            )
        } else {
            run_keyed(
                updates,
                workers,
                |keys| keys.arrange_by_self().count_total(),
                observe,
            )
        }
    }

    #[test]
    fn totals_of_more_keys_than_one_table_holds_change_as_differentials_count_total_says() {
        // Past `SPLIT_AT` keys on one worker the totals move into graded shards; every
        // key changes again after that, and some go back to zero.
        let keys = crate::graded::SPLIT_AT as i64 + 2_000;
        let mut updates: Vec<(i64, Time, Diff)> = (0..keys).map(|k| (k, 1, 1)).collect();
        updates.extend((0..keys).map(|k| (k, 2, if k % 3 == 0 { -1 } else { 2 })));
        let observe = |(key, total): &(PackedRow, Diff)| match key.unpack()[0] {
            Value::Int(k) => (k, *total),
            ref other => unreachable!("a test key is an integer, not {other:?}"),
        };
        for workers in [1, 2] {
            let ours = run_keyed(
                updates.clone(),
                workers,
                |keys| count_total(keys, "test", &UpdateSizes::default()),
                observe,
            );
            let expected = run_keyed(
                updates.clone(),
                1,
                |keys| keys.arrange_by_self().count_total(),
                observe,
            );
            // Each key: +1 at time 1; at time 2 that retracted, and a new total unless zero.
            assert_eq!(ours.len(), (3 * keys - (keys + 2) / 3) as usize);
            assert_eq!(ours, expected, "{workers} workers");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn totals_change_as_differentials_count_total_says(
            updates in prop::collection::vec((0u8..6, 0u64..5, -2isize..3), 0..40),
            workers in 1usize..3,
        ) {
            let expected = run(updates.clone(), 1, false);
            prop_assert_eq!(run(updates, workers, true), expected);
        }
    }
}
