//! HTTP API of the ingest role: `POST /api/events` (a JSON array or NDJSON, acknowledged once
//! durable), the quarantine (`GET /api/quarantine`, `GET /api/quarantine/{id}`,
//! `POST /api/quarantine/replay`) and `GET /api/ingest/status`.

use crate::quarantine::{self, Filter};
use crate::{Incoming, Ingestor, Source};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use heal_http::{query_rejection, ApiError};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Largest request body accepted by `POST /api/events`.
const MAX_BODY: usize = 32 << 20;

pub fn routes(ingestor: Arc<Ingestor>) -> Router {
    Router::new()
        .route("/api/events", post(post_events))
        .route("/api/quarantine", get(list_quarantine))
        .route("/api/quarantine/replay", post(replay))
        .route("/api/quarantine/{id}", get(show_quarantine))
        .route("/api/ingest/status", get(status))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ingestor)
}

fn store(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable("the event store", e)
}

/// Splits a body into events: a JSON array's elements, or one event per non-empty line.
pub fn split_body(body: &[u8]) -> Vec<Vec<u8>> {
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        if let Ok(items) = serde_json::from_slice::<Vec<Box<serde_json::value::RawValue>>>(body) {
            return items
                .into_iter()
                .map(|raw| raw.get().as_bytes().to_vec())
                .collect();
        }
    }
    body.split(|b| *b == b'\n')
        .map(|line| line.trim_ascii())
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

async fn post_events(
    State(ingestor): State<Arc<Ingestor>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let events = split_body(&body);
    if events.is_empty() {
        return Err(ApiError::bad_body(
            "body: no events; send a JSON array of events or one JSON event per line",
        ));
    }
    let items: Vec<Incoming> = events
        .into_iter()
        .map(|payload| Incoming {
            partition: None,
            offset: None,
            payload,
            produced_at: None,
        })
        .collect();
    let received = items.len();
    let outcome = ingestor.ingest(&Source::Http, items).await.map_err(store)?;
    Ok(Json(json!({
        "received": received,
        "inserted": outcome.inserted,
        "duplicates": outcome.duplicates,
        "late": outcome.late,
        "quarantined": outcome.quarantined,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    reason: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
}

async fn list_quarantine(
    State(ingestor): State<Arc<Ingestor>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    if let Some(s) = &q.status {
        if !matches!(s.as_str(), "open" | "replayed" | "discarded") {
            return Err(ApiError::invalid(
                "status",
                format!("status: {s:?} is not one of open, replayed, discarded"),
            ));
        }
    }
    let filter = Filter {
        reason: q.reason,
        status: q.status,
        ids: Vec::new(),
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    };
    let list = quarantine::list(ingestor.pool(), &filter)
        .await
        .map_err(store)?;
    Ok(Json(list).into_response())
}

async fn show_quarantine(
    State(ingestor): State<Arc<Ingestor>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::invalid(
            "id",
            format!("id: {id:?} is not a quarantine id (an integer)"),
        )
    })?;
    match quarantine::show(ingestor.pool(), id).await.map_err(store)? {
        Some(record) => Ok(Json(record).into_response()),
        None => Err(ApiError::not_found(format!(
            "no quarantined event with id {id}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    #[serde(default)]
    ids: Vec<i64>,
    reason: Option<String>,
    #[serde(default)]
    all: bool,
}

async fn replay(State(ingestor): State<Arc<Ingestor>>, body: Bytes) -> Result<Response, ApiError> {
    let body: ReplayBody = serde_json::from_slice(&body).map_err(|e| {
        let field = e
            .to_string()
            .split_once("field `")
            .and_then(|(_, r)| r.split_once('`'))
            .map(|(f, _)| f.to_string());
        let err = ApiError::bad_body(format!("body: {e}"));
        match field {
            Some(f) => err.with_code("invalid_field").with_field(&f),
            None => err,
        }
    })?;
    if body.ids.is_empty() && body.reason.is_none() && !body.all {
        return Err(ApiError::bad_body(
            "body: name what to replay with `ids`, `reason`, or `all: true`",
        ));
    }
    let filter = Filter {
        reason: body.reason,
        status: None,
        ids: body.ids,
        limit: 0,
    };
    let report = quarantine::replay(&ingestor, &filter)
        .await
        .map_err(store)?;
    Ok(Json(report).into_response())
}

async fn status(State(ingestor): State<Arc<Ingestor>>) -> Result<Response, ApiError> {
    let pool = ingestor.pool();
    let tables = crate::table_counts(pool).await.map_err(store)?;
    let quarantine: Vec<(String, String, i64)> = quarantine::summary(pool).await.map_err(store)?;
    let offsets: Vec<(String, String, i32, i64)> = sqlx::query_as(
        "SELECT consumer_group, topic, partition, next_offset FROM consumer_offsets ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await.map_err(store)?;
    let dirty: Vec<(String, chrono::NaiveDate, i64)> =
        sqlx::query_as("SELECT table_name, day, late_events FROM dirty_partitions ORDER BY 1, 2")
            .fetch_all(pool)
            .await
            .map_err(store)?;
    let (late, duplicates): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE is_late), sum(duplicate_count)::int8 FROM raw_events",
    )
    .fetch_one(pool)
    .await
    .map_err(store)?;
    Ok(Json(json!({
        "tables": tables.into_iter().map(|(t, n)| json!({"table": t, "rows": n})).collect::<Vec<_>>(),
        "late_events": late.unwrap_or(0),
        "duplicate_deliveries": duplicates.unwrap_or(0),
        "quarantine": quarantine.into_iter().map(|(r, s, n)| json!({"reason": r, "status": s, "count": n})).collect::<Vec<_>>(),
        "consumer_offsets": offsets.into_iter().map(|(g, t, p, o)| json!({"group": g, "topic": t, "partition": p, "next_offset": o})).collect::<Vec<_>>(),
        "dirty_partitions": dirty.into_iter().map(|(t, d, n)| json!({"table": t, "day": d, "late_events": n})).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::split_body;

    #[test]
    fn bodies_split_as_arrays_or_ndjson() {
        assert_eq!(
            split_body(br#"[{"a":1}, {"b":[2]}]"#),
            vec![br#"{"a":1}"#.to_vec(), br#"{"b":[2]}"#.to_vec()]
        );
        assert_eq!(
            split_body(b"{\"a\":1}\n\n{bad\n"),
            vec![b"{\"a\":1}".to_vec(), b"{bad".to_vec()]
        );
        assert!(split_body(b"  \n").is_empty());
    }
}
