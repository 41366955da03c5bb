//! How long the store stalls while a view grows: the slowest single row added to a
//! view's rows (`kappa_dataflow::store::RowCounts`, graded shards) as it grows to
//! `--rows` rows, beside the same rows added to one plain `hashbrown::HashMap`.
//!
//! A live pipeline waits for the store: a row whose insertion doubles a table of
//! hundreds of thousands of rows delays every append whose changes are in that
//! batch. The rows are shaped like `page_minute_counts`' (page, window, count).
//! `RowCounts::add` packs each row (the store keeps rows packed; in a pipeline the
//! workers pack them); the baseline moves the row in.
//!
//! `cargo run --release -p kappa-bench --bin growth_bench -- --rows 600000 --runs 3`

use std::time::Instant;

use kappa_dataflow::store::RowCounts;
use kappa_sql::{Row, Value};

type Error = Box<dyn std::error::Error>;

/// The slowest adds to keep per run.
const SLOWEST: usize = 3;

/// One table's run: total seconds, and its slowest adds as (ms, rows before it).
struct Growth {
    total_secs: f64,
    slowest: Vec<(f64, usize)>,
}

/// Adds `rows` distinct rows to a table through `add`, timing each.
fn grow(rows: usize, mut add: impl FnMut(Row)) -> Growth {
    let mut times: Vec<(f64, usize)> = Vec::with_capacity(rows);
    let started = Instant::now();
    for i in 0..rows {
        let row = vec![
            Value::Text(format!("/p/{}", i % 10_000).into()),
            Value::Int((i / 10_000) as i64),
            Value::Int(1),
        ];
        let at = Instant::now();
        add(row);
        times.push((at.elapsed().as_secs_f64() * 1e3, i));
    }
    let total_secs = started.elapsed().as_secs_f64();
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    times.truncate(SLOWEST);
    Growth {
        total_secs,
        slowest: times,
    }
}

/// The number after `name` in `args`, or `default` when not given.
fn number(args: &[String], name: &str, default: usize) -> Result<usize, Error> {
    Ok(kappa_bench::option_value(args, name).map_or(Ok(default), str::parse)?)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows = number(&args, "--rows", 600_000)?;
    let runs = number(&args, "--runs", 3)?;
    if rows == 0 {
        return Err("--rows must be at least 1".into());
    }
    println!("{rows} distinct rows added one at a time; slowest adds as ms @ rows before it\n");
    println!(
        "{:<5} {:<34} {:>8}  slowest adds",
        "run", "table", "total s"
    );
    for run in 1..=runs {
        // Alternated, so that the machine's drift falls on both alike.
        let mut plain: hashbrown::HashMap<Row, i64> = hashbrown::HashMap::new();
        let baseline = grow(rows, |row| *plain.entry(row).or_insert(0) += 1);
        drop(plain);
        let mut counts = RowCounts::default();
        let graded = grow(rows, |row| {
            counts.add(&row, 1);
        });
        for (name, growth) in [
            ("plain hashbrown::HashMap (baseline)", &baseline),
            ("kappa RowCounts (graded shards)", &graded),
        ] {
            let slowest: Vec<String> = growth
                .slowest
                .iter()
                .map(|(ms, at)| format!("{ms:.1} @ {at}"))
                .collect();
            println!(
                "{run:<5} {name:<34} {:>8.3}  {}",
                growth.total_secs,
                slowest.join(", ")
            );
        }
        println!(
            "{run:<5} {:<34} {:>8.2}  slowest {:.2}× the baseline's",
            "ratio kappa / baseline",
            graded.total_secs / baseline.total_secs,
            graded.slowest[0].0 / baseline.slowest[0].0
        );
    }
    Ok(())
}
