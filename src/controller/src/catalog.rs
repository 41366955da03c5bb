//! The durable catalog: pipelines, their versions (with the SQL they run), states,
//! transitions, and which version is active.
//!
//! It is one JSON file in the data directory, replaced atomically (write a
//! temporary file, fsync it, rename it over the old one, fsync the directory), so
//! a SIGKILL at any moment leaves either the old or the new catalog, never half of
//! one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use crate::states::VersionState;

/// One recorded state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The state left (`None` for the first).
    pub from: Option<VersionState>,
    /// The state entered.
    pub to: VersionState,
    /// Wall-clock milliseconds.
    pub at_ms: u64,
    /// Why.
    pub reason: String,
}

/// One deployed version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The version number.
    pub version: u64,
    /// The file it was deployed from.
    pub file: String,
    /// The pipeline SQL, so the version can be restarted without the file.
    pub sql: String,
    /// xxh3 of the SQL, hex.
    pub content_hash: String,
    /// Its current state.
    pub state: VersionState,
    /// Every state change, oldest first.
    pub transitions: Vec<Transition>,
}

/// One pipeline and its versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRecord {
    /// The active version, if any.
    pub active: Option<u64>,
    /// Versions by number.
    pub versions: BTreeMap<u64, VersionRecord>,
}

impl PipelineRecord {
    /// The number the next deployment gets.
    pub fn next_version(&self) -> u64 {
        self.versions.keys().next_back().map_or(1, |v| v + 1)
    }
}

/// Everything the controller must remember across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Pipelines by name.
    pub pipelines: BTreeMap<String, PipelineRecord>,
}

/// Where the catalog lives in a data directory.
pub fn catalog_path(data_dir: &Path) -> PathBuf {
    data_dir.join("catalog.json")
}

impl Catalog {
    /// Loads the catalog, or an empty one if the file does not exist.
    pub fn load(path: &Path) -> Result<Catalog, ControllerError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| catalog_error(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(catalog_error(path, e)),
        }
    }

    /// Replaces the file atomically with this catalog.
    pub fn save(&self, path: &Path) -> Result<(), ControllerError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| catalog_error(path, e))?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            // With a remote log (Fluvio) nothing else creates the data directory.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| catalog_error(path, e))
    }
}

fn catalog_error(path: &Path, e: impl std::fmt::Display) -> ControllerError {
    ControllerError::Catalog {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(dir.path());
        assert_eq!(Catalog::load(&path).unwrap(), Catalog::default());
        let mut catalog = Catalog::default();
        catalog.pipelines.insert(
            "p".into(),
            PipelineRecord {
                active: Some(1),
                versions: BTreeMap::from([(
                    1,
                    VersionRecord {
                        version: 1,
                        file: "p.sql".into(),
                        sql: "CREATE ...".into(),
                        content_hash: "00".into(),
                        state: VersionState::Active,
                        transitions: vec![],
                    },
                )]),
            },
        );
        catalog.save(&path).unwrap();
        assert_eq!(Catalog::load(&path).unwrap(), catalog);
        assert!(!path.with_extension("json.tmp").exists());
        assert_eq!(catalog.pipelines["p"].next_version(), 2);
    }

    #[test]
    fn saving_creates_a_missing_data_directory() {
        // With a Fluvio log the data directory holds only the catalog.
        let dir = tempfile::tempdir().unwrap();
        let path = catalog_path(&dir.path().join("not-yet"));
        Catalog::default().save(&path).unwrap();
        assert_eq!(Catalog::load(&path).unwrap(), Catalog::default());
    }
}
