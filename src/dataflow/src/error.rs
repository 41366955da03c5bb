//! Errors of the engine: bad data as data, and failures of the runtime itself.
//!
//! A record that does not decode, or a row whose expression fails (division by
//! zero, a bad cast), is not a reason to stop: it becomes a [`DataError`] that
//! flows beside the rows, is counted, and is written to the pipeline's dead-letter
//! topic with where it came from. [`RuntimeError`] is for what does stop a run.

use serde::{Deserialize, Serialize};

/// Where a data error arose.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A source record that could not be decoded.
    Source {
        /// The topic read.
        topic: String,
        /// Its partition.
        partition: u32,
        /// The record's offset.
        offset: u64,
    },
    /// An operator of the plan that failed on a row.
    Operator {
        /// The plan node.
        node: usize,
    },
}

/// A record or row that could not be processed, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DataError {
    /// Where it arose.
    pub origin: Origin,
    /// Why, in words.
    pub reason: String,
    /// The raw record bytes (source errors) or the row as JSON (operator errors).
    pub payload: Vec<u8>,
}

impl DataError {
    /// The JSON document written to the dead-letter topic.
    pub fn to_dead_letter(&self, pipeline: &str, version: u64) -> serde_json::Value {
        let payload = match std::str::from_utf8(&self.payload) {
            Ok(text) => serde_json::Value::String(text.to_string()),
            Err(_) => serde_json::Value::Array(
                self.payload
                    .iter()
                    .map(|b| serde_json::Value::from(*b))
                    .collect(),
            ),
        };
        serde_json::json!({
            "pipeline": pipeline,
            "version": version,
            "origin": self.origin,
            "reason": self.reason,
            "payload": payload,
        })
    }
}

/// Why a pipeline could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] kappa_log::LogError),
    /// Timely could not start its workers or they failed.
    #[error("dataflow workers failed: {0}")]
    Workers(String),
}
