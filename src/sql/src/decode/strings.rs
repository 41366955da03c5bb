//! Decoded strings: inline when short, shared when long and repeated, plain
//! allocations otherwise.
//!
//! Strings of up to [`SmolStr::INLINE_CAP`] bytes (ids, names, codes: most event
//! fields) are kept inside their [`Value`](crate::Value), with nothing to allocate
//! or share. A longer text column whose values repeat across records (a URL, a user
//! agent) decodes best through a small cache: a hit shares one `Arc`, so rows that
//! are kept (materialized, arranged) hold one allocation per distinct value. A
//! column of many distinct values gains nothing: its lookups mostly miss, and each
//! miss costs a hash, a cache-missing probe and a comparison on top of the
//! allocation it makes anyway (measured on the clickstream workload before short
//! strings were inline: one cache shared by all columns was ~15% of a 1-worker
//! run). So each column has its own cache and its own hit rate: a column that
//! misses most lookups over a window bypasses its cache for a while, then tries it
//! again (values of a column can become repetitive later).

use std::cell::RefCell;
use std::sync::Arc;

use smol_str::SmolStr;

/// Slots per column: 64 KiB of slots, the size of a core's L1/L2-friendly working set,
/// enough for the few thousand hot values of a repetitive column.
const SLOTS: usize = 1 << 12;
/// Longer strings are not cached: they rarely repeat, and would pin memory.
const MAX_LEN: usize = 64;
/// Lookups per column over which the hit rate is judged.
const WINDOW: u32 = 4_096;
/// A window with fewer hits than this bypasses the cache for [`BYPASS`] strings.
const MIN_HITS: u32 = WINDOW / 2;
/// Strings decoded without the cache before a column tries it again.
const BYPASS: u32 = 1 << 18;

/// Recently decoded strings of each text column, direct-mapped by a hash of their
/// bytes: a hit shares the cached `Arc`, a miss allocates and takes the slot. Bounded
/// (at most [`SLOTS`] strings of at most [`MAX_LEN`] bytes per column), so memory does
/// not grow with the number of distinct values.
#[derive(Debug, Default)]
pub(super) struct StringCache(RefCell<Vec<ColumnCache>>);

#[derive(Debug, Default)]
struct ColumnCache {
    slots: Vec<Option<Arc<str>>>,
    lookups: u32,
    hits: u32,
    /// Strings still to decode without the cache.
    bypass: u32,
}

impl StringCache {
    /// `s`, decoded for column `column`: inline when short, else sharing an
    /// earlier equal value when the column's cache holds one.
    pub(super) fn get(&self, column: usize, s: &str) -> SmolStr {
        if s.len() <= SmolStr::INLINE_CAP {
            return SmolStr::new_inline(s);
        }
        if s.len() > MAX_LEN {
            return SmolStr::from(s);
        }
        let mut columns = self.0.borrow_mut();
        if columns.len() <= column {
            columns.resize_with(column + 1, ColumnCache::default);
        }
        SmolStr::from(columns[column].get(s))
    }
}

impl ColumnCache {
    fn get(&mut self, s: &str) -> Arc<str> {
        if self.bypass > 0 {
            self.bypass -= 1;
            return Arc::from(s);
        }
        if self.slots.is_empty() {
            self.slots.resize(SLOTS, None);
        }
        self.lookups += 1;
        if self.lookups == WINDOW {
            if self.hits < MIN_HITS {
                self.bypass = BYPASS;
            }
            (self.lookups, self.hits) = (0, 0);
        }
        // FNV-1a: cheap for the short strings cached.
        let hash = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let slot = &mut self.slots[(hash % SLOTS as u64) as usize];
        match slot {
            Some(cached) if **cached == *s => {
                self.hits += 1;
                cached.clone()
            }
            _ => slot.insert(Arc::from(s)).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string too long to be inline, distinct per `i`.
    fn long(i: impl std::fmt::Display) -> String {
        format!("https://example.com/a/long/path/{i}")
    }

    /// Whether `a` and `b` share one allocation.
    fn shared(a: &SmolStr, b: &SmolStr) -> bool {
        a.is_heap_allocated() && std::ptr::eq(a.as_str(), b.as_str())
    }

    #[test]
    fn short_strings_are_inline() {
        let cache = StringCache::default();
        let value = "u18289";
        let (a, b) = (cache.get(0, value), cache.get(0, value));
        assert!(!a.is_heap_allocated() && a == b && a == value);
        let longest = "x".repeat(SmolStr::INLINE_CAP);
        assert!(!cache.get(0, &longest).is_heap_allocated());
    }

    #[test]
    fn a_repetitive_column_shares_its_values() {
        let cache = StringCache::default();
        for round in 0..3 * WINDOW {
            let value = long(round % 16);
            let a = cache.get(0, &value);
            let b = cache.get(0, &value);
            assert!(shared(&a, &b));
            assert_eq!(a, value);
        }
    }

    #[test]
    fn a_column_of_distinct_values_bypasses_its_cache_then_tries_again() {
        let cache = StringCache::default();
        for i in 0..WINDOW {
            assert_eq!(cache.get(1, &long(i)), long(i));
        }
        // The window missed: the column now allocates each string.
        let u = long("u");
        let (a, b) = (cache.get(1, &u), cache.get(1, &u));
        assert!(!shared(&a, &b) && a == b);
        // Another column keeps its own cache.
        let p = long("p");
        let (c, d) = (cache.get(0, &p), cache.get(0, &p));
        assert!(shared(&c, &d));
        for _ in 0..BYPASS {
            cache.get(1, &u);
        }
        let (a, b) = (cache.get(1, &u), cache.get(1, &u));
        assert!(shared(&a, &b), "after the bypass the cache is tried again");
    }

    #[test]
    fn long_strings_are_not_cached() {
        let cache = StringCache::default();
        let long = "x".repeat(MAX_LEN + 1);
        let (a, b) = (cache.get(0, &long), cache.get(0, &long));
        assert!(!shared(&a, &b) && a == b);
    }
}
