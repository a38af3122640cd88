//! The operational pages: checks and a check's history, jobs with backfill, and the
//! quarantine with replay.

use crate::incidents::{compact, urlencode};
use crate::overview::{job_days, job_grid};
use crate::page::{self, badge, scroll, time};
use crate::svg::{self, short_number, Window};
use crate::{may_change, ok, Answer, Console, Fail, Who};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Form;
use chrono::{DateTime, NaiveDate, Utc};
use maud::html;
use serde_json::json;
use std::sync::Arc;

/// A check's newest result: name, type, dataset, status, window end, failed windows, open
/// conditions.
type CheckRow = (String, String, String, String, DateTime<Utc>, i64, i64);

pub async fn checks(State(c): State<Arc<Console>>, who: Who) -> Answer {
    let rows: Vec<CheckRow> = sqlx::query_as(
        "SELECT r.check_name, r.check_type, r.dataset, r.status, r.window_end,
                (SELECT count(*) FROM quality_results f
                  WHERE f.check_name = r.check_name AND f.status = 'fail'),
                (SELECT count(*) FROM quality_conditions q
                  WHERE q.check_name = r.check_name AND q.state = 'open')
         FROM (SELECT DISTINCT ON (check_name) check_name, check_type, dataset, status, window_end
               FROM quality_results ORDER BY check_name, window_end DESC, id DESC) r
         ORDER BY r.check_name",
    )
    .fetch_all(&c.pool)
    .await?;
    let body = html! {
        @if rows.is_empty() {
            (page::empty("No check has run yet."))
        } @else {
            (scroll("Checks", html! {
                table {
                    thead { tr { th { "Check" } th { "Type" } th { "Dataset" } th { "Newest result" } th { "Window end" } th.num { "Failed windows" } th.num { "Open conditions" } } }
                    tbody {
                        @for (name, kind, dataset, status, end, fails, open) in &rows {
                            tr {
                                td { a href=(format!("/checks/{}", urlencode(name))) { (name) } }
                                td { (kind) } td { (dataset) } td { (badge(status)) } td { (time(end)) }
                                td.num { (fails) } td.num { (open) }
                            }
                        }
                    }
                }
            }))
        }
    };
    ok(page::frame("Checks", "/checks", &who.0, None, body))
}

#[derive(serde::Deserialize, Default)]
pub struct CheckQuery {
    subject: Option<String>,
}

/// Most windows drawn.
const HISTORY: i64 = 500;

