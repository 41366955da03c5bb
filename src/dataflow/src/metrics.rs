//! The engine's Prometheus metrics: sources, frontiers, views and freshness of every
//! installed pipeline version.
//!
//! Two kinds of series, both labelled by `pipeline` and `version`:
//! - computed at scrape time from each version's [`ViewStore`] (records, bytes,
//!   decode errors and late events read per partition, offset reached, lag behind
//!   the log end, event-time watermark, failed reads and whether a partition is
//!   unreachable now, frontier, dead letters, view sizes), so nothing is added to the
//!   per-record path;
//! - observed by the store when a batch is applied at a frontier: the apply
//!   latency, and freshness — the time from a record's append to its being visible
//!   in the views (from the append timestamp of each partition batch's last record).
//!
//! [`Engine::register_metrics`](crate::Engine::register_metrics) registers them; a
//! version's series are removed when it is retired.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use kappa_log::metrics::{Kind, MetricSpec, FAST_BUCKETS};
use kappa_log::Log;
use kappa_sql::plan::Plan;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, GaugeVec, Histogram, HistogramVec, Registry};

use crate::engine::VersionId;
use crate::source::now_ms;
use crate::store::ViewStore;

const PARTITION: &[&str] = &["pipeline", "version", "topic", "partition"];
const VERSION: &[&str] = &["pipeline", "version"];
const VIEW: &[&str] = &["pipeline", "version", "view"];

/// Records read.
pub const SOURCE_RECORDS: MetricSpec = MetricSpec {
    name: "kappa_source_records_total",
    kind: Kind::Counter,
    labels: PARTITION,
    help: "Records a version's source read from a partition (decoded or not).",
};
/// Bytes read.
pub const SOURCE_BYTES: MetricSpec = MetricSpec {
    name: "kappa_source_bytes_total",
    kind: Kind::Counter,
    labels: PARTITION,
    help: "Payload bytes a version's source read from a partition.",
};
/// Decode errors.
pub const DECODE_ERRORS: MetricSpec = MetricSpec {
    name: "kappa_source_decode_errors_total",
    kind: Kind::Counter,
    labels: PARTITION,
    help: "Records that failed to decode (sent to the dead-letter topic).",
};
/// Late events dropped.
pub const LATE_EVENTS: MetricSpec = MetricSpec {
    name: "kappa_source_late_events_total",
    kind: Kind::Counter,
    labels: PARTITION,
    help: "Records dropped because their event time was beyond the allowed lateness.",
};
/// Offset reached.
pub const SOURCE_OFFSET: MetricSpec = MetricSpec {
    name: "kappa_source_offset",
    kind: Kind::Gauge,
    labels: PARTITION,
    help: "The next offset a version reads from a partition: everything before it is reflected in the views.",
};
/// Lag behind the log end.
pub const SOURCE_LAG: MetricSpec = MetricSpec {
    name: "kappa_source_lag_records",
    kind: Kind::Gauge,
    labels: PARTITION,
    help: "Records of a partition a version has not yet reflected (log end offset minus offset reached).",
};
/// Event-time watermark.
pub const WATERMARK: MetricSpec = MetricSpec {
    name: "kappa_source_event_time_watermark_seconds",
    kind: Kind::Gauge,
    labels: PARTITION,
    help: "A partition's event-time watermark (Unix seconds): events below it are late.",
};
/// Failed reads.
pub const SOURCE_READ_ERRORS: MetricSpec = MetricSpec {
    name: "kappa_source_read_errors_total",
    kind: Kind::Counter,
    labels: PARTITION,
    help: "Reads of a partition that failed (cluster unreachable, partition offline); the source retries them with backoff.",
};
/// Unreachable partitions.
pub const SOURCE_UNREACHABLE: MetricSpec = MetricSpec {
    name: "kappa_source_unreachable",
    kind: Kind::Gauge,
    labels: PARTITION,
    help: "1 while a version's last read of a partition failed, 0 once a read succeeds.",
};
/// Frontier.
pub const FRONTIER: MetricSpec = MetricSpec {
    name: "kappa_dataflow_frontier_seconds",
    kind: Kind::Gauge,
    labels: VERSION,
    help: "The version's applied frontier as ingestion time (Unix seconds): every change before it is visible.",
};
/// Dead letters.
pub const DEAD_LETTERS: MetricSpec = MetricSpec {
    name: "kappa_dataflow_dead_letters_total",
    kind: Kind::Counter,
    labels: VERSION,
    help: "Data errors (bad records, failing rows) the version sent to its dead-letter topic.",
};
/// Change batches applied.
pub const CHANGE_BATCHES: MetricSpec = MetricSpec {
    name: "kappa_dataflow_change_batches_total",
    kind: Kind::Counter,
    labels: VERSION,
    help: "Non-empty change batches applied to the version's views.",
};
/// View rows.
pub const VIEW_ROWS: MetricSpec = MetricSpec {
    name: "kappa_view_rows",
    kind: Kind::Gauge,
    labels: VIEW,
    help: "Distinct rows in a view's arrangement.",
};
/// View bytes.
pub const VIEW_BYTES: MetricSpec = MetricSpec {
    name: "kappa_view_bytes",
    kind: Kind::Gauge,
    labels: VIEW,
    help: "Estimated bytes of a view's rows as stored (packed; from a sample of rows).",
};
/// Records held by each arrangement.
pub const ARRANGEMENT_RECORDS: MetricSpec = MetricSpec {
    name: "kappa_dataflow_arrangement_records",
    kind: Kind::Gauge,
    labels: &["pipeline", "version", "arrangement"],
    help: "Updates held by an arrangement of the version's dataflow (shared and per view), summed over this process's workers, from differential's batch, merge and drop events.",
};
/// Bytes held by each arrangement.
pub const ARRANGEMENT_BYTES: MetricSpec = MetricSpec {
    name: "kappa_dataflow_arrangement_bytes",
    kind: Kind::Gauge,
    labels: &["pipeline", "version", "arrangement"],
    help: "Estimated bytes held by an arrangement of the version's dataflow, summed over this process's workers: its updates times the inline size of one update (key, value, time, diff); heap data of long keys and rows is not included.",
};
/// Operator activity.
pub const BUSY_SECONDS: MetricSpec = MetricSpec {
    name: "kappa_dataflow_busy_seconds_total",
    kind: Kind::Counter,
    labels: VERSION,
    help: "Time this process's workers spent running the version's dataflow operators, from timely's schedule events.",
};
/// Live subscribers.
pub const SUBSCRIBERS: MetricSpec = MetricSpec {
    name: "kappa_view_subscribers",
    kind: Kind::Gauge,
    labels: VERSION,
    help: "Live subscriptions (server-sent event streams) to the version's views.",
};
/// Apply latency.
pub const APPLY_SECONDS: MetricSpec = MetricSpec {
    name: "kappa_dataflow_apply_duration_seconds",
    kind: Kind::Histogram,
    labels: VERSION,
    help: "Time to apply one frontier's batch of changes to the version's views.",
};
/// Freshness.
pub const FRESHNESS_SECONDS: MetricSpec = MetricSpec {
    name: "kappa_freshness_seconds",
    kind: Kind::Histogram,
    labels: VERSION,
    help: "End-to-end latency from a record's append to its being visible in the version's views.",
};

