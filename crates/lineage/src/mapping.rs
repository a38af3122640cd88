//! From an OpenLineage event (run, job or dataset event) to the graph update it implies:
//!
//! * the job, with its description, owner, processing type and — for run events — its
//!   newest run (state, time, run id, error);
//! * every input dataset `-reads->` the job, the job `-writes->` (or `-produces->`, for a
//!   stream) every output; streams are datasets in a `kafka://` (or `memory://`) namespace;
//! * dataset schema, owner, layer (the `heal` facet), row counts from output statistics;
//! * data-quality assertions on inputs as check nodes the dataset `-monitors->`;
//! * KPIs declared in the `heal` facet as KPI nodes the dataset `-measures->`;
//! * the column-lineage facet as column edges.

use crate::model::{
    truncate, ColumnEdge, EdgeKind, Node, NodeKind, Props, Update, MAX_DESCRIPTION, MAX_ERROR,
};
use serde_json::Value;

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Streams are datasets in a broker's namespace (`kafka://…`, and `memory://…` for the
/// in-process bus). Only the namespace decides, so every event naming a dataset gives it the
/// same key whatever facets it carries.
fn dataset_kind(namespace: &str) -> NodeKind {
    if namespace.starts_with("kafka://") || namespace.starts_with("memory://") {
        NodeKind::Stream
    } else {
        NodeKind::Dataset
    }
}

