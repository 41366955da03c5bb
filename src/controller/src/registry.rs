//! Which pipeline versions are running and which one answers queries.
//!
//! The registry is the read side of the controller: each pipeline has its
//! running versions and at most one active one. Switching the active version
//! is one assignment under a lock, so a query resolves either the old or the new
//! version, whole, never a mix.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use std::sync::atomic::{AtomicBool, Ordering};

use kappa_dataflow::ViewStore;
use kappa_sql::plan::Plan;

use crate::error::LookupError;

/// One running version of a pipeline, as readers see it.
#[derive(Debug)]
pub struct Version {
    /// Version number (1, 2, ...).
    pub number: u64,
    /// Its plan.
    pub plan: Arc<Plan>,
    /// Its materialized views.
    pub store: Arc<ViewStore>,
    /// Whether its views reflect the log up to a recent instant (not replaying).
    caught_up: AtomicBool,
}

impl Version {
    /// A version that is still replaying.
    pub fn new(number: u64, plan: Arc<Plan>, store: Arc<ViewStore>) -> Self {
        Version {
            number,
            plan,
            store,
            caught_up: AtomicBool::new(false),
        }
    }

    /// Whether its views reflect the log up to a recent instant.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Records whether it is caught up.
    pub fn set_caught_up(&self, caught_up: bool) {
        self.caught_up.store(caught_up, Ordering::Release);
    }
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

    /// Adds a running version (not active until [`Registry::activate`]).
    pub fn insert(&self, pipeline: &str, version: Arc<Version>) {
        let mut pipelines = self.pipelines.write().expect("registry lock poisoned");
        let slot = pipelines.entry(pipeline.to_string()).or_default();
        slot.versions.insert(version.number, version);
    }

    /// The active version number of a pipeline.
    pub fn active(&self, pipeline: &str) -> Option<u64> {
        let pipelines = self.pipelines.read().expect("registry lock poisoned");
        pipelines.get(pipeline).and_then(|s| s.active)
    }

    /// Makes `number` the active version of `pipeline`.
    pub fn activate(&self, pipeline: &str, number: u64) -> Result<(), LookupError> {
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
    pub fn resolve(
        &self,
        pipeline: &str,
        number: Option<u64>,
    ) -> Result<Arc<Version>, LookupError> {
        let pipelines = self.pipelines.read().expect("registry lock poisoned");
        let slot = pipelines
            .get(pipeline)
            .ok_or_else(|| unknown_pipeline(pipeline))?;
        let number = match number.or(slot.active) {
            Some(n) => n,
            None => return Err(LookupError::NoActiveVersion(pipeline.to_string())),
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

fn unknown_pipeline(pipeline: &str) -> LookupError {
    LookupError::UnknownPipeline(pipeline.to_string())
}

fn unknown_version(pipeline: &str, number: u64) -> LookupError {
    LookupError::UnknownVersion(pipeline.to_string(), number)
}
