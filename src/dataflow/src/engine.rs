//! A long-running set of timely workers into which pipeline versions are installed
//! and from which they are dropped while it runs.
//!
//! Each version is its own dataflow in the same workers. Commands (deploy, retire,
//! hold, throttle, shutdown) are proposed by the controller on worker 0 and reach
//! every worker — in every process of a cluster — in the same order through
//! timely's [`Sequencer`], so all workers install the same dataflows in the same
//! order, as timely requires.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use kappa_log::Log;
use kappa_sql::plan::Plan;
use serde::{Deserialize, Serialize};
use timely::synchronization::Sequencer;
use timely::WorkerConfig;

use crate::error::RuntimeError;
use crate::install::{install, Installed};
use crate::introspect;
use crate::metrics::DataflowMetrics;
use crate::source::{now_ms, LiveRounds, SourceConfig, SourceControl};
use crate::store::ViewStore;

/// Identifies a pipeline version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VersionId {
    /// The pipeline's name.
    pub pipeline: String,
    /// Its version number.
    pub version: u64,
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.pipeline, self.version)
    }
}

/// What every worker does, in sequence.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Command {
    Deploy {
        id: VersionId,
        plan: Plan,
        source: SourceConfig,
        throttled: bool,
    },
    Retire {
        id: VersionId,
    },
    Hold {
        id: VersionId,
        offsets: Option<Vec<(String, u32, u64)>>,
    },
    Throttle {
        id: VersionId,
        throttled: bool,
    },
    Shutdown,
}

type Stores = Arc<Mutex<HashMap<VersionId, Arc<ViewStore>>>>;

/// Each version's live rounds, shared by its sources on this process's workers; an
/// entry lives as long as a worker's dataflow of that version does.
#[derive(Clone, Default)]
struct VersionRounds(Arc<Mutex<HashMap<VersionId, Weak<LiveRounds>>>>);

impl VersionRounds {
    /// The rounds of version `id`, made by the first worker to install it.
    fn of(&self, id: &VersionId) -> Arc<LiveRounds> {
        let mut versions = self.0.lock().expect("version rounds lock");
        versions.retain(|_, shared| shared.strong_count() > 0);
        if let Some(shared) = versions.get(id).and_then(Weak::upgrade) {
            return shared;
        }
        let shared = Arc::new(LiveRounds::default());
        versions.insert(id.clone(), Arc::downgrade(&shared));
        shared
    }
}

/// The running workers. Held by the controller in process 0; other processes of a
/// cluster run [`Engine::start`] too and follow the sequenced commands.
pub struct Engine {
    commands: Mutex<Sender<Command>>,
    stores: Stores,
    workers: Mutex<Option<timely::communication::WorkerGuards<Result<(), String>>>>,
    log: Arc<dyn Log>,
    metrics: OnceLock<Arc<DataflowMetrics>>,
}

impl Engine {
    /// Starts the workers (threads of this process, or this process's share of a cluster).
    pub fn start(
        communication: timely::CommunicationConfig,
        log: Arc<dyn Log>,
    ) -> Result<Engine, RuntimeError> {
        let (sender, receiver) = std::sync::mpsc::channel::<Command>();
        let receiver: Arc<Mutex<Option<Receiver<Command>>>> = Arc::new(Mutex::new(Some(receiver)));
        let stores: Stores = Arc::default();
        let worker_stores = stores.clone();
        let live_rounds = VersionRounds::default();
        let engine_log = log.clone();
        let config = timely::Config {
            communication,
            worker: WorkerConfig::default(),
        };
        let workers = timely::execute(config, move |worker| {
            // Worker 0 of process 0 is the one that proposes commands.
            let inbox = if worker.index() == 0 {
                receiver.lock().expect("inbox lock").take()
            } else {
                None
            };
            let observed = introspect::attach(worker);
            let mut sequencer: Sequencer<Command> = Sequencer::new(worker, Instant::now());
            let mut installed: BTreeMap<VersionId, Installed> = BTreeMap::new();
            loop {
                if let Some(inbox) = &inbox {
                    while let Ok(command) = inbox.try_recv() {
                        sequencer.push(command);
                    }
                }
                for command in sequencer.by_ref() {
                    match command {
                        Command::Deploy {
                            id,
                            plan,
                            source,
                            throttled,
                        } => {
                            let control = Rc::new(SourceControl::sharing(live_rounds.of(&id)));
                            control.set_throttled(throttled);
                            match install(worker, &plan, log.clone(), &source, control) {
                                Ok(version) => {
                                    let store = worker_stores
                                        .lock()
                                        .expect("stores lock")
                                        .get(&id)
                                        .cloned();
                                    if let Some(store) = store {
                                        introspect::observe(&observed, &version, store);
                                    }
                                    installed.insert(id, version);
                                }
                                Err(error) => {
                                    tracing::error!(%id, %error, "cannot install version");
                                }
                            }
                        }
                        Command::Retire { id } => {
                            if let Some(version) = installed.remove(&id) {
                                observed.borrow_mut().remove(&version.dataflow);
                                worker.drop_dataflow(version.dataflow);
                            }
                        }
                        Command::Hold { id, offsets } => {
                            if let Some(version) = installed.get(&id) {
                                version.control.set_hold(offsets.map(|o| {
                                    o.into_iter().map(|(t, p, off)| ((t, p), off)).collect()
                                }));
                            }
                        }
                        Command::Throttle { id, throttled } => {
                            if let Some(version) = installed.get(&id) {
                                version.control.set_throttled(throttled);
                            }
                        }
                        Command::Shutdown => {
                            // Following sources never complete, and timely keeps
                            // stepping a worker's dataflows after this closure
                            // returns: drop them first.
                            for version in installed.values() {
                                worker.drop_dataflow(version.dataflow);
                            }
                            return Ok(());
                        }
                    }
                }
                worker.step_or_park(Some(Duration::from_millis(10)));
                steer_replays(&installed);
                if inbox.is_some() {
                    let stores = worker_stores.lock().expect("stores lock").clone();
                    for (id, version) in &installed {
                        if let Some(store) = stores.get(id) {
                            version.apply_ready(store);
                        }
                    }
                }
            }
        })
        .map_err(RuntimeError::Workers)?;
        Ok(Engine {
            commands: Mutex::new(sender),
            stores,
            workers: Mutex::new(Some(workers)),
            log: engine_log,
            metrics: OnceLock::new(),
        })
    }

