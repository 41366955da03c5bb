//! kappa's engine: one pipeline version as one timely/differential dataflow.
//!
//! [`runtime::start`] renders a [`kappa_sql::plan::Plan`] ([`render`]) on every
//! worker, reads its sources from the log ([`source`]), and materializes every
//! view into a [`store::ViewStore`] that readers query at consistent frontiers.
//! Bad records and failing rows are data ([`error::DataError`]), routed to the
//! dead-letter topic. Logical times are wall-clock milliseconds at ingestion.

mod applier;
pub mod engine;
pub mod error;
mod graded;
mod install;
pub(crate) mod introspect;
pub mod metrics;
mod pacer;
pub mod render;
pub mod runtime;
pub mod source;
pub mod store;

pub use engine::{Engine, VersionId};
pub use runtime::{start, RunConfig, RunningPipeline};
pub use store::ViewStore;

/// Logical time of the dataflow: ingestion wall-clock milliseconds.
pub type Time = u64;
/// Multiplicity changes.
pub type Diff = isize;
