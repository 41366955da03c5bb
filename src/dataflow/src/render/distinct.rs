//! The distinct `(key, value)` pairs of a `DISTINCT` aggregate over an append-only
//! input: a table of first times, no arrangement.
//!
//! A collection that only ever grows (a source's rows, and what stateless operators
//! derive from them: no retractions) is *monotonic*, and a distinct pair of it, once
//! present, stays present. Its distinct set is then "each pair, from the first time
//! it occurs", which needs no multiplicities, no trace to seek, and no wait for the
//! frontier: a pair not seen before counts at once (+1 at its time); a pair seen
//! before at a later time (updates of different times may arrive in any order) is
//! moved to the earlier time (+1 there, -1 at the later one), so the output is exact
//! at every time. What a pair counts for goes straight into its key's sum (a count
//! of distinct values, or their sum), so the operator sends per-key sums, not
//! pairs. This is Materialize's reasoning for monotonic rendering. For
//! `COUNT(DISTINCT)` over a source it replaces an arrangement that sorted and merged
//! every pair and a `distinct_total` that sought each one in a trace of several
//! batches, and it removes a frontier-gated stage from the live path.
//!
//! Inputs that may retract (a reduction over a join, a union with a negation, ...)
//! keep differential's `distinct_total` ([`super::reduce`] chooses).

use differential_dataflow::difference::Monoid;
use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;

use super::first_seen::{FirstSeen, Recorded};
use super::keyed::TimedSums;
use super::packed::{Fingerprint, PackedRow};
use super::state::StateSize;
use super::UpdateSizes;
use crate::graded::Graded;
use crate::{Diff, Time};

/// What the distinct pairs of the monotonic collection `pairs` add to their keys'
/// sums, each pair once from its first time: `key` gives a pair's key, `add` adds
/// the pair, `diff` times, to its key's sum. The state counts as the updates of an
/// arrangement named `name` in the metrics.
///
/// The pairs themselves are never sent on: a `COUNT(DISTINCT)` over a source sees
/// most pairs once (880k of 1M clicks are a user's first visit of a page), and a
/// stream of them, each written to a buffer and read back to be summed by another
/// operator, cost more than the first-time map itself. Sums leave per key and time
/// once per activation, as the key stage's do ([`TimedSums`]).
pub(super) fn monotonic_distinct_sums<'s, R>(
    pairs: VecCollection<'s, Time, PackedRow, Diff>,
    name: &str,
    sizes: &UpdateSizes,
    key: impl Fn(&PackedRow) -> PackedRow + 'static,
    add: impl Fn(&PackedRow, &mut R, Diff) + 'static,
) -> VecCollection<'s, Time, PackedRow, R>
where
    R: Monoid + Clone + 'static,
{
    // Its state is a table entry per pair: a fingerprint and a time.
    sizes.note::<Fingerprint, (), ()>(name);
    let pact = Exchange::new(|(pair, _, _): &(PackedRow, Time, Diff)| pair.hash_code());
    let scope = pairs.inner.scope();
    pairs
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<(PackedRow, Time, R)>>, _, _, _>(
            pact,
            name,
            move |_capability, info| {
                let mut size = StateSize::new(scope, &info);
                let mut first_seen = FirstTimes::default();
                let mut sums = TimedSums::default();
                move |(input, frontier), output| {
                    // No update still to come is earlier than the input frontier
                    // (updates in the queue hold it back until they are read).
                    let floor = frontier.frontier().first().copied().unwrap_or(Time::MAX);
                    input.for_each(|capability, data| {
                        first_seen.record_all(data, floor, |pair, time, diff| {
                            sums.add(&capability, time, &key(pair), |sum| add(pair, sum, diff))
                        });
                        data.clear();
                    });
                    sums.flush(output);
                    size.set(first_seen.pairs);
                }
            },
        )
        .as_collection()
}

/// Pairs whose slots are touched together before they are recorded.
const PREFETCH: usize = 16;

/// When each distinct pair was first seen, split by hash into graded shards (so that
/// the table grows a shard at a time: [`crate::graded`]).
///
/// Pairs are kept by fingerprint, not by their bytes: an entry is 16 bytes rather
/// than 48, and finding one compares integers rather than rows ([`FirstSeen`]).
/// Fingerprints may collide; see [`PackedRow::fingerprint`].
#[derive(Default)]
struct FirstTimes {
    shards: Graded<FirstSeen>,
    /// Pairs over all shards.
    pairs: usize,
}

impl FirstTimes {
    /// Records `pairs`, calling `counts` with each change to the distinct set: a new
    /// pair (+1 at its time), or a pair seen before at a later time (updates of
    /// different times arrive in any order), which moves: -1 at the later time, +1 at
    /// this one.
    fn record_all(
        &mut self,
        pairs: &[(PackedRow, Time, Diff)],
        floor: Time,
        mut counts: impl FnMut(&PackedRow, Time, Diff),
    ) {
        for chunk in pairs.chunks(PREFETCH) {
            // Touch every pair's slot before recording any: the loads are
            // independent, so their cache misses overlap instead of being waited for
            // one after another.
            let mut found = [(0, Fingerprint::default()); PREFETCH];
            let mut touched = 0;
            // A pair's shard is chosen by its hash (which exchange uses too; a shard's
            // slots are chosen by the fingerprint, independent of it).
            for ((pair, _, _), (hash, fingerprint)) in chunk.iter().zip(&mut found) {
                (*hash, *fingerprint) = (pair.hash_code(), pair.fingerprint());
                touched ^= self.shards.shard(*hash).touch(*fingerprint);
            }
            std::hint::black_box(touched);
            for ((pair, time, diff), (hash, fingerprint)) in chunk.iter().zip(found) {
                debug_assert!(*diff > 0, "a monotonic collection does not retract");
                match self
                    .shards
                    .shard_mut(hash)
                    .record(fingerprint, *time, floor.min(*time))
                {
                    Recorded::New => {
                        self.pairs += 1;
                        counts(pair, *time, 1);
                    }
                    Recorded::Moved { later } => {
                        counts(pair, later, -1);
                        counts(pair, *time, 1);
                    }
                    Recorded::Seen => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::super::testing::{int_key, run_keyed};
    use super::*;

    /// Runs `monotonic_distinct_sums` over `inserts` (sent in the given order, at time
    /// 0, each carrying its own time) on `workers` workers, each pair its own key and
    /// counted; returns its output summed per `(value, time)`.
    fn run(inserts: Vec<(u8, Time)>, workers: usize) -> BTreeMap<(u8, Time), Diff> {
        let updates = inserts.into_iter().map(|(v, t)| (v, t, 1)).collect();
        run_keyed(
            updates,
            workers,
            |pairs| {
                let key = |pair: &PackedRow| pair.clone();
                let count = |_: &PackedRow, sum: &mut Diff, diff: Diff| *sum += diff;
                monotonic_distinct_sums(pairs, "test", &UpdateSizes::default(), key, count)
            },
            int_key,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn each_value_appears_once_at_its_first_time(
            inserts in prop::collection::vec((0u8..8, 0u64..6), 0..40),
            workers in 1usize..3,
        ) {
            let mut first: BTreeMap<u8, Time> = BTreeMap::new();
            for (v, t) in &inserts {
                let e = first.entry(*v).or_insert(*t);
                *e = (*e).min(*t);
            }
            let expected: BTreeMap<(u8, Time), Diff> =
                first.into_iter().map(|(v, t)| ((v, t), 1)).collect();
            prop_assert_eq!(run(inserts, workers), expected);
        }
    }
}
