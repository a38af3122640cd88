//! Incidents as the AI Ops engine would publish them, for the store's and the executor's tests.

#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use heal_model::incident::*;
use heal_model::quality::Severity;
use std::collections::BTreeMap;

pub fn at(h: i64) -> DateTime<Utc> {
    "2026-03-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h)
}

pub fn node(key: &str) -> NodeRef {
    let (kind, name) = key.split_once(':').unwrap();
    NodeRef {
        key: key.into(),
        kind: kind.into(),
        name: name.into(),
    }
}

/// An incident as the AI Ops engine would publish it.
pub fn incident(id: &str, class: IncidentClass, root: &str, symptoms: &[&str], h: i64) -> Incident {
    Incident {
        id: id.into(),
        fingerprint: format!("fp-{root}"),
        status: IncidentStatus::Open,
        severity: Severity::High,
        title: format!("{class} at {root}"),
        data_start: at(h),
        data_end: at(h + 1),
        detected_at_data: at(h + 1),
        opened_at: at(h + 1),
        updated_at: at(h + 1),
        resolved_at: None,
        previous: None,
        symptoms: symptoms
            .iter()
            .enumerate()
            .map(|(i, n)| Symptom {
                failure_event_id: format!("{id}-f{i}"),
                condition_id: i as i64,
                check: format!("check{i}"),
                check_type: "schema".into(),
                node: node(n),
                severity: Severity::High,
                data_start: at(h),
                data_end: at(h + 1),
                observed: Some(10.0),
                expected: None,
                lower: None,
                upper: None,
                threshold: "refused ≤ 0".into(),
                message: "10 refused".into(),
                reasons: BTreeMap::new(),
                sample: vec![],
                active: true,
            })
            .collect(),
        root_causes: vec![RootCause {
            rank: 1,
            node: node(root),
            class,
            mechanism: "test".into(),
            score: 0.9,
            grounded: true,
            factors: BTreeMap::new(),
            paths: vec![],
        }],
        classification: Classification {
            class,
            confidence: 0.9,
            low_confidence: false,
            scores: vec![(class, 0.9)],
            features: vec![format!("class:{class}")],
        },
        affected: vec![],
        explanation: Explanation {
            summary: "s".into(),
            evidence: vec![],
            since: at(h),
            origin: root.into(),
            impact: String::new(),
            confidence: "high".into(),
            runner_up: None,
            text: "t".into(),
            prose: None,
        },
        recommendations: vec![],
        failure_events: 1,
    }
}

pub fn message(change: IncidentChange, i: &Incident) -> IncidentMessage {
    IncidentMessage::new(change, i.clone())
}
