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
//!
//! Transparent huge pages are off for the process: with them, the first touch of
//! any 2 MiB of a fresh mimalloc page zeroes all of it in one fault. Where first
//! touches are slow (this project's VMs: ~3 ms per 2 MiB) a growing state — a
//! trace merge allocating its output, a map doubling — stalled a live pipeline for
//! tens of milliseconds at a time; 4 KiB pages spread that cost over the accesses
//! and zero only what is used (clickstream, 2 workers, 100k events/s, three paired
//! runs: p99 63/90/109 ms with THP, 19/71/55 ms without; 1M replay, 1 worker, three
//! paired runs: 2.42 → 2.18 s on average, peak RSS 305 → 284 MB).

/// How long freed memory stays with the process before mimalloc returns it.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (`mimalloc.h`); the Rust
/// bindings do not name it. The test below checks it against its neighbour.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's options and the process's page policy for a dataflow process. Call it first thing in `main`;
/// options set later apply from then on.
#[allow(unsafe_code)]
pub fn tune() {
    // SAFETY: `mi_option_set` takes an option index and a value and only stores it;
    // the indices are valid `mi_option_t`s (checked by the tests below).
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _);
    }
    // mimalloc decides on huge pages when it maps its first arena, before `main`
    // (its `allow_thp` option set here would come too late): the kernel's
    // per-process switch turns them off for every mapping, present and future.
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` takes plain integers and only
    // sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
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

    #[test]
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn transparent_huge_pages_are_off_after_tuning() {
        tune();
        // SAFETY: `prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)` only reads the flag.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }
}
