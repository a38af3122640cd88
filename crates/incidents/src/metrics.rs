//! The metrics this crate records, declared once (name, kind, labels, help); the server
//! describes them to the Prometheus recorder and docs/observability.md lists them.

use heal_model::metric::Metric;

pub const METRICS: &[Metric] = &[
    Metric::counter(
        "heal_incidents_messages_total",
        &["outcome"],
        "Messages read from the incidents topic, by outcome (applied, repeated, unreadable).",
    ),
    Metric::counter(
        "heal_incidents_executor_actions_total",
        &["outcome"],
        "Self-healing actions by outcome (applied, failed, verified, rolled_back).",
    ),
];
