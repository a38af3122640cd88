//! What the ingest role tells lineage about itself: a static OpenLineage job event for the job
//! `ingest`, reading the events topic and writing `raw_events`, the typed table of every event
//! kind and `quarantine`, with each table's columns and types read from the database itself.

use chrono::{DateTime, Utc};
use heal_model::openlineage::{self as ol, POSTGRES_NAMESPACE};
use heal_model::EventKind;
use serde_json::{json, Value};
use sqlx::PgPool;

/// The ingest job's name in lineage.
pub const JOB_NAME: &str = "ingest";

/// The tables ingest writes, with their layer.
pub fn outputs() -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("raw_events", "raw")];
    out.extend(EventKind::ALL.iter().map(|k| (k.table(), "raw")));
    out.push(("quarantine", "quarantine"));
    out
}

pub use heal_model::openlineage::topic_dataset;

/// The columns `(table, column, type)` of the tables ingest writes, as the database has them.
pub async fn output_columns(pool: &PgPool) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    let tables: Vec<&str> = outputs().iter().map(|(t, _)| *t).collect();
    sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = ANY($1)
         ORDER BY table_name, ordinal_position",
    )
    .bind(&tables)
    .fetch_all(pool)
    .await
}

/// The ingest job event, given the output tables' `columns` (see [`output_columns`]).
pub fn job_event(
    columns: &[(String, String, String)],
    bootstrap: Option<&str>,
    topic: &str,
    at: DateTime<Utc>,
) -> Value {
    let producer = ol::producer("ingest");
    let datasets: Vec<Value> = outputs()
        .into_iter()
        .map(|(table, layer)| {
            let fields: Vec<(&str, Option<&str>)> = columns
                .iter()
                .filter(|c| c.0 == table)
                .map(|c| (c.1.as_str(), Some(c.2.as_str())))
                .collect();
            json!({
                "namespace": POSTGRES_NAMESPACE,
                "name": format!("public.{table}"),
                "facets": {
                    "schema": ol::schema_facet(&producer, &fields),
                    "datasetType": ol::dataset_type_facet(&producer, "TABLE"),
                    "heal": ol::heal_facet(&producer, layer, vec![]),
                },
            })
        })
        .collect();
    let job = json!({
        "namespace": ol::JOB_NAMESPACE,
        "name": JOB_NAME,
        "facets": {
            "jobType": ol::job_type_facet(&producer, "STREAMING", "JOB"),
            "documentation": ol::documentation_facet(
                &producer,
                "Decodes, validates and upcasts events, deduplicates them, writes raw_events and the typed table of each event kind exactly once, and quarantines what cannot be ingested.",
            ),
        },
    });
    ol::job_event(
        &producer,
        at,
        job,
        vec![topic_dataset(&producer, bootstrap, topic)],
        datasets,
    )
}

/// Stores the ingest job event in the lineage log.
pub async fn announce(
    pool: &PgPool,
    bootstrap: Option<&str>,
    topic: &str,
) -> Result<(), sqlx::Error> {
    let at = heal_model::openlineage::declaration_time(Utc::now());
    let event = job_event(&output_columns(pool).await?, bootstrap, topic, at);
    heal_store::lineage_log::record(pool, "ingest", &event).await?;
    Ok(())
}
