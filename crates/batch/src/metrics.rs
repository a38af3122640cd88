//! The metrics this crate records, declared once (name, kind, labels, help); the server
//! describes them to the Prometheus recorder and docs/observability.md lists them.

use heal_model::metric::Metric;

pub const METRICS: &[Metric] = &[
    Metric::counter(
        "heal_batch_runs_total",
        &["batch_job", "status"],
        "Partition runs finished, by batch_job and status.",
    ),
    Metric::counter(
        "heal_batch_attempt_failures_total",
        &["batch_job"],
        "Failed attempts of partition runs, by batch_job.",
    ),
    Metric::histogram(
        "heal_batch_partition_seconds",
        &["batch_job"],
        "Wall time of one partition run, retries included, by batch_job.",
    ),
    Metric::counter(
        "heal_batch_rows_written_total",
        &["batch_job"],
        "Rows written by successful partition runs, by batch_job.",
    ),
    Metric::gauge(
        "heal_batch_last_success_timestamp_seconds",
        &["batch_job"],
        "Unix time of the latest successful partition run, by batch_job.",
    ),
];
