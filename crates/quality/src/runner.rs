//! A check cycle: every check (or one) measured, judged against its rule and its metric
//! history, stored, and folded into ongoing conditions whose changes become failure events.
//!
//! Each check runs in its own transaction under an advisory lock, so replicas of the role can
//! run cycles at once without judging a window twice; results, cursor and conditions of a
//! check commit together. The failure events are returned to the caller to publish.

use crate::calendar::Calendar;
use crate::checks::{Anomaly, Check, CheckKind, ChecksFile, Direction, Rule};
use crate::condition::{self, Step};
use crate::detect::{detect_with, Direction as Dir, Settings, SpecialDay, WEEKDAY_WEEKS};
use crate::eval::{self, Observation, Status};
use crate::series::Point;
use chrono::{DateTime, Datelike, Duration, Utc};
use heal_model::quality::{ConditionChange, FailureEvent, Severity, FAILURE_EVENT_SCHEMA};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Why the role could not start or a cycle could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Checks(#[from] crate::checks::ChecksError),
    #[error("{file}: check {check:?}: PostgreSQL refuses its query: {message}")]
    Query {
        file: String,
        check: String,
        message: String,
    },
    #[error("no check is named {0:?}")]
    UnknownCheck(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The quality role's engine.
pub struct Quality {
    pool: PgPool,
    checks: Arc<ChecksFile>,
    /// Tables whose time column is a `date`.
    date_tables: HashSet<(String, String)>,
    tables: HashSet<String>,
}

/// What one check did in a cycle.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub check: String,
    pub check_type: String,
    pub dataset: String,
    pub evaluated: usize,
    pub passed: usize,
    pub failed: usize,
    pub learning: usize,
    pub errored: usize,
    /// Skipped: another replica held the check.
    pub skipped: bool,
    pub error: Option<String>,
    pub wall_ms: u64,
}

impl CheckReport {
    /// Nothing done yet.
    fn new(check: &Check) -> CheckReport {
        CheckReport {
            check: check.name.clone(),
            check_type: check.kind.type_name().to_string(),
            dataset: check.dataset.clone(),
            evaluated: 0,
            passed: 0,
            failed: 0,
            learning: 0,
            errored: 0,
            skipped: false,
            error: None,
            wall_ms: 0,
        }
    }
}

/// What a cycle did.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    /// The data clock: the newest event time ingested.
    pub clock: Option<DateTime<Utc>>,
    pub checks: Vec<CheckReport>,
    pub events: Vec<FailureEvent>,
    pub wall_ms: u64,
}

impl Quality {
    /// Validates `checks` against the database: every query is planned once.
    pub async fn new(pool: PgPool, checks: ChecksFile) -> Result<Quality, Error> {
        let catalog = crate::checks::Catalog::load(&pool).await?;
        let mut date_tables = HashSet::new();
        for (t, cols) in &catalog.tables {
            for (c, ty) in cols {
                if ty == "date" {
                    date_tables.insert((t.clone(), c.clone()));
                }
            }
        }
        let q = Quality {
            pool,
            checks: Arc::new(checks),
            date_tables,
            tables: catalog.tables.keys().cloned().collect(),
        };
        let mut conn = q.pool.acquire().await?;
        for c in &q.checks.checks {
            if let Err(e) = eval::prepare(&mut conn, c, q.is_date(c)).await {
                return Err(Error::Query {
                    file: q.checks.source.clone(),
                    check: c.name.clone(),
                    message: db_message(&e),
                });
            }
        }
        drop(conn);
        Ok(q)
    }

