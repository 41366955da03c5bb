//! Following the log across processes: a `kappa consume --follow` process sees records
//! the test appends, and a read-only log in the test sees records a `kappa produce`
//! process appends — each within milliseconds, without busy polling.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kappa_log::{EmbeddedLog, EmbeddedOptions, Log, NewRecord};

const LATENCY_BOUND: Duration = Duration::from_millis(250);

#[test]
fn consume_follow_in_another_process_sees_appends_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
    log.create_topic("f", 2).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kappa"))
        .env("KAPPA_DATA_DIR", dir.path())
        .args(["consume", "f", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    std::thread::sleep(Duration::from_millis(300)); // let it reach the waiting state
    let mut worst = Duration::ZERO;
    for i in 0..20u32 {
        let payload = format!("{{\"i\":{i}}}");
        let appended = Instant::now();
        log.append("f", i % 2, &[NewRecord::new(payload.clone(), 0)])
            .unwrap();
        let got = lines.next().unwrap().unwrap();
        worst = worst.max(appended.elapsed());
        assert_eq!(got, payload);
        std::thread::sleep(Duration::from_millis(if i % 3 == 0 { 60 } else { 5 }));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    println!("worst cross-process follow latency: {worst:?}");
    assert!(worst < LATENCY_BOUND, "worst latency {worst:?}");
}

#[test]
fn read_only_log_sees_another_process_producing_quickly() {
    let dir = tempfile::tempdir().unwrap();
    EmbeddedLog::open(dir.path(), EmbeddedOptions::default())
        .unwrap()
        .create_topic("g", 1)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kappa"))
        .env("KAPPA_DATA_DIR", dir.path())
        .args(["produce", "g"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let reader = EmbeddedLog::open_read_only(dir.path(), EmbeddedOptions::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut worst = Duration::ZERO;
    for i in 0..20u64 {
        let tx = tx.clone();
        reader
            .notify_when_beyond(
                "g",
                0,
                i,
                Box::new(move || tx.send(Instant::now()).unwrap()),
            )
            .unwrap();
        let written = Instant::now();
        writeln!(stdin, "{{\"i\":{i}}}").unwrap();
        stdin.flush().unwrap();
        assert!(
            reader.wait_for("g", 0, i, Duration::from_secs(5)).unwrap(),
            "record {i} never seen"
        );
        worst = worst.max(written.elapsed());
        let record = &reader.read("g", 0, i, 1, usize::MAX).unwrap()[0];
        assert_eq!(record.payload, format!("{{\"i\":{i}}}").as_bytes());
        let fired = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("callback fired");
        worst = worst.max(fired.duration_since(written));
        std::thread::sleep(Duration::from_millis(if i % 4 == 0 { 40 } else { 2 }));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    println!("worst cross-process wait latency: {worst:?}");
    assert!(worst < LATENCY_BOUND, "worst latency {worst:?}");
}
