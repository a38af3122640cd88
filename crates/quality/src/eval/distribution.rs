//! `distribution`: a window's mix of values (categories, or power-of-two bins of a number)
//! against the mix over a baseline before it: the population stability index above chance,
//! or values where the baseline almost never had any.

use super::{bucket_of, ident, Observation, Status, Windows, SAMPLE_ROWS};
use crate::checks::Check;
use crate::stats::{binomial_tail, chi2_quantile};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, HashMap};

/// Categories (or bins) under this share of the baseline count as rare.
const RARE_SHARE: f64 = 0.005;

/// The significance a shift must reach: one-sided p below this.
const SIGNIFICANCE: f64 = 1e-6;

/// A distribution check's parameters.
pub(super) struct Params<'a> {
    pub column: &'a str,
    pub numeric: bool,
    pub baseline: Duration,
    pub max_psi: f64,
    pub min_rows: i64,
}

pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    p: &Params<'_>,
) -> Result<Vec<Observation>, sqlx::Error> {
    let (check, src) = (w.check, w.src());
    let c = ident(p.column);
    let category = if p.numeric {
        // Numbers in power-of-two bins: a ×100 error moves a value ~7 bins.
        format!("CASE WHEN {c} IS NULL THEN 'null' WHEN {c} <= 0 THEN '≤0' ELSE floor(log(2, {c}::numeric))::text END")
    } else {
        format!("coalesce({c}::text, 'null')")
    };
    let sql = format!(
        "SELECT {b} AS b, {category} AS k, count(*)::float8 AS n FROM {t} {t}
         WHERE {range}{filter} GROUP BY 1, 2",
        b = src.bucket,
        t = src.table,
        range = src.range,
        filter = src.filter
    );
    let rows = sqlx::query(&sql)
        .bind(w.from - p.baseline)
        .bind(w.to)
        .fetch_all(&mut *conn)
        .await?;
    let mut steps: BTreeMap<i64, HashMap<String, f64>> = BTreeMap::new();
    for row in rows {
        let b: i64 = row.try_get("b")?;
        let k: String = row.try_get("k")?;
        let n: f64 = row.try_get("n")?;
        steps.entry(b).or_default().insert(k, n);
    }
    let mix = |lo: i64, hi: i64| {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        for (_, cats) in steps.range(lo..hi) {
            for (k, n) in cats {
                *m.entry(k.clone()).or_default() += n;
            }
        }
        m
    };
    Ok(w.ends()
        .iter()
        .map(|end| {
            let hi = bucket_of(*end, check.every);
            let lo = bucket_of(*end - check.window, check.every);
            let base_lo = bucket_of(*end - check.window - p.baseline, check.every);
            judge(check, *end, &mix(lo, hi), &mix(base_lo, lo), p)
        })
        .collect())
}

/// The window ending at `end` with the mix `current`, against the baseline's `reference`.
pub(super) fn judge(
    check: &Check,
    end: DateTime<Utc>,
    current: &BTreeMap<String, f64>,
    reference: &BTreeMap<String, f64>,
    p: &Params<'_>,
) -> Observation {
    let (max_psi, min_rows) = (p.max_psi, p.min_rows);
    let mut o = Observation::window(check, end);
    let n: f64 = current.values().sum();
    let base_n: f64 = reference.values().sum();
    o.threshold = format!(
        "PSI ≤ {max_psi} (and above chance, p < 1e-6) against the previous {}",
        heal_model::duration::format_iso_duration(p.baseline)
    );
    if n < min_rows as f64 || base_n < (min_rows * 4) as f64 {
        o.status = Status::Learning;
        o.message = format!("{n} rows against a baseline of {base_n}: too few to judge");
        o.detail = json!({ "rows": n, "baseline_rows": base_n });
        return o;
    }
    let (value, movers) = psi(current, reference);
    // The PSI chance alone reaches at this sample size (n·PSI is about χ² with
    // k−1 degrees of freedom when nothing changed): below it, a small window's
    // noise, not a shift.
    let categories = movers.len().max(2);
    let n_eff = n * base_n / (n + base_n);
    let chance = chi2_quantile((categories - 1) as f64, SIGNIFICANCE) / n_eff;
    let bar = max_psi.max(chance);
    o.metric = Some(value);
    o.upper = Some(bar);
    o.message = format!("PSI {value:.3} over {n} rows (chance level {chance:.3})");
    o.detail =
        json!({ "rows": n, "baseline_rows": base_n, "chance_psi": chance, "shares": movers });
    // Values in ranges (or categories) the baseline almost never had: a few
    // wild values (amounts ×100) hardly move a PSI over a small window, but a
    // binomial test on them is decisive.
    let rare: Vec<&String> = current
        .keys()
        .filter(|k| reference.get(*k).copied().unwrap_or(0.0) / base_n < RARE_SHARE)
        .collect();
    let in_rare: f64 = rare.iter().map(|k| current[*k]).sum();
    // Add-one smoothing: a baseline that saw a range once or never does not make
    // it impossible.
    let p0 = (rare
        .iter()
        .map(|k| reference.get(*k).copied().unwrap_or(0.0))
        .sum::<f64>()
        + 1.0)
        / base_n;
    let tail = binomial_tail(in_rare as u64, n as u64, p0);
    o.detail["rare"] =
        json!({ "rows": in_rare, "baseline_share": p0, "p_value": tail, "values": rare });
    if in_rare >= 3.0 && tail < SIGNIFICANCE {
        o.status = Status::Fail;
        o.sample = rare
            .iter()
            .map(|k| json!({ "value": k, "rows": current[*k] }))
            .take(SAMPLE_ROWS as usize)
            .collect();
        o.message = format!(
            "{in_rare} of {n} values fall where the baseline had {:.2} % of its rows ({}; p = {tail:.1e})",
            p0 * 100.0,
            rare.iter().take(5).map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
        );
    } else if value > bar {
        o.status = Status::Fail;
        o.sample = movers.into_iter().take(SAMPLE_ROWS as usize).collect();
        if let Some(top) = o.sample.first() {
            o.message = format!(
                "PSI {value:.3} over {n} rows; most moved: {} {:.1} % (was {:.1} %)",
                top["value"].as_str().unwrap_or("?"),
                top["share"].as_f64().unwrap_or(0.0) * 100.0,
                top["baseline_share"].as_f64().unwrap_or(0.0) * 100.0
            );
        }
    }
    o
}