    pub fn checks(&self) -> &ChecksFile {
        &self.checks
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn is_date(&self, c: &Check) -> bool {
        c.time
            .as_ref()
            .is_some_and(|t| self.date_tables.contains(&(c.dataset.clone(), t.clone())))
    }

    /// The newest event time the ingest role has seen.
    pub async fn data_clock(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        sqlx::query_scalar("SELECT max(max_event_time) FROM stream_watermarks")
            .fetch_one(&self.pool)
            .await
    }

    /// The sources events come from, each with its own data clock, oldest clock first:
    /// those whose watermark moved within [`RETENTION`], and the newest in any case.
    pub async fn lanes(&self) -> Result<Vec<Lane>, sqlx::Error> {
        type Row = (
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            DateTime<Utc>,
            DateTime<Utc>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT regexp_replace(stream, '/[^/]*$', ''), max(max_event_time),
                        CASE WHEN bool_and(first_event_time IS NOT NULL)
                             THEN min(first_event_time) END,
                        max(updated_at), now()
                 FROM stream_watermarks GROUP BY 1 ORDER BY 2, 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let count = rows.len();
        Ok(rows
            .into_iter()
            .enumerate()
            .filter(|(i, r)| *i + 1 == count || r.3 > r.4 - RETENTION)
            .map(|(_, (name, clock, first, updated_at, _))| Lane {
                name,
                clock,
                first,
                updated_at,
            })
            .collect())
    }

    /// Runs every check (or only `only`), each in its own transaction.
    pub async fn run_cycle(&self, only: Option<&str>) -> Result<CycleReport, Error> {
        if let Some(name) = only {
            if self.checks.get(name).is_none() {
                return Err(Error::UnknownCheck(name.to_string()));
            }
        }
        self.run_checks(|c| only.is_none_or(|n| n == c.name)).await
    }

    /// Runs the checks `which` selects (in file order) as one cycle.
    pub async fn run_checks(&self, which: impl Fn(&Check) -> bool) -> Result<CycleReport, Error> {
        let started = Instant::now();
        let lanes = self.lanes().await?;
        let mut report = CycleReport {
            clock: lanes.last().map(|l| l.clock),
            checks: Vec::new(),
            events: Vec::new(),
            wall_ms: 0,
        };
        for check in &self.checks.checks {
            if !which(check) {
                continue;
            }
            // One check's storage failing (a connection lost) must not drop what the checks
            // before it committed, nor stop the ones after it.
            match self.run_check(check, &lanes).await {
                Ok((r, events)) => {
                    report.checks.push(r);
                    report.events.extend(events);
                }
                Err(e) => {
                    tracing::warn!(check = %check.name, error = %e, "quality check not recorded");
                    report.checks.push(CheckReport {
                        errored: 1,
                        error: Some(e.to_string()),
                        ..CheckReport::new(check)
                    });
                }
            }
        }
        report.wall_ms = started.elapsed().as_millis() as u64;
        metrics::histogram!("heal_quality_cycle_seconds").record(started.elapsed().as_secs_f64());
        Ok(report)
    }

    /// True for the checks that read the ingest quarantine (schema and not-future checks):
    /// what the ingest role's announcement of a micro-batch with refusals triggers.
    pub fn reads_quarantine(check: &Check) -> bool {
        matches!(
            check.kind,
            CheckKind::Schema { .. }
                | CheckKind::Validity {
                    rule: Rule::NotFuture,
                    ..
                }
        )
    }

    /// Checks a finished run of `job` triggers: the pipeline checks watching it, and the
    /// checks of the table it writes (the platform's jobs are named after their output), so a
    /// recomputed partition is judged at once rather than at the next interval.
    pub fn triggered_by(&self, job: &str) -> Vec<String> {
        self.checks
            .checks
            .iter()
            .filter(|c| match &c.kind {
                CheckKind::Pipeline { .. } => {
                    c.after_jobs.is_empty() || c.after_jobs.iter().any(|j| j == job)
                }
                CheckKind::Reconciliation { left, right, .. } => {
                    left.dataset == job || right.dataset == job
                }
                _ => c.dataset == job,
            })
            .map(|c| c.name.clone())
            .collect()
    }

    async fn run_check(
        &self,
        check: &Check,
        lanes: &[Lane],
    ) -> Result<(CheckReport, Vec<FailureEvent>), Error> {
        let started = Instant::now();
        let mut report = CheckReport::new(check);
        let mut tx = self.pool.begin().await?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('heal.quality.' || $1))")
                .bind(&check.name)
                .fetch_one(&mut *tx)
                .await?;
        if !locked {
            report.skipped = true;
            return Ok((report, vec![]));
        }
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        // The measurement runs under a savepoint: a failing query makes an errored result,
        // and the transaction stays usable to record it.
        sqlx::query("SAVEPOINT measure").execute(&mut *tx).await?;
        let measured = self.measure(&mut tx, check, lanes, now).await;
        let mut events = Vec::new();
        let (groups, cursor) = match measured {
            Ok(v) => {
                // The check's query works again: an open error condition resolves.
                if let Some(e) = resolve_errored(&mut tx, check, now).await? {
                    events.push(e);
                }
                v
            }
            Err(e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT measure")
                    .execute(&mut *tx)
                    .await?;
                let message = db_message(&e);
                tracing::warn!(check = %check.name, error = %message, "quality check errored");
                report.error = Some(message.clone());
                let mut o = errored(check, now, &message);
                o.window_start = now;
                (vec![vec![o]], Progress::None)
            }
        };
        // Each source's windows are judged against their own history.
        let mut obs = Vec::new();
        for mut group in groups {
            if let Some(a) = &check.anomaly {
                let calendar = &self.checks.calendar;
                judge_anomalies(&mut tx, check, a, calendar, &mut group).await?;
            }
            obs.extend(group);
        }
        for o in &obs {
            match o.status {
                Status::Pass => report.passed += 1,
                Status::Fail => report.failed += 1,
                Status::Learning => report.learning += 1,
                Status::Error => report.errored += 1,
            }
            report.evaluated += 1;
            // Job runs each keep their own row (re-reading an overlap must find them).
            let per_run = matches!(check.kind, CheckKind::Pipeline { .. }) && o.subject != "ingest";
            let previous = if check.kind.incremental() && !per_run && quiet(o) {
                // A quiet increment extends the previous quiet result instead of adding a
                // row per cycle; the condition still counts it as a pass.
                if !extend_quiet(&mut tx, check, o).await? {
                    store(&mut tx, check, o).await?;
                }
                None
            } else {
                store(&mut tx, check, o).await?
            };
            if previous == Some(o.status) {
                if o.status == Status::Fail {
                    // Still failing when judged again: passes elsewhere are not in a row.
                    sqlx::query(
                        "UPDATE quality_conditions SET passes = 0
                         WHERE check_name = $1 AND subject = $2 AND state = 'open'",
                    )
                    .bind(&check.name)
                    .bind(&o.subject)
                    .execute(&mut *tx)
                    .await?;
                }
                continue;
            }
            if let Some(e) = fold(&mut tx, check, o, now).await? {
                events.push(e);
            }
        }
        // Retention: results older than RETENTION behind the newest judged window (event
        // time for windowed checks, wall time for incremental ones) go; the anomaly baseline
        // reads 22 days back at most (volume: three weeks for the weekday profile).
        let newest = if check.kind.incremental() {
            Some(now)
        } else {
            lanes.first().map(|l| l.clock)
        };
        if let Some(newest) = newest {
            sqlx::query("DELETE FROM quality_results WHERE check_name = $1 AND window_end < $2")
                .bind(&check.name)
                .bind(newest - RETENTION)
                .execute(&mut *tx)
                .await?;
        }
        if let Progress::Lanes(judged) = &cursor {
            for (lane, until) in judged {
                sqlx::query(
                    "INSERT INTO quality_lanes (check_name, lane, judged_until) VALUES ($1, $2, $3)
                     ON CONFLICT (check_name, lane) DO UPDATE
                     SET judged_until = coalesce($3, quality_lanes.judged_until), updated_at = now()",
                )
                .bind(&check.name)
                .bind(lane)
                .bind(until)
                .execute(&mut *tx)
                .await?;
            }
        }
        if let Progress::Cursor(position, moment) = cursor {
            sqlx::query(
                "INSERT INTO quality_cursors (check_name, position, moment) VALUES ($1, $2, $3)
                 ON CONFLICT (check_name) DO UPDATE SET position = $2, moment = $3, updated_at = now()",
            )
            .bind(&check.name)
            .bind(position)
            .bind(moment)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for (status, n) in [
            ("pass", report.passed),
            ("fail", report.failed),
            ("learning", report.learning),
            ("error", report.errored),
        ] {
            if n > 0 {
                metrics::counter!("heal_quality_results_total", "check_type" => check.kind.type_name(), "status" => status)
                    .increment(n as u64);
            }
        }
        report.wall_ms = started.elapsed().as_millis() as u64;
        Ok((report, events))
    }

    /// Observations of a check, one group per source clock it was judged on, and how far it
    /// got: the cursor of an incremental check, each judged lane's newest window otherwise.
    async fn measure(
        &self,
        conn: &mut PgConnection,
        check: &Check,
        lanes: &[Lane],
        now: DateTime<Utc>,
    ) -> Result<(Vec<Vec<Observation>>, Progress), sqlx::Error> {
        if check.kind.incremental() {
            let cursor: Option<(i64, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT position, moment FROM quality_cursors WHERE check_name = $1",
            )
            .bind(&check.name)
            .fetch_optional(&mut *conn)
            .await?;
            let has = |t: &str| self.tables.contains(t);
            let (obs, (position, moment)) =
                eval::measure_increment(conn, check, cursor.unwrap_or((0, None)), now, &has)
                    .await?;
            return Ok((vec![obs], Progress::Cursor(position, moment)));
        }
        let progress: HashMap<String, (Option<DateTime<Utc>>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT lane, judged_until, updated_at FROM quality_lanes WHERE check_name = $1",
        )
        .bind(&check.name)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(lane, until, at)| (lane, (until, at)))
        .collect();
        let mut groups = Vec::new();
        let mut judged = Vec::new();
        let mut seen = HashSet::new();
        let is_date = self.is_date(check);
        for (i, lane) in lanes.iter().enumerate() {
            let done = progress.get(&lane.name);
            // The newest source is judged every cycle, as the one clock was before; another
            // only when its watermark moved since this check last judged it (late events
            // that move no watermark are judged when it next moves).
            let newest = i + 1 == lanes.len();
            if !newest && done.is_some_and(|(_, at)| lane.updated_at < *at - LANE_MARGIN) {
                continue;
            }
            let last_end = done.and_then(|(until, _)| *until);
            let obs = eval::measure_windows(conn, check, is_date, lane.clock, last_end, lane.first)
                .await?;
            judged.push((lane.name.clone(), obs.iter().map(|o| o.window_end).max()));
            // A window two sources' clocks both reach is judged once.
            let obs: Vec<Observation> = obs
                .into_iter()
                .filter(|o| seen.insert((o.subject.clone(), o.window_start, o.window_end)))
                .collect();
            if !obs.is_empty() {
                groups.push(obs);
            }
        }
        Ok((groups, Progress::Lanes(judged)))
    }
}

/// A source of events (a topic, or HTTP) with its own data clock: the newest event time its
/// streams' watermarks reached, and where its data begins. History posted over HTTP beside a
/// live topic is judged over its own span on its own clock.
#[derive(Debug, Clone)]
pub struct Lane {
    pub name: String,
    pub clock: DateTime<Utc>,
    /// The first event time of the source (unknown for streams older than that record).
    pub first: Option<DateTime<Utc>>,
    /// When its watermark last moved (wall clock).
    pub updated_at: DateTime<Utc>,
}

/// How long before a check last judged a source its watermark may have moved unseen (a write
/// that began before the check read the lanes and committed after).
const LANE_MARGIN: Duration = Duration::minutes(1);

/// What a check's measurement got through.
enum Progress {
    None,
    Cursor(i64, Option<DateTime<Utc>>),
    /// Each judged lane and its newest judged window.
    Lanes(Vec<(String, Option<DateTime<Utc>>)>),
}

fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

/// How long results are kept behind the newest judged window.
pub const RETENTION: Duration = Duration::days(35);

/// The subject of a check's own failure (its query erroring), apart from what it judges.
pub const QUERY_SUBJECT: &str = "(query)";

/// Resolves the open error condition of `check`, if any, now that its query ran.
async fn resolve_errored(
    conn: &mut PgConnection,
    check: &Check,
    now: DateTime<Utc>,
) -> Result<Option<FailureEvent>, sqlx::Error> {
    let row: Option<(i64, serde_json::Value)> = sqlx::query_as(
        "UPDATE quality_conditions SET state = 'resolved', resolved_at = now()
         WHERE check_name = $1 AND subject = $2 AND state = 'open'
         RETURNING id, last_event",
    )
    .bind(&check.name)
    .bind(QUERY_SUBJECT)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, last)) = row else {
        return Ok(None);
    };
    let Ok(mut e) = serde_json::from_value::<FailureEvent>(last) else {
        return Ok(None);
    };
    e.event_id = uuid::Uuid::new_v4().to_string();
    e.emitted_at = now;
    e.change = ConditionChange::Resolved;
    e.message = "the check's query runs again".into();
    save_event(conn, id, &e).await?;
    Ok(Some(e))
}

