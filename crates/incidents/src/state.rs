//! An incident's life: open → acknowledged → remediating → verifying → resolved | failed |
//! false_positive, with reopen. The moves are a pure function of the current state and what
//! is asked, so every rule is tested here; the store applies them in a transaction.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Open,
    Acknowledged,
    Remediating,
    Verifying,
    Resolved,
    Failed,
    FalsePositive,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Open,
        State::Acknowledged,
        State::Remediating,
        State::Verifying,
        State::Resolved,
        State::Failed,
        State::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Acknowledged => "acknowledged",
            State::Remediating => "remediating",
            State::Verifying => "verifying",
            State::Resolved => "resolved",
            State::Failed => "failed",
            State::FalsePositive => "false_positive",
        }
    }

    /// Resolved or false positive: nothing more to do unless reopened.
    pub fn is_closed(self) -> bool {
        matches!(self, State::Resolved | State::FalsePositive)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                format!("{s:?} is not a state; use one of {}", all.join(", "))
            })
    }
}

/// Why an incident was resolved (OpenMetadata's reasons, and the engine's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    FalsePositive,
    MissingData,
    Duplicates,
    OutOfBounds,
    Other,
    /// The AI Ops engine saw every condition pass and the quiet period end.
    ChecksPassed,
    /// The executor's verification passed.
    Remediated,
    /// An operator merged it into another incident (`merged_into`).
    Merged,
}

impl Reason {
    /// What an operator may give.
    pub const OPERATOR: [Reason; 5] = [
        Reason::FalsePositive,
        Reason::MissingData,
        Reason::Duplicates,
        Reason::OutOfBounds,
        Reason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FalsePositive => "false_positive",
            Reason::MissingData => "missing_data",
            Reason::Duplicates => "duplicates",
            Reason::OutOfBounds => "out_of_bounds",
            Reason::Other => "other",
            Reason::ChecksPassed => "checks_passed",
            Reason::Remediated => "remediated",
            Reason::Merged => "merged",
        }
    }

    /// An operator's reason from its name.
    pub fn operator(s: &str) -> Result<Reason, String> {
        Self::OPERATOR
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::OPERATOR.iter().map(|r| r.as_str()).collect();
                format!(
                    "{s:?} is not a resolution reason; use one of {}",
                    all.join(", ")
                )
            })
    }
}

/// What someone asks of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Acknowledge,
    StartRemediation,
    Verify,
    Resolve(Reason),
    Fail,
    Reopen,
}

impl Move {
    pub fn name(self) -> &'static str {
        match self {
            Move::Acknowledge => "acknowledge",
            Move::StartRemediation => "start remediation",
            Move::Verify => "verify",
            Move::Resolve(Reason::FalsePositive) => "mark as false positive",
            Move::Resolve(_) => "resolve",
            Move::Fail => "fail",
            Move::Reopen => "reopen",
        }
    }
}

/// The state `m` leads to from `from`, or why it cannot.
pub fn apply(from: State, m: Move) -> Result<State, String> {
    use State::*;
    let to = match (from, m) {
        (Open, Move::Acknowledge) => Acknowledged,
        (Open | Acknowledged | Failed, Move::StartRemediation) => Remediating,
        (Remediating, Move::Verify) => Verifying,
        (Remediating | Verifying, Move::Fail) => Failed,
        (Verifying, Move::Resolve(Reason::Remediated)) => Resolved,
        (_, Move::Resolve(Reason::Remediated)) => {
            return Err(format!(
                "only a verified remediation resolves as remediated (the incident is {from})"
            ))
        }
        (Open | Acknowledged | Verifying | Failed, Move::Resolve(Reason::FalsePositive)) => {
            FalsePositive
        }
        (Open | Acknowledged | Verifying | Failed, Move::Resolve(_)) => Resolved,
        (Resolved | FalsePositive | Failed, Move::Reopen) => Open,
        _ => return Err(format!("cannot {} an incident that is {from}", m.name())),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_life_of_a_healed_incident() {
        let mut s = State::Open;
        for m in [
            Move::Acknowledge,
            Move::StartRemediation,
            Move::Verify,
            Move::Resolve(Reason::Remediated),
        ] {
            s = apply(s, m).unwrap();
        }
        assert_eq!(s, State::Resolved);
        assert_eq!(apply(s, Move::Reopen), Ok(State::Open));
    }

    #[test]
    fn illegal_moves_are_refused_with_the_state_named() {
        let e = apply(State::Resolved, Move::Acknowledge).unwrap_err();
        assert!(e.contains("resolved") && e.contains("acknowledge"), "{e}");
        assert!(apply(State::Open, Move::Verify).is_err());
        assert!(apply(State::Open, Move::Reopen).is_err());
        assert!(apply(State::Acknowledged, Move::Acknowledge).is_err());
        assert!(apply(State::Remediating, Move::Resolve(Reason::Other)).is_err());
        assert!(apply(State::Open, Move::Resolve(Reason::Remediated)).is_err());
        assert!(apply(State::FalsePositive, Move::Resolve(Reason::Other)).is_err());
    }

    #[test]
    fn false_positive_is_its_own_end_and_failure_can_be_retried() {
        assert_eq!(
            apply(State::Open, Move::Resolve(Reason::FalsePositive)),
            Ok(State::FalsePositive)
        );
        assert_eq!(apply(State::Verifying, Move::Fail), Ok(State::Failed));
        assert_eq!(
            apply(State::Failed, Move::StartRemediation),
            Ok(State::Remediating)
        );
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
        }
        assert!(Reason::operator("checks_passed").is_err());
        assert_eq!(Reason::operator("duplicates"), Ok(Reason::Duplicates));
    }
}
