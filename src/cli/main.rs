//! The `kappa` binary: a thin shim over the library in `lib.rs`.

fn main() -> std::process::ExitCode {
    kappa::main()
}
