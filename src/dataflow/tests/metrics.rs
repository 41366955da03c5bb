//! The engine's metrics over a real dataflow: source counters and lag move with the
//! log, freshness is observed, and a retired version's series disappear.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kappa_dataflow::source::{now_ms, SourceConfig};
use kappa_dataflow::{Engine, VersionId};
use kappa_log::{Log, MemLog, NewRecord};

const PIPELINE: &str = "\
CREATE SOURCE lines (line TEXT) WITH (topic = 'lines', format = 'json');
CREATE VIEW word_counts AS
  SELECT word, COUNT(*) AS occurrences
  FROM lines CROSS JOIN UNNEST(string_to_array(lower(line), ' ')) AS w(word)
  GROUP BY word;
";

fn scrape(registry: &prometheus::Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap()
}

/// The value of the first sample whose line starts with `prefix`.
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn source_series_follow_the_log_and_vanish_on_retire() {
    let log = Arc::new(MemLog::new());
    log.create_topic("lines", 1).unwrap();
    let records: Vec<NewRecord> = (0..50)
        .map(|i| NewRecord::new(format!(r#"{{"line":"a b {i}"}}"#), now_ms() as i64))
        .chain(std::iter::once(NewRecord::new("not json", now_ms() as i64)))
        .collect();
    log.append("lines", 0, &records).unwrap();
    let engine = Engine::start(timely::CommunicationConfig::Thread, log.clone()).unwrap();
    let registry = prometheus::Registry::new();
    engine.register_metrics(&registry).unwrap();
    let plan = kappa_sql::compile_str("words.sql", PIPELINE).unwrap();
    let id = VersionId {
        pipeline: "words".into(),
        version: 1,
    };
    let store = engine.deploy(id.clone(), &plan, SourceConfig::default(), false);
    let labels = r#"{partition="0",pipeline="words",topic="lines",version="1"}"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&registry);
        if value(&text, &format!("kappa_source_lag_records{labels}")) == Some(0.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "lag never reached 0:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        value(&text, &format!("kappa_source_records_total{labels}")),
        Some(51.0)
    );
    assert_eq!(
        value(&text, &format!("kappa_source_decode_errors_total{labels}")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, &format!("kappa_source_offset{labels}")),
        Some(51.0)
    );
    assert_eq!(
        value(
            &text,
            r#"kappa_view_rows{pipeline="words",version="1",view="word_counts"}"#
        ),
        Some(52.0),
        "a, b and 0..49"
    );
    let fresh = value(
        &text,
        r#"kappa_freshness_seconds_count{pipeline="words",version="1"}"#,
    );
    assert!(fresh.is_some_and(|n| n >= 1.0), "{text}");
    // Operator activity and arrangement sizes, from timely's and differential's logs:
    // the dataflow ran, and its arrangements (the count's among them) hold updates.
    let busy = value(
        &text,
        r#"kappa_dataflow_busy_seconds_total{pipeline="words",version="1"}"#,
    );
    assert!(busy.is_some_and(|s| s > 0.0), "{text}");
    let held: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("kappa_dataflow_arrangement_records{") && l.contains(r#"version="1""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        held >= 52.0,
        "the arrangements hold at least the 52 counted words:\n{text}"
    );
    // Bytes: the count's arrangement, at its updates times the size of one update.
    let mut sized = 0;
    for line in text.lines().filter(|l| {
        l.starts_with("kappa_dataflow_arrangement_bytes{") && l.contains(r#"version="1""#)
    }) {
        let (series, bytes) = line.rsplit_once(' ').unwrap();
        let bytes: f64 = bytes.parse().unwrap();
        let records_series = series.replace("_bytes{", "_records{");
        let records = value(&text, &records_series).expect("records beside bytes");
        assert!(
            records > 0.0 && bytes >= 32.0 * records,
            "{line} vs {records}"
        );
        assert_eq!(
            bytes % records,
            0.0,
            "{line}: a whole number of bytes per update"
        );
        sized += 1;
    }
    assert!(sized >= 1, "the count's arrangement has a size:\n{text}");
    // Per operator: the source ran, and the busiest operators come first.
    let busiest = store.activity().busiest_operators(50);
    assert!(
        busiest
            .iter()
            .any(|(name, _, runs)| name.starts_with("Source(") && *runs > 0),
        "{busiest:?}"
    );
    assert!(busiest.windows(2).all(|w| w[0].1 >= w[1].1), "{busiest:?}");

    // More records raise the counters; lag is computed against the log end.
    log.append("lines", 0, &[NewRecord::new(r#"{"line":"c"}"#, 1)])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while value(
        &scrape(&registry),
        &format!("kappa_source_records_total{labels}"),
    ) != Some(52.0)
    {
        assert!(Instant::now() < deadline, "records never reached 52");
        std::thread::sleep(Duration::from_millis(20));
    }

    engine.retire(&id);
    let text = scrape(&registry);
    assert!(
        !text.contains(r#"version="1""#),
        "retired series remain:\n{text}"
    );
    engine.shutdown().unwrap();
}
