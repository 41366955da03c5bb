//! One module per command family, plus what they share: opening the log.

pub mod consume;
pub mod produce;
pub mod topic;

use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions};

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
