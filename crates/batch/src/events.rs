//! What a run tells the rest of the platform: OpenLineage run events (START, COMPLETE, FAIL
//! with job, input and output datasets, schema and row-count facets) and pipeline events
//! (started, succeeded, failed, delayed) for failure detection.

use crate::job::Job;
use chrono::{DateTime, NaiveDate, Utc};
use heal_model::openlineage::{self as ol, time};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// The `producer` of every event this build emits.
pub const PRODUCER: &str = concat!("urn:heal:batch:", env!("CARGO_PKG_VERSION"));
/// Dataset namespace of the platform's PostgreSQL tables.
pub const DATASET_NAMESPACE: &str = ol::POSTGRES_NAMESPACE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunState {
    Start,
    Complete,
    Fail,
}

/// Rows each dataset of a run read or wrote, known once the run ends.
#[derive(Debug, Clone, Default)]
pub struct RowCounts {
    pub read: Vec<(&'static str, i64)>,
    pub written: Vec<(&'static str, i64)>,
}

fn facet(schema: &str, body: Value) -> Value {
    ol::facet(PRODUCER, schema, body)
}

fn schema_facet(columns: &[&str]) -> Value {
    let fields: Vec<(&str, Option<&str>)> = columns.iter().map(|c| (*c, None)).collect();
    ol::schema_facet(PRODUCER, &fields)
}

fn column_lineage_facet(derives: &[crate::job::Derivation]) -> Value {
    let mut fields = serde_json::Map::new();
    for (column, kind, from) in derives {
        let inputs: Vec<Value> = from
            .iter()
            .filter_map(|source| source.split_once('.'))
            .map(|(table, field)| {
                json!({
                    "namespace": DATASET_NAMESPACE,
                    "name": format!("public.{table}"),
                    "field": field,
                    "transformations": [{ "type": "DIRECT", "subtype": kind }],
                })
            })
            .collect();
        fields.insert(column.to_string(), json!({ "inputFields": inputs }));
    }
    facet(
        "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
        json!({ "fields": fields }),
    )
}

fn heal_facet(job: &Job, table: &str) -> Value {
    let layer = if table.starts_with("stg_") {
        "staging"
    } else {
        "analytics"
    };
    let kpis: Vec<Value> = job
        .kpis
        .iter()
        .filter(|k| k.table == table)
        .map(|k| {
            json!({
                "name": k.name,
                "column": k.column,
                "criticality": k.criticality,
                "description": k.description,
            })
        })
        .collect();
    ol::heal_facet(PRODUCER, layer, kpis)
}

/// The job and its datasets, as OpenLineage's `job`, `inputs` and `outputs`, with row counts
/// when a run has them.
fn job_parts(
    namespace: &str,
    job: &Job,
    rows: Option<&RowCounts>,
) -> (Value, Vec<Value>, Vec<Value>) {
    let inputs: Vec<Value> = job
        .inputs
        .iter()
        .map(|i| {
            let mut d = json!({
                "namespace": DATASET_NAMESPACE,
                "name": format!("public.{}", i.table),
                "facets": { "schema": schema_facet(i.columns) },
            });
            if let Some(n) = rows.and_then(|r| r.read.iter().find(|(t, _)| *t == i.table)) {
                d["inputFacets"] = json!({ "inputStatistics": facet(
                    "https://openlineage.io/spec/facets/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet",
                    json!({ "rowCount": n.1 }),
                )});
            }
            d
        })
        .collect();
    let outputs: Vec<Value> = job
        .outputs
        .iter()
        .map(|o| {
            let mut d = json!({
                "namespace": DATASET_NAMESPACE,
                "name": format!("public.{}", o.table),
                "facets": {
                    "schema": schema_facet(o.columns),
                    "columnLineage": column_lineage_facet(o.derives),
                    "heal": heal_facet(job, o.table),
                },
            });
            if let Some(n) = rows.and_then(|r| r.written.iter().find(|(t, _)| *t == o.table)) {
                d["outputFacets"] = json!({ "outputStatistics": facet(
                    "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
                    json!({ "rowCount": n.1 }),
                )});
            }
            d
        })
        .collect();
    let job = json!({
        "namespace": namespace,
        "name": job.name,
        "facets": {
            "jobType": ol::job_type_facet(PRODUCER, "BATCH", "JOB"),
            "documentation": ol::documentation_facet(PRODUCER, job.description),
            "sql": facet(
                "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet",
                json!({ "query": job.sql_text(), "dialect": "postgres" }),
            ),
        },
    });
    (job, inputs, outputs)
}

/// The static OpenLineage job event (no run) that declares `job`: what it reads and writes,
/// column lineage and KPIs. The batch role emits one per job when it starts, so the lineage
/// graph knows every job before its first run.
pub fn job_event(namespace: &str, job: &Job, at: DateTime<Utc>) -> Value {
    let (job, inputs, outputs) = job_parts(namespace, job, None);
    ol::job_event(PRODUCER, at, job, inputs, outputs)
}

/// One OpenLineage run event of `job` on partition `day`.
#[allow(clippy::too_many_arguments)]
pub fn run_event(
    namespace: &str,
    job: &Job,
    run_id: Uuid,
    day: NaiveDate,
    state: RunState,
    at: DateTime<Utc>,
    rows: Option<&RowCounts>,
    error: Option<&str>,
) -> Value {
    let start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let end = start + chrono::Duration::days(1);
    let mut run_facets = json!({
        "nominalTime": facet(
            "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet",
            json!({ "nominalStartTime": time(start), "nominalEndTime": time(end) }),
        ),
    });
    if let Some(message) = error {
        run_facets["errorMessage"] = facet(
            "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
            json!({ "message": message, "programmingLanguage": "SQL" }),
        );
    }
    let (job, inputs, outputs) = job_parts(namespace, job, rows);
    json!({
        "eventType": state,
        "eventTime": time(at),
        "producer": PRODUCER,
        "schemaURL": ol::RUN_EVENT,
        "run": { "runId": run_id.to_string(), "facets": run_facets },
        "job": job,
        "inputs": inputs,
        "outputs": outputs,
    })
}

pub use heal_model::pipeline::{PipelineEvent, PipelineStatus};
