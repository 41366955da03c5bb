//! `kappa produce`: JSON lines in, batched durable appends out.
//!
//! A reader thread reads and validates lines while the main thread appends, so parsing
//! overlaps with fsync. Batches are whatever is ready, up to `--batch-size`: a fast file
//! makes full batches, a slow pipe makes small ones without waiting.
//!
//! Each non-empty line must be one JSON value; the payload is the line's bytes as given
//! (without the line ending), so `kappa consume` gives the file back byte for byte.
//! Empty lines are skipped. A line that is not JSON stops the run with an error naming
//! the line number, after appending everything before it; with `--skip-invalid` such
//! lines are reported on stderr, counted, and skipped instead.
//!
//! With `--key-field F`, a top-level field `F` of an object is the record's key (a
//! string's contents, or another value's JSON text); records without it (or with null)
//! have no key. Keyed records go to the partition of their key's hash, keyless ones
//! round-robin, unless `--partition` says where all go.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kappa_log::{Durability, NewRecord};

use super::backend::{open_log, Access};
use crate::Context;

/// Arguments of `kappa produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic to append to.
    pub topic: String,
    /// A file of JSON lines; `-` or nothing reads stdin.
    pub input: Option<PathBuf>,
    /// Take each record's key from this top-level JSON field.
    #[arg(long)]
    pub key_field: Option<String>,
    /// Append every record to this partition instead of routing by key.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Most records per append (one fsync each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Print `partition offset` on stdout for every acknowledged record.
    #[arg(long)]
    pub print_offsets: bool,
    /// Report and skip lines that are not JSON instead of stopping.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Fsync at most every this many milliseconds instead of once per batch.
    #[arg(long)]
    pub fsync_interval_ms: Option<u64>,
}

/// One input line, read and checked.
enum Line {
    Record {
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Invalid {
        line: u64,
        error: String,
    },
    Failed(std::io::Error),
}

/// Runs `kappa produce`.
pub fn run(ctx: &Context, args: ProduceArgs) -> anyhow::Result<()> {
    let durability = match args.fsync_interval_ms {
        Some(ms) => Durability::Interval(Duration::from_millis(ms)),
        None => Durability::PerBatch,
    };
    let input: Box<dyn Read + Send> = match &args.input {
        None => Box::new(std::io::stdin()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin()),
        Some(p) => Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?),
    };
    let sink = match open_log(ctx, Access::Write(durability)) {
        Ok(log) => Sink::Log(log),
        // A running server holds the embedded log: append through its API instead.
        Err(error) => match running_server(ctx) {
            Some(address) if args.partition.is_none() && !args.print_offsets => {
                eprintln!("note: {error}; appending through its API at http://{address}");
                Sink::Server {
                    url: format!("http://{address}/v1/topics/{}/records", args.topic),
                    key_field: args.key_field.clone(),
                }
            }
            _ => return Err(error),
        },
    };
    if let Sink::Log(log) = &sink {
        let partitions = log.partition_count(&args.topic)?;
        if let Some(p) = args.partition {
            if p >= partitions {
                bail!(
                    "topic '{}' has no partition {p} (it has {partitions})",
                    args.topic
                );
            }
        }
    }

    let batch_size = args.batch_size as usize;
    let (tx, rx) = mpsc::sync_channel::<Line>(batch_size * 4);
    let key_field = args.key_field.clone();
    std::thread::spawn(move || read_lines(input, key_field.as_deref(), &tx));

