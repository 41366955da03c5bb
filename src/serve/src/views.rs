//! Reading views: list them, query one at a consistent frontier, export one whole
//! snapshot, subscribe to changes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kappa_dataflow::store::{RowFilter, StoreState, ViewContents};
use kappa_sql::expr::cast;
use kappa_sql::plan::{Column, ViewDef};
use kappa_sql::{Row, Value};
use serde_json::{json, Map, Value as Json_};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use crate::error::ApiError;
use crate::AppState;
use kappa_controller::Version;

/// Most rows one query returns.
pub const MAX_LIMIT: usize = 100_000;
/// Rows returned when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 1_000;

/// `GET /v1/pipelines`
pub async fn list_pipelines(State(state): State<AppState>) -> Json<Json_> {
    let pipelines: Vec<Json_> = state
        .registry
        .list()
        .into_iter()
        .map(|(name, active, versions)| {
            json!({
                "name": name,
                "active_version": active,
                "versions": versions.iter().map(|v| v.number).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "pipelines": pipelines }))
}

/// `GET /v1/pipelines/{p}/views`
pub async fn list_views(
    State(state): State<AppState>,
    Path(pipeline): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Json_>, ApiError> {
    let version = resolve(&state, &pipeline, &params)?;
    let views = version.store.read(|s| {
        version
            .plan
            .views
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "columns": schema(version.plan.view_columns(v)),
                    "key": v.key.iter().map(|k| &version.plan.view_columns(v)[*k].name).collect::<Vec<_>>(),
                    "rows": s.view(&v.name).map_or(0, ViewContents::len),
                })
            })
            .collect::<Vec<_>>()
    });
    Ok(Json(
        json!({ "pipeline": pipeline, "version": version.number, "views": views }),
    ))
}

/// `GET /v1/pipelines/{p}/views/{v}?limit=&offset=&version=&<column>=<value>`
pub async fn query_view(
    State(state): State<AppState>,
    Path((pipeline, view)): Path<(String, String)>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Json_>, ApiError> {
    let version = resolve(&state, &pipeline, &params)?;
    let def = view_def(&version, &view)?;
    let columns = version.plan.view_columns(def);
    let limit = usize_param(&params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "limit_too_large",
            format!("limit {limit} exceeds the maximum of {MAX_LIMIT}"),
        ));
    }
    let offset = usize_param(&params, "offset")?.unwrap_or(0);
    let filter = RowFilter::new(filters(&params, columns)?);
    let read = read_page(&version, def, filter, offset, limit).await?;
    let (frontier, offsets, total) = (read.frontier, read.offsets, read.total);
    let page: Vec<Json_> = read.rows.iter().map(|row| row_json(columns, row)).collect();
    let body = json!({
        "pipeline": pipeline,
        "version": version.number,
        "view": def.name,
        "columns": schema(columns),
        "frontier": frontier,
        "offsets": offsets,
        "total": total,
        "rows": page,
    });
    Ok(Json(body))
}

