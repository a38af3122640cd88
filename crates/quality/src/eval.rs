//! Measuring: each check type's metric over its windows (or over what arrived since its last
//! run), with a bounded sample of the failing rows, and its rule applied. Anomaly judgment on
//! the metric history happens in [`crate::runner`].
//!
//! Windowed metrics are aggregated per step (`every`) in one query per check and summed into
//! windows in Rust, so a first run over two weeks of hourly windows is one scan, not 336.

use crate::checks::{event_kind_of, Check, CheckKind, Rule, Side};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use heal_model::quality::Severity;
use heal_model::EventKind;
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, HashMap};

/// Rows kept as a failing sample.
pub const SAMPLE_ROWS: i64 = 10;

/// What a result says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Error,
    /// Measured, not judged: the anomaly baseline is still warming up.
    Learning,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Learning => "learning",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pass" => Status::Pass,
            "fail" => Status::Fail,
            "error" => Status::Error,
            "learning" => Status::Learning,
            _ => return None,
        })
    }
}

/// One measured window (or increment) of one check and subject.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Observation {
    pub subject: String,
    pub dataset: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub status: Status,
    pub severity: Severity,
    pub metric: Option<f64>,
    pub expected: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The rule (or band) the metric is held to.
    pub threshold: String,
    pub message: String,
    pub detail: Value,
    pub sample: Vec<Value>,
    pub partition: Option<NaiveDate>,
    pub run_id: Option<String>,
    /// The data time the observation concerns, when it is not the window (which is then
    /// wall-clock time: what arrived between two cycles).
    pub data_span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Observation {
    fn new(check: &Check, start: DateTime<Utc>, end: DateTime<Utc>) -> Observation {
        Observation {
            subject: check.dataset.clone(),
            dataset: check.dataset.clone(),
            window_start: start,
            window_end: end,
            status: Status::Pass,
            severity: check.severity,
            metric: None,
            expected: None,
            lower: None,
            upper: None,
            threshold: String::new(),
            message: String::new(),
            detail: json!({}),
            sample: Vec::new(),
            partition: None,
            run_id: None,
            data_span: None,
        }
    }
}

/// `"name"` with quotes doubled: identifiers come from the catalog, quoting keeps odd names
/// working.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How a check reads its dataset's time column.
pub(crate) struct Source {
    table: String,
    /// `t >= $1 AND t < $2` (bind the range as timestamptz).
    range: String,
    /// The step index of a row: floor(epoch / step).
    bucket: String,
    /// `AND (filter)` or empty.
    filter: String,
}

impl Source {
    pub(crate) fn new(
        table: &str,
        time: &str,
        is_date: bool,
        step: Duration,
        filter: Option<&str>,
    ) -> Source {
        let t = ident(time);
        let (range, epoch) = if is_date {
            (
                format!(
                    "{t} >= ($1 AT TIME ZONE 'UTC')::date AND {t} < ($2 AT TIME ZONE 'UTC')::date"
                ),
                format!("extract(epoch FROM {t}::timestamp)"),
            )
        } else {
            (
                format!("{t} >= $1 AND {t} < $2"),
                format!("extract(epoch FROM {t})"),
            )
        };
        Source {
            table: ident(table),
            range,
            bucket: format!("floor({epoch} / {})::bigint", step.num_seconds()),
            filter: filter.map(|f| format!(" AND ({f})")).unwrap_or_default(),
        }
    }
}

/// The window ends a windowed check judges this cycle, and where its data reads start.
pub struct Plan {
    pub ends: Vec<DateTime<Utc>>,
}

fn floor_to(t: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let s = step.num_seconds();
    Utc.timestamp_opt(t.timestamp().div_euclid(s) * s, 0)
        .single()
        .expect("in range")
}

fn ceil_to(t: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let f = floor_to(t, step);
    if f == t {
        f
    } else {
        f + step
    }
}

/// Window ends to judge: from the last judged end minus `lookback` (or `history` back on the
/// first run, never before the first row) up to the clock minus `settle`.
pub fn plan(
    check: &Check,
    clock: DateTime<Utc>,
    last_end: Option<DateTime<Utc>>,
    first_data: Option<DateTime<Utc>>,
) -> Plan {
    let settle = match &check.kind {
        CheckKind::Referential { grace, .. } => check.settle.max(*grace),
        _ => check.settle,
    };
    let last = floor_to(clock - settle, check.every);
    let Some(first_data) = first_data else {
        return Plan { ends: vec![] };
    };
    let mut first = clock - check.history;
    if let Some(prev) = last_end {
        first = first.max(prev - check.lookback);
    }
    // The first window must start at or after the first row.
    first = first.max(ceil_to(first_data, check.every) + check.window);
    let mut ends = Vec::new();
    let mut e = ceil_to(first, check.every);
    while e <= last {
        ends.push(e);
        e += check.every;
    }
    Plan { ends }
}

fn bucket_of(t: DateTime<Utc>, step: Duration) -> i64 {
    t.timestamp().div_euclid(step.num_seconds())
}

/// Sum of per-step values over the window ending at `end`.
fn window_sum(per_step: &BTreeMap<i64, f64>, end: DateTime<Utc>, check: &Check) -> f64 {
    range_sum(per_step, end - check.window, end, check.every)
}

/// Sum of per-step values over the steps from `from` up to `to` (exclusive).
fn range_sum(
    per_step: &BTreeMap<i64, f64>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
) -> f64 {
    total(
        per_step
            .range(bucket_of(from, step)..bucket_of(to, step))
            .map(|(_, v)| v),
    )
}

/// The sum of `values`, 0 (not −0, which an empty float sum is and which reads "-0 rows")
/// when there are none.
fn total<'a>(values: impl Iterator<Item = &'a f64>) -> f64 {
    values.sum::<f64>() + 0.0
}

async fn first_row(
    conn: &mut PgConnection,
    check: &Check,
    time: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let filter = check
        .filter
        .as_deref()
        .map(|f| format!(" WHERE ({f})"))
        .unwrap_or_default();
    let sql = format!(
        "SELECT min({t})::timestamptz FROM {table}{filter}",
        t = ident(time),
        table = ident(&check.dataset)
    );
    sqlx::query_scalar(&sql).fetch_one(conn).await
}

