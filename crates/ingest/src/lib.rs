//! The ingest role. Events arrive from the `raw-events` topic or `POST /api/events`; each is
//! decoded and validated against its schema version, upcast to the canonical model and
//! normalized into the typed tables plus `raw_events`, in batches, one transaction per batch:
//!
//! * duplicates are recognized by the `raw_events` primary key (so across restarts and
//!   replicas) and counted, never stored twice;
//! * consumer offsets are written in the same transaction as the rows (exactly once);
//! * events behind their stream's watermark are stored, flagged late, and their (table, day)
//!   partitions are marked dirty for recomputation;
//! * anything that cannot be ingested goes to `quarantine` with its bytes, a reason code and
//!   its source; nothing is dropped and nothing stops the pipeline.

mod consumer;
mod http;
pub mod lineage;
pub mod metrics;
pub mod outage;
mod positions;
mod prepare;
pub mod quarantine;
mod write;

use chrono::{DateTime, Utc};
use heal_model::FieldMapping;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use consumer::{run_consumer, ConsumerStats};
pub use http::routes;
pub use prepare::{Prepared, Rejected};
pub use write::stored_offsets;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("bus: {0}")]
    Bus(#[from] heal_bus::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Ingest settings (from `heal-config`'s `[ingest]` section).
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_size: usize,
    pub batch_timeout: std::time::Duration,
    pub allowed_lateness: chrono::Duration,
    pub future_tolerance: chrono::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_size: 5000,
            batch_timeout: std::time::Duration::from_millis(200),
            allowed_lateness: chrono::Duration::hours(1),
            future_tolerance: chrono::Duration::minutes(5),
        }
    }
}

/// Where a batch came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A topic read by a consumer group; offsets are stored with the rows.
    Topic { group: String, topic: String },
    /// `POST /api/events`.
    Http,
    /// A quarantined event replayed by an operator.
    Replay,
}

impl Source {
    pub fn label(&self) -> &str {
        match self {
            Source::Topic { topic, .. } => topic,
            Source::Http => "http",
            Source::Replay => "replay",
        }
    }
}

/// One event as received.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub payload: Vec<u8>,
    /// When the producer sent it (the Kafka message timestamp), if known.
    pub produced_at: Option<DateTime<Utc>>,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchOutcome {
    /// Events stored for the first time.
    pub inserted: u64,
    /// Events whose id was already stored (or repeated in the batch).
    pub duplicates: u64,
    /// Events stored and flagged late.
    pub late: u64,
    /// Events quarantined, with their position in the batch.
    pub quarantined: Vec<QuarantinedItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuarantinedItem {
    pub index: usize,
    pub quarantine_id: i64,
    pub reason: String,
    pub detail: String,
    pub event_id: Option<String>,
}

/// The ingest pipeline over one database.
pub struct Ingestor {
    pool: PgPool,
    settings: Settings,
    /// Newest event time per stream, mirrored from `stream_watermarks` after each commit.
    watermarks: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Per stream, how many events in a row arrived alone and far ahead of its watermark
    /// (`prepare.rs`).
    pending: Mutex<HashMap<String, u32>>,
    /// The active field mappings and when they were read from `field_mappings`.
    mappings: Mutex<(Arc<Vec<FieldMapping>>, Instant)>,
    /// Where a committed micro-batch that quarantined events is announced (`pipeline-events`),
    /// so quarantine checks run at once rather than at the next quality cycle.
    events: Option<heal_bus::Bus>,
}

/// How long ingest uses the field mappings it read before reading them again.
const MAPPINGS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(2);

/// Publishes a [`PipelineStatus::Quarantined`](heal_model::pipeline::PipelineStatus) event of
/// the job `ingest` for a committed batch of `items`; a full in-process topic drops its oldest
/// record instead of blocking ingest.
async fn announce_refusals(bus: &heal_bus::Bus, items: &[Incoming], outcome: &BatchOutcome) {
    use heal_model::pipeline::{PipelineEvent, PipelineStatus};
    let now = Utc::now();
    let times: Vec<DateTime<Utc>> = outcome
        .quarantined
        .iter()
        .map(|q| {
            items
                .get(q.index)
                .and_then(|i| i.produced_at)
                .unwrap_or(now)
        })
        .collect();
    let (start, end) = (times.iter().min().copied(), times.iter().max().copied());
    let mut e = PipelineEvent::new(
        lineage::JOB_NAME,
        start.unwrap_or(now).date_naive(),
        uuid::Uuid::new_v4(),
        PipelineStatus::Quarantined,
    );
    e.rows_read = Some(items.len() as i64);
    e.rows_written = Some(outcome.inserted as i64);
    e.data_start = start;
    e.data_end = end;
    let record = heal_bus::Record {
        key: e.job.as_bytes().to_vec(),
        payload: serde_json::to_vec(&e).expect("pipeline events serialize"),
        timestamp_ms: now.timestamp_millis(),
    };
    if let Err(err) = bus
        .send_evicting(heal_model::topics::PIPELINE_EVENTS, vec![record])
        .await
    {
        tracing::warn!(error = %err, "cannot announce quarantined events");
    }
}

/// The active field mappings, in the order they were registered.
pub async fn active_mappings(pool: &PgPool) -> std::result::Result<Vec<FieldMapping>, sqlx::Error> {
    let rows: Vec<(String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT event_type, schema_version, from_field, to_field FROM field_mappings
         WHERE active ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(event_type, schema_version, from, to)| FieldMapping {
            event_type,
            schema_version,
            from,
            to,
        })
        .collect())
}