/// `GET /v1/pipelines/{p}/views/{v}/export?version=&<column>=<value>`: every
/// matching row of one snapshot, as JSON lines: a header first (`pipeline`,
/// `version`, `view`, `columns`, `frontier`, `offsets`, `total`), then one row
/// object per line, in the view's order. It is one read of the store: paging
/// through a live view with `offset` instead reads each page at a later frontier,
/// so rows that move between reads are skipped or repeated.
pub async fn export_view(
    State(state): State<AppState>,
    Path((pipeline, view)): Path<(String, String)>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    unpaged(
        &params,
        "export_not_paged",
        "an export returns every row of one snapshot",
    )?;
    let version = resolve(&state, &pipeline, &params)?;
    let def = view_def(&version, &view)?;
    let columns: Vec<Column> = version.plan.view_columns(def).to_vec();
    let filter = RowFilter::new(filters(&params, &columns)?);
    let read = read_page(&version, def, filter, 0, usize::MAX).await?;
    let header = json!({
        "pipeline": pipeline,
        "version": version.number,
        "view": def.name,
        "columns": schema(&columns),
        "frontier": read.frontier,
        "offsets": read.offsets,
        "total": read.total,
    });
    // Rows become JSON as the client reads them, a chunk at a time.
    let mut header = Some(format!("{header}\n"));
    let mut rows = read.rows.into_iter();
    let chunks = std::iter::from_fn(move || {
        if let Some(header) = header.take() {
            return Some(header);
        }
        let mut chunk = String::new();
        for row in rows.by_ref().take(EXPORT_CHUNK_ROWS) {
            chunk.push_str(&row_json(&columns, &row).to_string());
            chunk.push('\n');
        }
        (!chunk.is_empty()).then_some(chunk)
    });
    let body = Body::from_stream(tokio_stream::iter(chunks.map(Ok::<_, Infallible>)));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// One page of a view's rows that match a filter, as of one frontier.
struct PageRead {
    rows: Vec<Row>,
    /// Matching rows in all pages.
    total: usize,
    frontier: u64,
    offsets: Json_,
}

/// Reads rows `offset..offset + limit` of `def`'s view that `filter` matches, in the
/// view's order. The matching rows are copied under the store's lock (packed bytes,
/// tested without unpacking), and ordered and paged after it is released; all of it
/// on a blocking thread, since waiting for the lock and ordering a large view take
/// milliseconds that the server's async threads must not spend.
async fn read_page(
    version: &Arc<Version>,
    def: &ViewDef,
    filter: RowFilter,
    offset: usize,
    limit: usize,
) -> Result<PageRead, ApiError> {
    let (version, name, order_by) = (version.clone(), def.name.clone(), def.order_by.clone());
    tokio::task::spawn_blocking(move || {
        let (rows, frontier, offsets) = version.store.read(|s| {
            let contents = s
                .view(&name)
                .expect("the store holds every view of its plan");
            (contents.copy_matching(&filter), s.frontier, offsets_json(s))
        });
        let (total, rows) = rows.page(&order_by, offset, limit);
        PageRead {
            rows,
            total,
            frontier,
            offsets,
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))
}

/// Rows serialized per chunk of an export's body.
const EXPORT_CHUNK_ROWS: usize = 1024;

/// Rejects `limit` and `offset` on a read that returns every matching row (an
/// export, a subscription): `what` says what the read returns.
fn unpaged(
    params: &BTreeMap<String, String>,
    error_code: &'static str,
    what: &str,
) -> Result<(), ApiError> {
    match ["limit", "offset"]
        .iter()
        .find(|p| params.contains_key(**p))
    {
        Some(paging) => Err(ApiError::bad_request(
            error_code,
            format!("{what}: `{paging}` does not apply (filter on columns instead)"),
        )),
        None => Ok(()),
    }
}

/// `GET /v1/pipelines/{p}/views/{v}/subscribe?version=&<column>=<value>`:
/// server-sent events. First a `snapshot` event with every row the filters match,
/// then one `changes` event per applied batch that changes such a row:
/// `{"frontier", "changes": [{"row", "diff"}]}`. A subscription to one key of a
/// keyed view (a dashboard's page, say) reads its snapshot by one probe and is
/// sent that key's changes only.
pub async fn subscribe(
    State(state): State<AppState>,
    Path((pipeline, view)): Path<(String, String)>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    unpaged(
        &params,
        "subscription_not_paged",
        "a subscription sends every matching row and then every change to them",
    )?;
    let version = resolve(&state, &pipeline, &params)?;
    let def = view_def(&version, &view)?;
    let view_index = version
        .plan
        .views
        .iter()
        .position(|v| v.name == def.name)
        .expect("the view belongs to its plan");
    let columns: Arc<Vec<Column>> = Arc::new(version.plan.view_columns(def).to_vec());
    let filter = Arc::new(RowFilter::new(filters(&params, &columns)?));
    // As a page read: the lock and the ordering of the snapshot off the async threads.
    let (snapshot_columns, snapshot_filter) = (columns.clone(), filter.clone());
    let (snapshot, receiver) = tokio::task::spawn_blocking(move || {
        let ((rows, frontier, offsets), receiver) = version.store.subscribe(|s| {
            let rows = s.views[view_index].copy_matching(&snapshot_filter);
            (rows, s.frontier, offsets_json(s))
        });
        let rows: Vec<Json_> = rows
            .iter_rows()
            .map(|row| row_json(&snapshot_columns, &row))
            .collect();
        let snapshot = json!({ "frontier": frontier, "offsets": offsets, "rows": rows });
        (snapshot, receiver)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let first = tokio_stream::once(Ok(Event::default()
        .event("snapshot")
        .data(snapshot.to_string())));
    let changes = BroadcastStream::new(receiver).filter_map(move |batch| match batch {
        Ok(batch) => {
            let changes: Vec<Json_> = batch
                .changes_of(view_index, &filter)
                .map(|(row, diff)| json!({ "row": row_json(&columns, &row), "diff": diff }))
                .collect();
            (!changes.is_empty()).then(|| {
                Ok(Event::default()
                    .event("changes")
                    .data(json!({ "frontier": batch.frontier, "changes": changes }).to_string()))
            })
        }
        Err(lagged) => Some(Ok(Event::default().event("error").data(
            json!({
                "error_code": "subscriber_lagged",
                "message": format!("{lagged}; re-subscribe to get a fresh snapshot"),
            })
            .to_string(),
        ))),
    });
    Ok(Sse::new(first.chain(changes)).keep_alive(KeepAlive::default()))
}

/// The version a read addresses: `?version=N`, or the active one, which must be
/// caught up (a version rebuilding after a restart answers 503 until it is).
fn resolve(
    state: &AppState,
    pipeline: &str,
    params: &BTreeMap<String, String>,
) -> Result<Arc<Version>, ApiError> {
    let requested = version_param(params)?;
    let version = state.registry.resolve(pipeline, requested)?;
    if requested.is_none() && !version.is_caught_up() {
        return Err(ApiError::unavailable(
            "replaying",
            format!(
                "pipeline `{pipeline}` v{} is replaying the log; read it with ?version={} meanwhile",
                version.number, version.number
            ),
        ));
    }
    Ok(version)
}

fn view_def<'a>(version: &'a Version, view: &str) -> Result<&'a ViewDef, ApiError> {
    version.plan.view(view).ok_or_else(|| {
        let names: Vec<&str> = version.plan.views.iter().map(|v| v.name.as_str()).collect();
        ApiError::not_found(
            "unknown_view",
            format!(
                "pipeline `{}` has no view `{view}`; views: {}",
                version.plan.name,
                names.join(", ")
            ),
        )
    })
}

fn schema(columns: &[Column]) -> Vec<Json_> {
    columns
        .iter()
        .map(|c| json!({ "name": c.name, "type": c.ty.to_string(), "nullable": c.nullable }))
        .collect()
}

/// A row as a JSON object keyed by column name.
pub fn row_json(columns: &[Column], row: &[Value]) -> Json_ {
    Json_::Object(
        columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.clone(), v.to_json()))
            .collect::<Map<_, _>>(),
    )
}

