//! Reprocessing as a workflow, end to end on the real binary: deploy v1, ingest,
//! deploy v2 (one view changed, one added) while ingesting, the diff gate refusing
//! and allowing, promote, roll back, retire, SIGKILL and restart — with queries
//! that never fail or mix versions, and changelog topics whose reconstruction
//! equals the active version's views after every step.

mod support;

use support::{free_port, wait_until};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

const KAPPA: &str = env!("CARGO_BIN_EXE_kappa");

fn kappa(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(KAPPA)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run kappa")
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path, files: &[&Path]) -> Server {
        let port = free_port();
        let child = Command::new(KAPPA)
            .arg("--data-dir")
            .arg(data)
            .arg("serve")
            .args(files)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kappa serve");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        wait_until("the server answers", || {
            server.try_get("/healthz").is_some()
        });
        server
    }

    fn try_get(&self, path: &str) -> Option<(u16, Value)> {
        let response = reqwest::blocking::get(format!("{}{path}", self.base)).ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().ok()?))
    }

    /// Whether the active version answers reads of `view` (it is caught up).
    fn serves(&self, view: &str) -> bool {
        self.try_get(&format!("/v1/pipelines/clickstream/views/{view}"))
            .is_some_and(|(status, _)| status == 200)
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.try_get(path).expect("request");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn cli(&self, data: &Path, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["--server", &self.base]);
        kappa(data, &all)
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn version(&self, version: u64) -> Value {
        let status = self.get("/v1/status");
        status["pipelines"][0]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version"] == version)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn events(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            let action = ["view", "click", "buy"][i % 3];
            format!(
                r#"{{"ts":{},"user":"u{}","page":"/p/{}","action":"{action}","amount":{}.5}}"#,
                1_700_000_000_000u64 + i as u64 * 10,
                i % 17,
                (i * 7) % 13,
                i % 5
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ingest(server: &Server, body: String) {
    let response = reqwest::blocking::Client::new()
        .post(format!(
            "{}/v1/topics/clicks/records?key_field=user",
            server.base
        ))
        .body(body)
        .send()
        .unwrap();
    assert!(response.status().is_success());
}

/// The rows of a view of the active version, as a multiset of JSON texts.
fn view_rows(server: &Server, view: &str) -> (u64, BTreeMap<String, i64>) {
    let body = server.get(&format!(
        "/v1/pipelines/clickstream/views/{view}?limit=100000"
    ));
    let mut rows = BTreeMap::new();
    for row in body["rows"].as_array().unwrap() {
        *rows.entry(row.to_string()).or_insert(0) += 1;
    }
    (body["version"].as_u64().unwrap(), rows)
}

/// What a consumer of `clickstream.<view>` reconstructs from offset 0.
fn changelog_rows(data: &Path, view: &str) -> BTreeMap<String, i64> {
    let output = kappa(
        data,
        &[
            "consume",
            &format!("clickstream.{view}"),
            "--from-beginning",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut rows: BTreeMap<String, i64> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let change: Value = serde_json::from_str(line).unwrap();
        *rows.entry(change["row"].to_string()).or_insert(0) += change["diff"].as_i64().unwrap();
    }
    rows.retain(|_, n| *n != 0);
    rows
}

fn assert_changelog_matches(server: &Server, data: &Path, views: &[&str]) {
    for view in views {
        wait_until(
            &format!("the changelog of {view} matches the active version"),
            || changelog_rows(data, view) == view_rows(server, view).1,
        );
    }
}

fn write_pipelines(dir: &Path) -> (PathBuf, PathBuf) {
    let v1 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/clickstream.sql"
    ))
    .unwrap();
    let v2 = format!(
        "{}\nCREATE VIEW action_counts AS SELECT action, COUNT(*) AS n FROM clicks GROUP BY action;\n",
        v1.replace("LIMIT 10;", "LIMIT 5;")
    );
    let (d1, d2) = (dir.join("v1"), dir.join("v2"));
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    std::fs::write(d1.join("clickstream.sql"), v1).unwrap();
    std::fs::write(d2.join("clickstream.sql"), v2).unwrap();
    (d1.join("clickstream.sql"), d2.join("clickstream.sql"))
}

/// A data directory with a `clicks` topic and a server running v1 of the pipeline;
/// returns the directory (keep it alive), the data dir, the v2 file and the server.
fn start_v1(partitions: u32) -> (tempfile::TempDir, PathBuf, PathBuf, Server) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (v1, v2) = write_pipelines(dir.path());
    let created = kappa(
        &data,
        &[
            "topic",
            "create",
            "clicks",
            "--partitions",
            &partitions.to_string(),
        ],
    );
    assert!(created.status.success());
    let server = Server::start(&data, &[&v1]);
    (dir, data, v2, server)
}

#[test]
fn deploy_promote_rollback_retire_and_restart() {
    let (_dir, data, v2, server) = start_v1(3);
    ingest(&server, events(0..500));
    wait_until("v1 is active and caught up", || server.serves("top_pages"));

    // Readers hammer the default route during everything that follows: every answer
    // is a 200 from one version, and a view only v2 has is never half there.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, base) = (stop.clone(), server.base.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let r = reqwest::blocking::get(format!(
                    "{base}/v1/pipelines/clickstream/views/top_pages"
                ))
                .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let body: Value = r.json().unwrap();
                let version = body["version"].as_u64().unwrap();
                let rows = body["rows"].as_array().unwrap().len();
                // v1 shows the top 10, v2 the top 5: the row count says which plan answered.
                assert!(
                    (version == 1 && rows <= 10) || (version == 2 && rows <= 5),
                    "{body}"
                );
                seen.push(version);
            }
            seen
        })
    };
    let writer = {
        let base = server.base.clone();
        std::thread::spawn(move || {
            for chunk in 0..10 {
                let response = reqwest::blocking::Client::new()
                    .post(format!("{base}/v1/topics/clicks/records"))
                    .body(events(500 + chunk * 50..550 + chunk * 50))
                    .send()
                    .unwrap();
                assert!(response.status().is_success());
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };

    let deployed = server.cli(&data, &["deploy", v2.to_str().unwrap()]);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    writer.join().unwrap();
    wait_until("v2 caught up", || server.version(2)["caught_up"] == true);

    // The gate: top_pages changed, so requiring it identical refuses...
    let refused = server.cli(
        &data,
        &[
            "promote",
            "clickstream",
            "--version",
            "2",
            "--require-identical",
            "top_pages",
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("promotion refused"));
    let refused = server.cli(
        &data,
        &[
            "promote",
            "clickstream",
            "--version",
            "2",
            "--max-changed-rows",
            "0",
        ],
    );
    assert!(!refused.status.success());
    // ...while the views v2 did not change are identical after its replay.
    let promoted = server.cli(
        &data,
        &[
            "promote",
            "clickstream",
            "--version",
            "2",
            "--require-identical",
            "page_distinct_users",
            "--require-identical",
            "page_minute_counts",
        ],
    );
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert_eq!(view_rows(&server, "top_pages").0, 2);
    assert_eq!(view_rows(&server, "action_counts").0, 2);
    assert_changelog_matches(
        &server,
        &data,
        &["top_pages", "action_counts", "user_revenue"],
    );

    let rolled = server.cli(&data, &["rollback", "clickstream"]);
    assert!(
        rolled.status.success(),
        "{}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    assert_eq!(view_rows(&server, "top_pages").0, 1);
    assert_changelog_matches(&server, &data, &["top_pages", "user_revenue"]);
    // v1 has no action_counts: its changelog is retracted to nothing.
    wait_until("action_counts is retracted", || {
        changelog_rows(&data, "action_counts").is_empty()
    });

    let retired = server.cli(&data, &["retire", "clickstream", "--version", "2"]);
    assert!(
        retired.status.success(),
        "{}",
        String::from_utf8_lossy(&retired.stderr)
    );
    assert_eq!(server.version(2)["state"], "retired");
    let refused = server.cli(&data, &["retire", "clickstream", "--version", "1"]);
    assert!(
        !refused.status.success(),
        "the active version cannot be retired"
    );

    stop.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    assert!(
        seen.contains(&1) && seen.contains(&2),
        "readers saw both versions: {seen:?}"
    );

    // SIGKILL, restart: the catalog brings v1 back as the active version, rebuilt by
    // replay, with the same views and a changelog that neither lost nor duplicated.
    let before: Vec<_> = ["top_pages", "user_revenue", "page_minute_counts"]
        .iter()
        .map(|v| view_rows(&server, v).1)
        .collect();
    server.kill();
    let server = Server::start(&data, &[]);
    wait_until("v1 serves again", || server.serves("top_pages"));
    let after: Vec<_> = ["top_pages", "user_revenue", "page_minute_counts"]
        .iter()
        .map(|v| view_rows(&server, v).1)
        .collect();
    assert_eq!(before, after);
    assert_changelog_matches(&server, &data, &["top_pages", "user_revenue"]);
    assert_eq!(server.version(1)["state"], "active");
    assert_eq!(server.version(2)["state"], "retired");
}

#[test]
fn sigkill_during_replay_and_promotion_recovers() {
    let (_dir, data, v2, server) = start_v1(2);
    ingest(&server, events(0..3000));
    wait_until("v1 is caught up", || server.version(1)["caught_up"] == true);
    // Kill while v2 replays.
    let deployed = server.cli(&data, &["deploy", v2.to_str().unwrap()]);
    assert!(deployed.status.success());
    server.kill();

    let server = Server::start(&data, &[]);
    wait_until("both versions caught up after restart", || {
        server.version(1)["caught_up"] == true && server.version(2)["caught_up"] == true
    });
    assert_eq!(server.version(1)["state"], "active");
    assert_eq!(server.version(2)["state"], "caught_up");
    // Kill right after a promotion returns: it is durable.
    let promoted = server.cli(&data, &["promote", "clickstream", "--version", "2"]);
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    server.kill();

    let server = Server::start(&data, &[]);
    wait_until("v2 serves after restart", || server.serves("action_counts"));
    assert_eq!(server.version(2)["state"], "active");
    assert_eq!(server.version(1)["state"], "draining");
    assert_changelog_matches(
        &server,
        &data,
        &["top_pages", "action_counts", "page_distinct_users"],
    );
    // The shared views are identical in both versions: the same fingerprints, once
    // both reflect the whole log (the draining version replays paced behind the
    // active one, so it may still be on its way).
    let whole_log = |status: &Value, v: usize| {
        status["pipelines"][0]["versions"][v]["progress"]["partitions"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| p["lag"] == 0))
    };
    wait_until("both versions reflect the whole log", || {
        let status = server.get("/v1/status");
        whole_log(&status, 0) && whole_log(&status, 1)
    });
    let status = server.get("/v1/status");
    let fingerprints = |v: usize| -> BTreeMap<String, String> {
        status["pipelines"][0]["versions"][v]["progress"]["views"]
            .as_array()
            .unwrap()
            .iter()
            .map(|view| {
                (
                    view["name"].as_str().unwrap().to_string(),
                    view["fingerprint"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (f1, f2) = (fingerprints(0), fingerprints(1));
    assert_eq!(f1["page_distinct_users"], f2["page_distinct_users"]);
    assert_eq!(f1["user_revenue"], f2["user_revenue"]);
    assert_ne!(f1["top_pages"], f2["top_pages"]);
}

#[test]
fn produce_goes_through_the_server_that_holds_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (v1, _) = write_pipelines(dir.path());
    assert!(kappa(&data, &["topic", "create", "clicks"])
        .status
        .success());
    let server = Server::start(&data, &[&v1]);
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, events(0..200)).unwrap();
    let produced = kappa(
        &data,
        &[
            "produce",
            "clicks",
            "--key-field",
            "user",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    assert!(String::from_utf8_lossy(&produced.stderr).contains("appending through its API"));
    wait_until("the events are in the views", || {
        server
            .try_get("/v1/pipelines/clickstream/views/page_distinct_users")
            .is_some_and(|(s, body)| s == 200 && body["offsets"]["clicks"]["0"] == 200)
    });
}
