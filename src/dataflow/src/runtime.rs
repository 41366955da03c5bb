//! Runs one pipeline version as one timely dataflow over all workers.
//!
//! [`start`] installs the rendered plan on every worker (threads of this
//! process, or a cluster of processes through timely's own communication) and
//! drives it. Worker 0 receives every view change, error and source progress
//! record, and has them applied to the [`ViewStore`] (on an applier thread) once
//! the dataflow's frontier has passed them, so readers only ever see complete,
//! consistent states. A separate
//! writer thread appends applied changes to the changelog topics and errors to the
//! dead-letter topic, so log fsyncs never stall the dataflow.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kappa_log::{Log, LogError, NewRecord};
use kappa_sql::plan::Plan;
use timely::WorkerConfig;

use crate::error::RuntimeError;
use crate::install::install;
use crate::introspect;
use crate::source::{now_ms, retry_backoff, LiveRounds, SourceConfig, SourceControl};
use crate::store::{changelog_record, ChangeBatch, ViewStore};

/// How to run a pipeline.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Timely's communication: one thread, N threads, or a cluster of processes.
    pub communication: timely::CommunicationConfig,
    /// How sources read.
    pub source: SourceConfig,
    /// Version number, recorded in changelog and dead-letter records.
    pub version: u64,
    /// Write view changes to `<pipeline>.<view>` and errors to `<pipeline>.dead_letter`.
    pub write_outputs: bool,
}

impl RunConfig {
    /// `workers` threads in this process, following the log.
    pub fn threads(workers: usize) -> Self {
        RunConfig {
            communication: if workers <= 1 {
                timely::CommunicationConfig::Thread
            } else {
                timely::CommunicationConfig::Process(workers)
            },
            source: SourceConfig::default(),
            version: 1,
            write_outputs: true,
        }
    }
}

/// The topic holding a view's changelog.
pub fn changelog_topic(pipeline: &str, view: &str) -> String {
    format!("{pipeline}.{view}")
}

/// The topic holding a pipeline's dead letters.
pub fn dead_letter_topic(pipeline: &str) -> String {
    format!("{pipeline}.dead_letter")
}

/// A running pipeline version.
pub struct RunningPipeline {
    store: Arc<ViewStore>,
    shutdown: Arc<AtomicBool>,
    workers: Option<timely::communication::WorkerGuards<Result<(), String>>>,
    writer: Option<JoinHandle<Result<(), LogError>>>,
}

impl RunningPipeline {
    /// The materialized views, for readers.
    pub fn store(&self) -> &Arc<ViewStore> {
        &self.store
    }

    /// Waits until the dataflow completes (a bounded run reaching its end) and the
    /// outputs are written.
    pub fn join(mut self) -> Result<(), RuntimeError> {
        self.wait()
    }

    /// Stops the dataflow and waits for the workers and the output writer.
    pub fn shutdown(mut self) -> Result<(), RuntimeError> {
        self.shutdown.store(true, Ordering::SeqCst);
        self.wait()
    }

    fn wait(&mut self) -> Result<(), RuntimeError> {
        if let Some(workers) = self.workers.take() {
            for result in workers.join() {
                result
                    .map_err(RuntimeError::Workers)?
                    .map_err(RuntimeError::Workers)?;
            }
        }
        // The store's changelog sender lives as long as the store; drop it so the
        // writer sees the end of its channel.
        self.store.close_changelog();
        if let Some(writer) = self.writer.take() {
            writer
                .join()
                .map_err(|_| RuntimeError::Workers("output writer panicked".into()))??;
        }
        Ok(())
    }
}

impl Drop for RunningPipeline {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let _ = self.wait();
    }
}

