//! The failure event the quality role publishes on `data-quality-checks`: one message per
//! change of an ongoing condition (opened, escalated, resolved), never one per failing run.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Schema tag of [`FailureEvent`] messages.
pub const FAILURE_EVENT_SCHEMA: &str = "heal.quality/1";

/// How bad a failing check is, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a severity; use low, medium, high or critical"))
    }
}

/// What happened to the condition this event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditionChange {
    /// The check started failing.
    Opened,
    /// Still failing, now at a higher severity.
    Escalated,
    /// The check passed again after failing.
    Resolved,
}

/// A structured failure: what failed, where, by how much, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureEvent {
    pub schema: String,
    pub event_id: String,
    pub emitted_at: DateTime<Utc>,
    pub change: ConditionChange,
    /// The ongoing condition (one per check and subject until it resolves).
    pub condition_id: i64,
    pub check: String,
    pub check_type: String,
    pub dataset: String,
    pub column: Option<String>,
    /// What the condition is about within the check: the dataset, or a job for pipeline
    /// health.
    pub subject: String,
    pub severity: Severity,
    pub observed: Option<f64>,
    /// The expected value (an anomaly's baseline).
    pub expected: Option<f64>,
    /// The band the value was expected in, when the check has one.
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The rule that failed, e.g. `null rate > 0.01`.
    pub threshold: String,
    /// The data the failing result covers.
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub partition: Option<NaiveDate>,
    pub run_id: Option<String>,
    pub message: String,
    /// A bounded sample of failing rows or keys.
    pub sample: Vec<Value>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Failing results folded into the condition so far.
    pub occurrences: i64,
    /// The data time the failure concerns: the windows' event time, the producers' send time
    /// of refused events, a job run's day partition. `first_seen`/`last_seen` and
    /// `emitted_at` are wall-clock time. Absent in messages from older producers: read
    /// [`FailureEvent::data_span`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_end: Option<DateTime<Utc>>,
    /// Structured detail of the failing result (e.g. `by_reason`: refused payloads per
    /// quarantine reason code).
    #[serde(default)]
    pub detail: Value,
}

impl FailureEvent {
    /// The data-time span of the failure, falling back to the result's window.
    pub fn data_span(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.data_start.unwrap_or(self.window_start);
        let end = self.data_end.unwrap_or(self.window_end).max(start);
        (start, end)
    }
}

/// Schema tag of [`RecheckRequest`] messages.
pub const RECHECK_SCHEMA: &str = "heal.quality.recheck/1";

/// A request, on `quality-requests`, that the quality role judge the named checks again now
/// rather than at its next cycle: the executor sends one when an incident's remediation is
/// applied, so verification reads fresh results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecheckRequest {
    pub schema: String,
    pub request_id: String,
    pub emitted_at: DateTime<Utc>,
    /// The incident whose verification waits for the checks.
    pub incident_id: String,
    /// Check names; names the quality role does not know are ignored.
    pub checks: Vec<String>,
    pub reason: String,
}

impl RecheckRequest {
    pub fn new(incident_id: &str, checks: Vec<String>, reason: &str) -> RecheckRequest {
        RecheckRequest {
            schema: RECHECK_SCHEMA.to_string(),
            request_id: uuid::Uuid::new_v4().to_string(),
            emitted_at: Utc::now(),
            incident_id: incident_id.to_string(),
            checks,
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recheck_request_round_trips() {
        let r = RecheckRequest::new("inc-1", vec!["orders_volume".into()], "remediation applied");
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(RECHECK_SCHEMA), "{text}");
        let back: RecheckRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
