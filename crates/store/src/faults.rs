//! `fault_injections`: the ground truth of the faults a scenario run injected, written by
//! whoever runs the scenario (`heal generate`, `heal demo`, `heal eval`, the tests) and read by
//! the batch engine, which enacts the job faults among them. This module is its one owner.

use chrono::{DateTime, Utc};
use heal_model::fault::InjectionRecord;
use serde_json::Value;
use sqlx::PgPool;

/// Stores the ground truth of one run (`run_id`) of `scenario`; a repeat of the same run
/// updates the affected counts and ids.
pub async fn record_ground_truth(
    pool: &PgPool,
    run_id: &str,
    scenario: &str,
    truth: &[InjectionRecord],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (i, r) in truth.iter().enumerate() {
        sqlx::query(
            "INSERT INTO fault_injections (run_id, scenario, fault_index, kind, target, window_start, window_end,
                                           rate, params, expected, affected_count, affected_event_ids)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (run_id, fault_index) DO UPDATE
             SET affected_count = EXCLUDED.affected_count, affected_event_ids = EXCLUDED.affected_event_ids,
                 recorded_at = now()",
        )
        .bind(run_id)
        .bind(scenario)
        .bind(i as i32)
        .bind(r.kind.as_str())
        .bind(&r.target)
        .bind(r.window_start)
        .bind(r.window_end)
        .bind(r.rate)
        .bind(&r.params)
        .bind(&r.expected)
        .bind(r.affected_count as i64)
        .bind(serde_json::json!(r.affected_event_ids))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// A recorded fault as the batch engine enacts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    pub id: i64,
    pub params: Value,
}

/// Recorded faults of `kind` on `target` whose window overlaps `[from, to)`, oldest first.
pub async fn overlapping(
    pool: &PgPool,
    kind: heal_model::FaultKind,
    target: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Injected>, sqlx::Error> {
    let rows: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT id, params FROM fault_injections
         WHERE kind = $1 AND target = $2 AND window_start < $4 AND window_end > $3
         ORDER BY id",
    )
    .bind(kind.as_str())
    .bind(target)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, params)| Injected { id, params })
        .collect())
}
