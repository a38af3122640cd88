//! Every run event the engine emits (START, COMPLETE and FAIL) validates against the official
//! OpenLineage JSON schemas, read from the shared specification folder, and so does every
//! facet against its own schema.

mod common;

use common::*;
use heal_batch::{Engine, Selection, Settings, Trigger};
use heal_testkit::{Backend, TestDb};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

struct Schemas(heal_openlineage::Schemas);

impl Schemas {
    fn load() -> Schemas {
        let dir = heal_testkit::openlineage_dir();
        Schemas(heal_openlineage::Schemas::load(&dir).expect("the specification loads"))
    }

    /// Every problem of one event against the core schema and each facet's schema. Every
    /// facet must have a schema in the specification, except the platform's own `heal` facet.
    fn problems(&self, event: &Value) -> Vec<String> {
        let report = self.0.check(event);
        let mut out = report.problems;
        out.extend(
            report
                .unknown
                .into_iter()
                .filter(|u| !u.ends_with(heal_model::openlineage::HEAL_FACET_SCHEMA))
                .map(|u| format!("no schema for facet {u}")),
        );
        out
    }
}

#[tokio::test]
async fn run_events_validate_against_the_openlineage_schemas() {
    let schemas = Schemas::load();
    let messages = generate(31, 2.0, 1000.0);
    let t = TestDb::new(&Backend::Embedded).await;
    ingest(t.pool(), &messages, 0).await;
    sqlx::query(
        "INSERT INTO fault_injections (run_id, scenario, fault_index, kind, target, window_start, window_end,
                                       rate, params, expected, affected_count, affected_event_ids)
         VALUES ('t', 't', 0, 'job_failure', 'payment_success', '2026-03-01T01:00:00Z', '2026-03-01T02:00:00Z',
                 1, '{\"value\": \"disk full\"}', 'pipeline_failure', 0, '[]')",
    )
    .execute(t.pool())
    .await
    .unwrap();
    let engine = Engine::new(
        t.pool().clone(),
        None,
        Settings {
            retry_backoff: Duration::from_millis(10),
            ..Settings::default()
        },
    )
    .unwrap();
    engine.announce().await;
    let report = engine
        .run(&[], Trigger::Schedule, Selection::default())
        .await
        .unwrap();
    assert_eq!(report.failed(), 1, "the injected failure");

    let events: Vec<(String, Value)> =
        sqlx::query_as("SELECT event_type, payload FROM lineage_events ORDER BY id")
            .fetch_all(t.pool())
            .await
            .unwrap();
    let mut kinds = BTreeMap::new();
    for (kind, event) in &events {
        *kinds.entry(kind.clone()).or_insert(0) += 1;
        let problems = schemas.problems(event);
        assert!(
            problems.is_empty(),
            "{kind} event invalid: {problems:#?}\n{event:#}"
        );
    }
    let runs = report.runs.len();
    assert_eq!(kinds.get("START"), Some(&runs));
    assert_eq!(kinds.get("COMPLETE"), Some(&(runs - 1)));
    assert_eq!(kinds.get("FAIL"), Some(&1));
    assert_eq!(
        kinds.get("JOB"),
        Some(&engine.dag().ordered().count()),
        "one job event per job"
    );

    // A COMPLETE event carries the datasets with their schema and row counts.
    let (_, complete) = events
        .iter()
        .find(|(k, e)| k == "COMPLETE" && e["job"]["name"] == "daily_revenue")
        .expect("daily_revenue completed");
    let outputs: Vec<&str> = complete["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        outputs,
        ["public.daily_revenue", "public.daily_revenue_by_currency"]
    );
    assert!(
        complete["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert!(
        complete["outputs"][0]["facets"]["schema"]["fields"]
            .as_array()
            .unwrap()
            .len()
            >= 8
    );
    // Column-level lineage: gross revenue comes from the staged payments' USD amounts.
    let gross = &complete["outputs"][0]["facets"]["columnLineage"]["fields"]["gross_revenue_usd"]
        ["inputFields"];
    assert!(
        gross
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "public.stg_payments" && f["field"] == "amount_usd"),
        "{gross}"
    );

    // The validation can fail: a run without an id, or a facet of the wrong shape, is caught.
    let mut broken = complete.clone();
    broken["run"].as_object_mut().unwrap().remove("runId");
    assert!(!schemas.problems(&broken).is_empty());
    let mut broken = complete.clone();
    broken["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] = Value::from("many");
    assert!(!schemas.problems(&broken).is_empty());
    t.finish().await;
}
