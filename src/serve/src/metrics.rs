//! The HTTP API's Prometheus metrics and the `GET /metrics` route.
//!
//! Every routed request is counted by route template (`/v1/pipelines/{pipeline}/…`,
//! never the raw path, so label values stay bounded), method and status, and timed
//! (which gives query latency per route). `GET /metrics` renders the whole registry —
//! every subsystem's series plus the process collector — in the text format.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kappa_log::metrics::{Kind, MetricSpec};
use prometheus::{Encoder, HistogramVec, IntCounterVec, Registry, TextEncoder};

use crate::error::ApiError;
use crate::AppState;

/// Requests served.
pub const REQUESTS: MetricSpec = MetricSpec {
    name: "kappa_http_requests_total",
    kind: Kind::Counter,
    labels: &["route", "method", "status"],
    help: "HTTP requests served, by route template, method and status code.",
};
/// Request latency.
pub const REQUEST_SECONDS: MetricSpec = MetricSpec {
    name: "kappa_http_request_duration_seconds",
    kind: Kind::Histogram,
    labels: &["route", "method"],
    help: "Time to answer an HTTP request (until the response head, for subscriptions).",
};

/// Every series of the HTTP API, for the catalog.
pub const CATALOG: &[MetricSpec] = &[REQUESTS, REQUEST_SECONDS];

/// Latency buckets of HTTP requests: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The registry `/metrics` renders, and the API's own series.
#[derive(Clone, Debug)]
pub struct ServeMetrics {
    registry: Registry,
    requests: IntCounterVec,
    seconds: HistogramVec,
}

impl ServeMetrics {
    /// Registers the API's series into `registry`, which `/metrics` then renders whole.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = ServeMetrics {
            registry: registry.clone(),
            requests: REQUESTS.counter_vec(),
            seconds: REQUEST_SECONDS.histogram_vec(BUCKETS),
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.seconds.clone()))?;
        Ok(metrics)
    }
}

/// Middleware: counts and times every routed request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(metrics) = state.metrics.clone() else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .seconds
        .with_label_values(&[route.as_str(), method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .inc();
    response
}

/// `GET /metrics`: every registered series in the Prometheus text format.
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let metrics = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no_metrics", "this server exports no metrics"))?;
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    encoder
        .encode(&metrics.registry.gather(), &mut body)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(([(CONTENT_TYPE, encoder.format_type().to_string())], body).into_response())
}
