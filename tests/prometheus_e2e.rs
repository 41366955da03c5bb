//! kappa watched by a real Prometheus server: `kappa run` (the real binary) on a free
//! port, Debian's `prometheus` scraping it every 250 ms, and the key series checked
//! through Prometheus's own query API — records read rise, lag falls to 0 once the
//! version has caught up, freshness is recorded, the version is active.
//!
//! Skipped, saying so, when `/usr/bin/prometheus` (or `prometheus` on `PATH`) is not
//! installed; `.ci/run` installs it (`apt-get install prometheus`).

mod support;

use support::free_port;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const KAPPA: &str = env!("CARGO_BIN_EXE_kappa");

/// Kills and reaps a child process when dropped, so a failing test leaves none behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus_binary() -> Option<PathBuf> {
    let ok = |p: &Path| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    [
        PathBuf::from("/usr/bin/prometheus"),
        PathBuf::from("prometheus"),
    ]
    .into_iter()
    .find(|p| ok(p))
}

fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The instant-vector result of a PromQL query, as (labels, value) pairs.
fn query(prometheus: &str, promql: &str) -> Vec<(Value, f64)> {
    let response: Value = match reqwest::blocking::get(format!(
        "{prometheus}/api/v1/query?query={}",
        encode(promql)
    ))
    .and_then(|r| r.json())
    {
        Ok(v) => v,
        Err(_) => return Vec::new(),
    };
    assert_eq!(response["status"], "success", "{promql}: {response}");
    response["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|sample| {
            let value = sample["value"][1].as_str().unwrap().parse().unwrap();
            (sample["metric"].clone(), value)
        })
        .collect()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sum(prometheus: &str, promql: &str) -> Option<f64> {
    let samples = query(prometheus, promql);
    (!samples.is_empty()).then(|| samples.iter().map(|(_, v)| v).sum())
}

fn ingest(api: &str, from: usize, count: usize) {
    let body: String = (from..from + count)
        .map(|i| format!("{{\"line\":\"alpha beta w{}\"}}\n", i % 37))
        .collect();
    let response = reqwest::blocking::Client::new()
        .post(format!("{api}/v1/topics/lines/records"))
        .body(body)
        .send()
        .unwrap();
    assert!(response.status().is_success(), "ingest: {:?}", response);
}

#[test]
fn prometheus_scrapes_kappa_and_sees_the_pipeline_move() {
    let Some(prometheus) = prometheus_binary() else {
        eprintln!(
            "SKIPPED prometheus_e2e: the `prometheus` server is not installed \
             (apt-get install prometheus; .ci/run installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let created = Command::new(KAPPA)
        .arg("--data-dir")
        .arg(&data)
        .args(["topic", "create", "lines", "--partitions", "2"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");

    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/wordcount.sql");
    let _kappa = Reaped(
        Command::new(KAPPA)
            .arg("--data-dir")
            .arg(&data)
            .arg("run")
            .arg(&pipeline)
            .args(["--listen", &format!("127.0.0.1:{api_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("kappa to serve", Duration::from_secs(60), || {
        reqwest::blocking::get(format!("{api}/healthz"))
            .ok()
            .filter(|r| r.status().is_success())
    });
    ingest(&api, 0, 500);

    let prom_port = free_port();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 250ms\n  evaluation_interval: 250ms\n\
             scrape_configs:\n  - job_name: kappa\n    scrape_interval: 250ms\n    \
             scrape_timeout: 200ms\n    static_configs:\n      - targets: ['127.0.0.1:{api_port}']\n"
        ),
    )
    .unwrap();
    let _prometheus = Reaped(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("Prometheus to be ready", Duration::from_secs(60), || {
        reqwest::blocking::get(format!("{prom}/-/ready"))
            .ok()
            .filter(|r| r.status().is_success())
    });
    wait_for("the kappa target to be up", Duration::from_secs(30), || {
        sum(&prom, "up{job=\"kappa\"}").filter(|v| *v == 1.0)
    });

    let read = r#"kappa_source_records_total{job="kappa",pipeline="wordcount",topic="lines"}"#;
    let first = wait_for("records read to reach 500", Duration::from_secs(30), || {
        sum(&prom, read).filter(|v| *v >= 500.0)
    });
    ingest(&api, 500, 700);
    wait_for("records read to rise", Duration::from_secs(30), || {
        sum(&prom, read).filter(|v| *v >= first + 700.0)
    });
    wait_for("lag to fall to 0", Duration::from_secs(30), || {
        sum(&prom, r#"kappa_source_lag_records{pipeline="wordcount"}"#).filter(|v| *v == 0.0)
    });
    wait_for("freshness to be recorded", Duration::from_secs(30), || {
        sum(
            &prom,
            r#"kappa_freshness_seconds_count{pipeline="wordcount"}"#,
        )
        .filter(|v| *v > 0.0)
    });
    let p99 = wait_for("a freshness quantile", Duration::from_secs(30), || {
        sum(
            &prom,
            r#"histogram_quantile(0.99, sum by (le) (kappa_freshness_seconds_bucket{pipeline="wordcount"}))"#,
        )
        .filter(|v| v.is_finite())
    });
    assert!(p99 < 60.0, "freshness p99 {p99}s");
    let rate = wait_for("a read rate", Duration::from_secs(30), || {
        sum(&prom, &format!("rate({read}[5s])")).filter(|v| *v > 0.0)
    });
    assert!(rate > 0.0);
    let active = query(
        &prom,
        r#"kappa_version_state{pipeline="wordcount",state="active"}"#,
    );
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].1, 1.0);
    for series in [
        "kappa_view_rows",
        "kappa_dataflow_frontier_seconds",
        "kappa_log_fsyncs_total",
        "kappa_http_requests_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            sum(&prom, &format!("{series}{{job=\"kappa\"}}")).is_some(),
            "{series} is not in Prometheus"
        );
    }
    // The exposition itself passes promtool's lint (names, units, help).
    let exposition = reqwest::blocking::get(format!("{api}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let promtool = prometheus.with_file_name("promtool");
    let mut lint = Command::new(if promtool.is_absolute() {
        promtool
    } else {
        "promtool".into()
    })
    .args(["check", "metrics"])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::io::Write::write_all(&mut lint.stdin.take().unwrap(), exposition.as_bytes()).unwrap();
    let linted = lint.wait_with_output().unwrap();
    assert!(
        linted.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );
    let rows = sum(
        &prom,
        r#"kappa_view_rows{pipeline="wordcount",view="word_counts"}"#,
    );
    assert_eq!(rows, Some(39.0), "alpha, beta and w0..w36");
}
