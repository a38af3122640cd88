//! Measuring: each check type's metric over its windows (or over what arrived since its last
//! run), with a bounded sample of the failing rows, and its rule applied. Anomaly judgment on
//! the metric history happens in [`crate::runner`].
//!
//! One module per check type: its SQL, and a pure judgement of one window (or increment)
//! from what the SQL measured, unit-tested on its own. This module plans the windows and
//! holds what they share.
//!
//! Windowed metrics are aggregated per step (`every`) in one query per check and summed into
//! windows in Rust, so a first run over two weeks of hourly windows is one scan, not 336.

mod completeness;
mod custom;
mod distribution;
mod freshness;
mod pipeline;
mod rate;
mod reconciliation;
mod referential;
mod refused;
mod relation;
mod staleness;
mod uniqueness;
mod validity;
mod volume;

pub use refused::{event_table, refused_since, Refused, REFUSED_PER_CYCLE};

use crate::checks::{Check, CheckKind, Rule};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use heal_model::quality::Severity;
use serde_json::{json, Value};
use sqlx::PgConnection;
use std::collections::BTreeMap;

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
    pub(crate) fn new(check: &Check, start: DateTime<Utc>, end: DateTime<Utc>) -> Observation {
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

    /// The window of `check` ending at `end`.
    pub(crate) fn window(check: &Check, end: DateTime<Utc>) -> Observation {
        Observation::new(check, end - check.window, end)
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

/// What a windowed check's measurement is given: the windows planned this cycle and where
/// to read them.
pub(crate) struct Windows<'a> {
    check: &'a Check,
    ends: &'a [DateTime<Utc>],
    src: Option<&'a Source>,
    /// Reads cover `from` (the first window's start) up to `to` (the last window's end).
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    is_date: bool,
}

impl Windows<'_> {
    /// The dataset's time column, which every check kind measured by window has.
    fn src(&self) -> &Source {
        self.src.expect("a windowed check has a time column")
    }

    fn ends(&self) -> &[DateTime<Utc>] {
        self.ends
    }
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
    let w = Windows {
        check,
        ends: &plan.ends,
        src: src.as_ref(),
        from,
        to,
        is_date,
    };
    match &check.kind {
        CheckKind::Volume { min_rows, max_rows } => {
            volume::measure(conn, &w, *min_rows, *max_rows).await
        }
        CheckKind::Relation {
            of,
            of_time,
            of_filter,
            baseline,
            min_rows,
            sensitivity,
        } => {
            let p = relation::Params {
                of,
                of_time,
                of_filter: of_filter.as_deref(),
                baseline: *baseline,
                min_rows: *min_rows,
                sensitivity: *sensitivity,
            };
            relation::measure(conn, &w, &p).await
        }
        CheckKind::Freshness { max_age } => freshness::measure(conn, &w, *max_age).await,
        CheckKind::Completeness {
            columns,
            max_null_rate,
        } => completeness::measure(conn, &w, columns, *max_null_rate).await,
        CheckKind::Uniqueness {
            key,
            max_duplicate_rate,
        } => uniqueness::measure(conn, &w, key, *max_duplicate_rate).await,
        CheckKind::Validity {
            column,
            rule,
            max_invalid_rate,
        } => rate::measure(conn, &w, &validity::rule(column, rule, *max_invalid_rate)).await,
        CheckKind::Referential {
            column,
            parent,
            parent_column,
            max_orphan_rate,
            ..
        } => {
            let rule = referential::rule(w.src(), column, parent, parent_column, *max_orphan_rate);
            rate::measure(conn, &w, &rule).await
        }
        CheckKind::Distribution {
            column,
            numeric,
            baseline,
            max_psi,
            min_rows,
        } => {
            let p = distribution::Params {
                column,
                numeric: *numeric,
                baseline: *baseline,
                max_psi: *max_psi,
                min_rows: *min_rows,
            };
            distribution::measure(conn, &w, &p).await
        }
        CheckKind::Reconciliation {
            left,
            right,
            min_ratio,
            max_ratio,
        } => reconciliation::measure(conn, &w, left, right, (*min_ratio, *max_ratio)).await,
        CheckKind::CustomSql { sql, max_rows } => custom::measure(conn, &w, sql, *max_rows).await,
        CheckKind::Schema { .. } | CheckKind::Pipeline { .. } | CheckKind::Staleness { .. } => {
            Ok(vec![])
        }
    }
}

