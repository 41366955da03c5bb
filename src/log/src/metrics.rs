//! The log's Prometheus metrics, and [`MetricSpec`], the catalog entry every
//! subsystem's `metrics.rs` declares its series with.
//!
//! Each subsystem lists its series as `const` [`MetricSpec`]s (name, type, labels,
//! help) and builds its metrics from them, so the catalog kept in the repository
//! (`k8s/monitoring/metrics-catalog.json`) is generated from the same constants the
//! code registers. Metrics go into a [`prometheus::Registry`] passed in, never the
//! global default.
//!
//! The embedded log counts appends (batches, records, bytes) and fsyncs with their
//! latency as they happen (one counter bump per batch, never per record); segment
//! counts, bytes on disk and end offsets are read at scrape time
//! ([`EmbeddedLog::register_metrics`](crate::EmbeddedLog::register_metrics)).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry,
};
use serde::Serialize;

/// A metric's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// One catalog entry: what a series is called, its type, labels and help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MetricSpec {
    /// The metric's name (`kappa_…`).
    pub name: &'static str,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Its variable labels, in order.
    pub labels: &'static [&'static str],
    /// Its help text.
    pub help: &'static str,
}

/// Latency buckets for fast operations (fsync, appends, applying a batch): 50 µs to 10 s.
pub const FAST_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

impl MetricSpec {
    /// A counter with this spec's labels.
    pub fn counter_vec(&self) -> IntCounterVec {
        debug_assert_eq!(self.kind, Kind::Counter, "{}", self.name);
        IntCounterVec::new(Opts::new(self.name, self.help), self.labels).expect("valid metric spec")
    }

    /// A counter of fractional amounts (seconds) with this spec's labels.
    pub fn float_counter_vec(&self) -> CounterVec {
        debug_assert_eq!(self.kind, Kind::Counter, "{}", self.name);
        CounterVec::new(Opts::new(self.name, self.help), self.labels).expect("valid metric spec")
    }

    /// A gauge with this spec's labels.
    pub fn gauge_vec(&self) -> GaugeVec {
        debug_assert_eq!(self.kind, Kind::Gauge, "{}", self.name);
        GaugeVec::new(Opts::new(self.name, self.help), self.labels).expect("valid metric spec")
    }

    /// A histogram with this spec's labels and `buckets`.
    pub fn histogram_vec(&self, buckets: &[f64]) -> HistogramVec {
        debug_assert_eq!(self.kind, Kind::Histogram, "{}", self.name);
        HistogramVec::new(
            HistogramOpts::new(self.name, self.help).buckets(buckets.to_vec()),
            self.labels,
        )
        .expect("valid metric spec")
    }
}

/// Append batches.
pub const APPENDS: MetricSpec = MetricSpec {
    name: "kappa_log_appends_total",
    kind: Kind::Counter,
    labels: &["topic"],
    help: "Batches appended to the log.",
};
/// Records appended.
pub const APPENDED_RECORDS: MetricSpec = MetricSpec {
    name: "kappa_log_appended_records_total",
    kind: Kind::Counter,
    labels: &["topic"],
    help: "Records appended to the log.",
};
/// Bytes appended, framing included.
pub const APPENDED_BYTES: MetricSpec = MetricSpec {
    name: "kappa_log_appended_bytes_total",
    kind: Kind::Counter,
    labels: &["topic"],
    help: "Bytes appended to the log's segment files, framing included.",
};
/// Append latency (write and, per batch durability, fsync).
pub const APPEND_SECONDS: MetricSpec = MetricSpec {
    name: "kappa_log_append_duration_seconds",
    kind: Kind::Histogram,
    labels: &[],
    help: "Time to append one batch, until it is durable per the fsync policy.",
};
/// Fsyncs.
pub const FSYNCS: MetricSpec = MetricSpec {
    name: "kappa_log_fsyncs_total",
    kind: Kind::Counter,
    labels: &[],
    help: "Fsyncs of segment files.",
};
/// Fsync latency.
pub const FSYNC_SECONDS: MetricSpec = MetricSpec {
    name: "kappa_log_fsync_duration_seconds",
    kind: Kind::Histogram,
    labels: &[],
    help: "Time one fsync of a segment file took.",
};
/// Segments per partition (scrape time).
pub const SEGMENTS: MetricSpec = MetricSpec {
    name: "kappa_log_segments",
    kind: Kind::Gauge,
    labels: &["topic", "partition"],
    help: "Segment files of a partition.",
};
/// Bytes on disk per partition (scrape time).
pub const DISK_BYTES: MetricSpec = MetricSpec {
    name: "kappa_log_disk_bytes",
    kind: Kind::Gauge,
    labels: &["topic", "partition"],
    help: "Bytes a partition's segments occupy on disk, framing included.",
};
/// End offset per partition (scrape time).
pub const END_OFFSET: MetricSpec = MetricSpec {
    name: "kappa_log_end_offset",
    kind: Kind::Gauge,
    labels: &["topic", "partition"],
    help: "The partition's high watermark: the next offset to be written.",
};

