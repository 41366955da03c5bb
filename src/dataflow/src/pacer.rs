//! Pacing a replaying source so that the live version sharing its workers stays fresh.
//!
//! A version replaying the log shares timely workers with the live version: while a
//! worker pushes a replay batch through the dataflow, the live version's batches
//! wait. A fixed batch size is either too large (the live version waits) or too
//! small (the replay crawls, and the live version gains nothing when it is idle).
//! The pacer steers by the quantity to protect: the live version's lag, which the
//! engine reads off its frontier (logical times are wall-clock milliseconds, so
//! `now - frontier` is how far behind the live views are) and hands to the
//! replaying sources of the same worker. While the live version is fresh, replay
//! batches grow by half after each; when it lags beyond the bound, the replay
//! pauses and its next batch is half as large.

/// The fewest records a paced batch holds, so that a replay always progresses.
const MIN_RECORDS: usize = 64;
/// How much a batch grows after one during which the live version stayed fresh.
const GROWTH: f64 = 1.5;

/// Sizes the batches of a throttled (replaying) source.
#[derive(Debug, Clone)]
pub(crate) struct ReplayPacer {
    max_records: usize,
    records: usize,
}

impl ReplayPacer {
    /// A pacer of batches of at most `max_records`, starting cautiously.
    pub(crate) fn new(max_records: usize) -> Self {
        let max_records = max_records.max(MIN_RECORDS);
        ReplayPacer {
            max_records,
            records: (max_records / 8).max(MIN_RECORDS),
        }
    }

    /// How many records the next batch should hold.
    pub(crate) fn batch_records(&self) -> usize {
        self.records
    }

    /// A batch went through while the live version stayed fresh: the next may be larger.
    pub(crate) fn live_fresh(&mut self) {
        self.records = ((self.records as f64 * GROWTH) as usize).min(self.max_records);
    }

    /// The live version lags: the next batch is half as large.
    pub(crate) fn live_lagging(&mut self) {
        self.records = (self.records / 2).max(MIN_RECORDS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_grow_while_live_is_fresh_and_halve_when_it_lags() {
        let mut pacer = ReplayPacer::new(4096);
        assert_eq!(pacer.batch_records(), 512);
        pacer.live_fresh();
        assert_eq!(pacer.batch_records(), 768);
        pacer.live_lagging();
        assert_eq!(pacer.batch_records(), 384);
        for _ in 0..20 {
            pacer.live_fresh();
        }
        assert_eq!(pacer.batch_records(), 4096);
        for _ in 0..20 {
            pacer.live_lagging();
        }
        assert_eq!(pacer.batch_records(), MIN_RECORDS);
    }
}
