//! The shared [`kappa_log::conformance`] suite against the in-process backends:
//! [`MemLog`] and [`EmbeddedLog`] (reopened from its directory for restart checks).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kappa_log::conformance::{self, Backend, Caps};
use kappa_log::{Durability, EmbeddedLog, EmbeddedOptions, Log, MemLog};

struct Mem(Arc<MemLog>);

impl Backend for Mem {
    fn open(&self) -> Arc<dyn Log> {
        self.0.clone()
    }
    fn topic(&self, base: &str) -> String {
        base.to_string()
    }
    fn caps(&self) -> Caps {
        Caps {
            durable: false,
            ..Caps::default()
        }
    }
}

/// An embedded log in a temporary directory; `open` reopens it (the previous handle
/// must be dropped first, as it holds the writer lock).
struct Embedded {
    dir: tempfile::TempDir,
    open_count: AtomicUsize,
    last: Mutex<Option<std::sync::Weak<EmbeddedLog>>>,
}

impl Embedded {
    fn new() -> Self {
        Embedded {
            dir: tempfile::tempdir().unwrap(),
            open_count: AtomicUsize::new(0),
            last: Mutex::new(None),
        }
    }
}

impl Backend for Embedded {
    fn open(&self) -> Arc<dyn Log> {
        self.open_count.fetch_add(1, Ordering::SeqCst);
        let mut last = self.last.lock().unwrap();
        if let Some(log) = last.as_ref().and_then(std::sync::Weak::upgrade) {
            return log;
        }
        let options = EmbeddedOptions {
            durability: Durability::Interval(std::time::Duration::from_millis(50)),
            ..EmbeddedOptions::default()
        };
        let log = Arc::new(EmbeddedLog::open(self.dir.path(), options).unwrap());
        *last = Some(Arc::downgrade(&log));
        log
    }
    fn topic(&self, base: &str) -> String {
        base.to_string()
    }
    fn caps(&self) -> Caps {
        Caps::default()
    }
}

#[test]
fn mem_round_trip() {
    conformance::round_trip(&Mem(Arc::new(MemLog::new())));
}
#[test]
fn mem_large_backlog() {
    conformance::large_backlog(&Mem(Arc::new(MemLog::new())));
}
#[test]
fn mem_follow() {
    conformance::follow(&Mem(Arc::new(MemLog::new())));
}
#[test]
fn mem_end_offsets() {
    conformance::end_offsets(&Mem(Arc::new(MemLog::new())));
}
#[test]
fn mem_routing() {
    conformance::routing(&Mem(Arc::new(MemLog::new())));
}

#[test]
fn embedded_round_trip() {
    conformance::round_trip(&Embedded::new());
}
#[test]
fn embedded_large_backlog() {
    conformance::large_backlog(&Embedded::new());
}
#[test]
fn embedded_follow() {
    conformance::follow(&Embedded::new());
}
#[test]
fn embedded_end_offsets() {
    conformance::end_offsets(&Embedded::new());
}
#[test]
fn embedded_routing() {
    conformance::routing(&Embedded::new());
}
#[test]
fn embedded_restart_and_resume() {
    let backend = Embedded::new();
    conformance::restart_and_resume(&backend);
    assert!(
        backend.open_count.load(Ordering::SeqCst) >= 2,
        "the log was reopened"
    );
}
#[test]
fn embedded_all_in_one_directory() {
    conformance::all(&Embedded::new());
}
