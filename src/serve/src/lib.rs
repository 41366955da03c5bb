//! kappa's HTTP API.
//!
//! Routes (all JSON; every error is `{"error_code", "message"}` with a 4xx/5xx):
//! - `GET /healthz`: the process is alive;
//! - `GET /v1/pipelines`: running pipelines and versions;
//! - `GET /v1/pipelines/{p}/views`: views with schema and row counts;
//! - `GET /v1/pipelines/{p}/views/{v}`: rows at one consistent frontier, with the
//!   log offsets they reflect; `limit`, `offset`, `version` and column filters;
//! - `GET /v1/pipelines/{p}/views/{v}/subscribe`: a snapshot, then every change (SSE);
//! - `POST /v1/topics/{t}/records`: append JSON lines to a topic;
//! - admin (bearer token when configured): `POST /v1/pipelines` (deploy),
//!   `POST /v1/pipelines/{p}/promote`, `POST /v1/pipelines/{p}/rollback`,
//!   `POST /v1/pipelines/{p}/versions/{v}/retire`, `GET /v1/pipelines/{p}/diff`;
//! - `GET /v1/status`, `GET /readyz`;
//! - `GET /metrics`: Prometheus text format ([`metrics`]).
//!
//! Servers bind 127.0.0.1 unless told otherwise (the caller picks the address).

pub mod admin;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod views;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Json, Router};
use kappa_log::Log;

pub use error::ApiError;
pub use kappa_controller::{Controller, Registry, Version};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Running pipelines and their versions.
    pub registry: Arc<Registry>,
    /// The log, for ingest.
    pub log: Arc<dyn Log>,
    /// The version controller (absent for a plain single-version run).
    pub controller: Option<Arc<Controller>>,
    /// Required as a bearer token by admin routes, when set.
    pub admin_token: Option<String>,
    /// The registry `GET /metrics` renders and the API's request metrics (none: no
    /// metrics are exported and requests are not counted).
    pub metrics: Option<Arc<metrics::ServeMetrics>>,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(admin::ready))
        .route("/metrics", get(metrics::render))
        .route("/v1/status", get(admin::status))
        .route(
            "/v1/pipelines",
            get(views::list_pipelines)
                .post(admin::deploy)
                .layer(DefaultBodyLimit::max(admin::MAX_PIPELINE_BYTES + 4096)),
        )
        .route("/v1/pipelines/{pipeline}/promote", post(admin::promote))
        .route("/v1/pipelines/{pipeline}/rollback", post(admin::rollback))
        .route(
            "/v1/pipelines/{pipeline}/versions/{version}/retire",
            post(admin::retire),
        )
        .route("/v1/pipelines/{pipeline}/diff", get(admin::diff))
        .route("/v1/pipelines/{pipeline}/views", get(views::list_views))
        .route(
            "/v1/pipelines/{pipeline}/views/{view}",
            get(views::query_view),
        )
        .route(
            "/v1/pipelines/{pipeline}/views/{view}/export",
            get(views::export_view),
        )
        .route(
            "/v1/pipelines/{pipeline}/views/{view}/subscribe",
            get(views::subscribe),
        )
        .route(
            "/v1/topics/{topic}/records",
            post(ingest::append_records).layer(DefaultBodyLimit::max(ingest::MAX_INGEST_BYTES)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(|| async { ApiError::not_found("no_route", "no such route") })
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(state)
}

/// Serves only `/healthz` and `/readyz` (both 200) on `listener`: what a follower
/// process of a cluster, which holds no views, answers to Kubernetes probes.
pub async fn serve_health(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let ok = || async { Json(serde_json::json!({ "status": "ok" })) };
    let router = Router::new()
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .fallback(|| async { ApiError::not_found("no_route", "a follower serves only health") })
        .layer(axum::middleware::map_response(error::json_errors));
    axum::serve(listener, router).await
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
