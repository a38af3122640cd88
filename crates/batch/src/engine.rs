//! Running jobs: which day partitions are out of date, computing one partition atomically
//! (delete and insert in one transaction, with the input versions read in the same snapshot),
//! retries with exponential backoff, injected job faults, run history and events.

use crate::dag::Dag;
use crate::events::{self, PipelineEvent, PipelineStatus, RowCounts, RunState};
use crate::job::Job;
use crate::{Error, Result};
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::{self, StreamExt};
use heal_bus::{Bus, Record};
use heal_model::topics;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use uuid::Uuid;

/// How the engine runs partitions.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts per partition run, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub retry_backoff: Duration,
    /// Partitions computed at once.
    pub concurrency: usize,
    /// Real seconds slept per simulated second of an injected job delay.
    pub delay_scale: f64,
    /// OpenLineage job namespace.
    pub namespace: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_attempts: 3,
            retry_backoff: Duration::from_secs(2),
            concurrency: 2,
            delay_scale: 1.0 / 3600.0,
            namespace: "heal".into(),
        }
    }
}

/// Why a partition is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Manual,
    Backfill,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Backfill => "backfill",
        }
    }
}

/// The end of one partition run.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_id: Uuid,
    pub job: String,
    pub day: NaiveDate,
    pub succeeded: bool,
    pub attempts: u32,
    pub rows_read: i64,
    pub rows_written: i64,
    pub error: Option<String>,
    pub delayed_secs: f64,
}

/// A partition not run because an upstream job has not produced its inputs yet.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Waiting {
    pub job: String,
    pub day: NaiveDate,
    pub upstream: String,
    pub upstream_day: NaiveDate,
}

/// What one invocation of [`Engine::run`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub runs: Vec<RunOutcome>,
    pub waiting: Vec<Waiting>,
    /// Partitions another worker was already running (or had just brought up to date).
    pub skipped: Vec<Claimed>,
}

/// A partition left to the worker that holds it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Claimed {
    pub job: String,
    pub day: NaiveDate,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.runs.iter().filter(|r| !r.succeeded).count()
    }
}

/// Which partitions to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Recompute even partitions whose inputs have not changed (backfill).
    pub force: bool,
}

pub struct Engine {
    pool: PgPool,
    bus: Option<Bus>,
    dag: Dag,
    settings: Settings,
}

fn bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    (start, start + chrono::Duration::days(1))
}

/// The input signature of every output day of `job`: the sum of the versions of the input
/// partitions it reads. Versions only grow, so any change to an input changes the sum.
fn signature_sql(job: &Job) -> String {
    let parts: Vec<String> = job
        .inputs
        .iter()
        .filter(|i| i.partitioned())
        .map(|i| {
            format!(
                "SELECT v.day - g AS day, v.version, {defines} AS defines
                 FROM partition_versions v CROSS JOIN generate_series(0, {w}) AS g
                 WHERE v.table_name = '{table}'",
                defines = i.window_days == 0,
                w = i.window_days,
                table = i.table,
            )
        })
        .collect();
    format!(
        "SELECT day, sum(version)::int8 AS signature FROM ({}) c GROUP BY day HAVING bool_or(defines)",
        parts.join(" UNION ALL ")
    )
}

fn rows_read_sql(input: &crate::job::Input) -> String {
    if !input.partitioned() {
        format!("SELECT count(*)::int8 FROM {}", input.table)
    } else if input.time_column == "day" {
        format!(
            "SELECT count(*)::int8 FROM {} WHERE day >= $1 AND day <= $1 + {}",
            input.table, input.window_days
        )
    } else {
        format!(
            "SELECT count(*)::int8 FROM {t} WHERE {c} >= $2 AND {c} < $3 + interval '{h} hours'",
            t = input.table,
            c = input.time_column,
            h = 24 * input.window_days
        )
    }
}

impl Engine {
    pub fn new(pool: PgPool, bus: Option<Bus>, settings: Settings) -> Result<Engine> {
        let dag = Dag::new(crate::catalog::jobs())?;
        Ok(Engine {
            pool,
            bus,
            dag,
            settings,
        })
    }

    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn job(&self, name: &str) -> Result<&Job> {
        self.dag
            .get(name)
            .ok_or_else(|| Error::UnknownJob(name.to_string()))
    }