/// The population stability index of `current` against `reference`, and the categories by
/// how much their share moved.
fn psi(current: &BTreeMap<String, f64>, reference: &BTreeMap<String, f64>) -> (f64, Vec<Value>) {
    let n: f64 = current.values().sum();
    let m: f64 = reference.values().sum();
    let keys: std::collections::BTreeSet<&String> =
        current.keys().chain(reference.keys()).collect();
    let k = keys.len() as f64;
    let mut total = 0.0;
    let mut movers = Vec::new();
    for key in keys {
        // Half a count of smoothing keeps categories absent on one side finite.
        let p = (current.get(key).copied().unwrap_or(0.0) + 0.5) / (n + 0.5 * k);
        let q = (reference.get(key).copied().unwrap_or(0.0) + 0.5) / (m + 0.5 * k);
        let term = (p - q) * (p / q).ln();
        total += term;
        movers.push((term, key.clone(), p, q));
    }
    movers.sort_by(|a, b| b.0.total_cmp(&a.0));
    let list = movers
        .into_iter()
        .map(|(term, key, p, q)| json!({ "value": key, "share": p, "baseline_share": q, "psi": term }))
        .collect();
    (total, list)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    fn mix(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn psi_is_zero_for_the_same_mix_and_large_for_a_shift() {
        let base = mix(&[("card", 700.0), ("paypal", 200.0), ("gift_card", 100.0)]);
        let same = mix(&[("card", 70.0), ("paypal", 20.0), ("gift_card", 10.0)]);
        let shifted = mix(&[("card", 20.0), ("paypal", 10.0), ("gift_card", 70.0)]);
        assert!(psi(&same, &base).0 < 0.01);
        let (v, movers) = psi(&shifted, &base);
        assert!(v > 1.0, "{v}");
        assert_eq!(movers[0]["value"], "gift_card");
    }

    fn params() -> Params<'static> {
        Params {
            column: "amount",
            numeric: true,
            baseline: Duration::days(7),
            max_psi: 0.2,
            min_rows: 30,
        }
    }

    #[test]
    fn a_shifted_mix_fails_and_a_same_mix_passes() {
        let check = hourly(CheckKind::Distribution {
            column: "amount".into(),
            numeric: true,
            baseline: Duration::days(7),
            max_psi: 0.2,
            min_rows: 30,
        });
        let base = mix(&[("5", 7000.0), ("6", 2000.0), ("7", 1000.0)]);
        let same = mix(&[("5", 72.0), ("6", 19.0), ("7", 9.0)]);
        let o = judge(&check, at(5), &same, &base, &params());
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        let shifted = mix(&[("5", 20.0), ("6", 10.0), ("7", 70.0)]);
        let o = judge(&check, at(5), &shifted, &base, &params());
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        assert!(o.message.contains("most moved: 7"), "{}", o.message);
        // Five amounts ×100 (seven bins up), where the baseline had none: rare, decisive.
        let wild = mix(&[("5", 70.0), ("6", 19.0), ("7", 9.0), ("12", 5.0)]);
        let o = judge(&check, at(5), &wild, &base, &params());
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        assert!(o.message.starts_with("5 of 103 values"), "{}", o.message);
        // Too few rows to judge.
        let few = mix(&[("5", 10.0)]);
        assert_eq!(
            judge(&check, at(5), &few, &base, &params()).status,
            Status::Learning
        );
    }
}
