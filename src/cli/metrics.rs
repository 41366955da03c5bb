//! Assembling the server's Prometheus registry from every subsystem, and the metrics
//! catalog generated from their specs.
//!
//! Each subsystem registers its own series (`kappa_log::metrics`,
//! `kappa_dataflow::metrics`, `kappa_controller::metrics`, `kappa_serve::metrics`)
//! into the one registry built here, with the standard process collector beside
//! them. [`catalog_json`] lists them all — name, type, labels, help — and
//! `tests/metrics_catalog.rs` checks it equals `k8s/monitoring/metrics-catalog.json`
//! (`KAPPA_UPDATE_CATALOG=1 cargo test -p kappa --test metrics_catalog` rewrites it).

use std::sync::Arc;

use kappa_controller::Controller;
use kappa_dataflow::Engine;
use kappa_log::metrics::{Kind, MetricSpec};
use kappa_log::EmbeddedLog;
use kappa_serve::metrics::ServeMetrics;
use prometheus::Registry;

/// The standard process collector's series (Linux).
pub const PROCESS: &[MetricSpec] = &[
    MetricSpec {
        name: "process_cpu_seconds_total",
        kind: Kind::Counter,
        labels: &[],
        help: "Total user and system CPU time spent in seconds.",
    },
    MetricSpec {
        name: "process_open_fds",
        kind: Kind::Gauge,
        labels: &[],
        help: "Number of open file descriptors.",
    },
    MetricSpec {
        name: "process_max_fds",
        kind: Kind::Gauge,
        labels: &[],
        help: "Maximum number of open file descriptors.",
    },
    MetricSpec {
        name: "process_virtual_memory_bytes",
        kind: Kind::Gauge,
        labels: &[],
        help: "Virtual memory size in bytes.",
    },
    MetricSpec {
        name: "process_resident_memory_bytes",
        kind: Kind::Gauge,
        labels: &[],
        help: "Resident memory size in bytes.",
    },
    MetricSpec {
        name: "process_start_time_seconds",
        kind: Kind::Gauge,
        labels: &[],
        help: "Start time of the process since unix epoch in seconds.",
    },
    MetricSpec {
        name: "process_threads",
        kind: Kind::Gauge,
        labels: &[],
        help: "Number of OS threads in the process.",
    },
];

/// Every series the server exports, by subsystem.
pub fn catalog() -> Vec<(&'static str, &'static [MetricSpec])> {
    vec![
        ("log", kappa_log::metrics::CATALOG),
        ("dataflow", kappa_dataflow::metrics::CATALOG),
        ("controller", kappa_controller::metrics::CATALOG),
        ("serve", kappa_serve::metrics::CATALOG),
        ("process", PROCESS),
    ]
}

/// The catalog as the pretty JSON kept in `k8s/monitoring/metrics-catalog.json`.
pub fn catalog_json() -> String {
    let metrics: Vec<serde_json::Value> = catalog()
        .into_iter()
        .flat_map(|(subsystem, specs)| {
            specs.iter().map(move |spec| {
                let mut entry = serde_json::to_value(spec).expect("specs serialize");
                entry["subsystem"] = subsystem.into();
                entry
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&serde_json::json!({ "metrics": metrics }))
        .expect("json renders");
    text.push('\n');
    text
}

/// Registers the log's and the engine's series; call before any version is deployed
/// (the controller restores versions as it opens).
pub fn register_engine(
    registry: &Registry,
    log: Option<&EmbeddedLog>,
    engine: &Engine,
) -> prometheus::Result<()> {
    if let Some(log) = log {
        log.register_metrics(registry)?;
    }
    engine.register_metrics(registry)
}

/// Registers the controller's and the HTTP API's series and the process collector;
/// returns what the API needs to render the registry.
pub fn register_server(
    registry: &Registry,
    controller: &Arc<Controller>,
) -> prometheus::Result<Arc<ServeMetrics>> {
    kappa_controller::metrics::register(controller, registry)?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(Arc::new(ServeMetrics::register(registry)?))
}