pub async fn check(
    State(c): State<Arc<Console>>,
    who: Who,
    Path(name): Path<String>,
    Query(q): Query<CheckQuery>,
) -> Answer {
    let subjects: Vec<(String, i64)> = sqlx::query_as(
        "SELECT subject, count(*) FROM quality_results WHERE check_name = $1
         GROUP BY subject ORDER BY count(*) DESC, subject LIMIT 50",
    )
    .bind(&name)
    .fetch_all(&c.pool)
    .await?;
    if subjects.is_empty() {
        return Err(Fail::NotFound(format!("no results of a check {name:?}")));
    }
    let subject = q
        .subject
        .filter(|s| subjects.iter().any(|(x, _)| x == s))
        .unwrap_or_else(|| subjects[0].0.clone());
    type Row = (
        DateTime<Utc>,
        DateTime<Utc>,
        String,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        String,
    );
    let mut rows: Vec<Row> = sqlx::query_as(
        "SELECT window_start, window_end, status, metric, expected, lower_bound, upper_bound, message
         FROM quality_results WHERE check_name = $1 AND subject = $2
         ORDER BY window_end DESC LIMIT $3",
    )
    .bind(&name)
    .bind(&subject)
    .bind(HISTORY)
    .fetch_all(&c.pool)
    .await?;
    rows.reverse();
    let windows: Vec<Window> = rows
        .iter()
        .map(|(_, end, status, metric, _, lo, hi, _)| Window {
            label: end.format("%m-%d %H:%M").to_string(),
            metric: *metric,
            band: lo.zip(*hi),
            flagged: status == "fail",
        })
        .collect();
    let flagged: Vec<&Row> = rows.iter().filter(|r| r.2 == "fail").collect();
    let body = html! {
        @if subjects.len() > 1 {
            form.inline method="get" action=(format!("/checks/{}", urlencode(&name))) {
                label for="subj" { "Subject" }
                select #subj name="subject" {
                    @for (s, n) in &subjects { option value=(s) selected[*s == subject] { (s) " (" (n) ")" } }
                }
                button type="submit" { "Show" }
            }
        }
        p.muted { "Subject " strong { (subject) } "; the newest " (rows.len()) " windows. The band is what the check expected; red dots are flagged windows." }
        (svg::history(&format!("{name} on {subject}: metric per window with its expected band"), &windows))
        h2 { "Flagged windows (" (flagged.len()) ")" }
        @if flagged.is_empty() {
            (page::empty("None in this history."))
        } @else {
            (scroll("Flagged windows", html! {
                table {
                    thead { tr { th { "Window" } th.num { "Metric" } th.num { "Expected" } th { "Band" } th { "Says" } } }
                    tbody {
                        @for (start, _, _, metric, expected, lo, hi, message) in flagged.iter().rev().take(100) {
                            tr {
                                td { (time(start)) }
                                td.num { (metric.map(short_number).unwrap_or_default()) }
                                td.num { (expected.map(short_number).unwrap_or_default()) }
                                td { (lo.map(short_number).unwrap_or_default()) " – " (hi.map(short_number).unwrap_or_default()) }
                                td { (message) }
                            }
                        }
                    }
                }
            }))
        }
    };
    ok(page::frame(
        &format!("Check {name}"),
        "/checks",
        &who.0,
        None,
        body,
    ))
}

