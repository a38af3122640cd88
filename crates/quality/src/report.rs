//! Reading back what the checks found: each check's latest result and trend, the result
//! history, and the conditions.

use crate::checks::ChecksFile;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

/// A stored result.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ResultRow {
    pub id: i64,
    pub check_name: String,
    pub check_type: String,
    pub dataset: String,
    pub subject: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub status: String,
    pub severity: Option<String>,
    pub metric: Option<f64>,
    pub expected: Option<f64>,
    pub lower_bound: Option<f64>,
    pub upper_bound: Option<f64>,
    pub threshold: String,
    pub message: String,
    pub detail: Value,
    pub sample: Value,
    pub evaluated_at: DateTime<Utc>,
}

/// An ongoing or resolved condition.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ConditionRow {
    pub id: i64,
    pub check_name: String,
    pub subject: String,
    pub dataset: String,
    pub state: String,
    pub severity: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub occurrences: i64,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The failure event that opened the condition.
    pub first_event: Value,
    /// The newest event about it (the resolution, once resolved).
    pub last_event: Value,
}

/// A check with where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct CheckStatus {
    pub name: String,
    pub check_type: String,
    pub dataset: String,
    pub column: Option<String>,
    pub severity: String,
    pub description: Option<String>,
    pub definition: Value,
    pub last: Option<ResultRow>,
    /// Metric values of the latest results, oldest first (at most 24).
    pub trend: Vec<f64>,
    pub open_conditions: i64,
}

/// Results, newest window first, optionally of one check and/or one status.
pub async fn results(
    pool: &PgPool,
    check: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, check_name, check_type, dataset, subject, window_start, window_end, status, severity,
                metric, expected, lower_bound, upper_bound, threshold, message, detail, sample, evaluated_at
         FROM quality_results
         WHERE ($1::text IS NULL OR check_name = $1) AND ($2::text IS NULL OR status = $2)
         ORDER BY window_end DESC, id DESC LIMIT $3",
    )
    .bind(check)
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Conditions, newest first; `state` is `open` or `resolved`.
pub async fn conditions(
    pool: &PgPool,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<ConditionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, check_name, subject, dataset, state, severity, first_seen, last_seen, occurrences,
                opened_at, resolved_at, first_event, last_event
         FROM quality_conditions WHERE ($1::text IS NULL OR state = $1)
         ORDER BY id DESC LIMIT $2",
    )
    .bind(state)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every check of `file` with its latest result, trend and open conditions.
pub async fn overview(pool: &PgPool, file: &ChecksFile) -> Result<Vec<CheckStatus>, sqlx::Error> {
    let mut out = Vec::new();
    for c in &file.checks {
        // The newest judgment (an errored run is stamped with wall-clock time, windows with
        // event time: order by when they were judged).
        let last: Option<ResultRow> = sqlx::query_as(
            "SELECT id, check_name, check_type, dataset, subject, window_start, window_end, status, severity,
                    metric, expected, lower_bound, upper_bound, threshold, message, detail, sample, evaluated_at
             FROM quality_results WHERE check_name = $1
             ORDER BY evaluated_at DESC, window_end DESC, id DESC LIMIT 1",
        )
        .bind(&c.name)
        .fetch_optional(pool)
        .await?;
        let mut trend: Vec<f64> = sqlx::query_scalar(
            "SELECT metric FROM quality_results WHERE check_name = $1 AND metric IS NOT NULL
             ORDER BY window_end DESC, id DESC LIMIT 24",
        )
        .bind(&c.name)
        .fetch_all(pool)
        .await?;
        trend.reverse();
        let open_conditions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM quality_conditions WHERE check_name = $1 AND state = 'open'",
        )
        .bind(&c.name)
        .fetch_one(pool)
        .await?;
        out.push(CheckStatus {
            name: c.name.clone(),
            check_type: c.kind.type_name().to_string(),
            dataset: c.dataset.clone(),
            column: c.column.clone(),
            severity: c.severity.to_string(),
            description: c.description.clone(),
            definition: serde_json::to_value(c).unwrap_or(Value::Null),
            last,
            trend,
            open_conditions,
        });
    }
    Ok(out)
}
