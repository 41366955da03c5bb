//! Choosing the log backend: the embedded log in `--data-dir`, or a Fluvio cluster
//! (`--log fluvio`, `--fluvio-endpoint HOST:PORT` or the current Fluvio profile).

use std::sync::Arc;

use kappa_fluvio::{FluvioLog, FluvioOptions};
use kappa_log::{Durability, Log};

use super::{open_reader, open_writer};
use crate::Context;

/// Which log holds the topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogBackend {
    /// Segment files in the data directory (one writer process, any readers).
    #[default]
    Embedded,
    /// A Fluvio cluster.
    Fluvio,
}

/// How a command uses the log.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Appends (the embedded log takes the data directory's writer lock).
    Write(Durability),
    /// Reads only (the embedded log opens read-only, beside a writer).
    Read,
}

/// Opens the log the global options name.
pub(crate) fn open_log(ctx: &Context, access: Access) -> anyhow::Result<Arc<dyn Log>> {
    open_backend(ctx, ctx.log, access)
}

/// Opens a given backend with the global options' locations.
pub(crate) fn open_backend(
    ctx: &Context,
    backend: LogBackend,
    access: Access,
) -> anyhow::Result<Arc<dyn Log>> {
    Ok(match (backend, access) {
        (LogBackend::Embedded, Access::Write(durability)) => {
            Arc::new(open_writer(ctx, durability)?)
        }
        (LogBackend::Embedded, Access::Read) => Arc::new(open_reader(ctx)?),
        (LogBackend::Fluvio, _) => Arc::new(open_fluvio(ctx)?),
    })
}

/// Connects to the Fluvio cluster: `--fluvio-endpoint` (plaintext), else the current
/// profile of the Fluvio config file (which may carry TLS settings).
pub(crate) fn open_fluvio(ctx: &Context) -> anyhow::Result<FluvioLog> {
    let options = match &ctx.fluvio_endpoint {
        Some(endpoint) => FluvioOptions::endpoint(endpoint.clone()),
        None => FluvioOptions::profile(None),
    };
    Ok(FluvioLog::connect(options)?)
}