/// Every series of the log, for the catalog.
pub const CATALOG: &[MetricSpec] = &[
    APPENDS,
    APPENDED_RECORDS,
    APPENDED_BYTES,
    APPEND_SECONDS,
    FSYNCS,
    FSYNC_SECONDS,
    SEGMENTS,
    DISK_BYTES,
    END_OFFSET,
];

/// The log's event metrics, cheap to clone (handles to shared series).
#[derive(Clone, Debug)]
pub struct LogMetrics {
    pub(crate) appends: IntCounterVec,
    pub(crate) appended_records: IntCounterVec,
    pub(crate) appended_bytes: IntCounterVec,
    pub(crate) append_seconds: HistogramVec,
    pub(crate) fsyncs: IntCounterVec,
    pub(crate) fsync_seconds: HistogramVec,
}

impl LogMetrics {
    /// Creates the log's event metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = LogMetrics {
            appends: APPENDS.counter_vec(),
            appended_records: APPENDED_RECORDS.counter_vec(),
            appended_bytes: APPENDED_BYTES.counter_vec(),
            append_seconds: APPEND_SECONDS.histogram_vec(FAST_BUCKETS),
            fsyncs: FSYNCS.counter_vec(),
            fsync_seconds: FSYNC_SECONDS.histogram_vec(FAST_BUCKETS),
        };
        registry.register(Box::new(metrics.appends.clone()))?;
        registry.register(Box::new(metrics.appended_records.clone()))?;
        registry.register(Box::new(metrics.appended_bytes.clone()))?;
        registry.register(Box::new(metrics.append_seconds.clone()))?;
        registry.register(Box::new(metrics.fsyncs.clone()))?;
        registry.register(Box::new(metrics.fsync_seconds.clone()))?;
        Ok(metrics)
    }

    /// Records one appended batch.
    pub(crate) fn appended(&self, topic: &str, records: u64, bytes: u64, seconds: f64) {
        self.appends.with_label_values(&[topic]).inc();
        self.appended_records
            .with_label_values(&[topic])
            .inc_by(records);
        self.appended_bytes
            .with_label_values(&[topic])
            .inc_by(bytes);
        self.append_seconds
            .with_label_values::<&str>(&[])
            .observe(seconds);
    }

    /// Records one fsync.
    pub(crate) fn fsynced(&self, seconds: f64) {
        self.fsyncs.with_label_values::<&str>(&[]).inc();
        self.fsync_seconds
            .with_label_values::<&str>(&[])
            .observe(seconds);
    }
}

/// One partition as seen at scrape time.
#[derive(Clone, Debug)]
pub struct PartitionGauges {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Segment files.
    pub segments: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// The high watermark.
    pub end_offset: u64,
}

/// A collector whose gauges are computed when scraped, from a function that lists
/// the partitions.
pub struct ScrapeCollector {
    segments: GaugeVec,
    bytes: GaugeVec,
    end_offset: GaugeVec,
    source: Box<dyn Fn() -> Vec<PartitionGauges> + Send + Sync>,
    lock: std::sync::Mutex<()>,
}

impl ScrapeCollector {
    /// Gauges filled by `source` at every scrape.
    pub fn new(source: Box<dyn Fn() -> Vec<PartitionGauges> + Send + Sync>) -> Self {
        ScrapeCollector {
            segments: SEGMENTS.gauge_vec(),
            bytes: DISK_BYTES.gauge_vec(),
            end_offset: END_OFFSET.gauge_vec(),
            source,
            lock: std::sync::Mutex::new(()),
        }
    }
}

impl Collector for ScrapeCollector {
    fn desc(&self) -> Vec<&Desc> {
        [&self.segments, &self.bytes, &self.end_offset]
            .into_iter()
            .flat_map(|g| g.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one_scrape_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        for gauge in [&self.segments, &self.bytes, &self.end_offset] {
            gauge.reset();
        }
        for p in (self.source)() {
            let partition = p.partition.to_string();
            let labels = [p.topic.as_str(), partition.as_str()];
            self.segments
                .with_label_values(&labels)
                .set(p.segments as f64);
            self.bytes.with_label_values(&labels).set(p.bytes as f64);
            self.end_offset
                .with_label_values(&labels)
                .set(p.end_offset as f64);
        }
        [&self.segments, &self.bytes, &self.end_offset]
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_builds_and_names_are_unique() {
        let mut names: Vec<&str> = CATALOG.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        let registry = Registry::new();
        let metrics = LogMetrics::register(&registry).unwrap();
        metrics.appended("t", 3, 100, 0.001);
        metrics.fsynced(0.002);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(text.contains("kappa_log_appended_records_total{topic=\"t\"} 3"));
        assert!(text.contains("kappa_log_fsyncs_total 1"));
    }
}
