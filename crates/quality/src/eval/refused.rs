//! Refused payloads: the `schema` checks (refusals of their dataset's events for the listed
//! reasons) and `validity` with `not_future` (events stamped past their arrival), both judged
//! on what the quarantine received since the check's last run.

use super::{Observation, Status, SAMPLE_ROWS};
use crate::checks::Check;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;
use std::collections::BTreeMap;

/// Quarantine rows read per incremental check and cycle.
pub const REFUSED_PER_CYCLE: i64 = 100_000;

/// What an incremental check gets back: its observations and its new cursor.
pub(super) type Increment = (Vec<Observation>, (i64, Option<DateTime<Utc>>));

/// Refusals since the cursor that `wants` picks, as one observation held to `max_rows`.
pub(super) async fn measure(
    conn: &mut PgConnection,
    check: &Check,
    cursor: (i64, Option<DateTime<Utc>>),
    now: DateTime<Utc>,
    wants: impl Fn(&Refused) -> bool,
    max_rows: i64,
) -> Result<Increment, sqlx::Error> {
    let cursor = first_position(conn, check, cursor, now).await?;
    let refused = refused_since(conn, cursor.0, REFUSED_PER_CYCLE).await?;
    let next = refused.last().map(|r| r.id).unwrap_or(cursor.0);
    let o = judge(check, &refused, wants, max_rows, cursor.1, now);
    Ok((vec![o], (next, Some(now))))
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

/// The refusals among `refused` that `wants` picks, since `since` (the last run).
pub(super) fn judge(
    check: &Check,
    refused: &[Refused],
    wants: impl Fn(&Refused) -> bool,
    max_rows: i64,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
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
    o
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

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
    fn refusals_of_the_dataset_count_against_it_over_the_limit() {
        let check = hourly(CheckKind::Schema {
            reasons: vec!["missing_field".into()],
            max_rows: 1,
        });
        let refusal = |id: i64, table: &'static str, reason: &str| Refused {
            id,
            received_at: at(4),
            produced_at: Some(at(3)),
            reason: reason.into(),
            event_id: None,
            detail: String::new(),
            table: Some(table),
        };
        let refused = vec![
            refusal(1, "orders", "missing_field"),
            refusal(2, "payments", "missing_field"),
            refusal(3, "orders", "missing_field"),
            refusal(4, "orders", "future_timestamp"),
        ];
        let wants = |r: &Refused| r.table == Some("orders") && r.reason == "missing_field";
        let o = judge(&check, &refused, wants, 1, Some(at(2)), at(5));
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.metric, Some(2.0));
        assert_eq!(o.message, "2 payloads refused (missing_field: 2)");
        assert_eq!((o.window_start, o.window_end), (at(2), at(5)));
        assert_eq!(o.data_span, Some((at(3), at(3))));
        assert_eq!(o.sample.len(), 2);
        let o = judge(&check, &refused, wants, 2, Some(at(2)), at(5));
        assert_eq!(o.status, Status::Pass);
        let o = judge(&check, &[], wants, 0, None, at(5));
        assert_eq!(
            (o.status, o.message.as_str()),
            (Status::Pass, "no refused payloads")
        );
    }
}
