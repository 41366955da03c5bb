//! `kappa run` end to end on the real binary: a temp data directory, a topic, the
//! clickstream pipeline served on a free port of 127.0.0.1, events ingested over
//! HTTP (including undecodable and late ones), and then:
//!
//! - every view, polled until its offsets reach the log's end, equals the batch
//!   oracle's evaluation of `pipelines/clickstream.sql` over the records in the log
//!   (read back from the data directory), in presentation order;
//! - a subscription (SSE) gets a `snapshot`, then a `changes` event for an event
//!   ingested after it;
//! - `kappa query` and `kappa export --format csv|jsonl` print what the API returns
//!   (an export is one snapshot, streamed as JSON lines by `.../export`);
//! - HTTP errors are 4xx JSON `{"error_code", "message"}` (unknown pipeline, view,
//!   column, topic; bad limit; malformed ingest);
//! - SIGTERM stops the server, which exits 0.
//!
//! Also: `kappa explain` of every shipped pipeline exits 0, and a bad pipeline file
//! exits non-zero naming `file:line:col`.

mod support;

use support::HttpChild;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kappa_log::{EmbeddedLog, EmbeddedOptions, Log};
use kappa_sql::oracle::{self, presentation_order, OracleInput};
use kappa_sql::plan::Plan;
use serde_json::{json, Value};

const KAPPA: &str = env!("CARGO_BIN_EXE_kappa");
const PARTITIONS: u32 = 2;
const BASE_TS: u64 = 1_700_000_000_000;

fn kappa(data: &Path, args: &[&str]) -> Output {
    Command::new(KAPPA)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run kappa")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kappa failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Polls `ready` every 20 ms for up to 60 s.
fn wait_until<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `kappa run` child process, killed if the test fails before stopping it.
struct Server(HttpChild);

impl std::ops::Deref for Server {
    type Target = HttpChild;
    fn deref(&self) -> &HttpChild {
        &self.0
    }
}

impl Server {
    fn start(data: &Path, pipeline: &Path) -> Server {
        let mut command = Command::new(KAPPA);
        command
            .arg("--data-dir")
            .arg(data)
            .arg("run")
            .arg(pipeline)
            .args(["--workers", "2"])
            .env_remove("RUST_LOG");
        Server(HttpChild::start(command))
    }

    fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).expect("GET");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// `GET path`: the status and the body as text.
    fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .expect("GET");
        (response.status().as_u16(), response.text().expect("a body"))
    }

    /// `POST /v1/topics/{topic}/records` with JSON lines; the status and body.
    fn ingest(&self, topic: &str, lines: &[String]) -> (u16, Value) {
        let response = self
            .http
            .post(format!(
                "{}/v1/topics/{topic}/records?key_field=user",
                self.base
            ))
            .body(lines.join("\n"))
            .send()
            .expect("POST records");
        let status = response.status().as_u16();
        (status, response.json().expect("a JSON answer"))
    }

    fn cli(&self, data: &Path, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--server", &self.base]);
        kappa(data, &all)
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        self.0.terminate()
    }
}

/// Click events: users and pages from small sets, some buys, times mostly
/// increasing with a few late ones (the pipeline's lateness is 5 s).
fn clicks(range: std::ops::Range<u64>) -> Vec<String> {
    range
        .map(|i| {
            let action = ["view", "click", "buy"][(i % 3) as usize];
            // Every 7th event is 9 s behind the stream: late unless its partition
            // has not seen anything newer yet.
            let ts = BASE_TS + i * 700 - if i % 7 == 6 { 9_000 } else { 0 };
            json!({
                "ts": ts,
                "user": format!("u{}", i % 5),
                "page": format!("/p/{}", (i * 3) % 4),
                "action": action,
                "amount": (i % 4) as f64 * 2.5,
            })
            .to_string()
        })
        .collect()
}

/// Records that are JSON (so ingest accepts them) but not valid clicks.
fn bad_clicks() -> Vec<String> {
    vec![
        json!({"user": "u1", "page": "/p/1"}).to_string(), // no ts (NOT NULL)
        json!({"user": "u2", "ts": "yesterday"}).to_string(), // not a timestamp
        json!({"user": "u3", "ts": BASE_TS, "amount": "free"}).to_string(),
        json!(["u4"]).to_string(), // not an object
    ]
}

