//! Operating the real binary: health and status routes, the admin token, request
//! size bounds, and graceful shutdown on SIGTERM (exit 0 within a few seconds, even
//! with a live subscription open).

mod support;

use support::{free_port, wait_until};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const KAPPA: &str = env!("CARGO_BIN_EXE_kappa");
const TOKEN: &str = "s3cret-token";

/// Kills and reaps the server if a test fails before it stops it.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(data: &Path) -> Server {
    let created = Command::new(KAPPA)
        .arg("--data-dir")
        .arg(data)
        .args(["topic", "create", "lines", "--partitions", "2"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let port = free_port();
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/wordcount.sql");
    let child = Command::new(KAPPA)
        .arg("--data-dir")
        .arg(data)
        .arg("serve")
        .arg(&pipeline)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KAPPA_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child: Some(child),
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_until("/healthz", || {
        reqwest::blocking::get(format!("{}/healthz", server.base))
            .is_ok_and(|r| r.status().is_success())
    });
    server
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends a request and returns the status and the JSON body (`null` if not JSON).
fn send(request: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn health_admin_token_limits_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&dir.path().join("data"));
    let base = server.base.clone();
    let http = client();

    // Health, readiness and status.
    let (status, body) = send(http.get(format!("{base}/healthz")));
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    wait_until("/readyz", || {
        send(http.get(format!("{base}/readyz"))).0 == 200
    });
    let (status, body) = send(http.get(format!("{base}/v1/status")));
    assert_eq!(status, 200);
    assert_eq!(body["pipelines"][0]["name"], "wordcount");
    assert_eq!(body["pipelines"][0]["versions"][0]["state"], "active");
    let (status, _) = send(http.get(format!("{base}/metrics")));
    assert_eq!(status, 200);

    // Admin routes refuse a missing or wrong token, with a JSON error.
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/wordcount.sql"),
    )
    .unwrap();
    let v2 = json!({ "file": "wordcount.sql", "sql": format!("{sql}\n-- v2\n") });
    let admin = [
        http.post(format!("{base}/v1/pipelines")).json(&v2),
        http.post(format!("{base}/v1/pipelines/wordcount/promote"))
            .json(&json!({ "version": 2 })),
        http.post(format!("{base}/v1/pipelines/wordcount/rollback")),
        http.post(format!("{base}/v1/pipelines/wordcount/versions/2/retire")),
        http.get(format!("{base}/v1/pipelines/wordcount/diff?old=1&new=2")),
    ];
    for request in admin {
        let wrong = request.try_clone().unwrap().bearer_auth("wrong-token");
        let (status, body) = send(request);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error_code"], "unauthorized");
        let (status, body) = send(wrong);
        assert_eq!(status, 401, "{body}");
    }

    // With the token: deploy v2, diff once it has caught up, retire it.
    let (status, body) = send(
        http.post(format!("{base}/v1/pipelines"))
            .bearer_auth(TOKEN)
            .json(&v2),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    wait_until("v2 to catch up", || {
        let (_, status) = send(http.get(format!("{base}/v1/status")));
        status["pipelines"][0]["versions"]
            .as_array()
            .is_some_and(|vs| {
                vs.iter()
                    .any(|v| v["version"] == 2 && v["caught_up"] == true)
            })
    });
    let (status, body) = send(
        http.get(format!("{base}/v1/pipelines/wordcount/diff?old=1&new=2"))
            .bearer_auth(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        http.post(format!("{base}/v1/pipelines/wordcount/versions/2/retire"))
            .bearer_auth(TOKEN),
    );
    assert_eq!(status, 200, "{body}");

    // Bounded requests: an oversized pipeline or ingest body is 413 JSON; a huge
    // `limit` is 400.
    let huge_sql = json!({ "file": "big.sql", "sql": "x".repeat(2 << 20) });
    let (status, body) = send(
        http.post(format!("{base}/v1/pipelines"))
            .bearer_auth(TOKEN)
            .json(&huge_sql),
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error_code"], "payload_too_large");
    let huge_ingest = "{\"line\":\"x\"}\n".repeat((17 << 20) / 13);
    let (status, body) = send(
        http.post(format!("{base}/v1/topics/lines/records"))
            .body(huge_ingest),
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error_code"], "payload_too_large");
    let (status, body) = send(http.get(format!(
        "{base}/v1/pipelines/wordcount/views/word_counts?limit=100000000"
    )));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_code"], "limit_too_large");

    // SIGTERM with a live subscription open: exit 0 within a few seconds.
    let subscription = http
        .get(format!(
            "{base}/v1/pipelines/wordcount/views/top_words/subscribe"
        ))
        .send()
        .unwrap();
    assert_eq!(subscription.status().as_u16(), 200);
    let mut child = server.child.take().unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kappa serve did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(subscription);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "shutdown took {:?}",
        started.elapsed()
    );
}
