//! `reconciliation`: an aggregate of one dataset against another's per window (a batch
//! output against the events it was computed from).

use super::{ident, per_step, window_sum, Observation, Source, Status, Windows};
use crate::checks::{Check, Side};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::PgConnection;
use std::collections::BTreeMap;

pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    left: &Side,
    right: &Side,
    bounds: (f64, f64),
) -> Result<Vec<Observation>, sqlx::Error> {
    let check = w.check;
    let l = side_per_step(conn, left, check.every, w.from, w.to).await?;
    let r = side_per_step(conn, right, check.every, w.from, w.to).await?;
    Ok(w.ends()
        .iter()
        .map(|end| {
            let (lv, rv) = (window_sum(&l, *end, check), window_sum(&r, *end, check));
            judge(check, *end, (left, lv), (right, rv), bounds)
        })
        .collect())
}

async fn side_per_step(
    conn: &mut PgConnection,
    side: &Side,
    step: Duration,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<i64, f64>, sqlx::Error> {
    // `extract(epoch …)` is absolute for a timestamptz and midnight UTC for a date, so days
    // are UTC days whatever the session's time zone.
    let t = ident(&side.time);
    let epoch = format!("extract(epoch FROM {t})");
    let src = Source {
        table: ident(&side.dataset),
        range: format!("{epoch} >= extract(epoch FROM $1::timestamptz) AND {epoch} < extract(epoch FROM $2::timestamptz)"),
        bucket: format!("floor({epoch} / {})::bigint", step.num_seconds()),
        filter: side.filter.as_deref().map(|f| format!(" AND ({f})")).unwrap_or_default(),
    };
    per_step(conn, &src, &format!("({})::float8", side.value), from, to).await
}

/// The window ending at `end`: the left side's value `lv` against the right's `rv`, held to
/// `min_ratio ≤ lv / rv ≤ max_ratio`.
pub(super) fn judge(
    check: &Check,
    end: DateTime<Utc>,
    (left, lv): (&Side, f64),
    (right, rv): (&Side, f64),
    (min_ratio, max_ratio): (f64, f64),
) -> Observation {
    let mut o = Observation::window(check, end);
    o.subject = left.dataset.clone();
    o.dataset = left.dataset.clone();
    o.partition = Some(o.window_start.date_naive());
    o.threshold = format!(
        "{min_ratio} ≤ {}.{} / {}.{} ≤ {max_ratio}",
        left.dataset, left.value, right.dataset, right.value
    );
    o.detail = json!({ "left": lv, "right": rv });
    if lv == 0.0 || rv == 0.0 {
        // One side not computed yet: that is freshness, not a mismatch.
        o.status = Status::Learning;
        o.message = format!(
            "{} = {lv}, {} = {rv}: not both present",
            left.dataset, right.dataset
        );
        return o;
    }
    let ratio = lv / rv;
    o.metric = Some(ratio);
    o.expected = Some(1.0);
    o.lower = Some(min_ratio);
    o.upper = Some(max_ratio);
    o.message = format!(
        "{} {lv} against {} {rv} (ratio {ratio:.4})",
        left.dataset, right.dataset
    );
    if ratio < min_ratio || ratio > max_ratio {
        o.status = Status::Fail;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    #[test]
    fn a_ratio_outside_the_bounds_fails_and_a_missing_side_is_learning() {
        let side = |dataset: &str, value: &str| Side {
            dataset: dataset.into(),
            value: value.into(),
            time: "day".into(),
            filter: None,
        };
        let (left, right) = (
            side("daily_revenue", "sum(revenue)"),
            side("orders", "sum(total)"),
        );
        let check = hourly(CheckKind::Reconciliation {
            left: left.clone(),
            right: right.clone(),
            min_ratio: 0.99,
            max_ratio: 1.01,
        });
        let b = (0.99, 1.01);
        let o = judge(&check, at(5), (&left, 1000.0), (&right, 1005.0), b);
        assert_eq!(
            (o.status, o.dataset.as_str()),
            (Status::Pass, "daily_revenue")
        );
        let o = judge(&check, at(5), (&left, 900.0), (&right, 1000.0), b);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.metric, Some(0.9));
        let o = judge(&check, at(5), (&left, 0.0), (&right, 1000.0), b);
        assert_eq!(o.status, Status::Learning);
    }
}
