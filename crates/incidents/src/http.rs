//! The incident API:
//! - `GET /api/incidents?state=&class=&severity=&dataset=&since=&until=&limit=&offset=`
//! - `GET /api/incidents/{id}` (with its timeline and feedback)
//! - `POST /api/incidents/{id}/acknowledge`, `/resolve`, `/reopen`, `/notes`, `/feedback`,
//!   `/merge` (into another incident), `/split` (symptoms out into a new incident)
//! - `GET /api/incidents/{id}/similar` (similar past incidents and how they ended)
//! - `GET /api/incidents/similar/{classification}` (the seed's endpoint)
//! - `GET /api/incidents/{id}/actions` (the executor's plans for it: dry run, mode, state,
//!   outcome), `POST /api/incidents/{id}/actions/{action}/approve` and `/reject`
//! - `GET /api/executor/status` (caps, breaker), `GET /api/executor/audit?incident=&limit=`,
//!   `POST /api/executor/breaker/reset`
//! - `GET /api/openapi.json` (this API as an OpenAPI 3.1 document, [`crate::openapi`]) and
//!   `GET /api/docs`, a browsable view of it (Swagger UI, its assets compiled in)
//!
//! Errors: 404 for unknown ids, 409 for a move the state machine refuses, 400 naming the field
//! for bad parameters and bodies (`heal-http`'s shape).

use crate::state::{Move, Reason, State};
use crate::store::{self, Error, Feedback, Filter};
use axum::extract::{Path, Query, State as Ctx};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use heal_http::auth::Caller;
use heal_http::{only, ApiError};
use heal_model::incident::{IncidentClass, ACTION_NAMES};
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use std::collections::HashMap;

/// What the handlers share: the store, and the bus feedback is published on (none in tests
/// that do not need it).
#[derive(Clone)]
pub struct Api {
    pub pool: PgPool,
    pub bus: Option<heal_bus::Bus>,
    /// The executor this process runs, for its status (none: the executor is off).
    pub executor: Option<std::sync::Arc<crate::executor::Executor>>,
}

pub fn routes(pool: PgPool, bus: Option<heal_bus::Bus>) -> Router {
    routes_with(pool, bus, None)
}

/// The routes, with the executor this process runs.
pub fn routes_with(
    pool: PgPool,
    bus: Option<heal_bus::Bus>,
    executor: Option<std::sync::Arc<crate::executor::Executor>>,
) -> Router {
    Router::new()
        .route("/api/incidents/{id}/actions", get(actions))
        .route(
            "/api/incidents/{id}/actions/{action}/approve",
            post(approve),
        )
        .route("/api/incidents/{id}/actions/{action}/reject", post(reject))
        .route("/api/executor/status", get(executor_status))
        .route("/api/executor/audit", get(audit))
        .route("/api/executor/breaker/reset", post(breaker_reset))
        .route("/api/incidents", get(list))
        .route("/api/incidents/similar/{classification}", get(of_class))
        .route("/api/incidents/{id}", get(one))
        .route("/api/incidents/{id}/similar", get(similar))
        .route("/api/incidents/{id}/acknowledge", post(acknowledge))
        .route("/api/incidents/{id}/resolve", post(resolve))
        .route("/api/incidents/{id}/reopen", post(reopen))
        .route("/api/incidents/{id}/notes", post(note))
        .route("/api/incidents/{id}/feedback", post(feedback))
        .route("/api/incidents/{id}/merge", post(merge))
        .route("/api/incidents/{id}/split", post(split))
        .route(
            "/api/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/api/docs", get(docs))
        .with_state(Api {
            pool,
            bus,
            executor,
        })
        // Swagger UI's script and style, from the `swagger-ui-dist` crate (compiled in: the
        // page works offline). Its own index page is not used: ours names fixed paths.
        .merge(swagger_ui_dist::generate_routes(
            swagger_ui_dist::ApiDefinition {
                uri_prefix: DOCS_ASSETS,
                api_definition: swagger_ui_dist::OpenApiSource::Uri("/api/openapi.json"),
                title: Some("heal incident API"),
            },
        ))
}

const DOCS_ASSETS: &str = "/api/docs/assets";

/// A browsable view of the OpenAPI document (Swagger UI), with nothing fetched from elsewhere.
async fn docs() -> Response {
    axum::response::Html(format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>heal incident API</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
</head>
<body>
<main id="swagger-ui"></main>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script>
window.onload = () => {{
  window.ui = SwaggerUIBundle({{ url: "/api/openapi.json", dom_id: "#swagger-ui" }});
}};
</script>
</body>
</html>"##
    ))
    .into_response()
}

