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

/// Requests that the quality role judge named checks again at once (the executor sends them
/// when a remediation is applied).
pub const QUALITY_REQUESTS: &str = "quality-requests";

/// Every topic the platform creates at start, in a stable order.
pub const ALL: [&str; 7] = [
    RAW_EVENTS,
    DATA_QUALITY_CHECKS,
    INCIDENTS,
    PIPELINE_EVENTS,
    LINEAGE_EVENTS,
    INCIDENT_FEEDBACK,
    QUALITY_REQUESTS,
];
