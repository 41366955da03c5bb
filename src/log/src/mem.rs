//! [`MemLog`]: an in-memory [`Log`] with the embedded log's semantics and none of its
//! durability, for tests of the crates that consume the log.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::embedded::validate_topic;
use crate::watch::Watch;
use crate::{
    Log, LogError, NewRecord, Notify, OffsetRange, PartitionInfo, Record, Result, TopicDescription,
};

/// An in-memory log. Appends are "durable" as soon as they return; nothing survives the
/// value being dropped.
#[derive(Default)]
pub struct MemLog {
    topics: RwLock<BTreeMap<String, Arc<Vec<MemPartition>>>>,
}

#[derive(Default)]
struct MemPartition {
    records: RwLock<Vec<Record>>,
    watch: Watch,
}

impl MemLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn topic(&self, topic: &str) -> Result<Arc<Vec<MemPartition>>> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        topics
            .get(topic)
            .cloned()
            .ok_or_else(|| LogError::UnknownTopic(topic.to_string()))
    }

    fn with_partition<T>(
        &self,
        topic: &str,
        partition: u32,
        f: impl FnOnce(&MemPartition) -> Result<T>,
    ) -> Result<T> {
        let partitions = self.topic(topic)?;
        let p = partitions
            .get(partition as usize)
            .ok_or_else(|| LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions: partitions.len() as u32,
            })?;
        f(p)
    }
}

impl Log for MemLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        validate_topic(topic, partitions)?;
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if topics.contains_key(topic) {
            return Err(LogError::TopicExists(topic.to_string()));
        }
        let parts = (0..partitions).map(|_| MemPartition::default()).collect();
        topics.insert(topic.to_string(), Arc::new(parts));
        Ok(())
    }

    fn list_topics(&self) -> Result<Vec<String>> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        Ok(topics.keys().cloned().collect())
    }

    fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        let partitions = self.topic(topic)?;
        let partitions = partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let records = p.records.read().unwrap_or_else(PoisonError::into_inner);
                PartitionInfo {
                    partition: i as u32,
                    start_offset: 0,
                    end_offset: records.len() as u64,
                    bytes: records.iter().map(record_bytes).sum::<usize>() as u64,
                }
            })
            .collect();
        Ok(TopicDescription {
            name: topic.to_string(),
            partitions,
        })
    }

    fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.topic(topic)?.len() as u32)
    }

    fn append(&self, topic: &str, partition: u32, records: &[NewRecord]) -> Result<OffsetRange> {
        self.with_partition(topic, partition, |p| {
            let range = {
                let mut log = p.records.write().unwrap_or_else(PoisonError::into_inner);
                let start = log.len() as u64;
                log.extend(records.iter().enumerate().map(|(i, r)| Record {
                    offset: start + i as u64,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key.clone(),
                    payload: r.payload.clone(),
                }));
                OffsetRange {
                    start,
                    end: log.len() as u64,
                }
            };
            p.watch.advance(range.end);
            Ok(range)
        })
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        self.with_partition(topic, partition, |p| {
            let log = p.records.read().unwrap_or_else(PoisonError::into_inner);
            let end = log.len() as u64;
            if from_offset > end {
                return Err(LogError::OffsetOutOfRange {
                    topic: topic.to_string(),
                    partition,
                    offset: from_offset,
                    start: 0,
                    end,
                });
            }
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for record in &log[from_offset as usize..] {
                if out.len() >= max_records {
                    break;
                }
                bytes += record_bytes(record);
                if !out.is_empty() && bytes > max_bytes {
                    break;
                }
                out.push(record.clone());
            }
            Ok(out)
        })
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        self.with_partition(topic, partition, |p| {
            Ok(p.records
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len() as u64)
        })
    }

    fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<bool> {
        let partitions = self.topic(topic)?;
        self.with_partition(topic, partition, |_| Ok(()))?;
        Ok(partitions[partition as usize]
            .watch
            .wait_beyond(offset, timeout))
    }

    fn notify_when_beyond(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        callback: Notify,
    ) -> Result<()> {
        self.with_partition(topic, partition, |p| {
            p.watch.notify_beyond(offset, callback);
            Ok(())
        })
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

fn record_bytes(record: &Record) -> usize {
    record.payload.len() + record.key.as_ref().map_or(0, |k| k.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_log_round_trip_and_errors() {
        let log: Arc<dyn Log> = Arc::new(MemLog::new());
        log.create_topic("t", 2).unwrap();
        assert!(matches!(
            log.create_topic("t", 1),
            Err(LogError::TopicExists(_))
        ));
        let recs: Vec<NewRecord> = (0..5).map(|i| NewRecord::new(format!("r{i}"), i)).collect();
        assert_eq!(
            log.append("t", 1, &recs).unwrap(),
            OffsetRange { start: 0, end: 5 }
        );
        let back = log.read("t", 1, 2, 2, usize::MAX).unwrap();
        assert_eq!(
            back.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(log.read("t", 1, 5, 10, 10).unwrap().is_empty());
        assert!(matches!(
            log.read("t", 1, 6, 10, 10),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            log.read("t", 2, 0, 10, 10),
            Err(LogError::UnknownPartition { .. })
        ));
        assert!(matches!(
            log.end_offset("nope", 0),
            Err(LogError::UnknownTopic(_))
        ));
        // max_bytes: the first record always comes back, then the budget applies.
        assert_eq!(log.read("t", 1, 0, 10, 1).unwrap().len(), 1);
        assert_eq!(log.read("t", 1, 0, 10, 4).unwrap().len(), 2);
        assert!(log.wait_for("t", 1, 4, Duration::ZERO).unwrap());
        assert!(!log.wait_for("t", 1, 5, Duration::from_millis(5)).unwrap());
        let d = log.describe_topic("t").unwrap();
        assert_eq!(d.partitions[1].end_offset, 5);
        assert_eq!(d.partitions[0].end_offset, 0);
    }
}
