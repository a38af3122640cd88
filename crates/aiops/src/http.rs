//! HTTP: `GET /api/aiops/incidents` (what the engine holds, for debugging),
//! `GET /api/aiops/incidents/{id}`, `POST /api/aiops/incidents/{id}/label` (an operator's
//! class, which the classifier learns), `GET /api/aiops/status`. Errors are
//! `{"code", "message", "field"}`; database details are logged, never returned.

use crate::role::AiopsRole;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use heal_http::{only, ApiError};
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

async fn list(
    State(role): State<Arc<AiopsRole>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    only(&q, &["status", "limit"])?;
    let status = match q.get("status").map(String::as_str) {
        None => None,
        Some("open") => Some(IncidentStatus::Open),
        Some("resolved") => Some(IncidentStatus::Resolved),
        Some(other) => {
            return Err(ApiError::invalid(
                "status",
                format!("status {other:?} is not open or resolved"),
            ))
        }
    };
    let limit = match heal_http::parse::<usize>(&q, "limit", "a number from 1 to 10000")? {
        None => 100,
        Some(n) if (1..=10_000).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid(
                "limit",
                "limit must be a number from 1 to 10000",
            ))
        }
    };
    let incidents: Vec<_> = role
        .incidents()
        .into_iter()
        .filter(|i| status.is_none_or(|s| i.status == s))
        .take(limit)
        .collect();
    Ok(Json(json!({ "incidents": incidents })).into_response())
}

async fn one(
    State(role): State<Arc<AiopsRole>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match role.incidents().into_iter().find(|i| i.id == id) {
        Some(i) => Ok(Json(i).into_response()),
        None => Err(ApiError::not_found(format!(
            "no incident {id:?} in the engine"
        ))),
    }
}

async fn label(
    State(role): State<Arc<AiopsRole>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> Result<Response, ApiError> {
    let Some(Json(body)) = body else {
        return Err(ApiError::bad_body(
            "the body must be a JSON object with a \"class\"",
        ));
    };
    let class = match body
        .get("class")
        .and_then(Value::as_str)
        .map(str::parse::<IncidentClass>)
    {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(ApiError::invalid_field("class", e)),
        None => {
            return Err(
                ApiError::invalid_field("class", "\"class\" is required (a string)")
                    .with_code("missing_field"),
            )
        }
    };
    match role.label(&id, class, "operator").await {
        Ok(true) => {
            Ok(Json(json!({ "incident": id, "class": class, "learned": true })).into_response())
        }
        Ok(false) => Err(ApiError::not_found(format!("no incident {id:?}"))),
        Err(e) => Err(ApiError::unavailable("the database", e)),
    }
}

async fn status(State(role): State<Arc<AiopsRole>>) -> Response {
    let mut v = role.stats();
    v["jobs"] = json!(role.jobs());
    Json(v).into_response()
}