pub async fn jobs(State(c): State<Arc<Console>>, who: Who) -> Answer {
    let grid = job_days(&c.pool, 14).await?;
    type Run = (
        String,
        NaiveDate,
        String,
        String,
        i32,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<i64>,
        Option<String>,
    );
    let runs: Vec<Run> = sqlx::query_as(
        "SELECT job, day, trigger, status, attempts, started_at, ended_at, rows_written, error
         FROM job_runs ORDER BY started_at DESC LIMIT 60",
    )
    .fetch_all(&c.pool)
    .await?;
    type JobRow = (String, Option<NaiveDate>, Option<NaiveDate>, i64, i64);
    let jobs: Vec<JobRow> = sqlx::query_as(
        "SELECT job, min(day), max(day), count(*) FILTER (WHERE status = 'failed'), count(*)
         FROM job_runs GROUP BY job ORDER BY job",
    )
    .fetch_all(&c.pool)
    .await?;
    let operator = who.0.operator;
    let body = html! {
        section aria-labelledby="h-grid" {
            h2 #h-grid { "Runs per job and data day" }
            p.muted { "✓ succeeded, ↻ succeeded after retries, ✗ failed, · no run." }
            (job_grid(&grid))
        }
        section aria-labelledby="h-jobs" {
            h2 #h-jobs { "Jobs" }
            (scroll("Jobs", html! {
                table {
                    thead { tr { th { "Job" } th { "Days" } th.num { "Runs" } th.num { "Failed" } @if operator { th { "Backfill" } } } }
                    tbody {
                        @for (job, first, last, failed, total) in &jobs {
                            tr id=(format!("job-{job}")) {
                                td { (job) }
                                td { (first.map(|d| d.to_string()).unwrap_or_default()) " → " (last.map(|d| d.to_string()).unwrap_or_default()) }
                                td.num { (total) } td.num { (failed) }
                                @if operator {
                                    td {
                                        form.inline method="post" action=(format!("/jobs/{}/backfill", urlencode(job))) {
                                            label for=(format!("bf-from-{job}")) { "from" }
                                            input id=(format!("bf-from-{job}")) type="date" name="from" required value=(last.map(|d| d.to_string()).unwrap_or_default());
                                            label for=(format!("bf-to-{job}")) { "to" }
                                            input id=(format!("bf-to-{job}")) type="date" name="to" required value=(last.map(|d| d.to_string()).unwrap_or_default());
                                            button type="submit" { "Backfill" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }))
        }
        section aria-labelledby="h-runs" {
            h2 #h-runs { "Recent runs" }
            (scroll("Recent runs", html! {
                table {
                    thead { tr { th { "Job" } th { "Day" } th { "Trigger" } th { "Status" } th.num { "Attempts" } th { "Started" } th.num { "Rows written" } th { "Error" } } }
                    tbody {
                        @for (job, day, trigger, status, attempts, started, _ended, rows, error) in &runs {
                            tr {
                                td { (job) } td { (day) } td { (trigger) } td { (badge(status)) }
                                td.num { (attempts) } td { (time(started)) }
                                td.num { (rows.map(|r| r.to_string()).unwrap_or_default()) }
                                td { (error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }))
        }
    };
    ok(page::frame("Jobs", "/jobs", &who.0, None, body))
}

#[derive(serde::Deserialize)]
pub struct BackfillForm {
    from: String,
    to: String,
}

/// Most days one backfill may cover.
const BACKFILL_MAX_DAYS: i64 = 400;

/// Forgets the job's stored partitions for the days asked: the batch engine computes them
/// again at its next cycle (the executor's `rerun_job` does the same). Audited.
pub async fn backfill(
    State(c): State<Arc<Console>>,
    who: Who,
    headers: HeaderMap,
    Path(job): Path<String>,
    Form(f): Form<BackfillForm>,
) -> Answer {
    may_change(&who, &headers)?;
    let day = |field: &str, v: &str| {
        NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
            .map_err(|_| Fail::Invalid(field.into(), format!("{v:?} is not a date (YYYY-MM-DD)")))
    };
    let (from, to) = (day("from", &f.from)?, day("to", &f.to)?);
    if to < from {
        return Err(Fail::Invalid("to".into(), format!("{to} is before {from}")));
    }
    if (to - from).num_days() >= BACKFILL_MAX_DAYS {
        return Err(Fail::Invalid(
            "to".into(),
            format!("at most {BACKFILL_MAX_DAYS} days at once"),
        ));
    }
    let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM job_runs WHERE job = $1)")
        .bind(&job)
        .fetch_one(&c.pool)
        .await?;
    if !known {
        return Err(Fail::NotFound(format!("no job {job:?} has run here")));
    }
    let mut tx = c.pool.begin().await?;
    let forgotten =
        sqlx::query("DELETE FROM job_partitions WHERE job = $1 AND day BETWEEN $2 AND $3")
            .bind(&job)
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    sqlx::query(
        "INSERT INTO executor_audit (action_id, incident_id, actor, event, detail)
         VALUES (NULL, NULL, $1, 'console_backfill', $2)",
    )
    .bind(who.actor())
    .bind(json!({ "job": job, "from": from, "to": to, "partitions_forgotten": forgotten }))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(job, %from, %to, forgotten, actor = %who.actor(), "backfill asked from the console");
    let body = html! {
        p.notice.good role="status" {
            "Backfill of " strong { (job) } " from " (from) " to " (to) " asked: "
            (forgotten) " stored partition(s) forgotten; the batch engine computes them again at its next cycle."
        }
        p { a href="/jobs" { "Back to jobs" } }
    };
    ok(page::frame("Backfill asked", "/jobs", &who.0, None, body))
}

pub async fn quarantine(State(c): State<Arc<Console>>, who: Who) -> Answer {
    let counts = heal_ingest::quarantine::summary(&c.pool).await?;
    let mut reasons: Vec<String> = counts.iter().map(|(r, _, _)| r.clone()).collect();
    reasons.dedup();
    let count = |r: &str, s: &str| {
        counts
            .iter()
            .find(|(x, y, _)| x == r && y == s)
            .map_or(0, |(_, _, n)| *n)
    };
    let mut samples = Vec::new();
    for r in &reasons {
        let rows: Vec<(i64, DateTime<Utc>, String, String, String)> = sqlx::query_as(
            "SELECT id, received_at, detail, status,
                    encode(substring(raw from 1 for 300), 'escape')
             FROM quarantine WHERE reason = $1 ORDER BY id DESC LIMIT 3",
        )
        .bind(r)
        .fetch_all(&c.pool)
        .await?;
        samples.push(rows);
    }
    let operator = who.0.operator;
    let body = html! {
        @if reasons.is_empty() {
            (page::empty("Nothing is quarantined."))
        } @else {
            (scroll("Quarantine by reason", html! {
                table {
                    thead { tr { th { "Reason" } th.num { "Open" } th.num { "Replayed" } th.num { "Discarded" } @if operator { th { "Replay" } } } }
                    tbody {
                        @for r in &reasons {
                            tr {
                                td { a href=(format!("#reason-{r}")) { (r) } }
                                td.num { (count(r, "open")) } td.num { (count(r, "replayed")) } td.num { (count(r, "discarded")) }
                                @if operator {
                                    td {
                                        @if count(r, "open") > 0 {
                                            form.inline method="post" action="/quarantine/replay" {
                                                input type="hidden" name="reason" value=(r);
                                                button type="submit" aria-label=(format!("Replay open events quarantined for {r}")) { "Replay open" }
                                            }
                                        } @else { "–" }
                                    }
                                }
                            }
                        }
                    }
                }
            }))
            @for (r, rows) in reasons.iter().zip(&samples) {
                section id=(format!("reason-{r}")) aria-label=(format!("Samples of {r}")) {
                    h2 { (r) }
                    @for (id, at, detail, status, raw) in rows {
                        p { "#" (id) " " (time(at)) " " (badge(status)) " " (detail) }
                        pre { (raw) }
                    }
                }
            }
        }
    };
    ok(page::frame("Quarantine", "/quarantine", &who.0, None, body))
}

#[derive(serde::Deserialize)]
pub struct ReplayForm {
    reason: String,
}

/// Replays the open events quarantined for one reason (those that now decode — after a
/// fix, or with the field mappings a replay action registered — are stored; the others
/// stay with their new error). Audited.
pub async fn replay(
    State(c): State<Arc<Console>>,
    who: Who,
    headers: HeaderMap,
    Form(f): Form<ReplayForm>,
) -> Answer {
    may_change(&who, &headers)?;
    let reason = f.reason.trim().to_string();
    if reason.is_empty() {
        return Err(Fail::Invalid("reason".into(), "name a reason".into()));
    }
    let ingestor = c.ingestor().await?;
    let report = heal_ingest::quarantine::replay(
        ingestor,
        &heal_ingest::quarantine::Filter {
            reason: Some(reason.clone()),
            status: Some("open".into()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| Fail::Internal(format!("replay: {e}")))?;
    let detail = serde_json::to_value(&report).unwrap_or_default();
    sqlx::query(
        "INSERT INTO executor_audit (action_id, incident_id, actor, event, detail)
         VALUES (NULL, NULL, $1, 'console_replay', $2)",
    )
    .bind(who.actor())
    .bind(json!({ "reason": reason, "report": detail }))
    .execute(&c.pool)
    .await?;
    let body = html! {
        p.notice.good role="status" {
            "Replayed " (report.examined) " event(s) quarantined for " strong { (reason) } ": "
            (report.ingested) " stored, " (report.duplicates) " already there, "
            (report.still_failing) " still failing."
        }
        @if !report.failures.is_empty() {
            p { "Still failing, for example: " (compact(&json!(report.failures.iter().take(3).map(|x| &x.detail).collect::<Vec<_>>()), 400)) }
        }
        p { a href="/quarantine" { "Back to the quarantine" } }
    };
    ok(page::frame("Replay", "/quarantine", &who.0, None, body))
}
