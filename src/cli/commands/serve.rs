//! `kappa serve`: the long-running server (the Kubernetes shape).
//!
//! Starts the timely workers once, restores every version recorded in the catalog
//! (each replays the log from offset 0; the active one stays active), deploys the
//! pipeline files given on the command line, and serves the HTTP API — queries,
//! subscriptions, ingest, the admin routes and `/metrics` — until SIGINT/SIGTERM,
//! then stops intake (open connections get `SHUTDOWN_GRACE`), writes the changelog
//! batches applied since the last tick, stops the workers, flushes the log and exits
//! 0. The catalog needs no final write: every transition is persisted as it happens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use kappa_controller::{Controller, ControllerConfig, Registry};
use kappa_dataflow::Engine;
use kappa_log::{Durability, EmbeddedLog, Log};
use kappa_serve::AppState;

use super::backend::{open_fluvio, open_log, Access, LogBackend};
use super::open_writer;
use super::run::{cluster, runtime, shutdown_signal};
use crate::Context;

/// How long open HTTP connections may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Arguments of `kappa serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Pipeline files to deploy at start (a file whose content is already running is not redeployed).
    pub pipelines: Vec<PathBuf>,
    /// Worker threads in this process.
    #[arg(long, short = 'w', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: u32,
    /// Address the HTTP API listens on.
    #[arg(long, env = "KAPPA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Promote each version as soon as it has caught up.
    #[arg(long)]
    pub auto_promote: bool,
    /// Require this bearer token on admin routes.
    #[arg(long, env = "KAPPA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Records a partition may lag behind the log end and still count as caught up.
    #[arg(long, default_value_t = 0)]
    pub lag_bound: u64,
    /// Draining versions kept for rollback; older ones are retired.
    #[arg(long, default_value_t = 2)]
    pub retain: usize,
    /// Processes in a timely cluster.
    #[arg(long, requires_all = ["process", "hosts"])]
    pub processes: Option<usize>,
    /// This process's index (0 runs the controller and serves the API).
    #[arg(long)]
    pub process: Option<usize>,
    /// File listing every process's `host:port`, one per line, in process order.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
}

/// Runs `kappa serve`.
pub fn run(ctx: &Context, args: ServeArgs) -> anyhow::Result<()> {
    let process = args.process.unwrap_or(0);
    let mut communication = if args.workers <= 1 {
        timely::CommunicationConfig::Thread
    } else {
        timely::CommunicationConfig::Process(args.workers as usize)
    };
    if let Some(processes) = args.processes {
        communication = cluster(
            processes,
            process,
            args.workers as usize,
            args.hosts.as_deref(),
        )?;
    }
    if process != 0 {
        // A follower: its workers run whatever process 0 sequences to them.
        let log = open_log(ctx, Access::Read)?;
        let engine = Engine::start(communication, log)?;
        eprintln!("kappa: process {process} joined the cluster");
        // Probes reach followers too: they answer /healthz and /readyz on --listen.
        let listen = args.listen;
        std::thread::Builder::new()
            .name("kappa-health".into())
            .spawn(move || {
                let served = runtime().and_then(|rt| {
                    rt.block_on(async {
                        let listener = tokio::net::TcpListener::bind(listen).await?;
                        kappa_serve::serve_health(listener).await?;
                        anyhow::Ok(())
                    })
                });
                if let Err(error) = served {
                    tracing::warn!(%error, "follower health endpoint failed");
                }
            })?;
        engine.join()?;
        return Ok(());
    }
    // The embedded log is also where the API address is recorded (for `kappa
    // produce`) and has its own metrics; a Fluvio log is only a `Log`.
    let (log, embedded): (Arc<dyn Log>, Option<Arc<EmbeddedLog>>) = match ctx.log {
        LogBackend::Embedded => {
            let embedded = Arc::new(open_writer(ctx, Durability::PerBatch)?);
            (embedded.clone(), Some(embedded))
        }
        LogBackend::Fluvio => (Arc::new(open_fluvio(ctx)?), None),
    };
    let engine = Arc::new(Engine::start(communication, log.clone())?);
    let metrics_registry = prometheus::Registry::new();
    crate::metrics::register_engine(&metrics_registry, embedded.as_deref(), &engine)?;
    let registry = Arc::new(Registry::new());
    let config = ControllerConfig {
        lag_bound: args.lag_bound,
        auto_promote: args.auto_promote,
        retain_draining: args.retain,
        ..ControllerConfig::default()
    };
    let controller = Controller::open(
        ctx.data_dir.clone(),
        log.clone(),
        engine.clone(),
        registry.clone(),
        config,
    )?;
    for file in &args.pipelines {
        let sql =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let id = controller.deploy(&file.display().to_string(), &sql)?;
        eprintln!("kappa: {id} deployed from {}", file.display());
    }
    let metrics = crate::metrics::register_server(&metrics_registry, &controller)?;
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = controller.spawn_ticker(Duration::from_millis(50), stop.clone());
    let state = AppState {
        registry,
        log: log.clone(),
        controller: Some(controller.clone()),
        admin_token: args.admin_token,
        metrics: Some(metrics),
    };
    let state_controller = controller;
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        if let Some(embedded) = &embedded {
            if let Err(error) = embedded.record_http_addr(&address.to_string()) {
                tracing::warn!(%error, "cannot record the API address in the lock file");
            }
        }
        eprintln!("kappa: serving on http://{address} (GET /v1/status)");
        // Intake stops at the signal; open connections (live subscriptions never end
        // by themselves) get SHUTDOWN_GRACE to finish before they are dropped.
        let signalled = Arc::new(tokio::sync::Notify::new());
        let notify = signalled.clone();
        let shutdown = async move {
            shutdown_signal().await;
            notify.notify_one();
        };
        tokio::select! {
            served = kappa_serve::serve(listener, state, shutdown) => served?,
            () = async {
                signalled.notified().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => eprintln!("kappa: closing connections still open after {SHUTDOWN_GRACE:?}"),
        }
        anyhow::Ok(())
    })?;
    eprintln!("kappa: shutting down");
    stop.store(true, Ordering::SeqCst);
    let _ = ticker.join();
    // A last round writes the changelog batches applied since the ticker's last one.
    if let Err(error) = state_controller.tick() {
        tracing::warn!(%error, "final controller tick failed");
    }
    engine.shutdown()?;
    log.flush()?;
    Ok(())
}
