//! `uniqueness`: the share of a window's rows that repeat a key, plus events the ingest role
//! received more than once (kept once).

use super::{ident, per_step, window_sum, Observation, Source, Status, Windows, SAMPLE_ROWS};
use crate::checks::{event_kind_of, Check};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;
use std::collections::BTreeMap;

pub(super) async fn measure(
    conn: &mut PgConnection,
    w: &Windows<'_>,
    key: &[String],
    max_duplicate_rate: f64,
) -> Result<Vec<Observation>, sqlx::Error> {
    let (check, src, from, to) = (w.check, w.src(), w.from, w.to);
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
    let total = per_step(conn, src, "count(*)::float8", from, to).await?;
    // The event id is an event table's primary key: only redeliveries can repeat it,
    // and counting its distinct values would scan the table for nothing.
    let by_event_id =
        key.len() == 1 && key[0] == "event_id" && event_kind_of(&check.dataset).is_some();
    let dups = if by_event_id {
        BTreeMap::new()
    } else {
        per_step(
            conn,
            src,
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
    let mut out = Vec::new();
    for end in w.ends() {
        let mut o = judge(
            check,
            *end,
            window_sum(&total, *end, check),
            window_sum(&dups, *end, check),
            window_sum(&redelivered, *end, check),
            max_duplicate_rate,
        );
        if o.status == Status::Fail {
            o.sample =
                duplicate_sample(conn, check, src, &key_expr, o.window_start, o.window_end).await?;
        }
        out.push(o);
    }
    Ok(out)
}

/// The window ending at `end`: `rows` rows, `duplicates` repeated keys among them and
/// `redelivered` events received more than once.
pub(super) fn judge(
    check: &Check,
    end: DateTime<Utc>,
    rows: f64,
    duplicates: f64,
    redelivered: f64,
    max_duplicate_rate: f64,
) -> Observation {
    let (d, r) = (duplicates, redelivered);
    let mut o = Observation::window(check, end);
    o.threshold = format!("duplicate rate ≤ {max_duplicate_rate}");
    o.detail = json!({ "rows": rows, "duplicate_keys": d, "redelivered_events": r });
    if rows > 0.0 {
        let rate = (d + r) / rows;
        o.metric = Some(rate);
        o.message = format!(
            "{d} duplicate keys and {r} redelivered events in {rows} rows ({:.2} %)",
            rate * 100.0
        );
        if rate > max_duplicate_rate {
            o.status = Status::Fail;
        }
    } else {
        o.message = "no rows".into();
    }
    o
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

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    #[test]
    fn repeated_keys_and_redeliveries_count_together() {
        let check = hourly(CheckKind::Uniqueness {
            key: vec!["order_id".into()],
            max_duplicate_rate: 0.01,
        });
        let o = judge(&check, at(5), 1000.0, 4.0, 3.0, 0.01);
        assert_eq!((o.status, o.metric), (Status::Pass, Some(0.007)));
        let o = judge(&check, at(5), 1000.0, 6.0, 6.0, 0.01);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.detail["redelivered_events"], 6.0);
        let o = judge(&check, at(5), 0.0, 0.0, 0.0, 0.01);
        assert_eq!((o.status, o.metric), (Status::Pass, None));
    }
}
