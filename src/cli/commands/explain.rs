//! `kappa explain FILE`: compile a pipeline and print its plan.

use std::path::PathBuf;

use clap::Args;

use crate::Context;

/// Arguments of `kappa explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The pipeline file (`pipelines/*.sql`).
    pub pipeline: PathBuf,
    /// Print the plan as JSON (the serialized IR) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kappa explain`.
pub fn run(_ctx: &Context, args: ExplainArgs) -> anyhow::Result<()> {
    let plan = super::compile(&args.pipeline)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", kappa_sql::explain(&plan));
    }
    Ok(())
}
