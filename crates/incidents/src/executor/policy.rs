//! What the executor may do on its own: a mode per action type and severity (`auto`, `approve`,
//! `off`), the hourly rate cap and the circuit breaker. Pure functions, so every rule is tested
//! here; the executor reads the counts they need from the audit log.

use heal_model::quality::Severity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How an action type is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Applied as soon as it is planned (within the caps).
    Auto,
    /// Waits for an operator to approve it through the API or the CLI.
    Approve,
    /// Never executed; shown as a recommendation only.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Approve => "approve",
            Mode::Off => "off",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Mode::Auto),
            "approve" => Ok(Mode::Approve),
            "off" => Ok(Mode::Off),
            _ => Err(format!("{s:?} is not a mode; use auto, approve or off")),
        }
    }
}

/// The mode of one action type: one for every severity, or per severity with a default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    pub default: Option<Mode>,
    pub by_severity: BTreeMap<Severity, Mode>,
}

impl Rule {
    pub fn always(mode: Mode) -> Rule {
        Rule {
            default: Some(mode),
            by_severity: BTreeMap::new(),
        }
    }
}

/// Modes per action type; an action type without a rule takes `default`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub default: Mode,
    pub rules: BTreeMap<String, Rule>,
}

impl Policy {
    /// The shipped policy: actions that only tell, hold or recompute from stored inputs run on
    /// their own; actions that delete or rewrite rows, or stop a source, wait for an operator
    /// when the incident is high or critical.
    pub fn standard() -> Policy {
        let mut rules = BTreeMap::new();
        for a in ["notify_owner", "hold_publication", "backfill", "rerun_job"] {
            rules.insert(a.to_string(), Rule::always(Mode::Auto));
        }
        for a in ["deduplicate", "replay_quarantine", "pause_source"] {
            rules.insert(
                a.to_string(),
                Rule {
                    default: Some(Mode::Auto),
                    by_severity: [
                        (Severity::High, Mode::Approve),
                        (Severity::Critical, Mode::Approve),
                    ]
                    .into(),
                },
            );
        }
        Policy {
            default: Mode::Approve,
            rules,
        }
    }

    /// Every action on its own (`heal demo`).
    pub fn all_auto() -> Policy {
        Policy {
            default: Mode::Auto,
            rules: BTreeMap::new(),
        }
    }

    pub fn mode(&self, action: &str, severity: Severity) -> Mode {
        match self.rules.get(action) {
            Some(r) => r
                .by_severity
                .get(&severity)
                .copied()
                .or(r.default)
                .unwrap_or(self.default),
            None => self.default,
        }
    }
}

/// Why an action that may run cannot run now.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// `max_actions_per_hour` actions were applied in the last hour.
    RateLimited { applied_last_hour: u32, cap: u32 },
    /// The last `failures` finished actions all failed; an operator resets the breaker.
    BreakerOpen { failures: u32 },
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::RateLimited {
                applied_last_hour,
                cap,
            } => write!(
                f,
                "rate cap reached: {applied_last_hour} actions applied in the last hour (cap {cap})"
            ),
            Hold::BreakerOpen { failures } => write!(
                f,
                "circuit breaker open after {failures} failed actions in a row; reset it with \
                 `heal incidents breaker-reset`"
            ),
        }
    }
}

/// The caps from configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Caps {
    pub max_actions_per_hour: u32,
    /// Failures in a row that open the breaker (0: never).
    pub breaker_failures: u32,
    /// Most assets an action may touch (its blast radius); larger ones are refused.
    pub max_blast_radius: u32,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_actions_per_hour: 20,
            breaker_failures: 3,
            max_blast_radius: 25,
        }
    }
}

/// Whether another action may be applied now, given how many were applied in the last hour and
/// how many finished actions failed in a row since the breaker was last reset.
pub fn may_apply(caps: &Caps, applied_last_hour: u32, failures_in_a_row: u32) -> Result<(), Hold> {
    if caps.breaker_failures > 0 && failures_in_a_row >= caps.breaker_failures {
        return Err(Hold::BreakerOpen {
            failures: failures_in_a_row,
        });
    }
    if applied_last_hour >= caps.max_actions_per_hour {
        return Err(Hold::RateLimited {
            applied_last_hour,
            cap: caps.max_actions_per_hour,
        });
    }
    Ok(())
}

/// Failures at the end of a sequence of outcomes (oldest first; `true` = worked).
pub fn failures_in_a_row(outcomes: &[bool]) -> u32 {
    outcomes.iter().rev().take_while(|ok| !**ok).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_per_severity_falls_back_to_its_default_then_the_policy_default() {
        let p = Policy::standard();
        assert_eq!(p.mode("deduplicate", Severity::Low), Mode::Auto);
        assert_eq!(p.mode("deduplicate", Severity::Critical), Mode::Approve);
        assert_eq!(p.mode("notify_owner", Severity::Critical), Mode::Auto);
        assert_eq!(p.mode("something_new", Severity::Low), Mode::Approve);
        let mut p = Policy {
            default: Mode::Off,
            rules: BTreeMap::new(),
        };
        p.rules.insert(
            "backfill".into(),
            Rule {
                default: None,
                by_severity: [(Severity::Low, Mode::Auto)].into(),
            },
        );
        assert_eq!(p.mode("backfill", Severity::Low), Mode::Auto);
        assert_eq!(p.mode("backfill", Severity::High), Mode::Off);
        assert_eq!(
            Policy::all_auto().mode("pause_source", Severity::Critical),
            Mode::Auto
        );
    }

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_and_the_rate_cap_holds() {
        let caps = Caps {
            max_actions_per_hour: 2,
            breaker_failures: 3,
            max_blast_radius: 10,
        };
        assert_eq!(may_apply(&caps, 0, 0), Ok(()));
        assert_eq!(
            may_apply(&caps, 2, 0),
            Err(Hold::RateLimited {
                applied_last_hour: 2,
                cap: 2
            })
        );
        assert_eq!(
            may_apply(&caps, 0, 3),
            Err(Hold::BreakerOpen { failures: 3 })
        );
        assert_eq!(failures_in_a_row(&[false, false, true, false, false]), 2);
        assert_eq!(failures_in_a_row(&[true]), 0);
        assert_eq!(failures_in_a_row(&[]), 0);
        let never = Caps {
            breaker_failures: 0,
            ..caps
        };
        assert_eq!(may_apply(&never, 0, 50), Ok(()));
        assert!(Hold::BreakerOpen { failures: 3 }
            .to_string()
            .contains("breaker"));
    }

    #[test]
    fn modes_parse_and_name_the_choices_when_wrong() {
        for m in [Mode::Auto, Mode::Approve, Mode::Off] {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert!("sometimes".parse::<Mode>().unwrap_err().contains("approve"));
    }
}
