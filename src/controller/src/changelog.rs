//! Changelog topics that stay correct across promotions, rollbacks and restarts.
//!
//! A [`TopicSink`] knows what its topic sums to: the multiset of rows a consumer
//! reconstructs by adding up every `(row, diff)` record from offset 0 (it reads the
//! topic back when opened). Following a version appends that version's changes;
//! switching to another version — a promotion, a rollback, or the same version
//! rebuilt after a restart — appends only the difference between what the topic
//! says and the new version's state: retractions and insertions, never a re-dump
//! and never a duplicate. Because the topic is read back on open, a change is in the
//! topic exactly once from the consumer's point of view, even after a SIGKILL
//! between two appends.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use kappa_dataflow::source::now_ms;
use kappa_dataflow::store::{row_object, ViewContents};
use kappa_log::{Log, LogError, NewRecord};

/// Most records read back per call when opening a topic.
const READ_BATCH: usize = 4096;

/// One change of a row, as written to a changelog topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The row, as canonical JSON object text.
    pub row: String,
    /// Its multiplicity change.
    pub diff: i64,
    /// The logical time (frontier) at which it was applied.
    pub time: u64,
}

/// A changelog topic and the state it encodes.
#[derive(Debug)]
pub struct TopicSink {
    topic: String,
    columns: Vec<String>,
    /// Row (as canonical JSON object text) → multiplicity, as the topic sums up.
    state: BTreeMap<String, i64>,
}

/// A view's contents keyed the way sinks key rows.
pub fn view_state(columns: &[String], contents: &ViewContents) -> BTreeMap<String, i64> {
    contents
        .rows
        .iter()
        .map(|(row, n)| (row_object(columns, &row).to_string(), n))
        .collect()
}

impl TopicSink {
    /// Opens (creating if needed) a one-partition changelog topic and reads back
    /// what it sums to.
    pub fn open(log: &dyn Log, topic: String, columns: Vec<String>) -> Result<TopicSink, LogError> {
        match log.create_topic(&topic, 1) {
            Ok(()) | Err(LogError::TopicExists(_)) => {}
            Err(e) => return Err(e),
        }
        let mut state: BTreeMap<String, i64> = BTreeMap::new();
        let end = log.end_offset(&topic, 0)?;
        let mut offset = 0;
        while offset < end {
            let records = log.read(&topic, 0, offset, READ_BATCH, 16 << 20)?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            for record in records {
                match serde_json::from_slice::<serde_json::Value>(&record.payload) {
                    Ok(change) => {
                        let diff = change["diff"].as_i64().unwrap_or(0);
                        add(&mut state, change["row"].to_string(), diff);
                    }
                    Err(error) => {
                        tracing::warn!(%topic, offset = record.offset, %error, "skipping an unreadable changelog record")
                    }
                }
            }
        }
        Ok(TopicSink {
            topic,
            columns,
            state,
        })
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// True when the topic sums to nothing.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// The column names rows are keyed by.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Appends changes durably, in one batch (one fsync), then records them.
    pub fn append(
        &mut self,
        log: &dyn Log,
        changes: Vec<Change>,
        version: u64,
    ) -> Result<(), LogError> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = now_ms() as i64;
        let records: Vec<NewRecord> = changes
            .iter()
            .map(|Change { row, diff, time }| {
                // The row text is already a JSON object; splice it in without re-parsing.
                let record =
                    format!(r#"{{"row":{row},"diff":{diff},"time":{time},"version":{version}}}"#);
                NewRecord::new(record.into_bytes(), now)
            })
            .collect();
        log.append(&self.topic, 0, &records)?;
        for change in changes {
            add(&mut self.state, change.row, change.diff);
        }
        Ok(())
    }

    /// Appends whatever turns the topic's state into `target`.
    pub fn reconcile(
        &mut self,
        log: &dyn Log,
        target: &BTreeMap<String, i64>,
        time: u64,
        version: u64,
    ) -> Result<usize, LogError> {
        let mut changes = Vec::new();
        for (row, n) in &self.state {
            let wanted = target.get(row).copied().unwrap_or(0);
            if wanted != *n {
                changes.push(Change {
                    row: row.clone(),
                    diff: wanted - n,
                    time,
                });
            }
        }
        for (row, n) in target {
            if !self.state.contains_key(row) {
                changes.push(Change {
                    row: row.clone(),
                    diff: *n,
                    time,
                });
            }
        }
        let count = changes.len();
        self.append(log, changes, version)?;
        Ok(count)
    }
}

fn add(state: &mut BTreeMap<String, i64>, row: String, diff: i64) {
    match state.entry(row) {
        Entry::Occupied(mut entry) => {
            *entry.get_mut() += diff;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
        Entry::Vacant(entry) => {
            if diff != 0 {
                entry.insert(diff);
            }
        }
    }
}

/// A change's row, keyed as sinks key rows.
pub fn change_key(columns: &[String], row: &[kappa_sql::Value]) -> String {
    row_object(columns, row).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kappa_log::MemLog;

    #[test]
    fn reconcile_appends_only_the_difference_and_survives_reopen() {
        let log = MemLog::new();
        let columns = vec!["k".to_string()];
        let mut sink = TopicSink::open(&log, "p.v".into(), columns.clone()).unwrap();
        let change = |row: &str| Change {
            row: row.into(),
            diff: 1,
            time: 1,
        };
        sink.append(&log, vec![change(r#"{"k":1}"#), change(r#"{"k":2}"#)], 1)
            .unwrap();
        let target = BTreeMap::from([(r#"{"k":2}"#.to_string(), 1), (r#"{"k":3}"#.to_string(), 2)]);
        assert_eq!(sink.reconcile(&log, &target, 2, 2).unwrap(), 2);
        let reopened = TopicSink::open(&log, "p.v".into(), columns).unwrap();
        assert_eq!(reopened.state, target);
        assert_eq!(log.end_offset("p.v", 0).unwrap(), 4);
    }
}
