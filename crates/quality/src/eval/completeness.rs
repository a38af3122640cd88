//! `completeness`: the share of a window's rows with no value in each listed column; the
//! worst column is the metric.

use super::{ident, per_step, sample, window_sum, Observation, Status, Windows};
use crate::checks::Check;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;

pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    columns: &[String],
    max_null_rate: f64,
) -> Result<Vec<Observation>, sqlx::Error> {
    let (check, src) = (w.check, w.src());
    let total = per_step(conn, src, "count(*)::float8", w.from, w.to).await?;
    let mut nulls = Vec::new();
    for c in columns {
        let n = per_step(
            conn,
            src,
            &format!("count(*) FILTER (WHERE {} IS NULL)::float8", ident(c)),
            w.from,
            w.to,
        )
        .await?;
        nulls.push((c.as_str(), n));
    }
    let mut out = Vec::new();
    for end in w.ends() {
        let rows = window_sum(&total, *end, check);
        let per_column: Vec<(&str, f64)> = nulls
            .iter()
            .map(|(c, n)| (*c, window_sum(n, *end, check)))
            .collect();
        let (mut o, failing) = judge(check, *end, rows, &per_column, max_null_rate);
        if let Some(col) = failing {
            let cond = format!("{} IS NULL", ident(col));
            o.sample = sample(conn, src, &cond, o.window_start, o.window_end).await?;
        }
        out.push(o);
    }
    Ok(out)
}

/// The window ending at `end` with `rows` rows and, per column, the rows without a value;
/// with the column whose rows to sample when it fails.
pub(super) fn judge<'c>(
    check: &Check,
    end: DateTime<Utc>,
    rows: f64,
    nulls: &[(&'c str, f64)],
    max_null_rate: f64,
) -> (Observation, Option<&'c str>) {
    let mut o = Observation::window(check, end);
    o.threshold = format!("null rate ≤ {max_null_rate}");
    let mut per_col = serde_json::Map::new();
    let mut worst: Option<(f64, &str)> = None;
    for (c, k) in nulls {
        let rate = if rows > 0.0 { k / rows } else { 0.0 };
        per_col.insert(c.to_string(), json!({ "nulls": k, "rate": rate }));
        if worst.is_none_or(|(w, _)| rate > w) {
            worst = Some((rate, c));
        }
    }
    o.detail = json!({ "rows": rows, "columns": per_col });
    let mut failing = None;
    match worst {
        Some((rate, col)) if rows > 0.0 => {
            o.metric = Some(rate);
            o.message = format!("{:.2} % of {rows} rows have no {col}", rate * 100.0);
            if rate > max_null_rate {
                o.status = Status::Fail;
                failing = Some(col);
            }
        }
        _ => o.message = "no rows".into(),
    }
    (o, failing)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    #[test]
    fn the_worst_column_is_the_metric_and_fails_over_the_rate() {
        let check = hourly(CheckKind::Completeness {
            columns: vec!["email".into(), "country".into()],
            max_null_rate: 0.05,
        });
        let (o, failing) = judge(
            &check,
            at(5),
            200.0,
            &[("email", 2.0), ("country", 30.0)],
            0.05,
        );
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.metric, Some(0.15));
        assert_eq!(failing, Some("country"));
        assert_eq!(o.message, "15.00 % of 200 rows have no country");
        let (o, failing) = judge(
            &check,
            at(5),
            200.0,
            &[("email", 2.0), ("country", 3.0)],
            0.05,
        );
        assert_eq!((o.status, failing), (Status::Pass, None));
        let (o, _) = judge(&check, at(5), 0.0, &[("email", 0.0)], 0.05);
        assert_eq!(
            (o.status, o.metric, o.message.as_str()),
            (Status::Pass, None, "no rows")
        );
    }
}
