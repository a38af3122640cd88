//! `GET /api/batch/jobs`, `GET /api/batch/runs`, and `POST /api/batch/jobs/{job}/run`.

use crate::engine::{Engine, Selection, Trigger};
use crate::schedule::Schedules;
use crate::status::{self, RunFilter};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use heal_http::{query_rejection, ApiError};
use serde::Deserialize;
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

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable("the batch store", e)
}

async fn jobs(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    let j = status::jobs(&ctx.engine, Some(&ctx.schedules))
        .await
        .map_err(unavailable)?;
    Ok(Json(j).into_response())
}

async fn runs(
    State(ctx): State<Ctx>,
    filter: Result<Query<RunFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = filter.map_err(query_rejection)?;
    let r = status::runs(&ctx.engine, &filter)
        .await
        .map_err(unavailable)?;
    Ok(Json(r).into_response())
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
    params: Result<Query<RunParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(query_rejection)?;
    if ctx.engine.dag().get(&job).is_none() {
        return Err(ApiError::not_found(format!("no job is named {job:?}")).with_field("job"));
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
    let report = ctx
        .engine
        .run(&[job.as_str()], Trigger::Manual, sel)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(report).into_response())
}
