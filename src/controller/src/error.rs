//! The controller's typed errors.

/// A pipeline or version that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No such pipeline.
    #[error("no pipeline named `{0}`")]
    UnknownPipeline(String),
    /// No such running version.
    #[error("pipeline `{0}` has no running version {1}")]
    UnknownVersion(String, u64),
    /// The pipeline has running versions but none is active yet.
    #[error("pipeline `{0}` has no active version yet (its first version is still replaying)")]
    NoActiveVersion(String),
}

/// Why a controller operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A pipeline or version that is not there.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The pipeline file does not compile (diagnostics with file, line, column).
    #[error("{0}")]
    Compile(String),
    /// A source reads a topic that does not exist.
    #[error("source `{source_name}` reads topic `{topic}`, which does not exist; create it with `kappa topic create {topic} --partitions N`")]
    MissingTopic {
        /// The source.
        source_name: String,
        /// Its topic.
        topic: String,
    },
    /// The operation is not allowed in the version's state.
    #[error("{0}")]
    InvalidState(String),
    /// The promotion gate refused: the diff is outside the budget.
    #[error("promotion refused: {0}")]
    GateRefused(String),
    /// Versions did not reach the same offsets in time for a comparison.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] kappa_log::LogError),
    /// Reading or writing the catalog failed.
    #[error("catalog {path}: {reason}")]
    Catalog {
        /// The catalog file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The dataflow engine failed.
    #[error(transparent)]
    Runtime(#[from] kappa_dataflow::error::RuntimeError),
}

impl ControllerError {
    /// Whether the failure is the log's being unreachable for now, so that trying
    /// the same operation later is right.
    pub fn is_transient(&self) -> bool {
        matches!(self, ControllerError::Log(error) if error.is_transient())
    }
}