/// The oracle over what the log holds now, read from the data directory.
fn oracle_views(data: &Path, plan: &Plan) -> (oracle::OracleOutput, BTreeMap<String, u64>) {
    let log = EmbeddedLog::open_read_only(data, EmbeddedOptions::default()).unwrap();
    let mut input = OracleInput::new();
    let mut ends = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let end = log.end_offset("clicks", partition).unwrap();
        ends.insert(partition.to_string(), end);
        input
            .topics
            .entry("clicks".into())
            .or_default()
            .resize(PARTITIONS as usize, Vec::new());
        let mut next = 0;
        while next < end {
            let records = log.read("clicks", partition, next, 1000, 1 << 20).unwrap();
            for record in &records {
                input.push("clicks", partition, record.payload.to_vec());
            }
            next = records.last().unwrap().offset + 1;
        }
    }
    (oracle::evaluate(plan, &input).unwrap(), ends)
}

/// The oracle's rows of `view` as the API presents them: JSON objects, in order.
fn oracle_rows(plan: &Plan, out: &oracle::OracleOutput, view: &str) -> Vec<Value> {
    let def = plan.view(view).unwrap();
    let columns = plan.view_columns(def);
    let mut rows = out.views[view].clone();
    presentation_order(def, &mut rows);
    rows.iter()
        .map(|row| {
            Value::Object(
                columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| (c.name.clone(), v.to_json()))
                    .collect(),
            )
        })
        .collect()
}

/// Polls a view until its offsets are `ends`, then returns the response.
fn view_at(server: &Server, view: &str, ends: &BTreeMap<String, u64>) -> Value {
    let path = format!("/v1/pipelines/clickstream/views/{view}?limit=10000");
    wait_until(&format!("{view} reflects offsets {ends:?}"), || {
        // Until the version is promoted the view answers 503; poll through it.
        let (status, body) = server.get(&path)?;
        if status != 200 {
            return None;
        }
        let offsets: BTreeMap<String, u64> =
            serde_json::from_value(body["offsets"]["clicks"].clone()).unwrap_or_default();
        (offsets == *ends).then_some(body)
    })
}

fn assert_error(server: &Server, path: &str, status: u16, code: &str) {
    let (got, body) = server.get(path).expect("GET");
    assert_eq!(got, status, "GET {path}: {body}");
    assert_eq!(body["error_code"], code, "GET {path}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "GET {path}: {body}"
    );
}

/// Reads SSE events (`event:` and `data:` lines) until one satisfies `wanted`.
fn next_event(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    mut wanted: impl FnMut(&str, &Value) -> bool,
) -> (String, Value) {
    let mut event = String::new();
    loop {
        let line = lines
            .next()
            .expect("the event stream ended")
            .expect("read the event stream");
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            let data: Value = serde_json::from_str(data.trim()).unwrap();
            if wanted(&event, &data) {
                return (event, data);
            }
        }
    }
}

