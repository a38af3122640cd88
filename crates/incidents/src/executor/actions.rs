//! The actions the executor runs: a dry run that says exactly what would change, the change
//! itself, and its rollback.
//!
//! - `deduplicate`: deletes the later copies of each key in the incident's days of a typed
//!   table; the deleted rows are saved to `executor_checkpoints` in the same transaction and
//!   the day partitions' versions are bumped, so the batch jobs recompute what reads them.
//!   Rollback puts the saved rows back, exactly.
//! - `hold_publication`: holds day partitions of datasets (the analytics views leave them out)
//!   until the incident closes.
//! - `backfill`: bumps the versions of a dataset's day partitions, so every job that reads them
//!   recomputes them from the stored inputs.
//! - `rerun_job`: forgets a job's stored partitions, so the engine computes them again.
//! - `notify_owner`: posts the incident to the configured webhook.
//! - `replay_quarantine`: registers the field mappings the action carries (for each event
//!   type and schema version among the quarantined events they repair) and a replay request
//!   that ingest carries out; the dry run decodes every candidate with the mappings and says
//!   how many would pass and which partitions they land in. Rollback retires the mappings,
//!   deletes what the replay stored and puts the events back in quarantine.
//! - `pause_source` is not run by the executor yet: it stays a recommendation for an operator
//!   (`manual`).

use super::Context;
use chrono::{Duration, NaiveDate};
use heal_model::incident::Action;
use heal_model::{EventKind, FieldMapping, SchemaVersion};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeSet;

/// What planning found out about an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub runnable: Runnable,
    /// Applying it changes stored rows (it has a checkpoint to roll back to).
    pub data_changing: bool,
    /// Assets the action touches: the datasets it writes and what is downstream of them.
    pub blast_radius: u32,
    /// Exactly what would change.
    pub dry_run: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Runnable {
    Yes,
    /// The executor does not run this action type (yet): an operator does.
    Manual(String),
    /// Nothing to do, or it cannot be done here; the reason is recorded.
    Skip(String),
}

/// An action that failed while being applied.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Failed(String),
}

