//! Building blocks of the OpenLineage events the roles emit: facets with their `_producer` and
//! `_schemaURL`, the schema and dataset-type facets, and the platform's own `heal` dataset facet
//! (a dataset's layer and the KPIs read from it).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The `schemaURL` of a run event of the specification version the platform emits.
pub const RUN_EVENT: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// The `schemaURL` of a static job event (a job's declared inputs and outputs, no run).
pub const JOB_EVENT: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent";
/// The `_schemaURL` of the platform's own dataset facet, `heal`: `{ layer, kpis: [{ name,
/// column, criticality, description }] }`.
pub const HEAL_FACET_SCHEMA: &str = "urn:heal:facets:HealDatasetFacet:1";
/// Dataset namespace of the platform's PostgreSQL tables.
pub const POSTGRES_NAMESPACE: &str = "postgres://heal";
/// Job namespace of the platform's own jobs.
pub const JOB_NAMESPACE: &str = "heal";

/// The `producer` URI of a role of this build: `urn:heal:<role>:<version>`.
pub fn producer(role: &str) -> String {
    format!("urn:heal:{role}:{}", env!("CARGO_PKG_VERSION"))
}

/// The event time of a role's static job events: the start of the UTC day, so that a restart
/// on the same day declares nothing new (the log stores an identical event once).
pub fn declaration_time(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// A facet: `body` with `_producer` and `_schemaURL` set.
pub fn facet(producer: &str, schema: &str, body: Value) -> Value {
    let mut v = body;
    v["_producer"] = json!(producer);
    v["_schemaURL"] = json!(schema);
    v
}

/// An event time as OpenLineage writes it (RFC 3339, milliseconds, `Z`).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The schema facet of a dataset: fields with an optional type each.
pub fn schema_facet(producer: &str, fields: &[(&str, Option<&str>)]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|(name, ty)| match ty {
            Some(t) => json!({ "name": name, "type": t }),
            None => json!({ "name": name }),
        })
        .collect();
    facet(
        producer,
        "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
        json!({ "fields": fields }),
    )
}

/// The dataset-type facet (`TABLE`, `STREAM`, …).
pub fn dataset_type_facet(producer: &str, dataset_type: &str) -> Value {
    facet(
        producer,
        "https://openlineage.io/spec/facets/1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet",
        json!({ "datasetType": dataset_type }),
    )
}

/// The `heal` facet: which layer a dataset belongs to (`source`, `raw`, `quarantine`,
/// `staging`, `analytics`) and the KPIs read from it.
pub fn heal_facet(producer: &str, layer: &str, kpis: Vec<Value>) -> Value {
    facet(
        producer,
        HEAL_FACET_SCHEMA,
        json!({ "layer": layer, "kpis": kpis }),
    )
}

/// The job-type facet.
pub fn job_type_facet(producer: &str, processing: &str, job_type: &str) -> Value {
    facet(
        producer,
        "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
        json!({ "processingType": processing, "integration": "HEAL", "jobType": job_type }),
    )
}

/// The documentation facet of a job.
pub fn documentation_facet(producer: &str, description: &str) -> Value {
    facet(
        producer,
        "https://openlineage.io/spec/facets/1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet",
        json!({ "description": description }),
    )
}

/// A static job event: `job` (with its facets) reading `inputs` and writing `outputs`.
pub fn job_event(
    producer: &str,
    at: DateTime<Utc>,
    job: Value,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
) -> Value {
    json!({
        "eventTime": time(at),
        "producer": producer,
        "schemaURL": JOB_EVENT,
        "job": job,
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// The OpenLineage dataset of a topic on the bus: `kafka://<bootstrap>` for Kafka (as
/// OpenLineage's naming convention has it), `memory://heal` for the in-process bus.
pub fn topic_dataset(producer: &str, bootstrap: Option<&str>, topic: &str) -> Value {
    let namespace = match bootstrap {
        Some(servers) => format!("kafka://{}", servers.split(',').next().unwrap_or(servers)),
        None => "memory://heal".to_string(),
    };
    let kinds: Vec<(&str, Option<&str>)> = crate::EventKind::ALL
        .iter()
        .map(|k| (k.wire_name(), Some("event")))
        .collect();
    json!({
        "namespace": namespace,
        "name": topic,
        "facets": {
            "schema": schema_facet(producer, &kinds),
            "datasetType": dataset_type_facet(producer, "STREAM"),
            "heal": heal_facet(producer, "source", vec![]),
        },
    })
}
