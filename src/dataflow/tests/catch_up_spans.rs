//! While a source reads history, its batches share logical times (spans): a replay
//! of many batches changes each view a few times, not once per batch, and gives the
//! same answer as a run that gives every batch its own time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kappa_dataflow::runtime::changelog_topic;
use kappa_dataflow::{start, RunConfig};
use kappa_log::{Log, MemLog, NewRecord};
use serde_json::Value;

const PIPELINE: &str = "\
CREATE SOURCE lines (word TEXT) WITH (topic = 'lines', format = 'json');
CREATE VIEW counts AS SELECT word, COUNT(*) AS n FROM lines GROUP BY word;
";

/// A log of 2 × 2,000 records, appended at `appended_ms`.
fn log_of(appended_ms: i64) -> Arc<MemLog> {
    let log = Arc::new(MemLog::new());
    log.create_topic("lines", 2).unwrap();
    for partition in 0..2 {
        let records: Vec<NewRecord> = (0..2_000)
            .map(|i| NewRecord::new(format!(r#"{{"word":"w{}"}}"#, i % 7), appended_ms))
            .collect();
        log.append("lines", partition, &records).unwrap();
    }
    log
}

/// Replays a log appended at `appended_ms` in batches of 100 records with spans of
/// `span` records, and returns the view's final state and the distinct times of
/// its changelog.
fn replay(appended_ms: i64, span: usize) -> (BTreeMap<String, i64>, BTreeSet<i64>) {
    let log = log_of(appended_ms);
    let plan = Arc::new(kappa_sql::compile_str("words.sql", PIPELINE).unwrap());
    let mut config = RunConfig::threads(1);
    config.source.bounded = true;
    config.source.max_batch_records = 100;
    config.source.catch_up_span_records = span;
    let running = start(plan, log.clone(), config).unwrap();
    let store = running.store().clone();
    running.join().unwrap();
    let state = store.read(|s| {
        s.view("counts")
            .unwrap()
            .iter_rows()
            .map(|row| (format!("{row:?}"), 1))
            .collect()
    });
    let topic = changelog_topic("words", "counts");
    let times = log
        .read(&topic, 0, 0, usize::MAX, usize::MAX)
        .unwrap()
        .iter()
        .map(|record| {
            let change: Value = serde_json::from_slice(&record.payload).unwrap();
            change["time"].as_i64().unwrap()
        })
        .collect();
    (state, times)
}

#[test]
fn a_replay_shares_times_across_batches_and_answers_the_same() {
    let (spanned, spanned_times) = replay(0, 1_000);
    let (unspanned, unspanned_times) = replay(0, 0);
    assert_eq!(spanned, unspanned);
    assert_eq!(spanned.len(), 7);
    // 4,000 records, 200 per read (100 from each partition): spans of 1,000
    // records close after 5 reads, so 4 spans; without spans, 20 batches.
    assert!(
        spanned_times.len() <= 4,
        "{} changelog times with spans",
        spanned_times.len()
    );
    assert!(
        unspanned_times.len() >= 10,
        "{} changelog times without spans",
        unspanned_times.len()
    );
}

#[test]
fn records_appended_just_now_get_a_time_per_batch() {
    let now = kappa_dataflow::source::now_ms() as i64;
    let (_, times) = replay(now, 1_000);
    assert!(times.len() >= 10, "{} changelog times", times.len());
}
