//! The dataflow.