    let progress = progress_bar();
    let started = Instant::now();
    let mut stdout = std::io::stdout().lock();
    let (mut produced, mut skipped) = (0u64, 0u64);
    let mut batch: Vec<NewRecord> = Vec::with_capacity(batch_size);
    let mut failure = None;
    for first in rx.iter() {
        // Take what is ready without waiting, up to a batch.
        let mut next = Some(first);
        while let Some(line) = next.take() {
            match line {
                Line::Record { key, payload } => batch.push(NewRecord {
                    key: key.map(Into::into),
                    payload: payload.into(),
                    timestamp_ms: now_ms(),
                }),
                Line::Invalid { line, error } if args.skip_invalid => {
                    skipped += 1;
                    progress.suspend(|| eprintln!("skipping line {line}: invalid JSON: {error}"));
                }
                Line::Invalid { line, error } => {
                    failure = Some(anyhow::anyhow!("line {line}: invalid JSON: {error}"));
                    break;
                }
                Line::Failed(e) => {
                    failure = Some(anyhow::Error::new(e).context("reading input"));
                    break;
                }
            }
            if batch.len() < batch_size {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let placed = sink.append(&args.topic, args.partition, &batch)?;
            if args.print_offsets {
                let mut text = String::with_capacity(placed.len() * 12);
                for (p, o) in &placed {
                    text.push_str(&format!("{p} {o}\n"));
                }
                stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .context("writing offsets")?;
            }
            produced += batch.len() as u64;
            progress.set_position(produced);
            batch.clear();
        }
        if failure.is_some() {
            break;
        }
    }
    if let Sink::Log(log) = &sink {
        log.flush()?;
    }
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        produced as f64 / secs
    } else {
        0.0
    };
    let skipped_note = if skipped > 0 {
        format!(", skipped {skipped} invalid line(s)")
    } else {
        String::new()
    };
    eprintln!(
        "produced {produced} record(s) to {} in {secs:.2}s ({rate:.0} records/s){skipped_note}",
        args.topic
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Where records go: the log itself, or the API of the server that holds it.
enum Sink {
    Log(std::sync::Arc<dyn kappa_log::Log>),
    Server {
        url: String,
        key_field: Option<String>,
    },
}

impl Sink {
    /// Appends a batch durably; returns `(partition, offset)` per record when known.
    fn append(
        &self,
        topic: &str,
        partition: Option<u32>,
        batch: &[NewRecord],
    ) -> anyhow::Result<Vec<(u32, u64)>> {
        match self {
            Sink::Log(log) => Ok(match partition {
                Some(p) => {
                    let range = log.append(topic, p, batch)?;
                    (range.start..range.end).map(|o| (p, o)).collect()
                }
                None => log.append_routed(topic, batch)?,
            }),
            Sink::Server { url, key_field } => {
                let mut body = Vec::with_capacity(batch.iter().map(|r| r.payload.len() + 1).sum());
                for record in batch {
                    body.extend_from_slice(&record.payload);
                    body.push(b'\n');
                }
                let mut request = reqwest::blocking::Client::new().post(url).body(body);
                if let Some(field) = key_field {
                    request = request.query(&[("key_field", field)]);
                }
                let response = request.send().context("appending through the server")?;
                if !response.status().is_success() {
                    let body: serde_json::Value = response.json().unwrap_or_default();
                    bail!("the server refused the batch: {}", body["message"]);
                }
                Ok(Vec::new())
            }
        }
    }
}

/// The API address of the server holding the data directory, if one recorded it.
fn running_server(ctx: &Context) -> Option<String> {
    kappa_log::read_lock_info(&ctx.data_dir)
        .ok()
        .flatten()
        .and_then(|info| info.http_addr)
}

/// Reads lines until EOF (or the receiver is gone), checking each.
fn read_lines(input: Box<dyn Read + Send>, key_field: Option<&str>, tx: &mpsc::SyncSender<Line>) {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut number = 0u64;
    loop {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Line::Failed(e));
                return;
            }
        }
        number += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.is_empty() {
            continue;
        }
        let line = match check_line(&buf, key_field) {
            Ok(key) => Line::Record { key, payload: buf },
            Err(error) => Line::Invalid {
                line: number,
                error,
            },
        };
        if tx.send(line).is_err() {
            return;
        }
    }
}

/// Checks that `line` is one JSON value and extracts the key field, if asked for.
fn check_line(line: &[u8], key_field: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    let Some(field) = key_field else {
        serde_json::from_slice::<serde::de::IgnoredAny>(line).map_err(|e| e.to_string())?;
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok(match value.get(field) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone().into_bytes()),
        Some(other) => Some(other.to_string().into_bytes()),
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A record counter with rate on a terminal; nothing when stderr is not one.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} records ({per_sec}) {elapsed}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_checked_and_keys_extracted() {
        assert_eq!(check_line(br#"{"a":1}"#, None), Ok(None));
        assert_eq!(check_line(b"42", None), Ok(None));
        assert!(check_line(b"{\"a\":", None).unwrap_err().contains("EOF"));
        assert!(check_line(b"{} {}", None).is_err(), "one value per line");
        let key = |line: &str| check_line(line.as_bytes(), Some("id"));
        assert_eq!(key(r#"{"id":"u1","x":2}"#), Ok(Some(b"u1".to_vec())));
        assert_eq!(key(r#"{"id":17}"#), Ok(Some(b"17".to_vec())));
        assert_eq!(key(r#"{"id":null}"#), Ok(None));
        assert_eq!(key(r#"{"other":1}"#), Ok(None));
        assert_eq!(key("[1,2]"), Ok(None));
    }
}
