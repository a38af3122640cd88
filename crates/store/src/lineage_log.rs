//! The OpenLineage event log (`lineage_events`): every role that runs jobs appends its run and
//! job events here, and the lineage role's API appends what external emitters post. An event
//! is stored once whatever path it took (its key is a hash of its canonical JSON); the lineage
//! role projects each stored event into its graph exactly once.

use serde_json::Value;
use sqlx::PgPool;

/// Appends `event` (an OpenLineage run, job or dataset event) received from `source`.
/// Returns false when the same event was already stored.
pub async fn record(pool: &PgPool, source: &str, event: &Value) -> Result<bool, sqlx::Error> {
    let time = event["eventTime"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    let event_type = match (event["eventType"].as_str(), event.get("run")) {
        (Some(t), _) => t.to_string(),
        (None, Some(_)) => "OTHER".to_string(),
        (None, None) if event.get("job").is_some() => "JOB".to_string(),
        (None, None) => "DATASET".to_string(),
    };
    let run_id = event["run"]["runId"]
        .as_str()
        .and_then(|r| uuid::Uuid::parse_str(r).ok());
    let inserted = sqlx::query(
        "INSERT INTO lineage_events
             (event_time, event_type, job_namespace, job_name, run_id, payload, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (event_key) DO NOTHING",
    )
    .bind(time)
    .bind(event_type)
    .bind(event["job"]["namespace"].as_str().unwrap_or_default())
    .bind(event["job"]["name"].as_str().unwrap_or_default())
    .bind(run_id)
    .bind(event)
    .bind(source)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
