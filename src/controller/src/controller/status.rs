//! What the controller reports about its pipelines: readiness and status (versions,
//! states, transitions, replay progress).

use kappa_dataflow::engine::VersionId;
use serde_json::json;

use super::{Controller, Running};

impl Controller {
    /// Whether every pipeline's active version is caught up (readiness).
    pub fn ready(&self) -> bool {
        let inner = self.lock();
        inner
            .catalog
            .pipelines
            .iter()
            .all(|(name, p)| match p.active {
                Some(v) => inner
                    .running
                    .get(&VersionId {
                        pipeline: name.clone(),
                        version: v,
                    })
                    .is_some_and(|r| r.version.is_caught_up()),
                None => p.versions.values().all(|v| !v.state.is_running()),
            })
    }

    /// Pipelines, versions, states, transitions and progress, as JSON.
    pub fn status(&self) -> serde_json::Value {
        let inner = self.lock();
        let pipelines: Vec<serde_json::Value> = inner
            .catalog
            .pipelines
            .iter()
            .map(|(name, p)| {
                let versions: Vec<serde_json::Value> = p
                    .versions
                    .values()
                    .map(|record| {
                        let id = VersionId { pipeline: name.clone(), version: record.version };
                        let progress = inner.running.get(&id).map(|r| self.progress(r));
                        let waiting = inner.waiting.get(&id).map(|w| json!({
                            "error": w.error, "failures": w.failures, "since_ms": w.since_ms,
                        }));
                        json!({
                            "version": record.version,
                            "state": record.state,
                            "caught_up": inner.running.get(&id).is_some_and(|r| r.version.is_caught_up()),
                            "file": record.file,
                            "content_hash": record.content_hash,
                            "transitions": record.transitions,
                            "progress": progress,
                            "waiting_for_log": waiting,
                        })
                    })
                    .collect();
                json!({ "name": name, "active_version": p.active, "versions": versions })
            })
            .collect();
        json!({ "pipelines": pipelines })
    }

    fn progress(&self, running: &Running) -> serde_json::Value {
        running.store.read(|s| {
            let mut behind = 0u64;
            let partitions: Vec<serde_json::Value> = running
                .previous_ends
                .iter()
                .map(|((topic, partition), end)| {
                    let p = s.offsets.get(&(topic.clone(), *partition));
                    let offset = p.map_or(0, |p| p.next_offset);
                    behind += end.saturating_sub(offset);
                    json!({
                        "topic": topic, "partition": partition, "offset": offset, "end": end, "lag": end.saturating_sub(offset),
                        "read_errors": p.map_or(0, |p| p.read_errors),
                    })
                })
                .collect();
            // Partitions whose last read failed: the version is stalled on them.
            let unreachable: Vec<serde_json::Value> = s
                .offsets
                .iter()
                .filter_map(|((topic, partition), p)| {
                    let failure = p.last_read_error.as_ref().filter(|_| p.failing_reads > 0)?;
                    Some(json!({
                        "topic": topic, "partition": partition, "error": failure.error,
                        "failed_at_ms": failure.at_ms, "consecutive_failures": p.failing_reads,
                    }))
                })
                .collect();
            let total: u64 = running.previous_ends.values().sum();
            json!({
                "partitions": partitions,
                "records_behind": behind,
                "ratio": if total == 0 { 1.0 } else { (total - behind) as f64 / total as f64 },
                "replay_rate": running.rate,
                "eta_seconds": if behind == 0 { Some(0.0) } else if running.rate > 0.0 { Some(behind as f64 / running.rate) } else { None },
                "frontier": s.frontier,
                "errors": s.error_count,
                "unreachable_partitions": unreachable,
                "views": running.plan.views.iter().enumerate().map(|(i, v)| json!({
                    "name": v.name,
                    "rows": s.views[i].len(),
                    "fingerprint": format!("{:016x}", s.views[i].fingerprint()),
                })).collect::<Vec<_>>(),
            })
        })
    }
}
