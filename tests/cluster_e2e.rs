//! Scale-out with timely's own cluster: two `kappa run` processes on 127.0.0.1 form
//! one dataflow (partitions spread over the workers of both) and compute the same
//! views as a single process over the same log — the embedded log always, a Fluvio
//! cluster when `KAPPA_FLUVIO_ENDPOINT` is set (skipped otherwise, saying so).

mod support;

use support::{fluvio_endpoint, free_port};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const KAPPA: &str = env!("CARGO_BIN_EXE_kappa");
const PIPELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/clickstream.sql");

fn kappa(data: &Path, log_args: &[String]) -> Command {
    let mut command = Command::new(KAPPA);
    command
        .arg("--data-dir")
        .arg(data)
        .args(log_args)
        .env_remove("KAPPA_FLUVIO_ENDPOINT");
    command
}

/// The printed views, without timely's connection chatter.
fn views(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with("awaiting connections"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn two_processes_compute_what_one_does_on_the_embedded_log() {
    two_processes_compute_what_one_does(&["--log".into(), "embedded".into()]);
}

#[test]
fn two_processes_compute_what_one_does_on_fluvio() {
    let Some(endpoint) = fluvio_endpoint("two_processes_compute_what_one_does_on_fluvio") else {
        return;
    };
    two_processes_compute_what_one_does(&[
        "--log".into(),
        "fluvio".into(),
        "--fluvio-endpoint".into(),
        endpoint,
    ]);
}

fn two_processes_compute_what_one_does(log_args: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // A cluster keeps its topics between runs: this run's topic and pipeline (whose
    // name prefixes its output topics) are its own.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 1_000_000_000;
    let topic = format!("clicks-{}-{run}", std::process::id());
    let pipeline = data.join(format!("clickstream_{run}.sql"));
    let sql = std::fs::read_to_string(PIPELINE).unwrap();
    std::fs::write(
        &pipeline,
        sql.replace("topic = 'clicks'", &format!("topic = '{topic}'")),
    )
    .unwrap();
    let kappa = |data: &Path| kappa(data, log_args);
    let created = kappa(data)
        .args(["topic", "create", &topic, "--partitions", "3"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let events: String = kappa::workload::clicks(5_000, 7)
        .map(|l| l + "\n")
        .collect();
    let events_file = data.join("events.jsonl");
    std::fs::write(&events_file, events).unwrap();
    let produced = kappa(data)
        .args(["produce", &topic, "--key-field", "user"])
        .arg(&events_file)
        .output()
        .unwrap();
    assert!(produced.status.success());

    let hosts = data.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let cluster_args = |process: &str| {
        let mut command = kappa(data);
        command
            .args([
                "run",
                pipeline.to_str().unwrap(),
                "--until-end",
                "--workers",
                "2",
                "--print-rows",
                "1000",
            ])
            .args(["--processes", "2", "--process", process, "--hosts"])
            .arg(&hosts)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let follower = cluster_args("1").spawn().unwrap();
    let leader = cluster_args("0").output().unwrap();
    let follower = follower.wait_with_output().unwrap();
    assert!(
        follower.status.success(),
        "{}",
        String::from_utf8_lossy(&follower.stderr)
    );

    let single = kappa(data)
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--until-end",
            "--print-rows",
            "1000",
        ])
        .output()
        .unwrap();
    let (clustered, alone) = (views(&leader), views(&single));
    assert!(clustered.contains("records read: 5000"), "{clustered}");
    assert_eq!(clustered, alone);
}