/// A day from `YYYY-MM-DD` or an RFC 3339 time.
fn day_of(s: &str) -> Option<NaiveDate> {
    s.get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

fn days_between(from: &str, to: &str, ctx: &Context) -> Vec<NaiveDate> {
    match (day_of(from), day_of(to)) {
        (Some(a), Some(b)) if a <= b && (b - a).num_days() <= 366 => {
            a.iter_days().take_while(|d| *d <= b).collect()
        }
        _ => ctx.days.clone(),
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The columns of a table in the current schema (empty when there is no such table).
async fn columns(conn: &mut PgConnection, table: &str) -> sqlx::Result<BTreeSet<String>> {
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(conn)
    .await?;
    Ok(cols.into_iter().collect())
}

/// Assets downstream of the incident's nodes plus the ones named.
fn radius(ctx: &Context, named: &[String]) -> u32 {
    let mut all: BTreeSet<&str> = ctx.affected.iter().map(String::as_str).collect();
    all.extend(named.iter().map(String::as_str));
    all.len() as u32
}

/// The dry run of `action` for the incident `ctx`.
pub async fn plan(
    pool: &PgPool,
    ctx: &Context,
    action: &Action,
    webhook: Option<&str>,
) -> sqlx::Result<Planned> {
    let not_data = |blast_radius: u32, dry_run: Value| Planned {
        runnable: Runnable::Yes,
        data_changing: false,
        blast_radius,
        dry_run,
    };
    Ok(match action {
        Action::Deduplicate { dataset, key } => {
            let sql = {
                let mut conn = pool.acquire().await?;
                dedup_sql(&mut conn, dataset, key).await?
            };
            let Some(sql) = sql else {
                return Ok(skip(format!(
                    "deduplicate needs a typed table and key columns it has; got {dataset} by {}",
                    if key.is_empty() {
                        "no key".to_string()
                    } else {
                        key.join(", ")
                    }
                )));
            };
            let (from, to) = ctx.window();
            let per_day: Vec<(NaiveDate, i64)> = sqlx::query_as(&format!(
                "WITH ranked AS ({sql}) SELECT day, count(*) FROM ranked WHERE n > 1
                 GROUP BY day ORDER BY day"
            ))
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
            let rows: i64 = per_day.iter().map(|d| d.1).sum();
            let key = dedup_key(dataset, key);
            let dry_run = json!({
                "table": dataset,
                "key": key,
                "rows_deleted": rows,
                "partitions": per_day.iter().map(|(d, n)| json!({"day": d, "rows": n}))
                    .collect::<Vec<_>>(),
                "recomputed_downstream": ctx.affected,
            });
            if rows == 0 {
                let mut p = skip(format!("no repeated {} in {dataset}", key.join(", ")));
                p.dry_run = dry_run;
                return Ok(p);
            }
            Planned {
                runnable: Runnable::Yes,
                data_changing: true,
                blast_radius: radius(ctx, std::slice::from_ref(dataset)),
                dry_run,
            }
        }
        Action::HoldPublication { datasets, from, to } => {
            let days = days_between(from, to, ctx);
            let (Some(first), Some(last)) = (days.first(), days.last()) else {
                return Ok(skip("no days to hold".into()));
            };
            let present: Vec<(String, i64)> = sqlx::query_as(
                "SELECT table_name, count(*) FROM partition_versions
                 WHERE table_name = ANY($1) AND day BETWEEN $2 AND $3 GROUP BY table_name",
            )
            .bind(datasets)
            .bind(first)
            .bind(last)
            .fetch_all(pool)
            .await?;
            if datasets.is_empty() {
                return Ok(skip("no downstream dataset to hold".into()));
            }
            not_data(
                datasets.len() as u32,
                json!({
                    "datasets": datasets, "from_day": first, "to_day": last,
                    "partitions_held": present.iter().map(|(t, n)| json!({"dataset": t, "partitions": n}))
                        .collect::<Vec<_>>(),
                }),
            )
        }
        Action::Backfill { dataset, from, to } => {
            let days = days_between(from, to, ctx);
            not_data(
                radius(ctx, std::slice::from_ref(dataset)),
                json!({
                    "dataset": dataset, "days": days,
                    "recomputed": "every job partition that reads these days",
                    "downstream": ctx.affected,
                }),
            )
        }
        Action::RerunJob { job, partitions } => {
            let days = job_days(partitions, ctx);
            let stored: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM job_partitions WHERE job = $1 AND day = ANY($2)",
            )
            .bind(job)
            .bind(&days)
            .fetch_one(pool)
            .await?;
            not_data(
                radius(ctx, &[]),
                json!({ "job": job, "partitions": days, "stored_partitions_forgotten": stored }),
            )
        }
        Action::NotifyOwner { node, owner, .. } => match webhook {
            Some(url) => not_data(
                0,
                json!({ "webhook": redact(url), "node": node, "owner": owner }),
            ),
            None => skip("no executor.webhook_url is configured".into()),
        },
        Action::ReplayQuarantine {
            event_type,
            reasons,
            mapping,
        } => {
            let r = {
                let mut conn = pool.acquire().await?;
                replay_candidates(&mut conn, event_type.as_deref(), reasons, mapping).await?
            };
            let dry_run = r.dry_run(ctx);
            if r.examined == 0 {
                let mut p = skip("no open quarantined event matches".into());
                p.dry_run = dry_run;
                return Ok(p);
            }
            if r.passing.is_empty() {
                let mut p = skip(format!(
                    "none of the {} matching quarantined events would pass{}",
                    r.examined,
                    if mapping.is_empty() {
                        ""
                    } else {
                        " with the mapping"
                    }
                ));
                p.dry_run = dry_run;
                return Ok(p);
            }
            let tables: Vec<String> = r.partitions.keys().map(|(t, _)| t.clone()).collect();
            Planned {
                runnable: Runnable::Yes,
                data_changing: true,
                blast_radius: radius(ctx, &tables),
                dry_run,
            }
        }
        Action::PauseSource { .. } => {
            manual("pausing a source is done by an operator; the executor does not run it yet")
        }
    })
}

fn skip(why: String) -> Planned {
    Planned {
        runnable: Runnable::Skip(why),
        data_changing: false,
        blast_radius: 0,
        dry_run: json!({}),
    }
}

fn manual(why: &str) -> Planned {
    Planned {
        runnable: Runnable::Manual(why.to_string()),
        data_changing: false,
        blast_radius: 0,
        dry_run: json!({}),
    }
}

/// A webhook URL without its credentials or query (which may carry a secret).
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(webhook)".into(),
    }
}

