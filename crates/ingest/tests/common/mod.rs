//! The fixture of the fault tests: a scenario file scaled down around its fault windows, run
//! through the generator (and its clean twin, the same scenario without faults), placed on
//! three partitions with Kafka-like offsets, ingested in batches, its ground truth stored in
//! `fault_injections` and read back, and a snapshot of what the database holds afterwards.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use heal_generator::{FaultAction, GeneratedEvent, Generator, InjectionRecord, Scenario};
use heal_ingest::{BatchOutcome, Incoming};
use heal_model::{decode, CanonicalEvent, EventBody, EventKind, FaultKind};
use heal_testkit::TestDb;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

/// Partitions of the simulated `raw-events` topic.
pub const PARTITIONS: i32 = 3;
/// Events per `Ingestor::ingest` call.
pub const BATCH: usize = 500;
/// The consumer group and topic of [`source`].
pub const GROUP: &str = "heal-ingest";
pub const TOPIC: &str = "raw-events";
/// Simulated time kept before the first fault window and after the last one.
const MARGIN_HOURS: i64 = 1;

pub use heal_testkit::pipeline::source;

/// The workspace's `scenarios/` folder.
pub use heal_testkit::scenarios_dir;

/// Runs a scenario to the end: its messages and its ground truth.
pub fn generate(scenario: &Scenario) -> (Vec<GeneratedEvent>, Vec<InjectionRecord>) {
    let mut generator = Generator::new(scenario);
    let messages: Vec<GeneratedEvent> = generator.by_ref().collect();
    (messages, generator.ground_truth())
}

/// Extra simulated time a fault needs after its window for its events to show (late events
/// are sent `delay` after they occur; the stream must go on for them to be behind it).
fn tail(action: &FaultAction) -> Duration {
    match action {
        FaultAction::LateEvents { delay } => *delay,
        _ => Duration::zero(),
    }
}

/// `scenarios/<stem>.toml` scaled down for a fast test: `events_per_day` replaces the file's
/// volume, and the run is cut to the fault windows with an hour on each side (plus the delay
/// of late events). The start moves forward and the fault offsets back by the same amount,
/// so every window stays where the file puts it in absolute time. A scenario without faults
/// keeps its first day.
pub fn scaled(stem: &str, events_per_day: f64) -> Scenario {
    let path = scenarios_dir().join(format!("{stem}.toml"));
    let mut s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let original_end = s.end();
    s.events_per_day = events_per_day;
    if s.faults.is_empty() {
        s.days = s.days.min(1.0);
        return s;
    }
    let first = s.faults.iter().map(|f| f.start).min().expect("faults");
    let last = s
        .faults
        .iter()
        .map(|f| f.start + f.duration + tail(&f.action))
        .max()
        .expect("faults");
    let shift = first - Duration::hours(MARGIN_HOURS).min(first);
    s.start += shift;
    for f in &mut s.faults {
        f.start -= shift;
    }
    let end = (s.start + (last - shift) + Duration::hours(MARGIN_HOURS)).min(original_end);
    s.days = (end - s.start).num_milliseconds() as f64 / 86_400_000.0;
    s
}

/// Messages as a consumer of the topic receives them: partition of the key, per-partition
/// offsets from 0 in send order, the send time as the message timestamp.
pub fn place(messages: &[GeneratedEvent]) -> Vec<Incoming> {
    heal_testkit::pipeline::place(messages, PARTITIONS)
}

/// A generated run, faulty and clean, ready to ingest.
pub struct Run {
    pub stem: String,
    /// The scenario file as written (for the job faults' parameters).
    pub file_text: String,
    /// The scenario as loaded from the file, not scaled (for the absolute windows).
    pub original: Scenario,
    pub scenario: Scenario,
    pub messages: Vec<GeneratedEvent>,
    pub items: Vec<Incoming>,
    pub truth: Vec<InjectionRecord>,
    /// Where and when each event id was sent: (partition, offset, send time) of every copy.
    pub sent: HashMap<String, Vec<(i32, i64, DateTime<Utc>)>>,
    /// The same scenario without faults.
    pub clean_items: Vec<Incoming>,
    /// The clean run's events, decoded, by id.
    pub clean: HashMap<String, CanonicalEvent>,
}

