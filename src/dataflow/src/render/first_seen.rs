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

use std::collections::HashMap;

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

/// A fingerprint as a slot keeps it: its first 96 bits (see
/// [`super::packed::PackedRow::fingerprint`] for what that leaves of a collision's
/// chance). The slot index comes from the first word's low bits.
type Key = [u32; 3];

/// An empty slot's key. A pair whose key is this is kept as [`ZERO_STANDIN`]: two
/// keys become one, which changes nothing measurable about the chance of a
/// collision.
const EMPTY: Key = [0, 0, 0];
const ZERO_STANDIN: Key = [0, 0, 1];

/// A slot's time that did not fit beside its key: the time is in
/// [`FirstSeen::overflow`].
const OVERFLOW: u32 = u32::MAX;

/// How far past [`FirstSeen::base`] a slot's time may lie (its last value marks
/// an overflow).
const TIME_RANGE: u64 = OVERFLOW as u64;

/// 16 bytes: four to a cache line (24-byte slots with a whole `Time` made the
/// clickstream's table 201 MB at 4M events).
#[derive(Clone, Copy, Default)]
struct Slot {
    key: Key,
    /// Milliseconds after the table's base, or [`OVERFLOW`].
    time: u32,
}

/// First times by fingerprint, open-addressed with linear probing.
///
/// Times are kept relative to a base, in 32 bits: ~49 days of logical time. The
/// base starts half that range before the first pair's time (or at the input
/// frontier, if that is later): not at the frontier alone, which, while another
/// worker's source has not yet started, is still the dataflow's first time, 0,
/// ~1.7e12 ms before any wall-clock time, so that every pair overflowed into the side
/// map until the frontier moved. When a time lies too far past the base, the base
/// moves up to the frontier (at most once per 2^31 ms of progress), and times
/// before the new base are clamped to it. That loses nothing: no update
/// still to come is earlier than the frontier, so a pair first seen before it can
/// only be seen again, never moved earlier. A time that still does not fit (the
/// frontier ~49 days behind the data) is kept whole in a side map.
pub(super) struct FirstSeen {
    /// A power of two of slots (or none), at most half of them used.
    slots: Vec<Slot>,
    len: usize,
    /// What slot times are relative to; `None` until the first pair.
    base: Option<Time>,
    /// Times too far past the base for a slot, by key.
    overflow: HashMap<Key, Time>,
    /// How far past the base a slot's time may lie (tests make it small).
    range: u64,
}

impl Default for FirstSeen {
    fn default() -> Self {
        FirstSeen {
            slots: Vec::new(),
            len: 0,
            base: None,
            overflow: HashMap::new(),
            range: TIME_RANGE,
        }
    }
}

impl FirstSeen {
    /// Records the pair of fingerprint `fingerprint` at `time`; `floor` is a time no
    /// update still to come is earlier than (the input frontier), at most `time`.
    pub(super) fn record(&mut self, fingerprint: Fingerprint, time: Time, floor: Time) -> Recorded {
        debug_assert!(
            floor <= time,
            "an update is never earlier than the frontier"
        );
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let key = match key_of(fingerprint) {
            EMPTY => ZERO_STANDIN,
            key => key,
        };
        let base = *self
            .base
            .get_or_insert(floor.max(time.saturating_sub(self.range / 2)));
        if time.saturating_sub(base) >= self.range && floor.saturating_sub(base) >= self.range / 2 {
            self.rebase(floor);
        }
        let index = self.find(key);
        let slot = self.slots[index];
        if slot.key == EMPTY {
            self.slots[index] = Slot {
                key,
                time: self.relative(key, time),
            };
            self.len += 1;
            return Recorded::New;
        }
        let first = self.absolute(&slot);
        if time < first {
            self.slots[index].time = self.relative(key, time);
            Recorded::Moved { later: first }
        } else {
            Recorded::Seen
        }
    }

    /// `time` as a slot of `key` keeps it: relative to the base, or [`OVERFLOW`]
    /// with the time in the side map.
    fn relative(&mut self, key: Key, time: Time) -> u32 {
        let base = self.base.expect("a base once a pair is recorded");
        // A time before the base (and after the frontier: one that may not be
        // clamped) is kept whole too.
        match time.checked_sub(base) {
            Some(offset) if offset < self.range => {
                if !self.overflow.is_empty() {
                    self.overflow.remove(&key);
                }
                offset as u32
            }
            _ => {
                self.overflow.insert(key, time);
                OVERFLOW
            }
        }
    }

