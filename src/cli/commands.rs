//! One module per command family, plus what they share: opening the log.

pub mod admin;
pub mod backend;
pub mod consume;
pub mod demo;
pub mod explain;
pub mod mirror;
pub mod produce;
pub mod query;
pub mod run;
pub mod serve;
pub mod topic;

use std::path::Path;

use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions};
use kappa_sql::plan::Plan;

use crate::Context;

/// Opens the data directory as its single writer (takes the lock).
pub(crate) fn open_writer(ctx: &Context, durability: Durability) -> anyhow::Result<EmbeddedLog> {
    let options = EmbeddedOptions {
        durability,
        ..EmbeddedOptions::default()
    };
    Ok(EmbeddedLog::open(&ctx.data_dir, options)?)
}

/// Opens the data directory for reading, beside a writer in another process if any.
pub(crate) fn open_reader(ctx: &Context) -> anyhow::Result<EmbeddedLog> {
    Ok(EmbeddedLog::open_read_only(
        &ctx.data_dir,
        EmbeddedOptions::default(),
    )?)
}

/// Compiles a pipeline file; its diagnostics (file, line, column, caret, hint) go to
/// stderr as they are.
pub(crate) fn compile(path: &Path) -> anyhow::Result<Plan> {
    kappa_sql::compile_file(path).map_err(|diagnostics| {
        eprintln!("{diagnostics}");
        anyhow::anyhow!(
            "{} has {} error(s)",
            path.display(),
            diagnostics.errors.len()
        )
    })
}