/// Measures an incremental check over what arrived since its cursor; returns the
/// observations and the new cursor (position, moment).
pub async fn measure_increment(
    conn: &mut PgConnection,
    check: &Check,
    cursor: (i64, Option<DateTime<Utc>>),
    now: DateTime<Utc>,
    catalog_has: &(dyn Fn(&str) -> bool + Sync),
) -> Result<refused::Increment, sqlx::Error> {
    match &check.kind {
        CheckKind::Schema { reasons, max_rows } => {
            let wants = |r: &Refused| {
                let ds = r.table.unwrap_or("raw_events");
                ds == check.dataset && reasons.contains(&r.reason)
            };
            refused::measure(conn, check, cursor, now, wants, *max_rows).await
        }
        CheckKind::Validity {
            rule: Rule::NotFuture,
            column,
            ..
        } => {
            let wants = |r: &Refused| {
                r.table == Some(check.dataset.as_str()) && r.reason == "future_timestamp"
            };
            let (mut obs, next) = refused::measure(conn, check, cursor, now, wants, 0).await?;
            for o in &mut obs {
                o.threshold = format!("{column} not after the event's arrival");
            }
            Ok((obs, next))
        }
        CheckKind::Pipeline {
            jobs,
            max_delay,
            max_quarantine_rate,
        } => {
            let p = pipeline::Params {
                jobs,
                max_delay: *max_delay,
                max_quarantine_rate: *max_quarantine_rate,
            };
            pipeline::measure(conn, check, &p, cursor, now, catalog_has).await
        }
        CheckKind::Staleness {
            max_silence,
            min_expected,
        } => {
            let obs = staleness::measure(conn, check, *max_silence, *min_expected, now).await?;
            Ok((obs, (cursor.0, Some(now))))
        }
        _ => Ok((vec![], cursor)),
    }
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
        custom::prepare(conn, sql).await?;
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
pub(crate) mod tests {
    use super::*;
    use crate::checks::CheckKind;

    /// 2026-03-02 at `h` o'clock (UTC).
    pub(crate) fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap()
    }

    /// A check on `orders` with hourly windows.
    pub(crate) fn hourly(kind: CheckKind) -> Check {
        Check {
            name: "orders_check".into(),
            description: None,
            dataset: "orders".into(),
            column: None,
            time: Some("placed_at".into()),
            filter: None,
            severity: Severity::High,
            kind,
            every: Duration::hours(1),
            window: Duration::hours(1),
            settle: Duration::zero(),
            lookback: Duration::zero(),
            history: Duration::days(14),
            anomaly: None,
            clear_after: 2,
            after_jobs: vec![],
        }
    }

    #[test]
    fn an_empty_window_sums_to_plus_zero() {
        let n = total([].iter());
        assert!(n == 0.0 && n.is_sign_positive(), "{n}");
        assert_eq!(format!("{n} rows"), "0 rows");
        assert_eq!(total([1.5, 2.0].iter()), 3.5);
    }

    #[test]
    fn windows_are_summed_from_their_steps() {
        let check = hourly(CheckKind::Volume {
            min_rows: None,
            max_rows: None,
        });
        let step = |h: u32| bucket_of(at(h), check.every);
        let steps = BTreeMap::from([(step(1), 5.0), (step(2), 7.0), (step(3), 11.0)]);
        assert_eq!(window_sum(&steps, at(3), &check), 7.0);
        assert_eq!(range_sum(&steps, at(1), at(4), check.every), 23.0);
        let wide = Check {
            window: Duration::hours(2),
            ..check.clone()
        };
        assert_eq!(window_sum(&steps, at(4), &wide), 18.0);
        assert_eq!(Observation::window(&wide, at(4)).window_start, at(2));
    }
}
