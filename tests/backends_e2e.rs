//! The same pipeline, end to end on the real binary, on each log backend: the
//! embedded log always, a Fluvio cluster when `KAPPA_FLUVIO_ENDPOINT` is set (the test
//! says that it was skipped, and why, otherwise). Only the log flags differ:
//!
//! 1. `kappa topic create` and `kappa produce` the word-count input, two records of it
//!    undecodable;
//! 2. `kappa run --until-end` prints the right views and dead-letter count, and leaves
//!    a changelog topic whose folded changes equal the expected counts and a
//!    dead-letter topic with both bad records, their reason and offset;
//! 3. `kappa serve` + `kappa deploy` of the same pipeline under another name: the views
//!    over HTTP equal the expected counts, follow records ingested over HTTP, and the
//!    changelog catches up with them; `GET /v1/status` and `kappa status` report
//!    every source partition readable, and `/metrics` says `kappa_source_unreachable`
//!    0; SIGTERM exits 0.
//!
//! Run it against a local cluster with
//! `KAPPA_FLUVIO_ENDPOINT=127.0.0.1:9003 cargo test --test backends_e2e`.

mod support;

use support::{fluvio_endpoint, HttpChild};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const KAPPA: &str = env!("CARGO_BIN_EXE_kappa");

/// One backend and a run of the scenario on it: names unique to the run, since a
/// Fluvio cluster keeps its topics between runs.
struct Env {
    data: tempfile::TempDir,
    /// `--log ...` and its options.
    log_args: Vec<String>,
    run: String,
}

