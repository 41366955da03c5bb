//! The data directory's writer lock: one writing process per directory.
//!
//! `<dir>/LOCK` is held with an exclusive `flock` for as long as the writer lives (the
//! kernel releases it when the process dies, so a crash never leaves a stale lock). The
//! file holds [`LockInfo`] as JSON — the pid, and the HTTP address a server records —
//! so that the error a second writer gets can name the holder.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::{LogError, Result};

/// What the writer records in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The writer's process id.
    pub pid: u32,
    /// The address the writer's HTTP server listens on, once it has one.
    #[serde(default)]
    pub http_addr: Option<String>,
}

const LOCK_FILE: &str = "LOCK";

/// The held lock; dropping it releases the lock.
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir`, or fails with [`LogError::Locked`].
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = read_lock_info(dir).ok().flatten().map(|info| info.pid);
                return Err(LogError::Locked {
                    dir: dir.to_path_buf(),
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LogError::io(format!("locking {}", path.display()), e));
            }
        }
        let lock = DirLock { file, path };
        lock.write_info(&LockInfo {
            pid: std::process::id(),
            http_addr: None,
        })?;
        Ok(lock)
    }

    /// Replaces the information in the lock file.
    pub(crate) fn write_info(&self, info: &LockInfo) -> Result<()> {
        let json = serde_json::to_vec(info).expect("LockInfo serializes");
        let ctx = || format!("writing {}", self.path.display());
        self.file.set_len(0).ctx(ctx)?;
        self.file.write_all_at(&json, 0).ctx(ctx)?;
        self.file.sync_data().ctx(ctx)
    }
}

/// Reads the lock file of `dir`: `None` if there is none or it is empty (no writer has
/// ever run, or one is starting). The information may be stale if no writer holds the
/// lock now.
pub fn read_lock_info(dir: &Path) -> Result<Option<LockInfo>> {
    let path = dir.join(LOCK_FILE);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.is_empty() => Ok(None),
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(format!("reading {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_naming_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path())
            .err()
            .expect("second lock must fail");
        let msg = err.to_string();
        assert!(matches!(err, LogError::Locked { pid: Some(p), .. } if p == std::process::id()));
        assert!(
            msg.contains("is locked by another kappa process (pid"),
            "{msg}"
        );
        first
            .write_info(&LockInfo {
                pid: 7,
                http_addr: Some("127.0.0.1:1".into()),
            })
            .unwrap();
        assert_eq!(
            read_lock_info(dir.path())
                .unwrap()
                .unwrap()
                .http_addr
                .as_deref(),
            Some("127.0.0.1:1")
        );
        drop(first);
        DirLock::acquire(dir.path()).expect("released on drop");
    }
}
