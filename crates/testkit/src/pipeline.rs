//! Scenario → ingest: a scenario's messages placed on partitions as a consumer of
//! `raw-events` receives them, and ingested in batches by the real ingest path (feature
//! `pipeline`).

use heal_generator::{GeneratedEvent, Generator, InjectionRecord, Scenario};
use heal_ingest::{BatchOutcome, Incoming, Ingestor, Settings, Source};
use sqlx::PgPool;
use std::collections::HashMap;

/// The source the ingest role reads: topic `raw-events` for group `heal-ingest`.
pub fn source() -> Source {
    Source::Topic {
        group: "heal-ingest".into(),
        topic: "raw-events".into(),
    }
}

/// Messages on `partitions` partitions (by key, as the producer places them) with offsets
/// counted per partition, in production order.
pub fn place(messages: &[GeneratedEvent], partitions: i32) -> Vec<Incoming> {
    let mut next: HashMap<i32, i64> = HashMap::new();
    messages
        .iter()
        .map(|m| {
            let partition = heal_bus::partition_for(m.key.as_bytes(), partitions);
            let offset = next.entry(partition).or_insert(0);
            let item = Incoming {
                partition: Some(partition),
                offset: Some(*offset),
                payload: m.payload.clone(),
                produced_at: Some(m.produced_at),
            };
            *offset += 1;
            item
        })
        .collect()
}

/// A scenario run to its end, placed on `partitions` partitions; with its ground truth.
pub fn deliveries(scenario: &Scenario, partitions: i32) -> (Vec<Incoming>, Vec<InjectionRecord>) {
    let mut generator = Generator::new(scenario);
    let messages: Vec<GeneratedEvent> = generator.by_ref().collect();
    (place(&messages, partitions), generator.ground_truth())
}

/// Ingests `items` from `source` in batches of `batch`, summing the outcomes (the indexes of
/// quarantined events are positions in `items`). Every event of a batch must be inserted, a
/// duplicate or quarantined.
pub async fn ingest_all(
    pool: &PgPool,
    source: &Source,
    items: &[Incoming],
    batch: usize,
) -> BatchOutcome {
    let ingestor = Ingestor::new(pool.clone(), Settings::default())
        .await
        .expect("ingestor");
    let mut total = BatchOutcome::default();
    for chunk in items.chunks(batch) {
        let offset = total.inserted + total.duplicates + total.quarantined.len() as u64;
        let out = ingestor
            .ingest(source, chunk.to_vec())
            .await
            .expect("batch ingests");
        assert_eq!(
            out.inserted + out.duplicates + out.quarantined.len() as u64,
            chunk.len() as u64,
            "every event of a batch is inserted, a duplicate or quarantined"
        );
        total.inserted += out.inserted;
        total.duplicates += out.duplicates;
        total.late += out.late;
        total
            .quarantined
            .extend(out.quarantined.into_iter().map(|mut q| {
                q.index += offset as usize;
                q
            }));
    }
    total
}
