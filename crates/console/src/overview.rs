//! The overview: open incidents by severity, the KPIs with sparklines over their baseline
//! band, freshness per stream and table, job success per day, the quarantine rate. Refreshes
//! itself every 30 seconds.

use crate::page::{self, badge, scroll, time};
use crate::svg::{short_number, sparkline};
use crate::{ok, Answer, Console, Who};
use axum::extract::State;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use heal_incidents::executor::verify::{self, Kpi};
use heal_incidents::state::State as IncidentState;
use maud::html;
use sqlx::PgPool;
use std::sync::Arc;

/// Days of KPI history drawn.
const KPI_DAYS: i64 = 21;
/// Days of baseline under each KPI point (the executor's verification uses the same median).
const BASELINE_DAYS: usize = 7;
/// The band around the baseline (the executor's default tolerance).
const TOLERANCE: f64 = 0.25;
/// Days of job runs shown.
const JOB_DAYS: i64 = 7;
/// States of an incident that is not over.
pub const OPEN_STATES: [&str; 4] = ["open", "acknowledged", "remediating", "verifying"];
/// Open incidents listed on the overview.
const NEWEST_OPEN: i64 = 8;

pub async fn page(State(c): State<Arc<Console>>, who: Who) -> Answer {
    let pool = &c.pool;
    let by_severity: Vec<(String, i64)> =
        sqlx::query_as("SELECT severity, count(*) FROM incidents WHERE state = ANY($1) GROUP BY 1")
            .bind(&OPEN_STATES[..])
            .fetch_all(pool)
            .await?;
    let count_of = |s: &str| {
        by_severity
            .iter()
            .find(|(k, _)| k == s)
            .map_or(0, |(_, n)| *n)
    };
    // The newest incidents that are not over, whatever the resolved ones after them.
    let mut open = Vec::new();
    for state in IncidentState::ALL
        .into_iter()
        .filter(|s| OPEN_STATES.contains(&s.as_str()))
    {
        let (some, _) = heal_incidents::store::list(
            pool,
            &heal_incidents::store::Filter {
                state: Some(state),
                limit: NEWEST_OPEN,
                ..Default::default()
            },
        )
        .await?;
        open.extend(some);
    }
    open.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    open.truncate(NEWEST_OPEN as usize);
    let kpis = kpi_series(pool, &verify::standard_kpis()).await?;
    let fresh = freshness(pool).await?;
    let jobs = job_days(pool, JOB_DAYS).await?;
    let q = quarantine_rate(pool).await?;
    let body = html! {
        section aria-labelledby="h-incidents" {
            h2 #h-incidents { "Open incidents" }
            div.grid {
                @for s in ["critical", "high", "medium", "low"] {
                    a.card href=(format!("/incidents?severity={s}")) {
                        div.big { (count_of(s)) }
                        div { (badge(s)) }
                    }
                }
            }
            @if open.is_empty() {
                (page::empty("No open incidents."))
            } @else {
                (scroll("Open incidents", html! {
                    table {
                        thead { tr { th { "Incident" } th { "Severity" } th { "State" } th { "Class" } th { "Data time" } } }
                        tbody {
                            @for i in &open {
                                tr {
                                    td { a href=(format!("/incidents/{}", i.id)) { (i.title) } }
                                    td { (badge(&i.severity)) }
                                    td { (badge(&i.state)) }
                                    td { (i.class) }
                                    td { (time(&i.data_start)) }
                                }
                            }
                        }
                    }
                }))
            }
        }
        section aria-labelledby="h-kpis" {
            h2 #h-kpis { "KPIs" }
            p.muted { "Daily values; the band is the median of the 7 days before ±25 % (what verification holds a fix to)." }
            div.grid {
                @for k in &kpis {
                    div.card {
                        h2 { (k.name) }
                        div.big { (k.last.map(short_number).unwrap_or_else(|| "–".into())) }
                        (sparkline(&format!("{} over the last {} days", k.name, KPI_DAYS), &k.values, &k.band, None))
                        @if k.outside { p { (badge("warning")) " outside its band" } }
                    }
                }
            }
        }
        div.two {
            section aria-labelledby="h-fresh" {
                h2 #h-fresh { "Freshness" }
                (scroll("Freshness", html! {
                    table {
                        thead { tr { th { "Stream or table" } th { "Newest data" } th { "Written" } } }
                        tbody {
                            @for f in &fresh {
                                tr { td { (f.name) } td { (time(&f.newest)) } td { (time(&f.written)) } }
                            }
                        }
                    }
                }))
            }
            section aria-labelledby="h-quarantine" {
                h2 #h-quarantine { "Quarantine" }
                div.card {
                    div.big { (format!("{:.2} %", q.rate * 100.0)) }
                    p { (q.quarantined) " of " (q.received) " events refused in all; " (q.open) " still open. "
                        a href="/quarantine" { "See why" } }
                }
            }
        }
        section aria-labelledby="h-jobs" {
            h2 #h-jobs { "Jobs, last " (JOB_DAYS) " data days" }
            (job_grid(&jobs))
        }
    };
    ok(page::frame("Overview", "/", &who.0, Some(30), body))
}

