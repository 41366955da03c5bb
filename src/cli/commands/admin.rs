//! Commands that steer a running `kappa serve`: deploy, promote, rollback, retire,
//! diff and status.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde_json::{json, Value};

use crate::client::ServerArgs;
use crate::{table, Context};

/// Arguments of `kappa deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The pipeline file; its stem names the pipeline.
    pub pipeline: PathBuf,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `kappa promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The pipeline.
    pub pipeline: String,
    /// The version to promote.
    #[arg(long)]
    pub version: u64,
    /// Refuse when more rows than this differ from the active version.
    #[arg(long)]
    pub max_changed_rows: Option<u64>,
    /// Refuse unless this view is identical in both versions (repeatable).
    #[arg(long = "require-identical", value_name = "VIEW")]
    pub require_identical: Vec<String>,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `kappa rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The pipeline.
    pub pipeline: String,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `kappa retire`.
#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The pipeline.
    pub pipeline: String,
    /// The version to retire.
    #[arg(long)]
    pub version: u64,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `kappa diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The pipeline.
    pub pipeline: String,
    /// The old version.
    pub old: u64,
    /// The new version.
    pub new: u64,
    /// Only this view.
    pub view: Option<String>,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `kappa status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the API's JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `kappa deploy`.
pub fn deploy(_ctx: &Context, args: DeployArgs) -> anyhow::Result<()> {
    let sql = std::fs::read_to_string(&args.pipeline)
        .with_context(|| format!("reading {}", args.pipeline.display()))?;
    let body = args.server.post(
        "/v1/pipelines",
        &json!({ "file": args.pipeline.display().to_string(), "sql": sql }),
    )?;
    println!(
        "deployed {} v{}: replaying the log from offset 0 (watch `kappa status`)",
        body["pipeline"].as_str().unwrap_or("?"),
        body["version"]
    );
    Ok(())
}

fn print_diff(views: &Value) {
    let rows: Vec<Vec<String>> = views
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            vec![
                d["view"].as_str().unwrap_or("?").to_string(),
                d["added"].to_string(),
                d["removed"].to_string(),
                d["changed"].to_string(),
                if d["fingerprint_old"] == d["fingerprint_new"] {
                    "identical".into()
                } else {
                    "differs".into()
                },
            ]
        })
        .collect();
    let header = ["view", "added", "removed", "changed", ""].map(String::from);
    print!("{}", table::render(&header, &rows));
    for d in views.as_array().into_iter().flatten() {
        for sample in d["sample"].as_array().into_iter().flatten().take(5) {
            println!(
                "  {} {}: {} -> {}",
                d["view"].as_str().unwrap_or("?"),
                sample["kind"].as_str().unwrap_or("?"),
                sample["old"],
                sample["new"]
            );
        }
    }
}

/// Runs `kappa promote`.
pub fn promote(_ctx: &Context, args: PromoteArgs) -> anyhow::Result<()> {
    let body = args.server.post(
        &format!("/v1/pipelines/{}/promote", args.pipeline),
        &json!({
            "version": args.version,
            "max_changed_rows": args.max_changed_rows,
            "require_identical": args.require_identical,
        }),
    )?;
    println!(
        "{} v{} is active (was {}); {} changes appended to the changelog topics",
        args.pipeline,
        args.version,
        body["previous"]
            .as_u64()
            .map_or("none".into(), |v| format!("v{v}")),
        body["changelog_changes"]
    );
    print_diff(&body["diff"]);
    Ok(())
}

/// Runs `kappa rollback`.
pub fn rollback(_ctx: &Context, args: RollbackArgs) -> anyhow::Result<()> {
    let body = args.server.post(
        &format!("/v1/pipelines/{}/rollback", args.pipeline),
        &json!({}),
    )?;
    println!(
        "{} rolled back to v{} (from v{})",
        args.pipeline, body["version"], body["previous"]
    );
    Ok(())
}

/// Runs `kappa retire`.
pub fn retire(_ctx: &Context, args: RetireArgs) -> anyhow::Result<()> {
    args.server.post(
        &format!(
            "/v1/pipelines/{}/versions/{}/retire",
            args.pipeline, args.version
        ),
        &json!({}),
    )?;
    println!("{} v{} retired", args.pipeline, args.version);
    Ok(())
}

/// Runs `kappa diff`.
pub fn diff(_ctx: &Context, args: DiffArgs) -> anyhow::Result<()> {
    let mut query = vec![
        ("old".to_string(), args.old.to_string()),
        ("new".to_string(), args.new.to_string()),
    ];
    if let Some(view) = &args.view {
        query.push(("view".into(), view.clone()));
    }
    let body = args
        .server
        .get(&format!("/v1/pipelines/{}/diff", args.pipeline), &query)?;
    print_diff(&body["views"]);
    Ok(())
}

/// Runs `kappa status`.
pub fn status(_ctx: &Context, args: StatusArgs) -> anyhow::Result<()> {
    let body = args.server.get("/v1/status", &[])?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut unreachable = Vec::new();
    for p in body["pipelines"].as_array().into_iter().flatten() {
        for v in p["versions"].as_array().into_iter().flatten() {
            let progress = &v["progress"];
            let failing = progress["unreachable_partitions"].as_array();
            for u in failing.into_iter().flatten() {
                unreachable.push(format!(
                    "{} v{}: cannot read {}/{} ({} failures in a row): {}",
                    p["name"].as_str().unwrap_or("?"),
                    v["version"],
                    u["topic"].as_str().unwrap_or("?"),
                    u["partition"],
                    u["consecutive_failures"],
                    u["error"].as_str().unwrap_or("?"),
                ));
            }
            rows.push(vec![
                p["name"].as_str().unwrap_or("?").to_string(),
                format!("v{}", v["version"]),
                v["state"].as_str().unwrap_or("?").to_string(),
                if v["caught_up"] == true {
                    "yes".into()
                } else {
                    "no".into()
                },
                progress["records_behind"].to_string(),
                progress["ratio"]
                    .as_f64()
                    .map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                progress["replay_rate"]
                    .as_f64()
                    .map_or("-".into(), |r| format!("{r:.0}/s")),
                progress["eta_seconds"]
                    .as_f64()
                    .map_or("-".into(), |s| format!("{s:.1}s")),
                match failing.map_or(0, Vec::len) {
                    0 if v["progress"].is_null() => "-".into(),
                    0 => "ok".into(),
                    n => format!("{n} unreachable"),
                },
            ]);
        }
    }
    let header = [
        "pipeline",
        "version",
        "state",
        "caught up",
        "behind",
        "progress",
        "rate",
        "eta",
        "sources",
    ]
    .map(String::from);
    print!("{}", table::render(&header, &rows));
    for line in unreachable {
        println!("{line}");
    }
    Ok(())
}