    /// The time a slot holds.
    fn absolute(&self, slot: &Slot) -> Time {
        if slot.time == OVERFLOW {
            self.overflow[&slot.key]
        } else {
            self.base.expect("a base once a pair is recorded") + Time::from(slot.time)
        }
    }

    /// Moves the base up to `floor`: times before it become `floor` (see the type's
    /// documentation), overflowed times that now fit move back into their slots.
    fn rebase(&mut self, floor: Time) {
        let old = self.base.expect("a base once a pair is recorded");
        for slot in &mut self.slots {
            if slot.key == EMPTY {
                continue;
            }
            let time = match slot.time {
                OVERFLOW => self.overflow[&slot.key],
                offset => old + Time::from(offset),
            };
            let offset = time.max(floor) - floor;
            if offset < self.range {
                if slot.time == OVERFLOW {
                    self.overflow.remove(&slot.key);
                }
                slot.time = offset as u32;
            } else {
                self.overflow.insert(slot.key, time);
                slot.time = OVERFLOW;
            }
        }
        self.base = Some(floor);
    }

    /// Reads the slot where a lookup of `fingerprint` starts, so that the lookup
    /// finds it in cache; returns some of its bits, for the caller to keep the read.
    pub(super) fn touch(&self, fingerprint: Fingerprint) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        let mask = self.slots.len() - 1;
        u64::from(self.slots[fingerprint.0 as usize & mask].key[2])
    }

    /// The slot holding `key`, or the empty slot where it belongs.
    fn find(&self, key: Key) -> usize {
        let mask = self.slots.len() - 1;
        let mut index = key[0] as usize & mask;
        loop {
            let found = self.slots[index].key;
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
            if slot.key != EMPTY {
                let index = self.find(slot.key);
                self.slots[index] = slot;
            }
        }
    }
}

/// The 96 bits of a fingerprint a slot keeps.
fn key_of(fingerprint: Fingerprint) -> Key {
    let Fingerprint(a, b) = fingerprint;
    [a as u32, (a >> 32) as u32, b as u32]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// What recording `key` at `time` finds in a map of first times, which it updates.
    fn model<K: std::hash::Hash + Eq>(
        first: &mut HashMap<K, Time>,
        key: K,
        time: Time,
    ) -> Recorded {
        match first.get_mut(&key) {
            None => {
                first.insert(key, time);
                Recorded::New
            }
            Some(t) if time < *t => Recorded::Moved {
                later: std::mem::replace(t, time),
            },
            Some(_) => Recorded::Seen,
        }
    }

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
                prop_assert_eq!(table.record(fingerprint, time, 0), model(&mut first, key, time));
            }
            prop_assert_eq!(table.len, first.len());
            prop_assert!(2 * table.len <= table.slots.len().max(1));
        }

        /// With times kept in a range of 8 past the base, so that the base moves
        /// and times overflow into the side map, as the frontier advances: still as
        /// a map of first times, for every time at or after the frontier; also when
        /// the frontier starts far behind the times (at 0, as a dataflow's does)
        /// and then catches up.
        #[test]
        fn keeps_first_times_exactly_while_the_base_moves(
            records in prop::collection::vec((0u64..30, 0u64..3, 0u64..20), 0..300),
            frontier_starts_at_zero in any::<bool>(),
        ) {
            let mut table = FirstSeen { range: 8, ..FirstSeen::default() };
            let mut first: HashMap<u64, Time> = HashMap::new();
            let mut floor = 100;
            for (i, (low, step, ahead)) in records.into_iter().enumerate() {
                floor += step;
                let time = floor + ahead;
                let floor = if frontier_starts_at_zero && i < 20 { 0 } else { floor };
                let fingerprint = Fingerprint(low << 20 | 1, low);
                prop_assert_eq!(table.record(fingerprint, time, floor), model(&mut first, low, time));
            }
            prop_assert_eq!(table.len, first.len());
        }
    }

    #[test]
    fn pairs_at_wall_clock_times_fit_in_slots_while_the_frontier_is_still_zero() {
        let mut table = FirstSeen::default();
        let now = 1_763_900_000_000;
        for i in 0..1000u64 {
            let fingerprint = Fingerprint(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i);
            assert_eq!(table.record(fingerprint, now + i % 50, 0), Recorded::New);
        }
        assert!(table.overflow.is_empty(), "no pair's time overflowed");
        let again = Fingerprint(7u64.wrapping_mul(0x9e37_79b9_7f4a_7c15), 7);
        assert_eq!(
            table.record(again, now + 1, 0),
            Recorded::Moved { later: now + 7 }
        );
    }

    #[test]
    fn a_slot_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }
}
