//! The quarantine as operators see it: list, show and replay events that could not be
//! ingested. A replay decodes the stored bytes again with the current decoder; events that
//! now pass are ingested (as source `replay`, with late-data bookkeeping) and the quarantine
//! row is marked `replayed` in the same transaction; the others stay open with the new error.
//! Active field mappings apply to replays as to every other event. Replays the self-healing
//! executor requests (`replay_requests`) are run by [`run_requested`].

use crate::{Incoming, Ingestor, Source};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QuarantineEntry {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub source_topic: Option<String>,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub event_id: Option<String>,
    pub reason: String,
    pub detail: String,
    pub status: String,
    pub replay_attempts: i32,
    pub last_replay_error: Option<String>,
    pub size: i32,
}

/// A quarantined event with its bytes.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineRecord {
    #[serde(flatten)]
    pub entry: QuarantineEntry,
    /// The bytes as received, lossily shown as text.
    pub raw_text: String,
    #[serde(skip)]
    pub raw: Vec<u8>,
}

/// Which quarantined events to look at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub reason: Option<String>,
    pub status: Option<String>,
    pub ids: Vec<i64>,
    pub limit: i64,
}

const COLUMNS: &str =
    "id, received_at, source, source_topic, source_partition, source_offset, event_id,
     reason, detail, status, replay_attempts, last_replay_error, length(raw) AS size";

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Vec<QuarantineEntry>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM quarantine
         WHERE ($1::text IS NULL OR reason = $1)
           AND ($2::text IS NULL OR status = $2)
           AND (cardinality($3::int8[]) = 0 OR id = ANY($3))
         ORDER BY id LIMIT $4"
    ))
    .bind(&filter.reason)
    .bind(&filter.status)
    .bind(&filter.ids)
    .bind(if filter.limit > 0 {
        filter.limit
    } else {
        i64::MAX
    })
    .fetch_all(pool)
    .await
}

pub async fn show(pool: &PgPool, id: i64) -> Result<Option<QuarantineRecord>, sqlx::Error> {
    let entry: Option<QuarantineEntry> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM quarantine WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let Some(entry) = entry else {
        return Ok(None);
    };
    let (raw,): (Vec<u8>,) = sqlx::query_as("SELECT raw FROM quarantine WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(Some(QuarantineRecord {
        entry,
        raw_text: String::from_utf8_lossy(&raw).into_owned(),
        raw,
    }))
}

/// Counts per reason and status.
pub async fn summary(pool: &PgPool) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT reason, status, count(*) FROM quarantine GROUP BY reason, status ORDER BY reason, status",
    )
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub examined: u64,
    pub ingested: u64,
    pub duplicates: u64,
    pub still_failing: u64,
    pub failures: Vec<ReplayFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayFailure {
    pub id: i64,
    pub reason: String,
    pub detail: String,
}

/// Replays open quarantined events that match `filter`, in chunks.
pub async fn replay(ingestor: &Ingestor, filter: &Filter) -> crate::Result<ReplayReport> {
    // Mappings registered a moment ago apply to this replay.
    ingestor.refresh_mappings(false).await?;
    let pool = ingestor.pool();
    let mut report = ReplayReport::default();
    let mut after = 0i64;
    let chunk = 1000i64;
    let limit = if filter.limit > 0 {
        filter.limit
    } else {
        i64::MAX
    };
    loop {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, raw FROM quarantine
             WHERE status = 'open' AND id > $1
               AND ($2::text IS NULL OR reason = $2)
               AND (cardinality($3::int8[]) = 0 OR id = ANY($3))
             ORDER BY id LIMIT $4",
        )
        .bind(after)
        .bind(&filter.reason)
        .bind(&filter.ids)
        .bind(chunk.min(limit - report.examined as i64))
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        report.examined += rows.len() as u64;
        let items: Vec<Incoming> = rows
            .iter()
            .map(|(_, raw)| Incoming {
                partition: None,
                offset: None,
                payload: raw.clone(),
                produced_at: None,
            })
            .collect();
        let prepared = ingestor.prepare(&Source::Replay, &items);
        let mut tx = pool.begin().await?;
        // Every row not rejected was ingested (or was a copy of an event that was).
        let rejected: std::collections::HashSet<usize> =
            prepared.rejected.iter().map(|r| r.index).collect();
        let ok_ids: Vec<i64> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| !rejected.contains(i))
            .map(|(_, (id, _))| *id)
            .collect();
        let only_accepted = crate::Prepared {
            accepted: prepared.accepted,
            ..Default::default()
        };
        let outcome = crate::write::write(&mut tx, &Source::Replay, &items, &only_accepted).await?;
        sqlx::query(
            "UPDATE quarantine SET status = 'replayed', replay_attempts = replay_attempts + 1,
                    last_replay_at = now(), last_replay_error = NULL
             WHERE id = ANY($1)",
        )
        .bind(&ok_ids)
        .execute(&mut *tx)
        .await?;
        for r in &prepared.rejected {
            let id = rows[r.index].0;
            sqlx::query(
                "UPDATE quarantine SET replay_attempts = replay_attempts + 1, last_replay_at = now(),
                        last_replay_error = $2
                 WHERE id = $1",
            )
            .bind(id)
            .bind(format!("{}: {}", r.reason, r.detail))
            .execute(&mut *tx)
            .await?;
            report.failures.push(ReplayFailure {
                id,
                reason: r.reason.clone(),
                detail: r.detail.clone(),
            });
        }
        tx.commit().await?;
        report.ingested += outcome.inserted;
        report.duplicates += outcome.duplicates;
        report.still_failing += prepared.rejected.len() as u64;
        if report.examined as i64 >= limit {
            break;
        }
    }
    Ok(report)
}

/// Runs the replays the executor requested and not yet done: each replays the open
/// quarantined events its action tagged and stores the report. Returns how many ran.
pub async fn run_requested(ingestor: &Ingestor) -> crate::Result<usize> {
    let pool = ingestor.pool();
    let pending: Vec<i64> = sqlx::query_scalar(
        "SELECT action_id FROM replay_requests WHERE done_at IS NULL ORDER BY requested_at LIMIT 20",
    )
    .fetch_all(pool)
    .await?;
    let mut ran = 0;
    for action in pending {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM quarantine WHERE replay_action = $1 AND status = 'open' ORDER BY id",
        )
        .bind(action)
        .fetch_all(pool)
        .await?;
        // An empty id list would mean every event: only tagged ones are replayed.
        let report = if ids.is_empty() {
            ReplayReport::default()
        } else {
            replay(
                ingestor,
                &Filter {
                    ids,
                    ..Filter::default()
                },
            )
            .await?
        };
        // Events that still fail are free for a later replay; the replayed ones stay tagged,
        // so a rollback of the action finds what it stored.
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE quarantine SET replay_action = NULL WHERE replay_action = $1 AND status = 'open'",
        )
        .bind(action)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE replay_requests SET done_at = now(), report = $2
             WHERE action_id = $1 AND done_at IS NULL",
        )
        .bind(action)
        .bind(serde_json::to_value(&report).expect("a report serializes"))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if done > 0 {
            tracing::info!(
                action,
                ingested = report.ingested,
                still_failing = report.still_failing,
                "replayed quarantined events the executor asked for"
            );
            ran += 1;
        }
    }
    Ok(ran)
}

/// Runs requested replays every `every` until `stop` turns true.
pub async fn run_requested_loop(
    ingestor: std::sync::Arc<Ingestor>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = run_requested(&ingestor).await {
            tracing::warn!(error = %e, "requested replays failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
    }
}
