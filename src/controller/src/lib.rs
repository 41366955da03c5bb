//! kappa's version controller: reprocessing as a first-class workflow.
//!
//! Deploying a pipeline file creates a new version: a fresh dataflow in the running
//! [`kappa_dataflow::Engine`] that replays the log from offset 0 while the active
//! version keeps serving. Once caught up it can be promoted — atomically for
//! queries ([`registry`]) and for the changelog topics ([`changelog`]) — after an
//! optional comparison with the active version at the same log offsets ([`diff`]);
//! the previous version can be rolled back to until it is retired. Versions move
//! through an explicit state machine ([`states`]) recorded in a durable
//! [`catalog`] that survives SIGKILL.

pub mod catalog;
pub mod changelog;
pub mod controller;
pub mod diff;
pub mod error;
pub mod metrics;
pub mod registry;
pub mod states;

pub use controller::{Controller, ControllerConfig, ControllerCounters, Gate, PromoteReport};
pub use error::{ControllerError, LookupError};
pub use registry::{Registry, Version};
pub use states::VersionState;
