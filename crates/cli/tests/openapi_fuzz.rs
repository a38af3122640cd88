//! The incident API fuzzed from the OpenAPI document it serves: `heal run --roles incidents` on
//! PostgreSQL and Kafka, with an operator token and one stored incident, and Schemathesis
//! (from the test venv) generating requests for every documented operation, valid and not.
//! No answer may be a server error, and every answer must be one the document lists.

use heal_incidents::store;
use heal_model::incident::{IncidentChange, IncidentMessage};
use heal_testkit::{free_port, http, wait_for, Backend, KillOnDrop, TestDb};
use serde_json::Value;
use std::process::Command;

const TOKEN: &str = "fuzzing-operator-token-0123456789";

fn schemathesis() -> Option<String> {
    match std::env::var("HEAL_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => {
            let st = std::path::Path::new(&p).with_file_name("st");
            Some(st.to_string_lossy().into_owned())
        }
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI=true but HEAL_TEST_PYTHON (the test venv with schemathesis) is not set")
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_in_the_incident_api() {
    let (Some(admin), Some(kafka), Some(st)) = (
        heal_testkit::server_url(),
        heal_testkit::kafka(),
        schemathesis(),
    ) else {
        eprintln!("skipped: needs HEAL_TEST_DATABASE_URL, HEAL_TEST_KAFKA and HEAL_TEST_PYTHON");
        return;
    };
    let t = TestDb::new(&Backend::Server(admin)).await;
    let body: Value = serde_json::from_str(include_str!("incident.json")).unwrap();
    let m = IncidentMessage::new(
        IncidentChange::Opened,
        serde_json::from_value(body).unwrap(),
    );
    assert!(store::apply_message(t.pool(), &m).await.unwrap());

    let port = free_port();
    let _heal = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_heal"))
            .args(["run", "--roles", "incidents"])
            .env("DATABASE_URL", t.url().unwrap())
            .env("KAFKA_BOOTSTRAP_SERVERS", &kafka)
            .env(
                "HEAL_KAFKA__GROUP_PREFIX",
                format!("fuzz-{}", std::process::id()),
            )
            .env("HEAL_PORTS__INCIDENTS", port.to_string())
            .env("HEAL_BIND_HOST", "127.0.0.1")
            .env("HEAL_LOG_LEVEL", "warn")
            .env(
                "HEAL_AUTH__TOKENS",
                format!(r#"[{{name="fuzzer", token="{TOKEN}", scopes=["operator"]}}]"#),
            )
            .current_dir(std::env::temp_dir())
            .spawn()
            .expect("heal starts"),
    );
    wait_for("readiness", || {
        http(port, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200)
    });
    let out = Command::new(&st)
        .args([
            "--no-color",
            "run",
            &format!("http://127.0.0.1:{port}/api/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance",
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--max-examples",
            "40",
            // One worker: CPython 3.11's `ast.parse`, which Hypothesis calls to describe its
            // filters, is not safe across threads ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
        ])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    // It did test every operation (not an empty run that passes trivially).
    let tested: usize = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no operation count in:\n{text}"));
    assert!(tested >= 9, "{tested} operations tested:\n{text}");
    t.finish().await;
}
