//! Waking readers when a partition grows: a condvar for blocked waiters and a list of
//! one-shot callbacks for readers that must not block (timely source operators).
//!
//! The writer calls [`Watch::advance`] after each acknowledged append; readers call
//! [`Watch::wait_beyond`] or [`Watch::notify_beyond`]. Callbacks run outside the lock.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Notify;

/// The end offset of one partition as seen by waiters, plus who waits for it to move.
#[derive(Default)]
pub(crate) struct Watch {
    state: Mutex<WatchState>,
    grown: Condvar,
}

#[derive(Default)]
struct WatchState {
    end: u64,
    callbacks: Vec<(u64, Notify)>,
}

impl Watch {
    /// A watch whose end offset starts at `end`.
    pub(crate) fn new(end: u64) -> Self {
        Watch {
            state: Mutex::new(WatchState {
                end,
                callbacks: Vec::new(),
            }),
            grown: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        // A panicking callback never runs under the lock, so the state stays consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes a new end offset, waking blocked waiters and running due callbacks.
    pub(crate) fn advance(&self, end: u64) {
        let due = {
            let mut state = self.lock();
            if end <= state.end {
                return;
            }
            state.end = end;
            take_due(&mut state)
        };
        self.grown.notify_all();
        for callback in due {
            callback();
        }
    }

    /// Blocks until the end offset is beyond `offset` or `timeout` passes.
    pub(crate) fn wait_beyond(&self, offset: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.end <= offset {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .grown
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Runs `callback` now if the end offset is beyond `offset`, else when it gets there.
    pub(crate) fn notify_beyond(&self, offset: u64, callback: Notify) {
        let mut state = self.lock();
        if state.end > offset {
            drop(state);
            callback();
        } else {
            state.callbacks.push((offset, callback));
        }
    }

    /// Whether any callback is waiting (a read-only log polls the disk only then).
    pub(crate) fn has_callbacks(&self) -> bool {
        !self.lock().callbacks.is_empty()
    }
}

fn take_due(state: &mut WatchState) -> Vec<Notify> {
    let end = state.end;
    let mut due = Vec::new();
    let mut i = 0;
    while i < state.callbacks.len() {
        if state.callbacks[i].0 < end {
            due.push(state.callbacks.swap_remove(i).1);
        } else {
            i += 1;
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn callbacks_fire_once_when_due() {
        let watch = Watch::new(0);
        let fired = Arc::new(AtomicUsize::new(0));
        for offset in [0, 1, 5] {
            let fired = fired.clone();
            watch.notify_beyond(
                offset,
                Box::new(move || {
                    fired.fetch_add(1, Ordering::SeqCst);
                }),
            );
        }
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        watch.advance(2);
        assert_eq!(fired.load(Ordering::SeqCst), 2);
        assert!(watch.has_callbacks());
        watch.advance(6);
        assert_eq!(fired.load(Ordering::SeqCst), 3);
        assert!(!watch.has_callbacks());
        let f = fired.clone();
        watch.notify_beyond(
            3,
            Box::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            }),
        );
        assert_eq!(
            fired.load(Ordering::SeqCst),
            4,
            "already beyond: runs at once"
        );
    }

    #[test]
    fn waiters_wake_on_advance_and_time_out_otherwise() {
        let watch = Arc::new(Watch::new(0));
        assert!(!watch.wait_beyond(0, Duration::from_millis(10)));
        let w = watch.clone();
        let waiter = std::thread::spawn(move || w.wait_beyond(0, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        watch.advance(1);
        assert!(waiter.join().unwrap());
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