fn offsets_json(s: &StoreState) -> Json_ {
    let mut topics: BTreeMap<&str, Map<String, Json_>> = BTreeMap::new();
    for ((topic, partition), p) in &s.offsets {
        topics
            .entry(topic)
            .or_default()
            .insert(partition.to_string(), json!(p.next_offset));
    }
    json!(topics)
}

const RESERVED: [&str; 3] = ["limit", "offset", "version"];

fn version_param(params: &BTreeMap<String, String>) -> Result<Option<u64>, ApiError> {
    params
        .get("version")
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::bad_request(
                    "bad_parameter",
                    format!("version must be a number, got `{v}`"),
                )
            })
        })
        .transpose()
}

fn usize_param(params: &BTreeMap<String, String>, name: &str) -> Result<Option<usize>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::bad_request(
                    "bad_parameter",
                    format!("{name} must be a number, got `{v}`"),
                )
            })
        })
        .transpose()
}

/// Column filters from the query string: `?page=/p/1` keeps rows whose `page` is `/p/1`.
fn filters(
    params: &BTreeMap<String, String>,
    columns: &[Column],
) -> Result<Vec<(usize, Value)>, ApiError> {
    params
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .map(|(name, text)| {
            let index = columns
                .iter()
                .position(|c| &c.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                    ApiError::bad_request(
                        "unknown_column",
                        format!(
                            "no column `{name}` to filter on; columns: {}",
                            names.join(", ")
                        ),
                    )
                })?;
            let value = cast(Value::text(text), columns[index].ty).map_err(|e| {
                ApiError::bad_request("bad_filter", format!("filter on `{name}`: {e}"))
            })?;
            Ok((index, value))
        })
        .collect()
}
