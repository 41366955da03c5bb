//! Which pipeline versions are running and which one answers queries.
//!
//! The registry is the read side of the controller: each pipeline has its
//! running versions and at most one active one. Switching the active version
//! is one assignment under a lock, so a query resolves either the old or the new
//! version, whole, never a mix.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use kappa_dataflow::ViewStore;
use kappa_sql::plan::Plan;

use crate::error::ApiError;

/// One running version of a pipeline, as readers see it.
#[derive(Debug)]
pub struct Version {
    /// Version number (1, 2, ...).
    pub number: u64,
    /// Its plan.
    pub plan: Arc<Plan>,
    /// Its materialized views.
    pub store: Arc<ViewStore>,
}

#[derive(Debug, Default)]
struct Slot {
    active: Option<u64>,
    versions: BTreeMap<u64, Arc<Version>>,
}

/// Running pipelines and their versions.
#[derive(Debug, Default)]
pub struct Registry {
    pipelines: RwLock<BTreeMap<String, Slot>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a running version; it becomes active if the pipeline has none.
    pub fn insert(&self, pipeline: &str, version: Arc<Version>) {
        let mut pipelines = self.pipelines.write().expect("registry lock poisoned");
        let slot = pipelines.entry(pipeline.to_string()).or_default();
        slot.active.get_or_insert(version.number);
        slot.versions.insert(version.number, version);
    }

    /// Makes `number` the active version of `pipeline`.
    pub fn activate(&self, pipeline: &str, number: u64) -> Result<(), ApiError> {
        let mut pipelines = self.pipelines.write().expect("registry lock poisoned");
        let slot = pipelines
            .get_mut(pipeline)
            .ok_or_else(|| unknown_pipeline(pipeline))?;
        if !slot.versions.contains_key(&number) {
            return Err(unknown_version(pipeline, number));
        }
        slot.active = Some(number);
        Ok(())
    }

    /// Removes a version (it is no longer queryable).
    pub fn remove(&self, pipeline: &str, number: u64) -> Option<Arc<Version>> {
        let mut pipelines = self.pipelines.write().expect("registry lock poisoned");
        let slot = pipelines.get_mut(pipeline)?;
        if slot.active == Some(number) {
            slot.active = None;
        }
        slot.versions.remove(&number)
    }

    /// The version answering a query: `number`, or the active one.
    pub fn resolve(&self, pipeline: &str, number: Option<u64>) -> Result<Arc<Version>, ApiError> {
        let pipelines = self.pipelines.read().expect("registry lock poisoned");
        let slot = pipelines
            .get(pipeline)
            .ok_or_else(|| unknown_pipeline(pipeline))?;
        let number = match number.or(slot.active) {
            Some(n) => n,
            None => {
                return Err(ApiError::not_found(
                    "no_active_version",
                    format!("pipeline `{pipeline}` has no active version"),
                ))
            }
        };
        slot.versions
            .get(&number)
            .cloned()
            .ok_or_else(|| unknown_version(pipeline, number))
    }

    /// Every pipeline with its active version and running version numbers.
    pub fn list(&self) -> Vec<(String, Option<u64>, Vec<Arc<Version>>)> {
        let pipelines = self.pipelines.read().expect("registry lock poisoned");
        pipelines
            .iter()
            .map(|(name, slot)| {
                (
                    name.clone(),
                    slot.active,
                    slot.versions.values().cloned().collect(),
                )
            })
            .collect()
    }
}

fn unknown_pipeline(pipeline: &str) -> ApiError {
    ApiError::not_found(
        "unknown_pipeline",
        format!("no pipeline named `{pipeline}`"),
    )
}

fn unknown_version(pipeline: &str, number: u64) -> ApiError {
    ApiError::not_found(
        "unknown_version",
        format!("pipeline `{pipeline}` has no running version {number}"),
    )
}
