//! The pipeline event the batch role publishes on `pipeline-events` (one per run start, delay
//! and outcome), and the ingest role when its store stops taking writes and when it takes
//! them again, and whenever a micro-batch it committed refused events; read by the quality
//! role (to trigger its pipeline checks, and its quarantine checks at once) and by AI Ops.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Schema tag of [`PipelineEvent`] messages.
pub const PIPELINE_EVENT_SCHEMA: &str = "heal.pipeline/1";

/// Pipeline event statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineStatus {
    Started,
    Succeeded,
    Failed,
    Delayed,
    /// The ingest role committed a micro-batch in which it quarantined events (`rows_read`:
    /// events in the batch, `rows_written`: stored, `data_start`/`data_end`: the refused
    /// events' send times). Not a job's outcome: the quality role runs the checks that read
    /// the quarantine at once instead of waiting for its next cycle.
    Quarantined,
}

impl PipelineStatus {
    /// True for what ends or holds back a run (what the pipeline checks judge).
    pub fn is_outcome(self) -> bool {
        !matches!(self, PipelineStatus::Started | PipelineStatus::Quarantined)
    }
}

/// A pipeline event: one job run's partition, what happened to it and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineEvent {
    pub schema: String,
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub job: String,
    /// The day partition (data time) the run computes.
    pub partition: NaiveDate,
    pub run_id: Uuid,
    pub status: PipelineStatus,
    pub attempt: u32,
    pub error: Option<String>,
    pub rows_read: Option<i64>,
    pub rows_written: Option<i64>,
    pub duration_ms: Option<i64>,
    /// How late the run started because of a delay (simulated seconds).
    pub delayed_secs: Option<f64>,
    /// A stable code for what stopped the job when it is the platform rather than the job
    /// (e.g. [`STORAGE_UNAVAILABLE`]). Absent for a job's own outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The data time (producers' send time) the event concerns, when it is not the day
    /// partition: the events an outage held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_end: Option<DateTime<Utc>>,
}

/// The store refused or could not take writes (connection lost, read-only, out of resources).
pub const STORAGE_UNAVAILABLE: &str = "storage_unavailable";

/// Reason codes that mean the platform, not a job, is at fault.
pub const INFRASTRUCTURE_REASONS: &[&str] = &[STORAGE_UNAVAILABLE];

impl PipelineEvent {
    pub fn new(job: &str, day: NaiveDate, run_id: Uuid, status: PipelineStatus) -> Self {
        PipelineEvent {
            schema: PIPELINE_EVENT_SCHEMA.to_string(),
            event_id: Uuid::new_v4(),
            occurred_at: Utc::now(),
            job: job.to_string(),
            partition: day,
            run_id,
            status,
            attempt: 0,
            error: None,
            rows_read: None,
            rows_written: None,
            duration_ms: None,
            delayed_secs: None,
            reason: None,
            data_start: None,
            data_end: None,
        }
    }

    /// True when the event reports the platform failing (or recovering) under a job.
    pub fn is_infrastructure(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|r| INFRASTRUCTURE_REASONS.contains(&r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_batch_role_writes_the_consumers_read() {
        let mut e = PipelineEvent::new(
            "daily_revenue",
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            Uuid::new_v4(),
            PipelineStatus::Failed,
        );
        e.error = Some("boom".into());
        let bytes = serde_json::to_vec(&e).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["schema"], PIPELINE_EVENT_SCHEMA);
        let back: PipelineEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, e);
        assert!(back.status.is_outcome());
        assert!(v.get("reason").is_none(), "optional fields are left out");
        assert!(!back.is_infrastructure());
    }

    #[test]
    fn an_outage_event_round_trips_and_older_readers_ignore_its_fields() {
        let mut e = PipelineEvent::new(
            "ingest",
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            Uuid::new_v4(),
            PipelineStatus::Failed,
        );
        e.reason = Some(STORAGE_UNAVAILABLE.into());
        e.data_start = Some("2026-03-02T09:00:00Z".parse().unwrap());
        e.data_end = Some("2026-03-02T10:30:00Z".parse().unwrap());
        let bytes = serde_json::to_vec(&e).unwrap();
        let back: PipelineEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, e);
        assert!(back.is_infrastructure());
        // A message without the optional fields still reads.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for k in ["reason", "data_start", "data_end"] {
            v.as_object_mut().unwrap().remove(k);
        }
        let old: PipelineEvent = serde_json::from_value(v).unwrap();
        assert_eq!(old.reason, None);
    }
}
