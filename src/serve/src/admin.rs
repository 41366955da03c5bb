//! Admin routes: deploy, promote, roll back, retire, diff, status and readiness.
//!
//! When an admin token is configured, every mutating route requires
//! `Authorization: Bearer <token>`; without one configured the server relies on
//! binding to 127.0.0.1.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use kappa_controller::{Controller, Gate};
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use crate::error::ApiError;
use crate::AppState;

/// Largest pipeline file accepted by `POST /v1/pipelines`.
pub const MAX_PIPELINE_BYTES: usize = 1 << 20;

fn controller(state: &AppState) -> Result<&std::sync::Arc<Controller>, ApiError> {
    state.controller.as_ref().ok_or_else(|| ApiError {
        status: axum::http::StatusCode::NOT_IMPLEMENTED,
        code: "no_controller",
        message: "this server runs without a version controller".into(),
    })
}

/// Checks the bearer token when one is configured.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Ok(());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compare in constant time so the token cannot be guessed byte by byte.
    let matches = given.is_some_and(|g| {
        g.len() == expected.len()
            && g.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if matches {
        Ok(())
    } else {
        Err(ApiError {
            status: axum::http::StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "admin routes require `Authorization: Bearer <token>`".into(),
        })
    }
}

/// Body of `POST /v1/pipelines`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The file name (its stem names the pipeline), e.g. `clickstream.sql`.
    pub file: String,
    /// The pipeline SQL.
    pub sql: String,
}

/// `POST /v1/pipelines`: deploy a new version.
pub async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<DeployRequest>,
) -> Result<Json<Json_>, ApiError> {
    authorize(&state, &headers)?;
    if request.sql.len() > MAX_PIPELINE_BYTES {
        return Err(ApiError::bad_request(
            "too_large",
            "pipeline file is larger than 1 MiB",
        ));
    }
    let controller = controller(&state)?.clone();
    let id = tokio::task::spawn_blocking(move || controller.deploy(&request.file, &request.sql))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(
        json!({ "pipeline": id.pipeline, "version": id.version, "state": "replaying" }),
    ))
}

/// Body of `POST /v1/pipelines/{p}/promote`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The version to promote.
    pub version: u64,
    /// Refuse when more rows differ from the active version.
    #[serde(default)]
    pub max_changed_rows: Option<u64>,
    /// Refuse unless these views are identical to the active version's.
    #[serde(default)]
    pub require_identical: Vec<String>,
}

/// `POST /v1/pipelines/{p}/promote`
pub async fn promote(
    State(state): State<AppState>,
    Path(pipeline): Path<String>,
    headers: HeaderMap,
    Json(request): Json<PromoteRequest>,
) -> Result<Json<Json_>, ApiError> {
    authorize(&state, &headers)?;
    let controller = controller(&state)?.clone();
    let gate = Gate {
        max_changed_rows: request.max_changed_rows,
        require_identical: request.require_identical,
    };
    let report =
        tokio::task::spawn_blocking(move || controller.promote(&pipeline, request.version, &gate))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(
        serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// `POST /v1/pipelines/{p}/rollback`
pub async fn rollback(
    State(state): State<AppState>,
    Path(pipeline): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Json_>, ApiError> {
    authorize(&state, &headers)?;
    let controller = controller(&state)?.clone();
    let report = tokio::task::spawn_blocking(move || controller.rollback(&pipeline))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(
        serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// `POST /v1/pipelines/{p}/versions/{v}/retire`
pub async fn retire(
    State(state): State<AppState>,
    Path((pipeline, version)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Result<Json<Json_>, ApiError> {
    authorize(&state, &headers)?;
    let controller = controller(&state)?.clone();
    let name = pipeline.clone();
    tokio::task::spawn_blocking(move || controller.retire(&name, version))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(
        json!({ "pipeline": pipeline, "version": version, "state": "retired" }),
    ))
}

/// `GET /v1/pipelines/{p}/diff?old=A&new=B[&view=V]`: compare two running versions at
/// the same log offsets.
pub async fn diff(
    State(state): State<AppState>,
    Path(pipeline): Path<String>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Json_>, ApiError> {
    authorize(&state, &headers)?;
    let number = |name: &str| -> Result<u64, ApiError> {
        params
            .get(name)
            .ok_or_else(|| {
                ApiError::bad_request("missing_parameter", format!("`{name}` is required"))
            })?
            .parse()
            .map_err(|_| {
                ApiError::bad_request(
                    "bad_parameter",
                    format!("`{name}` must be a version number"),
                )
            })
    };
    let (old, new) = (number("old")?, number("new")?);
    let view = params.get("view").cloned();
    let controller = controller(&state)?.clone();
    let name = pipeline.clone();
    let diffs =
        tokio::task::spawn_blocking(move || controller.diff(&name, old, new, view.as_deref()))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(
        json!({ "pipeline": pipeline, "old": old, "new": new, "views": diffs }),
    ))
}

/// `GET /v1/status`
pub async fn status(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    Ok(Json(controller(&state)?.status()))
}

/// `GET /readyz`: 200 when every pipeline's active version is caught up.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    let ready = state.controller.as_ref().is_none_or(|c| c.ready());
    if ready {
        Ok(Json(json!({ "status": "ready" })))
    } else {
        Err(ApiError::unavailable(
            "not_ready",
            "an active version is still replaying",
        ))
    }
}
