//! sqllogictest-style checks of the planner and the batch oracle: every
//! `tests/slt/*.slt` file is a script run top to bottom.
//!
//! The format: blocks separated by blank lines; lines starting with `#` are
//! comments. The first line of a block says what it is:
//!
//! ```text
//! statement ok                 SQL lines follow; they are appended to the pipeline,
//!                              and the whole pipeline must compile.
//! statement error <text>       SQL lines follow; the pipeline plus them must fail to
//!                              compile with an error whose rendering contains <text>.
//!                              They are not appended.
//! pipeline <path>              Appends a file (relative to this crate) to the pipeline.
//! input <topic> [<partition>]  One payload per line follows, appended in offset order
//!                              to the partition (default 0).
//! query <view> [ordered]       The expected rows of the view follow, one per line,
//!                              values separated by ` | ` (NULL, text unquoted,
//!                              timestamps in RFC 3339). Compared as a sorted multiset,
//!                              or in the view's presentation order with `ordered`.
//!                              A header alone expects no rows.
//! errors                       The expected dropped records and rows, one per line:
//!                              `decode <topic>/<partition>@<offset>: <reason>` or
//!                              `eval %<node> [<row>]: <reason>` (compared as a set).
//! late                         The expected late records, `<topic>/<partition>@<offset>`.
//! reset                        Clears the pipeline and the input.
//! ```
//!
//! Queries, `errors` and `late` evaluate the current pipeline over the current
//! input with the oracle.

use std::path::{Path, PathBuf};

use kappa_sql::oracle::{evaluate, presentation_order, ErrorOrigin, OracleInput};
use kappa_sql::{compile_str, Value};

fn render_row(row: &[Value]) -> String {
    row.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

struct Script {
    file: PathBuf,
    pipeline: String,
    input: OracleInput,
    failures: Vec<String>,
}

impl Script {
    fn fail(&mut self, line: usize, message: String) {
        self.failures
            .push(format!("{}:{line}: {message}", self.file.display()));
    }

    fn run_block(&mut self, line: usize, header: &str, body: &[&str]) {
        let (command, argument) = header.split_once(' ').unwrap_or((header, ""));
        let body_text = body.join("\n");
        match command {
            "statement" if argument == "ok" => {
                let text = format!("{}\n{body_text}\n", self.pipeline);
                match compile_str("test.sql", &text) {
                    Ok(_) => self.pipeline = text,
                    Err(e) => self.fail(line, format!("expected to compile, got:\n{e}")),
                }
            }
            "statement" if argument.starts_with("error") => {
                let wanted = argument.trim_start_matches("error").trim();
                let text = format!("{}\n{body_text}\n", self.pipeline);
                match compile_str("test.sql", &text) {
                    Ok(_) => self.fail(line, format!("expected an error containing `{wanted}`")),
                    Err(e) if e.to_string().contains(wanted) => {}
                    Err(e) => self.fail(
                        line,
                        format!("expected an error containing `{wanted}`, got:\n{e}"),
                    ),
                }
            }
            "pipeline" => {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(argument);
                match std::fs::read_to_string(&path) {
                    Ok(text) => self.pipeline = format!("{}\n{text}\n", self.pipeline),
                    Err(e) => self.fail(line, format!("cannot read {}: {e}", path.display())),
                }
            }
            "input" => {
                let mut parts = argument.split_whitespace();
                let topic = parts.next().unwrap_or_default().to_string();
                let partition: u32 = parts.next().map_or(0, |p| p.parse().unwrap_or(0));
                for payload in body {
                    self.input.push(&topic, partition, payload.as_bytes());
                }
            }
            "query" | "errors" | "late" => self.check(line, command, argument, body),
            "reset" => {
                self.pipeline.clear();
                self.input = OracleInput::new();
            }
            _ => self.fail(line, format!("unknown block `{header}`")),
        }
    }

    fn check(&mut self, line: usize, command: &str, argument: &str, body: &[&str]) {
        let plan = match compile_str("test.sql", &self.pipeline) {
            Ok(plan) => plan,
            Err(e) => return self.fail(line, format!("pipeline does not compile:\n{e}")),
        };
        let output = match evaluate(&plan, &self.input) {
            Ok(output) => output,
            Err(e) => return self.fail(line, format!("oracle failed: {e}")),
        };
        let mut expected: Vec<String> = body.iter().map(|l| l.trim().to_string()).collect();
        let mut actual: Vec<String> = match command {
            "query" => {
                let mut parts = argument.split_whitespace();
                let name = parts.next().unwrap_or_default();
                let ordered = parts.next() == Some("ordered");
                let Some(view) = plan.view(name) else {
                    return self.fail(line, format!("no view `{name}`"));
                };
                let mut rows = output.views[name].clone();
                if ordered {
                    presentation_order(view, &mut rows);
                } else {
                    expected.sort();
                }
                let mut rendered: Vec<String> = rows.iter().map(|r| render_row(r)).collect();
                if !ordered {
                    rendered.sort();
                }
                rendered
            }
            "errors" => {
                expected.sort();
                let mut rendered: Vec<String> = output
                    .errors
                    .iter()
                    .map(|e| match &e.origin {
                        ErrorOrigin::Record {
                            topic,
                            partition,
                            offset,
                        } => format!("decode {topic}/{partition}@{offset}: {}", e.reason),
                        ErrorOrigin::Row { node, row } => {
                            format!("eval %{node} [{}]: {}", render_row(row), e.reason)
                        }
                    })
                    .collect();
                rendered.sort();
                rendered
            }
            _ => {
                expected.sort();
                let mut rendered: Vec<String> = output
                    .late
                    .iter()
                    .map(|r| format!("{}/{}@{}", r.topic, r.partition, r.offset))
                    .collect();
                rendered.sort();
                rendered
            }
        };
        actual.iter_mut().for_each(|a| *a = a.trim().to_string());
        if actual != expected {
            self.fail(
                line,
                format!(
                    "`{command} {argument}`:\n  expected:\n    {}\n  actual:\n    {}",
                    expected.join("\n    "),
                    actual.join("\n    ")
                ),
            );
        }
    }
}

fn run_file(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("readable slt file");
    let mut script = Script {
        file: file.to_path_buf(),
        pipeline: String::new(),
        input: OracleInput::new(),
        failures: Vec::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let header = line.trim();
        i += 1;
        let mut body = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            if !lines[i].starts_with('#') {
                body.push(lines[i]);
            }
            i += 1;
        }
        script.run_block(start, header, &body);
    }
    script.failures
}

#[test]
fn slt_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let failures: Vec<String> = files.iter().flat_map(|f| run_file(f)).collect();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
