//! The incident the AI Ops role publishes on `incidents`: correlated failures with their ranked
//! root causes (each grounded in a lineage path), a classification with its confidence, an
//! evidence-based explanation, the blast radius and typed remediation recommendations. One
//! message per change (opened, updated, resolved), each carrying the whole incident.

use crate::quality::Severity;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Schema tag of [`IncidentMessage`] messages.
pub const INCIDENT_SCHEMA: &str = "heal.incident/1";

/// What kind of problem an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncidentClass {
    /// Producers changed the shape of events (renamed fields, unknown schema versions).
    SchemaDrift,
    /// Payloads that cannot be read: malformed JSON, wrong types, broken encoding, impossible
    /// values such as timestamps in the future.
    DataCorruption,
    /// Required fields absent or null.
    MissingFields,
    /// The same event or key delivered more than once.
    DuplicateEvents,
    /// Events arriving after the allowed lateness.
    LateData,
    /// A drop, spike or outage of a source's traffic.
    VolumeAnomaly,
    /// Outliers or a shift in the distribution of values.
    ValueAnomaly,
    /// Rows pointing at keys that do not exist.
    ReferentialIntegrity,
    /// Tables not refreshed on time (delayed jobs).
    StaleData,
    /// Batch jobs failing.
    PipelineFailure,
    /// The database or the broker unavailable.
    Infrastructure,
    Unknown,
}

impl IncidentClass {
    pub const ALL: [IncidentClass; 12] = [
        IncidentClass::SchemaDrift,
        IncidentClass::DataCorruption,
        IncidentClass::MissingFields,
        IncidentClass::DuplicateEvents,
        IncidentClass::LateData,
        IncidentClass::VolumeAnomaly,
        IncidentClass::ValueAnomaly,
        IncidentClass::ReferentialIntegrity,
        IncidentClass::StaleData,
        IncidentClass::PipelineFailure,
        IncidentClass::Infrastructure,
        IncidentClass::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentClass::SchemaDrift => "SCHEMA_DRIFT",
            IncidentClass::DataCorruption => "DATA_CORRUPTION",
            IncidentClass::MissingFields => "MISSING_FIELDS",
            IncidentClass::DuplicateEvents => "DUPLICATE_EVENTS",
            IncidentClass::LateData => "LATE_DATA",
            IncidentClass::VolumeAnomaly => "VOLUME_ANOMALY",
            IncidentClass::ValueAnomaly => "VALUE_ANOMALY",
            IncidentClass::ReferentialIntegrity => "REFERENTIAL_INTEGRITY",
            IncidentClass::StaleData => "STALE_DATA",
            IncidentClass::PipelineFailure => "PIPELINE_FAILURE",
            IncidentClass::Infrastructure => "INFRASTRUCTURE",
            IncidentClass::Unknown => "UNKNOWN",
        }
    }

    /// The class a fault kind of the scenario format belongs to: the ground truth `heal eval`
    /// scores classifications against (documented in the README).
    pub fn of_fault(kind: crate::FaultKind) -> IncidentClass {
        use crate::FaultKind as K;
        match kind {
            K::MalformedJson | K::EncodingCorruption | K::TypeChange | K::FutureTimestamps => {
                IncidentClass::DataCorruption
            }
            K::MissingField | K::NullField => IncidentClass::MissingFields,
            K::SchemaDrift | K::InvalidSchemaVersion => IncidentClass::SchemaDrift,
            K::DuplicateEvents => IncidentClass::DuplicateEvents,
            K::LateEvents => IncidentClass::LateData,
            K::VolumeDrop | K::VolumeSpike | K::SourceOutage => IncidentClass::VolumeAnomaly,
            K::ValueOutlier | K::DistributionShift => IncidentClass::ValueAnomaly,
            K::OrphanReference => IncidentClass::ReferentialIntegrity,
            K::JobFailure => IncidentClass::PipelineFailure,
            K::JobDelay => IncidentClass::StaleData,
            K::DatabaseOutage => IncidentClass::Infrastructure,
        }
    }
}

impl fmt::Display for IncidentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IncidentClass {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == up)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "{s:?} is not an incident class; use one of {}",
                    all.join(", ")
                )
            })
    }
}

/// Where an incident is in its life, as the AI Ops engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Open,
    Resolved,
}

/// What happened to the incident this message reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentChange {
    Opened,
    Updated,
    Resolved,
}

/// A node of the lineage graph, as an incident names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeRef {
    /// The lineage node key (`dataset:postgres://heal:public.payments`), or `unresolved:<name>`
    /// when the graph does not know the name.
    pub key: String,
    /// `stream`, `dataset`, `job`, `check` or `kpi`.
    pub kind: String,
    /// The name users say (`payments`, `daily_revenue`, `raw-events`).
    pub name: String,
}

