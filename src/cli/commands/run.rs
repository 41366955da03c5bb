//! `kappa run PIPELINE`: one pipeline as one dataflow, served over HTTP.
//!
//! The shorthand for `kappa serve PIPELINE --auto-promote`: reads the pipeline's
//! sources from offset 0, keeps following them, and serves the views on `--listen`
//! (127.0.0.1 by default) until SIGINT/SIGTERM; running it again after editing the
//! file deploys the new content as the next version. With `--until-end` it instead
//! processes what the log holds when it starts, prints every view and exits.
//! Scale-out uses timely's own cluster: `--processes N --process I --hosts FILE`
//! (one `host:port` per line); process 0 owns the log's writer lock and serves the API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use kappa_dataflow::{start, RunConfig, ViewStore};
use kappa_log::{Durability, Log};
use kappa_sql::plan::Plan;

use super::serve::ServeArgs;

use super::backend::{open_log, Access};
use super::compile;
use crate::{table, Context};

/// Arguments of `kappa run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file (`pipelines/*.sql`).
    pub pipeline: PathBuf,
    /// Worker threads in this process.
    #[arg(long, short = 'w', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: u32,
    /// Address the HTTP API listens on.
    #[arg(long, env = "KAPPA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Process what the log holds now, print the views and exit.
    #[arg(long)]
    pub until_end: bool,
    /// Rows printed per view with `--until-end`.
    #[arg(long, default_value_t = 10)]
    pub print_rows: usize,
    /// Processes in a timely cluster.
    #[arg(long, requires_all = ["process", "hosts"])]
    pub processes: Option<usize>,
    /// This process's index in the cluster (0 serves the API and writes outputs).
    #[arg(long)]
    pub process: Option<usize>,
    /// File listing every process's `host:port`, one per line, in process order.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
    /// Require this bearer token on admin routes.
    #[arg(long, env = "KAPPA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// Runs `kappa run`.
pub fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<()> {
    if !args.until_end {
        return super::serve::run(
            ctx,
            ServeArgs {
                pipelines: vec![args.pipeline],
                workers: args.workers,
                listen: args.listen,
                auto_promote: true,
                admin_token: args.admin_token,
                lag_bound: 0,
                retain: 2,
                processes: args.processes,
                process: args.process,
                hosts: args.hosts,
            },
        );
    }
    let plan = Arc::new(compile(&args.pipeline)?);
    let process = args.process.unwrap_or(0);
    let is_leader = process == 0;
    let log: Arc<dyn Log> = if is_leader {
        open_log(ctx, Access::Write(Durability::PerBatch))?
    } else {
        open_log(ctx, Access::Read)?
    };
    check_sources(&plan, log.as_ref())?;
    let mut config = RunConfig::threads(args.workers as usize);
    if let Some(processes) = args.processes {
        config.communication = cluster(
            processes,
            process,
            args.workers as usize,
            args.hosts.as_deref(),
        )?;
    }
    config.source.bounded = true;
    config.write_outputs = is_leader;
    let running = start(plan.clone(), log, config)?;
    let store = running.store().clone();
    running.join()?;
    if is_leader {
        print_views(&plan, &store, args.print_rows);
    }
    Ok(())
}

/// Fails with a hint when a source's topic does not exist.
pub(crate) fn check_sources(plan: &Plan, log: &dyn Log) -> anyhow::Result<()> {
    for source in &plan.sources {
        if let Err(e) = log.partition_count(&source.topic) {
            bail!(
                "source `{}` reads topic `{}`: {e}\n  hint: create it with `kappa topic create {} --partitions N`",
                source.name,
                source.topic,
                source.topic
            );
        }
    }
    Ok(())
}

pub(crate) fn cluster(
    processes: usize,
    process: usize,
    threads: usize,
    hosts: Option<&std::path::Path>,
) -> anyhow::Result<timely::CommunicationConfig> {
    let hosts = hosts.context("--hosts is required with --processes")?;
    let text =
        std::fs::read_to_string(hosts).with_context(|| format!("reading {}", hosts.display()))?;
    let addresses: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if addresses.len() != processes {
        bail!(
            "{} lists {} addresses but --processes is {processes}",
            hosts.display(),
            addresses.len()
        );
    }
    if process >= processes {
        bail!("--process {process} is out of range for {processes} processes");
    }
    Ok(timely::CommunicationConfig::Cluster {
        threads,
        process,
        addresses,
        report: false,
        zerocopy: false,
    })
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Prints every view as a table: its first `max_rows` rows in presentation order.
pub(crate) fn print_views(plan: &Plan, store: &ViewStore, max_rows: usize) {
    store.read(|state| {
        for view in &plan.views {
            let columns = plan.view_columns(view);
            let contents = state.view(&view.name).expect("the store holds every view");
            let mut rows: Vec<kappa_sql::Row> = contents.iter_rows().collect();
            rows.sort_by(|a, b| kappa_sql::plan::compare_rows(&view.order_by, a, b));
            println!("{} ({} rows)", view.name, rows.len());
            let header: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            let cells: Vec<Vec<String>> = rows
                .iter()
                .take(max_rows)
                .map(|row| row.iter().map(ToString::to_string).collect())
                .collect();
            print!("{}", table::render(&header, &cells));
            if rows.len() > max_rows {
                println!("  ... {} more", rows.len() - max_rows);
            }
            println!();
        }
        let errors = state.error_count;
        let late: u64 = state.offsets.values().map(|p| p.late).sum();
        let read: u64 = state.offsets.values().map(|p| p.records).sum();
        println!("records read: {read}, late dropped: {late}, dead letters: {errors}");
    });
}
