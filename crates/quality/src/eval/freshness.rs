//! `freshness`: the age of the newest row at each window's end.

use super::{bucket_of, ident, per_step, Observation, Status, Windows};
use crate::checks::Check;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::PgConnection;

pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    max_age: Duration,
) -> Result<Vec<Observation>, sqlx::Error> {
    let (check, src) = (w.check, w.src());
    let time = check.time.as_deref().expect("windowed");
    let cast = if w.is_date { "::timestamp" } else { "" };
    let newest = per_step(
        conn,
        src,
        &format!("max(extract(epoch FROM {}{cast}))::float8", ident(time)),
        w.from,
        w.to,
    )
    .await?;
    // The newest row before the first window.
    let seed_sql = format!(
        "SELECT extract(epoch FROM max({t}){cast})::float8 FROM {table} WHERE {t} < $1{filter}",
        t = ident(time),
        table = src.table,
        filter = src.filter
    );
    let mut so_far: Option<f64> = sqlx::query_scalar(&seed_sql)
        .bind(if w.is_date {
            w.from
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc())
                .unwrap_or(w.from)
        } else {
            w.from
        })
        .fetch_one(&mut *conn)
        .await?;
    let mut steps = newest.iter().peekable();
    let mut out = Vec::new();
    for end in w.ends() {
        let hi = bucket_of(*end, check.every);
        while let Some((b, v)) = steps.peek() {
            if **b >= hi {
                break;
            }
            so_far = Some(so_far.map_or(**v, |s: f64| s.max(**v)));
            steps.next();
        }
        out.push(judge(check, *end, so_far, max_age));
    }
    Ok(out)
}

/// The window ending at `end`, whose newest row so far is at `newest` (epoch seconds).
pub(super) fn judge(
    check: &Check,
    end: DateTime<Utc>,
    newest: Option<f64>,
    max_age: Duration,
) -> Observation {
    let mut o = Observation::window(check, end);
    let limit = max_age.num_seconds() as f64;
    o.threshold = format!("age ≤ {} s", limit);
    match newest {
        Some(newest) => {
            let age = end.timestamp() as f64 - newest;
            o.metric = Some(age);
            o.message = format!("newest row {age:.0} s before the window's end");
            if age > limit {
                o.status = Status::Fail;
                o.message = format!(
                    "no new row for {:.0} min (allowed {:.0} min)",
                    age / 60.0,
                    limit / 60.0
                );
            }
        }
        None => {
            o.status = Status::Fail;
            o.message = "no row at all yet".into();
        }
    }
    o.detail = json!({ "max_age_secs": limit });
    o
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    #[test]
    fn a_row_older_than_the_allowed_age_fails_and_none_at_all_fails() {
        let max_age = Duration::minutes(30);
        let check = hourly(CheckKind::Freshness { max_age });
        let recent = (at(5) - Duration::minutes(10)).timestamp() as f64;
        let o = judge(&check, at(5), Some(recent), max_age);
        assert_eq!((o.status, o.metric), (Status::Pass, Some(600.0)));
        let old = (at(5) - Duration::minutes(90)).timestamp() as f64;
        let o = judge(&check, at(5), Some(old), max_age);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.message, "no new row for 90 min (allowed 30 min)");
        let o = judge(&check, at(5), None, max_age);
        assert_eq!((o.status, o.metric), (Status::Fail, None));
    }
}