/// One failure event folded into an incident, reduced to what the engine reasons with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symptom {
    pub failure_event_id: String,
    pub condition_id: i64,
    pub check: String,
    pub check_type: String,
    pub node: NodeRef,
    pub severity: Severity,
    /// Data time the failure concerns.
    pub data_start: DateTime<Utc>,
    pub data_end: DateTime<Utc>,
    pub observed: Option<f64>,
    pub expected: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub threshold: String,
    pub message: String,
    /// Quarantine reason codes and their counts, when the failure is about refused events.
    #[serde(default)]
    pub reasons: std::collections::BTreeMap<String, i64>,
    /// Up to a few failing keys or rows.
    #[serde(default)]
    pub sample: Vec<Value>,
    /// False once the condition behind it resolved.
    pub active: bool,
}

/// One hop of a lineage path, in the direction data flows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathStep {
    pub from: NodeRef,
    pub to: NodeRef,
    /// The edge kind (`reads`, `writes`, `produces`, …).
    pub edge: String,
}

/// The lineage path from a root-cause candidate to one symptom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymptomPath {
    pub symptom: String,
    pub node: NodeRef,
    /// Empty when the candidate is the symptom's own node.
    pub steps: Vec<PathStep>,
}

/// A ranked root-cause candidate: a node and a mechanism.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    pub rank: u32,
    pub node: NodeRef,
    pub class: IncidentClass,
    /// What the engine believes happened there, in words.
    pub mechanism: String,
    pub score: f64,
    /// True when the graph has a path from this node to every symptom.
    pub grounded: bool,
    /// Parts of the score: coverage, precedence, position, evidence, codes.
    pub factors: std::collections::BTreeMap<String, f64>,
    pub paths: Vec<SymptomPath>,
}

/// A classification decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub class: IncidentClass,
    pub confidence: f64,
    /// True when the confidence is under the engine's bar: a person should look.
    pub low_confidence: bool,
    /// Every class with its probability, best first (at most five).
    pub scores: Vec<(IncidentClass, f64)>,
    /// The features the decision was made on.
    pub features: Vec<String>,
}

/// Something downstream that the incident puts at risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedAsset {
    pub node: NodeRef,
    pub distance: u32,
    /// For KPIs: `critical`, `high`, `medium`, `low`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criticality: Option<String>,
}

/// The evidence-grounded explanation; `text` renders the same facts for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub summary: String,
    /// What is wrong, one line per symptom, with its numbers.
    pub evidence: Vec<String>,
    pub since: DateTime<Utc>,
    /// Where it started: the top root cause and its paths.
    pub origin: String,
    pub impact: String,
    pub confidence: String,
    /// Why the runner-up cause was ranked lower.
    pub runner_up: Option<String>,
    pub text: String,
    /// The same, rewritten as prose by a configured language model (never the source of
    /// truth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prose: Option<String>,
}

/// A typed remediation action with its parameters filled from the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Register a field mapping for an event type and replay its quarantined events.
    ReplayQuarantine {
        event_type: Option<String>,
        reasons: Vec<String>,
        /// `from` → `to` renames to apply before replaying (empty: replay as is after a fix
        /// upstream).
        #[serde(default)]
        mapping: Vec<(String, String)>,
    },
    /// Recompute day partitions of a table and what is downstream of it.
    Backfill {
        dataset: String,
        from: String,
        to: String,
    },
    /// Run a failed job again for its partitions.
    RerunJob {
        job: String,
        partitions: Vec<String>,
    },
    /// Remove rows stored more than once.
    Deduplicate { dataset: String, key: Vec<String> },
    /// Keep suspect partitions out of what consumers read until verified.
    HoldPublication {
        datasets: Vec<String>,
        from: String,
        to: String,
    },
    /// Stop reading a source until its producer is fixed.
    PauseSource { stream: String },
    /// Tell the owner of a node.
    NotifyOwner {
        node: String,
        owner: Option<String>,
        reason: String,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::ReplayQuarantine { .. } => "replay_quarantine",
            Action::Backfill { .. } => "backfill",
            Action::RerunJob { .. } => "rerun_job",
            Action::Deduplicate { .. } => "deduplicate",
            Action::HoldPublication { .. } => "hold_publication",
            Action::PauseSource { .. } => "pause_source",
            Action::NotifyOwner { .. } => "notify_owner",
        }
    }
}