#[test]
fn kappa_run_serves_the_oracle_views_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/clickstream.sql");
    let plan = kappa_sql::compile_file(&pipeline).unwrap();
    ok(&kappa(
        data,
        &["topic", "create", "clicks", "--partitions", "2"],
    ));
    let server = Server::start(data, &pipeline);

    // Ingest: valid clicks, late ones, and JSON that does not decode.
    let mut lines = clicks(0..60);
    lines.splice(10..10, bad_clicks());
    let (status, body) = server.ingest("clicks", &lines);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"], lines.len());

    // Every view, once it reflects the whole log, equals the oracle's rows.
    let (want, ends) = oracle_views(data, &plan);
    assert_eq!(ends.values().sum::<u64>(), lines.len() as u64);
    assert!(!want.late.is_empty(), "the events include late ones");
    assert_eq!(
        want.errors.len(),
        bad_clicks().len(),
        "the bad records are the oracle's only errors"
    );
    for view in &plan.views {
        let body = view_at(&server, &view.name, &ends);
        assert_eq!(
            body["rows"].as_array().unwrap(),
            &oracle_rows(&plan, &want, &view.name),
            "view {}",
            view.name
        );
        assert_eq!(body["total"], want.views[&view.name].len());
    }
    let listing = server.get_ok("/v1/pipelines/clickstream/views");
    let names: Vec<&str> = listing["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "page_minute_counts",
            "page_distinct_users",
            "user_revenue",
            "top_pages"
        ]
    );

    // Filters, limit and offset page through the presentation order.
    let top = server.get_ok("/v1/pipelines/clickstream/views/top_pages?limit=2&offset=1");
    let all_top = oracle_rows(&plan, &want, "top_pages");
    assert_eq!(top["rows"].as_array().unwrap(), &all_top[1..3]);
    let one = server.get_ok("/v1/pipelines/clickstream/views/user_revenue?user=u2");
    let u2: Vec<Value> = oracle_rows(&plan, &want, "user_revenue")
        .into_iter()
        .filter(|r| r["user"] == "u2")
        .collect();
    assert_eq!(one["rows"].as_array().unwrap(), &u2);

    // A subscription sees its snapshot, then the change an extra event makes.
    let response = server
        .http
        .get(format!(
            "{}/v1/pipelines/clickstream/views/page_distinct_users/subscribe",
            server.base
        ))
        .send()
        .expect("subscribe");
    assert_eq!(response.status().as_u16(), 200);
    let mut events = BufReader::new(response).lines();
    let (_, snapshot) = next_event(&mut events, |event, _| event == "snapshot");
    let mut snapshot_rows = snapshot["rows"].as_array().unwrap().clone();
    snapshot_rows.sort_by_key(|r| r.to_string());
    let mut want_rows = oracle_rows(&plan, &want, "page_distinct_users");
    want_rows.sort_by_key(|r| r.to_string());
    assert_eq!(snapshot_rows, want_rows);
    // A subscription to one key: its snapshot is that key's row, and it is sent
    // changes to that key only.
    let subscribe_to = |query: &str| {
        server
            .http
            .get(format!(
                "{}/v1/pipelines/clickstream/views/page_distinct_users/subscribe?{query}",
                server.base
            ))
            .send()
            .expect("subscribe")
    };
    let known_page = want_rows[0]["page"].as_str().unwrap().to_string();
    let one_page = subscribe_to(&format!("page={known_page}"));
    let (_, one_snapshot) = next_event(&mut BufReader::new(one_page).lines(), |event, _| {
        event == "snapshot"
    });
    assert_eq!(one_snapshot["rows"], json!([want_rows[0]]));
    let new_page = subscribe_to("page=/new");
    assert_eq!(new_page.status().as_u16(), 200);
    let mut new_page_events = BufReader::new(new_page).lines();
    let (_, empty) = next_event(&mut new_page_events, |event, _| event == "snapshot");
    assert_eq!(empty["rows"], json!([]));
    for (query, code) in [
        ("limit=1", "subscription_not_paged"),
        ("nope=1", "unknown_column"),
    ] {
        let refused = subscribe_to(query);
        assert_eq!(refused.status().as_u16(), 400, "{query}");
        let body: Value = refused.json().unwrap();
        assert_eq!(body["error_code"], code, "{query}");
    }
    // Another page's event first, in the same append: a subscription to `/new`
    // must not be sent its change.
    let other = json!({"ts": BASE_TS + 60_000, "user": "u9", "page": "/other", "action": "view"});
    let extra = json!({"ts": BASE_TS + 60_000, "user": "u9", "page": "/new", "action": "view"});
    let (status, body) = server.ingest("clicks", &[other.to_string(), extra.to_string()]);
    assert_eq!(status, 200, "{body}");
    let (_, first_change) = next_event(&mut new_page_events, |event, _| event == "changes");
    assert_eq!(
        first_change["changes"],
        json!([{"row": {"page": "/new", "users": 1}, "diff": 1}])
    );
    drop(new_page_events);
    let (_, change) = next_event(&mut events, |event, data| {
        event == "changes"
            && data["changes"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["row"]["page"] == "/new"))
    });
    let added: Vec<&Value> = change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["row"]["page"] == "/new")
        .collect();
    assert_eq!(
        added,
        [&json!({"row": {"page": "/new", "users": 1}, "diff": 1})]
    );
    drop(events);

    // The views again equal the oracle, now over the extra event too.
    let (want, ends) = oracle_views(data, &plan);
    for view in &plan.views {
        let body = view_at(&server, &view.name, &ends);
        assert_eq!(
            body["rows"].as_array().unwrap(),
            &oracle_rows(&plan, &want, &view.name),
            "view {} after the extra event",
            view.name
        );
    }

    // `kappa query` prints what the API returns.
    let api = server.get_ok("/v1/pipelines/clickstream/views/top_pages?limit=50");
    let printed: Value = serde_json::from_str(&ok(
        &server.cli(data, &["query", "clickstream", "top_pages", "--json"])
    ))
    .unwrap();
    assert_eq!(printed["rows"], api["rows"]);
    let table = ok(&server.cli(data, &["query", "clickstream", "top_pages"]));
    for row in api["rows"].as_array().unwrap() {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == row["page"]))
            .unwrap_or_else(|| panic!("{row} not in the table:\n{table}"));
        assert!(line.contains(&row["events"].to_string()), "{line}");
    }

    // `kappa export` prints every row, as CSV or JSON lines.
    let api = server.get_ok("/v1/pipelines/clickstream/views/user_revenue?limit=10000");
    let api_rows = api["rows"].as_array().unwrap();
    let jsonl = ok(&server.cli(
        data,
        &["export", "clickstream", "user_revenue", "--format", "jsonl"],
    ));
    let exported: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&exported, api_rows);
    let csv = ok(&server.cli(
        data,
        &["export", "clickstream", "user_revenue", "--format", "csv"],
    ));
    let mut csv_lines = csv.lines();
    assert_eq!(csv_lines.next(), Some("user,revenue,purchases"));
    let expected_csv: Vec<String> = api_rows
        .iter()
        .map(|r| {
            let revenue = match &r["revenue"] {
                Value::Null => String::new(),
                v => v.to_string(),
            };
            format!(
                "{},{revenue},{}",
                r["user"].as_str().unwrap(),
                r["purchases"]
            )
        })
        .collect();
    assert_eq!(
        csv_lines.map(String::from).collect::<Vec<_>>(),
        expected_csv
    );

    // The export endpoint: one snapshot as JSON lines, a header first; filters
    // apply, paging does not.
    let (status, text) =
        server.get_text("/v1/pipelines/clickstream/views/user_revenue/export?user=u1");
    assert_eq!(status, 200, "{text}");
    let mut export_lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let header = export_lines.next().expect("a header line");
    let exported: Vec<Value> = export_lines.collect();
    let queried = server.get_ok("/v1/pipelines/clickstream/views/user_revenue?user=u1");
    assert!(!exported.is_empty());
    assert_eq!(&exported, queried["rows"].as_array().unwrap());
    assert_eq!(header["total"], exported.len());
    assert_eq!(header["columns"], queried["columns"]);
    assert!(header["frontier"].is_u64() && header["offsets"]["clicks"].is_object());
    assert_error(
        &server,
        "/v1/pipelines/clickstream/views/user_revenue/export?limit=5",
        400,
        "export_not_paged",
    );

    // Errors are 4xx JSON with a code and a message.
    assert_error(
        &server,
        "/v1/pipelines/nope/views/top_pages",
        404,
        "unknown_pipeline",
    );
    assert_error(
        &server,
        "/v1/pipelines/clickstream/views/nope",
        404,
        "unknown_view",
    );
    assert_error(
        &server,
        "/v1/pipelines/clickstream/views/top_pages?colour=red",
        400,
        "unknown_column",
    );
    assert_error(
        &server,
        "/v1/pipelines/clickstream/views/top_pages?limit=many",
        400,
        "bad_parameter",
    );
    assert_error(
        &server,
        "/v1/pipelines/clickstream/views/top_pages?limit=100000000",
        400,
        "limit_too_large",
    );
    assert_error(&server, "/v1/no/such/route", 404, "no_route");
    let (status, body) = server.ingest("clicks", &["{not json".to_string()]);
    assert_eq!(
        (status, &body["error_code"]),
        (400, &json!("malformed_json"))
    );
    let (status, body) = server.ingest("nope", &[json!({"a": 1}).to_string()]);
    assert_eq!(
        (status, &body["error_code"]),
        (404, &json!("unknown_topic"))
    );
    let out = server.cli(data, &["query", "clickstream", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_view"));

    // SIGTERM stops the server cleanly; the log is then free for another writer.
    let status = server.terminate();
    assert!(status.success(), "kappa run exited with {status}");
    let log = EmbeddedLog::open(data, EmbeddedOptions::default()).unwrap();
    assert_eq!(
        (0..PARTITIONS)
            .map(|p| log.end_offset("clicks", p).unwrap())
            .sum::<u64>(),
        lines.len() as u64 + 2,
        "the clicks loaded, and the two appended while subscribed"
    );
}

#[test]
fn explain_accepts_every_shipped_pipeline_and_rejects_a_bad_one_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let pipelines = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut explained = 0;
    for entry in std::fs::read_dir(&pipelines).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sql") {
            let out = kappa(dir.path(), &["explain", path.to_str().unwrap()]);
            let text = ok(&out);
            assert!(text.contains("view "), "{}: {text}", path.display());
            explained += 1;
        }
    }
    assert!(explained >= 3, "pipelines/ holds the shipped pipelines");

    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "CREATE SOURCE s (x BIGINT) WITH (topic = 's');\n\nCREATE VIEW v AS SELECT y FROM s;\n",
    )
    .unwrap();
    let out = kappa(dir.path(), &["explain", bad.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:25", bad.display())),
        "file:line:col in:\n{stderr}"
    );
}
