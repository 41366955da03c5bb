//! Changelogs wait for an unreachable log rather than dropping changes: while
//! appends fail, the views keep moving and the changelog writer retries; once the
//! log answers again, the changelog topic sums to exactly the view's state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kappa_dataflow::runtime::changelog_topic;
use kappa_dataflow::{start, RunConfig};
use kappa_log::{Log, MemLog, NewRecord, UnreliableLog};
use serde_json::Value;

const PIPELINE: &str = "\
CREATE SOURCE lines (word TEXT) WITH (topic = 'lines', format = 'json');
CREATE VIEW counts AS SELECT word, COUNT(*) AS n FROM lines GROUP BY word;
";

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the changelog topic sums to: row (as JSON text) → multiplicity.
fn changelog_state(log: &dyn Log) -> BTreeMap<String, i64> {
    let mut state = BTreeMap::new();
    let topic = changelog_topic("words", "counts");
    for record in log.read(&topic, 0, 0, usize::MAX, usize::MAX).unwrap() {
        let change: Value = serde_json::from_slice(&record.payload).unwrap();
        *state.entry(change["row"].to_string()).or_insert(0) += change["diff"].as_i64().unwrap();
    }
    state.retain(|_, n| *n != 0);
    state
}

fn append(log: &dyn Log, words: &[&str]) {
    let records: Vec<NewRecord> = words
        .iter()
        .map(|w| NewRecord::new(format!(r#"{{"word":"{w}"}}"#), 0))
        .collect();
    log.append("lines", 0, &records).unwrap();
}

#[test]
fn changelog_appends_are_retried_until_the_log_answers() {
    let memory = Arc::new(MemLog::new());
    memory.create_topic("lines", 1).unwrap();
    let log = Arc::new(UnreliableLog::new(memory.clone()));
    let plan = Arc::new(kappa_sql::compile_str("words.sql", PIPELINE).unwrap());
    let running = start(plan, log.clone(), RunConfig::threads(1)).unwrap();
    let rows = |running: &kappa_dataflow::RunningPipeline| {
        running.store().read(|s| s.view("counts").unwrap().len())
    };
    append(memory.as_ref(), &["a", "b"]);
    wait_until("the first words are counted", || rows(&running) == 2);
    wait_until("their changes are in the changelog", || {
        changelog_state(memory.as_ref()).len() == 2
    });

    log.fail_appends(true);
    append(memory.as_ref(), &["a", "c", "d"]);
    wait_until("the view moves on", || rows(&running) == 4);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        changelog_state(memory.as_ref()).len(),
        2,
        "nothing is appended while the log refuses appends"
    );

    log.fail_appends(false);
    let expected: BTreeMap<String, i64> = [("a", 2), ("b", 1), ("c", 1), ("d", 1)]
        .into_iter()
        .map(|(w, n)| (serde_json::json!({"word": w, "n": n}).to_string(), 1))
        .collect();
    wait_until("the changelog catches up with the view", || {
        changelog_state(memory.as_ref()) == expected
    });
    running.shutdown().unwrap();
}
