//! A table of first times by fingerprint: the state of a monotonic `DISTINCT`.
//!
//! The table is the operator's whole state, sought once per input pair at a random
//! place, and too large for any cache (880k pairs after 1M clicks): what a pair
//! costs is how many cache lines its lookup touches. A general hash map touched two
//! (its control bytes, then the entry) and a third when the entry was written. Here
//! an entry holds its whole key, the fingerprint, beside its time, and entries are
//! found by linear probing in one array: a lookup reads the entry it starts at and,
//! rarely, the ones after it, which are on the same or the next line. The table
//! stays at most half full, so a new pair (most are) probes ~2 entries on average.

use super::packed::Fingerprint;
use crate::Time;

/// What recording a pair at a time found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recorded {
    /// The pair was not there: it is now, at this time.
    New,
    /// The pair was there at a later time: it moved to this one.
    Moved { later: Time },
    /// The pair was there at this time or an earlier one.
    Seen,
}

/// An empty slot's fingerprint. A pair whose fingerprint is this is kept as
/// [`ZERO_STANDIN`]: two fingerprints become one, which changes nothing measurable
/// about the chance of a collision (see [`super::packed::PackedRow::fingerprint`]).
const EMPTY: Fingerprint = Fingerprint(0, 0);
const ZERO_STANDIN: Fingerprint = Fingerprint(0, 1);

#[derive(Clone, Copy, Default)]
struct Slot {
    fingerprint: Fingerprint,
    time: Time,
}

/// First times by fingerprint, open-addressed with linear probing.
#[derive(Default)]
pub(super) struct FirstSeen {
    /// A power of two of slots (or none), at most half of them used.
    slots: Vec<Slot>,
    len: usize,
}

impl FirstSeen {
    /// Records the pair of fingerprint `fingerprint` at `time`.
    pub(super) fn record(&mut self, fingerprint: Fingerprint, time: Time) -> Recorded {
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let key = if fingerprint == EMPTY {
            ZERO_STANDIN
        } else {
            fingerprint
        };
        let index = self.find(key);
        let slot = &mut self.slots[index];
        if slot.fingerprint == EMPTY {
            *slot = Slot {
                fingerprint: key,
                time,
            };
            self.len += 1;
            Recorded::New
        } else if time < slot.time {
            Recorded::Moved {
                later: std::mem::replace(&mut slot.time, time),
            }
        } else {
            Recorded::Seen
        }
    }

    /// Reads the slot where a lookup of `fingerprint` starts, so that the lookup
    /// finds it in cache; returns some of its bits, for the caller to keep the read.
    pub(super) fn touch(&self, fingerprint: Fingerprint) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        let mask = self.slots.len() - 1;
        self.slots[fingerprint.0 as usize & mask].fingerprint.1
    }

    /// The slot holding `key`, or the empty slot where it belongs.
    fn find(&self, key: Fingerprint) -> usize {
        let mask = self.slots.len() - 1;
        let mut index = key.0 as usize & mask;
        loop {
            let found = self.slots[index].fingerprint;
            if found == key || found == EMPTY {
                return index;
            }
            index = (index + 1) & mask;
        }
    }

    /// Doubles the slots (16 at first) and puts every entry back.
    fn grow(&mut self) {
        let capacity = (2 * self.slots.len()).max(16);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); capacity]);
        for slot in old {
            if slot.fingerprint != EMPTY {
                let index = self.find(slot.fingerprint);
                self.slots[index] = slot;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Against a map of first times, over fingerprints that share low bits (long
        /// probe runs) and the empty slot's fingerprint.
        #[test]
        fn records_as_a_map_of_first_times_does(
            records in prop::collection::vec((0u64..40, 0u64..3, 0u64..10), 0..300),
        ) {
            let mut table = FirstSeen::default();
            let mut first: HashMap<(u64, u64), Time> = HashMap::new();
            for (low, high, time) in records {
                // Low halves collide in the slot index; `(0, 0)` is among them, and
                // is kept as `(0, 1)`.
                let fingerprint = Fingerprint(low << 20, high);
                let key = if (low, high) == (0, 0) { (0, 1) } else { (low << 20, high) };
                let expected = match first.get_mut(&key) {
                    None => {
                        first.insert(key, time);
                        Recorded::New
                    }
                    Some(t) if time < *t => Recorded::Moved { later: std::mem::replace(t, time) },
                    Some(_) => Recorded::Seen,
                };
                prop_assert_eq!(table.record(fingerprint, time), expected);
            }
            prop_assert_eq!(table.len, first.len());
            prop_assert!(2 * table.len <= table.slots.len().max(1));
        }
    }
}