type Params = Query<HashMap<String, String>>;
type Answer = Result<Response, ApiError>;

fn store_error(e: Error) -> ApiError {
    match e {
        Error::NotFound(id) => ApiError::not_found(format!("no incident {id:?}")).with_field("id"),
        Error::Conflict(m) => ApiError::conflict(m).with_code("illegal_transition"),
        Error::Invalid(field, m) => ApiError::invalid_field(field, m),
        Error::Db(e) => ApiError::unavailable("the incident store", e),
    }
}

fn time(p: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    heal_http::parse::<DateTime<Utc>>(p, name, "an RFC 3339 time such as 2026-03-02T10:00:00Z")
}

fn class(field: &str, s: &str) -> Result<IncidentClass, ApiError> {
    s.parse::<IncidentClass>()
        .map_err(|e| ApiError::invalid(field, e))
}

async fn list(Ctx(Api { pool, .. }): Ctx<Api>, Query(p): Params) -> Answer {
    only(
        &p,
        &[
            "state", "class", "severity", "dataset", "since", "until", "limit", "offset",
        ],
    )?;
    let state = match p.get("state") {
        Some(s) => Some(
            s.parse::<State>()
                .map_err(|e| ApiError::invalid("state", e))?,
        ),
        None => None,
    };
    let class = match p.get("class") {
        Some(c) => Some(class("class", c)?.as_str().to_string()),
        None => None,
    };
    let severity = match p.get("severity") {
        Some(s) => Some(
            s.parse::<heal_model::quality::Severity>()
                .map_err(|e| ApiError::invalid("severity", e))?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let limit =
        heal_http::parse::<i64>(&p, "limit", "a whole number from 1 to 1000")?.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be from 1 to 1000"));
    }
    let offset = heal_http::parse::<i64>(&p, "offset", "a whole number ≥ 0")?.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset", "offset must be ≥ 0"));
    }
    let filter = Filter {
        state,
        class,
        severity,
        node: p.get("dataset").cloned(),
        since: time(&p, "since")?,
        until: time(&p, "until")?,
        limit,
        offset,
    };
    let (incidents, total) = store::list(&pool, &filter).await.map_err(store_error)?;
    Ok(
        Json(json!({ "incidents": incidents, "total": total, "limit": limit, "offset": offset }))
            .into_response(),
    )
}

async fn one(Ctx(Api { pool, .. }): Ctx<Api>, Path(id): Path<String>) -> Answer {
    let d = store::get(&pool, &id).await.map_err(store_error)?;
    Ok(Json(d).into_response())
}

async fn similar(
    Ctx(Api { pool, .. }): Ctx<Api>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Answer {
    only(&p, &["limit"])?;
    let limit =
        heal_http::parse::<usize>(&p, "limit", "a whole number from 1 to 100")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be from 1 to 100"));
    }
    let s = store::similar(&pool, &id, limit)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({ "incident": id, "similar": s })).into_response())
}

async fn of_class(
    Ctx(Api { pool, .. }): Ctx<Api>,
    Path(c): Path<String>,
    Query(p): Params,
) -> Answer {
    only(&p, &["limit"])?;
    let c = class("classification", &c)?;
    let limit =
        heal_http::parse::<i64>(&p, "limit", "a whole number from 1 to 1000")?.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be from 1 to 1000"));
    }
    let s = store::of_class(&pool, c.as_str(), limit)
        .await
        .map_err(store_error)?;
    Ok(Json(s).into_response())
}

/// The JSON object of a body (an empty body is an empty object).
fn object(body: &axum::body::Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_body("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_body(format!("the body is not JSON: {e}"))),
    }
}

/// An optional string field; present with another type is a 400 naming it.
fn text(m: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => Err(ApiError::invalid_field(
            field,
            format!("{field} must not contain a NUL character"),
        )),
        Some(Value::String(s)) if s.chars().count() <= 10_000 => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(ApiError::invalid_field(
            field,
            format!("{field} must be at most 10000 characters"),
        )),
        Some(_) => Err(ApiError::invalid_field(
            field,
            format!("{field} must be a string"),
        )),
    }
}

