//! `kappa demo`: the whole loop on one machine in one command.
//!
//! Creates a fresh log under `<data-dir>/demo`, a `clicks` topic, appends
//! generated clickstream events (`crate::workload::clicks`), runs the pipeline
//! over them as one dataflow and prints every view.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use kappa_dataflow::{start, RunConfig};
use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions, Log, NewRecord};

use super::compile;
use super::run::{check_sources, print_views};
use crate::{workload, Context};

/// Arguments of `kappa demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Events to generate.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Partitions of the `clicks` topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Worker threads.
    #[arg(long, short = 'w', default_value_t = 2)]
    pub workers: usize,
    /// The pipeline to run over the events.
    #[arg(long, default_value = "pipelines/clickstream.sql")]
    pub pipeline: PathBuf,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Rows printed per view.
    #[arg(long, default_value_t = 10)]
    pub print_rows: usize,
}

/// Runs `kappa demo`.
pub fn run(ctx: &Context, args: DemoArgs) -> anyhow::Result<()> {
    let plan = Arc::new(compile(&args.pipeline)?);
    let dir = ctx.data_dir.join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let log = Arc::new(EmbeddedLog::open(
        &dir,
        EmbeddedOptions {
            durability: Durability::PerBatch,
            ..EmbeddedOptions::default()
        },
    )?);
    log.create_topic("clicks", args.partitions)?;
    eprintln!(
        "kappa demo: log in {}; appending {} clickstream events to topic `clicks` ({} partitions)",
        dir.display(),
        args.events,
        args.partitions
    );
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    let now = kappa_dataflow::source::now_ms() as i64;
    for line in workload::clicks(args.events, args.seed) {
        let user = line
            .split(r#""user":""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        batch.push(NewRecord::with_key(user, line.into_bytes(), now));
        if batch.len() == batch.capacity() {
            log.append_routed("clicks", &batch)?;
            batch.clear();
        }
    }
    log.append_routed("clicks", &batch)?;
    eprintln!("kappa demo: appended in {:.2?}", started.elapsed());

    check_sources(&plan, log.as_ref())?;
    let mut config = RunConfig::threads(args.workers);
    config.source.bounded = true;
    let started = Instant::now();
    let running = start(plan.clone(), log.clone(), config)?;
    let store = running.store().clone();
    running.join()?;
    let elapsed = started.elapsed();
    eprintln!(
        "kappa demo: pipeline `{}` computed {} views over {} events with {} workers in {:.2?} ({:.0} events/s)\n",
        plan.name,
        plan.views.len(),
        args.events,
        args.workers,
        elapsed,
        args.events as f64 / elapsed.as_secs_f64()
    );
    print_views(&plan, &store, args.print_rows);
    Ok(())
}
