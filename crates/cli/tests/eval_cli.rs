//! `heal eval` end to end on the PostgreSQL server: a scenario with a fault and a clean one,
//! each in a fresh database, scored against the generator's ground truth; and a broken
//! scenario file refused before anything runs, naming the file.

use heal_testkit::Heal;
use serde_json::Value;
use std::process::Output;

fn heal(url: &str, args: &[&str]) -> Output {
    Heal::new(env!("CARGO_BIN_EXE_heal"))
        .env("DATABASE_URL", url)
        .dir(env!("CARGO_MANIFEST_DIR"))
        .run(args)
}

#[test]
fn eval_scores_a_fault_and_a_clean_run() {
    let Some(admin) = heal_testkit::server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let dir = std::env::temp_dir().join(format!("heal-eval-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clean = dir.join("clean.toml");
    std::fs::write(
        &clean,
        "name = \"tiny_clean\"\nseed = 5\nstart = \"2026-03-02T00:00:00Z\"\ndays = 1\nevents_per_day = 6000\n",
    )
    .unwrap();
    let json = dir.join("eval.json");
    let o = heal(
        &admin,
        &[
            "eval",
            "--scenarios",
            "../../scenarios/schema_drift.toml",
            clean.to_str().unwrap(),
            "--warmup-days",
            "1",
            "--events-per-day",
            "6000",
            "--json",
            json.to_str().unwrap(),
            "--feedback",
            "--output",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    // Feedback: the fault's truth is taught, the clean run replayed again with it.
    let f = &v["feedback"];
    assert_eq!(
        (&f["taught_scenarios"], &f["labels"], &f["scored_scenarios"]),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{f}"
    );
    let overall = &v["overall"];
    assert_eq!(overall["faults"], 1, "{v}");
    assert_eq!(overall["detection_recall"], 1.0, "{v}");
    assert_eq!(overall["ac1_exact"], 1.0, "{v}");
    assert_eq!(overall["class_accuracy"], 1.0, "{v}");
    assert_eq!(overall["incidents_on_clean"], 0, "{v}");
    let s = &v["scenarios"][0];
    assert_eq!(s["scenario"], "schema_drift");
    assert_eq!(s["faults"][0]["truth_node"], "dataset:payments");
    assert_eq!(s["faults"][0]["predicted_class"], "SCHEMA_DRIFT");
    assert!(
        s["faults"][0]["ttd_data_hours"].as_f64().unwrap() <= 12.0,
        "{s}"
    );
    // The file has every incident with its explanation and the rename the replay carries.
    let file: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let incidents = file["scenarios"][0]["incident_list"].as_array().unwrap();
    let top = &incidents[0];
    assert!(
        top["explanation"]["text"]
            .as_str()
            .unwrap()
            .contains("schema_drift"),
        "{top}"
    );
    let replay = top["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "replay_quarantine")
        .expect("a replay recommendation");
    assert_eq!(
        replay["mapping"][0],
        serde_json::json!(["amount_cents", "amount"]),
        "{replay}"
    );

    // A broken file is refused before anything runs.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nseed = 1\n").unwrap();
    let o = heal(&admin, &["eval", "--scenarios", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_makes_a_database_outage_happen_and_finds_its_cause() {
    let Some(admin) = heal_testkit::server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let o = heal(
        &admin,
        &[
            "eval",
            "--scenarios",
            "../../scenarios/database_outage.toml",
            "--warmup-days",
            "1",
            "--events-per-day",
            "6000",
            "--output",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let f = &v["scenarios"][0]["faults"][0];
    assert_eq!(f["kind"], "database_outage", "{v}");
    assert_eq!(f["truth_node"], "job:ingest", "{v}");
    assert_eq!(f["detected"], true, "{v}");
    assert_eq!(f["predicted_class"], "INFRASTRUCTURE", "{v}");
    assert_eq!(f["exact_rank"], 1, "{v}");
    assert_eq!(v["scenarios"][0]["false_incidents"], 0, "{v}");
    assert!(f["ttd_data_hours"].as_f64().unwrap() < 1.0, "{f}");
}
