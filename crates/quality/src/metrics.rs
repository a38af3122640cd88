//! The metrics this crate records, declared once (name, kind, labels, help); the server
//! describes them to the Prometheus recorder and docs/observability.md lists them.

use heal_model::metric::Metric;

pub const METRICS: &[Metric] = &[
    Metric::histogram(
        "heal_quality_cycle_seconds",
        &[],
        "Wall time of one check cycle.",
    ),
    Metric::counter(
        "heal_quality_results_total",
        &["check_type", "status"],
        "Check results stored, by check_type and status.",
    ),
    Metric::counter(
        "heal_quality_conditions_opened_total",
        &["check_type"],
        "Failure conditions opened, by check_type.",
    ),
    Metric::counter(
        "heal_quality_failure_events_total",
        &[],
        "Failure events published on data-quality-checks.",
    ),
];
