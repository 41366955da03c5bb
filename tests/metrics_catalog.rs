//! The metrics catalog, the dashboard and the alert rules agree with the code.
//!
//! - `k8s/monitoring/metrics-catalog.json` equals the catalog generated from every
//!   subsystem's specs (`KAPPA_UPDATE_CATALOG=1` rewrites it);
//! - every metric the Grafana dashboard and the alert rules query is in the catalog;
//! - the PrometheusRule carries exactly the groups of the plain rules file;
//! - `promtool check rules` and `promtool test rules` pass (skipped, saying so, when
//!   promtool is not installed; CI installs it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn monitoring(file: &str) -> PathBuf {
    repo().join("k8s/monitoring").join(file)
}

/// Series names a query may use: each metric, and a histogram's `_bucket`, `_sum`, `_count`.
fn known_series() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, specs) in kappa::metrics::catalog() {
        for spec in specs {
            names.insert(spec.name.to_string());
            if spec.kind == kappa_log::metrics::Kind::Histogram {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{}{suffix}", spec.name));
                }
            }
        }
    }
    names
}

/// Identifiers in a PromQL expression that look like kappa's or the process's metrics.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
            current.clear();
            continue;
        }
        if in_string {
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if current.starts_with("kappa_") || current.starts_with("process_") {
                names.push(current.clone());
            }
            current.clear();
        }
    }
    names
}

#[test]
fn catalog_file_matches_the_code() {
    let generated = kappa::metrics::catalog_json();
    let path = monitoring("metrics-catalog.json");
    if std::env::var_os("KAPPA_UPDATE_CATALOG").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == generated,
        "{} is out of date with the metrics the code registers; regenerate it with\n  \
         KAPPA_UPDATE_CATALOG=1 cargo test -p kappa --test metrics_catalog",
        path.display()
    );
}

#[test]
fn catalog_names_are_unique_and_well_formed() {
    let mut seen = BTreeSet::new();
    for (_, specs) in kappa::metrics::catalog() {
        for spec in specs {
            assert!(seen.insert(spec.name), "{} listed twice", spec.name);
            let is_counter = spec.kind == kappa_log::metrics::Kind::Counter;
            assert_eq!(is_counter, spec.name.ends_with("_total"), "{}", spec.name);
            assert!(!spec.help.is_empty(), "{} has no help", spec.name);
        }
    }
}

#[test]
fn dashboard_queries_use_cataloged_metrics() {
    let known = known_series();
    let text = std::fs::read_to_string(monitoring("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 8,
        "the dashboard has {} queries",
        exprs.len()
    );
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "query uses no kappa metric: {expr}");
        for name in names {
            assert!(
                known.contains(&name),
                "dashboard query uses unknown `{name}`: {expr}"
            );
        }
    }
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

fn rule_groups(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn prometheus_rule_carries_the_plain_rules() {
    let plain = rule_groups(&monitoring("alerts.rules.yaml"));
    let crd = rule_groups(&monitoring("prometheus-rule.yaml"));
    assert_eq!(crd["kind"], "PrometheusRule");
    assert_eq!(
        crd["spec"]["groups"], plain["groups"],
        "prometheus-rule.yaml's spec.groups must equal alerts.rules.yaml's groups"
    );
    let known = known_series();
    let mut alerts = BTreeSet::new();
    for group in plain["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                assert!(known.contains(&name), "alert uses unknown `{name}`: {expr}");
            }
            alerts.insert(rule["alert"].as_str().unwrap().to_string());
        }
    }
    let tests = std::fs::read_to_string(monitoring("alerts.test.yaml")).unwrap();
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "alert {alert} has no promtool unit test"
        );
    }
}

fn promtool() -> Option<PathBuf> {
    let found = Command::new("promtool").arg("--version").output();
    match found {
        Ok(out) if out.status.success() => Some(PathBuf::from("promtool")),
        _ => {
            eprintln!(
                "SKIPPED: promtool is not installed (apt-get install prometheus; .ci/run does)"
            );
            None
        }
    }
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let Some(promtool) = promtool() else {
        return;
    };
    let check = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(monitoring("alerts.rules.yaml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(monitoring("alerts.test.yaml"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}
