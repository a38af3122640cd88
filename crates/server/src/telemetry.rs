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

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|_| {
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
    describe_histogram!(
        "heal_http_request_duration_seconds",
        "HTTP request latency, by route and status."
    );
}
