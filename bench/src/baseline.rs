//! The plain single-threaded baseline for the clickstream views.
//!
//! What a competent engineer would write by hand for the four views of
//! `pipelines/clickstream.sql`, without any engine: read each partition of the log
//! in order, parse each payload with serde_json into a struct borrowing from it,
//! drop late events by the same per-partition rule as kappa
//! ([`kappa_sql::lateness`]), intern pages and users to dense ids, and update hash
//! maps. It computes only the final state (no intermediate results, no consistency
//! across views, no fault tolerance), so it is the cost floor kappa is measured
//! against, not an equivalent system.
//!
//! It assumes the generated workload's shape (every field present, no escapes that
//! need an owned string are required: `Cow` handles them anyway).

use std::borrow::Cow;

use hashbrown::{HashMap, HashSet};
use kappa_log::{Log, LogError};
use kappa_sql::aggregate::{finish_sum, to_accumulator};
use kappa_sql::lateness::LatenessTracker;
use kappa_sql::{ScalarType, Value};
use serde::Deserialize;

use crate::clickstream::{cents, Answers, TOPIC};

/// The pipeline's allowed lateness (`lateness = '5s'`).
const LATENESS_MS: i64 = 5_000;
/// Tumbling window size of `page_minute_counts`.
const MINUTE_MS: i64 = 60_000;
/// How many pages `top_pages` keeps.
const TOP: usize = 10;

#[derive(Deserialize)]
struct Click<'a> {
    ts: i64,
    #[serde(borrow)]
    user: Cow<'a, str>,
    #[serde(borrow)]
    page: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    amount: f64,
}

/// Strings to dense ids.
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }
}

/// The four views' state.
#[derive(Default)]
struct Views {
    pages: Interner,
    users: Interner,
    /// `(page, window_start)` → events.
    minute_counts: HashMap<(u32, i64), i64>,
    /// `(page, user)` pairs seen.
    page_users: HashSet<(u32, u32)>,
    /// Per page id: distinct users.
    distinct_users: Vec<i64>,
    /// Per page id: events.
    page_events: Vec<i64>,
    /// user → (fixed-point revenue accumulator, purchases).
    revenue: HashMap<u32, (i128, i64)>,
}

impl Views {
    fn add(&mut self, click: &Click<'_>) {
        let page = self.pages.id(&click.page);
        let user = self.users.id(&click.user);
        if page as usize == self.page_events.len() {
            self.page_events.push(0);
            self.distinct_users.push(0);
        }
        *self
            .minute_counts
            .entry((page, click.ts - click.ts.rem_euclid(MINUTE_MS)))
            .or_insert(0) += 1;
        if self.page_users.insert((page, user)) {
            self.distinct_users[page as usize] += 1;
        }
        self.page_events[page as usize] += 1;
        if click.action == "buy" {
            let entry = self.revenue.entry(user).or_insert((0, 0));
            // The same exact fixed-point sum as kappa's SUM(DOUBLE), so that results
            // compare equal rather than nearly equal.
            entry.0 += to_accumulator(&Value::float(click.amount));
            entry.1 += 1;
        }
    }

    fn answers(&self) -> Answers {
        let mut top: Vec<u32> = (0..self.page_events.len() as u32).collect();
        let key = |p: &u32| {
            (
                std::cmp::Reverse(self.page_events[*p as usize]),
                &self.pages.names[*p as usize],
            )
        };
        top.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        Answers {
            minute_rows: self.minute_counts.len() as u64,
            minute_views: self.minute_counts.values().sum(),
            page_rows: self.distinct_users.len() as u64,
            page_users: self.distinct_users.iter().sum(),
            user_rows: self.revenue.len() as u64,
            purchases: self.revenue.values().map(|(_, n)| n).sum(),
            revenue_cents: self
                .revenue
                .values()
                .map(|(acc, n)| match finish_sum(ScalarType::Float, *acc, *n) {
                    Value::Float(f) => cents(f.get()),
                    _ => 0,
                })
                .sum(),
            top_pages: top
                .into_iter()
                .take(TOP)
                .map(|p| {
                    (
                        self.pages.names[p as usize].to_string(),
                        self.page_events[p as usize],
                    )
                })
                .collect(),
        }
    }
}

/// Computes the clickstream views over every record of [`TOPIC`] in `log`, reading
/// partitions one after the other in batches of the same size kappa's source reads.
/// Records that do not parse are skipped (the workload has none).
pub fn run(log: &dyn Log) -> Result<Answers, LogError> {
    let mut views = Views::default();
    for partition in 0..log.partition_count(TOPIC)? {
        let end = log.end_offset(TOPIC, partition)?;
        let mut lateness = LatenessTracker::new(LATENESS_MS);
        let mut offset = 0;
        while offset < end {
            let records = log.read(TOPIC, partition, offset, 16_384, 4 << 20)?;
            for record in &records {
                if let Ok(click) = serde_json::from_slice::<Click<'_>>(&record.payload) {
                    if lateness.admit(click.ts) {
                        views.add(&click);
                    }
                }
            }
            offset = records.last().map_or(end, |r| r.offset + 1);
        }
    }
    Ok(views.answers())
}
