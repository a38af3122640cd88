//! The fault kinds a scenario file can inject, and where each one is expected to surface.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    MalformedJson,
    EncodingCorruption,
    MissingField,
    NullField,
    TypeChange,
    SchemaDrift,
    InvalidSchemaVersion,
    DuplicateEvents,
    LateEvents,
    FutureTimestamps,
    VolumeDrop,
    VolumeSpike,
    SourceOutage,
    ValueOutlier,
    DistributionShift,
    OrphanReference,
    JobFailure,
    JobDelay,
    DatabaseOutage,
}

impl FaultKind {
    pub const ALL: [FaultKind; 19] = [
        FaultKind::MalformedJson,
        FaultKind::EncodingCorruption,
        FaultKind::MissingField,
        FaultKind::NullField,
        FaultKind::TypeChange,
        FaultKind::SchemaDrift,
        FaultKind::InvalidSchemaVersion,
        FaultKind::DuplicateEvents,
        FaultKind::LateEvents,
        FaultKind::FutureTimestamps,
        FaultKind::VolumeDrop,
        FaultKind::VolumeSpike,
        FaultKind::SourceOutage,
        FaultKind::ValueOutlier,
        FaultKind::DistributionShift,
        FaultKind::OrphanReference,
        FaultKind::JobFailure,
        FaultKind::JobDelay,
        FaultKind::DatabaseOutage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::MalformedJson => "malformed_json",
            FaultKind::EncodingCorruption => "encoding_corruption",
            FaultKind::MissingField => "missing_field",
            FaultKind::NullField => "null_field",
            FaultKind::TypeChange => "type_change",
            FaultKind::SchemaDrift => "schema_drift",
            FaultKind::InvalidSchemaVersion => "invalid_schema_version",
            FaultKind::DuplicateEvents => "duplicate_events",
            FaultKind::LateEvents => "late_events",
            FaultKind::FutureTimestamps => "future_timestamps",
            FaultKind::VolumeDrop => "volume_drop",
            FaultKind::VolumeSpike => "volume_spike",
            FaultKind::SourceOutage => "source_outage",
            FaultKind::ValueOutlier => "value_outlier",
            FaultKind::DistributionShift => "distribution_shift",
            FaultKind::OrphanReference => "orphan_reference",
            FaultKind::JobFailure => "job_failure",
            FaultKind::JobDelay => "job_delay",
            FaultKind::DatabaseOutage => "database_outage",
        }
    }

    /// Faults that act on a batch job rather than on events; the generator only records them.
    pub fn targets_job(self) -> bool {
        matches!(self, FaultKind::JobFailure | FaultKind::JobDelay)
    }

    /// Faults that make a platform component unavailable for their window (the store refuses
    /// writes); the harness running the scenario (`heal eval`) makes them happen, the
    /// generator only records them.
    pub fn is_outage(self) -> bool {
        matches!(self, FaultKind::DatabaseOutage)
    }

    /// Faults the generator applies to the events it sends.
    pub fn mutates_events(self) -> bool {
        !self.targets_job() && !self.is_outage()
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown fault kind {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What one fault of a scenario did: the ground truth a run is scored against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectionRecord {
    pub kind: FaultKind,
    /// Event target name (`payment`, `all`, …) or batch job name.
    pub target: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub rate: f64,
    /// Resolved parameters (defaults filled in).
    pub params: Value,
    /// Where affected events should end up: `quarantine:<reason_code>`, `late`,
    /// `deduplicated`, `dropped`, `stored` or `job`.
    pub expected: String,
    /// Events affected. For `duplicate_events`, the number of extra copies sent; for
    /// `volume_spike`, the number of extra events.
    pub affected_count: u64,
    /// Ids of the affected events. For `duplicate_events` each duplicated event's id once
    /// (however many copies); for `volume_spike` the ids of the extra events.
    pub affected_event_ids: Vec<String>,
}
