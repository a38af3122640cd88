//! The metrics this crate records, declared once (name, kind, labels, help); the server
//! describes them to the Prometheus recorder and docs/observability.md lists them.

use heal_model::metric::Metric;

pub const METRICS: &[Metric] = &[
    Metric::counter(
        "heal_ingest_events_received_total",
        &["source"],
        "Events received by the ingest role, by source.",
    ),
    Metric::counter(
        "heal_ingest_events_inserted_total",
        &["source"],
        "Events stored for the first time, by source.",
    ),
    Metric::counter(
        "heal_ingest_events_duplicate_total",
        &["source"],
        "Deliveries of already stored events, by source.",
    ),
    Metric::counter(
        "heal_ingest_events_late_total",
        &["source"],
        "Events stored and flagged late, by source.",
    ),
    Metric::counter(
        "heal_ingest_events_quarantined_total",
        &["source", "reason"],
        "Events quarantined, by source and reason.",
    ),
    Metric::counter(
        "heal_ingest_batches_total",
        &["source"],
        "Batches committed, by source.",
    ),
    Metric::counter(
        "heal_ingest_batch_errors_total",
        &[],
        "Batches that failed and were retried.",
    ),
    Metric::counter(
        "heal_ingest_offset_gaps_total",
        &[],
        "Times the broker skipped records and a partition was re-read.",
    ),
    Metric::counter(
        "heal_ingest_stalled_partitions_total",
        &[],
        "Times a partition with records left delivered nothing and was re-read.",
    ),
];