impl Run {
    pub fn new(stem: &str, events_per_day: f64) -> Run {
        let path = scenarios_dir().join(format!("{stem}.toml"));
        let file_text = std::fs::read_to_string(&path).expect("scenario file");
        let original = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let scenario = scaled(stem, events_per_day);
        let (messages, truth) = generate(&scenario);
        let items = place(&messages);
        let mut sent: HashMap<String, Vec<(i32, i64, DateTime<Utc>)>> = HashMap::new();
        for (m, item) in messages.iter().zip(&items) {
            sent.entry(m.event_id.clone()).or_default().push((
                item.partition.unwrap(),
                item.offset.unwrap(),
                m.produced_at,
            ));
        }

        let mut clean_scenario = scenario.clone();
        clean_scenario.faults.clear();
        let (clean_messages, clean_truth) = generate(&clean_scenario);
        assert!(clean_truth.is_empty());
        let clean_items = place(&clean_messages);
        let clean: HashMap<String, CanonicalEvent> = clean_messages
            .iter()
            .map(|m| {
                let ev = decode(&m.payload)
                    .unwrap_or_else(|e| panic!("{stem}: clean event {} fails: {e}", m.event_id));
                assert_eq!(ev.event_id, m.event_id);
                (m.event_id.clone(), ev)
            })
            .collect();
        assert_eq!(
            clean.len(),
            clean_messages.len(),
            "{stem}: clean ids are unique"
        );
        Run {
            stem: stem.to_string(),
            file_text,
            original,
            scenario,
            messages,
            items,
            truth,
            sent,
            clean_items,
            clean,
        }
    }

    /// The ids of every event a fault touched.
    pub fn affected(&self) -> HashSet<String> {
        self.truth
            .iter()
            .flat_map(|r| r.affected_event_ids.iter().cloned())
            .collect()
    }
}

/// Closes a test database. Its connection is closed first: `Pool::close` can return while
/// the connection of the last query is still on its way back to the pool, leaving it open,
/// and the embedded engine (one client at a time) then cannot stop until its shutdown times
/// out (10 s).
pub async fn finish(t: TestDb) {
    if let Ok(conn) = t.pool().acquire().await {
        conn.close().await.expect("close the connection");
    }
    t.finish().await;
}

/// Ingests `items` in batches of [`BATCH`] from the topic source, summing the outcomes.
pub async fn ingest_all(pool: &PgPool, items: &[Incoming]) -> BatchOutcome {
    heal_testkit::pipeline::ingest_all(pool, &source(), items, BATCH).await
}

/// Stores the ground truth of a run with the product's own writer.
pub async fn record_ground_truth(
    pool: &PgPool,
    run_id: &str,
    scenario: &str,
    truth: &[InjectionRecord],
) {
    heal_store::faults::record_ground_truth(pool, run_id, scenario, truth)
        .await
        .unwrap();
}

#[derive(sqlx::FromRow)]
struct TruthRow {
    scenario: String,
    fault_index: i32,
    kind: String,
    target: String,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    rate: f64,
    params: Value,
    expected: String,
    affected_count: i64,
    affected_event_ids: Value,
}

/// Reads the ground truth of a run back, in fault order, checking the scenario name and the
/// fault indexes.
pub async fn read_ground_truth(
    pool: &PgPool,
    run_id: &str,
    scenario: &str,
) -> Vec<InjectionRecord> {
    let rows: Vec<TruthRow> = sqlx::query_as(
        "SELECT scenario, fault_index, kind, target, window_start, window_end, rate, params,
                expected, affected_count, affected_event_ids
         FROM fault_injections WHERE run_id = $1 ORDER BY fault_index",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            assert_eq!(row.scenario, scenario);
            assert_eq!(row.fault_index, i as i32);
            let ids = row
                .affected_event_ids
                .as_array()
                .expect("affected_event_ids is a JSON array")
                .iter()
                .map(|v| v.as_str().expect("ids are strings").to_string())
                .collect();
            InjectionRecord {
                kind: FaultKind::from_str(&row.kind).expect("a known fault kind"),
                target: row.target,
                window_start: row.window_start,
                window_end: row.window_end,
                rate: row.rate,
                params: row.params,
                expected: row.expected,
                affected_count: u64::try_from(row.affected_count).expect("non-negative"),
                affected_event_ids: ids,
            }
        })
        .collect()
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RawRow {
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub produced_at: Option<DateTime<Utc>>,
    pub is_late: bool,
    pub duplicate_count: i32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuarantineRow {
    pub event_id: Option<String>,
    pub reason: String,
    pub source: String,
    pub source_topic: Option<String>,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub status: String,
}

/// What the database holds after a run.
pub struct Snapshot {
    pub raw: HashMap<String, RawRow>,
    pub quarantine: Vec<QuarantineRow>,
    pub dirty: BTreeMap<(String, NaiveDate), i64>,
    pub offsets: BTreeMap<i32, i64>,
    /// Rows per typed table.
    pub typed: BTreeMap<&'static str, i64>,
    /// Ids flagged late in the typed tables.
    pub typed_late: HashSet<String>,
}

impl Snapshot {
    pub async fn load(pool: &PgPool) -> Snapshot {
        let raw: Vec<RawRow> = sqlx::query_as(
            "SELECT event_id, event_type, occurred_at, source, source_partition, source_offset,
                    produced_at, is_late, duplicate_count
             FROM raw_events",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let quarantine: Vec<QuarantineRow> = sqlx::query_as(
            "SELECT event_id, reason, source, source_topic, source_partition, source_offset, status
             FROM quarantine ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let dirty: Vec<(String, NaiveDate, i64)> =
            sqlx::query_as("SELECT table_name, day, late_events FROM dirty_partitions")
                .fetch_all(pool)
                .await
                .unwrap();
        let offsets: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM consumer_offsets
             WHERE consumer_group = $1 AND topic = $2",
        )
        .bind(GROUP)
        .bind(TOPIC)
        .fetch_all(pool)
        .await
        .unwrap();
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM consumer_offsets WHERE consumer_group <> $1 OR topic <> $2",
        )
        .bind(GROUP)
        .bind(TOPIC)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(others, 0, "offsets only for the group and topic consumed");
        let mut typed = BTreeMap::new();
        let mut typed_late = HashSet::new();
        for kind in EventKind::ALL {
            let table = kind.table();
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(pool)
                .await
                .unwrap();
            typed.insert(table, n);
            let late: Vec<String> =
                sqlx::query_scalar(&format!("SELECT event_id FROM {table} WHERE is_late"))
                    .fetch_all(pool)
                    .await
                    .unwrap();
            typed_late.extend(late);
        }
        Snapshot {
            raw: raw.into_iter().map(|r| (r.event_id.clone(), r)).collect(),
            quarantine,
            dirty: dirty.into_iter().map(|(t, d, n)| ((t, d), n)).collect(),
            offsets: offsets.into_iter().collect(),
            typed,
            typed_late,
        }
    }

    pub fn quarantined_ids(&self) -> HashSet<String> {
        self.quarantine
            .iter()
            .filter_map(|q| q.event_id.clone())
            .collect()
    }
}

