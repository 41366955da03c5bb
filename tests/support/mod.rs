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

/// A `kappa` child process serving HTTP on 127.0.0.1, killed when dropped (so a failing
/// test leaves no server behind).
pub struct HttpChild {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client with a 30 s timeout.
    pub http: reqwest::blocking::Client,
}

impl HttpChild {
    /// Spawns `command` with `--listen 127.0.0.1:<a free port>` appended and waits
    /// until it answers `/healthz`.
    pub fn start(mut command: std::process::Command) -> HttpChild {
        let port = free_port();
        let child = command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start kappa");
        let server = HttpChild {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        wait_until("the server answers", || server.get("/healthz").is_some());
        server
    }

    /// `GET path`: the status and the JSON body, or `None` when either is missing.
    pub fn get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        let response = self.http.get(format!("{}{path}", self.base)).send().ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().ok()?))
    }

    /// Sends SIGTERM and waits (at most 30 s) for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(killed.expect("run kill").success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HttpChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