fn job_days(partitions: &[String], ctx: &Context) -> Vec<NaiveDate> {
    let days: Vec<NaiveDate> = partitions.iter().filter_map(|p| day_of(p)).collect();
    if days.is_empty() {
        ctx.days.clone()
    } else {
        days
    }
}

/// The ranking query behind `deduplicate`: each row of `table` in [$1, $2) with its day and
/// its position among the rows sharing its key (1 for the first), or `None` when the table is
/// not a typed table or lacks a key column.
async fn dedup_sql(
    conn: &mut PgConnection,
    table: &str,
    key: &[String],
) -> sqlx::Result<Option<String>> {
    let Some(kind) = EventKind::of_table(table) else {
        return Ok(None);
    };
    let key = dedup_key(table, key);
    let cols = columns(conn, table).await?;
    if key.is_empty() || key.iter().any(|k| !cols.contains(k)) {
        return Ok(None);
    }
    let t = quote(table);
    let tc = quote(kind.time_column());
    let keys: Vec<String> = key.iter().map(|k| quote(k)).collect();
    // Rows without a key are never taken for copies of each other.
    let present: Vec<String> = keys.iter().map(|k| format!("{k} IS NOT NULL")).collect();
    Ok(Some(format!(
        "SELECT event_id, ({tc} AT TIME ZONE 'UTC')::date AS day,
                row_number() OVER (PARTITION BY {} ORDER BY {tc}, event_id) AS n
         FROM {t} WHERE {tc} >= $1 AND {tc} < $2 AND {}",
        keys.join(", "),
        present.join(" AND ")
    )))
}

/// The key a deduplication compares: the one the action names, else the table's business
/// key (the evidence does not always name one).
fn dedup_key(table: &str, key: &[String]) -> Vec<String> {
    if !key.is_empty() {
        return key.to_vec();
    }
    EventKind::of_table(table)
        .and_then(|k| k.business_key())
        .map(|k| vec![k.to_string()])
        .unwrap_or_default()
}

