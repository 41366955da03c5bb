//! Reads of a finished pipeline's views, as the HTTP API makes them
//! (`GET /v1/pipelines/{p}/views/{v}?<column>=<value>&limit=`): the matching rows
//! copied out of the store under its read lock ([`ViewContents::copy_matching`]),
//! then ordered and paged outside it ([`ViewRows::page`]). Beside each, the same
//! read done the plain way, the yardstick: every row copied, unpacked, filtered as
//! values and sorted whole (what every read did until session 12, but for the copy,
//! which was then one allocation per row too long to be inline).
//!
//! The lock's hold time is reported apart: while a read holds it, the store's
//! applier waits, and so does every append's visibility.

use std::time::{Duration, Instant};

use kappa_dataflow::store::{RowFilter, ViewContents, ViewStore};
use kappa_sql::plan::{compare_rows, Plan};
use kappa_sql::{Row, Value};

use crate::clickstream::percentile;

/// One read: a view, equality filters by column name, and a page size.
pub struct Read {
    /// What the read is, as a query string.
    pub label: &'static str,
    view: &'static str,
    filters: &'static [(&'static str, &'static str)],
    /// Also fix the view's other key columns, to the values of the first row the
    /// filters match: a lookup by the whole key.
    whole_key: bool,
    limit: usize,
}

/// The reads timed on the clickstream's views: on the largest view, a lookup by
/// part of its key (one page's minutes), one by its whole key (one page's minute),
/// and its first page unfiltered; and a lookup of one page's distinct users (the
/// whole key of a small view).
pub const CLICKSTREAM_READS: [Read; 4] = [
    Read {
        label: "page_minute_counts?page=/p/3",
        view: "page_minute_counts",
        filters: &[("page", "/p/3")],
        whole_key: false,
        limit: 100,
    },
    Read {
        label: "page_minute_counts?page=/p/3&window_start=",
        view: "page_minute_counts",
        filters: &[("page", "/p/3")],
        whole_key: true,
        limit: 100,
    },
    Read {
        label: "page_minute_counts?limit=100",
        view: "page_minute_counts",
        filters: &[],
        whole_key: false,
        limit: 100,
    },
    Read {
        label: "page_distinct_users?page=/p/3",
        view: "page_distinct_users",
        filters: &[("page", "/p/3")],
        whole_key: false,
        limit: 100,
    },
];

/// Medians and 99th percentiles, in milliseconds, of one read done both ways.
#[derive(Debug)]
pub struct ReadTimes {
    /// The read.
    pub label: &'static str,
    /// Rows the read returned.
    pub returned: usize,
    /// Distinct rows in the view.
    pub view_rows: usize,
    /// Whole read and lock hold, the API's way: (p50, p99) each.
    pub packed: ((f64, f64), (f64, f64)),
    /// The same, every row copied, unpacked and sorted.
    pub plain: ((f64, f64), (f64, f64)),
}