fn errored(check: &Check, now: DateTime<Utc>, message: &str) -> Observation {
    let mut o = Observation::new(check, now, now);
    o.subject = QUERY_SUBJECT.to_string();
    o.status = Status::Error;
    o.message = format!("the check's query failed: {message}");
    o.detail = json!({ "error": message });
    o
}

/// Judges the windows of `obs` against the check's metric history with the seasonal
/// detector: a flagged window fails; one the detector cannot judge yet is `learning` (unless
/// its rule already failed it). Windows on a declared special day of the check's dataset are
/// judged against earlier days of their kind (see [`detect_with`]).
async fn judge_anomalies(
    conn: &mut PgConnection,
    check: &Check,
    anomaly: &Anomaly,
    calendar: &Calendar,
    obs: &mut [Observation],
) -> Result<(), sqlx::Error> {
    let (sensitivity, direction) = (anomaly.sensitivity, anomaly.direction);
    let kinds = calendar.kinds();
    // A window belongs to the day it starts on.
    let declared = |end: DateTime<Utc>| {
        let day = (end - check.window).date_naive();
        calendar.on(&check.dataset, day)
    };
    let special = |end: DateTime<Utc>| -> SpecialDay {
        let d = declared(end)?;
        let kind = kinds.iter().position(|k| *k == d.kind)?;
        Some((
            kind,
            (end - check.window).date_naive().num_days_from_ce() as i64,
        ))
    };
    let Some(first) = obs
        .iter()
        .filter(|o| o.metric.is_some())
        .map(|o| o.window_end)
        .min()
    else {
        return Ok(());
    };
    let steps_per_day = (Duration::days(1).num_seconds() / check.every.num_seconds()) as usize;
    // Volumes are counts: judged on a log scale, with sustained shifts accumulated and a
    // weekday profile, which reads up to `WEEKDAY_WEEKS` earlier weeks of history.
    let counts = matches!(check.kind, CheckKind::Volume { .. });
    let settings = Settings {
        sensitivity,
        period: (steps_per_day >= 2).then_some(steps_per_day),
        hold: true,
        counts,
        ..Settings::default()
    };
    let cycles = if counts {
        7 * WEEKDAY_WEEKS + 1
    } else {
        settings.window_cycles + 1
    };
    let span = check.every * (steps_per_day * cycles) as i32;
    let history: Vec<(DateTime<Utc>, f64)> = sqlx::query_as(
        "SELECT window_end, metric FROM quality_results
         WHERE check_name = $1 AND window_end < $2 AND window_end >= $3 AND metric IS NOT NULL
           AND status <> 'error' ORDER BY window_end",
    )
    .bind(&check.name)
    .bind(first)
    .bind(first - span)
    .fetch_all(&mut *conn)
    .await?;
    let mut points: Vec<Point> = history
        .into_iter()
        .map(|(at, value)| Point { at, value })
        .collect();
    points.extend(obs.iter().filter_map(|o| {
        o.metric.map(|value| Point {
            at: o.window_end,
            value,
        })
    }));
    if points.len() < 3 {
        for o in obs.iter_mut() {
            if o.status == Status::Pass {
                o.status = Status::Learning;
            }
        }
        return Ok(());
    }
    let d = match detect_with(&points, &settings, &special) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(check = %check.name, error = %e, "anomaly detection skipped");
            for o in obs.iter_mut() {
                if o.status == Status::Pass {
                    o.status = Status::Learning;
                }
            }
            return Ok(());
        }
    };
    let judged: std::collections::HashSet<DateTime<Utc>> = d.judged_at.iter().copied().collect();
    let flags: BTreeMap<DateTime<Utc>, &crate::detect::Flag> =
        d.flags.iter().map(|f| (f.at, f)).collect();
    for o in obs.iter_mut() {
        if o.metric.is_none() {
            continue;
        }
        let judged = judged.contains(&o.window_end);
        match flags.get(&o.window_end) {
            Some(f)
                if matches!(
                    (direction, f.direction),
                    (Direction::Both, _)
                        | (Direction::Drop, Dir::Drop)
                        | (Direction::Spike, Dir::Spike)
                ) =>
            {
                o.expected = Some(f.expected);
                o.lower = Some(f.lower);
                o.upper = Some(f.upper);
                let band = format!(
                    "expected {:.1} (band {:.1} … {:.1})",
                    f.expected, f.lower, f.upper
                );
                if !o.threshold.is_empty() {
                    o.threshold.push_str("; ");
                }
                o.threshold
                    .push_str(&format!("seasonal band, sensitivity {sensitivity}"));
                o.detail["anomaly"] = json!({
                    "score": f.score,
                    "direction": f.direction,
                    "sustained": f.sustained,
                });
                if o.status != Status::Fail {
                    o.status = Status::Fail;
                    o.message = match f.sustained {
                        Some(evidence) => format!(
                            "sustained {} at {:.1}: {} (score {:.1}, accumulated over consecutive windows {:.1})",
                            if evidence > 0.0 { "rise" } else { "fall" },
                            f.value,
                            band,
                            f.score,
                            evidence
                        ),
                        None => format!(
                            "{} {:.1}: {} (score {:.1})",
                            match f.direction {
                                Dir::Spike => "spike to",
                                Dir::Drop => "drop to",
                                Dir::Flat => "stuck at",
                            },
                            f.value,
                            band,
                            f.score
                        ),
                    };
                } else {
                    o.message.push_str(&format!("; {band}"));
                }
            }
            _ if !judged && o.status == Status::Pass => o.status = Status::Learning,
            _ => {}
        }
        if let Some(day) = declared(o.window_end) {
            o.detail["calendar"] = json!({ "name": day.name, "kind": day.kind });
            if !judged && o.status == Status::Learning {
                o.message.push_str(&format!(
                    "; declared {} day {:?}: judged only against earlier {} days, none learned yet",
                    day.kind, day.name, day.kind
                ));
            }
        }
    }
    Ok(())
}