/// A recommended action, ranked by how often it worked on similar incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub rank: u32,
    #[serde(flatten)]
    pub action: Action,
    /// Prior success rate on incidents of this class (successes + 1) / (attempts + 2).
    pub success_rate: f64,
    pub rationale: String,
}

/// An incident as the AI Ops engine holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// Same fingerprint, same problem: a recurrence links to the previous incident.
    pub fingerprint: String,
    pub status: IncidentStatus,
    pub severity: Severity,
    pub title: String,
    /// Data time: from the earliest symptom to the latest.
    pub data_start: DateTime<Utc>,
    pub data_end: DateTime<Utc>,
    /// Data time at which the engine opened the incident (the end of the data that showed
    /// the first symptom).
    pub detected_at_data: DateTime<Utc>,
    /// Wall-clock times.
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The incident this one recurs after, when it does.
    pub previous: Option<String>,
    pub symptoms: Vec<Symptom>,
    pub root_causes: Vec<RootCause>,
    pub classification: Classification,
    pub affected: Vec<AffectedAsset>,
    pub explanation: Explanation,
    pub recommendations: Vec<Recommendation>,
    /// Failure events folded in so far (opened, escalated and resolved changes).
    pub failure_events: u64,
}

/// The message on `incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentMessage {
    pub schema: String,
    pub event_id: String,
    pub emitted_at: DateTime<Utc>,
    pub change: IncidentChange,
    pub incident: Incident,
}

impl IncidentMessage {
    pub fn new(change: IncidentChange, incident: Incident) -> IncidentMessage {
        IncidentMessage {
            schema: INCIDENT_SCHEMA.to_string(),
            event_id: uuid::Uuid::new_v4().to_string(),
            emitted_at: Utc::now(),
            change,
            incident,
        }
    }
}

/// Schema tag of [`FeedbackMessage`].
pub const FEEDBACK_SCHEMA: &str = "heal.feedback/1";

/// An operator's feedback on an incident, as the incidents role publishes it on
/// `incident-feedback`: the right class (the classifier learns it) and whether the
/// remediation worked (the success table that ranks recommendations learns it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackMessage {
    pub schema: String,
    pub event_id: String,
    pub emitted_at: DateTime<Utc>,
    pub incident_id: String,
    pub actor: String,
    /// The class the incident really was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<IncidentClass>,
    /// The lineage key of the real root cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
    /// Whether `action` worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation_worked: Option<bool>,
    /// The action the outcome is about (an [`Action`] name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl FeedbackMessage {
    pub fn new(incident_id: &str, actor: &str) -> FeedbackMessage {
        FeedbackMessage {
            schema: FEEDBACK_SCHEMA.to_string(),
            event_id: uuid::Uuid::new_v4().to_string(),
            emitted_at: Utc::now(),
            incident_id: incident_id.to_string(),
            actor: actor.to_string(),
            class: None,
            root_cause: None,
            remediation_worked: None,
            action: None,
        }
    }
}

/// Every action's name, as [`Action::name`] gives it.
pub const ACTION_NAMES: [&str; 7] = [
    "replay_quarantine",
    "backfill",
    "rerun_job",
    "deduplicate",
    "hold_publication",
    "pause_source",
    "notify_owner",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip_and_every_fault_kind_has_one() {
        for c in IncidentClass::ALL {
            assert_eq!(c.as_str().parse::<IncidentClass>(), Ok(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert_eq!(
            "schema-drift".parse::<IncidentClass>(),
            Ok(IncidentClass::SchemaDrift)
        );
        assert!("nope"
            .parse::<IncidentClass>()
            .unwrap_err()
            .contains("SCHEMA_DRIFT"));
        for k in crate::FaultKind::ALL {
            assert_ne!(IncidentClass::of_fault(k), IncidentClass::Unknown, "{k}");
        }
    }

    #[test]
    fn feedback_round_trips_and_leaves_out_what_was_not_said() {
        let mut f = FeedbackMessage::new("inc-1", "ana");
        f.class = Some(IncidentClass::LateData);
        f.remediation_worked = Some(true);
        f.action = Some("backfill".into());
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["class"], "LATE_DATA");
        assert!(v.get("root_cause").is_none());
        let back: FeedbackMessage = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
        assert!(ACTION_NAMES.contains(&"backfill"));
    }

    #[test]
    fn actions_serialize_with_their_name() {
        let a = Action::RerunJob {
            job: "daily_revenue".into(),
            partitions: vec!["2026-03-02".into()],
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["action"], "rerun_job");
        assert_eq!(a.name(), "rerun_job");
        let back: Action = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
