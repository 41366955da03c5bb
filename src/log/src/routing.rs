//! Choosing a partition for a record: a stable hash of the key, or round-robin.
//!
//! The key hash is XXH3-64 with seed 0 over the key's bytes, reduced modulo the
//! partition count. XXH3 is a fixed, published algorithm, so the mapping is the same in
//! every process, platform and kappa version; the golden test below pins it.

use std::sync::atomic::{AtomicU64, Ordering};

/// The partition of `partitions` that a record with `key` belongs to:
/// `xxh3_64(key) % partitions`. Stable across processes and versions.
///
/// # Panics
/// If `partitions` is 0.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(partitions)) as u32
}

static ROUND_ROBIN: AtomicU64 = AtomicU64::new(0);

/// Reserves `count` consecutive round-robin slots from a process-wide counter and
/// returns the first; keyless records take partitions `slot % partitions` in turn, so
/// successive batches continue where the previous one stopped.
pub fn round_robin_start(count: usize) -> u64 {
    ROUND_ROBIN.fetch_add(count as u64, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_pinned() {
        // Golden values: changing them re-routes every existing keyed topic.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06800538d394c2);
        let golden: [(&str, u64, u32); 4] = [
            ("a", 0xe6c632b61e964e1f, 7),
            ("b", 0x575a0b1c44d8843f, 7),
            ("user-17", 0x7d94013a73497c81, 1),
            ("42", 0x1217cb28c0ef2191, 1),
        ];
        for (key, hash, partition) in golden {
            assert_eq!(xxhash_rust::xxh3::xxh3_64(key.as_bytes()), hash, "{key}");
            assert_eq!(partition_for_key(key.as_bytes(), 8), partition, "{key}");
        }
    }

    #[test]
    fn round_robin_slots_do_not_overlap() {
        let a = round_robin_start(3);
        let b = round_robin_start(2);
        assert!(b >= a + 3);
    }
}
