//! `relation`: rows of the dataset per row of another stream in each window, against that
//! ratio over a baseline before the window, in units of the baseline's own dispersion.

use super::{per_step, range_sum, Observation, Source, Status, Windows};
use crate::checks::Check;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::PgConnection;
use std::collections::BTreeMap;

/// A relation check's parameters.
pub(super) struct Params<'a> {
    pub of: &'a str,
    pub of_time: &'a str,
    pub of_filter: Option<&'a str>,
    pub baseline: Duration,
    pub min_rows: i64,
    pub sensitivity: f64,
}

pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    p: &Params<'_>,
) -> Result<Vec<Observation>, sqlx::Error> {
    let check = w.check;
    let of_src = Source::new(p.of, p.of_time, false, check.every, p.of_filter);
    let start = w.from - p.baseline;
    let num = per_step(conn, w.src(), "count(*)::float8", start, w.to).await?;
    let den = per_step(conn, &of_src, "count(*)::float8", start, w.to).await?;
    Ok(w.ends()
        .iter()
        .map(|end| {
            let judged = relation(
                &num,
                &den,
                *end,
                check,
                p.baseline,
                p.min_rows as f64,
                p.sensitivity,
            );
            judge(check, *end, p, &judged)
        })
        .collect())
}

/// The observation of a judged window.
fn judge(
    check: &Check,
    end: DateTime<Utc>,
    p: &Params<'_>,
    judged: &RelationWindow,
) -> Observation {
    let (of, sensitivity) = (p.of, p.sensitivity);
    let mut o = Observation::window(check, end);
    o.threshold = format!(
        "{} per {of} within {sensitivity} noise units of the ratio over the {} before",
        check.dataset,
        heal_model::duration::format_iso_duration(p.baseline)
    );
    let (left, right) = (judged.left, judged.right);
    o.detail = json!({ "rows": left, "of_rows": right });
    match &judged.verdict {
        None => {
            o.status = Status::Learning;
            o.message = format!(
                "{left} {} per {right} {of}: too few rows here or in the baseline to judge",
                check.dataset
            );
        }
        Some(v) => {
            o.metric = Some(left / right);
            o.expected = Some(v.ratio);
            o.lower = Some(v.lower);
            o.upper = Some(v.upper);
            o.detail["baseline_ratio"] = json!(v.ratio);
            o.detail["dispersion"] = json!(v.dispersion);
            o.detail["score"] = json!(v.score);
            o.message = format!(
                "{left} {} per {right} {of} (ratio {:.3}; {:.3} over the baseline, band {:.3} … {:.3}, score {:+.1})",
                check.dataset,
                left / right,
                v.ratio,
                v.lower,
                v.upper,
                v.score
            );
            if v.score.abs() > sensitivity {
                o.status = Status::Fail;
                // The failure belongs to the side that moved from its own usual
                // level (sessions missing make orders per session rise).
                if let (Some(l), Some(r)) = (v.left_change, v.right_change) {
                    if r.abs() > l.abs() {
                        o.dataset = of.to_string();
                    }
                    let pct = |x: f64| (x.exp() - 1.0) * 100.0;
                    o.message.push_str(&format!(
                        "; against the same hours of the days before: {} {:+.0} %, {of} {:+.0} %",
                        check.dataset,
                        pct(l),
                        pct(r)
                    ));
                    o.detail["moved"] = json!(o.dataset);
                }
            }
        }
    }
    o
}

/// Rows of the denominator a baseline window needs to measure the dispersion.
const RELATION_DISPERSION_ROWS: f64 = 5.0;

/// A relation check's window: its rows, and the judgement when there is one.
struct RelationWindow {
    left: f64,
    right: f64,
    verdict: Option<RelationVerdict>,
}

struct RelationVerdict {
    /// The ratio over the baseline.
    ratio: f64,
    /// Variance of the numerator over its Poisson variance, measured on the baseline's own
    /// windows (at least 1).
    dispersion: f64,
    score: f64,
    lower: f64,
    upper: f64,
    /// Each side's window against the median of the same hours on the baseline's days, as a
    /// log ratio: which side moved.
    left_change: Option<f64>,
    right_change: Option<f64>,
}