impl Ingestor {
    /// Creates the pipeline and loads the stored watermarks.
    pub async fn new(pool: PgPool, settings: Settings) -> Result<Ingestor> {
        let rows: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT stream, max_event_time FROM stream_watermarks")
                .fetch_all(&pool)
                .await?;
        let mappings = active_mappings(&pool).await?;
        Ok(Ingestor {
            pool,
            settings,
            watermarks: Mutex::new(rows.into_iter().collect()),
            pending: Mutex::new(HashMap::new()),
            mappings: Mutex::new((Arc::new(mappings), Instant::now())),
            events: None,
        })
    }

    /// Announces every committed micro-batch that quarantined events on `pipeline-events` of
    /// `bus` (a [`PipelineStatus::Quarantined`](heal_model::pipeline::PipelineStatus) event).
    pub fn with_events(mut self, bus: heal_bus::Bus) -> Ingestor {
        self.events = Some(bus);
        self
    }

    /// The field mappings in use.
    pub(crate) fn mappings(&self) -> Arc<Vec<FieldMapping>> {
        self.mappings.lock().expect("mappings lock").0.clone()
    }

    /// Reads the active field mappings again (at once, or when `only_if_old` and they were
    /// read more than two seconds ago).
    pub async fn refresh_mappings(&self, only_if_old: bool) -> Result<()> {
        if only_if_old
            && self.mappings.lock().expect("mappings lock").1.elapsed() < MAPPINGS_MAX_AGE
        {
            return Ok(());
        }
        let fresh = active_mappings(&self.pool).await?;
        *self.mappings.lock().expect("mappings lock") = (Arc::new(fresh), Instant::now());
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Ingests a batch in one transaction (offsets included for topic sources). If the
    /// database refuses the batch for its content, the events are retried one by one and an
    /// event it still refuses is quarantined as `storage_rejected`, so one bad row never blocks
    /// the stream.
    pub async fn ingest(&self, source: &Source, items: Vec<Incoming>) -> Result<BatchOutcome> {
        let outcome = self.ingest_batch(source, &items).await?;
        if let Some(bus) = &self.events {
            if !outcome.quarantined.is_empty() {
                announce_refusals(bus, &items, &outcome).await;
            }
        }
        Ok(outcome)
    }

    async fn ingest_batch(&self, source: &Source, items: &[Incoming]) -> Result<BatchOutcome> {
        self.refresh_mappings(true).await?;
        let prepared = self.prepare(source, items);
        match self.commit(source, items, &prepared).await {
            Ok(outcome) => Ok(outcome),
            // A database that cannot take writes at all is not refusing these rows.
            Err(Error::Db(sqlx::Error::Database(db)))
                if items.len() > 1 && !outage::unavailable_state(db.as_ref()) =>
            {
                tracing::warn!(error = %db, events = items.len(), "batch refused by the database; retrying events one by one");
                let mut total = BatchOutcome::default();
                for (i, item) in items.iter().enumerate() {
                    let one = std::slice::from_ref(item);
                    let outcome = Box::pin(self.ingest_batch(source, one)).await?;
                    total.inserted += outcome.inserted;
                    total.duplicates += outcome.duplicates;
                    total.late += outcome.late;
                    total
                        .quarantined
                        .extend(outcome.quarantined.into_iter().map(|mut q| {
                            q.index = i;
                            q
                        }));
                }
                Ok(total)
            }
            Err(Error::Db(sqlx::Error::Database(db)))
                if !outage::unavailable_state(db.as_ref()) =>
            {
                let rejected = Rejected {
                    index: 0,
                    reason: "storage_rejected".into(),
                    detail: format!("the database refused the event: {}", db.message()),
                    event_id: prepared.accepted.first().map(|a| a.event.event_id.clone()),
                };
                let only = Prepared {
                    accepted: Vec::new(),
                    rejected: vec![rejected],
                    ..Prepared::default()
                };
                self.commit(source, items, &only).await
            }
            Err(e) => Err(e),
        }
    }

    async fn commit(
        &self,
        source: &Source,
        items: &[Incoming],
        prepared: &Prepared,
    ) -> Result<BatchOutcome> {
        let mut tx = self.pool.begin().await?;
        let outcome = write::write(&mut tx, source, items, prepared).await?;
        if let Source::Topic { group, topic } = source {
            write::store_offsets(&mut tx, group, topic, items).await?;
        }
        tx.commit().await?;
        self.watermarks
            .lock()
            .expect("watermark lock")
            .extend(prepared.watermarks.iter().map(|(k, v)| (k.clone(), *v)));
        record_metrics(source, items.len(), &outcome);
        Ok(outcome)
    }
}

/// Rows in `raw_events` and each typed table, in a stable order.
pub async fn table_counts(pool: &PgPool) -> std::result::Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT 'raw_events', count(*) FROM raw_events UNION ALL
         SELECT 'users', count(*) FROM users UNION ALL
         SELECT 'sessions', count(*) FROM sessions UNION ALL
         SELECT 'product_views', count(*) FROM product_views UNION ALL
         SELECT 'cart_items', count(*) FROM cart_items UNION ALL
         SELECT 'orders', count(*) FROM orders UNION ALL
         SELECT 'payments', count(*) FROM payments UNION ALL
         SELECT 'refunds', count(*) FROM refunds",
    )
    .fetch_all(pool)
    .await
}

fn record_metrics(source: &Source, received: usize, outcome: &BatchOutcome) {
    let label = source.label().to_string();
    ::metrics::counter!("heal_ingest_events_received_total", "source" => label.clone())
        .increment(received as u64);
    ::metrics::counter!("heal_ingest_events_inserted_total", "source" => label.clone())
        .increment(outcome.inserted);
    ::metrics::counter!("heal_ingest_events_duplicate_total", "source" => label.clone())
        .increment(outcome.duplicates);
    ::metrics::counter!("heal_ingest_events_late_total", "source" => label.clone())
        .increment(outcome.late);
    for q in &outcome.quarantined {
        ::metrics::counter!("heal_ingest_events_quarantined_total", "source" => label.clone(), "reason" => q.reason.clone()).increment(1);
    }
    ::metrics::counter!("heal_ingest_batches_total", "source" => label).increment(1);
}
