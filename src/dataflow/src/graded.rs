//! Tables that grow without stalling a live pipeline: one table split by hash into
//! shards whose shares differ, so that they double at different times.
//!
//! A hash table grows by moving every entry to a table twice the size, at once: at a
//! few hundred thousand entries that is tens of milliseconds of copying and of first
//! touches of fresh pages, during which a live pipeline's next round waits (a view's
//! rows in the store, a reduction's totals, the distinct pairs of a `COUNT
//! (DISTINCT)`: each such doubling was a latency spike of 20–430 ms;
//! `clickstream_bench`, sessions 5 and 10). Split into [`SHARDS`] tables, each
//! doubling moves ~1/256 of the entries. Shards of equal shares would fill up
//! together and double within a few batches of each other (at ~460k distinct pairs
//! per worker that was a ~100 ms stall again), so shard `i`'s share of the hash
//! space grows as `2^(i / SHARDS)`: the loads at which shards double are spread
//! evenly over each doubling of the whole, and the copying is spread over time as
//! the entries arrive. The memory an outgrown shard frees is reused by the next one.
//! A table that may stay small starts as one table ([`Graded::unsplit`]) and splits
//! once at [`SPLIT_AT`] entries: below that one table is faster, and its doublings
//! are short.
//!
//! Shards are chosen by bits 32.. of an entry's 64-bit hash: exchange between
//! workers uses the low bits, and a shard's own table the low and top bits.

use std::sync::LazyLock;

/// Shards of a [`Graded`] table.
pub(crate) const SHARDS: usize = 256;

/// Slots of the table that maps a hash to its shard.
const SHARD_SLOTS: usize = 4096;

/// Which shard each slot of the hash space belongs to: shard `i`'s share of the
/// slots grows as `2^(i / SHARDS)`, so the last has about twice the first's.
static SHARD_TABLE: LazyLock<Box<[u8; SHARD_SLOTS]>> = LazyLock::new(|| {
    let weights: Vec<f64> = (0..SHARDS)
        .map(|i| (i as f64 / SHARDS as f64).exp2())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut table = Box::new([(SHARDS - 1) as u8; SHARD_SLOTS]);
    let (mut cumulative, mut start) = (0.0, 0);
    for (shard, weight) in weights.iter().enumerate() {
        cumulative += weight;
        // Every shard gets at least one slot.
        let end = (((cumulative / total) * SHARD_SLOTS as f64).round() as usize)
            .max(start + 1)
            .min(SHARD_SLOTS);
        table[start..end].fill(shard as u8);
        start = end;
    }
    table
});

/// Entries at which an [`Graded::unsplit`] table splits. Below it one table is
/// faster: splitting the 10k-key totals of the clickstream's per-page counts made
/// them 20–30% slower (more, smaller tables to reach), and doubling a table of up
/// to this many entries takes a millisecond or two.
pub(crate) const SPLIT_AT: usize = 32 * 1024;

/// A table split into [`SHARDS`] shards of graded shares, by hash; or, until it
/// holds [`SPLIT_AT`] entries, one table ([`Graded::unsplit`]).
pub(crate) struct Graded<T> {
    /// One table, or [`SHARDS`] of them.
    shards: Vec<T>,
    /// [`SHARD_TABLE`], resolved once: finding a shard is then two plain loads.
    table: &'static [u8; SHARD_SLOTS],
}

/// A table that a [`Graded`] table may start as and then split.
pub(crate) trait Shard: Default {
    /// Moves every entry of this table into the table `into` picks by its hash.
    fn split(self, into: impl FnMut(u64) -> usize, shards: &mut [Self]);
}

impl<T: Default> Default for Graded<T> {
    /// Split from the start.
    fn default() -> Self {
        Graded {
            shards: (0..SHARDS).map(|_| T::default()).collect(),
            table: &SHARD_TABLE,
        }
    }
}

impl<T: Shard> Graded<T> {
    /// Splits the table into graded shards if it is one table holding at least
    /// [`SPLIT_AT`] entries (`entries`, as the caller counts them).
    pub(crate) fn split_at_size(&mut self, entries: usize) {
        self.split_at_size_with(entries, |whole, into, shards| whole.split(into, shards));
    }
}

impl<T: Default> Graded<T> {
    /// One table, until [`Graded::split_at_size`] finds it large.
    pub(crate) fn unsplit() -> Self {
        Graded {
            shards: vec![T::default()],
            table: &SHARD_TABLE,
        }
    }

