//! The version controller's Prometheus metrics, computed at scrape time from
//! [`Controller::status`] and [`Controller::counters`]: nothing is instrumented on
//! the controller's own paths.
//!
//! Per version (`pipeline`, `version`): its state (one gauge per state, 1 for the
//! current one), replay progress ratio, records behind, replay rate, estimated time
//! to catch up, whether it is caught up and whether it waits for an unreachable log
//! to start. A retired version's per-version series
//! disappear (it only counts in `kappa_versions{state="retired"}`). Controller-wide:
//! promotions, rollbacks, gate refusals and the last promotion's diff size.

use std::sync::{Arc, Mutex, Weak};

use kappa_log::metrics::{Kind, MetricSpec};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, Registry};
use serde_json::Value;

use crate::controller::Controller;
use crate::states::VersionState;

const VERSION: &[&str] = &["pipeline", "version"];

/// State per version.
pub const VERSION_STATE: MetricSpec = MetricSpec {
    name: "kappa_version_state",
    kind: Kind::Gauge,
    labels: &["pipeline", "version", "state"],
    help: "1 for the version's current lifecycle state, 0 for the others (retired versions are dropped).",
};
/// Versions per state.
pub const VERSIONS: MetricSpec = MetricSpec {
    name: "kappa_versions",
    kind: Kind::Gauge,
    labels: &["pipeline", "state"],
    help: "Versions of a pipeline in each lifecycle state, retired ones included.",
};
/// Replay progress.
pub const REPLAY_RATIO: MetricSpec = MetricSpec {
    name: "kappa_version_replay_progress_ratio",
    kind: Kind::Gauge,
    labels: VERSION,
    help: "Fraction of the log (up to its end when last observed) the version reflects.",
};
/// Records behind.
pub const RECORDS_BEHIND: MetricSpec = MetricSpec {
    name: "kappa_version_records_behind",
    kind: Kind::Gauge,
    labels: VERSION,
    help: "Records of the version's sources it has not reflected yet, over all partitions.",
};
/// Replay rate.
pub const REPLAY_RATE: MetricSpec = MetricSpec {
    name: "kappa_version_replay_records_per_second",
    kind: Kind::Gauge,
    labels: VERSION,
    help: "Records per second the version reads (smoothed).",
};
/// ETA.
pub const ETA: MetricSpec = MetricSpec {
    name: "kappa_version_catch_up_eta_seconds",
    kind: Kind::Gauge,
    labels: VERSION,
    help: "Estimated seconds until the version catches up (absent while it reads nothing).",
};
/// Caught up.
pub const CAUGHT_UP: MetricSpec = MetricSpec {
    name: "kappa_version_caught_up",
    kind: Kind::Gauge,
    labels: VERSION,
    help: "1 once the version's views reflect the log up to a recent instant.",
};
/// Waiting for the log.
pub const WAITING_FOR_LOG: MetricSpec = MetricSpec {
    name: "kappa_version_waiting_for_log",
    kind: Kind::Gauge,
    labels: VERSION,
    help: "1 while the version cannot be started because its log is unreachable (retried with backoff), 0 otherwise.",
};
/// Active version number.
pub const ACTIVE_VERSION: MetricSpec = MetricSpec {
    name: "kappa_pipeline_active_version",
    kind: Kind::Gauge,
    labels: &["pipeline"],
    help: "The version number answering queries for the pipeline (absent when none).",
};
/// Promotions.
pub const PROMOTIONS: MetricSpec = MetricSpec {
    name: "kappa_controller_promotions_total",
    kind: Kind::Counter,
    labels: &["pipeline"],
    help: "Promotions done (rollbacks included).",
};
/// Rollbacks.
pub const ROLLBACKS: MetricSpec = MetricSpec {
    name: "kappa_controller_rollbacks_total",
    kind: Kind::Counter,
    labels: &["pipeline"],
    help: "Rollbacks to a draining version.",
};
/// Gate refusals.
pub const GATE_REFUSALS: MetricSpec = MetricSpec {
    name: "kappa_controller_gate_refusals_total",
    kind: Kind::Counter,
    labels: &["pipeline"],
    help: "Promotions the diff gate refused.",
};
/// Diff size.
pub const LAST_DIFF_ROWS: MetricSpec = MetricSpec {
    name: "kappa_controller_last_diff_rows",
    kind: Kind::Gauge,
    labels: &["pipeline"],
    help: "Rows added, removed or changed in the last promotion's diff, over all views.",
};

/// Every series of the controller, for the catalog.
pub const CATALOG: &[MetricSpec] = &[
    VERSION_STATE,
    VERSIONS,
    REPLAY_RATIO,
    RECORDS_BEHIND,
    REPLAY_RATE,
    ETA,
    CAUGHT_UP,
    WAITING_FOR_LOG,
    ACTIVE_VERSION,
    PROMOTIONS,
    ROLLBACKS,
    GATE_REFUSALS,
    LAST_DIFF_ROWS,
];

