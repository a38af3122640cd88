//! `GET /api/batch/jobs`, `GET /api/batch/runs`, and `POST /api/batch/jobs/{job}/run`.

use crate::engine::{Engine, Selection, Trigger};
use crate::schedule::Schedules;
use crate::status::{self, RunFilter};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Ctx {
    engine: Arc<Engine>,
    schedules: Arc<Schedules>,
}

pub fn routes(engine: Arc<Engine>, schedules: Arc<Schedules>) -> Router {
    Router::new()
        .route("/api/batch/jobs", get(jobs))
        .route("/api/batch/runs", get(runs))
        .route("/api/batch/jobs/{job}/run", post(run))
        .with_state(Ctx { engine, schedules })
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn jobs(State(ctx): State<Ctx>) -> Response {
    match status::jobs(&ctx.engine, Some(&ctx.schedules)).await {
        Ok(j) => Json(j).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn runs(
    State(ctx): State<Ctx>,
    filter: Result<Query<RunFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    match status::runs(&ctx.engine, &filter).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct RunParams {
    date: Option<NaiveDate>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    #[serde(default)]
    force: bool,
}

async fn run(
    State(ctx): State<Ctx>,
    Path(job): Path<String>,
    params: Result<Query<RunParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if ctx.engine.dag().get(&job).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no job is named {job:?}"));
    }
    let sel = match p.date {
        Some(d) => Selection {
            from: Some(d),
            to: Some(d),
            force: true,
        },
        None => Selection {
            from: p.from,
            to: p.to,
            force: p.force,
        },
    };
    match ctx.engine.run(&[job.as_str()], Trigger::Manual, sel).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
