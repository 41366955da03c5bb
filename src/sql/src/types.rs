//! SQL values and their types: the data model shared by the oracle and the dataflow.
//!
//! A [`Value`] is totally ordered and hashable so that rows can be differential data
//! (keys of arrangements, exchange hashes). Floats get a total order through
//! [`F64`]; timestamps are epoch milliseconds.

use serde::{Deserialize, Serialize};
pub use smol_str::SmolStr;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// The type of a column or expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScalarType {
    /// `BOOLEAN`.
    Bool,
    /// `BIGINT`: 64-bit signed integer.
    Int,
    /// `DOUBLE`: 64-bit IEEE float.
    Float,
    /// `TEXT`: UTF-8 string.
    Text,
    /// `TIMESTAMP`: milliseconds since the Unix epoch, UTC.
    Timestamp,
    /// The type of a bare `NULL` literal before it meets a context.
    Null,
}

impl ScalarType {
    /// True for the numeric types (`BIGINT`, `DOUBLE`).
    pub fn is_numeric(self) -> bool {
        matches!(self, ScalarType::Int | ScalarType::Float)
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScalarType::Bool => "BOOLEAN",
            ScalarType::Int => "BIGINT",
            ScalarType::Float => "DOUBLE",
            ScalarType::Text => "TEXT",
            ScalarType::Timestamp => "TIMESTAMP",
            ScalarType::Null => "NULL",
        })
    }
}

/// A 64-bit float with a total order, so that it can be part of a key.
///
/// `-0.0` is stored as `0.0` and every NaN as one canonical NaN, so equal values
/// have equal bits and hash alike. NaN sorts above every number.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct F64(f64);

impl F64 {
    /// Wraps a float, canonicalising zero and NaN.
    pub fn new(value: f64) -> Self {
        if value == 0.0 {
            F64(0.0)
        } else if value.is_nan() {
            F64(f64::NAN)
        } else {
            F64(value)
        }
    }

    /// The wrapped float.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for F64 {}
impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        F64::new(self.0).0.total_cmp(&F64::new(other.0).0)
    }
}
impl Hash for F64 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        F64::new(self.0).0.to_bits().hash(state)
    }
}
impl fmt::Debug for F64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// One SQL value. `Null` sorts first; values of different types order by type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A `BOOLEAN`.
    Bool(bool),
    /// A `BIGINT`.
    Int(i64),
    /// A `DOUBLE`.
    Float(F64),
    /// A `TEXT`: kept inline when short (up to 23 bytes: ids, names, codes, most
    /// event fields), else shared. Short text then costs no allocation, no reference
    /// count and no pointer to chase: cloning or dropping a row of it touches only
    /// the row, and two workers never write one count. Longer text is an `Arc<str>`
    /// inside, so cloning a row still copies no strings.
    Text(SmolStr),
    /// A `TIMESTAMP` in epoch milliseconds.
    Timestamp(i64),
}

/// A row: one value per column of its relation.
pub type Row = Vec<Value>;

impl Value {
    /// A `TEXT` value.
    pub fn text(s: &str) -> Value {
        Value::Text(SmolStr::new(s))
    }

    /// A `DOUBLE` value.
    pub fn float(f: f64) -> Value {
        Value::Float(F64::new(f))
    }

    /// True for SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The type of this value (`Null` for `NULL`).
    pub fn scalar_type(&self) -> ScalarType {
        match self {
            Value::Null => ScalarType::Null,
            Value::Bool(_) => ScalarType::Bool,
            Value::Int(_) => ScalarType::Int,
            Value::Float(_) => ScalarType::Float,
            Value::Text(_) => ScalarType::Text,
            Value::Timestamp(_) => ScalarType::Timestamp,
        }
    }

    /// The value as JSON, the way views are served: timestamps as RFC 3339 strings.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(f.get())
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => serde_json::Value::String(s.to_string()),
            Value::Timestamp(ms) => serde_json::Value::String(format_timestamp(*ms)),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{}", x.get()),
            Value::Text(s) => f.write_str(s),
            Value::Timestamp(ms) => f.write_str(&format_timestamp(*ms)),
        }
    }
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision.
pub fn format_timestamp(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_have_a_total_order_and_canonical_zero() {
        assert_eq!(F64::new(-0.0), F64::new(0.0));
        assert!(F64::new(f64::NAN) > F64::new(f64::INFINITY));
        assert!(Value::Null < Value::Bool(false));
        assert!(Value::Int(3) < Value::Int(4));
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let ms = 1_700_000_000_123;
        assert_eq!(parse_timestamp(&format_timestamp(ms)), Some(ms));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.123+00:00"),
            Some(1_700_000_000_123)
        );
    }
}
