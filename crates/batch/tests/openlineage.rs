//! Every run event the engine emits (START, COMPLETE and FAIL) validates against the official
//! OpenLineage JSON schemas, read from the shared specification folder, and so does every
//! facet against its own schema.

mod common;

use common::*;
use heal_batch::{Engine, Selection, Settings, Trigger};
use heal_testkit::{Backend, TestDb};
use jsonschema::{Resource, Validator};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The OpenLineage specification folder: `HEAL_TEST_OPENLINEAGE_DIR`, or `shared/openlineage` in
/// an ancestor of this crate.
fn spec_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HEAL_TEST_OPENLINEAGE_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|a| a.join("shared/openlineage"))
        .chain([PathBuf::from("/work/shared/openlineage")])
        .find(|p| p.join("spec/OpenLineage.json").is_file())
        .expect("the OpenLineage schemas: set HEAL_TEST_OPENLINEAGE_DIR to the folder holding spec/OpenLineage.json")
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Schemas {
    core: Validator,
    facets: BTreeMap<String, Validator>,
}

impl Schemas {
    fn load() -> Schemas {
        let dir = spec_dir();
        let core = read(&dir.join("spec/OpenLineage.json"));
        let core_id = core["$id"].as_str().unwrap().to_string();
        let with_core = || {
            jsonschema::options()
                .should_validate_formats(true)
                .with_resource(core_id.clone(), Resource::from_contents(core.clone()))
        };
        let mut facets = BTreeMap::new();
        for entry in std::fs::read_dir(dir.join("spec/facets")).unwrap() {
            let path = entry.unwrap().path();
            let schema = read(&path);
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            facets.insert(name, with_core().build(&schema).unwrap());
        }
        Schemas {
            core: with_core().build(&core).unwrap(),
            facets,
        }
    }

    /// Every problem of one event: against the core schema, and each facet against the
    /// schema its `_schemaURL` names.
    fn problems(&self, event: &Value) -> Vec<String> {
        let mut out: Vec<String> = self
            .core
            .iter_errors(event)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        let mut facet_sets: Vec<&Value> = vec![&event["run"]["facets"], &event["job"]["facets"]];
        for side in ["inputs", "outputs"] {
            for d in event[side].as_array().into_iter().flatten() {
                facet_sets.push(&d["facets"]);
                facet_sets.push(&d["inputFacets"]);
                facet_sets.push(&d["outputFacets"]);
            }
        }
        for set in facet_sets {
            for (key, facet) in set.as_object().into_iter().flatten() {
                let url = facet["_schemaURL"].as_str().unwrap_or_default();
                let file = url
                    .split('#')
                    .next()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                let Some(validator) = self.facets.get(file) else {
                    out.push(format!("facet {key}: no schema file for {url:?}"));
                    continue;
                };
                let wrapped = serde_json::json!({ key: facet });
                out.extend(
                    validator
                        .iter_errors(&wrapped)
                        .map(|e| format!("facet {key}: {e} at {}", e.instance_path())),
                );
            }
        }
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