/// Stored events of `target` (an event target name or `all`) whose time is in `[from, to)`.
pub async fn stored_in_window(
    pool: &PgPool,
    target: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> i64 {
    let event_type = EventKind::from_target_name(target).map(|k| k.wire_name());
    sqlx::query_scalar(
        "SELECT count(*) FROM raw_events
         WHERE occurred_at >= $1 AND occurred_at < $2 AND ($3::text IS NULL OR event_type = $3)",
    )
    .bind(from)
    .bind(to)
    .bind(event_type)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The typed table and column holding a canonical field of `kind`.
pub fn column(kind: EventKind, field: &str) -> (&'static str, &'static str) {
    let column = match (kind, field) {
        (_, "amount") => "amount_minor",
        (EventKind::CartItemAdded, "price") => "unit_price_minor",
        (_, "price") => "price_minor",
        (_, "quantity") => "quantity",
        (_, "attempt") => "attempt",
        (_, "method") => "method",
        (_, "status") => "status",
        (_, "currency") => "currency",
        (_, "country") => "country",
        (_, "device") => "device",
        (_, "channel") => "channel",
        (_, "category") => "category",
        (_, "reason") => "reason",
        (kind, field) => panic!("no typed column known for {kind:?}.{field}: extend the test"),
    };
    (kind.table(), column)
}

/// A numeric canonical field of an event, as stored in its typed table.
pub fn numeric(ev: &CanonicalEvent, field: &str) -> Option<i64> {
    match (&ev.body, field) {
        (EventBody::Order { amount_minor, .. }, "amount")
        | (EventBody::Payment { amount_minor, .. }, "amount")
        | (EventBody::Refund { amount_minor, .. }, "amount") => Some(*amount_minor),
        (
            EventBody::CartItem {
                unit_price_minor, ..
            },
            "price",
        ) => Some(*unit_price_minor),
        (EventBody::ProductView { price_minor, .. }, "price") => *price_minor,
        (EventBody::CartItem { quantity, .. }, "quantity") => Some(i64::from(*quantity)),
        (EventBody::Payment { attempt, .. }, "attempt") => Some(i64::from(*attempt)),
        (body, field) => panic!("no numeric field {field} on {body:?}: extend the test"),
    }
}

/// A text canonical field of an event, as stored in its typed table.
pub fn text(ev: &CanonicalEvent, field: &str) -> Option<String> {
    match (&ev.body, field) {
        (EventBody::Payment { method, .. }, "method") => Some(method.clone()),
        (EventBody::Payment { status, .. }, "status") => Some(status.as_str().to_string()),
        (EventBody::Payment { currency, .. }, "currency")
        | (EventBody::Order { currency, .. }, "currency")
        | (EventBody::CartItem { currency, .. }, "currency")
        | (EventBody::Refund { currency, .. }, "currency") => Some(currency.clone()),
        (EventBody::Refund { reason, .. }, "reason") => Some(reason.clone()),
        (EventBody::ProductView { category, .. }, "category") => Some(category.clone()),
        (EventBody::ProductView { currency, .. }, "currency") => currency.clone(),
        (EventBody::Session { device, .. }, "device") => Some(device.clone()),
        (EventBody::Session { channel, .. }, "channel") => Some(channel.clone()),
        (EventBody::Session { country, .. }, "country") => country.clone(),
        (EventBody::User { country, .. }, "country") => Some(country.clone()),
        (EventBody::User { device, .. }, "device") => device.clone(),
        (EventBody::User { channel, .. }, "channel") => channel.clone(),
        (body, field) => panic!("no text field {field} on {body:?}: extend the test"),
    }
}
