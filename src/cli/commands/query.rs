//! `kappa query` and `kappa export`: read a view from a running server's HTTP API.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
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

fn fetch(view: &ViewRef, limit: usize, offset: usize) -> anyhow::Result<Value> {
    let mut query: Vec<(String, String)> = vec![
        ("limit".into(), limit.to_string()),
        ("offset".into(), offset.to_string()),
    ];
    query.extend(view_query(view)?);
    view.server.get(
        &format!("/v1/pipelines/{}/views/{}", view.pipeline, view.view),
        &query,
    )
}

/// The version and filters of a view reference, as query parameters.
fn view_query(view: &ViewRef) -> anyhow::Result<Vec<(String, String)>> {
    let mut query = Vec::new();
    if let Some(v) = view.version {
        query.push(("version".into(), v.to_string()));
    }
    for filter in &view.filters {
        let (column, value) = filter
            .split_once('=')
            .with_context(|| format!("--filter `{filter}` is not COLUMN=VALUE"))?;
        query.push((column.into(), value.into()));
    }
    Ok(query)
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

/// Writes an export's JSON lines (a header, then one row per line) as `format`;
/// returns the rows written. A body cut short (the server stopped mid-export) is an
/// error, not a smaller view: the header says how many rows there are.
fn write_export(
    mut lines: impl BufRead,
    format: ExportFormat,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let mut line = String::new();
    lines
        .read_line(&mut line)
        .context("reading the export's header")?;
    let header: Value = serde_json::from_str(&line).context("the export's header is not JSON")?;
    let names = column_names(&header);
    if let ExportFormat::Csv = format {
        let fields: Vec<String> = names.iter().map(|n| csv_field(n)).collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    let mut written = 0u64;
    loop {
        line.clear();
        if lines.read_line(&mut line).context("reading the export")? == 0 {
            break;
        }
        let row: Value = serde_json::from_str(&line).context("an exported row is not JSON")?;
        match format {
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
        written += 1;
    }
    if Some(written) != header["total"].as_u64() {
        bail!(
            "the export ended after {written} of {} rows",
            header["total"]
        );
    }
    Ok(written)
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Runs `kappa export`: every row of one snapshot of the view
/// (`GET .../views/{v}/export`, JSON lines), written as it arrives.
pub fn run_export(_ctx: &Context, args: ExportArgs) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let view = &args.view;
    let query = view_query(view)?;
    let lines = view.server.get_lines(
        &format!("/v1/pipelines/{}/views/{}/export", view.pipeline, view.view),
        &query,
    )?;
    write_export(lines, args.format, &mut out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"columns":[{"name":"user"},{"name":"revenue"}],"total":2}"#;

    #[test]
    fn an_export_is_written_as_csv_with_nulls_empty() {
        let body = format!("{HEADER}\n{{\"user\":\"u1\",\"revenue\":2.5}}\n{{\"user\":\"u,2\",\"revenue\":null}}\n");
        let mut out = Vec::new();
        let written = write_export(body.as_bytes(), ExportFormat::Csv, &mut out).unwrap();
        assert_eq!(written, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "user,revenue\nu1,2.5\n\"u,2\",\n"
        );
    }

    #[test]
    fn an_export_cut_short_is_an_error() {
        let body = format!("{HEADER}\n{{\"user\":\"u1\",\"revenue\":2.5}}\n");
        let error =
            write_export(body.as_bytes(), ExportFormat::Jsonl, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("after 1 of 2 rows"), "{error}");
    }
}
