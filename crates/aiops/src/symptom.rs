//! A failure event as the engine reasons with it: the lineage node it concerns, its data-time
//! span, the quarantine reason codes behind it, and the features the classifier reads.

use crate::topology::{NodeId, Topology};
use heal_model::incident::{NodeRef, Symptom};
use heal_model::pipeline::{PipelineEvent, PipelineStatus};
use heal_model::quality::{ConditionChange, FailureEvent, Severity, FAILURE_EVENT_SCHEMA};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A symptom with what the engine derived from it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub symptom: Symptom,
    /// The node in the graph, when the graph knows it.
    pub node: Option<NodeId>,
    /// The dataset a referential failure's keys point into (its orphans may be that
    /// dataset's fault: rows missing, late or refused there).
    pub related: Option<NodeId>,
    pub features: BTreeSet<String>,
}

/// The node a failure event is about: the job for a job's pipeline health or a platform
/// failure under a job, else the dataset.
pub fn node_of(e: &FailureEvent, topology: &Topology) -> (Option<NodeId>, NodeRef) {
    let (kind, name) = if (e.check_type == "pipeline" && e.subject != "ingest")
        || e.check_type == INFRASTRUCTURE
    {
        ("job", e.subject.as_str())
    } else {
        ("dataset", e.dataset.as_str())
    };
    let found = find_node(topology, kind, name);
    match found {
        Some(id) => {
            let n = topology.node(id);
            (
                Some(id),
                NodeRef {
                    key: n.key.clone(),
                    kind: n.kind.clone(),
                    name: n.name.clone(),
                },
            )
        }
        None => (
            None,
            NodeRef {
                key: format!("unresolved:{name}"),
                kind: kind.to_string(),
                name: name.to_string(),
            },
        ),
    }
}

/// The check type of failures the platform itself reports (a store that cannot take writes).
pub const INFRASTRUCTURE: &str = "infrastructure";

/// A pipeline event reporting the platform failing under a job (the ingest role's store
/// outage) as the failure event the engine reads: opened when it fails, resolved when it
/// recovers, one condition per outage. None for every other pipeline event (a job's own
/// outcome reaches the engine through the quality role's pipeline checks).
pub fn from_pipeline(e: &PipelineEvent) -> Option<FailureEvent> {
    if !e.is_infrastructure() {
        return None;
    }
    let change = match e.status {
        PipelineStatus::Failed => ConditionChange::Opened,
        PipelineStatus::Succeeded => ConditionChange::Resolved,
        _ => return None,
    };
    let reason = e.reason.clone().unwrap_or_default();
    let day = e
        .partition
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let start = e.data_start.unwrap_or(day);
    let end = e.data_end.unwrap_or(start).max(start);
    // One condition per outage, apart from the quality role's (positive) ids.
    let condition_id = -((e.run_id.as_u128() as i64) & i64::MAX).max(1);
    let attempts = e.attempt.max(1) as i64;
    Some(FailureEvent {
        schema: FAILURE_EVENT_SCHEMA.to_string(),
        event_id: e.event_id.to_string(),
        emitted_at: e.occurred_at,
        change,
        condition_id,
        check: format!("{}_{reason}", e.job),
        check_type: INFRASTRUCTURE.to_string(),
        dataset: String::new(),
        column: None,
        subject: e.job.clone(),
        severity: Severity::Critical,
        observed: Some(attempts as f64),
        expected: Some(0.0),
        lower: None,
        upper: None,
        threshold: "writes succeed".to_string(),
        window_start: start,
        window_end: end,
        partition: Some(e.partition),
        run_id: Some(e.run_id.to_string()),
        message: e
            .error
            .clone()
            .unwrap_or_else(|| format!("{} reports {reason}", e.job)),
        sample: Vec::new(),
        first_seen: e.occurred_at,
        last_seen: e.occurred_at,
        occurrences: attempts,
        data_start: Some(start),
        data_end: Some(end),
        detail: json!({
            "infrastructure": "database",
            "by_reason": { reason: attempts },
            "outage_ms": e.duration_ms,
        }),
    })
}

/// The dataset a referential symptom points into, in `topology`.
pub fn related_node(topology: &Topology, s: &Symptom) -> Option<NodeId> {
    referenced_in(&s.check_type, &s.message).and_then(|t| topology.find("dataset", &t))
}

/// The node of `kind` called `name`, else a stream of that name.
pub fn find_node(topology: &Topology, kind: &str, name: &str) -> Option<NodeId> {
    topology
        .find(kind, name)
        .or_else(|| topology.find("stream", name))
}

/// The table a referential failure refers to, read from its message ("… have no
/// orders.order_id").
pub fn referenced(e: &FailureEvent) -> Option<String> {
    referenced_in(&e.check_type, &e.message)
}

