//! kappa's pipeline language.
//!
//! A pipeline file (SQL: `CREATE SOURCE` and `CREATE VIEW` statements) becomes a
//! checked, serializable [`plan::Plan`] that has no dependency on timely
//! ([`compile_file`], [`compile_str`]); [`explain()`] renders a plan as text, and
//! the [`oracle`] evaluates one over a bounded log, plainly, as the specification
//! every executor is tested against. This crate also owns the semantics every
//! executor must share: the value model ([`types`]), scalar evaluation
//! ([`expr`]), exact aggregation ([`aggregate`]), the JSON source format
//! ([`decode`]) and the late-event rule ([`lateness`]).

pub mod aggregate;
pub mod decode;
pub mod diagnostics;
pub mod explain;
pub mod expr;
pub mod lateness;
pub mod oracle;
pub mod parse;
pub mod plan;
mod planner;
pub mod types;
pub mod window;

pub use diagnostics::{Diagnostic, Diagnostics};
pub use explain::explain;
pub use planner::{compile_file, compile_str};
pub use types::{Row, ScalarType, Value};
