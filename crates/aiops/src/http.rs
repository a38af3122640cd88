//! HTTP: `GET /api/aiops/incidents` (what the engine holds, for debugging),
//! `GET /api/aiops/incidents/{id}`, `POST /api/aiops/incidents/{id}/label` (an operator's
//! class, which the classifier learns), `GET /api/aiops/status`. Errors are
//! `{"code", "message", "field"}`; database details are logged, never returned.

use crate::role::AiopsRole;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use heal_model::incident::{IncidentClass, IncidentStatus};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes(role: Arc<AiopsRole>) -> Router {
    Router::new()
        .route("/api/aiops/incidents", get(list))
        .route("/api/aiops/incidents/{id}", get(one))
        .route("/api/aiops/incidents/{id}/label", post(label))
        .route("/api/aiops/status", get(status))
        .with_state(role)
}

fn error(status: StatusCode, code: &str, message: String, field: Option<&str>) -> Response {
    (
        status,
        Json(json!({ "code": code, "message": message, "field": field })),
    )
        .into_response()
}

async fn list(
    State(role): State<Arc<AiopsRole>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    for k in q.keys() {
        if !["status", "limit"].contains(&k.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_parameter",
                format!("unknown query parameter {k:?}; use status or limit"),
                Some(k),
            );
        }
    }
    let status = match q.get("status").map(String::as_str) {
        None => None,
        Some("open") => Some(IncidentStatus::Open),
        Some("resolved") => Some(IncidentStatus::Resolved),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_value",
                format!("status {other:?} is not open or resolved"),
                Some("status"),
            )
        }
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_value",
                "limit must be a number from 1 to 10000".into(),
                Some("limit"),
            )
        }
    };
    let incidents: Vec<_> = role
        .incidents()
        .into_iter()
        .filter(|i| status.is_none_or(|s| i.status == s))
        .take(limit)
        .collect();
    Json(json!({ "incidents": incidents })).into_response()
}

async fn one(State(role): State<Arc<AiopsRole>>, Path(id): Path<String>) -> Response {
    if let Some(i) = role.incidents().into_iter().find(|i| i.id == id) {
        return Json(i).into_response();
    }
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no incident {id:?} in the engine"),
        None,
    )
}

async fn label(
    State(role): State<Arc<AiopsRole>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let Some(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body must be a JSON object with a \"class\"".into(),
            None,
        );
    };
    let class = match body
        .get("class")
        .and_then(Value::as_str)
        .map(str::parse::<IncidentClass>)
    {
        Some(Ok(c)) => c,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, "invalid_value", e, Some("class")),
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "missing_field",
                "\"class\" is required (a string)".into(),
                Some("class"),
            )
        }
    };
    match role.label(&id, class, "operator").await {
        Ok(true) => {
            Json(json!({ "incident": id, "class": class, "learned": true })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no incident {id:?}"),
            None,
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a label");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable".into(),
                None,
            )
        }
    }
}

async fn status(State(role): State<Arc<AiopsRole>>) -> Response {
    let mut v = role.stats();
    v["jobs"] = json!(role.jobs());
    Json(v).into_response()
}
