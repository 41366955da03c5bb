//! Tuning of mimalloc, the allocator the `kappa` binary (and the benchmarks) run on.
//!
//! mimalloc returns freed memory to the OS ("purges" it) once it has been idle for
//! its purge delay, 1 s by default in the version we build. A dataflow frees and reallocates large buffers all the time: batcher
//! chains, merged trace batches, a source's per-span maps. Purged, each reuse faults
//! the memory back in, and with transparent huge pages the kernel zeroes 2 MiB per
//! fault: on the clickstream replay (1M events, 1 worker) that was ~5k faults and
//! 15–30% of the time, in `clear_page`. Kept for 10 s, memory that is reused is
//! never purged (~1.9k faults, all first touches), and memory left idle after a
//! replay or a burst still goes back to the OS 10 s later.

/// How long freed memory stays with the process before mimalloc returns it.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (`mimalloc.h`); the Rust
/// bindings do not name it. The test below checks it against its neighbour.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's options for a dataflow process. Call it first thing in `main`;
/// options set later apply from then on.
#[allow(unsafe_code)]
pub fn tune() {
    // SAFETY: `mi_option_set` takes an option index and a value and only stores it;
    // the index is a valid `mi_option_t` (checked by the test below).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_is_where_mimalloc_has_it() {
        // The option after it, named by the bindings.
        assert_eq!(
            libmimalloc_sys::mi_option_use_numa_nodes,
            MI_OPTION_PURGE_DELAY + 1
        );
        tune();
        // SAFETY: reading an option by a valid index.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay as i64, PURGE_DELAY_MS);
    }
}
