//! Topic names. The seed's three topics keep their names; the others are ours.

/// Raw events from producers (the generator, or anyone speaking the seed's format).
pub const RAW_EVENTS: &str = "raw-events";
/// Structured data-quality failure events (seed topic).
pub const DATA_QUALITY_CHECKS: &str = "data-quality-checks";
/// Incidents raised by AI Ops (seed topic).
pub const INCIDENTS: &str = "incidents";
/// Batch pipeline run events (succeeded, failed, delayed).
pub const PIPELINE_EVENTS: &str = "pipeline-events";
/// OpenLineage run events.
pub const LINEAGE_EVENTS: &str = "lineage-events";
/// Operators' feedback on incidents (the incidents role publishes, AI Ops learns from it).
pub const INCIDENT_FEEDBACK: &str = "incident-feedback";

/// Every topic the platform creates at start, in a stable order.
pub const ALL: [&str; 6] = [
    RAW_EVENTS,
    DATA_QUALITY_CHECKS,
    INCIDENTS,
    PIPELINE_EVENTS,
    LINEAGE_EVENTS,
    INCIDENT_FEEDBACK,
];
