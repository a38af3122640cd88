//! Verification after a remediation: the incident's failing checks must have passed again
//! (their conditions resolved by the quality role's re-judging) and the business KPIs on the
//! incident's days must be back within a tolerance of their baseline, the median of the days
//! before the incident. A KPI table's newest day may still be filling, so it is never judged;
//! a KPI with no complete day or no baseline yet does not hold verification back.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;

/// A KPI measured per day: `value` is an aggregate SQL expression over `table`, grouped by
/// `day_column`, an SQL expression giving the day (a `date` column, or e.g.
/// `(placed_at AT TIME ZONE 'UTC')::date`). Both come from the operator's configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpi {
    pub name: String,
    pub table: String,
    pub day_column: String,
    pub value: String,
}

impl Kpi {
    pub fn new(name: &str, table: &str, day_column: &str, value: &str) -> Kpi {
        Kpi {
            name: name.into(),
            table: table.into(),
            day_column: day_column.into(),
            value: value.into(),
        }
    }
}

/// The platform's KPIs: revenue, orders, conversion, payment success and day-1 retention.
pub fn standard_kpis() -> Vec<Kpi> {
    vec![
        Kpi::new("revenue", "daily_revenue", "day", "sum(gross_revenue_usd)"),
        Kpi::new("orders", "daily_revenue", "day", "sum(orders)"),
        Kpi::new("conversion", "user_funnel", "day", "avg(overall_rate)"),
        Kpi::new(
            "payment_success",
            "payment_success",
            "day",
            "sum(succeeded)::float8 / nullif(sum(attempts), 0)",
        ),
        Kpi::new(
            "retention_d1",
            "user_retention",
            "day",
            "sum(active_d1)::float8 / nullif(sum(cohort_size), 0)",
        ),
    ]
}

/// Days of baseline before the incident.
const BASELINE_DAYS: i64 = 7;

/// One KPI on the incident's days against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub kpi: String,
    pub baseline: Option<f64>,
    /// (day, value) on the incident's days.
    pub values: Vec<(NaiveDate, f64)>,
    /// Largest relative distance from the baseline over those days.
    pub worst_deviation: Option<f64>,
    pub within: bool,
}

/// Reads `kpi` for the incident's days and the baseline days before them.
pub async fn read(
    pool: &PgPool,
    kpi: &Kpi,
    days: &[NaiveDate],
    tolerance: f64,
) -> sqlx::Result<Reading> {
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return Ok(Reading {
            kpi: kpi.name.clone(),
            baseline: None,
            values: vec![],
            worst_deviation: None,
            within: true,
        });
    };
    let sql = format!(
        "SELECT ({d})::date AS day, ({v})::float8 AS value FROM {t}
         WHERE ({d})::date BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 1",
        d = kpi.day_column,
        v = kpi.value,
        t = quote(&kpi.table),
    );
    let rows: Vec<(NaiveDate, Option<f64>)> = sqlx::query_as(&sql)
        .bind(first - Duration::days(BASELINE_DAYS))
        .bind(last)
        .fetch_all(pool)
        .await?;
    // The table's newest day may still be filling: it is never judged.
    let newest: Option<NaiveDate> = sqlx::query_scalar(&format!(
        "SELECT max(({d})::date) FROM {t}",
        d = kpi.day_column,
        t = quote(&kpi.table)
    ))
    .fetch_one(pool)
    .await?;
    let rows: Vec<(NaiveDate, Option<f64>)> = rows
        .into_iter()
        .filter(|(d, _)| newest.is_some_and(|n| *d < n))
        .collect();
    let mut before: Vec<f64> = rows
        .iter()
        .filter(|(d, _)| *d < first)
        .filter_map(|(_, v)| *v)
        .collect();
    let values: Vec<(NaiveDate, f64)> = rows
        .iter()
        .filter(|(d, _)| *d >= first)
        .filter_map(|(d, v)| v.map(|v| (*d, v)))
        .collect();
    let baseline = median(&mut before);
    let worst = baseline.and_then(|b| {
        values
            .iter()
            .map(|(_, v)| deviation(*v, b))
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    });
    Ok(Reading {
        kpi: kpi.name.clone(),
        baseline,
        values,
        worst_deviation: worst,
        // No baseline or no value yet: the KPI cannot speak against the fix.
        within: worst.is_none_or(|w| w <= tolerance),
    })
}

/// Relative distance of `v` from `b` (absolute when the baseline is zero).
pub fn deviation(v: f64, b: f64) -> f64 {
    if b.abs() < f64::EPSILON {
        v.abs()
    } else {
        (v - b).abs() / b.abs()
    }
}

fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The KPIs that concern an incident: those read from a dataset it touches.
pub fn concerning<'a>(kpis: &'a [Kpi], datasets: &[String]) -> Vec<&'a Kpi> {
    kpis.iter()
        .filter(|k| datasets.contains(&k.table))
        .collect()
}

/// Reads every KPI; unreadable ones (a table that does not exist here) are reported, not fatal.
pub async fn read_all(
    pool: &PgPool,
    kpis: &[&Kpi],
    days: &[NaiveDate],
    tolerance: f64,
) -> Vec<Result<Reading, String>> {
    let mut out = Vec::new();
    for k in kpis {
        out.push(
            read(pool, k, days, tolerance)
                .await
                .map_err(|e| format!("{}: {e}", k.name)),
        );
    }
    out
}

/// How many of the incident's quality conditions still fail.
pub async fn open_conditions(
    pool: &PgPool,
    ids: &[i64],
    since: DateTime<Utc>,
) -> sqlx::Result<i64> {
    // A condition still open passes when its check, judging the same subject again after the
    // fix, passed: the check re-run on the repaired data (a rerun job, replayed events). The
    // condition itself closes only after several passes in a row, which can take a day of
    // daily runs.
    sqlx::query_scalar(
        "SELECT count(*) FROM quality_conditions c
         WHERE c.id = ANY($1) AND c.state = 'open'
           AND NOT coalesce((SELECT r.status = 'pass' FROM quality_results r
                             WHERE r.check_name = c.check_name AND r.subject = c.subject
                               AND r.evaluated_at >= $2
                             ORDER BY r.window_end DESC, r.id DESC LIMIT 1), false)",
    )
    .bind(ids)
    .bind(since)
    .fetch_one(pool)
    .await
}

/// The readings as JSON for the audit log and the timeline.
pub fn to_json(readings: &[Result<Reading, String>]) -> Value {
    Value::Array(
        readings
            .iter()
            .map(|r| match r {
                Ok(r) => serde_json::to_value(r).unwrap_or(Value::Null),
                Err(e) => json!({ "error": e }),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deviation_is_relative_and_the_median_ignores_one_wild_day() {
        assert!((deviation(110.0, 100.0) - 0.1).abs() < 1e-12);
        assert!((deviation(90.0, 100.0) - 0.1).abs() < 1e-12);
        assert_eq!(deviation(0.5, 0.0), 0.5);
        assert_eq!(median(&mut [1.0, 100.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [1.0, 3.0]), Some(2.0));
        assert_eq!(median(&mut []), None);
        let kpis = standard_kpis();
        let names: Vec<&str> = concerning(&kpis, &["daily_revenue".into()])
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(names, ["revenue", "orders"]);
    }
}
