//! Helpers shared by the integration tests that run the real `kappa` binary.
// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` every 50 ms until it holds; fails the test after 60 s.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Fluvio cluster to test against (`KAPPA_FLUVIO_ENDPOINT`, the SC's HOST:PORT), or
/// `None` after saying on stderr, past the harness's capture, that `test` is skipped.
pub fn fluvio_endpoint(test: &str) -> Option<String> {
    match std::env::var("KAPPA_FLUVIO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: KAPPA_FLUVIO_ENDPOINT is not set, so there is no Fluvio \
                 cluster to test against (set it to the SC's HOST:PORT, e.g. 127.0.0.1:9003)"
            );
            None
        }
    }
}
