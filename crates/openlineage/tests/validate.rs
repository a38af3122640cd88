//! Validation of incoming events against the official OpenLineage schemas (read from the
//! shared specification folder) and by the built-in check: every example facet of the
//! specification, placed in an otherwise valid event, is accepted by both; broken events are
//! refused by both, each problem naming its field.

use heal_openlineage::{structural, Schemas};
use serde_json::{json, Value};

fn base() -> Value {
    json!({
        "eventType": "COMPLETE",
        "eventTime": "2026-03-01T10:00:00.000Z",
        "producer": "https://example.com/emitter",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": { "runId": "0191c1d2-3b4a-7c5d-8e6f-7a8b9c0d1e2f", "facets": {} },
        "job": { "namespace": "ns", "name": "job", "facets": {} },
        "inputs": [{ "namespace": "pg", "name": "in", "facets": {}, "inputFacets": {} }],
        "outputs": [{ "namespace": "pg", "name": "out", "facets": {}, "outputFacets": {} }],
    })
}

/// Where a facet of this name goes in an event.
fn slot(name: &str) -> Option<&'static str> {
    if name.ends_with("RunFacet") {
        Some("/run/facets")
    } else if name.ends_with("JobFacet") {
        Some("/job/facets")
    } else if name.ends_with("InputDatasetFacet") {
        Some("/inputs/0/inputFacets")
    } else if name.ends_with("OutputDatasetFacet") {
        Some("/outputs/0/outputFacets")
    } else if name.ends_with("DatasetFacet") {
        Some("/inputs/0/facets")
    } else {
        None
    }
}

#[test]
fn every_example_facet_of_the_specification_is_accepted() {
    let dir = heal_testkit::openlineage_dir();
    let schemas = Schemas::load(&dir).expect("schemas load");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("tests")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(slot) = slot(&name) else { continue };
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let path = file.unwrap().path();
            let example: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let mut event = base();
            let target = event.pointer_mut(slot).unwrap();
            for (k, v) in example.as_object().unwrap() {
                target[k] = v.clone();
            }
            let report = schemas.check(&event);
            assert!(
                report.problems.is_empty(),
                "{}: {:?}",
                path.display(),
                report.problems
            );
            assert_eq!(
                structural(&event),
                Vec::<String>::new(),
                "{}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} examples found");
}

#[test]
fn broken_events_are_refused_by_both_layers_naming_the_field() {
    let schemas = Schemas::load(&heal_testkit::openlineage_dir()).unwrap();
    assert!(schemas.check(&base()).problems.is_empty());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/run/runId", json!("run-1"), "run.runId"),
        ("/eventTime", json!("2026-13-01"), "eventTime"),
        ("/eventType", json!("FINISHED"), "eventType"),
        ("/job/name", json!(42), "job.name"),
        ("/outputs/0/namespace", json!(null), "outputs[0].namespace"),
    ];
    for (ptr, value, field) in cases {
        let mut e = base();
        *e.pointer_mut(ptr).unwrap() = value;
        let from_schema = schemas.check(&e).problems;
        let built_in = structural(&e);
        assert!(!from_schema.is_empty(), "{ptr}: the schema accepts it");
        assert!(
            built_in.iter().any(|p| p.starts_with(field)),
            "{ptr}: {built_in:?}"
        );
    }
    // A known facet of the wrong shape is caught by its own schema, named by its path.
    let mut e = base();
    e["outputs"][0]["outputFacets"]["outputStatistics"] = json!({
        "_producer": "https://example.com", "rowCount": "many",
        "_schemaURL": "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
    });
    let problems = schemas.check(&e).problems;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("outputs[0].outputFacets.outputStatistics")),
        "{problems:?}"
    );
    // A custom facet is allowed and reported as such.
    let mut e = base();
    e["job"]["facets"]["acme"] = json!({ "_producer": "https://acme.example", "_schemaURL": "https://acme.example/Facet.json" });
    let report = schemas.check(&e);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.unknown.len(), 1);
}
