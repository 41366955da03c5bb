//! Shared helpers for kappa's benchmark harnesses: workload generation, timing and
//! resource measurement. Each harness is a binary under `src/bin/` that prints its
//! figures beside a plain single-threaded baseline measured in the same run.
