//! kappa's HTTP API.
//!
//! Routes (all JSON; every error is `{"error_code", "message"}` with a 4xx/5xx):
//! - `GET /healthz`: the process is alive;
//! - `GET /v1/pipelines`: running pipelines and versions;
//! - `GET /v1/pipelines/{p}/views`: views with schema and row counts;
//! - `GET /v1/pipelines/{p}/views/{v}`: rows at one consistent frontier, with the
//!   log offsets they reflect; `limit`, `offset`, `version` and column filters;
//! - `GET /v1/pipelines/{p}/views/{v}/subscribe`: a snapshot, then every change (SSE);
//! - `POST /v1/topics/{t}/records`: append JSON lines to a topic.
//!
//! Servers bind 127.0.0.1 unless told otherwise (the caller picks the address).

pub mod error;
pub mod ingest;
pub mod registry;
pub mod views;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Json, Router};
use kappa_log::Log;

pub use error::ApiError;
pub use registry::{Registry, Version};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Running pipelines and their versions.
    pub registry: Arc<Registry>,
    /// The log, for ingest.
    pub log: Arc<dyn Log>,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/v1/pipelines", get(views::list_pipelines))
        .route("/v1/pipelines/{pipeline}/views", get(views::list_views))
        .route(
            "/v1/pipelines/{pipeline}/views/{view}",
            get(views::query_view),
        )
        .route(
            "/v1/pipelines/{pipeline}/views/{view}/subscribe",
            get(views::subscribe),
        )
        .route(
            "/v1/topics/{topic}/records",
            post(ingest::append_records).layer(DefaultBodyLimit::max(ingest::MAX_INGEST_BYTES)),
        )
        .fallback(|| async { ApiError::not_found("no_route", "no such route") })
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