/// A KPI's daily values with its baseline band.
pub struct KpiSeries {
    pub name: String,
    pub days: Vec<NaiveDate>,
    pub values: Vec<Option<f64>>,
    pub band: Vec<Option<(f64, f64)>>,
    pub last: Option<f64>,
    /// The newest complete day lies outside its band.
    pub outside: bool,
}

/// The KPIs over the `KPI_DAYS` data days up to the newest one each table holds.
pub async fn kpi_series(pool: &PgPool, kpis: &[Kpi]) -> sqlx::Result<Vec<KpiSeries>> {
    let mut out = Vec::new();
    for k in kpis {
        let span: (Option<NaiveDate>, Option<NaiveDate>) = match sqlx::query_as(&format!(
            "SELECT min(({d})::date), max(({d})::date) FROM {t}",
            d = k.day_column,
            t = k.table
        ))
        .fetch_one(pool)
        .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(kpi = %k.name, error = %e, "KPI not readable");
                (None, None)
            }
        };
        let (oldest, newest) = span;
        let Some(newest) = newest else {
            out.push(KpiSeries {
                name: k.name.clone(),
                days: vec![],
                values: vec![],
                band: vec![],
                last: None,
                outside: false,
            });
            continue;
        };
        // The window starts where the table does when it holds fewer days.
        let first = (newest - Duration::days(KPI_DAYS - 1)).max(oldest.unwrap_or(newest));
        let rows: Vec<(NaiveDate, Option<f64>)> = sqlx::query_as(&format!(
            "SELECT ({d})::date, ({v})::float8 FROM {t} WHERE ({d})::date BETWEEN $1 AND $2
             GROUP BY 1 ORDER BY 1",
            d = k.day_column,
            v = k.value,
            t = k.table
        ))
        .bind(first - Duration::days(BASELINE_DAYS as i64))
        .bind(newest)
        .fetch_all(pool)
        .await?;
        out.push(series(&k.name, first, newest, &rows));
    }
    Ok(out)
}

/// Values per day from `first` to `last`, each with the band of the median of the
/// [`BASELINE_DAYS`] before it (no band until a few days are known).
pub fn series(
    name: &str,
    first: NaiveDate,
    last: NaiveDate,
    rows: &[(NaiveDate, Option<f64>)],
) -> KpiSeries {
    let value_on = |d: NaiveDate| rows.iter().find(|(x, _)| *x == d).and_then(|(_, v)| *v);
    let mut days = Vec::new();
    let mut d = first;
    while d <= last {
        days.push(d);
        d += Duration::days(1);
    }
    let values: Vec<Option<f64>> = days.iter().map(|&d| value_on(d)).collect();
    let band: Vec<Option<(f64, f64)>> = days
        .iter()
        .map(|&d| {
            let mut before: Vec<f64> = (1..=BASELINE_DAYS as i64)
                .filter_map(|k| value_on(d - Duration::days(k)))
                .collect();
            if before.len() < 3 {
                return None;
            }
            before.sort_by(f64::total_cmp);
            let m = before[before.len() / 2];
            let w = (m * TOLERANCE).abs();
            Some((m - w, m + w))
        })
        .collect();
    // The newest day may still be filling: judge the one before.
    let judged = values.len().checked_sub(2);
    let outside = judged.is_some_and(|i| match (values[i], band[i]) {
        (Some(v), Some((lo, hi))) => v < lo || v > hi,
        _ => false,
    });
    KpiSeries {
        name: name.to_string(),
        last: judged
            .and_then(|i| values[i])
            .or(values.last().copied().flatten()),
        days,
        values,
        band,
        outside,
    }
}

pub struct Fresh {
    pub name: String,
    pub newest: DateTime<Utc>,
    pub written: DateTime<Utc>,
}

