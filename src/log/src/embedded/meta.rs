//! Topic metadata on disk and the atomic-write helper that keeps it whole.
//!
//! `<dir>/topics/<topic>/topic.json` holds `{"version":1,"partitions":N}`; it is written
//! last when a topic is created (after the partition directories and their first
//! segments), by temp file + fsync + rename + directory fsync, so a topic either exists
//! completely or not at all.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::{LogError, Result};

/// The most partitions a topic may have.
pub(crate) const MAX_PARTITIONS: u32 = 10_000;
/// The metadata file inside a topic directory.
pub(crate) const META_FILE: &str = "topic.json";

/// What is stored about a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicMeta {
    /// Format version, 1.
    pub version: u32,
    /// Number of partitions.
    pub partitions: u32,
}

/// Checks a topic name (`[A-Za-z0-9._-]{1,200}`, not `.` or `..`) and partition count.
pub fn validate_topic(name: &str, partitions: u32) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty()
        || name.len() > 200
        || name == "."
        || name == ".."
        || !name.chars().all(ok_char)
    {
        return Err(LogError::InvalidTopicName(name.to_string()));
    }
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(LogError::InvalidPartitionCount(partitions));
    }
    Ok(())
}

/// Reads a topic's metadata; `None` if the topic directory has none (not a topic, or
/// one whose creation did not finish).
pub(crate) fn read_meta(topic_dir: &Path) -> Result<Option<TopicMeta>> {
    let path = topic_dir.join(META_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            LogError::io(
                format!("reading {}", path.display()),
                std::io::Error::other(e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(format!("reading {}", path.display()), e)),
    }
}

/// Writes a topic's metadata atomically.
pub(crate) fn write_meta(topic_dir: &Path, meta: &TopicMeta) -> Result<()> {
    let json = serde_json::to_vec_pretty(meta).expect("TopicMeta serializes");
    write_atomic(&topic_dir.join(META_FILE), &json)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content:
/// temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let ctx = || format!("writing {}", tmp.display());
    let mut file = File::create(&tmp).ctx(ctx)?;
    file.write_all(bytes).ctx(ctx)?;
    file.sync_all().ctx(ctx)?;
    std::fs::rename(&tmp, path).ctx(|| format!("renaming {} into place", tmp.display()))?;
    sync_dir(path.parent().expect("a file has a parent directory"))
}

/// Fsyncs a directory so that entries created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_counts_are_checked() {
        assert!(validate_topic("orders.v2_x-1", 3).is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(
                matches!(validate_topic(bad, 1), Err(LogError::InvalidTopicName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_topic("t", 0),
            Err(LogError::InvalidPartitionCount(0))
        ));
        assert!(validate_topic("t", MAX_PARTITIONS + 1).is_err());
    }

    #[test]
    fn meta_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_meta(dir.path()).unwrap(), None);
        let meta = TopicMeta {
            version: 1,
            partitions: 4,
        };
        write_meta(dir.path(), &meta).unwrap();
        assert_eq!(read_meta(dir.path()).unwrap(), Some(meta));
        assert!(!dir.path().join("topic.tmp").exists());
    }
}