/// Applies a data-changing or database action inside `tx` (the caller marks the action applied
/// in the same transaction, so a crash leaves it either fully applied and recorded or not at
/// all). Returns the outcome.
pub async fn apply_in(
    tx: &mut PgConnection,
    id: i64,
    ctx: &Context,
    action: &Action,
) -> Result<Value, ActionError> {
    match action {
        Action::Deduplicate { dataset, key } => {
            let sql = dedup_sql(tx, dataset, key)
                .await?
                .ok_or_else(|| ActionError::Failed(format!("cannot deduplicate {dataset}")))?;
            let (from, to) = ctx.window();
            let kind = EventKind::of_table(dataset).expect("checked by dedup_sql");
            let t = quote(dataset);
            let tc = quote(kind.time_column());
            let saved = sqlx::query(&format!(
                "WITH ranked AS ({sql}),
                      gone AS (DELETE FROM {t} USING ranked r
                               WHERE {t}.event_id = r.event_id AND r.n > 1 RETURNING {t}.*)
                 INSERT INTO executor_checkpoints (action_id, table_name, day, row_data)
                 SELECT $3, $4, (g.{tc} AT TIME ZONE 'UTC')::date, to_jsonb(g) FROM gone g"
            ))
            .bind(from)
            .bind(to)
            .bind(id)
            .bind(dataset)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let days = bump_saved(tx, id).await?;
            Ok(json!({ "rows_deleted": saved, "partitions": days }))
        }
        Action::HoldPublication { datasets, from, to } => {
            let days = days_between(from, to, ctx);
            let (Some(first), Some(last)) = (days.first(), days.last()) else {
                return Err(ActionError::Failed("no days to hold".into()));
            };
            let names: BTreeSet<&String> = datasets.iter().collect();
            for d in &names {
                sqlx::query(
                    "INSERT INTO publication_holds (action_id, dataset, from_day, to_day)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(d)
                .bind(first)
                .bind(last)
                .execute(&mut *tx)
                .await?;
            }
            Ok(json!({ "held": names, "from_day": first, "to_day": last }))
        }
        Action::Backfill { dataset, from, to } => {
            let days = days_between(from, to, ctx);
            let changes: Vec<(&str, NaiveDate, i64)> =
                days.iter().map(|d| (dataset.as_str(), *d, 0)).collect();
            heal_store::versions::bump(tx, &changes).await?;
            Ok(json!({ "dataset": dataset, "partitions_bumped": days }))
        }
        Action::RerunJob { job, partitions } => {
            let days = job_days(partitions, ctx);
            let n = sqlx::query("DELETE FROM job_partitions WHERE job = $1 AND day = ANY($2)")
                .bind(job)
                .bind(&days)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(json!({ "job": job, "partitions": days, "stored_partitions_forgotten": n }))
        }
        Action::ReplayQuarantine {
            event_type,
            reasons,
            mapping,
        } => {
            let r = replay_candidates(tx, event_type.as_deref(), reasons, mapping).await?;
            if r.passing.is_empty() {
                return Err(ActionError::Failed(
                    "no quarantined event would pass any more".into(),
                ));
            }
            for m in &r.mappings {
                sqlx::query(
                    "INSERT INTO field_mappings (event_type, schema_version, from_field, to_field,
                                                 action_id)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&m.event_type)
                .bind(&m.schema_version)
                .bind(&m.from)
                .bind(&m.to)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            let tagged = sqlx::query(
                "UPDATE quarantine SET replay_action = $1
                 WHERE id = ANY($2) AND status = 'open' AND replay_action IS NULL",
            )
            .bind(id)
            .bind(&r.passing)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("INSERT INTO replay_requests (action_id) VALUES ($1)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(json!({ "mappings": r.mappings, "events_to_replay": tagged,
                       "replayed_by": "ingest (replay_requests)" }))
        }
        other => Err(ActionError::Failed(format!(
            "{} is not applied in a transaction",
            other.name()
        ))),
    }
}

/// What a replay would do: the open quarantined events that match, which of them decode with
/// the mappings (registered per event type and schema version found), and where they land.
#[derive(Debug, Default)]
pub struct ReplayPlan {
    pub examined: usize,
    /// Quarantine ids of the events that would pass.
    pub passing: Vec<i64>,
    pub mappings: Vec<FieldMapping>,
    /// Events that would pass per (table, day).
    pub partitions: std::collections::BTreeMap<(String, NaiveDate), u64>,
    /// Why the others would still fail, with counts.
    pub still_failing: std::collections::BTreeMap<String, u64>,
}

impl ReplayPlan {
    fn dry_run(&self, ctx: &Context) -> Value {
        json!({
            "quarantined_events": self.examined,
            "would_ingest": self.passing.len(),
            "would_still_fail": self.still_failing,
            "mappings": self.mappings,
            "partitions": self.partitions.iter()
                .map(|((t, d), n)| json!({ "table": t, "day": d, "events": n }))
                .collect::<Vec<_>>(),
            "recomputed_downstream": ctx.affected,
        })
    }
}

/// Most quarantined events one replay looks at.
const REPLAY_LIMIT: i64 = 200_000;