/// A passing increment in which nothing was found.
fn quiet(o: &Observation) -> bool {
    o.status == Status::Pass && o.metric.unwrap_or(0.0) == 0.0
}

/// Moves the end of the newest result of the check and subject to `o`'s end when that result
/// was quiet too; false when there is no such result.
async fn extend_quiet(
    conn: &mut PgConnection,
    check: &Check,
    o: &Observation,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE quality_results SET window_end = $3, message = $4, evaluated_at = now()
         WHERE id = (SELECT id FROM quality_results WHERE check_name = $1 AND subject = $2
                     ORDER BY window_end DESC, id DESC LIMIT 1)
           AND status = 'pass' AND coalesce(metric, 0) = 0 AND window_end <= $3",
    )
    .bind(&check.name)
    .bind(&o.subject)
    .bind(o.window_end)
    .bind(&o.message)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a result; returns the status the same window had before, if it was judged.
async fn store(
    conn: &mut PgConnection,
    check: &Check,
    o: &Observation,
) -> Result<Option<Status>, sqlx::Error> {
    let previous: Option<String> = sqlx::query_scalar(
        "SELECT status FROM quality_results
         WHERE check_name = $1 AND subject = $2 AND window_start = $3 AND window_end = $4",
    )
    .bind(&check.name)
    .bind(&o.subject)
    .bind(o.window_start)
    .bind(o.window_end)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO quality_results (check_name, check_type, dataset, subject, window_start, window_end,
                                      status, severity, metric, expected, lower_bound, upper_bound,
                                      threshold, message, detail, sample)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (check_name, subject, window_start, window_end) DO UPDATE
         SET status = EXCLUDED.status, severity = EXCLUDED.severity, metric = EXCLUDED.metric,
             expected = EXCLUDED.expected, lower_bound = EXCLUDED.lower_bound,
             upper_bound = EXCLUDED.upper_bound, threshold = EXCLUDED.threshold,
             message = EXCLUDED.message, detail = EXCLUDED.detail, sample = EXCLUDED.sample,
             evaluated_at = now()",
    )
    .bind(&check.name)
    .bind(check.kind.type_name())
    .bind(&o.dataset)
    .bind(&o.subject)
    .bind(o.window_start)
    .bind(o.window_end)
    .bind(o.status.as_str())
    .bind((o.status == Status::Fail || o.status == Status::Error).then(|| o.severity.as_str()))
    .bind(o.metric)
    .bind(o.expected)
    .bind(o.lower)
    .bind(o.upper)
    .bind(&o.threshold)
    .bind(&o.message)
    .bind(&o.detail)
    .bind(json!(o.sample))
    .execute(&mut *conn)
    .await?;
    Ok(previous.as_deref().and_then(Status::parse))
}

