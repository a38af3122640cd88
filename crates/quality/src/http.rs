//! HTTP: `GET /api/quality/checks`, `GET /api/quality/results`, `GET /api/quality/conditions`
//! and `POST /api/quality/run`.

use crate::report;
use crate::role::QualityRole;
use crate::runner::Error;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes(role: Arc<QualityRole>) -> Router {
    Router::new()
        .route("/api/quality/checks", get(checks))
        .route("/api/quality/results", get(results))
        .route("/api/quality/conditions", get(conditions))
        .route("/api/quality/run", post(run))
        .with_state(role)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn unavailable(e: sqlx::Error) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}"))
}

type Params = Query<HashMap<String, String>>;

fn only(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Box<Response>> {
    for key in params.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown parameter {key:?}; this endpoint takes {}",
                    allowed.join(", ")
                ),
            )));
        }
    }
    Ok(())
}

fn limit(params: &HashMap<String, String>) -> Result<i64, Box<Response>> {
    match params.get("limit") {
        None => Ok(100),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("limit: {v:?} is not a whole number from 1 to 10000"),
            ))),
        },
    }
}

async fn checks(State(role): State<Arc<QualityRole>>, Query(p): Params) -> Response {
    if let Err(r) = only(&p, &[]) {
        return *r;
    }
    match report::overview(role.quality.pool(), role.quality.checks()).await {
        Ok(v) => {
            Json(json!({ "source": role.quality.checks().source, "checks": v })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

async fn results(State(role): State<Arc<QualityRole>>, Query(p): Params) -> Response {
    if let Err(r) = only(&p, &["check", "status", "limit"]) {
        return *r;
    }
    let limit = match limit(&p) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let check = p.get("check").map(String::as_str);
    if let Some(name) = check {
        if role.quality.checks().get(name).is_none() {
            return error(
                StatusCode::NOT_FOUND,
                format!("check: no check is named {name:?}"),
            );
        }
    }
    let status = p.get("status").map(String::as_str);
    if let Some(s) = status {
        if crate::eval::Status::parse(s).is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                format!("status: {s:?} is not one of pass, fail, error, learning"),
            );
        }
    }
    match report::results(role.quality.pool(), check, status, limit).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn conditions(State(role): State<Arc<QualityRole>>, Query(p): Params) -> Response {
    if let Err(r) = only(&p, &["state", "limit"]) {
        return *r;
    }
    let limit = match limit(&p) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let state = p.get("state").map(String::as_str);
    if let Some(s) = state {
        if s != "open" && s != "resolved" {
            return error(
                StatusCode::BAD_REQUEST,
                format!("state: {s:?} is not open or resolved"),
            );
        }
    }
    match report::conditions(role.quality.pool(), state, limit).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn run(State(role): State<Arc<QualityRole>>, Query(p): Params) -> Response {
    if let Err(r) = only(&p, &["check"]) {
        return *r;
    }
    match role.run(p.get("check").map(String::as_str)).await {
        Ok(report) => Json(report).into_response(),
        Err(Error::UnknownCheck(name)) => error(
            StatusCode::NOT_FOUND,
            format!("check: no check is named {name:?}"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