/// The replay plan of a `replay_quarantine` action over the current quarantine.
pub async fn replay_candidates(
    conn: &mut PgConnection,
    event_type: Option<&str>,
    reasons: &[String],
    mapping: &[(String, String)],
) -> sqlx::Result<ReplayPlan> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT id, raw FROM quarantine
         WHERE status = 'open' AND replay_action IS NULL
           AND (cardinality($1::text[]) = 0 OR reason = ANY($1))
         ORDER BY id LIMIT $2",
    )
    .bind(reasons)
    .bind(REPLAY_LIMIT)
    .fetch_all(&mut *conn)
    .await?;
    let mut plan = ReplayPlan::default();
    let mut matching = Vec::new();
    let mut versions: BTreeSet<(String, String)> = BTreeSet::new();
    for (id, raw) in rows {
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&raw) else {
            if event_type.is_none() {
                matching.push((id, raw));
            }
            continue;
        };
        let ty = obj.get("event_type").and_then(Value::as_str);
        if event_type.is_some_and(|want| ty != Some(want)) {
            continue;
        }
        if let (Some(t), Some(v)) = (ty, obj.get("schema_version").and_then(Value::as_str)) {
            versions.insert((t.to_string(), v.to_string()));
        }
        matching.push((id, raw));
    }
    plan.examined = matching.len();
    // One mapping per event type and schema version seen, for each rename the action carries.
    let candidates: Vec<FieldMapping> = versions
        .iter()
        .flat_map(|(t, v)| {
            mapping.iter().map(move |(from, to)| FieldMapping {
                event_type: t.clone(),
                schema_version: Some(v.clone()),
                from: from.clone(),
                to: to.clone(),
            })
        })
        .collect();
    let mut used: BTreeSet<usize> = BTreeSet::new();
    for (id, raw) in &matching {
        match heal_model::decode_mapped(raw, &candidates) {
            Ok((ev, rewritten)) => {
                plan.passing.push(*id);
                *plan
                    .partitions
                    .entry((ev.kind().table().to_string(), ev.occurred_at.date_naive()))
                    .or_default() += 1;
                if rewritten.is_some() {
                    let ty = ev.kind().wire_name();
                    let v = ev.schema_version;
                    used.extend(candidates.iter().enumerate().filter_map(|(i, m)| {
                        (m.event_type == ty
                            && m.schema_version.as_deref().and_then(SchemaVersion::parse)
                                == Some(v))
                        .then_some(i)
                    }));
                }
            }
            Err(e) => *plan.still_failing.entry(e.reason.to_string()).or_default() += 1,
        }
    }
    plan.mappings = used.into_iter().map(|i| candidates[i].clone()).collect();
    Ok(plan)
}

