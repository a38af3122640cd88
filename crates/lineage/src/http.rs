//! HTTP: `POST /api/v1/lineage` (OpenLineage events, as OpenLineage's HTTP transport sends
//! them) and the queries under `/api/lineage/…`.

use crate::model::Direction;
use crate::query::{self, QueryError};
use crate::service::{AcceptError, Lineage, LineageApi};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use heal_http::{query_rejection, ApiError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes(lineage: Arc<Lineage>) -> Router {
    Router::new()
        .route("/api/v1/lineage", post(accept))
        .route("/api/lineage/affected/{table}", get(affected))
        .route("/api/lineage/dependencies/{job}", get(dependencies))
        .route("/api/lineage/impact/{table}", get(impact))
        .route("/api/lineage/upstream/{node}", get(upstream))
        .route("/api/lineage/downstream/{node}", get(downstream))
        .route("/api/lineage/path", get(path))
        .route("/api/lineage/subgraph/{node}", get(subgraph))
        .route("/api/lineage/columns/{dataset}", get(columns))
        .route("/api/lineage/graph", get(graph))
        .with_state(lineage)
}

fn query_error(e: QueryError) -> ApiError {
    match &e {
        QueryError::NotFound(_) | QueryError::NoPath(_) => ApiError::not_found(e.to_string()),
        QueryError::Ambiguous(_) => ApiError::conflict(e.to_string()).with_code("ambiguous"),
        QueryError::Backend(_) => ApiError::unavailable("the lineage graph", e),
    }
}

fn answer<T: serde::Serialize>(r: Result<T, QueryError>) -> Result<Response, ApiError> {
    r.map(|v| Json(v).into_response()).map_err(query_error)
}

async fn accept(State(l): State<Arc<Lineage>>, body: Bytes) -> Result<Response, ApiError> {
    let event: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_body(format!(
            "the body is not JSON: {e} (expected one OpenLineage event)"
        ))
    })?;
    match l.accept(&event, "http").await {
        Ok(a) => Ok((StatusCode::CREATED, Json(a)).into_response()),
        Err(AcceptError::Invalid(r)) => {
            metrics::counter!("heal_lineage_events_rejected_total", "source" => "http")
                .increment(1);
            let mut e = ApiError::bad_body("invalid OpenLineage event").with_code("invalid_event");
            // The first problem's path (`run.runId: …`) is the field at fault.
            if let Some((field, _)) = r.problems.first().and_then(|p| p.split_once(':')) {
                e = e.with_field(field.trim());
            }
            let mut body = e.body();
            body["problems"] = json!(r.problems);
            Ok((e.status, Json(body)).into_response())
        }
        Err(e @ AcceptError::Backend(_)) => Err(ApiError::unavailable("the lineage store", e)),
    }
}

#[derive(Debug, Deserialize)]
struct DepthParam {
    depth: Option<u32>,
}

type Depth = Result<Query<DepthParam>, QueryRejection>;

fn depth(p: Depth) -> Result<Option<u32>, ApiError> {
    let Query(d) = p.map_err(query_rejection)?;
    match d.depth {
        Some(0) => Err(ApiError::invalid(
            "depth",
            "depth: must be at least 1 (leave it out for no limit)",
        )),
        other => Ok(other),
    }
}

type Answer = Result<Response, ApiError>;

async fn affected(State(l): State<Arc<Lineage>>, Path(t): Path<String>, d: Depth) -> Answer {
    let d = depth(d)?;
    answer(l.affected(&t, d).await)
}

async fn dependencies(State(l): State<Arc<Lineage>>, Path(j): Path<String>) -> Answer {
    answer(l.dependencies(&j).await)
}

async fn impact(State(l): State<Arc<Lineage>>, Path(t): Path<String>, d: Depth) -> Answer {
    let d = depth(d)?;
    answer(l.impact(&t, d).await)
}

async fn upstream(State(l): State<Arc<Lineage>>, Path(n): Path<String>, d: Depth) -> Answer {
    let d = depth(d)?;
    answer(l.traverse(&n, Direction::Upstream, d).await)
}

async fn downstream(State(l): State<Arc<Lineage>>, Path(n): Path<String>, d: Depth) -> Answer {
    let d = depth(d)?;
    answer(l.traverse(&n, Direction::Downstream, d).await)
}

#[derive(Debug, Deserialize)]
struct PathParams {
    from: String,
    to: String,
}

async fn path(
    State(l): State<Arc<Lineage>>,
    p: Result<Query<PathParams>, QueryRejection>,
) -> Answer {
    let Query(p) = p.map_err(query_rejection)?;
    answer(l.path(&p.from, &p.to).await)
}

async fn subgraph(State(l): State<Arc<Lineage>>, Path(n): Path<String>, d: Depth) -> Answer {
    let d = depth(d)?;
    answer(l.subgraph(&n, d.unwrap_or(2)).await)
}

async fn columns(State(l): State<Arc<Lineage>>, Path(n): Path<String>) -> Answer {
    let (node, edges) = l.columns(&n).await.map_err(query_error)?;
    Ok(Json(json!({ "dataset": node, "columns": edges })).into_response())
}

#[derive(Debug, Deserialize)]
struct FormatParam {
    format: Option<String>,
}

async fn graph(
    State(l): State<Arc<Lineage>>,
    p: Result<Query<FormatParam>, QueryRejection>,
) -> Answer {
    let Query(f) = p.map_err(query_rejection)?;
    let format = f.format.unwrap_or_else(|| "json".into());
    let g = l.export().await.map_err(query_error)?;
    let text =
        |body: String, mime: &'static str| ([(header::CONTENT_TYPE, mime)], body).into_response();
    match format.as_str() {
        "json" => Ok(Json(g).into_response()),
        "dot" => Ok(text(query::to_dot(&g), "text/vnd.graphviz; charset=utf-8")),
        "mermaid" => Ok(text(query::to_mermaid(&g), "text/plain; charset=utf-8")),
        other => Err(ApiError::invalid(
            "format",
            format!("format: {other:?} is not one of json, dot, mermaid"),
        )),
    }
}
