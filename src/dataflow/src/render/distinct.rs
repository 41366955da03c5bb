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
        .unary::<CapacityContainerBuilder<Vec<(PackedRow, Time, R)>>, _, _, _>(
            pact,
            name,
            move |_capability, info| {
                let mut size = StateSize::new(scope, &info);
                let mut first_seen = FirstTimes::default();
                let mut sums = TimedSums::default();
                move |input, output| {
                    input.for_each(|capability, data| {
                        first_seen.record_all(data, |pair, time, diff| {
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

/// Shards of the first-time map. A live pipeline cannot stop for long, and one map
/// of every distinct pair doubles by rehashing all of them at once: at ~115k and
/// ~230k pairs per worker the clickstream latency run stalled 300–430 ms. A shard
/// holds about 1/256 of the pairs, so each doubling moves a few thousand entries,
/// and the memory an outgrown shard frees is reused by the next one to grow.
const SHARDS: usize = 256;

/// Slots of the table that maps a pair's hash to its shard.
const SHARD_SLOTS: usize = 4096;

/// Which shard each slot of the hash space belongs to. Shards of equal shares would
/// fill up together, and maps double at the same loads, so all 256 doubled within
/// a few batches (a ~100 ms stall again, at ~460k pairs per worker). Shard `i`'s
/// share grows as `2^(i / SHARDS)` instead, so the loads at which shards double are
/// spread evenly over each doubling of the pairs: the rehashing is spread over time
/// as the pairs arrive.
fn shard_table() -> Vec<u8> {
    let weights: Vec<f64> = (0..SHARDS)
        .map(|i| (i as f64 / SHARDS as f64).exp2())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut table = Vec::with_capacity(SHARD_SLOTS);
    let mut cumulative = 0.0;
    for (shard, weight) in weights.iter().enumerate() {
        cumulative += weight;
        let end = ((cumulative / total) * SHARD_SLOTS as f64).round() as usize;
        table.resize(end.max(table.len() + 1).min(SHARD_SLOTS), shard as u8);
    }
    table.resize(SHARD_SLOTS, (SHARDS - 1) as u8);
    table
}

/// When each distinct pair was first seen, split by hash into [`SHARDS`] tables.
///
/// Pairs are kept by fingerprint, not by their bytes: an entry is 24 bytes rather
/// than 48, and finding one compares integers rather than rows ([`FirstSeen`]).
/// Fingerprints may collide; see [`PackedRow::fingerprint`].
struct FirstTimes {
    shards: Vec<FirstSeen>,
    /// A pair's shard by slot ([`shard_table`]).
    table: Vec<u8>,
    /// Pairs over all shards.
    pairs: usize,
}

impl Default for FirstTimes {
    fn default() -> Self {
        FirstTimes {
            shards: (0..SHARDS).map(|_| FirstSeen::default()).collect(),
            table: shard_table(),
            pairs: 0,
        }
    }
}

impl FirstTimes {
    /// Records `pairs`, calling `counts` with each change to the distinct set: a new
    /// pair (+1 at its time), or a pair seen before at a later time (updates of
    /// different times arrive in any order), which moves: -1 at the later time, +1 at
    /// this one.
    fn record_all(
        &mut self,
        pairs: &[(PackedRow, Time, Diff)],
        mut counts: impl FnMut(&PackedRow, Time, Diff),
    ) {
        for chunk in pairs.chunks(PREFETCH) {
            // Touch every pair's slot before recording any: the loads are
            // independent, so their cache misses overlap instead of being waited for
            // one after another.
            let mut found = [(0, Fingerprint::default()); PREFETCH];
            let mut touched = 0;
            for ((pair, _, _), (shard, fingerprint)) in chunk.iter().zip(&mut found) {
                (*shard, *fingerprint) = (self.shard_of(pair), pair.fingerprint());
                touched ^= self.shards[*shard].touch(*fingerprint);
            }
            std::hint::black_box(touched);
            for ((pair, time, diff), (shard, fingerprint)) in chunk.iter().zip(found) {
                debug_assert!(*diff > 0, "a monotonic collection does not retract");
                match self.shards[shard].record(fingerprint, *time) {
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

    /// The shard that holds `pair`, chosen by its hash (which exchange uses too; a
    /// shard's slots are chosen by the fingerprint, independent of it).
    fn shard_of(&self, pair: &PackedRow) -> usize {
        let slot = (pair.hash_code() >> 32) as usize % SHARD_SLOTS;
        usize::from(self.table[slot])
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

    #[test]
    fn shard_shares_spread_over_a_factor_of_two() {
        let table = shard_table();
        assert_eq!(table.len(), SHARD_SLOTS);
        let mut slots = vec![0usize; SHARDS];
        for shard in &table {
            slots[usize::from(*shard)] += 1;
        }
        // Every shard has a share, the last about twice the first, growing in between.
        assert!(slots.iter().all(|n| *n > 0));
        let (first, last) = (slots[0] as f64, slots[SHARDS - 1] as f64);
        assert!((1.6..2.5).contains(&(last / first)), "{first} .. {last}");
        assert!(slots[SHARDS / 2] > slots[0] && slots[SHARDS / 2] < slots[SHARDS - 1]);
    }
}
