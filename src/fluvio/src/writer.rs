//! Appending: one Fluvio producer per partition written, pinned to that partition.
//!
//! An append sends its records, flushes, and awaits every record's metadata, so it
//! returns only once the partition leader has stored the whole batch; the offsets come
//! from that metadata. Appends to one partition are serialised in this process, so a
//! batch gets consecutive offsets as long as this process is the partition's only
//! writer (as with the embedded log's writer lock). Another writer to the same
//! partition could interleave its records; the append then fails with
//! [`LogError::Backend`] (`may_have_been_written`), since the batch was stored but not
//! as one range.
//!
//! What "stored" means is Fluvio's: the leader has the records (and, with a replication
//! factor above 1, the in-sync replicas once it acknowledges); a leader crash before its
//! log is flushed to disk can lose acknowledged records, as with any Fluvio producer.

use std::collections::HashMap;
use std::sync::Arc;

use fluvio::{RecordKey, TopicProducerConfigBuilder, TopicProducerPool};
use kappa_log::{LogError, NewRecord, OffsetRange, Result};
use tokio::sync::Mutex;

use crate::errors::{classify, Op};
use crate::Shared;

/// A partition's producer, created on first use, behind the lock that serialises
/// appends to the partition.
type Slot = Arc<Mutex<Option<TopicProducerPool>>>;

/// The producers, one per (kappa topic, partition).
#[derive(Default)]
pub(crate) struct Producers {
    map: std::sync::Mutex<HashMap<(String, u32), Slot>>,
}

impl Producers {
    fn slot(&self, topic: &str, partition: u32) -> Slot {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((topic.to_string(), partition))
            .or_default()
            .clone()
    }
}

/// Appends `records` to one partition and returns their offsets.
pub(crate) async fn append(
    shared: &Shared,
    topic: &str,
    fluvio_topic: &str,
    partition: u32,
    records: Vec<NewRecord>,
) -> Result<OffsetRange> {
    let op = Op::Append(topic, partition);
    let slot = shared.producers.slot(topic, partition);
    let mut guard = slot.lock().await;
    if guard.is_none() {
        let mut builder = TopicProducerConfigBuilder::default();
        builder
            .set_specific_partitioner(partition)
            .linger(shared.options.linger)
            .batch_size(shared.options.batch_bytes)
            .max_request_size(shared.options.batch_bytes.max(1 << 20))
            .timeout(shared.options.request_timeout);
        let config = builder.build().map_err(|e| LogError::Backend {
            backend: "fluvio",
            context: "building a producer configuration".into(),
            reason: e.to_string(),
            may_have_been_written: false,
        })?;
        let producer = shared
            .fluvio
            .topic_producer_with_config(fluvio_topic.to_string(), config)
            .await
            .map_err(|e| classify(&shared.endpoint, op, &e))?;
        *guard = Some(producer);
    }
    let producer = guard.as_ref().expect("created above");
    let result = send_all(shared, producer, op, records).await;
    if result.is_err() {
        // A producer that saw an error keeps failing; build a fresh one next time.
        *guard = None;
    }
    result
}

async fn send_all(
    shared: &Shared,
    producer: &TopicProducerPool,
    op: Op<'_>,
    records: Vec<NewRecord>,
) -> Result<OffsetRange> {
    let n = records.len();
    let mut pending = Vec::with_capacity(n);
    for (i, record) in records.into_iter().enumerate() {
        let key = match record.key {
            Some(key) => RecordKey::from(key.to_vec()),
            None => RecordKey::NULL,
        };
        let sent = producer
            .send(key, record.payload.to_vec())
            .await
            .map_err(|e| written_if(classify(&shared.endpoint, op, &e), i > 0))?;
        pending.push(sent);
    }
    producer
        .flush()
        .await
        .map_err(|e| written_if(classify(&shared.endpoint, op, &e), n > 0))?;
    let mut offsets = Vec::with_capacity(n);
    for output in pending {
        let metadata = output.wait().await.map_err(|e| {
            let e = anyhow::Error::new(e);
            written_if(classify(&shared.endpoint, op, &e), true)
        })?;
        offsets.push(metadata.offset() as u64);
    }
    let Some(&start) = offsets.first() else {
        return Ok(OffsetRange { start: 0, end: 0 });
    };
    let contiguous = offsets
        .iter()
        .enumerate()
        .all(|(i, &o)| o == start + i as u64);
    if !contiguous {
        let (topic, partition) = match op {
            Op::Append(t, p) => (t, p),
            _ => ("", 0),
        };
        return Err(LogError::Backend {
            backend: "fluvio",
            context: format!("appending to {topic}/{partition}"),
            reason: format!(
                "the batch was stored at non-consecutive offsets from {start}: another \
                 process writes to this partition"
            ),
            may_have_been_written: true,
        });
    }
    Ok(OffsetRange {
        start,
        end: start + n as u64,
    })
}

/// Marks an append error as "may have been written" when records had already left.
fn written_if(error: LogError, sent: bool) -> LogError {
    match error {
        LogError::Backend {
            backend,
            context,
            reason,
            ..
        } => LogError::Backend {
            backend,
            context,
            reason,
            may_have_been_written: sent,
        },
        LogError::Unreachable { endpoint, reason } if sent => LogError::Backend {
            backend: "fluvio",
            context: format!("connection to {endpoint} lost during an append"),
            reason,
            may_have_been_written: true,
        },
        other => other,
    }
}
