//! `staleness`: live, on the wall clock. A kind of event that stopped arriving while traffic
//! at this time of day says it should come opens a condition while the silence lasts.

use super::{Observation, Status};
use crate::checks::{event_kind_of, Check};
use chrono::{DateTime, Duration, Utc};
use heal_model::EventKind;
use serde_json::json;
use sqlx::PgConnection;

/// Event times this close to the wall clock make a kind's traffic live; older newest events
/// are history being loaded or replayed, which the windowed checks judge.
const LIVE_HORIZON: Duration = Duration::days(1);

/// Earlier days whose same stretch of the day says how many events a silence is missing.
const STALENESS_DAYS: i32 = 7;

/// One observation per event kind of the check's dataset (`raw_events`: every kind) that
/// ever arrived.
pub(super) async fn measure(
    conn: &mut PgConnection,
    check: &Check,
    max_silence: Duration,
    min_expected: f64,
    now: DateTime<Utc>,
) -> Result<Vec<Observation>, sqlx::Error> {
    let kinds: Vec<EventKind> = match event_kind_of(&check.dataset) {
        Some(k) => vec![k],
        None => EventKind::ALL.to_vec(),
    };
    let mut out = Vec::new();
    for kind in kinds {
        if let Some(facts) = facts(conn, kind, max_silence, now).await? {
            out.push(judge(check, kind, &facts, max_silence, min_expected, now));
        }
    }
    Ok(out)
}

/// What the database says of one kind's silence.
pub(super) struct Facts {
    /// The newest event time of the kind.
    pub newest: DateTime<Utc>,
    /// When the last recent event of the kind was ingested (read only when the kind is live).
    pub last_ingested: Option<DateTime<Utc>>,
    /// Events of the kind the same stretch of the day brought on each earlier day (read only
    /// when the silence is long enough to matter).
    pub earlier_days: Vec<i64>,
}

/// `None` when the kind never arrived.
async fn facts(
    conn: &mut PgConnection,
    kind: EventKind,
    max_silence: Duration,
    now: DateTime<Utc>,
) -> Result<Option<Facts>, sqlx::Error> {
    let wire = kind.wire_name();
    let newest: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(occurred_at) FROM raw_events WHERE event_type = $1")
            .bind(wire)
            .fetch_one(&mut *conn)
            .await?;
    let Some(newest) = newest else {
        return Ok(None);
    };
    let mut facts = Facts {
        newest,
        last_ingested: None,
        earlier_days: Vec::new(),
    };
    if now - newest > LIVE_HORIZON {
        return Ok(Some(facts));
    }
    let last: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT max(ingested_at) FROM raw_events WHERE event_type = $1 AND occurred_at >= $2",
    )
    .bind(wire)
    .bind(newest - Duration::hours(1))
    .fetch_one(&mut *conn)
    .await?;
    facts.last_ingested = last;
    if now - last.unwrap_or(newest).min(now) < max_silence {
        return Ok(Some(facts));
    }
    // How many the last `max_silence` brought on earlier days at this time of day.
    facts.earlier_days = sqlx::query_scalar(
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
    Ok(Some(facts))
}

/// One kind's silence at `now`: how long since its last event was ingested, against how many
/// events the same stretch of the day brought on earlier days (median).
pub(super) fn judge(
    check: &Check,
    kind: EventKind,
    facts: &Facts,
    max_silence: Duration,
    min_expected: f64,
    now: DateTime<Utc>,
) -> Observation {
    let (wire, newest) = (kind.wire_name(), facts.newest);
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
        return o;
    }
    let last = facts.last_ingested.unwrap_or(newest).min(now);
    let silence = now - last;
    o.window_start = last;
    if silence < max_silence {
        o.message = format!(
            "last {wire} ingested {} s ago",
            silence.num_seconds().max(0)
        );
        return o;
    }
    let mut seen: Vec<f64> = facts
        .earlier_days
        .iter()
        .filter(|n| **n > 0)
        .map(|n| *n as f64)
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
        return o;
    }
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
    o
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, hourly};
    use super::*;
    use crate::checks::CheckKind;

    #[test]
    fn a_silence_fails_only_when_earlier_days_say_events_are_due() {
        let (max_silence, min_expected) = (Duration::minutes(10), 5.0);
        let check = hourly(CheckKind::Staleness {
            max_silence,
            min_expected,
        });
        let kind = EventKind::ALL[0];
        let now = at(12);
        let facts = |last: DateTime<Utc>, earlier: Vec<i64>| Facts {
            newest: last,
            last_ingested: Some(last),
            earlier_days: earlier,
        };
        let judge = |f: &Facts| judge(&check, kind, f, max_silence, min_expected, now);
        let o = judge(&facts(now - Duration::minutes(3), vec![]));
        assert_eq!(o.status, Status::Pass, "{}", o.message);
        let silent = now - Duration::minutes(30);
        let o = judge(&facts(silent, vec![40, 38, 0, 41]));
        assert_eq!(o.status, Status::Fail, "{}", o.message);
        assert_eq!((o.expected, o.metric), (Some(40.0), Some(30.0)));
        let o = judge(&facts(silent, vec![2, 1, 3]));
        assert_eq!((o.status, o.metric), (Status::Pass, None));
        let o = judge(&facts(silent, vec![40]));
        assert_eq!(o.status, Status::Learning);
        // History, not live traffic: not judged here.
        let o = judge(&facts(now - Duration::days(3), vec![]));
        assert_eq!(o.status, Status::Pass);
        assert!(o.message.starts_with("not live"), "{}", o.message);
    }
}
