//! Remediation recommendations: typed actions per class, their parameters filled from the
//! evidence (the event type and reason codes of refused payloads, a field rename read from the
//! quarantine's detail, the partitions a failed job missed, the data-time span to hold), ranked
//! by prior success on incidents of the same class. The prior table starts from what each
//! action is built to fix; [`SuccessTable::record`] updates it from outcomes.

use heal_model::incident::{Action, IncidentClass, Recommendation};
use heal_model::EventKind;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// What the recommender knows about an incident.
pub struct Evidence<'a> {
    pub class: IncidentClass,
    /// The top root cause: kind and name.
    pub root_kind: &'a str,
    pub root_name: &'a str,
    pub root_owner: Option<&'a str>,
    /// Downstream datasets (the blast radius) by name.
    pub downstream: Vec<String>,
    pub reasons: BTreeSet<String>,
    /// Quarantine detail texts of sampled refused payloads.
    pub details: Vec<String>,
    /// Day partitions the symptoms concern (`YYYY-MM-DD`).
    pub days: Vec<String>,
    /// Failed job partitions, when the cause is a job.
    pub failed_partitions: Vec<String>,
    pub from: String,
    pub to: String,
    /// Keys the uniqueness symptoms name.
    pub key: Vec<String>,
}

/// (successes, attempts) per class and action.
#[derive(Debug, Clone, Default)]
pub struct SuccessTable {
    table: HashMap<(IncidentClass, &'static str), (f64, f64)>,
}

impl SuccessTable {
    /// The starting table: each action scored on the classes it is built for.
    pub fn with_priors() -> SuccessTable {
        use IncidentClass as C;
        let mut t = SuccessTable::default();
        let mut set = |c: IncidentClass, a: &'static str, s: f64, n: f64| {
            t.table.insert((c, a), (s, n));
        };
        for c in [C::SchemaDrift, C::MissingFields, C::DataCorruption] {
            set(c, "replay_quarantine", 8.0, 10.0);
            set(c, "notify_owner", 6.0, 10.0);
            set(c, "hold_publication", 5.0, 10.0);
        }
        set(C::DuplicateEvents, "deduplicate", 9.0, 10.0);
        set(C::DuplicateEvents, "backfill", 7.0, 10.0);
        set(C::LateData, "backfill", 9.0, 10.0);
        set(C::LateData, "hold_publication", 5.0, 10.0);
        set(C::VolumeAnomaly, "hold_publication", 6.0, 10.0);
        set(C::VolumeAnomaly, "notify_owner", 6.0, 10.0);
        set(C::VolumeAnomaly, "backfill", 5.0, 10.0);
        set(C::VolumeAnomaly, "pause_source", 3.0, 10.0);
        set(C::ValueAnomaly, "hold_publication", 7.0, 10.0);
        set(C::ValueAnomaly, "notify_owner", 6.0, 10.0);
        set(C::ReferentialIntegrity, "backfill", 7.0, 10.0);
        set(C::ReferentialIntegrity, "notify_owner", 5.0, 10.0);
        set(C::StaleData, "rerun_job", 8.0, 10.0);
        set(C::PipelineFailure, "rerun_job", 8.0, 10.0);
        set(C::PipelineFailure, "backfill", 6.0, 10.0);
        set(C::PipelineFailure, "notify_owner", 4.0, 10.0);
        set(C::Infrastructure, "notify_owner", 7.0, 10.0);
        set(C::Infrastructure, "rerun_job", 5.0, 10.0);
        set(C::Unknown, "notify_owner", 5.0, 10.0);
        t
    }

    /// Laplace-smoothed success rate.
    pub fn rate(&self, class: IncidentClass, action: &str) -> f64 {
        let (s, n) = self
            .table
            .iter()
            .find(|((c, a), _)| *c == class && *a == action)
            .map(|(_, v)| *v)
            .unwrap_or((0.0, 0.0));
        (s + 1.0) / (n + 2.0)
    }