fn known(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid_field(
            k,
            format!("unknown field {k:?}; accepted: {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Who acts: the body's `actor`, else the name of the token the request came with, else
/// `operator`.
type Who = Option<Extension<Caller>>;

fn actor(m: &Map<String, Value>, who: &Who) -> Result<String, ApiError> {
    Ok(text(m, "actor")?.unwrap_or_else(|| match who {
        Some(Extension(c)) => c.name.clone(),
        None => "operator".to_string(),
    }))
}

async fn moved(pool: &PgPool, id: &str, m: Move, body: &axum::body::Bytes, who: &Who) -> Answer {
    let b = object(body)?;
    known(&b, &["actor", "note"])?;
    let s = store::transition(pool, id, m, &actor(&b, who)?, text(&b, "note")?.as_deref())
        .await
        .map_err(store_error)?;
    Ok(Json(s).into_response())
}

async fn acknowledge(
    Ctx(Api { pool, .. }): Ctx<Api>,
    Path(id): Path<String>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    moved(&pool, &id, Move::Acknowledge, &body, &who).await
}

async fn reopen(
    Ctx(Api { pool, .. }): Ctx<Api>,
    Path(id): Path<String>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    moved(&pool, &id, Move::Reopen, &body, &who).await
}

/// `{"reason": "duplicates", "note": "…"}`; the seed's callers send `{"resolution": "…"}`
/// (free text): that is reason `other` with the text as the note.
async fn resolve(
    Ctx(Api { pool, .. }): Ctx<Api>,
    Path(id): Path<String>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    let b = object(&body)?;
    known(&b, &["reason", "note", "actor", "resolution"])?;
    let seed = text(&b, "resolution")?;
    let reason = match (text(&b, "reason")?, &seed) {
        (Some(r), _) => Reason::operator(&r).map_err(|e| ApiError::invalid_field("reason", e))?,
        (None, Some(_)) => Reason::Other,
        (None, None) => return Err(ApiError::invalid_field(
            "reason",
            "reason is required: false_positive, missing_data, duplicates, out_of_bounds or other",
        )
        .with_code("missing_field")),
    };
    let note = text(&b, "note")?.or(seed);
    let s = store::transition(
        &pool,
        &id,
        Move::Resolve(reason),
        &actor(&b, &who)?,
        note.as_deref(),
    )
    .await
    .map_err(store_error)?;
    Ok(Json(s).into_response())
}

async fn note(
    Ctx(Api { pool, .. }): Ctx<Api>,
    Path(id): Path<String>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    let b = object(&body)?;
    known(&b, &["note", "actor"])?;
    let Some(n) = text(&b, "note")?.filter(|n| !n.trim().is_empty()) else {
        return Err(
            ApiError::invalid_field("note", "note is required (a non-empty string)")
                .with_code("missing_field"),
        );
    };
    store::note(&pool, &id, &actor(&b, &who)?, &n)
        .await
        .map_err(store_error)?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "incident": id, "note": n })),
    )
        .into_response())
}

/// `{"class": "LATE_DATA", "root_cause": "dataset:orders", "remediation_worked": true,
/// "action": "backfill", "note": "…"}`: at least one of class, root_cause,
/// remediation_worked. Stored, then published on `incident-feedback` for AI Ops to learn
/// from (`action` defaults to the incident's top recommendation).
async fn feedback(
    Ctx(api): Ctx<Api>,
    Path(id): Path<String>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    let b = object(&body)?;
    known(
        &b,
        &[
            "class",
            "root_cause",
            "remediation_worked",
            "action",
            "note",
            "actor",
        ],
    )?;
    let class = match text(&b, "class")? {
        Some(c) => Some(class("class", &c).map_err(|e| e.with_code("invalid_field"))?),
        None => None,
    };
    let worked = match b.get("remediation_worked") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(v)) => Some(*v),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "remediation_worked",
                "remediation_worked must be true or false",
            ))
        }
    };
    let action = text(&b, "action")?;
    if let Some(a) = &action {
        if !ACTION_NAMES.contains(&a.as_str()) {
            return Err(ApiError::invalid_field(
                "action",
                format!(
                    "{a:?} is not an action; use one of {}",
                    ACTION_NAMES.join(", ")
                ),
            ));
        }
    }
    let f = Feedback {
        class: class.map(|c| c.as_str().to_string()),
        root_cause: text(&b, "root_cause")?,
        remediation_worked: worked,
        note: text(&b, "note")?,
    };
    if f.class.is_none() && f.root_cause.is_none() && f.remediation_worked.is_none() {
        return Err(ApiError::bad_body(
            "give at least one of class, root_cause, remediation_worked",
        )
        .with_code("missing_field"));
    }
    let who = actor(&b, &who)?;
    let (m, published) =
        crate::role::give_feedback(&api.pool, api.bus.as_ref(), &id, &who, class, &f, action)
            .await
            .map_err(store_error)?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "incident": id, "stored": true, "published": published, "feedback": m })),
    )
        .into_response())
}