struct ControllerCollector {
    controller: Weak<Controller>,
    gauges: Vec<(&'static str, GaugeVec)>,
    counters: Vec<(&'static str, IntCounterVec)>,
    descs: Vec<Desc>,
    lock: Mutex<()>,
}

/// Registers the controller's metrics into `registry`.
pub fn register(controller: &Arc<Controller>, registry: &Registry) -> prometheus::Result<()> {
    let mut gauges = Vec::new();
    let mut counters = Vec::new();
    for spec in CATALOG {
        match spec.kind {
            Kind::Gauge => gauges.push((spec.name, spec.gauge_vec())),
            Kind::Counter => counters.push((spec.name, spec.counter_vec())),
            Kind::Histogram => {}
        }
    }
    let descs = gauges
        .iter()
        .flat_map(|(_, g)| g.desc().into_iter().cloned())
        .chain(
            counters
                .iter()
                .flat_map(|(_, c)| c.desc().into_iter().cloned()),
        )
        .collect();
    registry.register(Box::new(ControllerCollector {
        controller: Arc::downgrade(controller),
        gauges,
        counters,
        descs,
        lock: Mutex::new(()),
    }))
}

impl ControllerCollector {
    fn gauge(&self, spec: &MetricSpec, labels: &[&str], value: f64) {
        if let Some((_, g)) = self.gauges.iter().find(|(n, _)| *n == spec.name) {
            g.with_label_values(labels).set(value);
        }
    }

    fn counter(&self, spec: &MetricSpec, labels: &[&str], value: u64) {
        if let Some((_, c)) = self.counters.iter().find(|(n, _)| *n == spec.name) {
            c.with_label_values(labels).inc_by(value);
        }
    }

    fn fill(&self, controller: &Controller) {
        for (pipeline, counters) in controller.counters() {
            let labels = [pipeline.as_str()];
            self.counter(&PROMOTIONS, &labels, counters.promotions);
            self.counter(&ROLLBACKS, &labels, counters.rollbacks);
            self.counter(&GATE_REFUSALS, &labels, counters.gate_refusals);
            self.gauge(&LAST_DIFF_ROWS, &labels, counters.last_diff_rows as f64);
        }
        let status = controller.status();
        let pipelines = status["pipelines"].as_array().cloned().unwrap_or_default();
        for pipeline in &pipelines {
            let name = pipeline["name"].as_str().unwrap_or_default();
            if let Some(active) = pipeline["active_version"].as_u64() {
                self.gauge(&ACTIVE_VERSION, &[name], active as f64);
            }
            let versions = pipeline["versions"].as_array().cloned().unwrap_or_default();
            for state in VersionState::ALL {
                let count = versions
                    .iter()
                    .filter(|v| v["state"].as_str() == Some(state.name()))
                    .count();
                self.gauge(&VERSIONS, &[name, state.name()], count as f64);
            }
            for version in &versions {
                self.fill_version(name, version);
            }
        }
    }

    fn fill_version(&self, pipeline: &str, version: &Value) {
        let current = version["state"].as_str().unwrap_or_default();
        if current == VersionState::Retired.name() {
            return;
        }
        let number = version["version"].as_u64().unwrap_or_default().to_string();
        let labels = [pipeline, number.as_str()];
        for state in VersionState::ALL {
            let on = if state.name() == current { 1.0 } else { 0.0 };
            self.gauge(&VERSION_STATE, &[pipeline, &number, state.name()], on);
        }
        let caught_up = version["caught_up"].as_bool().unwrap_or(false);
        self.gauge(&CAUGHT_UP, &labels, f64::from(u8::from(caught_up)));
        let waiting = !version["waiting_for_log"].is_null();
        self.gauge(&WAITING_FOR_LOG, &labels, f64::from(u8::from(waiting)));
        let progress = &version["progress"];
        if progress.is_null() {
            return;
        }
        if let Some(ratio) = progress["ratio"].as_f64() {
            self.gauge(&REPLAY_RATIO, &labels, ratio);
        }
        if let Some(behind) = progress["records_behind"].as_f64() {
            self.gauge(&RECORDS_BEHIND, &labels, behind);
        }
        if let Some(rate) = progress["replay_rate"].as_f64() {
            self.gauge(&REPLAY_RATE, &labels, rate);
        }
        if let Some(eta) = progress["eta_seconds"].as_f64() {
            self.gauge(&ETA, &labels, eta);
        }
    }
}

impl Collector for ControllerCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        for (_, g) in &self.gauges {
            g.reset();
        }
        for (_, c) in &self.counters {
            c.reset();
        }
        if let Some(controller) = self.controller.upgrade() {
            self.fill(&controller);
        }
        self.gauges
            .iter()
            .flat_map(|(_, g)| g.collect())
            .chain(self.counters.iter().flat_map(|(_, c)| c.collect()))
            .collect()
    }
}