impl Env {
    fn new(log_args: &[&str]) -> Env {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        Env {
            data: tempfile::tempdir().unwrap(),
            log_args: log_args.iter().map(|a| a.to_string()).collect(),
            run: format!("{}x{}", std::process::id(), millis % 100_000_000),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(KAPPA);
        command
            .arg("--data-dir")
            .arg(self.data.path())
            .args(&self.log_args)
            .env_remove("RUST_LOG")
            .env_remove("KAPPA_LOG")
            .env_remove("KAPPA_FLUVIO_ENDPOINT");
        command
    }

    fn kappa(&self, args: &[&str]) -> String {
        ok(self.command().args(args).output().expect("run kappa"), args)
    }

    fn kappa_with_input(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kappa");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        ok(child.wait_with_output().unwrap(), args)
    }

    fn topic(&self) -> String {
        format!("lines_{}", self.run)
    }

    /// The word-count pipeline reading this run's topic, saved as `NAME_RUN.sql`
    /// (a pipeline is named after its file).
    fn pipeline(&self, name: &str) -> (String, PathBuf) {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/wordcount.sql");
        let sql = std::fs::read_to_string(shipped)
            .unwrap()
            .replace("topic = 'lines'", &format!("topic = '{}'", self.topic()));
        assert!(
            sql.contains(&self.topic()),
            "wordcount.sql reads topic 'lines'"
        );
        let pipeline = format!("{name}_{}", self.run);
        let path = self.data.path().join(format!("{pipeline}.sql"));
        std::fs::write(&path, sql).unwrap();
        (pipeline, path)
    }

    /// The payloads of every record of `topic`, partition by partition; `None` while
    /// the topic does not exist (a new Fluvio topic takes a moment to be known).
    fn consume(&self, topic: &str) -> Option<Vec<Value>> {
        let out = self.command().args(["consume", topic]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("unknown topic") {
            return None;
        }
        let text = ok(out, &["consume", topic]);
        let payloads = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")));
        Some(payloads.collect())
    }

    /// A changelog topic folded into `word -> occurrences`.
    fn folded_changelog(&self, topic: &str) -> Option<BTreeMap<String, i64>> {
        let mut rows: BTreeMap<(String, i64), i64> = BTreeMap::new();
        for change in self.consume(topic)? {
            let word = change["row"]["word"].as_str().unwrap().to_string();
            let n = change["row"]["occurrences"].as_i64().unwrap();
            *rows.entry((word, n)).or_default() += change["diff"].as_i64().unwrap();
        }
        let rows = rows.into_iter().filter(|(_, diff)| *diff != 0);
        let folded = rows.map(|((word, n), diff)| {
            assert_eq!(diff, 1, "{word} has one row");
            (word, n)
        });
        Some(folded.collect())
    }
}

fn ok(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "kappa {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Lines of text from a small vocabulary; `lines(a..b)` are distinct runs.
fn lines(range: std::ops::Range<usize>) -> Vec<String> {
    const WORDS: [&str; 7] = ["The", "quick", "brown", "fox", "jumps", "over", "dogs"];
    range
        .map(|i| {
            let words: Vec<&str> = (0..1 + i % 4).map(|k| WORDS[(i + 3 * k) % 7]).collect();
            json!({ "line": words.join(" ") }).to_string()
        })
        .collect()
}

/// The counts the pipeline must compute from `lines`.
fn expected_counts(lines: &[String]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let line: Value = serde_json::from_str(line).unwrap();
        for word in line["line"].as_str().unwrap().to_lowercase().split(' ') {
            *counts.entry(word.to_string()).or_default() += 1;
        }
    }
    counts
}

/// Records that are JSON but not a word-count line.
const BAD: [&str; 2] = [r#"["not", "an", "object"]"#, r#""just a string""#];

/// `kappa serve` on a free port, killed if the test fails first.
struct Server(HttpChild);

impl std::ops::Deref for Server {
    type Target = HttpChild;
    fn deref(&self) -> &HttpChild {
        &self.0
    }
}

impl Server {
    fn start(env: &Env) -> Server {
        let mut command = env.command();
        command.args(["serve", "--auto-promote", "--workers", "2"]);
        Server(HttpChild::start(command))
    }

    fn text(&self, path: &str) -> String {
        let response = self.http.get(format!("{}{path}", self.base)).send();
        response.expect("GET").text().expect("a text body")
    }

    /// `word_counts` of `pipeline` as `word -> occurrences`, once it is served.
    fn word_counts(&self, pipeline: &str) -> Option<BTreeMap<String, i64>> {
        let path = format!("/v1/pipelines/{pipeline}/views/word_counts?limit=10000");
        let (status, body) = self.get(&path)?;
        (status == 200).then(|| {
            body["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let word = r["word"].as_str().unwrap().to_string();
                    (word, r["occurrences"].as_i64().unwrap())
                })
                .collect()
        })
    }

    fn ingest(&self, topic: &str, lines: &[String]) {
        let response = self
            .http
            .post(format!("{}/v1/topics/{topic}/records", self.base))
            .body(lines.join("\n"))
            .send()
            .expect("POST records");
        assert_eq!(response.status().as_u16(), 200, "{:?}", response.text());
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        self.0.terminate()
    }
}

/// Waits until `read` returns `want`, and fails with the last value otherwise.
fn wait_for_value<T: PartialEq + std::fmt::Debug>(
    what: &str,
    want: &T,
    mut read: impl FnMut() -> Option<T>,
) {
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        last = read();
        if last.as_ref() == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: wanted {want:?}, last saw {last:?}");
}

/// The whole scenario on one backend.
fn pipeline_end_to_end(env: &Env) {
    let topic = env.topic();
    env.kappa(&["topic", "create", &topic, "--partitions", "2"]);
    let first = lines(0..300);
    let mut input = first.clone();
    input.insert(40, BAD[0].to_string());
    input.insert(200, BAD[1].to_string());
    env.kappa_with_input(&["produce", &topic], &(input.join("\n") + "\n"));
    let want = expected_counts(&first);

    // A bounded run: its printed views, its changelog and its dead letters.
    let (bounded, file) = env.pipeline("bounded");
    let printed = env.kappa(&[
        "run",
        file.to_str().unwrap(),
        "--until-end",
        "--workers",
        "2",
        "--print-rows",
        "100",
    ]);
    assert!(
        printed.contains(&format!("word_counts ({} rows)", want.len())),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "records read: {}, late dropped: 0, dead letters: 2",
            input.len()
        )),
        "{printed}"
    );
    for (word, n) in &want {
        assert!(
            printed.lines().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells == [word.as_str(), &n.to_string()]
            }),
            "{word} {n} not printed:\n{printed}"
        );
    }
    let changelog = env.folded_changelog(&format!("{bounded}.word_counts"));
    assert_eq!(changelog.as_ref(), Some(&want));
    let dead: Vec<Value> = env.consume(&format!("{bounded}.dead_letter")).unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let mut payloads: Vec<&str> = dead
        .iter()
        .map(|d| d["payload"].as_str().unwrap())
        .collect();
    payloads.sort();
    let mut bad = BAD.to_vec();
    bad.sort();
    assert_eq!(payloads, bad);
    for d in &dead {
        assert_eq!(d["pipeline"], bounded.as_str());
        assert_eq!(d["origin"]["kind"], "source");
        assert_eq!(d["origin"]["topic"], topic.as_str());
        assert!(d["origin"]["offset"].is_u64(), "{d}");
        assert!(!d["reason"].as_str().unwrap().is_empty(), "{d}");
    }

    // Served: deploy, query, ingest, query again; status and metrics say healthy.
    let server = Server::start(env);
    let (served, file) = env.pipeline("served");
    let deployed = env.kappa(&["deploy", file.to_str().unwrap(), "--server", &server.base]);
    assert!(
        deployed.contains(&format!("deployed {served} v1")),
        "{deployed}"
    );
    wait_for_value("the served view", &want, || server.word_counts(&served));
    let second = lines(300..420);
    server.ingest(&topic, &second);
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let want = expected_counts(&all);
    wait_for_value("the view after ingesting", &want, || {
        server.word_counts(&served)
    });
    let changelog = format!("{served}.word_counts");
    wait_for_value("the served changelog", &want, || {
        env.folded_changelog(&changelog)
    });
    let top = server
        .get(&format!("/v1/pipelines/{served}/views/top_words"))
        .unwrap()
        .1;
    let mut by_count: Vec<(&String, &i64)> = want.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    assert_eq!(
        top["rows"][0],
        json!({"word": by_count[0].0, "occurrences": by_count[0].1})
    );

    let status = server.get("/v1/status").unwrap().1;
    let version = &status["pipelines"][0]["versions"][0];
    assert_eq!(version["caught_up"], true, "{status}");
    assert_eq!(
        version["progress"]["unreachable_partitions"],
        json!([]),
        "{status}"
    );
    let partitions = version["progress"]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{status}");
    assert!(partitions.iter().all(|p| p["read_errors"] == 0), "{status}");
    let table = env.kappa(&["status", "--server", &server.base]);
    let row = table
        .lines()
        .find(|l| l.contains(&served))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.split_whitespace().last() == Some("ok"), "{table}");
    let metrics = server.text("/metrics");
    for partition in 0..2 {
        let series = format!(
            r#"kappa_source_unreachable{{partition="{partition}",pipeline="{served}",topic="{topic}",version="1"}} 0"#
        );
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} not in /metrics"
        );
    }
    let status = server.terminate();
    assert!(status.success(), "kappa serve exited with {status}");
}

#[test]
fn the_pipeline_runs_end_to_end_on_the_embedded_log() {
    pipeline_end_to_end(&Env::new(&["--log", "embedded"]));
}

#[test]
fn the_pipeline_runs_end_to_end_on_fluvio() {
    let Some(endpoint) = fluvio_endpoint("the_pipeline_runs_end_to_end_on_fluvio") else {
        return;
    };
    pipeline_end_to_end(&Env::new(&[
        "--log",
        "fluvio",
        "--fluvio-endpoint",
        &endpoint,
    ]));
}
