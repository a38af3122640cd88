//! HTTP: `POST /api/v1/lineage` (OpenLineage events, as OpenLineage's HTTP transport sends
//! them) and the queries under `/api/lineage/…`.

use crate::model::Direction;
use crate::query::{self, QueryError};
use crate::service::{AcceptError, Lineage, LineageApi};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
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

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn query_error(e: QueryError) -> Response {
    let status = match &e {
        QueryError::NotFound(_) | QueryError::NoPath(_) => StatusCode::NOT_FOUND,
        QueryError::Ambiguous(_) => StatusCode::CONFLICT,
        QueryError::Backend(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

fn answer<T: serde::Serialize>(r: Result<T, QueryError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => query_error(e),
    }
}

async fn accept(State(l): State<Arc<Lineage>>, body: Bytes) -> Response {
    let event: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e} (expected one OpenLineage event)"),
            )
        }
    };
    match l.accept(&event, "http").await {
        Ok(a) => (StatusCode::CREATED, Json(a)).into_response(),
        Err(AcceptError::Invalid(r)) => {
            metrics::counter!("heal_lineage_events_rejected_total", "source" => "http")
                .increment(1);
            (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "invalid OpenLineage event", "problems": r.problems })),
            )
                .into_response()
        }
        Err(e @ AcceptError::Backend(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct DepthParam {
    depth: Option<u32>,
}

type Depth = Result<Query<DepthParam>, axum::extract::rejection::QueryRejection>;

fn depth(p: Depth) -> Result<Option<u32>, Box<Response>> {
    match p {
        Ok(Query(d)) => match d.depth {
            Some(0) => Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "depth: must be at least 1 (leave it out for no limit)".into(),
            ))),
            other => Ok(other),
        },
        Err(e) => Err(Box::new(error(StatusCode::BAD_REQUEST, e.body_text()))),
    }
}

async fn affected(State(l): State<Arc<Lineage>>, Path(t): Path<String>, d: Depth) -> Response {
    match depth(d) {
        Ok(d) => answer(l.affected(&t, d).await),
        Err(r) => *r,
    }
}

async fn dependencies(State(l): State<Arc<Lineage>>, Path(j): Path<String>) -> Response {
    answer(l.dependencies(&j).await)
}

async fn impact(State(l): State<Arc<Lineage>>, Path(t): Path<String>, d: Depth) -> Response {
    match depth(d) {
        Ok(d) => answer(l.impact(&t, d).await),
        Err(r) => *r,
    }
}

async fn upstream(State(l): State<Arc<Lineage>>, Path(n): Path<String>, d: Depth) -> Response {
    match depth(d) {
        Ok(d) => answer(l.traverse(&n, Direction::Upstream, d).await),
        Err(r) => *r,
    }
}

async fn downstream(State(l): State<Arc<Lineage>>, Path(n): Path<String>, d: Depth) -> Response {
    match depth(d) {
        Ok(d) => answer(l.traverse(&n, Direction::Downstream, d).await),
        Err(r) => *r,
    }
}

#[derive(Debug, Deserialize)]
struct PathParams {
    from: String,
    to: String,
}

async fn path(
    State(l): State<Arc<Lineage>>,
    p: Result<Query<PathParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match p {
        Ok(Query(p)) => answer(l.path(&p.from, &p.to).await),
        Err(e) => error(StatusCode::BAD_REQUEST, e.body_text()),
    }
}

async fn subgraph(State(l): State<Arc<Lineage>>, Path(n): Path<String>, d: Depth) -> Response {
    match depth(d) {
        Ok(d) => answer(l.subgraph(&n, d.unwrap_or(2)).await),
        Err(r) => *r,
    }
}

async fn columns(State(l): State<Arc<Lineage>>, Path(n): Path<String>) -> Response {
    match l.columns(&n).await {
        Ok((node, edges)) => Json(json!({ "dataset": node, "columns": edges })).into_response(),
        Err(e) => query_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct FormatParam {
    format: Option<String>,
}

async fn graph(
    State(l): State<Arc<Lineage>>,
    p: Result<Query<FormatParam>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let format = match p {
        Ok(Query(f)) => f.format.unwrap_or_else(|| "json".into()),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let g = match l.export().await {
        Ok(g) => g,
        Err(e) => return query_error(e),
    };
    let text =
        |body: String, mime: &'static str| ([(header::CONTENT_TYPE, mime)], body).into_response();
    match format.as_str() {
        "json" => Json(g).into_response(),
        "dot" => text(query::to_dot(&g), "text/vnd.graphviz; charset=utf-8"),
        "mermaid" => text(query::to_mermaid(&g), "text/plain; charset=utf-8"),
        other => error(
            StatusCode::BAD_REQUEST,
            format!("format: {other:?} is not one of json, dot, mermaid"),
        ),
    }
}