/// Every series of the engine, for the catalog.
pub const CATALOG: &[MetricSpec] = &[
    SOURCE_RECORDS,
    SOURCE_BYTES,
    DECODE_ERRORS,
    LATE_EVENTS,
    SOURCE_OFFSET,
    SOURCE_LAG,
    WATERMARK,
    SOURCE_READ_ERRORS,
    SOURCE_UNREACHABLE,
    FRONTIER,
    DEAD_LETTERS,
    CHANGE_BATCHES,
    VIEW_ROWS,
    VIEW_BYTES,
    SUBSCRIBERS,
    ARRANGEMENT_RECORDS,
    ARRANGEMENT_BYTES,
    BUSY_SECONDS,
    APPLY_SECONDS,
    FRESHNESS_SECONDS,
];

/// Freshness buckets: 1 ms to 10 minutes (a replaying version sees old records).
const FRESHNESS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

/// Rows whose stored size is sampled for [`VIEW_BYTES`].
const SIZE_SAMPLE: usize = 16;

/// One version's histograms, held by its store.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    apply_seconds: Histogram,
    freshness_seconds: Histogram,
}

impl StoreMetrics {
    /// Records one application: its duration and the append times (ms) of the
    /// partition batches it made visible.
    pub(crate) fn applied(&self, took: Duration, append_times_ms: &[i64]) {
        self.apply_seconds.observe(took.as_secs_f64());
        let now = now_ms() as i64;
        for &appended in append_times_ms.iter().filter(|t| **t > 0) {
            self.freshness_seconds
                .observe(now.saturating_sub(appended).max(0) as f64 / 1000.0);
        }
    }
}

