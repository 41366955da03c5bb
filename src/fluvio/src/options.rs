//! [`FluvioOptions`]: where the cluster is and how the backend is tuned.

use std::time::Duration;

use fluvio::FluvioClusterConfig;
use kappa_log::{LogError, Result};

/// How to reach the cluster.
#[derive(Debug, Clone)]
enum Cluster {
    /// A plaintext SC address, `HOST:PORT`.
    Endpoint(String),
    /// A profile of the Fluvio config file (`~/.fluvio/config`, or `$FLV_CONFIG_PATH`),
    /// which may carry TLS settings (build with the `tls` feature); `None` is the current
    /// profile.
    Profile(Option<String>),
}

/// Where the cluster is, and the backend's tuning. Start from [`FluvioOptions::endpoint`]
/// or [`FluvioOptions::profile`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct FluvioOptions {
    cluster: Cluster,
    /// Replication factor of topics this log creates.
    pub replication: u32,
    /// Largest fetch response a consumer stream asks for (`max_bytes`). The published
    /// client's default is 1 MiB; larger makes the client's record-skipping bug (repaired
    /// by gap detection) rarer.
    pub fetch_max_bytes: i32,
    /// Bytes of records a cursor buffers ahead of its reader before its stream pauses.
    pub buffer_bytes: usize,
    /// Cursors (consumer streams) kept per partition; the idlest is closed beyond this.
    pub max_cursors: usize,
    /// A cursor nobody read from or waited on for this long is closed.
    pub cursor_idle: Duration,
    /// Producer linger: how long a batch may wait for more records.
    pub linger: Duration,
    /// Producer batch size in bytes.
    pub batch_bytes: usize,
    /// Bound on one request to the cluster (admin, end offset, open a stream, produce).
    pub request_timeout: Duration,
    /// How long [`crate::FluvioLog::connect`] keeps trying.
    pub connect_timeout: Duration,
    /// How long `create_topic` waits for every partition to have an online leader.
    pub topic_ready_timeout: Duration,
    /// Pause after a topic's partitions are online, before it is used.
    pub topic_settle: Duration,
}

impl FluvioOptions {
    /// A plaintext cluster whose SC listens at `addr` (`HOST:PORT`, e.g.
    /// `127.0.0.1:9003` for a local cluster).
    pub fn endpoint(addr: impl Into<String>) -> Self {
        Self::with(Cluster::Endpoint(addr.into()))
    }

    /// A profile of the Fluvio config file (`None`: its current profile), as the `fluvio`
    /// CLI uses; carries the endpoint and TLS settings.
    pub fn profile(name: Option<String>) -> Self {
        Self::with(Cluster::Profile(name))
    }

    fn with(cluster: Cluster) -> Self {
        FluvioOptions {
            cluster,
            replication: 1,
            fetch_max_bytes: 16 << 20,
            buffer_bytes: 32 << 20,
            max_cursors: 4,
            cursor_idle: Duration::from_secs(60),
            linger: Duration::from_millis(2),
            batch_bytes: 512 << 10,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
            topic_ready_timeout: Duration::from_secs(30),
            topic_settle: Duration::from_millis(500),
        }
    }

    /// The client configuration these options name.
    pub(crate) fn cluster_config(&self) -> Result<FluvioClusterConfig> {
        let profile_error = |reason: String| LogError::Backend {
            backend: "fluvio",
            context: "loading the fluvio profile".into(),
            reason,
            may_have_been_written: false,
        };
        match &self.cluster {
            Cluster::Endpoint(addr) => Ok(FluvioClusterConfig::new(addr.clone())),
            Cluster::Profile(None) => {
                FluvioClusterConfig::load().map_err(|e| profile_error(e.to_string()))
            }
            Cluster::Profile(Some(name)) => FluvioClusterConfig::load_with_profile(name)
                .map_err(|e| profile_error(e.to_string()))?
                .ok_or_else(|| profile_error(format!("no profile named '{name}'"))),
        }
    }
}
