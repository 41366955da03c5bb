//! The thread that applies a version's finished updates to its [`ViewStore`].
//!
//! Worker 0 receives every view change, error and progress record of its version
//! and hands over those whose times the frontier has passed ([`Ready`]); applying
//! them (hashing rows, finding them among the view's rows, building the batch for
//! subscribers) is serial, and on worker 0 it took about a third of that worker's
//! time in a live run at 190k events/s: time in which worker 0 neither read nor
//! computed, so every batch's round trip waited for it. On a thread of its own it
//! overlaps the dataflow's next batch.
//!
//! The queue is bounded ([`QUEUE`] hand-overs): a store that falls behind makes
//! worker 0 wait rather than memory grow. Hand-overs queued while one is applied
//! are applied together, under one lock, as one batch at the latest frontier, so a
//! store under load does less work per update, not more.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::DataError;
use crate::render::PackedRow;
use crate::source::SourceProgress;
use crate::store::ViewStore;
use crate::Time;

/// Hand-overs queued before worker 0 waits for the store.
const QUEUE: usize = 4;

/// Updates whose times are complete, for one application.
#[derive(Default)]
pub(crate) struct Ready {
    /// The frontier they are complete at (every time before it).
    pub(crate) frontier: u64,
    /// Whether the dataflow has finished.
    pub(crate) complete: bool,
    pub(crate) views: Vec<(usize, PackedRow, Time, isize)>,
    pub(crate) errors: Vec<(DataError, Time, isize)>,
    pub(crate) progress: Vec<(SourceProgress, Time)>,
}

impl Ready {
    /// Adds a later hand-over's updates to this one's.
    fn absorb(&mut self, later: Ready) {
        self.frontier = self.frontier.max(later.frontier);
        self.complete |= later.complete;
        self.views.extend(later.views);
        self.errors.extend(later.errors);
        self.progress.extend(later.progress);
    }

    fn apply_to(self, store: &ViewStore) {
        store.apply(
            self.frontier,
            self.complete,
            self.views.into_iter().map(|(v, row, _, d)| (v, row, d)),
            self.errors.into_iter().map(|(e, _, d)| (e, d)).collect(),
            self.progress.into_iter().map(|(p, _)| p).collect(),
        );
    }
}

/// A running applier thread; dropping it applies what is queued and joins it.
pub(crate) struct Applier {
    sender: Option<SyncSender<Ready>>,
    thread: Option<JoinHandle<()>>,
}

impl Applier {
    /// Starts applying hand-overs to `store` on a thread named `name`.
    pub(crate) fn spawn(store: Arc<ViewStore>, name: String) -> Self {
        let (sender, receiver) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || apply_all(&store, &receiver))
            .expect("spawn the store applier thread");
        Applier {
            sender: Some(sender),
            thread: Some(thread),
        }
    }

    /// Queues `ready` for the store, waiting while the queue is full.
    ///
    /// # Panics
    /// When the applier thread has panicked: the store no longer follows the
    /// dataflow, and the worker fails as it would have applying the updates itself.
    pub(crate) fn send(&self, ready: Ready) {
        let sender = self
            .sender
            .as_ref()
            .expect("an applier's sender lives until drop");
        if sender.send(ready).is_err() {
            panic!("the store applier thread stopped");
        }
    }
}

fn apply_all(store: &ViewStore, receiver: &Receiver<Ready>) {
    while let Ok(mut ready) = receiver.recv() {
        while let Ok(later) = receiver.try_recv() {
            ready.absorb(later);
        }
        ready.apply_to(store);
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the store applier thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kappa_sql::Value;

    use super::*;

    #[test]
    fn applies_every_hand_over_in_order_and_finishes_on_drop() {
        let store = Arc::new(ViewStore::new(["v".to_string()]));
        let applier = Applier::spawn(store.clone(), "test-apply".into());
        let row = |n: i64| vec![Value::Int(n)];
        let packed = |n: i64| PackedRow::pack(&row(n));
        for n in 0..100 {
            // Each hand-over moves the one row from n to n + 1.
            let mut views = vec![(0, packed(n + 1), n as Time, 1)];
            if n > 0 {
                views.push((0, packed(n), n as Time, -1));
            }
            applier.send(Ready {
                frontier: n as u64 + 1,
                complete: n == 99,
                views,
                ..Ready::default()
            });
        }
        drop(applier);
        store.read(|s| {
            assert_eq!(s.frontier, 100);
            assert!(s.complete);
            let rows: Vec<_> = s.view("v").unwrap().rows.iter().collect();
            assert_eq!(rows, vec![(row(100), 1)]);
        });
    }
}