struct Installed {
    store: Weak<ViewStore>,
    topics: Vec<String>,
}

/// The gauges and counters filled at scrape time.
struct Scraped {
    counters: Vec<(MetricSpec, CounterVec)>,
    gauges: Vec<(MetricSpec, GaugeVec)>,
}

impl Scraped {
    fn new() -> Self {
        let (counters, gauges) =
            CATALOG
                .iter()
                .fold((Vec::new(), Vec::new()), |(mut c, mut g), spec| {
                    match spec.kind {
                        Kind::Counter => c.push((*spec, spec.float_counter_vec())),
                        Kind::Gauge => g.push((*spec, spec.gauge_vec())),
                        Kind::Histogram => {}
                    }
                    (c, g)
                });
        Scraped { counters, gauges }
    }

    fn counter(&self, spec: &MetricSpec, labels: &[&str], value: u64) {
        self.counter_f64(spec, labels, value as f64);
    }

    fn counter_f64(&self, spec: &MetricSpec, labels: &[&str], value: f64) {
        if let Some((_, c)) = self.counters.iter().find(|(s, _)| s.name == spec.name) {
            c.with_label_values(labels).inc_by(value);
        }
    }

    fn gauge(&self, spec: &MetricSpec, labels: &[&str], value: f64) {
        if let Some((_, g)) = self.gauges.iter().find(|(s, _)| s.name == spec.name) {
            g.with_label_values(labels).set(value);
        }
    }
}

/// The engine's metrics: installed versions' series and histograms.
pub struct DataflowMetrics {
    log: Arc<dyn Log>,
    versions: Mutex<BTreeMap<VersionId, Installed>>,
    scraped: Mutex<Scraped>,
    descs: Vec<Desc>,
    apply_seconds: HistogramVec,
    freshness_seconds: HistogramVec,
}

impl DataflowMetrics {
    /// Creates the engine's metrics, reading log ends from `log`, and registers them.
    pub fn register(registry: &Registry, log: Arc<dyn Log>) -> prometheus::Result<Arc<Self>> {
        let scraped = Scraped::new();
        let descs = scraped
            .counters
            .iter()
            .flat_map(|(_, c)| c.desc().into_iter().cloned())
            .chain(
                scraped
                    .gauges
                    .iter()
                    .flat_map(|(_, g)| g.desc().into_iter().cloned()),
            )
            .collect();
        let metrics = Arc::new(DataflowMetrics {
            log,
            versions: Mutex::default(),
            scraped: Mutex::new(scraped),
            descs,
            apply_seconds: APPLY_SECONDS.histogram_vec(FAST_BUCKETS),
            freshness_seconds: FRESHNESS_SECONDS.histogram_vec(FRESHNESS_BUCKETS),
        });
        registry.register(Box::new(metrics.apply_seconds.clone()))?;
        registry.register(Box::new(metrics.freshness_seconds.clone()))?;
        registry.register(Box::new(ScrapeHandle(metrics.clone())))?;
        Ok(metrics)
    }