fn owner(facets: &Value) -> Option<String> {
    facets["ownership"]["owners"]
        .as_array()?
        .first()?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

/// A dataset node and its props from its facets.
fn dataset_node(d: &Value, producer: &str) -> Option<Node> {
    let namespace = d["namespace"].as_str()?;
    let name = d["name"].as_str()?;
    let facets = &d["facets"];
    let kind = dataset_kind(namespace);
    let fields = facets["schema"]["fields"].as_array().map(|fs| {
        fs.iter()
            .filter_map(|f| f["name"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    });
    let props = Props {
        layer: str_at(facets, &["heal", "layer"]).map(str::to_string),
        description: str_at(facets, &["documentation", "description"])
            .map(|s| truncate(s, MAX_DESCRIPTION)),
        owner: owner(facets),
        fields,
        subtype: str_at(facets, &["datasetType", "datasetType"]).map(str::to_string),
        producer: Some(producer.to_string()),
        ..Props::default()
    };
    Some(Node::new(kind, namespace, name, props))
}

/// The graph update `event` implies. Events are assumed valid (see [`crate::validate`]);
/// parts that are missing are left out rather than refused.
pub fn update(event: &Value) -> Update {
    let mut u = Update::default();
    let producer = event["producer"].as_str().unwrap_or_default();
    let at = event["eventTime"].as_str().map(normalize_time);
    let state = event["eventType"].as_str().map(str::to_ascii_uppercase);
    let is_run = event.get("run").is_some();

    let job = event.get("job").and_then(|j| {
        let namespace = j["namespace"].as_str()?;
        let name = j["name"].as_str()?;
        let facets = &j["facets"];
        let mut props = Props {
            description: str_at(facets, &["documentation", "description"])
                .map(|s| truncate(s, MAX_DESCRIPTION)),
            owner: owner(facets),
            subtype: str_at(facets, &["jobType", "processingType"]).map(str::to_string),
            producer: Some(producer.to_string()),
            ..Props::default()
        };
        if is_run {
            if let Some(state) = &state {
                props.last_run_state = Some(state.clone());
                props.last_run_at = at.clone();
                props.last_run_id = event["run"]["runId"].as_str().map(str::to_string);
                props.last_error = str_at(&event["run"]["facets"], &["errorMessage", "message"])
                    .map(|m| truncate(m, MAX_ERROR));
                if state == "COMPLETE" {
                    props.last_success_at = at.clone();
                }
            }
        }
        Some(Node::new(NodeKind::Job, namespace, name, props))
    });
    let job_key = job.as_ref().map(|j| j.key.clone());
    if let Some(j) = job {
        u.node(j);
    }

    // Datasets (event datasets of a DatasetEvent, inputs and outputs otherwise).
    if let Some(d) = event.get("dataset") {
        if let Some(n) = dataset_node(d, producer) {
            u.node(n);
        }
    }
    for d in event["inputs"].as_array().into_iter().flatten() {
        let Some(node) = dataset_node(d, producer) else {
            continue;
        };
        let key = node.key.clone();
        u.node(node);
        if let Some(j) = &job_key {
            u.edge(&key, j, EdgeKind::Reads);
        }
        checks(&mut u, d, &key, at.as_deref(), producer);
    }
    let complete = state.as_deref() == Some("COMPLETE");
    for d in event["outputs"].as_array().into_iter().flatten() {
        let Some(mut node) = dataset_node(d, producer) else {
            continue;
        };
        let rows = d["outputFacets"]["outputStatistics"]["rowCount"].as_i64();
        if complete {
            node.props.last_written_at = at.clone();
            node.props.row_count = rows;
        }
        let key = node.key.clone();
        let kind = node.kind;
        u.node(node);
        if let Some(j) = &job_key {
            let edge = if kind == NodeKind::Stream {
                EdgeKind::Produces
            } else {
                EdgeKind::Writes
            };
            u.edge(j, &key, edge);
        }
        kpis(&mut u, d, &key, producer);
        columns(&mut u, d, &key);
    }
    u
}

/// Data-quality assertions on an input dataset: a check node per assertion.
fn checks(u: &mut Update, d: &Value, dataset: &str, at: Option<&str>, producer: &str) {
    let namespace = d["namespace"].as_str().unwrap_or_default();
    let name = d["name"].as_str().unwrap_or_default();
    let assertions = d["inputFacets"]["dataQualityAssertions"]["assertions"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            d["facets"]["dataQualityAssertions"]["assertions"]
                .as_array()
                .into_iter()
                .flatten(),
        );
    for a in assertions {
        let Some(assertion) = a["assertion"].as_str() else {
            continue;
        };
        let column = a["column"].as_str().filter(|c| !c.is_empty());
        let check_name = match (a["name"].as_str(), column) {
            (Some(n), _) => format!("{name}:{n}"),
            (None, Some(c)) => format!("{name}:{assertion}({c})"),
            (None, None) => format!("{name}:{assertion}"),
        };
        let props = Props {
            description: a["description"]
                .as_str()
                .map(|s| truncate(s, MAX_DESCRIPTION))
                .or_else(|| Some(assertion.to_string())),
            column: column.map(str::to_string),
            check_success: a["success"].as_bool(),
            check_at: at.map(str::to_string),
            severity: a["severity"].as_str().map(str::to_string),
            producer: Some(producer.to_string()),
            ..Props::default()
        };
        let node = Node::new(NodeKind::Check, namespace, &check_name, props);
        let key = node.key.clone();
        u.node(node);
        u.edge(dataset, &key, EdgeKind::Monitors);
    }
}

/// KPIs the `heal` facet declares on an output dataset.
fn kpis(u: &mut Update, d: &Value, dataset: &str, producer: &str) {
    let namespace = d["namespace"].as_str().unwrap_or_default();
    for k in d["facets"]["heal"]["kpis"].as_array().into_iter().flatten() {
        let Some(name) = k["name"].as_str() else {
            continue;
        };
        let props = Props {
            criticality: k["criticality"].as_str().map(str::to_string),
            column: k["column"].as_str().map(str::to_string),
            description: k["description"]
                .as_str()
                .map(|s| truncate(s, MAX_DESCRIPTION)),
            producer: Some(producer.to_string()),
            ..Props::default()
        };
        let node = Node::new(NodeKind::Kpi, namespace, name, props);
        let key = node.key.clone();
        u.node(node);
        u.edge(dataset, &key, EdgeKind::Measures);
    }
}

/// The column-lineage facet of an output dataset.
fn columns(u: &mut Update, d: &Value, dataset: &str) {
    let Some(fields) = d["facets"]["columnLineage"]["fields"].as_object() else {
        return;
    };
    for (field, spec) in fields {
        for input in spec["inputFields"].as_array().into_iter().flatten() {
            let (Some(ns), Some(name), Some(src_field)) = (
                input["namespace"].as_str(),
                input["name"].as_str(),
                input["field"].as_str(),
            ) else {
                continue;
            };
            // The source is a node of this event when it is one; otherwise a dataset.
            let src = u
                .nodes
                .iter()
                .find(|n| n.namespace == ns && n.name == name && n.kind.is_data())
                .map(|n| n.key.clone())
                .unwrap_or_else(|| {
                    let node = Node::new(dataset_kind(ns), ns, name, Props::default());
                    let key = node.key.clone();
                    u.node(node);
                    key
                });
            let transformation = input["transformations"]
                .as_array()
                .and_then(|t| t.first())
                .map(|t| {
                    let ty = t["type"].as_str().unwrap_or("DIRECT");
                    match t["subtype"].as_str() {
                        Some(sub) => format!("{ty}/{sub}"),
                        None => ty.to_string(),
                    }
                })
                .unwrap_or_else(|| "DIRECT".to_string());
            u.column(ColumnEdge {
                src,
                src_field: src_field.to_string(),
                dst: dataset.to_string(),
                dst_field: field.clone(),
                transformation,
            });
        }
    }
}

/// Event times in one comparable form: RFC 3339 in UTC with milliseconds and `Z`, so that
/// "newer" is a string comparison in every backend.
pub fn normalize_time(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(parsed) => heal_model::openlineage::time(parsed.with_timezone(&chrono::Utc)),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_run_event_becomes_job_datasets_edges_checks_kpis_and_columns() {
        let event = json!({
            "eventType": "FAIL",
            "eventTime": "2026-03-01T10:00:00+01:00",
            "producer": "urn:test",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": { "runId": "3f5e9c4e-8a5b-4b53-9d0c-2e1b7b0f1a11",
                     "facets": { "errorMessage": { "message": "boom", "programmingLanguage": "SQL" } } },
            "job": { "namespace": "etl", "name": "load" },
            "inputs": [{ "namespace": "kafka://b:9092", "name": "clicks",
                         "inputFacets": { "dataQualityAssertions": { "assertions": [
                             { "assertion": "not_null", "column": "id", "success": false } ] } } }],
            "outputs": [{ "namespace": "pg://x", "name": "public.t",
                          "facets": { "heal": { "layer": "analytics",
                                                "kpis": [{ "name": "k", "column": "v", "criticality": "high" }] },
                                      "columnLineage": { "fields": { "v": { "inputFields": [
                                          { "namespace": "kafka://b:9092", "name": "clicks", "field": "id",
                                            "transformations": [{ "type": "DIRECT", "subtype": "AGGREGATION" }] } ] } } } } }],
        });
        let u = update(&event);
        let job = u.nodes.iter().find(|n| n.kind == NodeKind::Job).unwrap();
        assert_eq!(job.props.last_run_state.as_deref(), Some("FAIL"));
        assert_eq!(job.props.last_error.as_deref(), Some("boom"));
        assert_eq!(
            job.props.last_run_at.as_deref(),
            Some("2026-03-01T09:00:00.000Z")
        );
        assert!(u
            .nodes
            .iter()
            .any(|n| n.kind == NodeKind::Stream && n.name == "clicks"));
        let check = u.nodes.iter().find(|n| n.kind == NodeKind::Check).unwrap();
        assert_eq!(check.name, "clicks:not_null(id)");
        assert_eq!(check.props.check_success, Some(false));
        let kpi = u.nodes.iter().find(|n| n.kind == NodeKind::Kpi).unwrap();
        assert_eq!(kpi.props.criticality.as_deref(), Some("high"));
        let kinds: Vec<EdgeKind> = u.edges.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EdgeKind::Reads,
                EdgeKind::Monitors,
                EdgeKind::Writes,
                EdgeKind::Measures
            ]
        );
        assert_eq!(u.columns.len(), 1);
        assert_eq!(u.columns[0].transformation, "DIRECT/AGGREGATION");
        assert!(u.columns[0].src.starts_with("stream:"));
    }

    #[test]
    fn a_failed_run_does_not_count_as_a_write() {
        let event = json!({
            "eventType": "FAIL", "eventTime": "2026-03-01T10:00:00Z", "producer": "p",
            "schemaURL": "s", "run": { "runId": "x" }, "job": { "namespace": "n", "name": "j" },
            "outputs": [{ "namespace": "pg", "name": "t",
                          "outputFacets": { "outputStatistics": { "rowCount": 5 } } }],
        });
        let u = update(&event);
        let t = u.nodes.iter().find(|n| n.name == "t").unwrap();
        assert_eq!(t.props.last_written_at, None);
        assert_eq!(t.props.row_count, None);
    }
}