    /// [`Graded::split_at_size`] for tables whose entries' hashes only their owner
    /// knows how to compute: `split` moves every entry of the one table into the
    /// shard that the function it is given picks by the entry's hash.
    pub(crate) fn split_at_size_with(
        &mut self,
        entries: usize,
        split: impl FnOnce(T, &dyn Fn(u64) -> usize, &mut [T]),
    ) {
        if self.shards.len() > 1 || entries < SPLIT_AT {
            return;
        }
        let whole = self.shards.pop().expect("one table");
        self.shards = (0..SHARDS).map(|_| T::default()).collect();
        let table = self.table;
        split(whole, &|hash| shard_index(table, hash), &mut self.shards);
    }
}

impl<T> Graded<T> {
    /// The shard that holds entries of hash `hash`.
    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> &T {
        &self.shards[self.index(hash)]
    }

    /// The shard that holds entries of hash `hash`, to change.
    #[inline]
    pub(crate) fn shard_mut(&mut self, hash: u64) -> &mut T {
        let index = self.index(hash);
        &mut self.shards[index]
    }

    /// Whether the table is split into shards (a view from outside, for tests).
    #[cfg(test)]
    pub(crate) fn is_split(&self) -> bool {
        self.shards.len() > 1
    }

    /// Every shard, in shard order.
    pub(crate) fn shards(&self) -> impl Iterator<Item = &T> {
        self.shards.iter()
    }

    #[inline]
    fn index(&self, hash: u64) -> usize {
        if self.shards.len() == 1 {
            0
        } else {
            shard_index(self.table, hash)
        }
    }
}

#[inline]
fn shard_index(table: &[u8; SHARD_SLOTS], hash: u64) -> usize {
    usize::from(table[(hash >> 32) as usize % SHARD_SLOTS])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_shares_spread_over_a_factor_of_two() {
        let mut slots = vec![0usize; SHARDS];
        for shard in SHARD_TABLE.iter() {
            slots[usize::from(*shard)] += 1;
        }
        // Every shard has a share, the last about twice the first, growing in between.
        assert!(slots.iter().all(|n| *n > 0));
        let (first, last) = (slots[0] as f64, slots[SHARDS - 1] as f64);
        assert!((1.6..2.5).contains(&(last / first)), "{first} .. {last}");
        assert!(slots[SHARDS / 2] > slots[0] && slots[SHARDS / 2] < slots[SHARDS - 1]);
        // Shares never shrink from one shard to the next by more than rounding.
        assert!(slots.windows(2).all(|w| w[1] + 1 >= w[0]));
    }

    #[test]
    fn a_hash_always_finds_the_same_shard_and_every_shard_is_reachable() {
        let mut graded: Graded<Vec<u64>> = Graded::default();
        for i in 0..SHARD_SLOTS as u64 {
            let hash = (i << 32) | 0xdead_beef;
            graded.shard_mut(hash).push(hash);
        }
        assert!(graded.shards().all(|s| !s.is_empty()));
        for shard in graded.shards() {
            for hash in shard {
                assert!(std::ptr::eq(graded.shard(*hash), shard));
            }
        }
        // Only bits 32.. choose: the low half is free for exchange and the shard's table.
        assert!(std::ptr::eq(
            graded.shard(7 << 32),
            graded.shard((7 << 32) | 0xffff_ffff)
        ));
    }

    /// Hashes as the entries of a test table.
    #[derive(Default)]
    struct Hashes(Vec<u64>);

    impl Shard for Hashes {
        fn split(self, mut into: impl FnMut(u64) -> usize, shards: &mut [Self]) {
            for hash in self.0 {
                shards[into(hash)].0.push(hash);
            }
        }
    }

    #[test]
    fn an_unsplit_table_splits_once_large_and_keeps_every_entry_where_it_is_sought() {
        let mut graded: Graded<Hashes> = Graded::unsplit();
        let hashes: Vec<u64> = (0..SPLIT_AT as u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for (n, hash) in hashes.iter().enumerate() {
            graded.shard_mut(*hash).0.push(*hash);
            graded.split_at_size(n + 1);
            assert_eq!(
                graded.shards().count(),
                if n + 1 < SPLIT_AT { 1 } else { SHARDS }
            );
        }
        for hash in &hashes {
            assert!(graded.shard(*hash).0.contains(hash));
        }
        let kept: usize = graded.shards().map(|s| s.0.len()).sum();
        assert_eq!(kept, hashes.len());
        // Split once: a later check leaves it as it is.
        graded.split_at_size(0);
        assert_eq!(graded.shards().count(), SHARDS);
    }
}
