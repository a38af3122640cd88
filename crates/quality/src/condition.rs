//! The condition state machine: how one judged result moves its check and subject's ongoing
//! condition. Pure; [`crate::runner`] reads the open condition, asks [`step`] and writes what
//! it says.

use crate::eval::Status;
use chrono::{DateTime, Utc};
use heal_model::quality::Severity;

/// The open condition of a check and subject, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Open {
    pub severity: Severity,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub occurrences: i64,
    /// Passing results in a row since the last failure.
    pub passes: u32,
}

/// A judged result, as far as the condition cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub status: Status,
    pub severity: Severity,
    pub window_end: DateTime<Utc>,
}

/// What a result does to the condition. The variants that change it as a whole (`Opened`,
/// `Escalated`, `Resolved`) are published as failure events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Nothing open and nothing failing, or a `learning` result on an open condition.
    Nothing,
    /// A failure with nothing open: a condition opens, first and last seen at the window's end.
    Opened,
    /// A further failure of the open condition: seen until `last_seen`, severity the higher
    /// of the two; `escalated` when the result's severity is above the condition's.
    Repeated {
        last_seen: DateTime<Utc>,
        severity: Severity,
        occurrences: i64,
        escalated: bool,
    },
    /// A pass that does not clear it yet: `passes` in a row now.
    Passed { passes: u32 },
    /// The `clear_after`-th pass in a row: the condition resolves.
    Resolved { passes: u32 },
}

/// The next step of the condition `open` (if any) given the result `r`; a condition clears
/// after `clear_after` passes in a row (at least one).
pub fn step(open: Option<&Open>, r: &Judged, clear_after: u32) -> Step {
    let failing = matches!(r.status, Status::Fail | Status::Error);
    match (open, failing) {
        (None, false) => Step::Nothing,
        (None, true) => Step::Opened,
        (Some(c), true) => Step::Repeated {
            last_seen: c.last_seen.max(r.window_end),
            severity: c.severity.max(r.severity),
            occurrences: c.occurrences + 1,
            escalated: r.severity > c.severity,
        },
        (Some(_), false) if r.status == Status::Learning => Step::Nothing,
        (Some(c), false) => {
            let passes = c.passes + 1;
            if passes < clear_after.max(1) {
                Step::Passed { passes }
            } else {
                Step::Resolved { passes }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap()
    }

    fn judged(status: Status, severity: Severity, h: u32) -> Judged {
        Judged {
            status,
            severity,
            window_end: at(h),
        }
    }

    fn open(severity: Severity, passes: u32) -> Open {
        Open {
            severity,
            first_seen: at(1),
            last_seen: at(3),
            occurrences: 2,
            passes,
        }
    }

    #[test]
    fn a_failure_opens_and_a_pass_with_nothing_open_does_nothing() {
        let fail = judged(Status::Fail, Severity::High, 4);
        assert_eq!(step(None, &fail, 2), Step::Opened);
        let error = judged(Status::Error, Severity::Medium, 4);
        assert_eq!(step(None, &error, 2), Step::Opened);
        for s in [Status::Pass, Status::Learning] {
            assert_eq!(step(None, &judged(s, Severity::High, 4), 2), Step::Nothing);
        }
    }

    #[test]
    fn a_repeated_failure_extends_and_escalates_only_upwards() {
        let c = open(Severity::Medium, 1);
        let higher = judged(Status::Fail, Severity::Critical, 5);
        assert_eq!(
            step(Some(&c), &higher, 2),
            Step::Repeated {
                last_seen: at(5),
                severity: Severity::Critical,
                occurrences: 3,
                escalated: true
            }
        );
        // A lower severity and an older window neither lower nor move back the condition.
        let older = judged(Status::Fail, Severity::Low, 2);
        assert_eq!(
            step(Some(&c), &older, 2),
            Step::Repeated {
                last_seen: at(3),
                severity: Severity::Medium,
                occurrences: 3,
                escalated: false
            }
        );
    }

    #[test]
    fn passes_clear_after_the_configured_count_and_learning_is_neutral() {
        let pass = judged(Status::Pass, Severity::Medium, 6);
        assert_eq!(
            step(Some(&open(Severity::High, 0)), &pass, 3),
            Step::Passed { passes: 1 }
        );
        assert_eq!(
            step(Some(&open(Severity::High, 2)), &pass, 3),
            Step::Resolved { passes: 3 }
        );
        // clear_after 0 is taken as 1: the first pass clears.
        assert_eq!(
            step(Some(&open(Severity::High, 0)), &pass, 0),
            Step::Resolved { passes: 1 }
        );
        let learning = judged(Status::Learning, Severity::Medium, 6);
        assert_eq!(
            step(Some(&open(Severity::High, 2)), &learning, 3),
            Step::Nothing
        );
    }
}
