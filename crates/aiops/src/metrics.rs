//! The metrics the AI Ops role emits, declared once in [`METRICS`] and each recorded in
//! exactly one function here (docs/observability.md lists them).

use heal_model::metric::Metric;

pub const METRICS: &[Metric] = &[
    Metric::counter(
        "heal_aiops_incidents_opened_total",
        &[],
        "incidents the engine opened",
    ),
    Metric::counter(
        "heal_aiops_failure_events_total",
        &[],
        "failure events the engine folded into incidents",
    ),
    Metric::gauge(
        "heal_aiops_failure_events_per_incident",
        &[],
        "failure events per incident over the incidents held (correlation compression)",
    ),
    Metric::histogram(
        "heal_aiops_decision_seconds",
        &[],
        "time from a batch of failure events read to its incident messages published",
    ),
    Metric::counter(
        "heal_aiops_dead_letters_total",
        &["topic"],
        "messages on the role's topics that could not be read (kept in aiops_dead_letters)",
    ),
    Metric::gauge(
        "heal_aiops_open_incidents",
        &[],
        "incidents open in the engine",
    ),
];

/// Shows the counters at zero, so a scrape lists them before anything happened (the server
/// describes every crate's `METRICS`).
pub fn register(topics: &[&str]) {
    metrics::counter!("heal_aiops_incidents_opened_total").increment(0);
    metrics::counter!("heal_aiops_failure_events_total").increment(0);
    for t in topics {
        metrics::counter!("heal_aiops_dead_letters_total", "topic" => t.to_string()).increment(0);
    }
}

pub fn incident_opened() {
    metrics::counter!("heal_aiops_incidents_opened_total").increment(1);
}

pub fn failure_events(n: usize) {
    metrics::counter!("heal_aiops_failure_events_total").increment(n as u64);
}

pub fn held(open: usize, events_per_incident: f64) {
    metrics::gauge!("heal_aiops_open_incidents").set(open as f64);
    metrics::gauge!("heal_aiops_failure_events_per_incident").set(events_per_incident);
}

pub fn decision(seconds: f64) {
    metrics::histogram!("heal_aiops_decision_seconds").record(seconds);
}

pub fn dead_letter(topic: &str) {
    metrics::counter!("heal_aiops_dead_letters_total", "topic" => topic.to_string()).increment(1);
}
