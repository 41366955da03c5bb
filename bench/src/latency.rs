//! Append → visible latency, as the clickstream and replay harnesses measure it: a
//! producer notes when each append started and the offsets it reached, an
//! [`Observer`] notes when each batch of view changes arrived and how far each
//! partition was then reflected, and [`latencies`] matches the two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kappa_dataflow::ViewStore;
use tokio::sync::broadcast::error::RecvError;

use crate::clickstream::{covers, visible_offsets};

/// When, and up to which offset of each partition: an append, or a view change seen.
pub type Observation = (Instant, Vec<u64>);

/// Notes, on a thread of its own, when each batch of changes `store` applies is
/// received and how far each partition is then reflected. Reading the offsets after
/// receiving can only see more applied, so a latency is never under-stated. The
/// thread blocks on the store's channel (a poll every 100 µs cost ~5% of a core,
/// taken from the pipeline measured) and ends at the first batch after the
/// observer is dropped, or when the store closes.
pub struct Observer {
    seen: Arc<Mutex<Vec<Observation>>>,
    stop: Arc<AtomicBool>,
}

impl Observer {
    /// Starts observing `store`.
    pub fn start(store: Arc<ViewStore>) -> Observer {
        let (_, mut changes) = store.subscribe(|_| ());
        let seen: Arc<Mutex<Vec<Observation>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let observer = Observer {
            seen: seen.clone(),
            stop: stop.clone(),
        };
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match changes.blocking_recv() {
                    Ok(_) => {
                        let observed = (Instant::now(), visible_offsets(&store));
                        seen.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(observed);
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
        observer
    }

    /// Waits until an observation reaches `ends` in every partition; `false` if
    /// `deadline` passed first.
    pub fn wait_for(&self, ends: &[u64], deadline: Instant) -> bool {
        loop {
            if self
                .lock()
                .last()
                .is_some_and(|(_, seen)| covers(seen, ends))
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The observations so far, in order.
    pub fn take(&self) -> Vec<Observation> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Observation>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The latency (ms) of each append that `counted` selects (by when it started):
/// the time from the append to the first observation covering its offsets, with
/// the append's time. Both sequences are in order, so one pass suffices; appends
/// that no observation covers end the list.
pub fn latencies(
    appends: &[Observation],
    seen: &[Observation],
    counted: impl Fn(Instant) -> bool,
) -> Vec<(Instant, f64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for (at, ends) in appends {
        while j < seen.len() && !covers(&seen[j].1, ends) {
            j += 1;
        }
        let Some((visible_at, _)) = seen.get(j) else {
            break;
        };
        if counted(*at) {
            out.push((*at, visible_at.duration_since(*at).as_secs_f64() * 1e3));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_append_waits_for_the_first_observation_covering_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let appends = vec![
            (at(0), vec![10, 0]),
            (at(1), vec![10, 5]),
            (at(2), vec![20, 5]),
            (at(3), vec![30, 9]),
        ];
        // The first observation covers only the first append; the second covers the
        // next two; nothing covers the last.
        let seen = vec![(at(4), vec![10, 4]), (at(9), vec![25, 5])];
        let got: Vec<(u64, f64)> = latencies(&appends, &seen, |_| true)
            .into_iter()
            .map(|(when, ms)| (when.duration_since(t0).as_millis() as u64, ms.round()))
            .collect();
        assert_eq!(got, vec![(0, 4.0), (1, 8.0), (2, 7.0)]);
        // Only the selected appends count; the others are still matched past.
        let counted = latencies(&appends, &seen, |when| when >= at(1));
        assert_eq!(
            counted.iter().map(|(_, ms)| ms.round()).collect::<Vec<_>>(),
            [8.0, 7.0]
        );
    }
}
