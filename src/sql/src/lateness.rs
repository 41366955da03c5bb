//! The late-event rule, shared by the oracle and the dataflow.
//!
//! Each partition of a source with an event-time column keeps its own high-water
//! mark: the largest event time among the records of that partition admitted so far,
//! in offset order. A record whose event time is more than `lateness` below that mark
//! is late: it is dropped (and counted), and it does not move the mark. The decision
//! depends only on the records before it in its own partition, so it is the same for
//! every batching, worker count and replay of a given log.

/// Tracks one partition's high-water mark and decides which records are late.
#[derive(Clone, Debug)]
pub struct LatenessTracker {
    lateness_ms: i64,
    max_event_time: Option<i64>,
}

impl LatenessTracker {
    /// A tracker for a source with this allowed lateness.
    pub fn new(lateness_ms: i64) -> Self {
        LatenessTracker {
            lateness_ms,
            max_event_time: None,
        }
    }

    /// Records the next event time of the partition; false when the event is late.
    pub fn admit(&mut self, event_time: i64) -> bool {
        match self.max_event_time {
            Some(max) if event_time < max.saturating_sub(self.lateness_ms) => false,
            Some(max) => {
                self.max_event_time = Some(max.max(event_time));
                true
            }
            None => {
                self.max_event_time = Some(event_time);
                true
            }
        }
    }

    /// The partition's watermark: events below it are late.
    pub fn watermark(&self) -> Option<i64> {
        self.max_event_time
            .map(|m| m.saturating_sub(self.lateness_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_events_are_dropped_and_do_not_move_the_mark() {
        let mut t = LatenessTracker::new(5_000);
        assert!(t.admit(10_000));
        assert!(t.admit(6_000)); // 4 s late: within bound
        assert!(t.admit(5_000)); // exactly at the bound
        assert!(!t.admit(4_999));
        assert!(t.admit(20_000));
        assert!(!t.admit(10_000));
        assert_eq!(t.watermark(), Some(15_000));
    }
}