/// Times `reads` `repeat` times each, both ways, checking that both return the
/// same rows.
pub fn time_reads(
    store: &ViewStore,
    plan: &Plan,
    reads: &[Read],
    repeat: usize,
) -> Result<Vec<ReadTimes>, String> {
    let mut out = Vec::new();
    for read in reads {
        let def = plan
            .view(read.view)
            .ok_or_else(|| format!("no view {}", read.view))?;
        let columns = plan.view_columns(def);
        let mut equal = Vec::new();
        for (name, text) in read.filters {
            let column = columns
                .iter()
                .position(|c| c.name == *name)
                .ok_or_else(|| format!("no column {name} in {}", read.view))?;
            equal.push((column, Value::text(text)));
        }
        if read.whole_key {
            let first = store
                .read(|s| {
                    s.view(read.view)
                        .map(|v| v.copy_matching(&RowFilter::new(equal.clone())))
                })
                .and_then(|copy| copy.page(&def.order_by, 0, 1).1.pop())
                .ok_or_else(|| format!("{}: no row to look up", read.label))?;
            for &column in &def.key {
                if !equal.iter().any(|(c, _)| *c == column) {
                    equal.push((column, first[column].clone()));
                }
            }
        }
        let filter = RowFilter::new(equal.clone());
        let view_rows = store.read(|s| s.view(read.view).map_or(0, |v| v.rows.len()));
        let (mut packed, mut plain) = (Timings::default(), Timings::default());
        let (mut packed_rows, mut plain_rows) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            let started = Instant::now();
            let (copy, held) = locked(store, read.view, |v| v.copy_matching(&filter));
            packed_rows = copy.page(&def.order_by, 0, read.limit).1;
            packed.add(started.elapsed(), held);

            let started = Instant::now();
            let (copy, held) = locked(store, read.view, ViewContents::copy_rows);
            let mut rows: Vec<Row> = copy
                .iter_unordered()
                .filter(|row| equal.iter().all(|(c, v)| &row[*c] == v))
                .collect();
            rows.sort_by(|a, b| compare_rows(&def.order_by, a, b).then_with(|| a.cmp(b)));
            rows.truncate(read.limit);
            plain_rows = rows;
            plain.add(started.elapsed(), held);
        }
        if packed_rows != plain_rows {
            return Err(format!(
                "{}: the two ways returned different rows",
                read.label
            ));
        }
        out.push(ReadTimes {
            label: read.label,
            returned: packed_rows.len(),
            view_rows,
            packed: packed.summary(),
            plain: plain.summary(),
        });
    }
    Ok(out)
}

/// What the status endpoint reads of every view under the store's lock (rows and
/// fingerprint), timed `repeat` times: (p50, p99) in milliseconds, kept as rows
/// change; and the same computed from the rows, as it was until session 12 (each
/// row unpacked, serialized to JSON and hashed).
pub fn time_status(store: &ViewStore, repeat: usize) -> ((f64, f64), (f64, f64)) {
    let (mut kept, mut computed) = (Timings::default(), Timings::default());
    for _ in 0..repeat {
        let started = Instant::now();
        let sums = store.read(|s| {
            s.views
                .iter()
                .map(|v| (v.len(), v.fingerprint()))
                .collect::<Vec<_>>()
        });
        std::hint::black_box(sums);
        kept.add(started.elapsed(), Duration::ZERO);
        let started = Instant::now();
        let sums = store.read(|s| {
            s.views
                .iter()
                .map(|v| {
                    v.rows.iter().fold((0u64, 0u64), |(len, acc), (row, n)| {
                        let bytes = serde_json::to_vec(&row).expect("rows serialize");
                        let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
                        (
                            len + n as u64,
                            acc.wrapping_add(hash.wrapping_mul(n as u64)),
                        )
                    })
                })
                .collect::<Vec<_>>()
        });
        std::hint::black_box(sums);
        computed.add(started.elapsed(), Duration::ZERO);
    }
    (kept.summary().0, computed.summary().0)
}

/// `copy` of the view named `view`, and how long the store's read lock was held.
fn locked<T>(
    store: &ViewStore,
    view: &str,
    copy: impl FnOnce(&ViewContents) -> T,
) -> (T, Duration) {
    store.read(|s| {
        let started = Instant::now();
        let copied = copy(s.view(view).expect("the view exists"));
        (copied, started.elapsed())
    })
}

/// Whole-read and lock-hold times of the repetitions of one read, one way.
#[derive(Default)]
struct Timings {
    whole: Vec<f64>,
    held: Vec<f64>,
}

impl Timings {
    fn add(&mut self, whole: Duration, held: Duration) {
        self.whole.push(whole.as_secs_f64() * 1e3);
        self.held.push(held.as_secs_f64() * 1e3);
    }

    fn summary(mut self) -> ((f64, f64), (f64, f64)) {
        let quantiles = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            (percentile(values, 0.5), percentile(values, 0.99))
        };
        (quantiles(&mut self.whole), quantiles(&mut self.held))
    }
}
