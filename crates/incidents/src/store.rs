//! The incident store in PostgreSQL (`incidents`, `incident_timeline`, `incident_feedback`):
//! incident messages applied exactly once (a redelivered message changes nothing), operators'
//! moves applied through the state machine in one transaction each, notes, feedback, and the
//! search for similar past incidents.

use crate::state::{self, Move, Reason, State};
use chrono::{DateTime, Utc};
use heal_model::incident::{Incident, IncidentChange, IncidentMessage, IncidentStatus};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no incident {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A request field that is wrong: (field, why).
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An incident as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Summary {
    pub id: String,
    pub state: String,
    pub class: String,
    pub severity: String,
    pub title: String,
    pub root_cause: Option<String>,
    pub nodes: Vec<String>,
    pub previous: Option<String>,
    pub engine_status: String,
    pub data_start: DateTime<Utc>,
    pub data_end: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_reason: Option<String>,
    pub resolution_note: Option<String>,
}

const SUMMARY: &str =
    "id, state, class, severity, title, root_cause, nodes, previous, engine_status,
    data_start, data_end, opened_at, updated_at, resolved_at, resolution_reason, resolution_note";

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct FeedbackEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub class: Option<String>,
    pub root_cause: Option<String>,
    pub remediation_worked: Option<bool>,
    pub note: Option<String>,
}

/// One incident with everything that happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    /// The incident as AI Ops last published it (symptoms, root causes with paths,
    /// classification, explanation, recommendations).
    pub incident: Value,
    pub timeline: Vec<TimelineEntry>,
    pub feedback: Vec<FeedbackEntry>,
    /// The incident an operator merged this one into, and those merged into this one.
    pub merged_into: Option<String>,
    pub merged_from: Vec<String>,
    /// The incident this one was split from, and those split out of this one.
    pub split_from: Option<String>,
    pub split_into: Vec<String>,
}

/// List filters; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<State>,
    pub class: Option<String>,
    pub severity: Option<String>,
    /// A dataset (or any node) name among the incident's symptoms and root cause.
    pub node: Option<String>,
    /// Incidents whose data span reaches into [since, until].
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

/// Lineage keys the incident concerns: its symptoms' nodes and its top root cause.
fn nodes_of(i: &Incident) -> Vec<String> {
    let mut n: BTreeSet<String> = i.symptoms.iter().map(|s| s.node.key.clone()).collect();
    if let Some(c) = i.root_causes.first() {
        n.insert(c.node.key.clone());
    }
    n.into_iter().collect()
}

fn change_name(c: IncidentChange) -> &'static str {
    match c {
        IncidentChange::Opened => "opened",
        IncidentChange::Updated => "updated",
        IncidentChange::Resolved => "resolved",
    }
}