/// Newest event time per stream, and per job output the newest day computed and when.
async fn freshness(pool: &PgPool) -> sqlx::Result<Vec<Fresh>> {
    let mut out: Vec<Fresh> = sqlx::query_as::<_, (String, DateTime<Utc>, DateTime<Utc>)>(
        "SELECT split_part(stream, '/', 1), max(max_event_time), max(updated_at)
         FROM stream_watermarks GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(name, newest, written)| Fresh {
        name,
        newest,
        written,
    })
    .collect();
    let jobs: Vec<(String, NaiveDate, DateTime<Utc>)> = sqlx::query_as(
        "SELECT job, max(day), max(ended_at) FROM job_runs WHERE status = 'succeeded'
         GROUP BY job ORDER BY job",
    )
    .fetch_all(pool)
    .await?;
    out.extend(jobs.into_iter().map(|(job, day, at)| Fresh {
        name: format!("{job} (job)"),
        newest: day.and_hms_opt(23, 59, 59).expect("valid").and_utc(),
        written: at,
    }));
    Ok(out)
}

/// The newest run of each job on each of the last `days` data days.
pub struct JobDay {
    pub job: String,
    pub day: NaiveDate,
    pub status: String,
    pub attempts: i32,
    pub failures: i64,
}

pub async fn job_days(pool: &PgPool, days: i64) -> sqlx::Result<Vec<JobDay>> {
    let rows: Vec<(String, NaiveDate, String, i32, i64)> = sqlx::query_as(
        "WITH recent AS (SELECT DISTINCT day FROM job_runs ORDER BY day DESC LIMIT $1)
         SELECT job, day,
                (array_agg(status ORDER BY started_at DESC))[1],
                max(attempts),
                count(*) FILTER (WHERE status = 'failed')
         FROM job_runs WHERE day IN (SELECT day FROM recent)
         GROUP BY job, day ORDER BY job, day",
    )
    .bind(days)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(job, day, status, attempts, failures)| JobDay {
            job,
            day,
            status,
            attempts,
            failures,
        })
        .collect())
}

/// A grid: one row per job, one cell per day (succeeded, failed, retried, not run).
pub fn job_grid(rows: &[JobDay]) -> maud::Markup {
    let mut days: Vec<NaiveDate> = rows.iter().map(|r| r.day).collect();
    days.sort();
    days.dedup();
    let mut jobs: Vec<&str> = rows.iter().map(|r| r.job.as_str()).collect();
    jobs.sort();
    jobs.dedup();
    if jobs.is_empty() {
        return page::empty("No job has run yet.");
    }
    scroll(
        "Job runs per day",
        html! {
            table {
                thead { tr { th { "Job" } @for d in &days { th { (d.format("%m-%d")) } } } }
                tbody {
                    @for j in &jobs {
                        tr {
                            td { a href=(format!("/jobs#job-{j}")) { (j) } }
                            @for d in &days {
                                @let r = rows.iter().find(|r| r.job == *j && r.day == *d);
                                td {
                                    @match r {
                                        Some(r) if r.status == "failed" => span.cell.ko title=(format!("{d}: failed, {} attempt(s)", r.attempts)) { "✗" },
                                        Some(r) if r.failures > 0 || r.attempts > 1 => span.cell.retry title=(format!("{d}: {} after {} attempt(s)", r.status, r.attempts)) { "↻" },
                                        Some(r) => span.cell.ok title=(format!("{d}: {}", r.status)) { "✓" },
                                        None => span.cell.none title=(format!("{d}: no run")) { "·" },
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub struct QuarantineRate {
    pub received: i64,
    pub quarantined: i64,
    pub open: i64,
    pub rate: f64,
}

async fn quarantine_rate(pool: &PgPool) -> sqlx::Result<QuarantineRate> {
    let (stored, quarantined, open): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(next_offset), 0)::int8 FROM consumer_offsets WHERE topic = 'raw-events'),
                (SELECT count(*) FROM quarantine),
                (SELECT count(*) FROM quarantine WHERE status = 'open')",
    )
    .fetch_one(pool)
    .await?;
    // Events that came over HTTP have no offset: count what is stored when that is more.
    let received = stored.max(quarantined);
    Ok(QuarantineRate {
        received,
        quarantined,
        open,
        rate: if received > 0 {
            quarantined as f64 / received as f64
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_follows_the_median_of_the_week_before() {
        let d0 = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let rows: Vec<(NaiveDate, Option<f64>)> = (0..10)
            .map(|i| {
                (
                    d0 + Duration::days(i),
                    Some(if i == 8 { 10.0 } else { 100.0 }),
                )
            })
            .collect();
        let s = series(
            "revenue",
            d0 + Duration::days(3),
            d0 + Duration::days(9),
            &rows,
        );
        assert_eq!(s.values.len(), 7);
        assert_eq!(s.band[0], Some((75.0, 125.0)));
        // Day 8 (the one before the newest) dropped to 10: outside.
        assert!(s.outside);
        assert_eq!(s.last, Some(10.0));
        let first = series("revenue", d0, d0 + Duration::days(1), &rows);
        assert_eq!(
            first.band,
            vec![None, None],
            "too few days before for a band"
        );
    }
}
