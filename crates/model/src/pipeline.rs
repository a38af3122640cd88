//! The pipeline event the batch role publishes on `pipeline-events` (one per run start, delay
//! and outcome), read by the quality role (to trigger its pipeline checks) and by AI Ops.

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
}

impl PipelineStatus {
    /// True for what ends or holds back a run (what the pipeline checks judge).
    pub fn is_outcome(self) -> bool {
        !matches!(self, PipelineStatus::Started)
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
}

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
        }
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
    }
}
