//! An engine dropped without `shutdown` — a caller returning early on an error, as
//! `kappa serve` did when it could not save its catalog — stops its workers rather
//! than waiting on them forever.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use kappa_dataflow::Engine;
use kappa_log::MemLog;

#[test]
fn dropping_an_engine_without_shutdown_returns() {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let engine = Engine::start(
            timely::CommunicationConfig::Process(2),
            Arc::new(MemLog::new()),
        )
        .unwrap();
        drop(engine);
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the dropped engine's workers stop");
}
