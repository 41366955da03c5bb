//! Topics through Fluvio's admin API (the SC), and exact end offsets from the
//! partition leaders (the SPUs).
//!
//! **End offsets.** The SC's partition status carries the leader's high watermark, but
//! the SPU reports it to the SC asynchronously, so it can lag behind acknowledged
//! appends. The exact end comes from the leader itself: [`fetch_end`] opens a
//! consumer stream at `Offset::from_end(1)` that stops at the end
//! (`disable_continuous`), and the last record's offset plus one is the end (0 for an
//! empty partition). That costs a round trip to the leader per call; kappa asks for end
//! offsets when a bounded run starts and for lag, not per record.

use std::time::{Duration, Instant};

use fluvio::consumer::ConsumerConfigExtBuilder;
use fluvio::metadata::partition::{PartitionResolution, PartitionSpec};
use fluvio::metadata::topic::{TopicResolution, TopicSpec};
use fluvio::Offset;
use futures_util::StreamExt;
use kappa_log::{LogError, PartitionInfo, Result};

use crate::errors::{classify, Op};
use crate::names;
use crate::Shared;

/// Creates a topic and waits until every partition has an online leader and the
/// client's metadata knows it.
pub(crate) async fn create(shared: &Shared, topic: &str, partitions: u32) -> Result<()> {
    let name = names::to_fluvio(topic)?;
    let op = Op::Admin(topic);
    let admin = shared.fluvio.admin().await;
    let spec = TopicSpec::new_computed(partitions, shared.options.replication, None);
    admin
        .create(name.clone(), false, spec)
        .await
        .map_err(|e| classify(&shared.endpoint, op, &e))?;
    let deadline = Instant::now() + shared.options.topic_ready_timeout;
    loop {
        let ready = partition_status(shared, topic)
            .await?
            .iter()
            .filter(|(_, resolution, _)| *resolution == PartitionResolution::Online)
            .count();
        if ready == partitions as usize {
            break;
        }
        if Instant::now() >= deadline {
            return Err(LogError::PartitionOffline {
                topic: topic.to_string(),
                partition: ready as u32,
                reason: format!(
                    "only {ready} of {partitions} partitions online after {:?}",
                    shared.options.topic_ready_timeout
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The leaders are elected; give the SPUs and the client's metadata watch a moment to
    // learn of the topic (producing at once may fail with "topic not found").
    tokio::time::sleep(shared.options.topic_settle).await;
    Ok(())
}

/// The kappa names of all topics, sorted.
pub(crate) async fn list(shared: &Shared) -> Result<Vec<String>> {
    let admin = shared.fluvio.admin().await;
    let topics = admin
        .all::<TopicSpec>()
        .await
        .map_err(|e| classify(&shared.endpoint, Op::Admin(""), &e))?;
    let mut names: Vec<String> = topics.iter().map(|t| names::from_fluvio(&t.name)).collect();
    names.sort();
    Ok(names)
}

/// The partition count of a topic, or [`LogError::UnknownTopic`].
pub(crate) async fn partition_count(shared: &Shared, topic: &str) -> Result<u32> {
    let name = names::to_fluvio(topic).map_err(|_| LogError::UnknownTopic(topic.to_string()))?;
    let admin = shared.fluvio.admin().await;
    let found = admin
        .list::<TopicSpec, String>(vec![name.clone()])
        .await
        .map_err(|e| classify(&shared.endpoint, Op::Admin(topic), &e))?;
    let topic_meta = found
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| LogError::UnknownTopic(topic.to_string()))?;
    if topic_meta.status.resolution == TopicResolution::InvalidConfig {
        return Err(LogError::Backend {
            backend: "fluvio",
            context: format!("topic '{topic}'"),
            reason: format!("invalid configuration: {}", topic_meta.status.reason),
            may_have_been_written: false,
        });
    }
    Ok(topic_meta.spec.replicas().partitions())
}

/// Each partition of a topic with its resolution and size in bytes, by partition.
async fn partition_status(
    shared: &Shared,
    topic: &str,
) -> Result<Vec<(u32, PartitionResolution, u64)>> {
    let name = names::to_fluvio(topic)?;
    let admin = shared.fluvio.admin().await;
    let all = admin
        .all::<PartitionSpec>()
        .await
        .map_err(|e| classify(&shared.endpoint, Op::Admin(topic), &e))?;
    let mut out: Vec<(u32, PartitionResolution, u64)> = all
        .into_iter()
        .filter_map(|p| {
            let (t, n) = p.name.rsplit_once('-')?;
            let partition = n.parse().ok()?;
            (t == name).then(|| {
                let size = u64::try_from(p.status.size).unwrap_or(0);
                (partition, p.status.resolution, size)
            })
        })
        .collect();
    out.sort_by_key(|(p, _, _)| *p);
    Ok(out)
}

/// Partitions with exact end offsets (from the leaders) and sizes (from the SC, which
/// reports the leader's log size; 0 where it has not been reported yet).
pub(crate) async fn describe(shared: &Shared, topic: &str) -> Result<Vec<PartitionInfo>> {
    let count = partition_count(shared, topic).await?;
    let status = partition_status(shared, topic).await?;
    let name = names::to_fluvio(topic)?;
    let mut out = Vec::with_capacity(count as usize);
    for partition in 0..count {
        let end = fetch_end(shared, &name, partition)
            .await
            .map_err(|e| classify(&shared.endpoint, Op::Read(topic, partition), &e))?;
        shared.note_end(topic, partition, end);
        let bytes = status
            .iter()
            .find(|(p, _, _)| *p == partition)
            .map_or(0, |(_, _, size)| *size);
        out.push(PartitionInfo {
            partition,
            start_offset: 0,
            end_offset: end,
            bytes,
        });
    }
    Ok(out)
}

/// The exact end offset of a partition, asked of its leader (see the module docs).
pub(crate) async fn fetch_end(
    shared: &Shared,
    fluvio_topic: &str,
    partition: u32,
) -> anyhow::Result<u64> {
    let config = ConsumerConfigExtBuilder::default()
        .topic(fluvio_topic.to_string())
        .partition(partition)
        .offset_start(Offset::from_end(1))
        .disable_continuous(true)
        .build()?;
    let timeout = shared.options.request_timeout;
    let mut stream =
        tokio::time::timeout(timeout, shared.fluvio.consumer_with_config(config)).await??;
    let mut end = 0;
    let deadline = tokio::time::Instant::now() + timeout;
    while let Some(item) = tokio::time::timeout_at(deadline, stream.next()).await? {
        end = end.max(item?.offset() as u64 + 1);
    }
    Ok(end)
}
