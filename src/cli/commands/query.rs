//! `kappa query` and `kappa export`: read a view from a running server's HTTP API.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::client::ServerArgs;
use crate::{table, Context};

/// Where the server is and which view to read.
#[derive(Debug, Args)]
pub struct ViewRef {
    /// The pipeline.
    pub pipeline: String,
    /// The view.
    pub view: String,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Read this version instead of the active one.
    #[arg(long)]
    pub version: Option<u64>,
    /// Keep rows whose column equals a value: `--filter page=/p/1` (repeatable).
    #[arg(long = "filter", value_name = "COLUMN=VALUE")]
    pub filters: Vec<String>,
}

/// Arguments of `kappa query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The view to read.
    #[command(flatten)]
    pub view: ViewRef,
    /// Most rows to print.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print the API's JSON response instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Arguments of `kappa export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The view to export.
    #[command(flatten)]
    pub view: ViewRef,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    /// Output file (stdout when absent).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// Rows fetched per request when exporting.
const PAGE: usize = 10_000;

fn fetch(view: &ViewRef, limit: usize, offset: usize) -> anyhow::Result<Value> {
    let mut query: Vec<(String, String)> = vec![
        ("limit".into(), limit.to_string()),
        ("offset".into(), offset.to_string()),
    ];
    if let Some(v) = view.version {
        query.push(("version".into(), v.to_string()));
    }
    for filter in &view.filters {
        let (column, value) = filter
            .split_once('=')
            .with_context(|| format!("--filter `{filter}` is not COLUMN=VALUE"))?;
        query.push((column.into(), value.into()));
    }
    view.server.get(
        &format!("/v1/pipelines/{}/views/{}", view.pipeline, view.view),
        &query,
    )
}

fn column_names(body: &Value) -> Vec<String> {
    body["columns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `kappa query`.
pub fn run_query(_ctx: &Context, args: QueryArgs) -> anyhow::Result<()> {
    let body = fetch(&args.view, args.limit, 0)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let names = column_names(&body);
    let rows: Vec<Vec<String>> = body["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| names.iter().map(|n| cell(&row[n])).collect())
        .collect();
    print!("{}", table::render(&names, &rows));
    println!(
        "({} of {} rows, version {}, frontier {})",
        rows.len(),
        body["total"],
        body["version"],
        body["frontier"]
    );
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Runs `kappa export`: pages through the view at the frontier of its first page.
pub fn run_export(_ctx: &Context, args: ExportArgs) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut view = args.view;
    let mut offset = 0;
    let mut names = Vec::new();
    loop {
        let body = fetch(&view, PAGE, offset)?;
        if offset == 0 {
            names = column_names(&body);
            // Later pages must come from the same version the first one did.
            view.version = body["version"].as_u64();
            if let ExportFormat::Csv = args.format {
                let header: Vec<String> = names.iter().map(|n| csv_field(n)).collect();
                writeln!(out, "{}", header.join(","))?;
            }
        }
        let rows = body["rows"].as_array().cloned().unwrap_or_default();
        for row in &rows {
            match args.format {
                ExportFormat::Csv => {
                    let fields: Vec<String> = names
                        .iter()
                        .map(|n| match &row[n] {
                            Value::Null => String::new(),
                            v => csv_field(&cell(v)),
                        })
                        .collect();
                    writeln!(out, "{}", fields.join(","))?;
                }
                ExportFormat::Jsonl => writeln!(out, "{row}")?,
            }
        }
        offset += rows.len();
        if rows.len() < PAGE {
            break;
        }
    }
    out.flush()?;
    Ok(())
}
