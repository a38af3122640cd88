//! Checks on the share of a window's rows that meet a condition: invalid values
//! ([`super::validity`]) and orphan references ([`super::referential`]).

use super::{per_step, sample, window_sum, Observation, Status, Windows};
use crate::checks::Check;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;

/// A check on the share of a window's rows that meet `cond`.
pub(super) struct RateRule {
    /// The aggregate of the rows that count (the denominator).
    pub counted: String,
    pub cond: String,
    pub max_rate: f64,
    pub threshold: String,
    /// Names of the denominator and numerator in the result's detail.
    pub keys: (&'static str, &'static str),
    pub message: Box<dyn Fn(f64, f64) -> String + Send + Sync>,
    /// The message of a window without rows.
    pub empty: &'static str,
}

/// Measures `rule` over every planned window: two aggregate queries, then a sample of the
/// matching rows for each failing window.
pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    rule: &RateRule,
) -> Result<Vec<Observation>, sqlx::Error> {
    let (check, src) = (w.check, w.src());
    let total = per_step(conn, src, &rule.counted, w.from, w.to).await?;
    let matching = per_step(
        conn,
        src,
        &format!("count(*) FILTER (WHERE {})::float8", rule.cond),
        w.from,
        w.to,
    )
    .await?;
    let mut out = Vec::new();
    for end in w.ends() {
        let rows = window_sum(&total, *end, check);
        let k = window_sum(&matching, *end, check);
        let mut o = judge(check, *end, rows, k, rule);
        if o.status == Status::Fail {
            o.sample = sample(conn, src, &rule.cond, o.window_start, o.window_end).await?;
        }
        out.push(o);
    }
    Ok(out)
}

/// The window ending at `end`: `k` of `rows` rows meet the rule's condition.
pub(super) fn judge(
    check: &Check,
    end: DateTime<Utc>,
    rows: f64,
    k: f64,
    rule: &RateRule,
) -> Observation {
    let mut o = Observation::window(check, end);
    o.threshold.clone_from(&rule.threshold);
    o.detail = json!({ rule.keys.0: rows, rule.keys.1: k });
    if rows > 0.0 {
        let rate = k / rows;
        o.metric = Some(rate);
        o.message = (rule.message)(k, rows);
        if rate > rule.max_rate {
            o.status = Status::Fail;
        }
    } else {
        o.message = rule.empty.into();
    }
    o
}