    /// Starts reporting a newly installed version.
    pub(crate) fn add_version(&self, id: &VersionId, plan: &Plan, store: &Arc<ViewStore>) {
        let version = id.version.to_string();
        let labels = [id.pipeline.as_str(), version.as_str()];
        store.set_metrics(StoreMetrics {
            apply_seconds: self.apply_seconds.with_label_values(&labels),
            freshness_seconds: self.freshness_seconds.with_label_values(&labels),
        });
        let mut topics: Vec<String> = plan.sources.iter().map(|s| s.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        self.versions.lock().expect("metrics lock").insert(
            id.clone(),
            Installed {
                store: Arc::downgrade(store),
                topics,
            },
        );
    }

    /// Removes every series of a retired version.
    pub(crate) fn remove_version(&self, id: &VersionId) {
        self.versions.lock().expect("metrics lock").remove(id);
        let version = id.version.to_string();
        let labels = [id.pipeline.as_str(), version.as_str()];
        let _ = self.apply_seconds.remove_label_values(&labels);
        let _ = self.freshness_seconds.remove_label_values(&labels);
    }

    fn fill(&self, scraped: &Scraped) {
        let versions: Vec<(VersionId, Arc<ViewStore>, Vec<String>)> = self
            .versions
            .lock()
            .expect("metrics lock")
            .iter()
            .filter_map(|(id, v)| Some((id.clone(), v.store.upgrade()?, v.topics.clone())))
            .collect();
        for (id, store, topics) in versions {
            let mut ends = BTreeMap::new();
            for topic in &topics {
                let partitions = self.log.partition_count(topic).unwrap_or(0);
                for partition in 0..partitions {
                    if let Ok(end) = self.log.end_offset(topic, partition) {
                        ends.insert((topic.clone(), partition), end);
                    }
                }
            }
            let version = id.version.to_string();
            let v = [id.pipeline.as_str(), version.as_str()];
            store.read(|s| {
                scraped.gauge(&FRONTIER, &v, s.frontier as f64 / 1000.0);
                scraped.counter(&DEAD_LETTERS, &v, s.error_count);
                scraped.counter(&CHANGE_BATCHES, &v, s.seq);
                scraped.gauge(&SUBSCRIBERS, &v, store.subscriber_count() as f64);
                let activity = store.activity();
                scraped.counter_f64(&BUSY_SECONDS, &v, activity.busy.as_secs_f64());
                for (arrangement, records) in activity.records_by_arrangement() {
                    let labels = [v[0], v[1], arrangement.as_str()];
                    scraped.gauge(&ARRANGEMENT_RECORDS, &labels, records as f64);
                }
                for (arrangement, bytes) in activity.bytes_by_arrangement() {
                    let labels = [v[0], v[1], arrangement.as_str()];
                    scraped.gauge(&ARRANGEMENT_BYTES, &labels, bytes as f64);
                }
                for view in &s.views {
                    let labels = [v[0], v[1], view.name.as_str()];
                    let rows = view.rows.len();
                    let bytes = view.rows.estimated_bytes(SIZE_SAMPLE);
                    scraped.gauge(&VIEW_ROWS, &labels, rows as f64);
                    scraped.gauge(&VIEW_BYTES, &labels, bytes as f64);
                }
                for ((topic, partition), end) in &ends {
                    let p = s
                        .offsets
                        .get(&(topic.clone(), *partition))
                        .cloned()
                        .unwrap_or_default();
                    let partition = partition.to_string();
                    let labels = [v[0], v[1], topic.as_str(), partition.as_str()];
                    scraped.counter(&SOURCE_RECORDS, &labels, p.records);
                    scraped.counter(&SOURCE_BYTES, &labels, p.bytes);
                    scraped.counter(&DECODE_ERRORS, &labels, p.decode_errors);
                    scraped.counter(&LATE_EVENTS, &labels, p.late);
                    scraped.gauge(&SOURCE_OFFSET, &labels, p.next_offset as f64);
                    scraped.gauge(
                        &SOURCE_LAG,
                        &labels,
                        end.saturating_sub(p.next_offset) as f64,
                    );
                    if let Some(watermark) = p.watermark_ms {
                        scraped.gauge(&WATERMARK, &labels, watermark as f64 / 1000.0);
                    }
                }
                // Read health also for partitions whose end offset could not be asked
                // (exactly when the log is unreachable).
                let known = ends.keys().chain(s.offsets.keys());
                for key in known.collect::<std::collections::BTreeSet<_>>() {
                    let (errors, failing) = s
                        .offsets
                        .get(key)
                        .map_or((0, 0), |p| (p.read_errors, p.failing_reads));
                    let partition = key.1.to_string();
                    let labels = [v[0], v[1], key.0.as_str(), partition.as_str()];
                    scraped.counter(&SOURCE_READ_ERRORS, &labels, errors);
                    let unreachable = if failing > 0 { 1.0 } else { 0.0 };
                    scraped.gauge(&SOURCE_UNREACHABLE, &labels, unreachable);
                }
            });
        }
    }
}

/// The registered collector of the scrape-time series.
struct ScrapeHandle(Arc<DataflowMetrics>);

impl Collector for ScrapeHandle {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let scraped = self.0.scraped.lock().unwrap_or_else(|e| e.into_inner());
        for (_, c) in &scraped.counters {
            c.reset();
        }
        for (_, g) in &scraped.gauges {
            g.reset();
        }
        self.0.fill(&scraped);
        scraped
            .counters
            .iter()
            .flat_map(|(_, c)| c.collect())
            .chain(scraped.gauges.iter().flat_map(|(_, g)| g.collect()))
            .collect()
    }
}
