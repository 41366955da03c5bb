//! The `kappa` command line: argument parsing and dispatch to the subsystems.
//! This is the only place that reports errors with `anyhow`.
//!
//! Adding a command: a module under `commands/` with an `Args` (or `Subcommand`) type and
//! a `run(&Context, args)` function, one variant in [`Command`], one arm in [`run`].

pub mod allocator;
pub mod client;
pub mod commands;
pub mod metrics;
pub mod table;
pub mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The `kappa` command line.
#[derive(Debug, Parser)]
#[command(
    name = "kappa",
    version,
    about = "A Kappa-architecture stream processor"
)]
pub struct Cli {
    /// The data directory holding the log.
    #[arg(
        long,
        global = true,
        env = "KAPPA_DATA_DIR",
        default_value = "./kappa-data"
    )]
    pub data_dir: PathBuf,
    /// Which log holds the topics: `embedded` (in --data-dir) or `fluvio` (a cluster).
    #[arg(
        long = "log",
        global = true,
        env = "KAPPA_LOG",
        value_enum,
        default_value = "embedded"
    )]
    pub log: commands::backend::LogBackend,
    /// The Fluvio cluster's SC address, HOST:PORT (with --log fluvio; default: the current
    /// profile of the Fluvio config file).
    #[arg(long, global = true, env = "KAPPA_FLUVIO_ENDPOINT")]
    pub fluvio_endpoint: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list and describe topics.
    #[command(subcommand)]
    Topic(commands::topic::TopicCommand),
    /// Append JSON lines to a topic.
    Produce(commands::produce::ProduceArgs),
    /// Print a topic's records, one payload per line.
    Consume(commands::consume::ConsumeArgs),
    /// Compile a pipeline file and print its plan.
    Explain(commands::explain::ExplainArgs),
    /// Run a pipeline as one dataflow and serve its views over HTTP.
    Run(commands::run::RunArgs),
    /// Run the long-lived server: versions, replay, promotion, the HTTP API.
    Serve(commands::serve::ServeArgs),
    /// Deploy a pipeline file to a running server as a new version.
    Deploy(commands::admin::DeployArgs),
    /// Make a caught-up version the active one (with an optional diff gate).
    Promote(commands::admin::PromoteArgs),
    /// Re-activate the previous version of a pipeline.
    Rollback(commands::admin::RollbackArgs),
    /// Drop a version's dataflow and free its memory.
    Retire(commands::admin::RetireArgs),
    /// Compare two running versions' views at the same log offsets.
    Diff(commands::admin::DiffArgs),
    /// Pipelines, versions, states and replay progress of a running server.
    Status(commands::admin::StatusArgs),
    /// Generate clickstream events, run a pipeline over them and print its views.
    Demo(commands::demo::DemoArgs),
    /// Print a view of a running pipeline.
    Query(commands::query::QueryArgs),
    /// Export a view of a running pipeline as CSV or JSON lines.
    Export(commands::query::ExportArgs),
}

/// What every command gets besides its own arguments: the global options.
#[derive(Debug, Clone)]
pub struct Context {
    /// The data directory (`--data-dir`, `KAPPA_DATA_DIR`, default `./kappa-data`).
    pub data_dir: PathBuf,
    /// The log backend (`--log`, `KAPPA_LOG`, default `embedded`).
    pub log: commands::backend::LogBackend,
    /// The Fluvio SC address (`--fluvio-endpoint`, `KAPPA_FLUVIO_ENDPOINT`).
    pub fluvio_endpoint: Option<String>,
}

/// Runs the command line and returns the process exit code: 0 on success, 1 on an error
/// (reported as one line on stderr), 2 on bad usage (reported by clap).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context {
        data_dir: cli.data_dir,
        log: cli.log,
        fluvio_endpoint: cli.fluvio_endpoint,
    };
    match cli.command {
        Command::Topic(cmd) => commands::topic::run(&ctx, cmd),
        Command::Produce(args) => commands::produce::run(&ctx, args),
        Command::Consume(args) => commands::consume::run(&ctx, args),
        Command::Explain(args) => commands::explain::run(&ctx, args),
        Command::Run(args) => commands::run::run(&ctx, args),
        Command::Serve(args) => commands::serve::run(&ctx, args),
        Command::Deploy(args) => commands::admin::deploy(&ctx, args),
        Command::Promote(args) => commands::admin::promote(&ctx, args),
        Command::Rollback(args) => commands::admin::rollback(&ctx, args),
        Command::Retire(args) => commands::admin::retire(&ctx, args),
        Command::Diff(args) => commands::admin::diff(&ctx, args),
        Command::Status(args) => commands::admin::status(&ctx, args),
        Command::Demo(args) => commands::demo::run(&ctx, args),
        Command::Query(args) => commands::query::run_query(&ctx, args),
        Command::Export(args) => commands::query::run_export(&ctx, args),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings and errors).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
