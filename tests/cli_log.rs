//! The `kappa` binary's log commands end to end: topics, produce, consume, and the
//! errors a user sees (one line on stderr, exit code 1).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kappa_log::{EmbeddedLog, EmbeddedOptions};

fn kappa(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kappa"));
    cmd.env("KAPPA_DATA_DIR", dir)
        .env_remove("RUST_LOG")
        .args(args);
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    kappa(dir, args).output().unwrap()
}

fn run_with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = kappa(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts a failure with exit code 1 and exactly one stderr line containing `needle`.
fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "{stderr}"
    );
}

fn sample_jsonl(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"id\":\"user-{}\",\"n\":{i},\"text\":\"héllo \\\"quoted\\\" ✓\",\"nested\":{{\"a\":[1,2,{i}]}}}}\n", i % 7))
        .collect()
}

#[test]
fn produce_then_consume_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("in.jsonl");
    let text = sample_jsonl(2500);
    std::fs::write(&input, &text).unwrap();
    ok(&run(&data, &["topic", "create", "events"]));
    let out = run(&data, &["produce", "events", input.to_str().unwrap()]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("produced 2500 record(s) to events") && stderr.contains("records/s"),
        "{stderr}"
    );
    assert_eq!(ok(&run(&data, &["consume", "events"])), text);
    assert_eq!(
        ok(&run(&data, &["consume", "events", "--from-beginning"])),
        text
    );
    // --offset and --max select a window.
    let window: String = text
        .lines()
        .skip(10)
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        ok(&run(
            &data,
            &["consume", "events", "--offset", "10", "--max", "5"]
        )),
        window
    );
    // Through stdin, too, with --data-dir instead of the environment.
    let dir2 = dir.path().join("data2");
    let d2 = dir2.to_str().unwrap();
    ok(&run(&data, &["--data-dir", d2, "topic", "create", "e2"]));
    ok(&run_with_stdin(
        &data,
        &["--data-dir", d2, "produce", "e2", "-"],
        text.as_bytes(),
    ));
    assert_eq!(ok(&run(&data, &["consume", "--data-dir", d2, "e2"])), text);
}

#[test]
fn keyed_produce_routes_by_key_and_consume_reads_all_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(&run(data, &["topic", "create", "k", "--partitions", "4"]));
    let text = sample_jsonl(300);
    let out = run_with_stdin(
        data,
        &["produce", "k", "--key-field", "id", "--print-offsets"],
        text.as_bytes(),
    );
    let offsets = ok(&out);
    assert_eq!(offsets.lines().count(), 300);
    // Same key, same partition; offsets within a partition count up from 0.
    let mut by_key = std::collections::HashMap::new();
    let mut next = [0u64; 4];
    for (line, placed) in text.lines().zip(offsets.lines()) {
        let (p, o) = placed.split_once(' ').unwrap();
        let (p, o): (usize, u64) = (p.parse().unwrap(), o.parse().unwrap());
        let key = line.split('"').nth(3).unwrap().to_string();
        assert_eq!(*by_key.entry(key).or_insert(p), p);
        assert_eq!(o, next[p]);
        next[p] += 1;
        assert_eq!(
            p as u32,
            kappa_log::partition_for_key(line.split('"').nth(3).unwrap().as_bytes(), 4)
        );
    }
    let mut got: Vec<String> = ok(&run(data, &["consume", "k"]))
        .lines()
        .map(String::from)
        .collect();
    let mut want: Vec<String> = text.lines().map(String::from).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let p0 = ok(&run(data, &["consume", "k", "--partition", "0"]));
    assert_eq!(p0.lines().count() as u64, next[0]);
}

#[test]
fn topic_list_and_describe() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert_eq!(ok(&run(data, &["topic", "list"])), "");
    ok(&run(data, &["topic", "create", "b", "-p", "2"]));
    ok(&run(data, &["topic", "create", "a"]));
    assert_eq!(ok(&run(data, &["topic", "list"])), "a\nb\n");
    ok(&run_with_stdin(
        data,
        &["produce", "b", "--partition", "1"],
        b"{\"x\":1}\n\n{\"x\":2}\n",
    ));
    let table = ok(&run(data, &["topic", "describe", "b"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("topic b: 2 partition(s), 2 record(s), "),
        "{table}"
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["PARTITION", "START", "END", "RECORDS", "BYTES"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "0", "0", "0"]
    );
    assert_eq!(
        &lines[3].split_whitespace().collect::<Vec<_>>()[..4],
        ["1", "0", "2", "2"]
    );
}

#[test]
fn errors_are_one_line_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    fails_with(&run(data, &["consume", "nope"]), "unknown topic 'nope'");
    fails_with(
        &run(data, &["topic", "describe", "nope"]),
        "unknown topic 'nope'",
    );
    fails_with(
        &run_with_stdin(data, &["produce", "nope"], b"{}\n"),
        "unknown topic 'nope'",
    );
    ok(&run(data, &["topic", "create", "t", "-p", "2"]));
    fails_with(
        &run(data, &["topic", "create", "t"]),
        "topic 't' already exists",
    );
    fails_with(
        &run(data, &["topic", "create", "bad/name"]),
        "invalid topic name",
    );
    fails_with(
        &run(data, &["consume", "t", "--partition", "2"]),
        "topic 't' has no partition 2 (it has 2)",
    );
    fails_with(
        &run_with_stdin(data, &["produce", "t", "--partition", "5"], b"{}\n"),
        "has no partition 5",
    );
    // A bad line stops the run naming its line number; what came before is kept.
    let out = run_with_stdin(
        data,
        &["produce", "t", "--partition", "0"],
        b"{\"ok\":1}\n{\"ok\":2}\n{oops\n{\"ok\":4}\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("error: line 3: invalid JSON"), "{stderr}");
    assert_eq!(
        ok(&run(data, &["consume", "t", "--partition", "0"])),
        "{\"ok\":1}\n{\"ok\":2}\n"
    );
    // --skip-invalid reports and goes on.
    let out = run_with_stdin(
        data,
        &["produce", "t", "--partition", "1", "--skip-invalid"],
        b"[1]\nnope\n[2]\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(
        stderr.contains("skipping line 2: invalid JSON")
            && stderr.contains("skipped 1 invalid line(s)"),
        "{stderr}"
    );
    assert_eq!(
        ok(&run(data, &["consume", "t", "--partition", "1"])),
        "[1]\n[2]\n"
    );
    // Bad usage is clap's exit code 2.
    assert_eq!(
        run(data, &["consume", "t", "--offset", "x"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_second_writer_is_refused_with_the_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(&run(data, &["topic", "create", "t"]));
    let held = EmbeddedLog::open(data, EmbeddedOptions::default()).unwrap();
    let expected = format!(
        "data directory {} is locked by another kappa process (pid {})",
        data.display(),
        std::process::id()
    );
    fails_with(&run(data, &["topic", "create", "u"]), &expected);
    fails_with(&run_with_stdin(data, &["produce", "t"], b"{}\n"), &expected);
    // Readers need no lock.
    ok(&run(data, &["consume", "t"]));
    ok(&run(data, &["topic", "describe", "t"]));
    drop(held);
    ok(&run(data, &["topic", "create", "u"]));
}
