//! kappa's pipeline language.
//!
//! A pipeline file (SQL: `CREATE SOURCE` and `CREATE VIEW` statements) becomes a
//! checked, serializable [`plan::Plan`] that has no dependency on timely. This crate
//! also owns the semantics every executor must share: the value model
//! ([`types`]), scalar evaluation ([`expr`]), exact aggregation ([`aggregate`]),
//! the JSON source format ([`decode`]) and the late-event rule ([`lateness`]).

pub mod aggregate;
pub mod decode;
pub mod expr;
pub mod lateness;
pub mod plan;
pub mod types;
pub mod window;

pub use types::{Row, ScalarType, Value};