/// `{"into": "<incident id>", "note": "…"}`: this incident is the same problem as `into`.
async fn merge(
    Ctx(Api { pool, .. }): Ctx<Api>,
    Path(id): Path<String>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    let b = object(&body)?;
    known(&b, &["into", "note", "actor"])?;
    let Some(into) = text(&b, "into")?.filter(|s| !s.trim().is_empty()) else {
        return Err(ApiError::invalid_field(
            "into",
            "into is required: the id of the incident to merge into",
        )
        .with_code("missing_field"));
    };
    let s = store::merge(
        &pool,
        &id,
        &into,
        &actor(&b, &who)?,
        text(&b, "note")?.as_deref(),
    )
    .await
    .map_err(store_error)?;
    Ok(Json(s).into_response())
}

/// `{"symptoms": ["<failure_event_id>", …], "note": "…"}`: those failures are another problem.
async fn split(
    Ctx(Api { pool, .. }): Ctx<Api>,
    Path(id): Path<String>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    let b = object(&body)?;
    known(&b, &["symptoms", "note", "actor"])?;
    let symptoms: Vec<String> = match b.get("symptoms") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= 10_000 => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ApiError::invalid_field("symptoms", "symptoms must be failure event ids (strings)")
            })?,
        _ => {
            return Err(ApiError::invalid_field(
                "symptoms",
                "symptoms is required: a non-empty array of the failure_event_id of each symptom to split out",
            )
            .with_code("missing_field"))
        }
    };
    let s = store::split(
        &pool,
        &id,
        &symptoms,
        &actor(&b, &who)?,
        text(&b, "note")?.as_deref(),
    )
    .await
    .map_err(store_error)?;
    Ok((axum::http::StatusCode::CREATED, Json(s)).into_response())
}

async fn actions(Ctx(Api { pool, .. }): Ctx<Api>, Path(id): Path<String>) -> Answer {
    store::summary(&pool, &id).await.map_err(store_error)?;
    let a = crate::executor::actions_of(&pool, &id)
        .await
        .map_err(|e| store_error(Error::Db(e)))?;
    Ok(Json(json!({ "incident": id, "actions": a })).into_response())
}

fn action_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::invalid(
            "action",
            "action must be an action id (a positive whole number)",
        )
    })
}

async fn decided(
    api: &Api,
    id: &str,
    action: &str,
    approve: bool,
    body: &axum::body::Bytes,
    who: &Who,
) -> Answer {
    let aid = action_id(action)?;
    let b = object(body)?;
    known(&b, &["actor", "note"])?;
    let row = crate::executor::decide(
        &api.pool,
        id,
        aid,
        approve,
        &actor(&b, who)?,
        text(&b, "note")?.as_deref(),
    )
    .await
    .map_err(|e| match e {
        Error::NotFound(_) => {
            ApiError::not_found(format!("no action {aid} on incident {id:?}")).with_field("action")
        }
        Error::Conflict(m) => ApiError::conflict(m).with_code("not_pending"),
        e => store_error(e),
    })?;
    Ok(Json(row).into_response())
}

async fn approve(
    Ctx(api): Ctx<Api>,
    Path((id, action)): Path<(String, String)>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    decided(&api, &id, &action, true, &body, &who).await
}

async fn reject(
    Ctx(api): Ctx<Api>,
    Path((id, action)): Path<(String, String)>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    decided(&api, &id, &action, false, &body, &who).await
}

async fn executor_status(Ctx(api): Ctx<Api>) -> Answer {
    let Some(ex) = &api.executor else {
        return Ok(Json(json!({ "running": false })).into_response());
    };
    let mut s = ex
        .status()
        .await
        .map_err(|e| ApiError::unavailable("the executor's audit log", e))?;
    s["running"] = json!(true);
    Ok(Json(s).into_response())
}

async fn audit(Ctx(Api { pool, .. }): Ctx<Api>, Query(p): Params) -> Answer {
    only(&p, &["incident", "limit"])?;
    let limit =
        heal_http::parse::<i64>(&p, "limit", "a whole number from 1 to 1000")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be from 1 to 1000"));
    }
    let entries = crate::executor::audit_log(&pool, p.get("incident").map(String::as_str), limit)
        .await
        .map_err(|e| ApiError::unavailable("the executor's audit log", e))?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

async fn breaker_reset(
    Ctx(Api { pool, .. }): Ctx<Api>,
    who: Who,
    body: axum::body::Bytes,
) -> Answer {
    let b = object(&body)?;
    known(&b, &["actor"])?;
    crate::executor::reset_breaker(&pool, &actor(&b, &who)?)
        .await
        .map_err(|e| ApiError::unavailable("the executor's audit log", e))?;
    Ok(Json(json!({ "breaker": "closed" })).into_response())
}