/// Bumps the versions of the partitions an action's checkpoint touched.
async fn bump_saved(tx: &mut PgConnection, id: i64) -> sqlx::Result<Vec<NaiveDate>> {
    let parts: Vec<(String, NaiveDate, i64)> = sqlx::query_as(
        "SELECT table_name, day, count(*) FROM executor_checkpoints WHERE action_id = $1
         GROUP BY table_name, day ORDER BY day",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let changes: Vec<(&str, NaiveDate, i64)> =
        parts.iter().map(|(t, d, n)| (t.as_str(), *d, *n)).collect();
    heal_store::versions::bump(tx, &changes).await?;
    Ok(parts.into_iter().map(|p| p.1).collect())
}

/// Posts the incident to the webhook; an answer outside 2xx is a failure.
pub async fn notify(
    client: &reqwest::Client,
    url: &str,
    ctx: &Context,
    action: &Action,
    event: &str,
) -> Result<Value, ActionError> {
    let body = json!({
        "event": event,
        "incident": ctx.incident_id,
        "severity": ctx.severity,
        "title": ctx.title,
        "action": action,
        "data_start": ctx.from,
        "data_end": ctx.to,
    });
    let resp = client
        .post(url)
        .json(&body)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| ActionError::Failed(format!("webhook unreachable: {}", e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ActionError::Failed(format!("webhook answered {status}")));
    }
    Ok(json!({ "webhook_status": status.as_u16() }))
}

/// Undoes a data-changing action from its checkpoint, inside `tx`.
pub async fn rollback_in(
    tx: &mut PgConnection,
    id: i64,
    action: &Action,
) -> Result<Value, ActionError> {
    match action {
        Action::Deduplicate { dataset, .. } => {
            if EventKind::of_table(dataset).is_none() {
                return Err(ActionError::Failed(format!(
                    "{dataset} is not a typed table"
                )));
            }
            let t = quote(dataset);
            let restored = sqlx::query(&format!(
                "INSERT INTO {t}
                 SELECT (jsonb_populate_record(NULL::{t}, c.row_data)).*
                 FROM executor_checkpoints c WHERE c.action_id = $1 AND c.table_name = $2
                 ON CONFLICT (event_id) DO NOTHING"
            ))
            .bind(id)
            .bind(dataset)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let days = bump_saved(tx, id).await?;
            Ok(json!({ "rows_restored": restored, "partitions": days }))
        }
        Action::ReplayQuarantine { .. } => {
            let retired = sqlx::query(
                "UPDATE field_mappings SET active = false, retired_at = now()
                 WHERE action_id = $1 AND active",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // A replay ingest has not run yet never will.
            sqlx::query(
                "UPDATE replay_requests SET done_at = now(), report = '{\"cancelled\": true}'
                 WHERE action_id = $1 AND done_at IS NULL",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let removed: Vec<(String, String, NaiveDate)> = sqlx::query_as(
                "DELETE FROM raw_events r USING quarantine q
                 WHERE q.replay_action = $1 AND q.status = 'replayed'
                   AND r.event_id = q.event_id AND r.source = 'replay'
                 RETURNING r.event_id, r.event_type, (r.occurred_at AT TIME ZONE 'UTC')::date",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let mut parts: std::collections::BTreeMap<(&str, NaiveDate), i64> = Default::default();
            for kind in EventKind::ALL {
                let ids: Vec<&str> = removed
                    .iter()
                    .filter(|r| r.1 == kind.wire_name())
                    .map(|r| r.0.as_str())
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                sqlx::query(&format!(
                    "DELETE FROM {} WHERE event_id = ANY($1)",
                    quote(kind.table())
                ))
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
                for r in removed.iter().filter(|r| r.1 == kind.wire_name()) {
                    *parts.entry((kind.table(), r.2)).or_default() += 1;
                    *parts.entry(("raw_events", r.2)).or_default() += 1;
                }
            }
            let changes: Vec<(&str, NaiveDate, i64)> =
                parts.iter().map(|((t, d), n)| (*t, *d, *n)).collect();
            heal_store::versions::bump(tx, &changes).await?;
            let back = sqlx::query(
                "UPDATE quarantine SET status = 'open', replay_action = NULL
                 WHERE replay_action = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(json!({
                "mappings_retired": retired,
                "events_removed": removed.len(),
                "back_in_quarantine": back,
                "partitions": parts.keys().map(|(t, d)| json!({ "table": t, "day": d }))
                    .collect::<Vec<_>>(),
            }))
        }
        other => Err(ActionError::Failed(format!(
            "{} changes no rows; nothing to roll back",
            other.name()
        ))),
    }
}

/// Releases the holds an action placed.
pub async fn release(tx: &mut PgConnection, id: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE publication_holds SET released_at = now()
         WHERE action_id = $1 AND released_at IS NULL",
    )
    .bind(id)
    .execute(tx)
    .await?
    .rows_affected())
}

/// The incident's day span as a half-open time window.
pub(super) fn window_of(days: &[NaiveDate]) -> (NaiveDate, NaiveDate) {
    let first = days.first().copied().unwrap_or_default();
    let last = days.last().copied().unwrap_or(first);
    (first, last + Duration::days(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_come_from_dates_or_times_and_webhooks_lose_their_secrets() {
        assert_eq!(
            day_of("2026-03-02T10:00:00+00:00"),
            NaiveDate::from_ymd_opt(2026, 3, 2)
        );
        assert_eq!(day_of("2026-03-02"), NaiveDate::from_ymd_opt(2026, 3, 2));
        assert_eq!(day_of("yesterday"), None);
        assert_eq!(
            redact("https://user:pw@hooks.example/abc?token=s"),
            "https://hooks.example/…"
        );
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        assert_eq!(window_of(&[d]), (d, d + Duration::days(1)));
        // Without a key from the evidence, the table's business key; none where there is none.
        assert_eq!(dedup_key("orders", &[]), ["order_id"]);
        assert_eq!(dedup_key("orders", &["user_id".into()]), ["user_id"]);
        assert!(dedup_key("product_views", &[]).is_empty());
    }
}
