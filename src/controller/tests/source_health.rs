//! A version whose log stops answering says so: `status()` lists its unreachable
//! partitions with the error, the metrics show `kappa_source_unreachable` 1 and count
//! the failed reads, and both clear once reads succeed again — without losing a record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kappa_controller::{Controller, ControllerConfig, Registry};
use kappa_dataflow::Engine;
use kappa_log::{Log, MemLog, NewRecord, UnreliableLog};
use serde_json::Value;

const PIPELINE: &str = "\
CREATE SOURCE lines (line TEXT) WITH (topic = 'lines', format = 'json');
CREATE VIEW word_counts AS
  SELECT word, COUNT(*) AS occurrences
  FROM lines CROSS JOIN UNNEST(string_to_array(lower(line), ' ')) AS w(word)
  GROUP BY word;
";

fn append(log: &dyn Log, lines: std::ops::Range<u32>) {
    for i in lines {
        let record = NewRecord::new(format!(r#"{{"line":"a w{i}"}}"#), 0);
        log.append("lines", i % 2, &[record]).unwrap();
    }
}

fn progress(controller: &Controller) -> Value {
    controller.status()["pipelines"][0]["versions"][0]["progress"].clone()
}

fn scrape(registry: &prometheus::Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap()
}

/// The sample of `metric` for partition `partition` of `words` v1.
fn sample(text: &str, metric: &str, partition: u32) -> Option<f64> {
    let labels = format!(
        r#"{metric}{{partition="{partition}",pipeline="words",topic="lines",version="1"}} "#
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&labels))
        .and_then(|v| v.parse().ok())
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rows of `word_counts`: one per distinct word.
fn words(controller: &Controller) -> u64 {
    progress(controller)["views"][0]["rows"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn an_unreachable_source_is_reported_in_status_and_metrics_and_clears_on_recovery() {
    let memory = Arc::new(MemLog::new());
    memory.create_topic("lines", 2).unwrap();
    let log = Arc::new(UnreliableLog::new(memory.clone()));
    let engine =
        Arc::new(Engine::start(timely::CommunicationConfig::Process(2), log.clone()).unwrap());
    let metrics = prometheus::Registry::new();
    engine.register_metrics(&metrics).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let controller = Controller::open(
        dir.path().to_path_buf(),
        log.clone(),
        engine.clone(),
        Arc::new(Registry::new()),
        ControllerConfig::default(),
    )
    .unwrap();
    controller.deploy("words.sql", PIPELINE).unwrap();
    append(memory.as_ref(), 0..10);
    // "a" and w0..w9.
    wait_until("the first lines are applied", || words(&controller) == 11);
    let healthy = progress(&controller);
    assert_eq!(healthy["unreachable_partitions"], serde_json::json!([]));
    let text = scrape(&metrics);
    assert_eq!(sample(&text, "kappa_source_unreachable", 0), Some(0.0));
    assert_eq!(
        sample(&text, "kappa_source_read_errors_total", 1),
        Some(0.0)
    );

    // The log goes away; new records wake the sources, whose reads now fail.
    log.fail_reads(true);
    append(memory.as_ref(), 10..20);
    wait_until("both partitions are reported unreachable", || {
        progress(&controller)["unreachable_partitions"]
            .as_array()
            .is_some_and(|u| u.len() == 2)
    });
    let stalled = progress(&controller);
    for (i, u) in stalled["unreachable_partitions"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!((&u["topic"], &u["partition"]), (&"lines".into(), &i.into()));
        assert!(u["error"].as_str().unwrap().contains("unreachable"), "{u}");
        assert!(u["consecutive_failures"].as_u64().unwrap() >= 1, "{u}");
        assert!(u["failed_at_ms"].as_u64().unwrap() > 0, "{u}");
    }
    wait_until("the metrics say so", || {
        let text = scrape(&metrics);
        (0..2).all(|p| {
            sample(&text, "kappa_source_unreachable", p) == Some(1.0)
                && sample(&text, "kappa_source_read_errors_total", p).unwrap_or(0.0) >= 1.0
        })
    });
    // Backoff: a second of failing costs a few dozen reads, not thousands.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        log.failed_reads() < 200,
        "{} failed reads",
        log.failed_reads()
    );
    assert_eq!(words(&controller), 11, "nothing new was read");
    controller
        .tick()
        .expect("an unreachable source does not fail the controller's tick");

    // Reads succeed again: the state clears and every record arrives.
    log.fail_reads(false);
    wait_until("every line is applied", || words(&controller) == 21);
    wait_until("the failing state clears", || {
        progress(&controller)["unreachable_partitions"] == serde_json::json!([])
    });
    let text = scrape(&metrics);
    for p in 0..2 {
        assert_eq!(sample(&text, "kappa_source_unreachable", p), Some(0.0));
        assert!(sample(&text, "kappa_source_read_errors_total", p).unwrap() >= 1.0);
    }
    controller.tick().unwrap();
    let recovered = progress(&controller);
    assert_eq!(recovered["partitions"].as_array().unwrap().len(), 2);
    for partition in recovered["partitions"].as_array().unwrap() {
        assert!(
            partition["read_errors"].as_u64().unwrap() >= 1,
            "{partition}"
        );
    }
    engine.shutdown().unwrap();
}