/// [`referenced`] from a symptom's check type and message.
pub fn referenced_in(check_type: &str, message: &str) -> Option<String> {
    if check_type != "referential" {
        return None;
    }
    let rest = message.rsplit_once(" have no ")?.1;
    let (table, _) = rest.trim().rsplit_once('.')?;
    Some(table.to_string())
}

/// Quarantine reason codes with counts, from the result's detail (`by_reason`) or its sample.
pub fn reasons(e: &FailureEvent) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    if let Some(by) = e.detail.get("by_reason").and_then(Value::as_object) {
        for (k, v) in by {
            out.insert(k.clone(), v.as_i64().unwrap_or(1));
        }
    }
    if out.is_empty() {
        for s in &e.sample {
            if let Some(r) = s.get("reason").and_then(Value::as_str) {
                *out.entry(r.to_string()).or_default() += 1;
            }
        }
    }
    out
}

/// The features of one failure: the check type, reason codes, the direction of a metric
/// against its band, a job run's outcome, the layer a freshness failure is on.
pub fn features(
    e: &FailureEvent,
    layer: Option<&str>,
    reasons: &BTreeMap<String, i64>,
) -> BTreeSet<String> {
    let mut f = BTreeSet::new();
    f.insert(format!("check:{}", e.check_type));
    for r in reasons.keys() {
        f.insert(format!("reason:{r}"));
    }
    if let Some(c) = &e.column {
        for c in c.split(',') {
            f.insert(format!("column:{}", c.trim()));
        }
    }
    if let Some(o) = e.observed {
        let low = e.lower.or(e.expected);
        let high = e.upper.or(e.expected);
        if low.is_some_and(|l| o < l) {
            f.insert("direction:low".into());
        } else if high.is_some_and(|h| o > h) {
            f.insert("direction:high".into());
        }
    }
    if e.check_type == "pipeline" {
        if e.subject == "ingest" {
            f.insert("pipeline:quarantine_rate".into());
        } else {
            let status = e
                .sample
                .first()
                .and_then(|s| s.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if status == "failed" || e.message.contains(" failed ") {
                f.insert("pipeline:failed".into());
            } else {
                f.insert("pipeline:delayed".into());
            }
        }
    }
    if e.check_type == "freshness" {
        let derived = !matches!(layer, Some("raw" | "source") | None);
        f.insert(format!(
            "freshness:{}",
            if derived { "derived" } else { "raw" }
        ));
    }
    if let Some(kind) = e.detail.get(INFRASTRUCTURE).and_then(Value::as_str) {
        f.insert(format!("infrastructure:{kind}"));
    }
    f
}

/// Normalizes a failure event against the graph.
pub fn observe(e: &FailureEvent, topology: &Topology) -> Observed {
    let (node, node_ref) = node_of(e, topology);
    let layer = node.and_then(|n| topology.node(n).layer.as_deref());
    let reasons = reasons(e);
    let features = features(e, layer, &reasons);
    let (data_start, data_end) = e.data_span();
    let related = referenced(e).and_then(|t| topology.find("dataset", &t));
    Observed {
        related,
        symptom: Symptom {
            failure_event_id: e.event_id.clone(),
            condition_id: e.condition_id,
            check: e.check.clone(),
            check_type: e.check_type.clone(),
            node: node_ref,
            severity: e.severity,
            data_start,
            data_end,
            observed: e.observed,
            expected: e.expected,
            lower: e.lower,
            upper: e.upper,
            threshold: e.threshold.clone(),
            message: e.message.clone(),
            reasons,
            sample: e.sample.iter().take(5).cloned().collect(),
            active: true,
        },
        node,
        features,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referential_failure_names_the_table_it_points_into() {
        let mut e: FailureEvent = serde_json::from_value(serde_json::json!({
            "schema": "heal.quality/1", "event_id": "x", "emitted_at": "2026-03-01T00:00:00Z",
            "change": "opened", "condition_id": 1, "check": "payments_reference_orders",
            "check_type": "referential", "dataset": "payments", "column": "order_id",
            "subject": "payments", "severity": "high", "observed": 0.2, "expected": null,
            "lower": null, "upper": null, "threshold": "orphan rate ≤ 0.01",
            "window_start": "2026-03-01T00:00:00Z", "window_end": "2026-03-01T01:00:00Z",
            "partition": null, "run_id": null,
            "message": "6 of 11 order_id values have no public.orders.order_id",
            "sample": [], "first_seen": "2026-03-01T00:00:00Z",
            "last_seen": "2026-03-01T00:00:00Z", "occurrences": 1
        }))
        .unwrap();
        assert_eq!(referenced(&e).as_deref(), Some("public.orders"));
        assert!(
            e.data_start.is_none() && e.detail.is_null(),
            "older messages still parse"
        );
        e.check_type = "validity".into();
        assert_eq!(referenced(&e), None);
    }
}
