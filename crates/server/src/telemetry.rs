//! Structured logs (text or JSON) and the Prometheus metrics recorder.

use heal_config::LogFormat;
use heal_model::metric::{Kind, Metric};
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

/// The metrics the server itself records.
pub const METRICS: &[Metric] = &[
    Metric::gauge("heal_up", &["role"], "1 while the role runs, by role."),
    Metric::histogram(
        "heal_http_request_duration_seconds",
        &["route", "status"],
        "HTTP request latency, by route (the matched path pattern) and status.",
    ),
];

/// Every metric a `heal` process can record: each crate's declarations.
pub fn all_metrics() -> Vec<Metric> {
    [
        METRICS,
        heal_generator::metrics::METRICS,
        heal_ingest::metrics::METRICS,
        heal_batch::metrics::METRICS,
        heal_quality::metrics::METRICS,
        heal_lineage::metrics::METRICS,
        heal_aiops::metrics::METRICS,
        heal_incidents::metrics::METRICS,
    ]
    .concat()
}

fn describe() {
    for m in all_metrics() {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// Records `heal_http_request_duration_seconds` for every request a role's router answers.
pub async fn time_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    metrics::histogram!(
        "heal_http_request_duration_seconds",
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// docs/observability.md's metrics table: name → (kind, labels).
    fn documented() -> BTreeMap<String, (String, Vec<String>)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/observability.md");
        let text = std::fs::read_to_string(path).expect("docs/observability.md");
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 5 || !cells[1].starts_with("`heal_") {
                continue;
            }
            let name = cells[1].trim_matches('`').to_string();
            let mut labels: Vec<String> = cells[3]
                .split(',')
                .map(|l| l.trim().trim_matches('`').to_string())
                .filter(|l| !l.is_empty() && l != "—")
                .collect();
            labels.sort();
            out.insert(name, (cells[2].to_string(), labels));
        }
        out
    }

    #[test]
    fn the_declared_metrics_are_the_documented_ones() {
        let docs = documented();
        let declared = all_metrics();
        let mut names = std::collections::BTreeSet::new();
        for m in &declared {
            assert!(names.insert(m.name), "{} is declared twice", m.name);
            let (kind, labels) = docs.get(m.name).unwrap_or_else(|| {
                panic!("{} is declared but not in docs/observability.md", m.name)
            });
            assert_eq!(kind, m.kind.as_str(), "{}", m.name);
            let mut want: Vec<String> = m.labels.iter().map(|l| l.to_string()).collect();
            want.sort();
            assert_eq!(labels, &want, "labels of {}", m.name);
            assert!(!m.help.is_empty(), "{} has no help", m.name);
        }
        for name in docs.keys() {
            assert!(
                names.contains(name.as_str()),
                "docs/observability.md lists {name}, which no crate declares"
            );
        }
    }
}
