//! A small blocking client for the kappa HTTP API, shared by the commands that talk
//! to a running server (`query`, `export`, `deploy`, `promote`, ...).

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::Value;

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "KAPPA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token for admin routes (when the server requires one).
    #[arg(long, env = "KAPPA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ServerArgs {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }

    fn finish(&self, request: reqwest::blocking::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().with_context(|| self.unreachable())?;
        let status = response.status();
        let body: Value = response.json().context("the server's answer is not JSON")?;
        if !status.is_success() {
            bail!("{}", api_error(&body, status));
        }
        Ok(body)
    }

    /// `GET path?query`.
    pub fn get(&self, path: &str, query: &[(String, String)]) -> anyhow::Result<Value> {
        self.finish(client()?.get(self.url(path)).query(query))
    }

    /// `GET path?query` whose answer is JSON lines, read as they arrive: no limit on
    /// how long the whole body takes (an export of a large view streams for as long
    /// as it needs), only on connecting.
    pub fn get_lines(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> anyhow::Result<impl std::io::BufRead> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(None)
            .build()?;
        let response = client
            .get(self.url(path))
            .query(query)
            .send()
            .with_context(|| self.unreachable())?;
        let status = response.status();
        if !status.is_success() {
            let body: Value = response.json().context("the server's answer is not JSON")?;
            bail!("{}", api_error(&body, status));
        }
        Ok(std::io::BufReader::new(response))
    }

    fn unreachable(&self) -> String {
        format!(
            "cannot reach kappa at {} (is `kappa serve` running?)",
            self.server
        )
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.finish(client()?.post(self.url(path)).json(body))
    }
}

/// An API error answer (`{"error_code", "message"}`) as one line.
fn api_error(body: &Value, status: reqwest::StatusCode) -> String {
    format!(
        "{} ({})",
        body["message"].as_str().unwrap_or("request failed"),
        body["error_code"].as_str().unwrap_or(status.as_str())
    )
}

fn client() -> anyhow::Result<reqwest::blocking::Client> {
    // Promotions wait for both versions to reach the same offsets: allow for it.
    Ok(reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?)
}