/// Judges the window ending at `end` of a relation check: the numerator against
/// `ratio · denominator`, where `ratio` is the baseline's, in units of
/// `sqrt(dispersion · ratio · denominator)`. The dispersion is the median squared score of the
/// baseline's own windows over that of a Poisson count (0.455); it
/// takes 8 such windows (of at least [`RELATION_DISPERSION_ROWS`]) to judge.
fn relation(
    num: &BTreeMap<i64, f64>,
    den: &BTreeMap<i64, f64>,
    end: DateTime<Utc>,
    check: &Check,
    baseline: Duration,
    min_rows: f64,
    sensitivity: f64,
) -> RelationWindow {
    let sum = |m: &BTreeMap<i64, f64>, from: DateTime<Utc>, to: DateTime<Utc>| {
        range_sum(m, from, to, check.every)
    };
    let start = end - check.window;
    let (left, right) = (sum(num, start, end), sum(den, start, end));
    let mut out = RelationWindow {
        left,
        right,
        verdict: None,
    };
    let (bl, br) = (
        sum(num, start - baseline, start),
        sum(den, start - baseline, start),
    );
    if right < min_rows || br < 10.0 * min_rows || bl <= 0.0 {
        return out;
    }
    let ratio = bl / br;
    // The baseline's own windows, back to back.
    let mut squares: Vec<f64> = Vec::new();
    let mut e = start;
    while e - check.window >= start - baseline {
        let (l, r) = (sum(num, e - check.window, e), sum(den, e - check.window, e));
        // Quiet windows measure the dispersion too (not judged, they have too few rows).
        if r >= RELATION_DISPERSION_ROWS {
            let mean = ratio * r;
            squares.push((l - mean).powi(2) / mean);
        }
        e -= check.window;
    }
    if squares.len() < 8 {
        return out;
    }
    squares.sort_by(f64::total_cmp);
    let median = squares[squares.len() / 2];
    let dispersion = (median / 0.455).max(1.0);
    let mean = ratio * right;
    let spread = (dispersion * mean).sqrt();
    // Each side against the same hours of the earlier days of the baseline: which one moved.
    let change = |m: &BTreeMap<i64, f64>, now: f64| {
        let mut before: Vec<f64> = (1..=baseline.num_days())
            .map(|k| sum(m, start - Duration::days(k), end - Duration::days(k)))
            .filter(|v| *v > 0.0)
            .collect();
        if before.is_empty() {
            return None;
        }
        before.sort_by(f64::total_cmp);
        let usual = before[before.len() / 2];
        Some(((now + 1.0) / (usual + 1.0)).ln())
    };
    out.verdict = Some(RelationVerdict {
        ratio,
        dispersion,
        score: (left - mean) / spread,
        lower: ((mean - sensitivity * spread) / right).max(0.0),
        upper: (mean + sensitivity * spread) / right,
        left_change: change(num, left),
        right_change: change(den, right),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    fn kind() -> CheckKind {
        CheckKind::Relation {
            of: "sessions".into(),
            of_time: "started_at".into(),
            of_filter: None,
            baseline: Duration::days(2),
            min_rows: 20,
            sensitivity: 5.0,
        }
    }

    /// Two days of hourly steps before `at(0)` and the day after: `orders` at 0.1 per session
    /// over 100 sessions an hour, with a little noise, then `ratio_now` per `sessions_now`
    /// from `at(4)` on.
    fn steps(ratio_now: f64, sessions_now: f64) -> (BTreeMap<i64, f64>, BTreeMap<i64, f64>) {
        let (mut num, mut den) = (BTreeMap::new(), BTreeMap::new());
        let first = at(0).timestamp() / 3600 - 48;
        for (i, b) in (first..first + 48 + 24).enumerate() {
            let judged_day = b >= at(4).timestamp() / 3600;
            let sessions = if judged_day { sessions_now } else { 100.0 };
            let ratio = if judged_day { ratio_now } else { 0.1 };
            let noise = [0.0, 2.0, -2.0, 1.0, -1.0][i % 5];
            num.insert(b, (ratio * sessions + noise).max(0.0));
            den.insert(b, sessions);
        }
        (num, den)
    }

    /// Orders per session, with at least 5 sessions a window and a score of 5 to fail.
    fn params() -> Params<'static> {
        Params {
            of: "sessions",
            of_time: "started_at",
            of_filter: None,
            baseline: Duration::days(2),
            min_rows: 5,
            sensitivity: 5.0,
        }
    }

    /// The window ending at `at(5)` judged over `steps`.
    fn judged(steps: (BTreeMap<i64, f64>, BTreeMap<i64, f64>)) -> Observation {
        let (check, p) = (hourly(kind()), params());
        let (num, den) = steps;
        let w = relation(
            &num,
            &den,
            at(5),
            &check,
            p.baseline,
            p.min_rows as f64,
            p.sensitivity,
        );
        judge(&check, at(5), &p, &w)
    }

    #[test]
    fn a_ratio_off_its_baseline_fails_and_names_the_side_that_moved() {
        let o = judged(steps(0.1, 100.0));
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        assert!((o.expected.unwrap() - 0.1).abs() < 0.01);
        // Orders tripled per session while sessions held: the orders side moved.
        let o = judged(steps(0.3, 100.0));
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        assert_eq!(o.dataset, "orders");
        // Sessions fell to a tenth while orders held: the ratio rises, and sessions moved.
        let o = judged(steps(1.0, 10.0));
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        assert_eq!(o.dataset, "sessions");
    }

    #[test]
    fn too_little_baseline_is_learning() {
        let o = judged((
            BTreeMap::new(),
            BTreeMap::from([(at(4).timestamp() / 3600, 50.0)]),
        ));
        assert_eq!(o.status, Status::Learning);
        assert_eq!(o.metric, None);
    }
}
