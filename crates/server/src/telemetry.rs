//! Structured logs (text or JSON) and the Prometheus metrics recorder.

use heal_config::LogFormat;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the log subscriber (once per process; later calls are ignored). `RUST_LOG`
/// overrides `level`.
pub fn init_logs(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},sqlx=warn,rdkafka=warn,wasmer=warn,pglite_oxide=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

/// Upper bounds (seconds) of the duration histograms' buckets.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        // Durations get real histogram buckets (aggregatable across replicas), not summaries.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                &DURATION_BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let handle = builder.install_recorder().unwrap_or_else(|_| {
            // Another recorder is installed (e.g. by a test): render from a private one.
            PrometheusBuilder::new().build_recorder().handle()
        });
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "heal_ingest_events_received_total",
        "Events received by the ingest role, by source."
    );
    describe_counter!(
        "heal_ingest_events_inserted_total",
        "Events stored for the first time, by source."
    );
    describe_counter!(
        "heal_ingest_events_duplicate_total",
        "Deliveries of already stored events, by source."
    );
    describe_counter!(
        "heal_ingest_events_late_total",
        "Events stored and flagged late, by source."
    );
    describe_counter!(
        "heal_ingest_events_quarantined_total",
        "Events quarantined, by source and reason."
    );
    describe_counter!("heal_ingest_batches_total", "Batches committed, by source.");
    describe_counter!(
        "heal_ingest_batch_errors_total",
        "Batches that failed and were retried."
    );
    describe_counter!(
        "heal_generator_events_sent_total",
        "Events the generator published."
    );
    describe_gauge!("heal_up", "1 while the role runs, by role.");
    describe_counter!(
        "heal_ingest_offset_gaps_total",
        "Times the broker skipped records and a partition was re-read."
    );
    describe_counter!(
        "heal_ingest_stalled_partitions_total",
        "Times a partition with records left delivered nothing and was re-read."
    );
    describe_counter!(
        "heal_batch_runs_total",
        "Partition runs finished, by batch_job and status."
    );
    describe_counter!(
        "heal_batch_attempt_failures_total",
        "Failed attempts of partition runs, by batch_job."
    );
    describe_histogram!(
        "heal_batch_partition_seconds",
        "Wall time of one partition run, retries included, by batch_job."
    );
    describe_counter!(
        "heal_batch_rows_written_total",
        "Rows written by successful partition runs, by batch_job."
    );
    describe_gauge!(
        "heal_batch_last_success_timestamp_seconds",
        "Unix time of the latest successful partition run, by batch_job."
    );
    describe_histogram!(
        "heal_http_request_duration_seconds",
        "HTTP request latency, by route and status."
    );
}