    /// Marks runs still `running` after `age` as failed: the process that ran them stopped
    /// (a run that is in fact still going records its real end when it finishes). Returns how
    /// many were marked.
    pub async fn mark_interrupted(&self, age: Duration) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE job_runs SET status = 'failed', ended_at = now(),
                    error = 'interrupted: the process running it stopped before it ended'
             WHERE status = 'running' AND started_at < now() - make_interval(secs => $1)",
        )
        .bind(age.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Day partitions of `job` whose inputs changed since they were last computed (or every
    /// existing partition in range when `force`).
    pub async fn pending(&self, job: &str, sel: Selection) -> Result<Vec<NaiveDate>> {
        let job = self.job(job)?;
        let sql = format!(
            "SELECT s.day FROM ({}) s
             LEFT JOIN job_partitions p ON p.job = $1 AND p.day = s.day
             WHERE (p.input_signature IS DISTINCT FROM s.signature OR $2)
               AND ($3::date IS NULL OR s.day >= $3) AND ($4::date IS NULL OR s.day <= $4)
             ORDER BY s.day",
            signature_sql(job)
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(job.name)
            .bind(sel.force)
            .bind(sel.from)
            .bind(sel.to)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Runs `jobs` (every job when empty) in dependency order over the selected partitions. A
    /// partition whose inputs an upstream job still has to (re)compute waits: it is reported,
    /// not run on stale inputs.
    pub async fn run(&self, jobs: &[&str], trigger: Trigger, sel: Selection) -> Result<Report> {
        for name in jobs {
            self.job(name)?;
        }
        let chosen: Vec<&Job> = self
            .dag
            .ordered()
            .filter(|j| jobs.is_empty() || jobs.contains(&j.name))
            .collect();
        let mut report = Report::default();
        for job in chosen {
            let pending: BTreeSet<NaiveDate> =
                self.pending(job.name, sel).await?.into_iter().collect();
            let blockers = self.unsettled_upstream(job, &report.waiting).await?;
            // Days an unsettled upstream partition feeds wait, whether or not they exist yet.
            let mut candidates = pending.clone();
            for input in &job.inputs {
                let Some((_, days)) = blockers.get(input.table) else {
                    continue;
                };
                for x in days {
                    for back in 0..=i64::from(input.window_days) {
                        let d = *x - chrono::Duration::days(back);
                        if sel.from.is_none_or(|f| d >= f) && sel.to.is_none_or(|t| d <= t) {
                            candidates.insert(d);
                        }
                    }
                }
            }
            let mut runnable = Vec::new();
            for day in candidates {
                match blocker(job, day, &blockers) {
                    Some((upstream, upstream_day)) => report.waiting.push(Waiting {
                        job: job.name.to_string(),
                        day,
                        upstream,
                        upstream_day,
                    }),
                    None if pending.contains(&day) => runnable.push(day),
                    None => {}
                }
            }
            if runnable.is_empty() {
                continue;
            }
            let scheduled_at = Utc::now();
            let outcomes: Vec<(NaiveDate, Option<RunOutcome>)> = stream::iter(runnable)
                .map(|day| async move {
                    (
                        day,
                        self.claim_and_run(job, day, trigger, scheduled_at, sel.force)
                            .await,
                    )
                })
                .buffer_unordered(self.concurrency())
                .collect()
                .await;
            let mut outcomes = outcomes;
            outcomes.sort_by_key(|o| o.0);
            for (day, outcome) in outcomes {
                match outcome {
                    Some(o) => report.runs.push(o),
                    None => report.skipped.push(Claimed {
                        job: job.name.to_string(),
                        day,
                    }),
                }
            }
        }
        for w in &report.waiting {
            tracing::info!(job = %w.job, day = %w.day, upstream = %w.upstream, upstream_day = %w.upstream_day, "waiting for upstream");
        }
        Ok(report)
    }

    /// Days of `job` whose output cannot be trusted: out of date and either never computed or
    /// last attempted without success. (A partition that succeeded before and has new input
    /// since is merely behind; downstream keeps using it rather than stall under a steady
    /// stream of events.)
    pub async fn unsettled(&self, job: &str) -> Result<Vec<NaiveDate>> {
        let job = self.job(job)?;
        let sql = format!(
            "SELECT s.day FROM ({}) s
             LEFT JOIN job_partitions p ON p.job = $1 AND p.day = s.day
             WHERE p.input_signature IS DISTINCT FROM s.signature
               AND (p.day IS NULL
                    OR (SELECT r.status FROM job_runs r WHERE r.job = $1 AND r.day = s.day
                        ORDER BY r.started_at DESC LIMIT 1) IS DISTINCT FROM 'succeeded')
             ORDER BY s.day",
            signature_sql(job)
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(job.name)
            .fetch_all(&self.pool)
            .await?)
    }

    /// For each input table written by another job: the days that job has not settled (see
    /// [`Engine::unsettled`]) or left waiting in this invocation.
    async fn unsettled_upstream(
        &self,
        job: &Job,
        waiting: &[Waiting],
    ) -> Result<BTreeMap<&'static str, (String, BTreeSet<NaiveDate>)>> {
        let mut out = BTreeMap::new();
        for up in self.dag.upstream(job.name) {
            let mut days = self.unsettled(up.name).await?;
            days.extend(waiting.iter().filter(|w| w.job == up.name).map(|w| w.day));
            if days.is_empty() {
                continue;
            }
            for input in job.inputs.iter().filter(|i| up.writes(i.table)) {
                out.insert(
                    input.table,
                    (up.name.to_string(), days.iter().copied().collect()),
                );
            }
        }
        Ok(out)
    }

    /// Whether other processes may share the database (a server); the embedded engine serves
    /// one process through a single connection.
    fn shared(&self) -> bool {
        self.pool.options().get_max_connections() > 1
    }

    /// Partitions run at once: each holds one connection for its claim and needs another for
    /// its work, so the pool bounds it too.
    fn concurrency(&self) -> usize {
        let limit = self.settings.concurrency.max(1);
        if self.shared() {
            limit.min((self.pool.options().get_max_connections() as usize / 2).max(1))
        } else {
            limit
        }
    }

    /// Runs one partition unless another worker holds it. On a shared database the claim is a
    /// PostgreSQL advisory lock held by one connection for the whole run (released by the
    /// server if this process dies); once claimed, a partition that is no longer out of date
    /// (another worker just computed it) is left alone unless `force`.
    async fn claim_and_run(
        &self,
        job: &Job,
        day: NaiveDate,
        trigger: Trigger,
        scheduled_at: DateTime<Utc>,
        force: bool,
    ) -> Option<RunOutcome> {
        let key = format!("{}/{day}", job.name);
        let mut claim = None;
        if self.shared() {
            let mut conn = match self.pool.acquire().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(job = job.name, %day, error = %e, "cannot claim the partition; leaving it for the next run");
                    return None;
                }
            };
            let got: bool = sqlx::query_scalar(
                "SELECT pg_try_advisory_lock(hashtext('heal-batch'), hashtext($1))",
            )
            .bind(&key)
            .fetch_one(&mut *conn)
            .await
            .unwrap_or(false);
            if !got {
                tracing::info!(job = job.name, %day, "another worker is running this partition");
                return None;
            }
            claim = Some(conn);
            if !force {
                let sel = Selection {
                    from: Some(day),
                    to: Some(day),
                    force: false,
                };
                let still = self.pending(job.name, sel).await.map(|d| d.contains(&day));
                if !matches!(still, Ok(true)) {
                    release(claim, &key).await;
                    return None;
                }
            }
        }
        let outcome = self.run_partition(job, day, trigger, scheduled_at).await;
        release(claim, &key).await;
        Some(outcome)
    }

    /// Runs one partition with retries; records the run and emits its events.
    pub async fn run_partition(
        &self,
        job: &Job,
        day: NaiveDate,
        trigger: Trigger,
        scheduled_at: DateTime<Utc>,
    ) -> RunOutcome {
        let run_id = Uuid::new_v4();
        let started = Utc::now();
        let mut outcome = RunOutcome {
            run_id,
            job: job.name.to_string(),
            day,
            succeeded: false,
            attempts: 0,
            rows_read: 0,
            rows_written: 0,
            error: None,
            delayed_secs: 0.0,
        };
        if let Err(e) = sqlx::query(
            "INSERT INTO job_runs (run_id, job, day, trigger, status, scheduled_at, started_at)
             VALUES ($1, $2, $3, $4, 'running', $5, $6)",
        )
        .bind(run_id)
        .bind(job.name)
        .bind(day)
        .bind(trigger.as_str())
        .bind(scheduled_at)
        .bind(started)
        .execute(&self.pool)
        .await
        {
            outcome.error = Some(format!("cannot record the run: {e}"));
            return outcome;
        }
        self.emit_lineage(job, run_id, day, RunState::Start, None, None)
            .await;
        self.emit_pipeline(PipelineEvent::new(
            job.name,
            day,
            run_id,
            PipelineStatus::Started,
        ))
        .await;

        // An injected delay holds the run back once per partition.
        match self.take_delay(job, day).await {
            Ok(Some(simulated)) => {
                outcome.delayed_secs = simulated.as_secs_f64();
                let real = simulated.mul_f64(self.settings.delay_scale.max(0.0));
                tracing::warn!(job = job.name, %day, delay_secs = outcome.delayed_secs, "injected delay");
                let mut ev = PipelineEvent::new(job.name, day, run_id, PipelineStatus::Delayed);
                ev.delayed_secs = Some(outcome.delayed_secs);
                self.emit_pipeline(ev).await;
                tokio::time::sleep(real).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read injected job faults"),
        }

        let mut backoff = self.settings.retry_backoff;
        let mut counts = RowCounts::default();
        loop {
            outcome.attempts += 1;
            let result = match self.take_failure(job, day).await {
                Ok(Some(message)) => Err(Error::Injected(message)),
                Ok(None) => self.compute(job, day, run_id).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(c) => {
                    counts = c;
                    outcome.succeeded = true;
                    outcome.error = None;
                    break;
                }
                Err(e) => {
                    metrics::counter!("heal_batch_attempt_failures_total", "batch_job" => job.name)
                        .increment(1);
                    outcome.error = Some(e.to_string());
                    if outcome.attempts >= self.settings.max_attempts {
                        tracing::error!(job = job.name, %day, attempts = outcome.attempts, error = %e, "partition failed");
                        break;
                    }
                    tracing::warn!(job = job.name, %day, attempt = outcome.attempts, error = %e, retry_in_ms = backoff.as_millis() as u64, "attempt failed; retrying");
                    let _ = sqlx::query(
                        "UPDATE job_runs SET attempts = $2, error = $3 WHERE run_id = $1",
                    )
                    .bind(run_id)
                    .bind(outcome.attempts as i32)
                    .bind(&outcome.error)
                    .execute(&self.pool)
                    .await;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
        outcome.rows_read = counts.read.iter().map(|r| r.1).sum();
        outcome.rows_written = counts.written.iter().map(|r| r.1).sum();
        let ended = Utc::now();
        let status = if outcome.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        metrics::counter!("heal_batch_runs_total", "batch_job" => job.name, "status" => status)
            .increment(1);
        metrics::histogram!("heal_batch_partition_seconds", "batch_job" => job.name)
            .record((ended - started).num_milliseconds() as f64 / 1000.0);
        if outcome.succeeded {
            metrics::counter!("heal_batch_rows_written_total", "batch_job" => job.name)
                .increment(outcome.rows_written.max(0) as u64);
            metrics::gauge!("heal_batch_last_success_timestamp_seconds", "batch_job" => job.name)
                .set(ended.timestamp() as f64);
        }
        let recorded = sqlx::query(
            "UPDATE job_runs SET status = $2, attempts = $3, ended_at = $4, rows_read = $5,
                    rows_written = $6, error = $7, delayed_secs = $8
             WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(status)
        .bind(outcome.attempts as i32)
        .bind(ended)
        .bind(outcome.succeeded.then_some(outcome.rows_read))
        .bind(outcome.succeeded.then_some(outcome.rows_written))
        .bind(&outcome.error)
        .bind(outcome.delayed_secs)
        .execute(&self.pool)
        .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, %run_id, "cannot record the end of a run");
        }
        let state = if outcome.succeeded {
            RunState::Complete
        } else {
            RunState::Fail
        };
        self.emit_lineage(
            job,
            run_id,
            day,
            state,
            outcome.succeeded.then_some(&counts),
            outcome.error.as_deref(),
        )
        .await;
        let mut ev = PipelineEvent::new(
            job.name,
            day,
            run_id,
            if outcome.succeeded {
                PipelineStatus::Succeeded
            } else {
                PipelineStatus::Failed
            },
        );
        ev.attempt = outcome.attempts;
        ev.error = outcome.error.clone();
        ev.duration_ms = Some((ended - started).num_milliseconds());
        if outcome.succeeded {
            ev.rows_read = Some(outcome.rows_read);
            ev.rows_written = Some(outcome.rows_written);
        }
        if outcome.delayed_secs > 0.0 {
            ev.delayed_secs = Some(outcome.delayed_secs);
        }
        self.emit_pipeline(ev).await;
        outcome
    }

    /// Computes one partition in one transaction: the inputs' versions and rows are read in
    /// one snapshot, the partition of every output is replaced, and the new state recorded.
    async fn compute(&self, job: &Job, day: NaiveDate, run_id: Uuid) -> Result<RowCounts> {
        let (start, end) = bounds(day);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let signature: i64 = sqlx::query_scalar(&format!(
            "SELECT coalesce((SELECT signature FROM ({}) s WHERE day = $1), 0)::int8",
            signature_sql(job)
        ))
        .bind(day)
        .fetch_one(&mut *tx)
        .await?;
        let mut counts = RowCounts::default();
        for input in &job.inputs {
            let n: i64 = sqlx::query_scalar(&rows_read_sql(input))
                .bind(day)
                .bind(start)
                .bind(end)
                .fetch_one(&mut *tx)
                .await?;
            counts.read.push((input.table, n));
        }
        let mut changes = Vec::new();
        for out in &job.outputs {
            sqlx::query(&format!("DELETE FROM {} WHERE day = $1", out.table))
                .bind(day)
                .execute(&mut *tx)
                .await?;
            let written = sqlx::query(out.sql)
                .bind(day)
                .bind(start)
                .bind(end)
                .execute(&mut *tx)
                .await?
                .rows_affected() as i64;
            counts.written.push((out.table, written));
            changes.push((out.table, day, written));
        }
        sqlx::query("DELETE FROM job_exclusions WHERE job = $1 AND day = $2")
            .bind(job.name)
            .bind(day)
            .execute(&mut *tx)
            .await?;
        if let Some(q) = job.exclusions {
            let rows: Vec<(String, i64)> = sqlx::query_as(q)
                .bind(day)
                .bind(start)
                .bind(end)
                .fetch_all(&mut *tx)
                .await?;
            for (reason, n) in rows {
                sqlx::query(
                    "INSERT INTO job_exclusions (job, day, reason, rows) VALUES ($1, $2, $3, $4)",
                )
                .bind(job.name)
                .bind(day)
                .bind(reason)
                .bind(n)
                .execute(&mut *tx)
                .await?;
            }
        }
        heal_store::versions::bump(&mut tx, &changes).await?;
        let read: i64 = counts.read.iter().map(|r| r.1).sum();
        let written: i64 = counts.written.iter().map(|r| r.1).sum();
        sqlx::query(
            "INSERT INTO job_partitions (job, day, input_signature, computed_at, run_id, rows_read, rows_written)
             VALUES ($1, $2, $3, now(), $4, $5, $6)
             ON CONFLICT (job, day) DO UPDATE SET input_signature = EXCLUDED.input_signature,
                 computed_at = EXCLUDED.computed_at, run_id = EXCLUDED.run_id,
                 rows_read = EXCLUDED.rows_read, rows_written = EXCLUDED.rows_written",
        )
        .bind(job.name)
        .bind(day)
        .bind(signature)
        .bind(run_id)
        .bind(read)
        .bind(written)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// Injected faults of `kind` on this job whose window overlaps the day.
    async fn injected(
        &self,
        kind: heal_model::FaultKind,
        job: &Job,
        day: NaiveDate,
    ) -> Result<Vec<(i64, serde_json::Value)>> {
        let (start, end) = bounds(day);
        let found = heal_store::faults::overlapping(&self.pool, kind, job.name, start, end).await?;
        Ok(found.into_iter().map(|f| (f.id, f.params)).collect())
    }

    /// Injected `job_failure` faults on this job whose window overlaps the day: each fails
    /// up to `params.failures` attempts (default: every attempt of one run), then is spent.
    async fn take_failure(&self, job: &Job, day: NaiveDate) -> Result<Option<String>> {
        for (id, params) in self
            .injected(heal_model::FaultKind::JobFailure, job, day)
            .await?
        {
            let allowed =
                param_i64(&params, "failures").unwrap_or(self.settings.max_attempts as i64);
            let spent: Option<i32> = sqlx::query_scalar(
                "INSERT INTO job_fault_state (fault_id, day, failures) VALUES ($1, $2, 1)
                 ON CONFLICT (fault_id, day) DO UPDATE SET failures = job_fault_state.failures + 1
                 WHERE job_fault_state.failures < $3
                 RETURNING failures",
            )
            .bind(id)
            .bind(day)
            .bind(allowed as i32)
            .fetch_optional(&self.pool)
            .await?;
            if spent.is_some_and(|n| i64::from(n) <= allowed) {
                let message = params
                    .get("value")
                    .and_then(|v| v.as_str())
                    .unwrap_or("injected job failure");
                return Ok(Some(format!("injected job_failure: {message}")));
            }
        }
        Ok(None)
    }

    /// An injected `job_delay` on this job and day not yet applied: its simulated delay.
    async fn take_delay(&self, job: &Job, day: NaiveDate) -> Result<Option<Duration>> {
        for (id, params) in self
            .injected(heal_model::FaultKind::JobDelay, job, day)
            .await?
        {
            let applied: Option<bool> = sqlx::query_scalar(
                "INSERT INTO job_fault_state (fault_id, day, delayed) VALUES ($1, $2, true)
                 ON CONFLICT (fault_id, day) DO UPDATE SET delayed = true
                 WHERE NOT job_fault_state.delayed
                 RETURNING delayed",
            )
            .bind(id)
            .bind(day)
            .fetch_optional(&self.pool)
            .await?;
            if applied.is_some() {
                let text = params
                    .get("delay")
                    .and_then(|v| v.as_str())
                    .unwrap_or("PT1H");
                let delay = heal_model::duration::parse_iso_duration(text)
                    .ok()
                    .and_then(|d| d.to_std().ok())
                    .unwrap_or(Duration::from_secs(3600));
                return Ok(Some(delay));
            }
        }
        Ok(None)
    }

    async fn emit_lineage(
        &self,
        job: &Job,
        run_id: Uuid,
        day: NaiveDate,
        state: RunState,
        rows: Option<&RowCounts>,
        error: Option<&str>,
    ) {
        let at = Utc::now();
        let event = events::run_event(
            &self.settings.namespace,
            job,
            run_id,
            day,
            state,
            at,
            rows,
            error,
        );
        self.record_lineage(job.name, &event).await;
    }

    /// Declares every job to lineage with a static OpenLineage job event (stored once: a
    /// restart that declares the same jobs again adds nothing).
    pub async fn announce(&self) {
        let at = heal_model::openlineage::declaration_time(Utc::now());
        for job in self.dag.ordered() {
            let event = events::job_event(&self.settings.namespace, job, at);
            self.record_lineage(job.name, &event).await;
        }
    }

    async fn record_lineage(&self, key: &str, event: &serde_json::Value) {
        if let Err(e) = heal_store::lineage_log::record(&self.pool, "batch", event).await {
            tracing::warn!(error = %e, "cannot store a lineage event");
        }
        self.publish(topics::LINEAGE_EVENTS, key, event).await;
    }

    async fn emit_pipeline(&self, event: PipelineEvent) {
        match serde_json::to_value(&event) {
            Ok(v) => self.publish(topics::PIPELINE_EVENTS, &event.job, &v).await,
            Err(e) => tracing::warn!(error = %e, "cannot encode a pipeline event"),
        }
    }

    async fn publish(&self, topic: &str, key: &str, value: &serde_json::Value) {
        let Some(bus) = &self.bus else {
            return;
        };
        let record = Record {
            key: key.as_bytes().to_vec(),
            payload: value.to_string().into_bytes(),
            timestamp_ms: Utc::now().timestamp_millis(),
        };
        if let Err(e) = bus.send_evicting(topic, vec![record]).await {
            tracing::warn!(error = %e, topic, "cannot publish an event");
        }
    }
}

async fn release(claim: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>, key: &str) {
    if let Some(mut conn) = claim {
        let released =
            sqlx::query("SELECT pg_advisory_unlock(hashtext('heal-batch'), hashtext($1))")
                .bind(key)
                .execute(&mut *conn)
                .await;
        if released.is_err() {
            // The lock dies with the session: close the connection rather than return it.
            let _ = conn.detach();
        }
    }
}

fn param_i64(params: &serde_json::Value, key: &str) -> Option<i64> {
    match params.get(key)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The first upstream partition `day` of `job` still waits for, if any.
fn blocker(
    job: &Job,
    day: NaiveDate,
    unsettled: &BTreeMap<&'static str, (String, BTreeSet<NaiveDate>)>,
) -> Option<(String, NaiveDate)> {
    for input in &job.inputs {
        let Some((upstream, days)) = unsettled.get(input.table) else {
            continue;
        };
        let last = day + chrono::Duration::days(i64::from(input.window_days));
        if let Some(d) = days.range(day..=last).next() {
            return Some((upstream.clone(), *d));
        }
    }
    None
}
