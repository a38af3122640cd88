//! `pipeline`: each batch job run (failed, or started later than allowed) and the share of
//! arriving events the ingest role refused, since the check's last run.

use super::{Observation, Status};
use crate::checks::Check;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;
use sqlx::PgConnection;

/// How far before its cursor a pipeline check reads job runs again (runs whose transaction
/// committed after a cycle with an earlier end time).
const RUN_OVERLAP: Duration = Duration::minutes(10);

/// Arriving events below which the quarantine rate is not judged.
const MIN_ARRIVALS: i64 = 100;

/// A pipeline check's parameters.
pub(super) struct Params<'a> {
    pub jobs: &'a [String],
    pub max_delay: Duration,
    pub max_quarantine_rate: f64,
}

/// One job run as `job_runs` records it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct Run {
    pub run_id: uuid::Uuid,
    pub job: String,
    pub day: NaiveDate,
    pub status: String,
    pub attempts: i32,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub delayed_secs: f64,
    pub error: Option<String>,
}

/// Runs ended since `cursor` (with an overlap), then the ingest side; the new cursor is `now`.
pub(super) async fn measure(
    conn: &mut PgConnection,
    check: &Check,
    p: &Params<'_>,
    cursor: (i64, Option<DateTime<Utc>>),
    now: DateTime<Utc>,
    catalog_has: &(dyn Fn(&str) -> bool + Sync),
) -> Result<super::refused::Increment, sqlx::Error> {
    // Each run is judged on its own window (start to end), so reading an overlap again
    // finds the same result and changes nothing: runs that committed late with an
    // earlier end time are still seen.
    let since = cursor.1.unwrap_or(now - check.history);
    let runs: Vec<Run> = sqlx::query_as(
        "SELECT run_id, job, day, status, attempts, started_at, ended_at, delayed_secs, error
         FROM job_runs WHERE ended_at > $1 AND ended_at <= $2 ORDER BY ended_at",
    )
    .bind(since - RUN_OVERLAP)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: Vec<Observation> = runs
        .iter()
        .filter(|r| p.jobs.is_empty() || p.jobs.contains(&r.job))
        .map(|r| judge_run(check, r, p.max_delay, catalog_has(&r.job)))
        .collect();
    // The ingest side: how much of what arrived was refused.
    #[allow(clippy::type_complexity)]
    let (refused, stored, first, last): (i64, i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM quarantine WHERE received_at > $1 AND received_at <= $2),
                (SELECT count(*) FROM raw_events WHERE ingested_at > $1 AND ingested_at <= $2),
                (SELECT min(produced_at) FROM quarantine WHERE received_at > $1 AND received_at <= $2),
                (SELECT max(produced_at) FROM quarantine WHERE received_at > $1 AND received_at <= $2)",
    )
    .bind(since)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let mut o = judge_arrivals(check, (since, now), refused, stored, p.max_quarantine_rate);
    if let (Some(first), Some(last)) = (first, last) {
        o.data_span = Some((first, last));
    }
    out.push(o);
    Ok((out, (cursor.0, Some(now))))
}

