//! A restart while the log is unreachable does not fail the versions in the
//! catalog: they wait, say so in `status()` and the metrics, are retried with
//! backoff, and start — rebuilding their views from the log — once it answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kappa_controller::{Controller, ControllerConfig, Registry};
use kappa_dataflow::Engine;
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn version(controller: &Controller) -> Value {
    controller.status()["pipelines"][0]["versions"][0].clone()
}

fn rows(controller: &Controller) -> u64 {
    version(controller)["progress"]["views"][0]["rows"]
        .as_u64()
        .unwrap_or(0)
}

fn open(dir: &std::path::Path, log: Arc<dyn Log>) -> (Arc<Engine>, Arc<Controller>) {
    let engine = Arc::new(Engine::start(timely::CommunicationConfig::Thread, log.clone()).unwrap());
    let controller = Controller::open(
        dir.to_path_buf(),
        log,
        engine.clone(),
        Arc::new(Registry::new()),
        ControllerConfig::default(),
    )
    .expect("the controller opens even though its log is down");
    (engine, controller)
}

fn waiting_gauge(registry: &prometheus::Registry) -> Option<f64> {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(r#"kappa_version_waiting_for_log{pipeline="words",version="1"} "#)
        })
        .and_then(|v| v.parse().ok())
}

#[test]
fn versions_wait_for_an_unreachable_log_at_restart_and_start_when_it_answers() {
    let memory = Arc::new(MemLog::new());
    memory.create_topic("lines", 1).unwrap();
    let records: Vec<NewRecord> = ["a", "b", "a"]
        .iter()
        .map(|w| NewRecord::new(format!(r#"{{"word":"{w}"}}"#), 0))
        .collect();
    memory.append("lines", 0, &records).unwrap();
    let log = Arc::new(UnreliableLog::new(memory.clone()));
    let dir = tempfile::tempdir().unwrap();

    let (engine, controller) = open(dir.path(), log.clone());
    controller.deploy("words.sql", PIPELINE).unwrap();
    wait_until("v1 is active", || {
        controller.tick().unwrap();
        version(&controller)["state"] == "active" && rows(&controller) == 2
    });
    drop(controller);
    engine.shutdown().unwrap();

    // Restart with the log down.
    log.fail_all(true);
    let (engine, controller) = open(dir.path(), log.clone());
    let metrics = prometheus::Registry::new();
    kappa_controller::metrics::register(&controller, &metrics).unwrap();
    let v1 = version(&controller);
    assert_eq!(v1["state"], "active", "{v1}");
    assert!(
        v1["waiting_for_log"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable")),
        "{v1}"
    );
    assert_eq!(v1["progress"], Value::Null);
    assert!(!controller.ready());
    assert_eq!(waiting_gauge(&metrics), Some(1.0));
    std::thread::sleep(Duration::from_millis(1100));
    controller
        .tick()
        .expect("a waiting version does not fail the tick");
    let v1 = version(&controller);
    assert!(
        v1["waiting_for_log"]["failures"].as_u64().unwrap() >= 2,
        "{v1}"
    );

    // The log answers again: the version starts and rebuilds its views.
    log.fail_all(false);
    wait_until("v1 runs again with its views rebuilt", || {
        controller.tick().unwrap();
        rows(&controller) == 2
    });
    let v1 = version(&controller);
    assert_eq!(v1["state"], "active", "{v1}");
    assert_eq!(v1["waiting_for_log"], Value::Null);
    assert_eq!(waiting_gauge(&metrics), Some(0.0));
    wait_until("it is ready", || {
        controller.tick().unwrap();
        controller.ready()
    });
    drop(controller);
    engine.shutdown().unwrap();
}