    /// Registers the metrics of the versions deployed from now on into `registry`
    /// (see [`crate::metrics`]); a retired version's series are removed.
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        let metrics = DataflowMetrics::register(registry, self.log.clone())?;
        let _ = self.metrics.set(metrics);
        Ok(())
    }

    fn send(&self, command: Command) {
        // The receiver lives as long as worker 0; a send after shutdown is moot.
        let _ = self.commands.lock().expect("command lock").send(command);
    }

    /// Installs `plan` as a new dataflow reading its sources from offset 0, and
    /// returns the store its views materialize into.
    pub fn deploy(
        &self,
        id: VersionId,
        plan: &Plan,
        source: SourceConfig,
        throttled: bool,
    ) -> Arc<ViewStore> {
        let store = Arc::new(ViewStore::for_plan(plan));
        self.stores
            .lock()
            .expect("stores lock")
            .insert(id.clone(), store.clone());
        if let Some(metrics) = self.metrics.get() {
            metrics.add_version(&id, plan, &store);
        }
        self.send(Command::Deploy {
            id,
            plan: plan.clone(),
            source,
            throttled,
        });
        store
    }

    /// Drops a version's dataflow and frees its state.
    pub fn retire(&self, id: &VersionId) {
        self.send(Command::Retire { id: id.clone() });
        self.stores.lock().expect("stores lock").remove(id);
        if let Some(metrics) = self.metrics.get() {
            metrics.remove_version(id);
        }
    }

    /// Makes a version's sources stop at `offsets` (exclusive), or lifts the hold.
    pub fn hold(&self, id: &VersionId, offsets: Option<BTreeMap<(String, u32), u64>>) {
        self.send(Command::Hold {
            id: id.clone(),
            offsets: offsets.map(|o| o.into_iter().map(|((t, p), off)| (t, p, off)).collect()),
        });
    }

    /// Throttles a version's reading (replay beside a live version) or lifts it.
    pub fn throttle(&self, id: &VersionId, throttled: bool) {
        self.send(Command::Throttle {
            id: id.clone(),
            throttled,
        });
    }

    /// Stops every worker and waits for them.
    pub fn shutdown(&self) -> Result<(), RuntimeError> {
        self.send(Command::Shutdown);
        self.join()
    }

    /// Waits for the workers to stop (after a shutdown, in any process).
    pub fn join(&self) -> Result<(), RuntimeError> {
        if let Some(workers) = self.workers.lock().expect("workers lock").take() {
            for result in workers.join() {
                result
                    .map_err(RuntimeError::Workers)?
                    .map_err(RuntimeError::Workers)?;
            }
        }
        Ok(())
    }
}

impl Drop for Engine {
    /// An engine dropped without [`Engine::shutdown`] — a caller returning early on
    /// an error — stops its workers instead of waiting for them forever (dropping
    /// the worker guards joins the threads).
    fn drop(&mut self) {
        let running = self
            .workers
            .get_mut()
            .is_ok_and(|workers| workers.is_some());
        if running {
            self.send(Command::Shutdown);
        }
    }
}

/// Tells every version's sources how far the live (unthrottled) versions on this
/// worker lag wall-clock time, so that replaying ones pace themselves (see
/// [`crate::pacer`]). Logical times are wall-clock milliseconds: a frontier's
/// distance from now is how stale the views are.
fn steer_replays(installed: &BTreeMap<VersionId, Installed>) {
    let now = now_ms();
    let live_lag = installed
        .values()
        .filter(|version| !version.control.is_throttled())
        .filter_map(Installed::frontier)
        .map(|frontier| now.saturating_sub(frontier))
        .max()
        .unwrap_or(0);
    for version in installed.values() {
        version.control.set_live_lag_ms(live_lag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(version: u64) -> VersionId {
        VersionId {
            pipeline: "p".into(),
            version,
        }
    }

    #[test]
    fn workers_installing_one_version_share_its_rounds_and_versions_do_not() {
        let rounds = VersionRounds::default();
        let first_worker = rounds.of(&id(1));
        let second_worker = rounds.of(&id(1));
        assert!(Arc::ptr_eq(&first_worker, &second_worker));
        let replaying = rounds.of(&id(2));
        assert!(!Arc::ptr_eq(&first_worker, &replaying));
        // Once every worker has dropped a version's dataflow, its entry goes.
        drop((first_worker, second_worker));
        let _third = rounds.of(&id(3));
        let versions = rounds.0.lock().unwrap();
        assert!(!versions.contains_key(&id(1)));
        assert!(versions.contains_key(&id(2)));
    }
}
