//! The state of every job and the run history, as the API and `heal batch status` show them.

use crate::engine::{Engine, Selection};
use crate::schedule::Schedules;
use crate::Result;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

/// One row of `job_runs`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub run_id: Uuid,
    pub job: String,
    pub day: NaiveDate,
    pub trigger: String,
    pub status: String,
    pub attempts: i32,
    pub scheduled_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub delayed_secs: f64,
    pub rows_read: Option<i64>,
    pub rows_written: Option<i64>,
    pub error: Option<String>,
}

/// Filters of the run history.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RunFilter {
    pub job: Option<String>,
    pub status: Option<String>,
    pub day: Option<NaiveDate>,
    pub limit: Option<i64>,
}

pub async fn runs(engine: &Engine, filter: &RunFilter) -> Result<Vec<RunRow>> {
    Ok(sqlx::query_as(
        "SELECT run_id, job, day, trigger, status, attempts, scheduled_at, started_at, ended_at,
                delayed_secs, rows_read, rows_written, error
         FROM job_runs
         WHERE ($1::text IS NULL OR job = $1) AND ($2::text IS NULL OR status = $2)
           AND ($3::date IS NULL OR day = $3)
         ORDER BY started_at DESC, job, day DESC
         LIMIT $4",
    )
    .bind(&filter.job)
    .bind(&filter.status)
    .bind(filter.day)
    .bind(filter.limit.unwrap_or(100).clamp(1, 10_000))
    .fetch_all(engine.pool())
    .await?)
}

/// A job and how up to date it is.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub description: String,
    pub schedule: Option<String>,
    pub upstream: Vec<String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// `fresh` (every partition up to date), `stale` (inputs changed since), `failed` (the
    /// last run failed), `running`, `never_run`, or `no_data` (its inputs hold nothing yet).
    pub state: String,
    pub partitions: i64,
    pub latest_partition: Option<NaiveDate>,
    pub last_computed_at: Option<DateTime<Utc>>,
    /// Seconds since the job last computed a partition.
    pub freshness_secs: Option<i64>,
    pub pending_days: Vec<NaiveDate>,
    pub last_run: Option<RunRow>,
}

pub async fn jobs(engine: &Engine, schedules: Option<&Schedules>) -> Result<Vec<JobStatus>> {
    let mut out = Vec::new();
    let now = Utc::now();
    for job in engine.dag().ordered() {
        let (partitions, latest, computed): (i64, Option<NaiveDate>, Option<DateTime<Utc>>) =
            sqlx::query_as(
                "SELECT count(*)::int8, max(day), max(computed_at) FROM job_partitions WHERE job = $1",
            )
            .bind(job.name)
            .fetch_one(engine.pool())
            .await?;
        let last_run = runs(
            engine,
            &RunFilter {
                job: Some(job.name.to_string()),
                limit: Some(1),
                ..RunFilter::default()
            },
        )
        .await?
        .into_iter()
        .next();
        let pending = engine.pending(job.name, Selection::default()).await?;
        let state = match &last_run {
            Some(r) if r.status == "running" => "running",
            Some(r) if r.status == "failed" => "failed",
            _ if partitions == 0 && pending.is_empty() => "no_data",
            _ if partitions == 0 => "never_run",
            _ if !pending.is_empty() => "stale",
            _ => "fresh",
        };
        out.push(JobStatus {
            name: job.name.to_string(),
            description: job.description.to_string(),
            schedule: schedules.and_then(|s| s.describe(job.name)),
            upstream: engine
                .dag()
                .upstream(job.name)
                .iter()
                .map(|j| j.name.to_string())
                .collect(),
            inputs: job.inputs.iter().map(|i| i.table.to_string()).collect(),
            outputs: job.outputs.iter().map(|o| o.table.to_string()).collect(),
            state: state.to_string(),
            partitions,
            latest_partition: latest,
            last_computed_at: computed,
            freshness_secs: computed.map(|c| (now - c).num_seconds()),
            pending_days: pending,
            last_run,
        });
    }
    Ok(out)
}