/// Applies one message from the `incidents` topic. Returns false when it was applied before
/// (its event id is in the timeline): a redelivery changes nothing.
pub async fn apply_message(pool: &PgPool, m: &IncidentMessage) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let seen: Option<i64> = sqlx::query_scalar("SELECT id FROM incident_timeline WHERE dedup = $1")
        .bind(&m.event_id)
        .fetch_optional(&mut *tx)
        .await?;
    if seen.is_some() {
        return Ok(false);
    }
    // Failure events an operator split out of this incident stay out of it.
    let split_out: Vec<String> = sqlx::query_scalar(
        "SELECT e FROM incident_splits, unnest(failure_event_ids) AS e WHERE source = $1",
    )
    .bind(&m.incident.id)
    .fetch_all(&mut *tx)
    .await?;
    let kept;
    let i = if split_out.is_empty() {
        &m.incident
    } else {
        let mut c = m.incident.clone();
        c.symptoms
            .retain(|s| !split_out.contains(&s.failure_event_id));
        kept = c;
        &kept
    };
    let engine_status = match i.status {
        IncidentStatus::Open => "open",
        IncidentStatus::Resolved => "resolved",
    };
    let body = serde_json::to_value(i).expect("incidents serialize");
    // A message older than what is stored (out of order) still lands in the timeline but
    // does not overwrite the newer body.
    sqlx::query(
        "INSERT INTO incidents (id, state, class, severity, title, root_cause, nodes, previous,
                                engine_status, data_start, data_end, opened_at, updated_at, body)
         VALUES ($1, 'open', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (id) DO UPDATE SET
             class = EXCLUDED.class, severity = EXCLUDED.severity, title = EXCLUDED.title,
             root_cause = EXCLUDED.root_cause, nodes = EXCLUDED.nodes,
             previous = EXCLUDED.previous, engine_status = EXCLUDED.engine_status,
             data_start = EXCLUDED.data_start, data_end = EXCLUDED.data_end,
             updated_at = EXCLUDED.updated_at, body = EXCLUDED.body
         WHERE incidents.updated_at <= EXCLUDED.updated_at",
    )
    .bind(&i.id)
    .bind(i.classification.class.as_str())
    .bind(i.severity.as_str())
    .bind(&i.title)
    .bind(i.root_causes.first().map(|c| c.node.key.clone()))
    .bind(nodes_of(i))
    .bind(&i.previous)
    .bind(engine_status)
    .bind(i.data_start)
    .bind(i.data_end)
    .bind(i.opened_at)
    .bind(i.updated_at)
    .bind(&body)
    .execute(&mut *tx)
    .await?;
    if m.change == IncidentChange::Resolved {
        // The engine saw every condition pass: close what nobody is working on.
        sqlx::query(
            "UPDATE incidents SET state = 'resolved', resolution_reason = $2,
                    resolved_at = coalesce($3, now())
             WHERE id = $1 AND state IN ('open', 'acknowledged')",
        )
        .bind(&i.id)
        .bind(Reason::ChecksPassed.as_str())
        .bind(i.resolved_at)
        .execute(&mut *tx)
        .await?;
    }
    let detail = json!({
        "change": change_name(m.change),
        "class": i.classification.class,
        "confidence": i.classification.confidence,
        "severity": i.severity,
        "symptoms": i.symptoms.len(),
        "root_cause": i.root_causes.first().map(|c| &c.node.key),
    });
    timeline(
        &mut tx,
        &i.id,
        "aiops",
        change_name(m.change),
        detail,
        Some(&m.event_id),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

async fn timeline(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    actor: &str,
    kind: &str,
    detail: Value,
    dedup: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO incident_timeline (incident_id, actor, kind, detail, dedup)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(actor)
    .bind(kind)
    .bind(detail)
    .bind(dedup)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The incidents `f` selects, newest first, and how many it selects in all.
pub async fn list(pool: &PgPool, f: &Filter) -> Result<(Vec<Summary>, i64)> {
    let node_keys: Option<Vec<String>> = f.node.as_ref().map(|n| {
        if n.contains(':') {
            vec![n.clone()]
        } else {
            ["dataset", "job", "stream"]
                .iter()
                .map(|k| format!("{k}:{n}"))
                .collect()
        }
    });
    let filter = "($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR class = $2)
         AND ($3::text IS NULL OR severity = $3) AND ($4::text[] IS NULL OR nodes && $4)
         AND ($5::timestamptz IS NULL OR data_end >= $5)
         AND ($6::timestamptz IS NULL OR data_start <= $6)";
    let rows: Vec<Summary> = sqlx::query_as(&format!(
        "SELECT {SUMMARY} FROM incidents WHERE {filter}
         ORDER BY updated_at DESC, id LIMIT $7 OFFSET $8"
    ))
    .bind(f.state.map(State::as_str))
    .bind(&f.class)
    .bind(&f.severity)
    .bind(&node_keys)
    .bind(f.since)
    .bind(f.until)
    .bind(f.limit)
    .bind(f.offset)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM incidents WHERE {filter}"))
        .bind(f.state.map(State::as_str))
        .bind(&f.class)
        .bind(&f.severity)
        .bind(&node_keys)
        .bind(f.since)
        .bind(f.until)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

pub async fn summary(pool: &PgPool, id: &str) -> Result<Summary> {
    sqlx::query_as(&format!("SELECT {SUMMARY} FROM incidents WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(id.to_string()))
}

/// One incident with its timeline and feedback.
pub async fn get(pool: &PgPool, id: &str) -> Result<Detail> {
    let summary = summary(pool, id).await?;
    let incident: Value = sqlx::query_scalar("SELECT body FROM incidents WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await?;
    let timeline = sqlx::query_as(
        "SELECT at, actor, kind, detail FROM incident_timeline WHERE incident_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let feedback = sqlx::query_as(
        "SELECT at, actor, class, root_cause, remediation_worked, note
         FROM incident_feedback WHERE incident_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let merged_into: Option<String> =
        sqlx::query_scalar("SELECT merged_into FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
    let merged_from: Vec<String> =
        sqlx::query_scalar("SELECT id FROM incidents WHERE merged_into = $1 ORDER BY id")
            .bind(id)
            .fetch_all(pool)
            .await?;
    let split_from: Option<String> =
        sqlx::query_scalar("SELECT source FROM incident_splits WHERE target = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let split_into: Vec<String> =
        sqlx::query_scalar("SELECT target FROM incident_splits WHERE source = $1 ORDER BY id")
            .bind(id)
            .fetch_all(pool)
            .await?;
    Ok(Detail {
        summary,
        incident,
        timeline,
        feedback,
        merged_into,
        merged_from,
        split_from,
        split_into,
    })
}

/// Merges incident `id` into `into` (one problem seen twice): `id` is resolved with reason
/// `merged` and points at `into`; both timelines say so. Returns `into`.
pub async fn merge(
    pool: &PgPool,
    id: &str,
    into: &str,
    actor: &str,
    note: Option<&str>,
) -> Result<Summary> {
    if id == into {
        return Err(Error::Invalid(
            "into",
            "an incident cannot be merged into itself".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    // Both rows locked, in id order (two opposite merges at once cannot deadlock).
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, state, merged_into FROM incidents WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind([id, into])
    .fetch_all(&mut *tx)
    .await?;
    let find = |x: &str| rows.iter().find(|r| r.0 == x);
    let Some(source) = find(id) else {
        return Err(Error::NotFound(id.to_string()));
    };
    let Some(target) = find(into) else {
        return Err(Error::Invalid("into", format!("no incident {into:?}")));
    };
    if let Some(t) = &target.2 {
        return Err(Error::Conflict(format!(
            "{into} was itself merged into {t}; merge into that one"
        )));
    }
    let current: State = source.1.parse().map_err(Error::Conflict)?;
    let next = state::apply(current, Move::Resolve(Reason::Merged)).map_err(Error::Conflict)?;
    let why = match note {
        Some(n) => format!("merged into {into}: {n}"),
        None => format!("merged into {into}"),
    };
    sqlx::query(
        "UPDATE incidents SET state = $2, merged_into = $3, resolved_at = now(),
                resolution_reason = 'merged', resolution_note = $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(next.as_str())
    .bind(into)
    .bind(&why)
    .execute(&mut *tx)
    .await?;
    let detail =
        json!({ "from": current, "to": next, "reason": "merged", "into": into, "note": note });
    timeline(&mut tx, id, actor, "merged_into", detail, None).await?;
    timeline(
        &mut tx,
        into,
        actor,
        "merged",
        json!({ "incident": id, "note": note }),
        None,
    )
    .await?;
    tx.commit().await?;
    summary(pool, into).await
}

/// Splits the symptoms with the given failure event ids out of incident `id` into a new
/// incident (open, the operator's: the engine does not update it, the executor does not act
/// on it). At least one symptom must stay. Returns the new incident.
pub async fn split(
    pool: &PgPool,
    id: &str,
    failure_events: &[String],
    actor: &str,
    note: Option<&str>,
) -> Result<Summary> {
    if failure_events.is_empty() {
        return Err(Error::Invalid(
            "symptoms",
            "name at least one symptom by its failure_event_id".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let row: Option<(String, Value)> =
        sqlx::query_as("SELECT state, body FROM incidents WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((state, body)) = row else {
        return Err(Error::NotFound(id.to_string()));
    };
    let mut source: Incident = serde_json::from_value(body)
        .map_err(|e| Error::Conflict(format!("the stored incident does not read: {e}")))?;
    let wanted: BTreeSet<&str> = failure_events.iter().map(String::as_str).collect();
    if let Some(unknown) = wanted
        .iter()
        .find(|w| !source.symptoms.iter().any(|s| s.failure_event_id == **w))
    {
        return Err(Error::Invalid(
            "symptoms",
            format!("{id} has no symptom with failure_event_id {unknown:?}"),
        ));
    }
    let (out, kept): (Vec<_>, Vec<_>) = source
        .symptoms
        .drain(..)
        .partition(|s| wanted.contains(s.failure_event_id.as_str()));
    if kept.is_empty() {
        return Err(Error::Conflict(
            "a split must leave at least one symptom in the incident".into(),
        ));
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM incident_splits WHERE source = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let new_id = format!("{id}-split-{}", n + 1);
    let mut part = source.clone();
    part.id = new_id.clone();
    part.symptoms = out;
    part.title = format!("{} (split from {id})", source.title);
    part.status = IncidentStatus::Open;
    part.resolved_at = None;
    part.previous = None;
    part.updated_at = Utc::now();
    source.symptoms = kept;
    let part_body = serde_json::to_value(&part).expect("incidents serialize");
    sqlx::query(
        "INSERT INTO incidents (id, state, class, severity, title, root_cause, nodes, previous,
                                engine_status, data_start, data_end, opened_at, updated_at, body)
         VALUES ($1, 'open', $2, $3, $4, $5, $6, NULL, 'operator', $7, $8, now(), now(), $9)",
    )
    .bind(&new_id)
    .bind(part.classification.class.as_str())
    .bind(part.severity.as_str())
    .bind(&part.title)
    .bind(part.root_causes.first().map(|c| c.node.key.clone()))
    .bind(nodes_of(&part))
    .bind(part.data_start)
    .bind(part.data_end)
    .bind(&part_body)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE incidents SET body = $2, nodes = $3 WHERE id = $1")
        .bind(id)
        .bind(serde_json::to_value(&source).expect("incidents serialize"))
        .bind(nodes_of(&source))
        .execute(&mut *tx)
        .await?;
    let moved: Vec<String> = part
        .symptoms
        .iter()
        .map(|s| s.failure_event_id.clone())
        .collect();
    sqlx::query(
        "INSERT INTO incident_splits (source, target, failure_event_ids, actor)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(&new_id)
    .bind(&moved)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    timeline(
        &mut tx,
        id,
        actor,
        "split",
        json!({ "into": new_id, "failure_events": moved, "state": state, "note": note }),
        None,
    )
    .await?;
    timeline(
        &mut tx,
        &new_id,
        actor,
        "split_from",
        json!({ "incident": id, "failure_events": moved, "note": note }),
        None,
    )
    .await?;
    tx.commit().await?;
    summary(pool, &new_id).await
}

/// Moves an incident (operator or executor) and records it in the timeline; refused with
/// [`Error::Conflict`] when the state machine does not allow it.
pub async fn transition(
    pool: &PgPool,
    id: &str,
    m: Move,
    actor: &str,
    note: Option<&str>,
) -> Result<Summary> {
    let mut tx = pool.begin().await?;
    let current: Option<String> =
        sqlx::query_scalar("SELECT state FROM incidents WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let current: State = current
        .ok_or_else(|| Error::NotFound(id.to_string()))?
        .parse()
        .map_err(Error::Conflict)?;
    let next = state::apply(current, m).map_err(Error::Conflict)?;
    let (reason, resolved) = match m {
        Move::Resolve(r) => (Some(r.as_str()), true),
        _ => (None, false),
    };
    sqlx::query(
        "UPDATE incidents SET state = $2,
                resolved_at = CASE WHEN $3 THEN now() WHEN $2 = 'open' THEN NULL ELSE resolved_at END,
                resolution_reason = CASE WHEN $3 THEN $4 WHEN $2 = 'open' THEN NULL ELSE resolution_reason END,
                resolution_note = CASE WHEN $3 THEN $5 WHEN $2 = 'open' THEN NULL ELSE resolution_note END
         WHERE id = $1",
    )
    .bind(id)
    .bind(next.as_str())
    .bind(resolved)
    .bind(reason)
    .bind(note)
    .execute(&mut *tx)
    .await?;
    let detail = json!({ "from": current, "to": next, "reason": reason, "note": note });
    timeline(&mut tx, id, actor, "state", detail, None).await?;
    tx.commit().await?;
    summary(pool, id).await
}

/// A transaction on an incident that exists, else [`Error::NotFound`].
async fn begin_on<'a>(pool: &'a PgPool, id: &str) -> Result<Transaction<'a, Postgres>> {
    let mut tx = pool.begin().await?;
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    match exists {
        Some(_) => Ok(tx),
        None => Err(Error::NotFound(id.to_string())),
    }
}

/// Adds a note to the timeline.
pub async fn note(pool: &PgPool, id: &str, actor: &str, text: &str) -> Result<()> {
    let mut tx = begin_on(pool, id).await?;
    timeline(&mut tx, id, actor, "note", json!({ "note": text }), None).await?;
    tx.commit().await?;
    Ok(())
}

/// Operator feedback on an incident.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feedback {
    pub class: Option<String>,
    pub root_cause: Option<String>,
    pub remediation_worked: Option<bool>,
    pub note: Option<String>,
}

/// Stores feedback (and a timeline entry).
pub async fn feedback(pool: &PgPool, id: &str, actor: &str, f: &Feedback) -> Result<()> {
    let mut tx = begin_on(pool, id).await?;
    sqlx::query(
        "INSERT INTO incident_feedback (incident_id, actor, class, root_cause, remediation_worked, note)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(actor)
    .bind(&f.class)
    .bind(&f.root_cause)
    .bind(f.remediation_worked)
    .bind(&f.note)
    .execute(&mut *tx)
    .await?;
    let detail = json!({
        "class": f.class, "root_cause": f.root_cause,
        "remediation_worked": f.remediation_worked, "note": f.note,
    });
    timeline(&mut tx, id, actor, "feedback", detail, None).await?;
    tx.commit().await?;
    Ok(())
}

/// A past incident like another, with how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct Similar {
    #[serde(flatten)]
    pub summary: Summary,
    /// 0..1: same root cause (0.4), same class (0.3), shared nodes (0.2, Jaccard), shared
    /// classifier features (0.1, Jaccard).
    pub score: f64,
    /// Whether a remediation worked, from the latest feedback that says.
    pub remediation_worked: Option<bool>,
}

fn jaccard<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        0.0
    } else {
        a.intersection(b).count() as f64 / union as f64
    }
}

/// The classifier features of an incident (its body's `classification.features`).
fn features(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Past incidents most like `id`, best first.
pub async fn similar(pool: &PgPool, id: &str, limit: usize) -> Result<Vec<Similar>> {
    let me = get(pool, id).await?;
    // The scoring reads the stored columns and only the features out of each body (the root
    // cause column is the top candidate's node, `nodes` what `nodes_of` gave): no incident is
    // deserialized, which was nearly all of the search's time.
    type Candidate = (String, String, Option<String>, Vec<String>, Option<Value>);
    let rows: Vec<Candidate> = sqlx::query_as(
        "SELECT id, class, root_cause, nodes, body->'classification'->'features' FROM incidents
         WHERE id <> $1 AND (class = $2 OR root_cause = $3 OR nodes && $4)
         ORDER BY updated_at DESC LIMIT 500",
    )
    .bind(id)
    .bind(&me.summary.class)
    .bind(&me.summary.root_cause)
    .bind(&me.summary.nodes)
    .fetch_all(pool)
    .await?;
    let my_nodes: BTreeSet<String> = me.summary.nodes.iter().cloned().collect();
    let my_features = features(&me.incident["classification"]["features"]);
    let mut scored: Vec<(f64, String)> = rows
        .into_iter()
        .map(|(other, class, root_cause, nodes, other_features)| {
            let nodes: BTreeSet<String> = nodes.into_iter().collect();
            let same_cause = root_cause.is_some() && root_cause == me.summary.root_cause;
            let score = 0.4 * f64::from(u8::from(same_cause))
                + 0.3 * f64::from(u8::from(class == me.summary.class))
                + 0.2 * jaccard(&my_nodes, &nodes)
                + 0.1 * jaccard(&my_features, &features(&other_features.unwrap_or_default()));
            (score, other)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut out = Vec::new();
    for (score, other) in scored.into_iter().take(limit) {
        let summary = summary(pool, &other).await?;
        let worked: Option<bool> = sqlx::query_scalar(
            "SELECT remediation_worked FROM incident_feedback
             WHERE incident_id = $1 AND remediation_worked IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(&other)
        .fetch_optional(pool)
        .await?
        .flatten();
        out.push(Similar {
            summary,
            score: (score * 1000.0).round() / 1000.0,
            remediation_worked: worked,
        });
    }
    Ok(out)
}

/// Incidents of `class`, newest first (the seed's `GET /api/incidents/similar/{class}`).
pub async fn of_class(pool: &PgPool, class: &str, limit: i64) -> Result<Vec<Summary>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SUMMARY} FROM incidents WHERE class = $1 ORDER BY updated_at DESC, id LIMIT $2"
    ))
    .bind(class)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
