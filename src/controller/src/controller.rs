//! The controller: deploys pipeline versions into the running engine, watches them
//! replay and catch up, promotes, rolls back and retires them, keeps the catalog
//! durable and the changelog topics correct.
//!
//! Admin operations are serialized by one lock; a background thread calls
//! [`Controller::tick`] to detect caught-up versions, pump applied changes into
//! changelog topics, and estimate replay progress.
//!
//! Promotion and rollback live in [`promotion`], readiness and status in
//! [`status`]; this module starts, observes and retires versions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kappa_dataflow::engine::{Engine, VersionId};
use kappa_dataflow::source::{now_ms, SourceConfig};
use kappa_dataflow::store::{ChangeBatch, ViewStore};
use kappa_log::Log;
use kappa_sql::plan::Plan;
use serde::Serialize;

use crate::catalog::{catalog_path, Catalog, Transition, VersionRecord};
use crate::changelog::{change_key, view_state, Change, TopicSink};
use crate::error::{ControllerError, LookupError};
use crate::registry::{Registry, Version};
use crate::states::VersionState;

mod promotion;
mod status;

pub use promotion::{Gate, PromoteReport};

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Records a partition may be behind the recently observed log end and still count
    /// as caught up.
    pub lag_bound: u64,
    /// Promote a version as soon as it has caught up.
    pub auto_promote: bool,
    /// Draining versions kept for rollback; older ones are retired.
    pub retain_draining: usize,
    /// How sources read.
    pub source: SourceConfig,
    /// Longest wait for two versions to reach the same offsets (promotion, diff).
    pub hold_timeout: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            lag_bound: 0,
            auto_promote: false,
            retain_draining: 2,
            source: SourceConfig::default(),
            hold_timeout: Duration::from_secs(30),
        }
    }
}

/// A running version as the controller tracks it.
struct Running {
    plan: Arc<Plan>,
    store: Arc<ViewStore>,
    version: Arc<Version>,
    changes: Receiver<Arc<ChangeBatch>>,
    /// Per-version changelog topics `<p>.<view>.v<N>`, by view position.
    sinks: Vec<TopicSink>,
    /// Batches up to this `seq` are already in the sinks' topics.
    sinks_seq: Option<u64>,
    /// Log ends seen at the previous tick, by `(topic, partition)`.
    previous_ends: BTreeMap<(String, u32), u64>,
    /// Records read at the previous tick and when, for the replay rate.
    previous_read: Option<(Instant, u64)>,
    /// Records per second, smoothed.
    rate: f64,
}

/// The pipeline's changelog topics `<p>.<view>`, following the active version.
#[derive(Default)]
struct MainSinks {
    /// Which version they follow, and the `seq` up to which its batches are in.
    followed: Option<(u64, u64)>,
    /// By view name.
    sinks: BTreeMap<String, TopicSink>,
}

/// A version that could not be started because its log was unreachable (after a
/// restart, say, with the Fluvio cluster down): it keeps its state and is retried
/// with backoff on every tick, instead of being marked failed.
struct Waiting {
    plan: Arc<Plan>,
    /// The last failure.
    error: String,
    /// Attempts that failed in a row.
    failures: u32,
    retry_at: Instant,
    /// When the first attempt failed (ms since the epoch).
    since_ms: u64,
}

/// The per-version changelog topic of a view: `<pipeline>.<view>.v<N>`.
fn changelog_topic(id: &VersionId, view: &str) -> String {
    format!("{}.{}.v{}", id.pipeline, view, id.version)
}

/// How long to wait before starting a waiting version again after `failures`
/// failed attempts: 1 s, doubling, at most 30 s.
fn start_backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

#[derive(Default)]
struct Inner {
    catalog: Catalog,
    running: BTreeMap<VersionId, Running>,
    waiting: BTreeMap<VersionId, Waiting>,
    main: BTreeMap<String, MainSinks>,
}

