//! `volume`: rows per window, held to optional bounds (the seasonal band is applied later, by
//! the runner, on the metric's history).

use super::{per_step, window_sum, Observation, Status, Windows};
use crate::checks::Check;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    min_rows: Option<f64>,
    max_rows: Option<f64>,
) -> Result<Vec<Observation>, sqlx::Error> {
    let counts = per_step(conn, w.src(), "count(*)::float8", w.from, w.to).await?;
    Ok(w.ends()
        .iter()
        .map(|end| {
            judge(
                w.check,
                *end,
                window_sum(&counts, *end, w.check),
                min_rows,
                max_rows,
            )
        })
        .collect())
}

/// The window ending at `end` with `n` rows.
pub(super) fn judge(
    check: &Check,
    end: DateTime<Utc>,
    n: f64,
    min_rows: Option<f64>,
    max_rows: Option<f64>,
) -> Observation {
    let mut o = Observation::window(check, end);
    o.metric = Some(n);
    o.message = format!("{n} rows");
    let mut rules = Vec::new();
    if let Some(lo) = min_rows {
        rules.push(format!("rows ≥ {lo}"));
        if n < lo {
            o.status = Status::Fail;
            o.message = format!("{n} rows, fewer than {lo}");
        }
    }
    if let Some(hi) = max_rows {
        rules.push(format!("rows ≤ {hi}"));
        if n > hi {
            o.status = Status::Fail;
            o.message = format!("{n} rows, more than {hi}");
        }
    }
    o.threshold = rules.join(", ");
    o
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    #[test]
    fn rows_outside_the_bounds_fail_and_name_the_bound() {
        let w = hourly(CheckKind::Volume {
            min_rows: None,
            max_rows: None,
        });
        let o = judge(&w, at(5), 12.0, Some(10.0), Some(20.0));
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.threshold, "rows ≥ 10, rows ≤ 20");
        assert_eq!(o.window_start, at(4));
        let o = judge(&w, at(5), 3.0, Some(10.0), None);
        assert_eq!(
            (o.status, o.message.as_str()),
            (Status::Fail, "3 rows, fewer than 10")
        );
        let o = judge(&w, at(5), 30.0, None, Some(20.0));
        assert_eq!(
            (o.status, o.message.as_str()),
            (Status::Fail, "30 rows, more than 20")
        );
        assert_eq!(judge(&w, at(5), 0.0, None, None).status, Status::Pass);
    }
}