/// Folds a new result into its check's condition; returns the failure event a change makes.
async fn fold(
    conn: &mut PgConnection,
    check: &Check,
    o: &Observation,
    now: DateTime<Utc>,
) -> Result<Option<FailureEvent>, sqlx::Error> {
    #[allow(clippy::type_complexity)]
    let open: Option<(i64, String, DateTime<Utc>, DateTime<Utc>, i64, i32)> = sqlx::query_as(
        "SELECT id, severity, first_seen, last_seen, occurrences, passes FROM quality_conditions
         WHERE check_name = $1 AND subject = $2 AND state = 'open' FOR UPDATE",
    )
    .bind(&check.name)
    .bind(&o.subject)
    .fetch_optional(&mut *conn)
    .await?;
    let event =
        |id: i64, change, first: DateTime<Utc>, last: DateTime<Utc>, n: i64, sev: Severity| {
            FailureEvent {
                schema: FAILURE_EVENT_SCHEMA.to_string(),
                event_id: uuid::Uuid::new_v4().to_string(),
                emitted_at: now,
                change,
                condition_id: id,
                check: check.name.clone(),
                check_type: check.kind.type_name().to_string(),
                dataset: o.dataset.clone(),
                column: check.column.clone(),
                subject: o.subject.clone(),
                severity: sev,
                observed: o.metric,
                expected: o.expected,
                lower: o.lower,
                upper: o.upper,
                threshold: o.threshold.clone(),
                window_start: o.window_start,
                window_end: o.window_end,
                partition: o.partition,
                run_id: o.run_id.clone(),
                message: o.message.clone(),
                sample: o.sample.clone(),
                first_seen: first,
                last_seen: last,
                occurrences: n,
                // Incremental checks' windows are wall-clock time: without refused events
                // to date them (a resolution, say) their data time is unknown.
                data_start: o
                    .data_span
                    .map(|s| s.0)
                    .or((!check.kind.incremental()).then_some(o.window_start)),
                data_end: o
                    .data_span
                    .map(|s| s.1)
                    .or((!check.kind.incremental()).then_some(o.window_end)),
                detail: o.detail.clone(),
            }
        };
    let open = open.map(|(id, sev, first_seen, last_seen, occurrences, passes)| {
        (
            id,
            condition::Open {
                severity: sev.parse().unwrap_or(Severity::Medium),
                first_seen,
                last_seen,
                occurrences,
                passes: passes.max(0) as u32,
            },
        )
    });
    let judged = condition::Judged {
        status: o.status,
        severity: o.severity,
        window_end: o.window_end,
    };
    match (
        open,
        condition::step(open.as_ref().map(|(_, c)| c), &judged, check.clear_after),
    ) {
        (_, Step::Nothing) => Ok(None),
        (_, Step::Opened) => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO quality_conditions (check_name, subject, dataset, state, severity,
                                                 first_seen, last_seen, last_event)
                 VALUES ($1, $2, $3, 'open', $4, $5, $5, '{}') RETURNING id",
            )
            .bind(&check.name)
            .bind(&o.subject)
            .bind(&o.dataset)
            .bind(o.severity.as_str())
            .bind(o.window_end)
            .fetch_one(&mut *conn)
            .await?;
            let e = event(
                id,
                ConditionChange::Opened,
                o.window_end,
                o.window_end,
                1,
                o.severity,
            );
            save_event(conn, id, &e).await?;
            sqlx::query("UPDATE quality_conditions SET first_event = last_event WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            metrics::counter!("heal_quality_conditions_opened_total", "check_type" => check.kind.type_name()).increment(1);
            Ok(Some(e))
        }
        (
            Some((id, c)),
            Step::Repeated {
                last_seen,
                severity,
                occurrences,
                escalated,
            },
        ) => {
            sqlx::query(
                "UPDATE quality_conditions SET last_seen = $2, occurrences = $3,
                        passes = 0, severity = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(last_seen)
            .bind(occurrences)
            .bind(severity.as_str())
            .execute(&mut *conn)
            .await?;
            if !escalated {
                return Ok(None);
            }
            let e = event(
                id,
                ConditionChange::Escalated,
                c.first_seen,
                last_seen,
                occurrences,
                o.severity,
            );
            save_event(conn, id, &e).await?;
            Ok(Some(e))
        }
        (Some((id, _)), Step::Passed { passes }) => {
            sqlx::query("UPDATE quality_conditions SET passes = $2 WHERE id = $1")
                .bind(id)
                .bind(passes as i32)
                .execute(&mut *conn)
                .await?;
            Ok(None)
        }
        (Some((id, c)), Step::Resolved { passes }) => {
            sqlx::query(
                "UPDATE quality_conditions SET state = 'resolved', resolved_at = now(), passes = $2
                 WHERE id = $1",
            )
            .bind(id)
            .bind(passes as i32)
            .execute(&mut *conn)
            .await?;
            let e = event(
                id,
                ConditionChange::Resolved,
                c.first_seen,
                c.last_seen,
                c.occurrences,
                c.severity,
            );
            save_event(conn, id, &e).await?;
            Ok(Some(e))
        }
        (None, _) => unreachable!("only an open condition repeats, passes or resolves"),
    }
}

async fn save_event(conn: &mut PgConnection, id: i64, e: &FailureEvent) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE quality_conditions SET last_event = $2 WHERE id = $1")
        .bind(id)
        .bind(json!(e))
        .execute(conn)
        .await?;
    Ok(())
}
