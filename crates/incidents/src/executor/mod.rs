//! The self-healing executor, run by the incidents role. Each tick it:
//!
//! 1. plans the recommended actions of open incidents: a dry run of each (what would change and
//!    the blast radius), the policy's mode for the action type and severity, refusal above the
//!    blast-radius cap; every plan goes to the append-only audit log (`executor_audit`);
//! 2. applies the actions that are ready (policy `auto`, or approved by an operator) within
//!    the hourly rate cap and unless the circuit breaker is open. A database action is applied
//!    and marked applied in one transaction, its checkpoint saved in the same transaction, so
//!    a crash leaves it either done and recorded or not done at all: it is never applied twice.
//!    A webhook is marked `applying` before it is sent and is never sent again after a crash;
//! 3. moves the incident to `verifying` once nothing is left to apply, asks the quality role
//!    (on `quality-requests`) to judge the incident's checks again at once, then verifies: the
//!    incident's quality conditions must have resolved and the KPIs read from the datasets it
//!    touches must be back near their baseline. Passed: the incident resolves as remediated and
//!    its holds are released. Not passed within `verify_within`: every data-changing action is
//!    rolled back to its checkpoint, the incident fails (escalated to the webhook) and the
//!    outcome is published as feedback so the ranking of remediations learns it.

pub mod actions;
pub mod policy;
pub mod verify;

use crate::state::{Move, Reason, State};
use actions::{ActionError, Runnable};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use heal_model::incident::{Action, FeedbackMessage, Incident};
use heal_model::quality::{RecheckRequest, Severity};
use heal_model::topics::QUALITY_REQUESTS;
use policy::{Caps, Mode, Policy};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeSet;
use tokio::sync::watch;
use verify::Kpi;

/// The executor's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: Policy,
    pub caps: Caps,
    /// Time between ticks.
    pub interval: std::time::Duration,
    /// How long an incident may stay `verifying` before the remediation counts as failed.
    pub verify_within: std::time::Duration,
    /// Largest relative distance of a KPI from its baseline that still passes.
    pub kpi_tolerance: f64,
    pub kpis: Vec<Kpi>,
    /// Where `notify_owner` and escalations are posted.
    pub webhook_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::standard(),
            caps: Caps::default(),
            interval: std::time::Duration::from_secs(5),
            verify_within: std::time::Duration::from_secs(15 * 60),
            kpi_tolerance: 0.25,
            kpis: verify::standard_kpis(),
            webhook_url: None,
        }
    }
}

/// What the executor needs to know about an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub incident_id: String,
    pub severity: Severity,
    pub title: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The day partitions of the incident's data span.
    pub days: Vec<NaiveDate>,
    /// Datasets in the blast radius (downstream of the incident's nodes).
    pub affected: Vec<String>,
    /// Datasets of the symptoms and the root cause, and the affected ones.
    pub datasets: Vec<String>,
    /// The quality conditions behind the symptoms.
    pub conditions: Vec<i64>,
}