    /// Records how an action turned out.
    pub fn record(&mut self, class: IncidentClass, action: &'static str, worked: bool) {
        let e = self.table.entry((class, action)).or_insert((0.0, 0.0));
        e.1 += 1.0;
        if worked {
            e.0 += 1.0;
        }
    }
}

/// A field rename read from a quarantine detail such as "required field `amount` is missing
/// and unknown field(s) `amount_cents` appeared": (`amount_cents`, `amount`).
pub fn rename_in(detail: &str) -> Option<(String, String)> {
    let ticks: Vec<&str> = detail.split('`').collect();
    // "… field `A` is missing and unknown field(s) `B` appeared": ticks[1] = A, ticks[3] = B.
    if detail.contains("is missing") && detail.contains("unknown field") && ticks.len() >= 4 {
        return Some((ticks[3].to_string(), ticks[1].to_string()));
    }
    None
}

fn event_type_of(table: &str) -> Option<String> {
    EventKind::ALL
        .iter()
        .find(|k| k.table() == table)
        .map(|k| k.wire_name().to_string())
}

/// The actions for an incident, best first.
pub fn recommend(e: &Evidence<'_>, table: &SuccessTable) -> Vec<Recommendation> {
    use IncidentClass as C;
    let mut actions: Vec<(Action, String)> = Vec::new();
    let notify = |why: &str| {
        (
            Action::NotifyOwner {
                node: format!("{}:{}", e.root_kind, e.root_name),
                owner: e.root_owner.map(str::to_string),
                reason: why.to_string(),
            },
            format!(
                "tells the owner of {} {} what broke and since when",
                e.root_kind, e.root_name
            ),
        )
    };
    let hold = || {
        (
            Action::HoldPublication {
                datasets: e.downstream.clone(),
                from: e.from.clone(),
                to: e.to.clone(),
            },
            format!(
                "{} downstream dataset(s) would publish suspect numbers for {} .. {}",
                e.downstream.len(),
                e.from,
                e.to
            ),
        )
    };
    let backfill = |dataset: &str| {
        (
            Action::Backfill {
                dataset: dataset.to_string(),
                from: e.days.first().cloned().unwrap_or_else(|| e.from.clone()),
                to: e.days.last().cloned().unwrap_or_else(|| e.to.clone()),
            },
            format!(
                "recomputes the {} affected day partition(s) of {dataset} and everything below it",
                e.days.len().max(1)
            ),
        )
    };
    match e.class {
        C::SchemaDrift | C::MissingFields | C::DataCorruption => {
            let mut mapping: Vec<(String, String)> =
                e.details.iter().filter_map(|d| rename_in(d)).collect();
            mapping.sort();
            mapping.dedup();
            let why = if mapping.is_empty() {
                "replays the refused events once the producer is fixed".to_string()
            } else {
                format!(
                    "the refused payloads carry {} where the schema expects {}: map and replay them",
                    mapping.iter().map(|m| m.0.as_str()).collect::<Vec<_>>().join(", "),
                    mapping.iter().map(|m| m.1.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
            actions.push((
                Action::ReplayQuarantine {
                    event_type: event_type_of(e.root_name),
                    reasons: e.reasons.iter().cloned().collect(),
                    mapping,
                },
                why,
            ));
            actions.push(notify(&format!("{} in events of {}", e.class, e.root_name)));
            actions.push(hold());
        }
        C::DuplicateEvents => {
            actions.push((
                Action::Deduplicate {
                    dataset: e.root_name.to_string(),
                    key: e.key.clone(),
                },
                format!("removes the repeated keys from {}", e.root_name),
            ));
            actions.push(backfill(e.root_name));
        }
        C::LateData | C::ReferentialIntegrity => {
            actions.push(backfill(e.root_name));
            if e.class == C::LateData {
                actions.push(hold());
            } else {
                actions.push(notify("rows reference keys that do not exist"));
            }
        }
        C::VolumeAnomaly => {
            actions.push(hold());
            actions.push(notify("traffic left its expected band"));
            actions.push(backfill(e.root_name));
            if e.root_kind == "stream" {
                actions.push((
                    Action::PauseSource {
                        stream: e.root_name.to_string(),
                    },
                    "stops reading a source that sends wrong volumes until it is fixed".into(),
                ));
            }
        }
        C::ValueAnomaly => {
            actions.push(hold());
            actions.push(notify("values left their usual distribution"));
        }
        C::StaleData | C::PipelineFailure | C::Infrastructure => {
            let job = if e.root_kind == "job" {
                e.root_name.to_string()
            } else {
                String::new()
            };
            if !job.is_empty() {
                let partitions = if e.failed_partitions.is_empty() {
                    e.days.clone()
                } else {
                    e.failed_partitions.clone()
                };
                actions.push((
                    Action::RerunJob {
                        job: job.clone(),
                        partitions,
                    },
                    format!("runs {job} again for the partitions it missed"),
                ));
            }
            if e.class == C::PipelineFailure {
                if let Some(first) = e.downstream.first() {
                    actions.push(backfill(first));
                }
            }
            actions.push(notify(&format!("{} at {}", e.class, e.root_name)));
        }
        C::Unknown => actions.push(notify("an unclassified data problem")),
    }
    let mut recs: Vec<Recommendation> = actions
        .into_iter()
        .map(|(action, rationale)| Recommendation {
            rank: 0,
            success_rate: (table.rate(e.class, action.name()) * 1000.0).round() / 1000.0,
            action,
            rationale,
        })
        .collect();
    recs.sort_by(|a, b| b.success_rate.total_cmp(&a.success_rate));
    for (i, r) in recs.iter_mut().enumerate() {
        r.rank = i as u32 + 1;
    }
    recs
}

/// Detail texts of the refused payloads sampled in failure events.
pub fn details(samples: &[Value]) -> Vec<String> {
    samples
        .iter()
        .filter_map(|s| s.get("detail").and_then(Value::as_str).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_is_read_from_the_quarantine_detail_and_carried_by_the_replay() {
        let d = "required field `amount` is missing and unknown field(s) `amount_cents` appeared";
        assert_eq!(rename_in(d), Some(("amount_cents".into(), "amount".into())));
        assert_eq!(rename_in("required field `amount` is missing"), None);
        let e = Evidence {
            class: IncidentClass::SchemaDrift,
            root_kind: "dataset",
            root_name: "payments",
            root_owner: None,
            downstream: vec!["stg_payments".into()],
            reasons: ["schema_drift".to_string()].into(),
            details: vec![d.into()],
            days: vec!["2026-03-02".into()],
            failed_partitions: vec![],
            from: "2026-03-02T15:00:00Z".into(),
            to: "2026-03-02T20:00:00Z".into(),
            key: vec![],
        };
        let recs = recommend(&e, &SuccessTable::with_priors());
        assert_eq!(recs[0].rank, 1);
        match &recs[0].action {
            Action::ReplayQuarantine {
                event_type,
                mapping,
                reasons,
            } => {
                assert_eq!(event_type.as_deref(), Some("PAYMENT_PROCESSED"));
                assert_eq!(
                    mapping,
                    &vec![("amount_cents".to_string(), "amount".to_string())]
                );
                assert_eq!(reasons, &vec!["schema_drift".to_string()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outcomes_move_the_ranking() {
        let mut t = SuccessTable::with_priors();
        let before = t.rate(IncidentClass::ValueAnomaly, "notify_owner");
        for _ in 0..20 {
            t.record(IncidentClass::ValueAnomaly, "notify_owner", false);
        }
        assert!(t.rate(IncidentClass::ValueAnomaly, "notify_owner") < before / 2.0);
    }
}
