//! The log's typed errors.

use std::path::PathBuf;

/// A `Result` whose error is [`LogError`].
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Everything that can go wrong in a [`crate::Log`].
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The topic does not exist.
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    /// [`crate::Log::create_topic`] on an existing topic.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// The topic name is empty, too long or has characters other than `[A-Za-z0-9._-]`.
    #[error("invalid topic name '{0}': use 1 to 200 of A-Z a-z 0-9 . _ - (not '.' or '..')")]
    InvalidTopicName(String),
    /// A topic must have between 1 and 10,000 partitions.
    #[error("invalid partition count {0}: must be between 1 and 10000")]
    InvalidPartitionCount(u32),
    /// The partition does not exist in the topic.
    #[error("topic '{topic}' has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// A read below the partition's start offset or beyond its end offset.
    #[error("offset {offset} is out of range for {topic}/{partition} (readable: {start}..{end})")]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// The partition's start offset.
        start: u64,
        /// The partition's end offset.
        end: u64,
    },
    /// A single record is larger than the configured maximum frame size.
    #[error("record of {size} bytes exceeds the maximum frame size of {max} bytes")]
    RecordTooLarge {
        /// The encoded size of the record.
        size: usize,
        /// The configured maximum.
        max: u32,
    },
    /// Another process holds the data directory's writer lock.
    #[error("data directory {} is locked by another kappa process{}", dir.display(), pid_suffix(*pid))]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The pid recorded in the lock file, if readable.
        pid: Option<u32>,
    },
    /// A log opened with [`crate::EmbeddedLog::open_read_only`] was asked to write.
    #[error("the log was opened read-only")]
    ReadOnly,
    /// Data on disk is corrupt where it cannot be a torn write (in the middle of a
    /// segment, or in a sealed segment).
    #[error("corrupt log data in {} at byte {position} (offset {offset}): {reason}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte position of the bad frame within the file.
        position: u64,
        /// The offset the bad frame should start at.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or fsync on this partition failed, so what is on disk is unknown
    /// until the log is reopened (and recovered).
    #[error(
        "partition {topic}/{partition} is unusable after an earlier I/O failure; reopen the log"
    )]
    Poisoned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// The log's cluster (a remote backend such as Fluvio) cannot be reached or did not
    /// answer in time. Transient: retrying later is right.
    #[error("log cluster at {endpoint} is unreachable: {reason}")]
    Unreachable {
        /// The address that was tried.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// The partition has no leader able to serve it now (offline, or electing one).
    /// Transient: retrying later is right.
    #[error("partition {topic}/{partition} is offline: {reason}")]
    PartitionOffline {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// What the cluster said.
        reason: String,
    },
    /// A remote backend refused or failed a request for a reason of its own.
    #[error("{backend}: {context}: {reason}")]
    Backend {
        /// The backend, e.g. `fluvio`.
        backend: &'static str,
        /// What was being done.
        context: String,
        /// What the backend said.
        reason: String,
        /// Whether records handed to a failed append may nevertheless have been stored.
        may_have_been_written: bool,
    },
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. the file involved.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
        /// Whether data handed to the failed operation may nevertheless be on disk (for
        /// example a failed fsync after a successful write).
        may_have_been_written: bool,
    },
}

impl LogError {
    /// Whether an append that returned this error may still have reached the disk and
    /// reappear after a restart ("may have failed") as opposed to definitely failed.
    pub fn may_have_been_written(&self) -> bool {
        matches!(
            self,
            LogError::Io {
                may_have_been_written: true,
                ..
            } | LogError::Backend {
                may_have_been_written: true,
                ..
            }
        )
    }

    /// Whether the error is transient (an unreachable cluster, an offline partition), so
    /// that retrying the same call later is right.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LogError::Unreachable { .. } | LogError::PartitionOffline { .. }
        )
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LogError::Io {
            context: context.into(),
            source,
            may_have_been_written: false,
        }
    }
}

fn pid_suffix(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    }
}

/// Attaches context to I/O errors.
pub(crate) trait IoContext<T> {
    /// Wraps an I/O error in [`LogError::Io`] with a lazily built context.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| LogError::io(context(), e))
    }
}
