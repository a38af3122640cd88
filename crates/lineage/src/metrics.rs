//! The metrics this crate records, declared once (name, kind, labels, help); the server
//! describes them to the Prometheus recorder and docs/observability.md lists them.

use heal_model::metric::Metric;

pub const METRICS: &[Metric] = &[
    Metric::counter(
        "heal_lineage_events_accepted_total",
        &["source"],
        "OpenLineage events validated and stored in the event log, by source.",
    ),
    Metric::counter(
        "heal_lineage_events_rejected_total",
        &["source"],
        "Events refused as invalid OpenLineage, by source.",
    ),
    Metric::counter(
        "heal_lineage_events_refused_total",
        &[],
        "Stored events the graph refused on their own (marked and skipped).",
    ),
    Metric::counter(
        "heal_lineage_events_projected_total",
        &[],
        "Events of the lineage event log applied to the graph.",
    ),
];