impl Context {
    pub fn of(i: &Incident) -> Context {
        let mut days = Vec::new();
        let (a, b) = (i.data_start.date_naive(), i.data_end.date_naive());
        let mut d = a;
        while d <= b && days.len() < 366 {
            days.push(d);
            d += Duration::days(1);
        }
        let affected: Vec<String> = i
            .affected
            .iter()
            .filter(|x| x.node.kind == "dataset")
            .map(|x| x.node.name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut datasets: BTreeSet<String> = affected.iter().cloned().collect();
        datasets.extend(
            i.symptoms
                .iter()
                .map(|s| &s.node)
                .chain(i.root_causes.first().map(|c| &c.node))
                .filter(|n| n.kind == "dataset" || n.kind == "stream")
                .map(|n| n.name.clone()),
        );
        Context {
            incident_id: i.id.clone(),
            severity: i.severity,
            title: i.title.clone(),
            from: i.data_start,
            to: i.data_end,
            days,
            affected,
            datasets: datasets.into_iter().collect(),
            conditions: i
                .symptoms
                .iter()
                .map(|s| s.condition_id)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }

    /// The incident's days as a half-open UTC time window.
    pub fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let (a, b) = actions::window_of(&self.days);
        (
            a.and_time(NaiveTime::MIN).and_utc(),
            b.and_time(NaiveTime::MIN).and_utc(),
        )
    }
}

/// An action as the API and CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ActionRow {
    pub id: i64,
    pub incident_id: String,
    pub rank: i32,
    pub action: String,
    pub params: Value,
    pub mode: String,
    pub state: String,
    pub data_changing: bool,
    pub blast_radius: i32,
    pub dry_run: Value,
    pub outcome: Option<Value>,
    pub decided_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ACTION_COLUMNS: &str = "id, incident_id, rank, action, params, mode, state, data_changing,
    blast_radius, dry_run, outcome, decided_by, created_at, updated_at";

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub action_id: Option<i64>,
    pub incident_id: Option<String>,
    pub actor: String,
    pub event: String,
    pub detail: Value,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tick {
    pub planned: usize,
    pub applied: usize,
    pub failed: usize,
    pub verified: usize,
    pub rolled_back: usize,
    pub released: usize,
    /// Why ready actions were left waiting (rate cap or breaker), when they were.
    pub held: Option<String>,
}

/// The executor's actor name in the audit log and the timeline.
pub const ACTOR: &str = "executor";

async fn audit(
    conn: &mut PgConnection,
    action_id: Option<i64>,
    incident_id: &str,
    actor: &str,
    event: &str,
    detail: Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO executor_audit (action_id, incident_id, actor, event, detail)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(action_id)
    .bind(incident_id)
    .bind(actor)
    .bind(event)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

async fn timeline(pool: &PgPool, id: &str, kind: &str, detail: Value) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO incident_timeline (incident_id, actor, kind, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(ACTOR)
    .bind(kind)
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// The executor: the database, its settings, the bus outcomes are published on.
pub struct Executor {
    pool: PgPool,
    settings: Settings,
    bus: Option<heal_bus::Bus>,
    http: reqwest::Client,
    last_hold: std::sync::Mutex<Option<String>>,
}

impl Executor {
    pub fn new(pool: PgPool, settings: Settings, bus: Option<heal_bus::Bus>) -> Executor {
        Executor {
            pool,
            settings,
            bus,
            http: reqwest::Client::new(),
            last_hold: std::sync::Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One round: release, recover, plan, apply, advance, verify.
    pub async fn tick(&self) -> sqlx::Result<Tick> {
        let mut t = Tick {
            released: self.release_closed().await?,
            ..Tick::default()
        };
        self.recover_interrupted().await?;
        t.planned = self.plan().await?;
        self.apply_ready(&mut t).await?;
        self.advance().await?;
        self.verify(&mut t).await?;
        Ok(t)
    }

    async fn incident(&self, id: &str) -> sqlx::Result<Option<(State, Incident)>> {
        let row: Option<(String, Value)> =
            sqlx::query_as("SELECT state, body FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(s, b)| {
            let state = s.parse().ok()?;
            let inc = serde_json::from_value::<Incident>(b).ok()?;
            Some((state, inc))
        }))
    }

    /// Plans the recommendations of open incidents not planned before.
    async fn plan(&self) -> sqlx::Result<usize> {
        let open: Vec<(String, Value)> = sqlx::query_as(
            "SELECT id, body FROM incidents
             WHERE state IN ('open', 'acknowledged') AND engine_status = 'open'
             ORDER BY updated_at DESC LIMIT 200",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut planned = 0;
        for (id, body) in open {
            let Ok(inc) = serde_json::from_value::<Incident>(body) else {
                tracing::warn!(incident = %id, "incident body does not parse; not planned");
                continue;
            };
            let known: Vec<(String, Value)> = sqlx::query_as(
                "SELECT action, params FROM executor_actions WHERE incident_id = $1",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
            let ctx = Context::of(&inc);
            let mut first = known.is_empty();
            for rec in &inc.recommendations {
                let params = serde_json::to_value(&rec.action).expect("actions serialize");
                let name = rec.action.name();
                if known.iter().any(|(a, p)| a == name && *p == params) {
                    continue;
                }
                if first {
                    // The KPIs while the incident is open: the "during" of before/during/after.
                    let kpis = verify::concerning(&self.settings.kpis, &ctx.datasets);
                    let readings =
                        verify::read_all(&self.pool, &kpis, &ctx.days, self.settings.kpi_tolerance)
                            .await;
                    timeline(
                        &self.pool,
                        &id,
                        "kpis",
                        json!({ "phase": "during", "kpis": verify::to_json(&readings) }),
                    )
                    .await?;
                    first = false;
                }
                let p = actions::plan(
                    &self.pool,
                    &ctx,
                    &rec.action,
                    self.settings.webhook_url.as_deref(),
                )
                .await?;
                let mode = self.settings.policy.mode(name, ctx.severity);
                let (state, why) = match (&p.runnable, mode) {
                    (Runnable::Manual(w), _) => ("manual", Some(w.clone())),
                    (Runnable::Skip(w), _) => ("skipped", Some(w.clone())),
                    (Runnable::Yes, Mode::Off) => ("skipped", Some("policy: off".to_string())),
                    (Runnable::Yes, _) if p.blast_radius > self.settings.caps.max_blast_radius => (
                        "refused",
                        Some(format!(
                            "blast radius {} is over the cap of {}",
                            p.blast_radius, self.settings.caps.max_blast_radius
                        )),
                    ),
                    (Runnable::Yes, Mode::Approve) => ("pending_approval", None),
                    (Runnable::Yes, Mode::Auto) => ("ready", None),
                };
                let mut tx = self.pool.begin().await?;
                let aid: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO executor_actions (incident_id, rank, action, params, mode, state,
                         data_changing, blast_radius, dry_run, outcome)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (incident_id, action, params) DO NOTHING RETURNING id",
                )
                .bind(&id)
                .bind(rec.rank as i32)
                .bind(name)
                .bind(&params)
                .bind(mode.as_str())
                .bind(state)
                .bind(p.data_changing)
                .bind(p.blast_radius as i32)
                .bind(&p.dry_run)
                .bind(why.as_ref().map(|w| json!({ "reason": w })))
                .fetch_optional(&mut *tx)
                .await?;
                let Some(aid) = aid else { continue };
                audit(
                    &mut tx,
                    Some(aid),
                    &id,
                    ACTOR,
                    "planned",
                    json!({ "action": params, "mode": mode, "state": state, "reason": why,
                            "dry_run": p.dry_run, "blast_radius": p.blast_radius,
                            "data_changing": p.data_changing }),
                )
                .await?;
                tx.commit().await?;
                planned += 1;
            }
        }
        Ok(planned)
    }

    /// Applied actions in the last hour, and failures in a row since the breaker's last reset.
    async fn counts(&self) -> sqlx::Result<(u32, u32)> {
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM executor_audit
             WHERE event = 'applied' AND at > now() - interval '1 hour'",
        )
        .fetch_one(&self.pool)
        .await?;
        let events: Vec<String> = sqlx::query_scalar(
            "SELECT event FROM executor_audit
             WHERE event IN ('failed', 'verified', 'verification_failed', 'breaker_reset')
             ORDER BY id DESC LIMIT 200",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut outcomes: Vec<bool> = events
            .iter()
            .take_while(|e| *e != "breaker_reset")
            .map(|e| e == "verified")
            .collect();
        outcomes.reverse();
        Ok((applied as u32, policy::failures_in_a_row(&outcomes)))
    }

    /// Whether actions may be applied now, as the API reports it.
    pub async fn status(&self) -> sqlx::Result<Value> {
        let (applied, failures) = self.counts().await?;
        let hold = policy::may_apply(&self.settings.caps, applied, failures).err();
        Ok(json!({
            "applied_last_hour": applied,
            "failures_in_a_row": failures,
            "max_actions_per_hour": self.settings.caps.max_actions_per_hour,
            "breaker_failures": self.settings.caps.breaker_failures,
            "max_blast_radius": self.settings.caps.max_blast_radius,
            "breaker_open": matches!(hold, Some(policy::Hold::BreakerOpen { .. })),
            "held": hold.map(|h| h.to_string()),
        }))
    }

    async fn apply_ready(&self, t: &mut Tick) -> sqlx::Result<()> {
        let ready: Vec<(i64, String, Value)> = sqlx::query_as(
            "SELECT id, incident_id, params FROM executor_actions WHERE state = 'ready'
             ORDER BY id LIMIT 50",
        )
        .fetch_all(&self.pool)
        .await?;
        // Read once: what this round applies or fails is counted as it goes.
        let (mut applied, mut failures) = self.counts().await?;
        for (aid, iid, params) in ready {
            if let Err(h) = policy::may_apply(&self.settings.caps, applied, failures) {
                let why = h.to_string();
                let changed = {
                    let mut last = self.last_hold.lock().expect("lock");
                    let changed = last.as_deref() != Some(why.as_str());
                    *last = Some(why.clone());
                    changed
                };
                if changed {
                    tracing::warn!(reason = %why, "executor holds its ready actions");
                    let mut conn = self.pool.acquire().await?;
                    audit(
                        &mut conn,
                        None,
                        &iid,
                        ACTOR,
                        "held",
                        json!({ "reason": why }),
                    )
                    .await?;
                }
                t.held = Some(why);
                return Ok(());
            }
            *self.last_hold.lock().expect("lock") = None;
            let Some((state, inc)) = self.incident(&iid).await? else {
                continue;
            };
            let Ok(action) = serde_json::from_value::<Action>(params.clone()) else {
                self.finish(aid, &iid, "failed", json!({ "error": "unreadable action" }))
                    .await?;
                failures += 1;
                continue;
            };
            if state.is_closed() {
                self.finish(
                    aid,
                    &iid,
                    "skipped",
                    json!({ "reason": format!("the incident is {state}") }),
                )
                .await?;
                continue;
            }
            let ctx = Context::of(&inc);
            let worked = match action {
                Action::NotifyOwner { .. } => self.apply_webhook(aid, &ctx, &action).await?,
                _ => self.apply_db(aid, &ctx, &action).await?,
            };
            match worked {
                Some(true) => {
                    applied += 1;
                    t.applied += 1;
                    self.start_remediation(&iid, state).await?;
                }
                Some(false) => {
                    failures += 1;
                    t.failed += 1;
                }
                None => {}
            }
        }
        Ok(())
    }

    async fn start_remediation(&self, id: &str, state: State) -> sqlx::Result<()> {
        if matches!(state, State::Open | State::Acknowledged | State::Failed) {
            self.move_incident(id, Move::StartRemediation, None).await?;
        }
        Ok(())
    }

    /// Moves an incident as the executor; `false` when the move no longer applies (an
    /// operator or the engine moved it first, or it is gone). Only a database error fails.
    async fn move_incident(&self, id: &str, m: Move, note: Option<&str>) -> sqlx::Result<bool> {
        match crate::store::transition(&self.pool, id, m, ACTOR, note).await {
            Ok(_) => Ok(true),
            Err(crate::store::Error::Db(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// Marks an action finished with `state` and audits it.
    async fn finish(&self, aid: i64, iid: &str, state: &str, outcome: Value) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE executor_actions SET state = $2, outcome = $3, updated_at = now() WHERE id = $1",
        )
        .bind(aid)
        .bind(state)
        .bind(&outcome)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, Some(aid), iid, ACTOR, state, outcome).await?;
        tx.commit().await
    }

    /// Applies a database action in one transaction with its state change. `None`: another
    /// executor took it first.
    async fn apply_db(
        &self,
        aid: i64,
        ctx: &Context,
        action: &Action,
    ) -> sqlx::Result<Option<bool>> {
        let mut tx = self.pool.begin().await?;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM executor_actions WHERE id = $1 FOR UPDATE")
                .bind(aid)
                .fetch_optional(&mut *tx)
                .await?;
        if state.as_deref() != Some("ready") {
            return Ok(None);
        }
        match actions::apply_in(&mut tx, aid, ctx, action).await {
            Ok(outcome) => {
                sqlx::query(
                    "UPDATE executor_actions SET state = 'applied', outcome = $2, updated_at = now()
                     WHERE id = $1",
                )
                .bind(aid)
                .bind(&outcome)
                .execute(&mut *tx)
                .await?;
                audit(
                    &mut tx,
                    Some(aid),
                    &ctx.incident_id,
                    ACTOR,
                    "applied",
                    json!({ "action": action, "outcome": outcome }),
                )
                .await?;
                tx.commit().await?;
                tracing::info!(action = action.name(), id = aid, incident = %ctx.incident_id,
                    "executor applied an action");
                Ok(Some(true))
            }
            Err(e) => {
                drop(tx);
                tracing::warn!(action = action.name(), id = aid, error = %e, "action failed");
                self.finish(
                    aid,
                    &ctx.incident_id,
                    "failed",
                    json!({ "error": e.to_string() }),
                )
                .await?;
                Ok(Some(false))
            }
        }
    }

    /// Sends a webhook at most once: the action is marked `applying` first.
    async fn apply_webhook(
        &self,
        aid: i64,
        ctx: &Context,
        action: &Action,
    ) -> sqlx::Result<Option<bool>> {
        let claimed = sqlx::query(
            "UPDATE executor_actions SET state = 'applying', updated_at = now()
             WHERE id = $1 AND state = 'ready'",
        )
        .bind(aid)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let Some(url) = self.settings.webhook_url.as_deref() else {
            self.finish(
                aid,
                &ctx.incident_id,
                "skipped",
                json!({ "reason": "no webhook" }),
            )
            .await?;
            return Ok(None);
        };
        match actions::notify(&self.http, url, ctx, action, "incident").await {
            Ok(outcome) => {
                self.finish(aid, &ctx.incident_id, "applied", outcome)
                    .await?;
                Ok(Some(true))
            }
            Err(e) => {
                self.finish(
                    aid,
                    &ctx.incident_id,
                    "failed",
                    json!({ "error": e.to_string() }),
                )
                .await?;
                Ok(Some(false))
            }
        }
    }

    /// A webhook left `applying` by a crash is not sent again: it is marked failed.
    async fn recover_interrupted(&self) -> sqlx::Result<()> {
        let stuck: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, incident_id FROM executor_actions
             WHERE state = 'applying' AND updated_at < now() - interval '2 minutes'",
        )
        .fetch_all(&self.pool)
        .await?;
        for (aid, iid) in stuck {
            self.finish(
                aid,
                &iid,
                "failed",
                json!({ "error": "interrupted while applying; not repeated" }),
            )
            .await?;
        }
        Ok(())
    }

    /// Incidents being remediated with nothing left to apply move to `verifying`.
    async fn advance(&self) -> sqlx::Result<()> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT i.id FROM incidents i
             WHERE i.state = 'remediating'
               AND EXISTS (SELECT 1 FROM executor_actions a WHERE a.incident_id = i.id
                           AND a.state = 'applied')
               AND NOT EXISTS (SELECT 1 FROM executor_actions a WHERE a.incident_id = i.id
                               AND a.state IN ('ready', 'applying'))",
        )
        .fetch_all(&self.pool)
        .await?;
        for id in ids {
            if self.move_incident(&id, Move::Verify, None).await? {
                let checks = self.request_recheck(&id).await?;
                let mut conn = self.pool.acquire().await?;
                audit(
                    &mut conn,
                    None,
                    &id,
                    ACTOR,
                    "verifying",
                    json!({ "recheck_requested": checks }),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Asks the quality role (on `quality-requests`) to judge the checks behind incident `id`
    /// again now, so verification reads results of the repaired data without waiting for the
    /// next cycle. Returns the checks named (none without a bus or conditions).
    async fn request_recheck(&self, id: &str) -> sqlx::Result<Vec<String>> {
        let Some(bus) = &self.bus else {
            return Ok(vec![]);
        };
        let Some((_, inc)) = self.incident(id).await? else {
            return Ok(vec![]);
        };
        let ctx = Context::of(&inc);
        let checks: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT check_name FROM quality_conditions WHERE id = ANY($1) ORDER BY 1",
        )
        .bind(&ctx.conditions)
        .fetch_all(&self.pool)
        .await?;
        if checks.is_empty() {
            return Ok(checks);
        }
        let request = RecheckRequest::new(id, checks.clone(), "remediation applied");
        let record = heal_bus::Record {
            key: id.as_bytes().to_vec(),
            payload: serde_json::to_vec(&request).expect("a recheck request serializes"),
            timestamp_ms: request.emitted_at.timestamp_millis(),
        };
        if let Err(e) = bus.send(QUALITY_REQUESTS, vec![record]).await {
            tracing::warn!(error = %e, incident = %id, "recheck request not published; verification waits for the next quality cycle");
            return Ok(vec![]);
        }
        Ok(checks)
    }

    async fn verify(&self, t: &mut Tick) -> sqlx::Result<()> {
        let ids: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT i.id, max(e.at) FROM incidents i
             JOIN executor_audit e ON e.incident_id = i.id AND e.event IN ('verifying', 'applied')
             WHERE i.state = 'verifying' GROUP BY i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        for (id, since) in ids {
            let Some((_, inc)) = self.incident(&id).await? else {
                continue;
            };
            let ctx = Context::of(&inc);
            let applied: Vec<(i64, Value, bool)> = sqlx::query_as(
                "SELECT id, params, data_changing FROM executor_actions
                 WHERE incident_id = $1 AND state = 'applied' ORDER BY id",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
            let mut datasets: BTreeSet<String> = ctx.datasets.iter().cloned().collect();
            for (_, p, _) in &applied {
                if let Some(d) = p.get("dataset").and_then(Value::as_str) {
                    datasets.insert(d.to_string());
                }
            }
            let datasets: Vec<String> = datasets.into_iter().collect();
            let kpis = verify::concerning(&self.settings.kpis, &datasets);
            let readings =
                verify::read_all(&self.pool, &kpis, &ctx.days, self.settings.kpi_tolerance).await;
            let open = verify::open_conditions(&self.pool, &ctx.conditions, since).await?;
            // Replays ingest has not carried out yet: nothing to judge before they ran.
            let replays_pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM replay_requests r
                 JOIN executor_actions a ON a.id = r.action_id
                 WHERE a.incident_id = $1 AND a.state = 'applied' AND r.done_at IS NULL",
            )
            .bind(&id)
            .fetch_one(&self.pool)
            .await?;
            let kpis_ok = readings
                .iter()
                .all(|r| r.as_ref().map_or(true, |r| r.within));
            let passed = open == 0 && kpis_ok && replays_pending == 0;
            let elapsed = Utc::now() - since;
            let out_of_time = elapsed.to_std().unwrap_or_default() >= self.settings.verify_within;
            if !passed && !out_of_time {
                continue;
            }
            let detail = json!({
                "passed": passed,
                "open_conditions": open,
                "replays_pending": replays_pending,
                "kpis": verify::to_json(&readings),
                "waited_seconds": elapsed.num_seconds(),
            });
            timeline(
                &self.pool,
                &id,
                "verification",
                json!({ "phase": "after", "passed": passed, "detail": detail }),
            )
            .await?;
            if passed {
                for (aid, p, _) in &applied {
                    let mut tx = self.pool.begin().await?;
                    sqlx::query(
                        "UPDATE executor_actions SET state = 'verified', updated_at = now()
                         WHERE id = $1",
                    )
                    .bind(aid)
                    .execute(&mut *tx)
                    .await?;
                    let released = actions::release(&mut tx, *aid).await?;
                    audit(
                        &mut tx,
                        Some(*aid),
                        &id,
                        ACTOR,
                        "verified",
                        json!({ "verification": detail, "holds_released": released }),
                    )
                    .await?;
                    tx.commit().await?;
                    t.verified += 1;
                    self.publish(&id, p, true).await;
                }
                self.move_incident(
                    &id,
                    Move::Resolve(Reason::Remediated),
                    Some("remediation verified: checks passed and KPIs back at baseline"),
                )
                .await?;
            } else {
                for (aid, p, data_changing) in &applied {
                    let action: Option<Action> = serde_json::from_value(p.clone()).ok();
                    let mut tx = self.pool.begin().await?;
                    let (state, outcome) = match (&action, data_changing) {
                        (Some(a), true) => match actions::rollback_in(&mut tx, *aid, a).await {
                            Ok(o) => ("rolled_back", o),
                            Err(ActionError::Db(e)) => return Err(e),
                            Err(e) => ("failed", json!({ "rollback_error": e.to_string() })),
                        },
                        _ => ("failed", json!({ "reason": "verification failed" })),
                    };
                    sqlx::query(
                        "UPDATE executor_actions SET state = $2, updated_at = now(),
                                outcome = coalesce(outcome, '{}'::jsonb) || $3
                         WHERE id = $1",
                    )
                    .bind(aid)
                    .bind(state)
                    .bind(json!({ "verification": "failed", "rollback": outcome }))
                    .execute(&mut *tx)
                    .await?;
                    audit(
                        &mut tx,
                        Some(*aid),
                        &id,
                        ACTOR,
                        "verification_failed",
                        json!({ "verification": detail, "state": state, "rollback": outcome }),
                    )
                    .await?;
                    tx.commit().await?;
                    if state == "rolled_back" {
                        t.rolled_back += 1;
                    }
                    self.publish(&id, p, false).await;
                }
                self.move_incident(
                    &id,
                    Move::Fail,
                    Some("remediation not verified in time: data-changing actions rolled back"),
                )
                .await?;
                if let Some(url) = self.settings.webhook_url.as_deref() {
                    let escalation = Action::NotifyOwner {
                        node: inc
                            .root_causes
                            .first()
                            .map(|c| c.node.key.clone())
                            .unwrap_or_default(),
                        owner: None,
                        reason: "remediation failed verification".into(),
                    };
                    let r = actions::notify(&self.http, url, &ctx, &escalation, "escalated").await;
                    let mut conn = self.pool.acquire().await?;
                    audit(
                        &mut conn,
                        None,
                        &id,
                        ACTOR,
                        "escalated",
                        json!({ "delivered": r.is_ok(), "error": r.err().map(|e| e.to_string()) }),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Publishes an action's outcome on `incident-feedback`, which ranks remediations.
    async fn publish(&self, id: &str, params: &Value, worked: bool) {
        let Some(bus) = &self.bus else { return };
        let mut m = FeedbackMessage::new(id, ACTOR);
        m.remediation_worked = Some(worked);
        m.action = params
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Err(e) = crate::role::publish_feedback(bus, &m).await {
            tracing::warn!(error = %e, incident = %id, "remediation outcome not published");
        }
    }

    /// Releases the holds of incidents that closed (resolved or false positive).
    async fn release_closed(&self) -> sqlx::Result<usize> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT DISTINCT h.action_id, a.incident_id FROM publication_holds h
             JOIN executor_actions a ON a.id = h.action_id
             JOIN incidents i ON i.id = a.incident_id
             WHERE h.released_at IS NULL AND i.state IN ('resolved', 'false_positive')",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for (aid, iid) in rows {
            let mut tx = self.pool.begin().await?;
            let released = actions::release(&mut tx, aid).await?;
            audit(
                &mut tx,
                Some(aid),
                &iid,
                ACTOR,
                "released",
                json!({ "holds": released }),
            )
            .await?;
            tx.commit().await?;
            n += released as usize;
        }
        Ok(n)
    }
}

/// The actions planned for an incident.
pub async fn actions_of(pool: &PgPool, incident: &str) -> sqlx::Result<Vec<ActionRow>> {
    sqlx::query_as(&format!(
        "SELECT {ACTION_COLUMNS} FROM executor_actions WHERE incident_id = $1 ORDER BY rank, id"
    ))
    .bind(incident)
    .fetch_all(pool)
    .await
}

/// The audit log, newest first; of one incident when given.
pub async fn audit_log(
    pool: &PgPool,
    incident: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<AuditEntry>> {
    sqlx::query_as(
        "SELECT id, at, action_id, incident_id, actor, event, detail FROM executor_audit
         WHERE ($1::text IS NULL OR incident_id = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(incident)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// An operator approves (`true`) or rejects a pending action of `incident`.
pub async fn decide(
    pool: &PgPool,
    incident: &str,
    action_id: i64,
    approve: bool,
    actor: &str,
    note: Option<&str>,
) -> crate::store::Result<ActionRow> {
    let mut tx = pool.begin().await?;
    let state: Option<String> = sqlx::query_scalar(
        "SELECT state FROM executor_actions WHERE id = $1 AND incident_id = $2 FOR UPDATE",
    )
    .bind(action_id)
    .bind(incident)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(state) = state else {
        return Err(crate::store::Error::NotFound(format!(
            "{incident}/actions/{action_id}"
        )));
    };
    if state != "pending_approval" {
        return Err(crate::store::Error::Conflict(format!(
            "action {action_id} is {state}; only a pending action can be {}",
            if approve { "approved" } else { "rejected" }
        )));
    }
    let next = if approve { "ready" } else { "rejected" };
    sqlx::query(
        "UPDATE executor_actions SET state = $2, decided_by = $3, updated_at = now() WHERE id = $1",
    )
    .bind(action_id)
    .bind(next)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    let event = if approve { "approved" } else { "rejected" };
    audit(
        &mut tx,
        Some(action_id),
        incident,
        actor,
        event,
        json!({ "note": note }),
    )
    .await?;
    sqlx::query(
        "INSERT INTO incident_timeline (incident_id, actor, kind, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(incident)
    .bind(actor)
    .bind(event)
    .bind(json!({ "action_id": action_id, "note": note }))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let row = sqlx::query_as(&format!(
        "SELECT {ACTION_COLUMNS} FROM executor_actions WHERE id = $1"
    ))
    .bind(action_id)
    .fetch_one(pool)
    .await?;
    Ok(row)
}

/// Closes the circuit breaker: failures before this no longer count.
pub async fn reset_breaker(pool: &PgPool, actor: &str) -> sqlx::Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query(
        "INSERT INTO executor_audit (actor, event, detail) VALUES ($1, 'breaker_reset', '{}')",
    )
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ticks until `stop` turns true; a failing tick is logged and retried at the next one.
pub async fn run_loop(executor: std::sync::Arc<Executor>, mut stop: watch::Receiver<bool>) {
    // Every outcome is exported from the start, at 0 until it happens.
    for outcome in ["applied", "failed", "verified", "rolled_back"] {
        metrics::counter!("heal_incidents_executor_actions_total", "outcome" => outcome)
            .increment(0);
    }
    loop {
        match executor.tick().await {
            Ok(t) if t != Tick::default() => {
                tracing::info!(
                    planned = t.planned,
                    applied = t.applied,
                    failed = t.failed,
                    verified = t.verified,
                    rolled_back = t.rolled_back,
                    "executor tick"
                );
                metrics::counter!("heal_incidents_executor_actions_total", "outcome" => "applied")
                    .increment(t.applied as u64);
                metrics::counter!("heal_incidents_executor_actions_total", "outcome" => "failed")
                    .increment(t.failed as u64);
                metrics::counter!("heal_incidents_executor_actions_total", "outcome" => "verified")
                    .increment(t.verified as u64);
                metrics::counter!("heal_incidents_executor_actions_total", "outcome" => "rolled_back")
                    .increment(t.rolled_back as u64);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "executor tick failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(executor.settings.interval) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
    }
}
