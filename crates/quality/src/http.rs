//! HTTP: `GET /api/quality/checks`, `GET /api/quality/results`, `GET /api/quality/conditions`
//! and `POST /api/quality/run`.

use crate::report;
use crate::role::QualityRole;
use crate::runner::Error;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use heal_http::{only, ApiError};
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

type Params = Query<HashMap<String, String>>;

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable("the quality store", e)
}

fn limit(params: &HashMap<String, String>) -> Result<i64, ApiError> {
    match heal_http::parse::<i64>(params, "limit", "a whole number from 1 to 10000")? {
        None => Ok(100),
        Some(n) if (1..=10_000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "limit",
            format!("limit: {n} is not a whole number from 1 to 10000"),
        )),
    }
}

async fn checks(
    State(role): State<Arc<QualityRole>>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    only(&p, &[])?;
    let v = report::overview(role.quality.pool(), role.quality.checks())
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "source": role.quality.checks().source, "checks": v })).into_response())
}

async fn results(
    State(role): State<Arc<QualityRole>>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    only(&p, &["check", "status", "limit"])?;
    let limit = limit(&p)?;
    let check = p.get("check").map(String::as_str);
    if let Some(name) = check {
        if role.quality.checks().get(name).is_none() {
            return Err(unknown_check(name));
        }
    }
    let status = p.get("status").map(String::as_str);
    if let Some(s) = status {
        if crate::eval::Status::parse(s).is_none() {
            return Err(ApiError::invalid(
                "status",
                format!("status: {s:?} is not one of pass, fail, error, learning"),
            ));
        }
    }
    let v = report::results(role.quality.pool(), check, status, limit)
        .await
        .map_err(unavailable)?;
    Ok(Json(v).into_response())
}

fn unknown_check(name: &str) -> ApiError {
    ApiError::not_found(format!("check: no check is named {name:?}")).with_field("check")
}

async fn conditions(
    State(role): State<Arc<QualityRole>>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    only(&p, &["state", "limit"])?;
    let limit = limit(&p)?;
    let state = p.get("state").map(String::as_str);
    if let Some(s) = state {
        if s != "open" && s != "resolved" {
            return Err(ApiError::invalid(
                "state",
                format!("state: {s:?} is not open or resolved"),
            ));
        }
    }
    let v = report::conditions(role.quality.pool(), state, limit)
        .await
        .map_err(unavailable)?;
    Ok(Json(v).into_response())
}

async fn run(State(role): State<Arc<QualityRole>>, Query(p): Params) -> Result<Response, ApiError> {
    only(&p, &["check"])?;
    match role.run(p.get("check").map(String::as_str)).await {
        Ok(report) => Ok(Json(report).into_response()),
        Err(Error::UnknownCheck(name)) => Err(unknown_check(&name)),
        Err(e) => Err(unavailable(e)),
    }
}
