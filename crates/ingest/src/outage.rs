//! Storage outages as the ingest role sees them: a write that fails because the database is
//! unreachable, read-only or out of resources (never because of what the events contain) is
//! retried; once it has failed [`REPORT_AFTER`] times in a row the outage is reported as a
//! pipeline event of the job `ingest` with the reason `storage_unavailable`, and when a write
//! succeeds again its end is reported with the whole span of data it held back. The events
//! themselves wait in the topic (offsets are stored with the rows), so nothing is lost.

use crate::{Error, Incoming};
use chrono::{DateTime, Utc};
use heal_model::pipeline::{PipelineEvent, PipelineStatus, STORAGE_UNAVAILABLE};
use std::time::Instant;
use uuid::Uuid;

/// Consecutive failed writes before an outage is reported (a single lost connection is
/// retried silently).
pub const REPORT_AFTER: u32 = 3;

/// Whether `e` means the store cannot take writes at all (as opposed to refusing these rows).
pub fn unavailable(e: &Error) -> bool {
    match e {
        Error::Db(e) => storage_unavailable(e),
        Error::Bus(_) => false,
    }
}

/// SQLSTATE classes 08 (connection), 53 (resources), 57 (operator intervention: shutdown,
/// cancel), 58 (system) and 25006 (read-only transaction, e.g. a standby after failover); a
/// lost or unobtainable connection.
pub fn storage_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => unavailable_state(db.as_ref()),
        _ => false,
    }
}

/// [`storage_unavailable`] for an error the database answered with, by its SQLSTATE.
pub fn unavailable_state(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.code().is_some_and(|c| {
        let c = c.as_ref();
        c == "25006" || ["08", "53", "57", "58"].iter().any(|k| c.starts_with(k))
    })
}

/// The producers' send times of `items`, first and last.
pub fn span_of(items: &[Incoming]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let mut times = items.iter().filter_map(|i| i.produced_at);
    let first = times.next()?;
    Some(times.fold((first, first), |(a, b), t| (a.min(t), b.max(t))))
}

/// Tracks one outage at a time and says what to publish.
#[derive(Debug)]
pub struct OutageTracker {
    failures: u32,
    run_id: Uuid,
    since: Option<Instant>,
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    reported: bool,
    last_error: String,
}

impl Default for OutageTracker {
    fn default() -> Self {
        OutageTracker {
            failures: 0,
            run_id: Uuid::new_v4(),
            since: None,
            span: None,
            reported: false,
            last_error: String::new(),
        }
    }
}

impl OutageTracker {
    /// True while an outage has been reported and not yet ended.
    pub fn reported(&self) -> bool {
        self.reported
    }

    /// Records a failed write of events sent within `span` (see [`span_of`]). Returns the
    /// event announcing the outage the first time it counts as one; None for failures that
    /// are not about availability.
    pub fn failed(
        &mut self,
        error: &Error,
        span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Option<PipelineEvent> {
        if !unavailable(error) {
            return None;
        }
        self.failures += 1;
        self.since.get_or_insert_with(Instant::now);
        self.last_error = error.to_string();
        if let Some((from, to)) = span {
            self.span = Some(match self.span {
                None => (from, to),
                Some((a, b)) => (a.min(from), b.max(to)),
            });
        }
        if self.reported || self.failures < REPORT_AFTER {
            return None;
        }
        self.reported = true;
        let mut e = self.event(PipelineStatus::Failed);
        e.error = Some(format!(
            "the database cannot take writes ({} attempts): {}",
            self.failures, self.last_error
        ));
        Some(e)
    }

    /// Records a successful write. Returns the event ending a reported outage.
    pub fn succeeded(&mut self) -> Option<PipelineEvent> {
        let ended = self.reported.then(|| {
            let mut e = self.event(PipelineStatus::Succeeded);
            e.duration_ms = self.since.map(|s| s.elapsed().as_millis() as i64);
            e.error = Some(format!(
                "writes succeed again after {} failed attempts; last error: {}",
                self.failures, self.last_error
            ));
            e
        });
        *self = OutageTracker::default();
        ended
    }

    fn event(&self, status: PipelineStatus) -> PipelineEvent {
        let day = self.span.map(|s| s.0).unwrap_or_else(Utc::now).date_naive();
        let mut e = PipelineEvent::new(crate::lineage::JOB_NAME, day, self.run_id, status);
        e.attempt = self.failures;
        e.reason = Some(STORAGE_UNAVAILABLE.to_string());
        e.data_start = self.span.map(|s| s.0);
        e.data_end = self.span.map(|s| s.1);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(t: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let at = Incoming {
            partition: Some(0),
            offset: Some(0),
            payload: Vec::new(),
            produced_at: Some(t.parse().unwrap()),
        };
        span_of(&[at.clone(), at])
    }

    #[test]
    fn an_outage_is_reported_once_after_repeated_failures_and_ended_with_its_span() {
        let mut t = OutageTracker::default();
        let down = Error::Db(sqlx::Error::PoolTimedOut);
        assert!(t.failed(&down, item("2026-03-02T09:00:00Z")).is_none());
        assert!(t.failed(&down, item("2026-03-02T09:10:00Z")).is_none());
        let opened = t
            .failed(&down, item("2026-03-02T09:20:00Z"))
            .expect("third failure reports");
        assert_eq!(opened.status, PipelineStatus::Failed);
        assert_eq!(opened.job, "ingest");
        assert!(opened.is_infrastructure());
        assert_eq!(
            opened.data_start,
            Some("2026-03-02T09:00:00Z".parse().unwrap())
        );
        assert!(t.failed(&down, item("2026-03-02T10:30:00Z")).is_none());
        let closed = t.succeeded().expect("the end is reported");
        assert_eq!(closed.status, PipelineStatus::Succeeded);
        assert_eq!(closed.run_id, opened.run_id);
        assert_eq!(
            closed.data_end,
            Some("2026-03-02T10:30:00Z".parse().unwrap())
        );
        assert_eq!(closed.attempt, 4);
        assert!(t.succeeded().is_none(), "nothing more to end");
    }

    #[test]
    fn failures_that_are_not_about_availability_are_not_outages() {
        let mut t = OutageTracker::default();
        let other = Error::Db(sqlx::Error::RowNotFound);
        for _ in 0..5 {
            assert!(t.failed(&other, item("2026-03-02T09:00:00Z")).is_none());
        }
        assert!(t.succeeded().is_none());
        // Two blips, then success: never reported.
        let down = Error::Db(sqlx::Error::PoolTimedOut);
        t.failed(&down, None);
        t.failed(&down, None);
        assert!(t.succeeded().is_none());
    }
}