/// Starts `plan` over `log`. Topics the sources read must exist; output topics are
/// created when missing.
pub fn start(
    plan: Arc<Plan>,
    log: Arc<dyn Log>,
    config: RunConfig,
) -> Result<RunningPipeline, RuntimeError> {
    for source in &plan.sources {
        log.partition_count(&source.topic)?;
    }
    let store = Arc::new(ViewStore::for_plan(&plan));
    let writer = if config.write_outputs {
        Some(spawn_output_writer(
            &plan,
            log.clone(),
            &store,
            config.version,
        )?)
    } else {
        None
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    let timely_config = timely::Config {
        communication: config.communication.clone(),
        worker: WorkerConfig::default(),
    };
    let worker_store = store.clone();
    let worker_shutdown = shutdown.clone();
    let source_config = config.source.clone();
    let rounds = Arc::new(LiveRounds::default());
    let workers = timely::execute(timely_config, move |worker| {
        let observed = introspect::attach(worker);
        let control = Rc::new(SourceControl::sharing(rounds.clone()));
        let installed = install(worker, &plan, log.clone(), &source_config, control)?;
        introspect::observe(&observed, &installed, worker_store.clone());
        loop {
            if worker_shutdown.load(Ordering::SeqCst) {
                // A following source never completes, and timely keeps stepping a
                // worker's dataflows after this closure returns: drop it first.
                worker.drop_dataflow(installed.dataflow);
                return Ok(());
            }
            worker.step_or_park(Some(Duration::from_millis(20)));
            let complete = if worker.index() == 0 {
                installed.apply_ready(&worker_store)
            } else {
                installed.frontier().is_none()
            };
            if complete {
                return Ok(());
            }
        }
    })
    .map_err(RuntimeError::Workers)?;
    Ok(RunningPipeline {
        store,
        shutdown,
        workers: Some(workers),
        writer,
    })
}

/// Starts the thread appending applied changes to changelog topics and errors to
/// the dead-letter topic.
/// Appends `records` to partition 0 of `topic`, retrying with backoff for as long
/// as the log is unreachable: changelogs and dead letters wait for the log rather
/// than being dropped (batches queue up in the store's changelog channel meanwhile).
/// An error after which the records may have been written is not retried (it could
/// duplicate changes), nor is any other error.
fn append_retrying(log: &dyn Log, topic: &str, records: &[NewRecord]) -> Result<(), LogError> {
    let mut failures = 0u32;
    loop {
        match log.append(topic, 0, records) {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(%topic, failures, "changelog append recovered");
                }
                return Ok(());
            }
            Err(error) if error.is_transient() && !error.may_have_been_written() => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%topic, %error, "changelog append failed; retrying with backoff");
                }
                std::thread::sleep(retry_backoff(failures));
            }
            Err(error) => return Err(error),
        }
    }
}

fn spawn_output_writer(
    plan: &Plan,
    log: Arc<dyn Log>,
    store: &ViewStore,
    version: u64,
) -> Result<JoinHandle<Result<(), LogError>>, RuntimeError> {
    let view_topics: Vec<String> = plan
        .views
        .iter()
        .map(|v| changelog_topic(&plan.name, &v.name))
        .collect();
    let dead_letters = dead_letter_topic(&plan.name);
    for topic in view_topics.iter().chain(std::iter::once(&dead_letters)) {
        match log.create_topic(topic, 1) {
            Ok(()) | Err(LogError::TopicExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (sender, receiver) = std::sync::mpsc::channel::<Arc<ChangeBatch>>();
    store.set_changelog(sender);
    let pipeline = plan.name.clone();
    let columns: Vec<Vec<String>> = plan
        .views
        .iter()
        .map(|v| {
            plan.view_columns(v)
                .iter()
                .map(|c| c.name.clone())
                .collect()
        })
        .collect();
    Ok(std::thread::Builder::new()
        .name(format!("{pipeline}-outputs"))
        .spawn(move || {
            for batch in receiver {
                let mut per_view: Vec<Vec<NewRecord>> = vec![Vec::new(); view_topics.len()];
                for (view, row, diff) in batch.changes() {
                    let record =
                        changelog_record(&columns[view], &row, diff, batch.frontier, version);
                    per_view[view].push(NewRecord::new(
                        record.to_string().into_bytes(),
                        now_ms() as i64,
                    ));
                }
                for (topic, records) in view_topics.iter().zip(per_view) {
                    if !records.is_empty() {
                        append_retrying(log.as_ref(), topic, &records)?;
                    }
                }
                if !batch.errors.is_empty() {
                    let records: Vec<NewRecord> = batch
                        .errors
                        .iter()
                        .map(|e| {
                            NewRecord::new(
                                e.to_dead_letter(&pipeline, version)
                                    .to_string()
                                    .into_bytes(),
                                now_ms() as i64,
                            )
                        })
                        .collect();
                    append_retrying(log.as_ref(), &dead_letters, &records)?;
                }
            }
            Ok(())
        })
        .expect("spawn the output writer thread"))
}
