//! Appending records over HTTP: how producers reach a log whose data directory
//! is held by a running server (the embedded log allows one writer process).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use kappa_log::{LogError, NewRecord};
use serde_json::{json, Value as Json_};

use crate::error::ApiError;
use crate::AppState;

/// Largest request body accepted by the ingest route.
pub const MAX_INGEST_BYTES: usize = 16 << 20;

/// `POST /v1/topics/{topic}/records[?key_field=F]`: the body is JSON lines; each
/// line is appended as one record (keyed by field `F` when given). The response
/// comes once the records are durable: `{"records": n, "partitions": {"0": [first, last]}}`.
pub async fn append_records(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Result<Json<Json_>, ApiError> {
    let key_field = params.get("key_field").cloned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut records = Vec::new();
    for (line_number, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Json_ = serde_json::from_slice(line).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("line {}: not valid JSON: {e}", line_number + 1),
            )
        })?;
        let key = match &key_field {
            Some(field) => match value.get(field) {
                Some(Json_::String(s)) => Some(s.clone().into_bytes()),
                Some(Json_::Null) | None => None,
                Some(other) => Some(other.to_string().into_bytes()),
            },
            None => None,
        };
        records.push(NewRecord {
            key: key.map(Into::into),
            payload: line.to_vec().into(),
            timestamp_ms: now,
        });
    }
    let log = state.log.clone();
    let count = records.len();
    let placed = tokio::task::spawn_blocking(move || log.append_routed(&topic, &records))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| match e {
            LogError::UnknownTopic(t) => {
                ApiError::not_found("unknown_topic", format!("no topic named `{t}`"))
            }
            other => ApiError::internal(other.to_string()),
        })?;
    let mut partitions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (partition, offset) in placed {
        let range = partitions
            .entry(partition.to_string())
            .or_insert((offset, offset));
        range.0 = range.0.min(offset);
        range.1 = range.1.max(offset);
    }
    Ok(Json(json!({ "records": count, "partitions": partitions })))
}