/// Everything a windowed check needs from the database to measure its planned windows.
pub async fn measure_windows(
    conn: &mut PgConnection,
    check: &Check,
    is_date: bool,
    clock: DateTime<Utc>,
    last_end: Option<DateTime<Utc>>,
    lane_first: Option<DateTime<Utc>>,
) -> Result<Vec<Observation>, sqlx::Error> {
    // Windows start at the table's first row, and not before the first event of the source
    // whose clock judges them (`lane_first`): a live source is not judged over the empty
    // stretch between older history and its own start. Day tables count from its day.
    let day = Duration::days(1);
    let not_before = |first: Option<DateTime<Utc>>, by_day: bool| {
        first.map(|f| match lane_first {
            Some(l) => f.max(if by_day { floor_to(l, day) } else { l }),
            None => f,
        })
    };
    let first_data = match (&check.kind, &check.time) {
        (CheckKind::Reconciliation { left, .. }, _) => {
            let c = Check {
                dataset: left.dataset.clone(),
                filter: left.filter.clone(),
                ..check.clone()
            };
            not_before(first_row(conn, &c, &left.time).await?, true)
        }
        (_, Some(time)) => not_before(first_row(conn, check, time).await?, is_date),
        (_, None) => Some(clock - check.history),
    };
    let plan = plan(check, clock, last_end, first_data);
    let (Some(first), Some(last)) = (plan.ends.first(), plan.ends.last()) else {
        return Ok(vec![]);
    };
    let from = *first - check.window;
    let to = *last;
    let src = check.time.as_deref().map(|t| {
        Source::new(
            &check.dataset,
            t,
            is_date,
            check.every,
            check.filter.as_deref(),
        )
    });
    let mut out = Vec::new();
    match &check.kind {
        CheckKind::Volume { min_rows, max_rows } => {
            let src = src.expect("windowed");
            let counts = per_step(conn, &src, "count(*)::float8", from, to).await?;
            for end in &plan.ends {
                let mut o = Observation::new(check, *end - check.window, *end);
                let n = window_sum(&counts, *end, check);
                o.metric = Some(n);
                o.message = format!("{n} rows");
                let mut rules = Vec::new();
                if let Some(lo) = min_rows {
                    rules.push(format!("rows ≥ {lo}"));
                    if n < *lo {
                        o.status = Status::Fail;
                        o.message = format!("{n} rows, fewer than {lo}");
                    }
                }
                if let Some(hi) = max_rows {
                    rules.push(format!("rows ≤ {hi}"));
                    if n > *hi {
                        o.status = Status::Fail;
                        o.message = format!("{n} rows, more than {hi}");
                    }
                }
                o.threshold = rules.join(", ");
                out.push(o);
            }
        }
        CheckKind::Relation {
            of,
            of_time,
            of_filter,
            baseline,
            min_rows,
            sensitivity,
        } => {
            let src = src.expect("windowed");
            let of_src = Source::new(of, of_time, false, check.every, of_filter.as_deref());
            let start = from - *baseline;
            let num = per_step(conn, &src, "count(*)::float8", start, to).await?;
            let den = per_step(conn, &of_src, "count(*)::float8", start, to).await?;
            for end in &plan.ends {
                let mut o = Observation::new(check, *end - check.window, *end);
                let judged = relation(
                    &num,
                    &den,
                    *end,
                    check,
                    *baseline,
                    *min_rows as f64,
                    *sensitivity,
                );
                o.threshold = format!(
                    "{} per {of} within {sensitivity} noise units of the ratio over the {} before",
                    check.dataset,
                    heal_model::duration::format_iso_duration(*baseline)
                );
                let (left, right) = (judged.left, judged.right);
                o.detail = json!({ "rows": left, "of_rows": right });
                match judged.verdict {
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
                        if v.score.abs() > *sensitivity {
                            o.status = Status::Fail;
                            // The failure belongs to the side that moved from its own usual
                            // level (sessions missing make orders per session rise).
                            if let (Some(l), Some(r)) = (v.left_change, v.right_change) {
                                if r.abs() > l.abs() {
                                    o.dataset = of.clone();
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
                out.push(o);
            }
        }
        CheckKind::Freshness { max_age } => {
            let src = src.expect("windowed");
            let time = check.time.as_deref().expect("windowed");
            let newest = per_step(
                conn,
                &src,
                &format!(
                    "max(extract(epoch FROM {}{}))::float8",
                    ident(time),
                    if is_date { "::timestamp" } else { "" }
                ),
                from,
                to,
            )
            .await?;
            let seed_sql = format!(
                "SELECT extract(epoch FROM max({t}){cast})::float8 FROM {table} WHERE {t} < $1{filter}",
                t = ident(time),
                cast = if is_date { "::timestamp" } else { "" },
                table = src.table,
                filter = src.filter
            );
            let mut so_far: Option<f64> = sqlx::query_scalar(&seed_sql)
                .bind(if is_date {
                    from.date_naive()
                        .and_hms_opt(0, 0, 0)
                        .map(|d| d.and_utc())
                        .unwrap_or(from)
                } else {
                    from
                })
                .fetch_one(&mut *conn)
                .await?;
            let mut steps = newest.iter().peekable();
            for end in &plan.ends {
                let hi = bucket_of(*end, check.every);
                while let Some((b, v)) = steps.peek() {
                    if **b >= hi {
                        break;
                    }
                    so_far = Some(so_far.map_or(**v, |s: f64| s.max(**v)));
                    steps.next();
                }
                let mut o = Observation::new(check, *end - check.window, *end);
                let limit = max_age.num_seconds() as f64;
                o.threshold = format!("age ≤ {} s", limit);
                match so_far {
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
                out.push(o);
            }
        }
        CheckKind::Completeness {
            columns,
            max_null_rate,
        } => {
            let src = src.expect("windowed");
            let total = per_step(conn, &src, "count(*)::float8", from, to).await?;
            let mut nulls = Vec::new();
            for c in columns {
                let n = per_step(
                    conn,
                    &src,
                    &format!("count(*) FILTER (WHERE {} IS NULL)::float8", ident(c)),
                    from,
                    to,
                )
                .await?;
                nulls.push((c, n));
            }
            for end in &plan.ends {
                let mut o = Observation::new(check, *end - check.window, *end);
                let rows = window_sum(&total, *end, check);
                o.threshold = format!("null rate ≤ {max_null_rate}");
                let mut per_col = serde_json::Map::new();
                let mut worst: Option<(f64, &String)> = None;
                for (c, n) in &nulls {
                    let k = window_sum(n, *end, check);
                    let rate = if rows > 0.0 { k / rows } else { 0.0 };
                    per_col.insert((*c).clone(), json!({ "nulls": k, "rate": rate }));
                    if worst.is_none_or(|(w, _)| rate > w) {
                        worst = Some((rate, c));
                    }
                }
                o.detail = json!({ "rows": rows, "columns": per_col });
                if rows > 0.0 {
                    let (rate, col) = worst.expect("columns");
                    o.metric = Some(rate);
                    o.message = format!("{:.2} % of {rows} rows have no {col}", rate * 100.0);
                    if rate > *max_null_rate {
                        o.status = Status::Fail;
                        o.sample = sample(
                            conn,
                            &src,
                            &format!("{} IS NULL", ident(col)),
                            o.window_start,
                            o.window_end,
                        )
                        .await?;
                    }
                } else {
                    o.message = "no rows".into();
                }
                out.push(o);
            }
        }
        CheckKind::Uniqueness {
            key,
            max_duplicate_rate,
        } => {
            let src = src.expect("windowed");
            let key_expr = format!(
                "({})",
                key.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
            );
            // Rows with a null key part are incomplete, not duplicates.
            let complete = key
                .iter()
                .map(|k| format!("{} IS NOT NULL", ident(k)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let total = per_step(conn, &src, "count(*)::float8", from, to).await?;
            // The event id is an event table's primary key: only redeliveries can repeat it,
            // and counting its distinct values would scan the table for nothing.
            let by_event_id =
                key.len() == 1 && key[0] == "event_id" && event_kind_of(&check.dataset).is_some();
            let dups = if by_event_id {
                BTreeMap::new()
            } else {
                per_step(
                    conn,
                    &src,
                    &format!(
                        "(count(*) FILTER (WHERE {complete}) - count(DISTINCT {key_expr}) FILTER (WHERE {complete}))::float8"
                    ),
                    from,
                    to,
                )
                .await?
            };
            // Events the ingest role received more than once (kept once) count too.
            let redelivered = match event_kind_of(&check.dataset) {
                Some(kind) => {
                    let raw = Source::new(
                        "raw_events",
                        "occurred_at",
                        false,
                        check.every,
                        Some(&format!("event_type = '{}'", kind.wire_name())),
                    );
                    per_step(conn, &raw, "sum(duplicate_count)::float8", from, to).await?
                }
                None => BTreeMap::new(),
            };
            for end in &plan.ends {
                let mut o = Observation::new(check, *end - check.window, *end);
                let rows = window_sum(&total, *end, check);
                let d = window_sum(&dups, *end, check);
                let r = window_sum(&redelivered, *end, check);
                o.threshold = format!("duplicate rate ≤ {max_duplicate_rate}");
                o.detail = json!({ "rows": rows, "duplicate_keys": d, "redelivered_events": r });
                if rows > 0.0 {
                    let rate = (d + r) / rows;
                    o.metric = Some(rate);
                    o.message = format!(
                        "{d} duplicate keys and {r} redelivered events in {rows} rows ({:.2} %)",
                        rate * 100.0
                    );
                    if rate > *max_duplicate_rate {
                        o.status = Status::Fail;
                        o.sample = duplicate_sample(
                            conn,
                            check,
                            &src,
                            &key_expr,
                            o.window_start,
                            o.window_end,
                        )
                        .await?;
                    }
                } else {
                    o.message = "no rows".into();
                }
                out.push(o);
            }
        }
        CheckKind::Validity {
            column,
            rule,
            max_invalid_rate,
        } => {
            let src = src.expect("windowed");
            let c = ident(column);
            let (invalid, described) = match rule {
                Rule::Range { min, max } => {
                    let mut parts = Vec::new();
                    let mut text = Vec::new();
                    if let Some(lo) = min {
                        parts.push(format!("{c} < {lo}"));
                        text.push(format!("≥ {lo}"));
                    }
                    if let Some(hi) = max {
                        parts.push(format!("{c} > {hi}"));
                        text.push(format!("≤ {hi}"));
                    }
                    (
                        parts.join(" OR "),
                        format!("{column} {}", text.join(" and ")),
                    )
                }
                Rule::Values { values } => (
                    format!(
                        "NOT ({c}::text = ANY(ARRAY[{}]))",
                        values
                            .iter()
                            .map(|v| format!("'{}'", v.replace('\'', "''")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!("{column} in {{{}}}", values.join(", ")),
                ),
                Rule::Pattern { pattern } => (
                    format!("NOT ({c}::text ~ '{}')", pattern.replace('\'', "''")),
                    format!("{column} matches /{pattern}/"),
                ),
                Rule::NotFuture => unreachable!("incremental"),
            };
            let cond = format!("{c} IS NOT NULL AND ({invalid})");
            let rule = RateRule {
                counted: "count(*)::float8".into(),
                cond,
                max_rate: *max_invalid_rate,
                threshold: format!("{described}; invalid rate ≤ {max_invalid_rate}"),
                keys: ("rows", "invalid"),
                message: Box::new(move |k, rows| format!("{k} of {rows} rows break {described}")),
                empty: "no rows",
            };
            out.extend(rate_windows(conn, check, &plan, &src, &rule, from, to).await?);
        }
        CheckKind::Referential {
            column,
            parent,
            parent_column,
            max_orphan_rate,
            ..
        } => {
            let src = src.expect("windowed");
            let c = ident(column);
            let cond = format!(
                "{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} p WHERE p.{pc} = {t}.{c})",
                p = ident(parent),
                pc = ident(parent_column),
                t = src.table
            );
            let (parent, parent_column, column) =
                (parent.clone(), parent_column.clone(), column.clone());
            let rule = RateRule {
                counted: format!("count({c})::float8"),
                cond,
                max_rate: *max_orphan_rate,
                threshold: format!("orphan rate ≤ {max_orphan_rate}"),
                keys: ("references", "orphans"),
                message: Box::new(move |k, rows| {
                    format!("{k} of {rows} {column} values have no {parent}.{parent_column}")
                }),
                empty: "no references",
            };
            out.extend(rate_windows(conn, check, &plan, &src, &rule, from, to).await?);
        }
        CheckKind::Distribution {
            column,
            numeric,
            baseline,
            max_psi,
            min_rows,
        } => {
            let src = src.expect("windowed");
            let c = ident(column);
            let category = if *numeric {
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
                .bind(from - *baseline)
                .bind(to)
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
            for end in &plan.ends {
                let mut o = Observation::new(check, *end - check.window, *end);
                let hi = bucket_of(*end, check.every);
                let lo = bucket_of(*end - check.window, check.every);
                let base_lo = bucket_of(*end - check.window - *baseline, check.every);
                let current = mix(lo, hi);
                let reference = mix(base_lo, lo);
                let n: f64 = current.values().sum();
                let base_n: f64 = reference.values().sum();
                o.threshold = format!(
                    "PSI ≤ {max_psi} (and above chance, p < 1e-6) against the previous {}",
                    heal_model::duration::format_iso_duration(*baseline)
                );
                if n < *min_rows as f64 || base_n < (*min_rows * 4) as f64 {
                    o.status = Status::Learning;
                    o.message =
                        format!("{n} rows against a baseline of {base_n}: too few to judge");
                    o.detail = json!({ "rows": n, "baseline_rows": base_n });
                    out.push(o);
                    continue;
                }
                let (value, movers) = psi(&current, &reference);
                // The PSI chance alone reaches at this sample size (n·PSI is about χ² with
                // k−1 degrees of freedom when nothing changed): below it, a small window's
                // noise, not a shift.
                let categories = movers.len().max(2);
                let n_eff = n * base_n / (n + base_n);
                let chance = chi2_quantile((categories - 1) as f64, SIGNIFICANCE_Z) / n_eff;
                let bar = max_psi.max(chance);
                o.metric = Some(value);
                o.upper = Some(bar);
                o.message = format!("PSI {value:.3} over {n} rows (chance level {chance:.3})");
                o.detail = json!({ "rows": n, "baseline_rows": base_n, "chance_psi": chance, "shares": movers });
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
                o.detail["rare"] = json!({ "rows": in_rare, "baseline_share": p0, "p_value": tail, "values": rare });
                if in_rare >= 3.0 && tail < 1e-6 {
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
                out.push(o);
            }
        }
        CheckKind::Reconciliation {
            left,
            right,
            min_ratio,
            max_ratio,
        } => {
            let l = side_per_step(conn, left, check.every, from, to).await?;
            let r = side_per_step(conn, right, check.every, from, to).await?;
            for end in &plan.ends {
                let mut o = Observation::new(check, *end - check.window, *end);
                o.subject = left.dataset.clone();
                o.dataset = left.dataset.clone();
                o.partition = Some(o.window_start.date_naive());
                let lv = window_sum(&l, *end, check);
                let rv = window_sum(&r, *end, check);
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
                    out.push(o);
                    continue;
                }
                let ratio = lv / rv;
                o.metric = Some(ratio);
                o.expected = Some(1.0);
                o.lower = Some(*min_ratio);
                o.upper = Some(*max_ratio);
                o.message = format!(
                    "{} {lv} against {} {rv} (ratio {ratio:.4})",
                    left.dataset, right.dataset
                );
                if ratio < *min_ratio || ratio > *max_ratio {
                    o.status = Status::Fail;
                }
                out.push(o);
            }
        }
        CheckKind::CustomSql { sql, max_rows } => {
            for end in &plan.ends {
                let mut o = Observation::new(check, *end - check.window, *end);
                let count_sql = format!("SELECT count(*) FROM {}", custom(sql));
                let n: i64 =
                    bind_window(sqlx::query_scalar(&count_sql), o.window_start, o.window_end)
                        .fetch_one(&mut *conn)
                        .await?;
                o.metric = Some(n as f64);
                o.threshold = format!("failing rows ≤ {max_rows}");
                o.message = format!("{n} failing rows");
                if n > *max_rows {
                    o.status = Status::Fail;
                    let s = format!(
                        "SELECT to_jsonb(q) FROM {} LIMIT {SAMPLE_ROWS}",
                        custom(sql)
                    );
                    o.sample = bind_window(sqlx::query_scalar(&s), o.window_start, o.window_end)
                        .fetch_all(&mut *conn)
                        .await?;
                }
                out.push(o);
            }
        }
        CheckKind::Schema { .. } | CheckKind::Pipeline { .. } | CheckKind::Staleness { .. } => {}
    }
    Ok(out)
}

/// A check on the share of a window's rows that meet `cond` (invalid values, orphans).
struct RateRule {
    /// The aggregate of the rows that count (the denominator).
    counted: String,
    cond: String,
    max_rate: f64,
    threshold: String,
    /// Names of the denominator and numerator in the result's detail.
    keys: (&'static str, &'static str),
    message: Box<dyn Fn(f64, f64) -> String + Send + Sync>,
    /// The message of a window without rows.
    empty: &'static str,
}

/// Measures `rule` over every planned window: two aggregate queries, then a sample of the
/// matching rows for each failing window.
async fn rate_windows(
    conn: &mut PgConnection,
    check: &Check,
    plan: &Plan,
    src: &Source,
    rule: &RateRule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Observation>, sqlx::Error> {
    let total = per_step(conn, src, &rule.counted, from, to).await?;
    let matching = per_step(
        conn,
        src,
        &format!("count(*) FILTER (WHERE {})::float8", rule.cond),
        from,
        to,
    )
    .await?;
    let mut out = Vec::new();
    for end in &plan.ends {
        let mut o = Observation::new(check, *end - check.window, *end);
        let rows = window_sum(&total, *end, check);
        let k = window_sum(&matching, *end, check);
        o.threshold.clone_from(&rule.threshold);
        o.detail = json!({ rule.keys.0: rows, rule.keys.1: k });
        if rows > 0.0 {
            let rate = k / rows;
            o.metric = Some(rate);
            o.message = (rule.message)(k, rows);
            if rate > rule.max_rate {
                o.status = Status::Fail;
                o.sample = sample(conn, src, &rule.cond, o.window_start, o.window_end).await?;
            }
        } else {
            o.message = rule.empty.into();
        }
        out.push(o);
    }
    Ok(out)
}

/// Binds the window bounds. The wrapper around a custom query refers to both, so the query
/// may use `$1` and `$2`, either, or neither.
fn bind_window<'q, O>(
    q: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(start).bind(end)
}

/// `sql` as a subquery `q`, with both window bounds referred to.
fn custom(sql: &str) -> String {
    format!("(SELECT * FROM ({sql}) q0 WHERE $1::timestamptz IS NOT NULL AND $2::timestamptz IS NOT NULL) q")
}

/// Categories (or bins) under this share of the baseline count as rare.
const RARE_SHARE: f64 = 0.005;

/// P(X ≥ k) for X ~ Binomial(n, p), summed in log space.
fn binomial_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, i), built up from i = 0.
    let mut ln_c = 0.0;
    let mut total = 0.0;
    for i in 0..=n {
        if i >= k {
            total += (ln_c + i as f64 * lp + (n - i) as f64 * lq).exp();
        }
        if i < n {
            ln_c += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        }
    }
    total.min(1.0)
}

/// The one-sided normal quantile of the significance distribution checks require (p < 1e-6).
const SIGNIFICANCE_Z: f64 = 4.753;

/// The χ² quantile with `df` degrees of freedom at the normal quantile `z` (Wilson–Hilferty).
fn chi2_quantile(df: f64, z: f64) -> f64 {
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
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

async fn per_step(
    conn: &mut PgConnection,
    src: &Source,
    agg: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<i64, f64>, sqlx::Error> {
    let sql = format!(
        "SELECT {b} AS b, {agg} AS v FROM {t} {t} WHERE {range}{filter} GROUP BY 1",
        b = src.bucket,
        t = src.table,
        range = src.range,
        filter = src.filter
    );
    let rows: Vec<(i64, Option<f64>)> = sqlx::query_as(&sql)
        .bind(from)
        .bind(to)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(b, v)| (b, v.unwrap_or(0.0)))
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

/// Up to [`SAMPLE_ROWS`] rows of the window matching `cond`, as JSON (bulky payload columns
/// left out).
async fn sample(
    conn: &mut PgConnection,
    src: &Source,
    cond: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Value>, sqlx::Error> {
    let sql = format!(
        "SELECT to_jsonb({t}) - 'payload' - 'lines' FROM {t} WHERE {range}{filter} AND ({cond}) LIMIT {SAMPLE_ROWS}",
        t = src.table,
        range = src.range,
        filter = src.filter
    );
    sqlx::query_scalar(&sql)
        .bind(start)
        .bind(end)
        .fetch_all(conn)
        .await
}

async fn duplicate_sample(
    conn: &mut PgConnection,
    check: &Check,
    src: &Source,
    key_expr: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Value>, sqlx::Error> {
    let sql = format!(
        "SELECT jsonb_build_object('key', to_jsonb(ARRAY[{keys}]), 'rows', count(*))
         FROM {t} WHERE {range}{filter} GROUP BY {key_expr} HAVING count(*) > 1 LIMIT {SAMPLE_ROWS}",
        keys = key_expr.trim_matches(|c| c == '(' || c == ')').split(", ").map(|k| format!("{k}::text")).collect::<Vec<_>>().join(", "),
        t = src.table,
        range = src.range,
        filter = src.filter
    );
    let mut out: Vec<Value> = sqlx::query_scalar(&sql)
        .bind(start)
        .bind(end)
        .fetch_all(&mut *conn)
        .await?;
    if let Some(kind) = event_kind_of(&check.dataset) {
        let left = SAMPLE_ROWS - out.len() as i64;
        if left > 0 {
            let redelivered: Vec<Value> = sqlx::query_scalar(
                "SELECT jsonb_build_object('event_id', event_id, 'extra_deliveries', duplicate_count)
                 FROM raw_events WHERE event_type = $1 AND occurred_at >= $2 AND occurred_at < $3
                   AND duplicate_count > 0 ORDER BY occurred_at LIMIT $4",
            )
            .bind(kind.wire_name())
            .bind(start)
            .bind(end)
            .bind(left)
            .fetch_all(&mut *conn)
            .await?;
            out.extend(redelivered);
        }
    }
    Ok(out)
}

/// One refused payload, with the table its event would have gone to when that can be told.
pub struct Refused {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    /// The producer's send time (data time); absent for payloads posted without one.
    pub produced_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub event_id: Option<String>,
    pub detail: String,
    pub table: Option<&'static str>,
}

/// Quarantine rows after `after` (by id), at most `limit`.
pub async fn refused_since(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<Refused>, sqlx::Error> {
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        i64,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        String,
        Option<String>,
        String,
        Vec<u8>,
    )> = sqlx::query_as(
        "SELECT id, received_at, produced_at, reason, event_id, detail, raw FROM quarantine
             WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, received_at, produced_at, reason, event_id, detail, raw)| {
                let table = event_table(&raw);
                Refused {
                    id,
                    received_at,
                    produced_at,
                    reason,
                    event_id,
                    detail,
                    table,
                }
            },
        )
        .collect())
}

/// The table a refused payload's event would have gone to: from its `event_type`, read as JSON
/// when it parses, else found in the text (a truncated or mis-encoded payload usually still
/// says what it is).
pub fn event_table(raw: &[u8]) -> Option<&'static str> {
    let name = match serde_json::from_slice::<Value>(raw) {
        Ok(v) => v
            .get("event_type")
            .and_then(Value::as_str)
            .map(str::to_string),
        Err(_) => {
            let text = String::from_utf8_lossy(raw);
            let at = text.find("\"event_type\"")? + "\"event_type\"".len();
            let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
            let rest = rest.strip_prefix('"')?;
            rest.find('"').map(|end| rest[..end].to_string())
        }
    }?;
    heal_model::EventKind::from_wire_name(&name).map(|k| k.table())
}

/// How far before its cursor a pipeline check reads job runs again (runs whose transaction
/// committed after a cycle with an earlier end time).
const RUN_OVERLAP: Duration = Duration::minutes(10);

/// On a check's first run, the quarantine position `history` ago (older refusals are not
/// news); afterwards the stored cursor.
async fn first_position(
    conn: &mut PgConnection,
    check: &Check,
    cursor: (i64, Option<DateTime<Utc>>),
    now: DateTime<Utc>,
) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    if cursor.1.is_some() {
        return Ok(cursor);
    }
    let before: Option<i64> =
        sqlx::query_scalar("SELECT max(id) FROM quarantine WHERE received_at < $1")
            .bind(now - check.history)
            .fetch_one(conn)
            .await?;
    Ok((before.unwrap_or(0).max(cursor.0), None))
}

/// Quarantine rows read per incremental check and cycle.
pub const REFUSED_PER_CYCLE: i64 = 100_000;

/// Measures an incremental check over what arrived since its cursor; returns the
/// observations and the new cursor (position, moment).
pub async fn measure_increment(
    conn: &mut PgConnection,
    check: &Check,
    cursor: (i64, Option<DateTime<Utc>>),
    now: DateTime<Utc>,
    catalog_has: &(dyn Fn(&str) -> bool + Sync),
) -> Result<(Vec<Observation>, (i64, Option<DateTime<Utc>>)), sqlx::Error> {
    match &check.kind {
        CheckKind::Schema { reasons, max_rows } => {
            let cursor = first_position(conn, check, cursor, now).await?;
            let refused = refused_since(conn, cursor.0, REFUSED_PER_CYCLE).await?;
            let next = refused.last().map(|r| r.id).unwrap_or(cursor.0);
            let wants = |r: &Refused| {
                let ds = r.table.unwrap_or("raw_events");
                ds == check.dataset && reasons.contains(&r.reason)
            };
            let o = refused_observation(check, &refused, wants, *max_rows, cursor.1, now, "schema");
            Ok((vec![o], (next, Some(now))))
        }
        CheckKind::Validity {
            rule: Rule::NotFuture,
            column,
            ..
        } => {
            let cursor = first_position(conn, check, cursor, now).await?;
            let refused = refused_since(conn, cursor.0, REFUSED_PER_CYCLE).await?;
            let next = refused.last().map(|r| r.id).unwrap_or(cursor.0);
            let wants = |r: &Refused| {
                r.table == Some(check.dataset.as_str()) && r.reason == "future_timestamp"
            };
            let mut o = refused_observation(check, &refused, wants, 0, cursor.1, now, "future");
            o.threshold = format!("{column} not after the event's arrival");
            Ok((vec![o], (next, Some(now))))
        }
        CheckKind::Pipeline {
            jobs,
            max_delay,
            max_quarantine_rate,
        } => {
            // Each run is judged on its own window (start to end), so reading an overlap again
            // finds the same result and changes nothing: runs that committed late with an
            // earlier end time are still seen.
            let cut = now;
            let since = cursor.1.unwrap_or(cut - check.history);
            #[allow(clippy::type_complexity)]
            let runs: Vec<(uuid::Uuid, String, NaiveDate, String, i32, DateTime<Utc>, DateTime<Utc>, f64, Option<String>)> =
                sqlx::query_as(
                    "SELECT run_id, job, day, status, attempts, started_at, ended_at, delayed_secs, error
                     FROM job_runs WHERE ended_at > $1 AND ended_at <= $2 ORDER BY ended_at",
                )
                .bind(since - RUN_OVERLAP)
                .bind(cut)
                .fetch_all(&mut *conn)
                .await?;
            let mut out = Vec::new();
            let limit = max_delay.num_seconds() as f64;
            for (run_id, job, day, status, attempts, started, ended, delayed, error) in runs {
                if !(jobs.is_empty() || jobs.contains(&job)) {
                    continue;
                }
                let mut o = Observation::new(check, started, ended);
                o.dataset = if catalog_has(&job) {
                    job.clone()
                } else {
                    "job_runs".into()
                };
                o.subject = job.clone();
                o.partition = Some(day);
                let midnight = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
                o.data_span = Some((midnight, midnight + Duration::days(1)));
                o.run_id = Some(run_id.to_string());
                o.threshold = format!("the run succeeds and starts ≤ {limit} s late");
                o.metric = Some(delayed);
                o.detail =
                    json!({ "status": status, "attempts": attempts, "delayed_secs": delayed });
                o.message = format!("{job} {status} for {day} after {attempts} attempt(s)");
                if status == "failed" {
                    o.status = Status::Fail;
                    o.message = format!(
                        "{job} failed for {day} after {attempts} attempts: {}",
                        error.as_deref().unwrap_or("no error recorded")
                    );
                } else if delayed > limit {
                    o.status = Status::Fail;
                    o.message = format!(
                        "{job} started {:.0} min late for {day} (allowed {:.0} min)",
                        delayed / 60.0,
                        limit / 60.0
                    );
                }
                if o.status == Status::Fail {
                    o.sample = vec![json!({ "run_id": run_id, "day": day, "status": status,
                        "attempts": attempts, "delayed_secs": delayed, "error": error })];
                }
                out.push(o);
            }
            // The ingest side: how much of what arrived was refused.
            #[allow(clippy::type_complexity)]
            let (refused, stored, first, last): (i64, i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM quarantine WHERE received_at > $1 AND received_at <= $2),
                        (SELECT count(*) FROM raw_events WHERE ingested_at > $1 AND ingested_at <= $2),
                        (SELECT min(produced_at) FROM quarantine WHERE received_at > $1 AND received_at <= $2),
                        (SELECT max(produced_at) FROM quarantine WHERE received_at > $1 AND received_at <= $2)",
            )
            .bind(since)
            .bind(cut)
            .fetch_one(&mut *conn)
            .await?;
            let mut o = Observation::new(check, since, cut);
            o.subject = "ingest".into();
            o.dataset = "quarantine".into();
            o.threshold = format!("quarantine rate ≤ {max_quarantine_rate}");
            let total = refused + stored;
            if let (Some(first), Some(last)) = (first, last) {
                o.data_span = Some((first, last));
            }
            o.detail = json!({ "refused": refused, "stored": stored });
            if total >= 100 {
                let rate = refused as f64 / total as f64;
                o.metric = Some(rate);
                o.message = format!(
                    "{refused} of {total} arriving events refused ({:.2} %)",
                    rate * 100.0
                );
                if rate > *max_quarantine_rate {
                    o.status = Status::Fail;
                }
            } else {
                o.message = format!("{total} events arrived: too few to judge the rate");
            }
            out.push(o);
            Ok((out, (cursor.0, Some(cut))))
        }
        CheckKind::Staleness {
            max_silence,
            min_expected,
        } => {
            let kinds: Vec<EventKind> = match event_kind_of(&check.dataset) {
                Some(k) => vec![k],
                None => EventKind::ALL.to_vec(),
            };
            let mut out = Vec::new();
            for kind in kinds {
                if let Some(o) =
                    staleness(conn, check, kind, *max_silence, *min_expected, now).await?
                {
                    out.push(o);
                }
            }
            Ok((out, (cursor.0, Some(now))))
        }
        _ => Ok((vec![], cursor)),
    }
}

/// Event times this close to the wall clock make a kind's traffic live; older newest events
/// are history being loaded or replayed, which the windowed checks judge.
const LIVE_HORIZON: Duration = Duration::days(1);

/// Earlier days whose same stretch of the day says how many events a silence is missing.
const STALENESS_DAYS: i32 = 7;

/// One kind's silence on the wall clock: how long since its last event was ingested, and how
/// many events the same stretch of the day brought on earlier days (median). `None` when the
/// kind never arrived.
async fn staleness(
    conn: &mut PgConnection,
    check: &Check,
    kind: EventKind,
    max_silence: Duration,
    min_expected: f64,
    now: DateTime<Utc>,
) -> Result<Option<Observation>, sqlx::Error> {
    let wire = kind.wire_name();
    let newest: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(occurred_at) FROM raw_events WHERE event_type = $1")
            .bind(wire)
            .fetch_one(&mut *conn)
            .await?;
    let Some(newest) = newest else {
        return Ok(None);
    };
    let table = kind.table();
    let silence_iso = heal_model::duration::format_iso_duration(max_silence);
    let mut o = Observation::new(check, newest, now);
    o.dataset = table.to_string();
    o.subject = table.to_string();
    o.threshold = format!(
        "an event at least every {silence_iso} while ≥ {min_expected} are expected in that time"
    );
    if now - newest > LIVE_HORIZON {
        o.message = format!(
            "not live: the newest {wire} happened at {}; history is judged by the windowed checks",
            newest.format("%Y-%m-%d %H:%M")
        );
        return Ok(Some(o));
    }
    let last: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT max(ingested_at) FROM raw_events WHERE event_type = $1 AND occurred_at >= $2",
    )
    .bind(wire)
    .bind(newest - Duration::hours(1))
    .fetch_one(&mut *conn)
    .await?;
    let last = last.unwrap_or(newest).min(now);
    let silence = now - last;
    o.window_start = last;
    if silence < max_silence {
        o.message = format!(
            "last {wire} ingested {} s ago",
            silence.num_seconds().max(0)
        );
        return Ok(Some(o));
    }
    // How many the last `max_silence` brought on earlier days at this time of day.
    let counts: Vec<i64> = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM raw_events
                 WHERE event_type = $1 AND occurred_at >= $2 - d * interval '1 day'
                   AND occurred_at < $3 - d * interval '1 day')
         FROM generate_series(1, $4) AS d",
    )
    .bind(wire)
    .bind(now - max_silence)
    .bind(now)
    .bind(STALENESS_DAYS)
    .fetch_all(&mut *conn)
    .await?;
    let seen: Vec<f64> = counts
        .into_iter()
        .filter(|n| *n > 0)
        .map(|n| n as f64)
        .collect();
    let minutes = silence.num_seconds() as f64 / 60.0;
    o.data_span = Some((newest, now));
    o.detail = json!({
        "silent_secs": silence.num_seconds(),
        "last_ingested": last,
        "newest_event": newest,
        "earlier_days": seen.len(),
    });
    if seen.len() < 2 {
        o.status = Status::Learning;
        o.message = format!(
            "no {wire} for {minutes:.0} min; too few earlier days at this time to know if some are due"
        );
        return Ok(Some(o));
    }
    let mut seen = seen;
    let expected = crate::detect::median(&mut seen);
    o.expected = Some(expected);
    o.metric = Some(minutes);
    o.detail["expected_in_max_silence"] = json!(expected);
    if expected >= min_expected {
        o.status = Status::Fail;
        o.message = format!(
            "no {wire} for {minutes:.0} min while about {expected:.0} arrive in {silence_iso} at this time of day"
        );
        o.sample =
            vec![json!({ "event_type": wire, "last_ingested": last, "newest_event": newest })];
    } else {
        o.metric = None;
        o.message = format!(
            "no {wire} for {minutes:.0} min, but only about {expected:.0} are usual in {silence_iso} at this time of day"
        );
    }
    Ok(Some(o))
}

fn refused_observation(
    check: &Check,
    refused: &[Refused],
    wants: impl Fn(&Refused) -> bool,
    max_rows: i64,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    what: &str,
) -> Observation {
    let hits: Vec<&Refused> = refused.iter().filter(|r| wants(r)).collect();
    let start = since
        .or_else(|| refused.first().map(|r| r.received_at))
        .unwrap_or(now)
        .min(now);
    let mut o = Observation::new(check, start, now);
    let produced = hits.iter().filter_map(|h| h.produced_at);
    if let (Some(first), Some(last)) = (produced.clone().min(), produced.max()) {
        o.data_span = Some((first, last));
    }
    let mut by_reason: BTreeMap<&str, i64> = BTreeMap::new();
    for h in &hits {
        *by_reason.entry(h.reason.as_str()).or_default() += 1;
    }
    o.metric = Some(hits.len() as f64);
    o.threshold = format!("refused payloads ≤ {max_rows}");
    o.detail = json!({ "by_reason": by_reason, "scanned": refused.len() });
    o.message = if hits.is_empty() {
        "no refused payloads".into()
    } else {
        format!(
            "{} payloads refused ({})",
            hits.len(),
            by_reason
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if hits.len() as i64 > max_rows {
        o.status = Status::Fail;
        o.sample = hits
            .iter()
            .take(SAMPLE_ROWS as usize)
            .map(|h| json!({ "quarantine_id": h.id, "event_id": h.event_id, "reason": h.reason, "detail": h.detail }))
            .collect();
    }
    let _ = what;
    o
}

/// Plans every query of a check without running it, so a mistake in a filter, pattern or
/// custom query is refused at start.
pub async fn prepare(
    conn: &mut PgConnection,
    check: &Check,
    is_date: bool,
) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let mut queries = Vec::new();
    if let Some(time) = &check.time {
        let src = Source::new(
            &check.dataset,
            time,
            is_date,
            check.every,
            check.filter.as_deref(),
        );
        queries.push(format!(
            "SELECT {b}, count(*) FROM {t} {t} WHERE {range}{filter} GROUP BY 1",
            b = src.bucket,
            t = src.table,
            range = src.range,
            filter = src.filter
        ));
        if let CheckKind::Validity {
            column,
            rule: Rule::Pattern { pattern },
            ..
        } = &check.kind
        {
            queries.push(format!(
                "SELECT count(*) FROM {t} WHERE {c}::text ~ '{p}' AND {range}",
                t = src.table,
                c = ident(column),
                p = pattern.replace('\'', "''"),
                range = src.range
            ));
        }
    }
    if let CheckKind::Reconciliation { left, right, .. } = &check.kind {
        for s in [left, right] {
            queries.push(format!(
                "SELECT ({v})::float8 FROM {t} WHERE {time}::timestamptz >= $1 AND {time}::timestamptz < $2{f}",
                v = s.value,
                t = ident(&s.dataset),
                time = ident(&s.time),
                f = s.filter.as_deref().map(|f| format!(" AND ({f})")).unwrap_or_default()
            ));
        }
    }
    for q in &queries {
        sqlx::query(&format!("EXPLAIN {q}"))
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    if let CheckKind::CustomSql { sql, .. } = &check.kind {
        // Compiled against the window's bounds when it names them.
        let q = format!("EXPLAIN SELECT count(*) FROM {}", custom(sql));
        bind_window(sqlx::query_scalar::<_, String>(&q), now, now)
            .fetch_all(&mut *conn)
            .await?;
    }
    // Regular expressions are only compiled when a row is matched: try one.
    if let CheckKind::Validity {
        rule: Rule::Pattern { pattern },
        ..
    } = &check.kind
    {
        sqlx::query("SELECT 'x' ~ $1")
            .bind(pattern)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_payloads_are_attributed_to_their_table_when_they_say_what_they_are() {
        assert_eq!(
            event_table(br#"{"event_type":"ORDER_PLACED","x":1}"#),
            Some("orders")
        );
        assert_eq!(
            event_table(br#"{"event_type" : "PAYMENT_PROCESSED", "amount": 1"#),
            Some("payments")
        );
        assert_eq!(
            event_table(b"{\"event_type\":\"USER_CREATED\",\"name\":\"Jos\xe9\"}"),
            Some("users")
        );
        assert_eq!(event_table(br#"{"event_type":"NOPE"}"#), None);
        assert_eq!(event_table(b"\x00\x01garbage"), None);
        assert_eq!(event_table(br#"[1, 2]"#), None);
    }

    #[test]
    fn an_empty_window_sums_to_plus_zero() {
        let n = total([].iter());
        assert!(n == 0.0 && n.is_sign_positive(), "{n}");
        assert_eq!(format!("{n} rows"), "0 rows");
        assert_eq!(total([1.5, 2.0].iter()), 3.5);
    }

    #[test]
    fn binomial_tails_match_hand_computed_values() {
        // P(X ≥ 1 | n = 10, p = 0.1) = 1 − 0.9^10.
        assert!((binomial_tail(1, 10, 0.1) - (1.0 - 0.9f64.powi(10))).abs() < 1e-12);
        // P(X ≥ 10 | n = 10, p = 0.5) = 2^-10.
        assert!((binomial_tail(10, 10, 0.5) - 0.5f64.powi(10)).abs() < 1e-15);
        assert_eq!(binomial_tail(0, 10, 0.3), 1.0);
        // Nine wild values among 45 where the baseline had one in 330: hopeless by chance.
        assert!(binomial_tail(9, 45, 1.0 / 330.0) < 1e-10);
        assert!(binomial_tail(1, 45, 1.0 / 330.0) > 0.1);
    }

    #[test]
    fn chi2_quantiles_are_close_to_the_tables() {
        // χ²(1) at p = 0.05 is 3.84; χ²(5) at 0.001 is 20.5; χ²(10) at 1e-6 is about 48.
        assert!((chi2_quantile(1.0, 1.645) - 3.84).abs() < 0.2);
        assert!((chi2_quantile(5.0, 3.09) - 20.5).abs() < 0.5);
        let q = chi2_quantile(10.0, SIGNIFICANCE_Z);
        assert!((44.0..52.0).contains(&q), "{q}");
    }

    #[test]
    fn psi_is_zero_for_the_same_mix_and_large_for_a_shift() {
        let mix = |pairs: &[(&str, f64)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        let base = mix(&[("card", 700.0), ("paypal", 200.0), ("gift_card", 100.0)]);
        let same = mix(&[("card", 70.0), ("paypal", 20.0), ("gift_card", 10.0)]);
        let shifted = mix(&[("card", 20.0), ("paypal", 10.0), ("gift_card", 70.0)]);
        assert!(psi(&same, &base).0 < 0.01);
        let (v, movers) = psi(&shifted, &base);
        assert!(v > 1.0, "{v}");
        assert_eq!(movers[0]["value"], "gift_card");
    }
}
