//! The `kappa` binary: a thin shim over the library in `lib.rs`.

/// mimalloc rather than the system allocator: the dataflow allocates and frees many
/// small rows and batches, and on the clickstream benchmark (`bench/`) mimalloc cut
/// kappa's time by ~1.6× (1 worker, 200k events).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kappa::allocator::tune();
    kappa::main()
}