/// One run: it fails when it failed or started more than `max_delay` late. Its dataset is
/// the job's output when the catalogue has it (`known`), else `job_runs`.
pub(super) fn judge_run(check: &Check, r: &Run, max_delay: Duration, known: bool) -> Observation {
    let (job, day, status, attempts) = (&r.job, r.day, &r.status, r.attempts);
    let mut o = Observation::new(check, r.started_at, r.ended_at);
    o.dataset = if known {
        job.clone()
    } else {
        "job_runs".into()
    };
    o.subject = job.clone();
    o.partition = Some(day);
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    o.data_span = Some((midnight, midnight + Duration::days(1)));
    o.run_id = Some(r.run_id.to_string());
    let limit = max_delay.num_seconds() as f64;
    o.threshold = format!("the run succeeds and starts ≤ {limit} s late");
    o.metric = Some(r.delayed_secs);
    o.detail = json!({ "status": status, "attempts": attempts, "delayed_secs": r.delayed_secs });
    o.message = format!("{job} {status} for {day} after {attempts} attempt(s)");
    if status == "failed" {
        o.status = Status::Fail;
        o.message = format!(
            "{job} failed for {day} after {attempts} attempts: {}",
            r.error.as_deref().unwrap_or("no error recorded")
        );
    } else if r.delayed_secs > limit {
        o.status = Status::Fail;
        o.message = format!(
            "{job} started {:.0} min late for {day} (allowed {:.0} min)",
            r.delayed_secs / 60.0,
            limit / 60.0
        );
    }
    if o.status == Status::Fail {
        o.sample = vec![json!({ "run_id": r.run_id, "day": day, "status": status,
            "attempts": attempts, "delayed_secs": r.delayed_secs, "error": r.error })];
    }
    o
}

/// What arrived between `span.0` and `span.1`: `refused` payloads against `stored` events.
pub(super) fn judge_arrivals(
    check: &Check,
    span: (DateTime<Utc>, DateTime<Utc>),
    refused: i64,
    stored: i64,
    max_quarantine_rate: f64,
) -> Observation {
    let mut o = Observation::new(check, span.0, span.1);
    o.subject = "ingest".into();
    o.dataset = "quarantine".into();
    o.threshold = format!("quarantine rate ≤ {max_quarantine_rate}");
    let total = refused + stored;
    o.detail = json!({ "refused": refused, "stored": stored });
    if total >= MIN_ARRIVALS {
        let rate = refused as f64 / total as f64;
        o.metric = Some(rate);
        o.message = format!(
            "{refused} of {total} arriving events refused ({:.2} %)",
            rate * 100.0
        );
        if rate > max_quarantine_rate {
            o.status = Status::Fail;
        }
    } else {
        o.message = format!("{total} events arrived: too few to judge the rate");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    fn check() -> Check {
        hourly(CheckKind::Pipeline {
            jobs: vec![],
            max_delay: Duration::minutes(30),
            max_quarantine_rate: 0.05,
        })
    }

    fn run(status: &str, delayed_secs: f64) -> Run {
        Run {
            run_id: uuid::Uuid::nil(),
            job: "daily_revenue".into(),
            day: at(0).date_naive(),
            status: status.into(),
            attempts: 3,
            started_at: at(1),
            ended_at: at(2),
            delayed_secs,
            error: Some("boom".into()),
        }
    }

    #[test]
    fn failed_or_late_runs_fail_on_the_jobs_output() {
        let d = Duration::minutes(30);
        let o = judge_run(&check(), &run("succeeded", 60.0), d, true);
        assert_eq!(
            (o.status, o.dataset.as_str()),
            (Status::Pass, "daily_revenue")
        );
        let o = judge_run(&check(), &run("failed", 0.0), d, false);
        assert_eq!((o.status, o.dataset.as_str()), (Status::Fail, "job_runs"));
        assert!(
            o.message.ends_with("after 3 attempts: boom"),
            "{}",
            o.message
        );
        let o = judge_run(&check(), &run("succeeded", 3600.0), d, true);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(
            o.message,
            format!(
                "daily_revenue started 60 min late for {} (allowed 30 min)",
                at(0).date_naive()
            )
        );
    }

    #[test]
    fn the_quarantine_rate_is_judged_once_enough_arrived() {
        let span = (at(1), at(2));
        assert_eq!(
            judge_arrivals(&check(), span, 10, 990, 0.05).status,
            Status::Pass
        );
        let o = judge_arrivals(&check(), span, 100, 900, 0.05);
        assert_eq!((o.status, o.metric), (Status::Fail, Some(0.1)));
        let o = judge_arrivals(&check(), span, 50, 0, 0.05);
        assert_eq!((o.status, o.metric), (Status::Pass, None));
    }
}