/// Counters of one pipeline, read by the metrics layer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ControllerCounters {
    /// Promotions done.
    pub promotions: u64,
    /// Rollbacks done.
    pub rollbacks: u64,
    /// Promotions the gate refused.
    pub gate_refusals: u64,
    /// Rows in the last promotion's diff.
    pub last_diff_rows: u64,
}

/// Deploys, promotes, rolls back and retires pipeline versions.
pub struct Controller {
    log: Arc<dyn Log>,
    engine: Arc<Engine>,
    registry: Arc<Registry>,
    catalog_file: PathBuf,
    config: ControllerConfig,
    inner: Mutex<Inner>,
    admin: Mutex<()>,
    counters: Mutex<BTreeMap<String, ControllerCounters>>,
}

fn transition(record: &mut VersionRecord, to: VersionState, reason: &str) {
    tracing::info!(version = record.version, from = %record.state, %to, reason, "version state change");
    record.transitions.push(Transition {
        from: Some(record.state),
        to,
        at_ms: now_ms(),
        reason: reason.to_string(),
    });
    record.state = to;
}

fn column_names(plan: &Plan, view: usize) -> Vec<String> {
    plan.view_columns(&plan.views[view])
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

impl Controller {
    /// Opens the controller over a data directory: loads the catalog and restarts
    /// every version that was running (each replays from offset 0; an active version
    /// stays active and serves again once caught up).
    pub fn open(
        data_dir: PathBuf,
        log: Arc<dyn Log>,
        engine: Arc<Engine>,
        registry: Arc<Registry>,
        config: ControllerConfig,
    ) -> Result<Arc<Controller>, ControllerError> {
        let catalog_file = catalog_path(&data_dir);
        let catalog = Catalog::load(&catalog_file)?;
        let controller = Arc::new(Controller {
            log,
            engine,
            registry,
            catalog_file,
            config,
            inner: Mutex::new(Inner {
                catalog,
                ..Inner::default()
            }),
            admin: Mutex::new(()),
            counters: Mutex::new(BTreeMap::new()),
        });
        controller.restore()?;
        Ok(controller)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("controller lock poisoned")
    }

    fn save(&self, inner: &Inner) -> Result<(), ControllerError> {
        inner.catalog.save(&self.catalog_file)
    }

    fn restore(&self) -> Result<(), ControllerError> {
        let mut inner = self.lock();
        let pipelines: Vec<(String, Option<u64>, Vec<VersionRecord>)> = inner
            .catalog
            .pipelines
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    p.active,
                    p.versions.values().cloned().collect(),
                )
            })
            .collect();
        for (pipeline, active, versions) in pipelines {
            for record in versions.into_iter().filter(|r| r.state.is_running()) {
                let id = VersionId {
                    pipeline: pipeline.clone(),
                    version: record.version,
                };
                let plan = match kappa_sql::compile_str(&record.file, &record.sql) {
                    Ok(plan) => Arc::new(plan),
                    Err(diagnostic) => {
                        let entry = Self::record_mut(&mut inner, &id)?;
                        let reason = format!("restart failed: {diagnostic}");
                        transition(entry, VersionState::Failed, &reason);
                        continue;
                    }
                };
                let throttled = active != Some(id.version);
                self.start_restored(&mut inner, &id, plan, throttled, None)?;
            }
            if let Some(active) = active {
                let _ = self.registry.activate(&pipeline, active);
            }
        }
        self.save(&inner)
    }

    fn check_topics(&self, plan: &Plan) -> Result<(), ControllerError> {
        for source in &plan.sources {
            match self.log.partition_count(&source.topic) {
                Ok(_) => {}
                Err(error) if error.is_transient() => return Err(error.into()),
                Err(_) => {
                    return Err(ControllerError::MissingTopic {
                        source_name: source.name.clone(),
                        topic: source.topic.clone(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Starts a version found running in the catalog (at a restart, or a retry of one
    /// whose log was unreachable). A transient log error leaves it waiting for
    /// the next attempt; any other error fails it.
    fn start_restored(
        &self,
        inner: &mut Inner,
        id: &VersionId,
        plan: Arc<Plan>,
        throttled: bool,
        earlier: Option<Waiting>,
    ) -> Result<(), ControllerError> {
        let started = self
            .check_topics(&plan)
            .and_then(|()| self.start_version(inner, id, plan.clone(), throttled));
        let entry = Self::record_mut(inner, id)?;
        match started {
            Ok(()) => {
                if entry.state == VersionState::CaughtUp {
                    transition(
                        entry,
                        VersionState::Replaying,
                        "restarted: rebuilding state",
                    );
                }
                if let Some(earlier) = earlier {
                    tracing::info!(%id, failures = earlier.failures, "version started: its log is reachable again");
                }
            }
            Err(error) if error.is_transient() => {
                let failures = earlier.as_ref().map_or(0, |w| w.failures) + 1;
                if failures == 1 {
                    tracing::warn!(%id, %error, "cannot start version: log unreachable; retrying with backoff");
                }
                inner.waiting.insert(
                    id.clone(),
                    Waiting {
                        plan,
                        error: error.to_string(),
                        failures,
                        retry_at: Instant::now() + start_backoff(failures),
                        since_ms: earlier
                            .map_or_else(kappa_dataflow::source::now_ms, |w| w.since_ms),
                    },
                );
            }
            Err(error) => transition(
                entry,
                VersionState::Failed,
                &format!("restart failed: {error}"),
            ),
        }
        Ok(())
    }

    /// Tries again to start the versions waiting for their log, when due. Whether the
    /// log answers is first asked without the controller's lock: while it does not,
    /// each call may take the log's request timeout, and status, metrics and the API
    /// must not wait for that.
    fn retry_waiting(&self) -> Result<(), ControllerError> {
        let now = Instant::now();
        let due: Vec<(VersionId, Arc<Plan>)> = self
            .lock()
            .waiting
            .iter()
            .filter(|(_, w)| w.retry_at <= now)
            .map(|(id, w)| (id.clone(), w.plan.clone()))
            .collect();
        for (id, plan) in due {
            let answered = self.probe_log(&id, &plan);
            let mut inner = self.lock();
            // Retired meanwhile: nothing to start.
            let Some(mut waiting) = inner.waiting.remove(&id) else {
                continue;
            };
            if let Err(error) = answered {
                waiting.failures += 1;
                waiting.error = error.to_string();
                waiting.retry_at = Instant::now() + start_backoff(waiting.failures);
                inner.waiting.insert(id, waiting);
                continue;
            }
            let active = inner.catalog.pipelines[&id.pipeline].active;
            let throttled = active != Some(id.version);
            self.start_restored(&mut inner, &id, plan, throttled, Some(waiting))?;
            if inner.running.contains_key(&id) {
                if active == Some(id.version) {
                    let _ = self.registry.activate(&id.pipeline, id.version);
                }
                self.save(&inner)?;
            }
        }
        Ok(())
    }

    /// Whether the log answers for what starting `id` reads: its sources' partitions
    /// and its changelog topics. Only a transient error (unreachable, offline) is an
    /// error here; anything else is left for the start itself to report.
    fn probe_log(&self, id: &VersionId, plan: &Plan) -> Result<(), kappa_log::LogError> {
        let transient = |result: Result<u64, kappa_log::LogError>| match result {
            Err(error) if error.is_transient() => Err(error),
            _ => Ok(()),
        };
        for source in &plan.sources {
            let partitions = match self.log.partition_count(&source.topic) {
                Err(error) if error.is_transient() => return Err(error),
                other => other.unwrap_or(0),
            };
            for partition in 0..partitions {
                transient(self.log.end_offset(&source.topic, partition))?;
            }
        }
        for view in &plan.views {
            transient(self.log.end_offset(&changelog_topic(id, &view.name), 0))?;
        }
        Ok(())
    }

    /// Installs a version's dataflow and registers it for queries and changelogs.
    fn start_version(
        &self,
        inner: &mut Inner,
        id: &VersionId,
        plan: Arc<Plan>,
        throttled: bool,
    ) -> Result<(), ControllerError> {
        let mut sinks = Vec::new();
        for (i, view) in plan.views.iter().enumerate() {
            let topic = changelog_topic(id, &view.name);
            sinks.push(TopicSink::open(
                self.log.as_ref(),
                topic,
                column_names(&plan, i),
            )?);
        }
        // Fresh topics follow the version from its first batch; topics left by an
        // earlier run of the same version are reconciled once it has caught up.
        let sinks_seq = sinks.iter().all(TopicSink::is_empty).then_some(0);
        let store = self
            .engine
            .deploy(id.clone(), &plan, self.config.source.clone(), throttled);
        let (sender, changes) = std::sync::mpsc::channel();
        store.set_changelog(sender);
        let version = Arc::new(Version::new(id.version, plan.clone(), store.clone()));
        self.registry.insert(&id.pipeline, version.clone());
        inner.running.insert(
            id.clone(),
            Running {
                plan,
                store,
                version,
                changes,
                sinks,
                sinks_seq,
                previous_ends: BTreeMap::new(),
                previous_read: None,
                rate: 0.0,
            },
        );
        Ok(())
    }

    /// Deploys a pipeline file as a new version that replays the log from offset 0.
    /// Deploying the same content as a running version returns that version.
    pub fn deploy(&self, file: &str, sql: &str) -> Result<VersionId, ControllerError> {
        let _admin = self.admin.lock().expect("admin lock");
        let plan = kappa_sql::compile_str(file, sql)
            .map_err(|d| ControllerError::Compile(d.to_string()))?;
        self.check_topics(&plan)?;
        let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(sql.as_bytes()));
        let mut inner = self.lock();
        let record = inner
            .catalog
            .pipelines
            .entry(plan.name.clone())
            .or_default();
        if let Some(existing) = record
            .versions
            .values()
            .find(|v| v.content_hash == hash && v.state.is_running())
        {
            return Ok(VersionId {
                pipeline: plan.name.clone(),
                version: existing.version,
            });
        }
        let id = VersionId {
            pipeline: plan.name.clone(),
            version: record.next_version(),
        };
        let throttled = record.active.is_some();
        record.versions.insert(
            id.version,
            VersionRecord {
                version: id.version,
                file: file.to_string(),
                sql: sql.to_string(),
                content_hash: hash,
                state: VersionState::Replaying,
                transitions: vec![Transition {
                    from: None,
                    to: VersionState::Replaying,
                    at_ms: now_ms(),
                    reason: format!("deployed from {file}"),
                }],
            },
        );
        self.save(&inner)?;
        self.start_version(&mut inner, &id, Arc::new(plan), throttled)?;
        tracing::info!(%id, "deployed; replaying from offset 0");
        Ok(id)
    }

    fn record_mut<'a>(
        inner: &'a mut Inner,
        id: &VersionId,
    ) -> Result<&'a mut VersionRecord, LookupError> {
        inner
            .catalog
            .pipelines
            .get_mut(&id.pipeline)
            .ok_or_else(|| LookupError::UnknownPipeline(id.pipeline.clone()))?
            .versions
            .get_mut(&id.version)
            .ok_or_else(|| LookupError::UnknownVersion(id.pipeline.clone(), id.version))
    }

    /// One round of bookkeeping: catch-up detection, changelog pumping, progress.
    pub fn tick(&self) -> Result<(), ControllerError> {
        self.retry_waiting()?;
        let mut promote = Vec::new();
        {
            let mut inner = self.lock();
            let ids: Vec<VersionId> = inner.running.keys().cloned().collect();
            for id in ids {
                let caught_up_now = match self.observe(&mut inner, &id) {
                    Ok(caught_up) => caught_up,
                    // Its status lists the partitions it cannot read; other versions
                    // are still observed.
                    Err(ControllerError::Log(error)) if error.is_transient() => {
                        tracing::debug!(%id, %error, "cannot observe the log ends of a version");
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                self.pump(&mut inner, &id)?;
                if !caught_up_now {
                    continue;
                }
                let record = Self::record_mut(&mut inner, &id)?;
                if record.state == VersionState::Replaying {
                    transition(
                        record,
                        VersionState::CaughtUp,
                        "frontier reached the log end",
                    );
                    self.engine.throttle(&id, false);
                    self.save(&inner)?;
                }
                let active = inner.catalog.pipelines[&id.pipeline].active;
                let state = inner.catalog.pipelines[&id.pipeline].versions[&id.version].state;
                if state == VersionState::CaughtUp && (active.is_none() || self.config.auto_promote)
                {
                    promote.push(id.clone());
                }
            }
        }
        for id in promote {
            if let Err(error) = self.promote(&id.pipeline, id.version, &Gate::default()) {
                tracing::warn!(%id, %error, "automatic promotion failed");
            }
        }
        Ok(())
    }

    /// Updates a version's progress; returns true when it has just become ready.
    fn observe(&self, inner: &mut Inner, id: &VersionId) -> Result<bool, ControllerError> {
        let running = inner
            .running
            .get_mut(id)
            .expect("observing a running version");
        let mut ends = BTreeMap::new();
        for source in &running.plan.sources {
            for partition in 0..self.log.partition_count(&source.topic)? {
                ends.insert(
                    (source.topic.clone(), partition),
                    self.log.end_offset(&source.topic, partition)?,
                );
            }
        }
        let (reached, read) = running.store.read(|s| {
            let reached = running.previous_ends.iter().all(|(key, end)| {
                let offset = s.offsets.get(key).map_or(0, |p| p.next_offset);
                offset + self.config.lag_bound >= *end
            });
            (reached, s.offsets.values().map(|p| p.records).sum::<u64>())
        });
        let now = Instant::now();
        if let Some((then, before)) = running.previous_read {
            let seconds = now.duration_since(then).as_secs_f64();
            if seconds > 0.0 {
                let instant_rate = (read - before) as f64 / seconds;
                running.rate = 0.7 * running.rate + 0.3 * instant_rate;
            }
        }
        running.previous_read = Some((now, read));
        let first_observation = running.previous_ends.is_empty() && !ends.is_empty();
        running.previous_ends = ends;
        if first_observation || !reached || running.version.is_caught_up() {
            return Ok(false);
        }
        running.version.set_caught_up(true);
        // Version topics left by an earlier run catch up to the rebuilt state now.
        if running.sinks_seq.is_none() {
            let (states, seq, frontier) = running.store.read(|s| {
                let states: Vec<_> = running
                    .sinks
                    .iter()
                    .zip(&s.views)
                    .map(|(sink, view)| view_state(sink.columns(), view))
                    .collect();
                (states, s.seq, s.frontier)
            });
            for (sink, state) in running.sinks.iter_mut().zip(&states) {
                sink.reconcile(self.log.as_ref(), state, frontier, id.version)?;
            }
            running.sinks_seq = Some(seq);
        }
        // An active version rebuilt after a restart takes its changelog topics back.
        let active = inner
            .catalog
            .pipelines
            .get(&id.pipeline)
            .and_then(|p| p.active);
        let followed = inner.main.get(&id.pipeline).and_then(|m| m.followed);
        if active == Some(id.version) && followed.is_none() {
            self.cut_over(inner, id)?;
        }
        Ok(true)
    }

    /// Appends a version's newly applied batches to its changelog topics, and to the
    /// pipeline's topics when it is the version they follow.
    fn pump(&self, inner: &mut Inner, id: &VersionId) -> Result<(), ControllerError> {
        let running = inner
            .running
            .get_mut(id)
            .expect("pumping a running version");
        let batches: Vec<Arc<ChangeBatch>> = running.changes.try_iter().collect();
        if batches.is_empty() {
            return Ok(());
        }
        let main = inner.main.entry(id.pipeline.clone()).or_default();
        let views = running.plan.views.len();
        // Gather every pending batch first, so each topic gets one append (one fsync).
        let mut own: Vec<Vec<Change>> = vec![Vec::new(); views];
        let mut followed: Vec<Vec<Change>> = vec![Vec::new(); views];
        let following = main.followed.filter(|(version, _)| *version == id.version);
        for batch in &batches {
            let to_own = running.sinks_seq.is_some_and(|seq| batch.seq > seq);
            let to_main = following.is_some_and(|(_, seq)| batch.seq > seq);
            for (view, row, diff) in batch.changes() {
                let change = Change {
                    row: change_key(running.sinks[view].columns(), &row),
                    diff,
                    time: batch.frontier,
                };
                if to_main {
                    followed[view].push(change.clone());
                }
                if to_own {
                    own[view].push(change);
                }
            }
        }
        let last = batches.last().expect("at least one batch").seq;
        if running.sinks_seq.is_some() {
            for (sink, changes) in running.sinks.iter_mut().zip(own) {
                sink.append(self.log.as_ref(), changes, id.version)?;
            }
            running.sinks_seq = Some(last);
        }
        if following.is_some() {
            for (def, changes) in running.plan.views.iter().zip(followed) {
                if let Some(sink) = main.sinks.get_mut(&def.name) {
                    sink.append(self.log.as_ref(), changes, id.version)?;
                }
            }
            main.followed = Some((id.version, last));
        }
        Ok(())
    }

    /// Drops a version's dataflow and frees its memory. The active version cannot be retired.
    pub fn retire(&self, pipeline: &str, version: u64) -> Result<(), ControllerError> {
        let _admin = self.admin.lock().expect("admin lock");
        self.retire_locked(
            &VersionId {
                pipeline: pipeline.into(),
                version,
            },
            "retired on request",
        )
    }

    fn retire_locked(&self, id: &VersionId, reason: &str) -> Result<(), ControllerError> {
        let mut inner = self.lock();
        let record = Self::record_mut(&mut inner, id)?;
        if !record.state.can_become(VersionState::Retired) {
            return Err(ControllerError::InvalidState(format!(
                "{id} is {}; only a replaying, caught-up or draining version can be retired",
                record.state
            )));
        }
        transition(record, VersionState::Retired, reason);
        self.save(&inner)?;
        inner.running.remove(id);
        inner.waiting.remove(id);
        self.engine.retire(id);
        self.registry.remove(&id.pipeline, id.version);
        Ok(())
    }

    fn enforce_retention(&self, pipeline: &str) -> Result<(), ControllerError> {
        let excess: Vec<u64> = {
            let inner = self.lock();
            let Some(record) = inner.catalog.pipelines.get(pipeline) else {
                return Ok(());
            };
            let draining: Vec<u64> = record
                .versions
                .values()
                .filter(|v| v.state == VersionState::Draining)
                .map(|v| v.version)
                .collect();
            draining[..draining.len().saturating_sub(self.config.retain_draining)].to_vec()
        };
        for version in excess {
            self.retire_locked(
                &VersionId {
                    pipeline: pipeline.into(),
                    version,
                },
                "retention: older than the retained draining versions",
            )?;
        }
        Ok(())
    }

    /// Counters for metrics.
    pub fn counters(&self) -> BTreeMap<String, ControllerCounters> {
        self.counters.lock().expect("counters").clone()
    }

    fn count(&self, pipeline: &str, update: impl FnOnce(&mut ControllerCounters)) {
        let mut counters = self.counters.lock().expect("counters");
        update(counters.entry(pipeline.to_string()).or_default());
    }

    /// Runs [`Controller::tick`] every `every` until `stop` is set.
    pub fn spawn_ticker(
        self: &Arc<Self>,
        every: Duration,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        let controller = self.clone();
        std::thread::Builder::new()
            .name("kappa-controller".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Err(error) = controller.tick() {
                        tracing::error!(%error, "controller tick failed");
                    }
                    std::thread::sleep(every);
                }
            })
            .expect("spawn the controller thread")
    }
}
