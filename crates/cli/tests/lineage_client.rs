//! The lineage role as users run it: `heal run --roles batch,lineage` against a PostgreSQL
//! server and Kafka, with the official OpenLineage schemas configured. The batch role declares
//! its jobs; the reference `openlineage-python` client posts an external pipeline's events
//! (and one invalid event, which must be refused with its reason); the seed's endpoints then
//! answer over HTTP from the graph both built.

use heal_testkit::{free_port, http, http_as, wait_for, Backend, KillOnDrop, TestDb};
use serde_json::Value;
use std::process::Command;

/// The operator token the test configures (at least 16 characters, as configuration demands).
const TOKEN: &str = "test-operator-token-0123456789";

fn python() -> Option<String> {
    match std::env::var("HEAL_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI=true but HEAL_TEST_PYTHON (a Python with openlineage-python) is not set")
        }
        _ => None,
    }
}

fn get(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = http(port, "GET", path, "").unwrap_or_else(|| panic!("GET {path}"));
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, v)
}

fn names(v: &Value, kind: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .map(|a| {
            a["name"]
                .as_str()
                .unwrap()
                .trim_start_matches("public.")
                .to_string()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openlineage_python_client_feeds_a_running_heal() {
    let (Some(admin), Some(kafka), Some(python)) =
        (heal_testkit::server_url(), heal_testkit::kafka(), python())
    else {
        eprintln!("skipped: needs HEAL_TEST_DATABASE_URL, HEAL_TEST_KAFKA and HEAL_TEST_PYTHON (the test script provides them)");
        return;
    };
    let t = TestDb::new(&Backend::Server(admin)).await;
    let (batch_port, port) = (free_port(), free_port());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/emit_lineage.py"
    );
    let _heal = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_heal"))
            .args(["run", "--roles", "batch,lineage"])
            .env("DATABASE_URL", t.url().unwrap())
            .env("KAFKA_BOOTSTRAP_SERVERS", &kafka)
            .env(
                "HEAL_KAFKA__GROUP_PREFIX",
                format!("lineage-{}", std::process::id()),
            )
            .env("HEAL_PORTS__BATCH", batch_port.to_string())
            .env("HEAL_PORTS__LINEAGE", port.to_string())
            .env("HEAL_BIND_HOST", "127.0.0.1")
            .env(
                "HEAL_LINEAGE__OPENLINEAGE_SPEC_DIR",
                heal_testkit::openlineage_dir(),
            )
            .env("HEAL_LINEAGE__PROJECT_INTERVAL", "200ms")
            .env("HEAL_LOG_LEVEL", "warn")
            // Posting lineage needs an operator token; the client sends it as integrations do.
            .env(
                "HEAL_AUTH__TOKENS",
                format!(r#"[{{name="airflow", token="{TOKEN}", scopes=["operator"]}}]"#),
            )
            .current_dir(std::env::temp_dir())
            .spawn()
            .expect("heal starts"),
    );
    wait_for("readiness", || {
        matches!(http(port, "GET", "/readyz", ""), Some((200, _)))
    });
    // The batch role's job declarations reach the graph.
    wait_for("the batch jobs in the graph", || {
        get(port, "/api/lineage/dependencies/daily_revenue").0 == 200
    });

    // Without the token, the reference client is refused.
    let out = Command::new(&python)
        .args([script, &format!("http://127.0.0.1:{port}")])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("python runs");
    assert!(
        !out.status.success() || String::from_utf8_lossy(&out.stdout).contains("401"),
        "posting lineage without a token must fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (status, _) = http(port, "POST", "/api/v1/lineage", "{}").unwrap();
    assert_eq!(status, 401);

    // With it, the reference client posts its events.
    let out = Command::new(&python)
        .args([script, &format!("http://127.0.0.1:{port}")])
        .env("OPENLINEAGE_API_KEY", TOKEN)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "emitter failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.iter().filter(|l| l.get("emitted").is_some()).count(),
        3
    );
    let invalid = lines
        .iter()
        .find(|l| l.get("invalid_status").is_some())
        .unwrap();
    assert_eq!(invalid["invalid_status"], 400, "{invalid}");
    let problems = invalid["body"]["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("run.runId")),
        "the reason names the field: {problems:?}"
    );

    // The seed's endpoints over the external pipeline.
    let (status, a) = get(port, "/api/lineage/affected/orders_src");
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        names(&a["affected"], "dataset"),
        ["orders_clean", "revenue"]
    );
    assert_eq!(
        names(&a["affected"], "job"),
        ["shop.extract_orders", "shop.revenue_report"]
    );
    assert_eq!(
        names(&a["affected"], "check"),
        ["orders_src:not_null(id)", "orders_src:row_count"],
        "the client's assertions became checks on orders_src"
    );
    let (_, i) = get(port, "/api/lineage/impact/orders_clean");
    assert_eq!(i["summary"]["open_failures"], 1, "{i}");
    let job = &i["groups"][0]["assets"][0];
    assert_eq!(job["name"], "shop.revenue_report");
    assert_eq!(job["open_failures"][0]["message"], "division by zero");
    let (_, cols) = get(port, "/api/lineage/columns/orders_clean");
    assert!(cols["columns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["dst_field"] == "amount" && c["src_field"] == "amount"));
    let (_, up) = get(port, "/api/lineage/upstream/orders_src");
    assert_eq!(names(&up["nodes"], "check").len(), 0);
    let (_, d) = get(port, "/api/lineage/downstream/orders_src?depth=1");
    let checks = names(&d["nodes"], "check");
    assert_eq!(checks, ["orders_src:not_null(id)", "orders_src:row_count"]);

    // And over the platform's own jobs, declared by the batch role.
    let (_, a) = get(port, "/api/lineage/affected/stg_orders");
    assert_eq!(
        names(&a["affected"], "dataset"),
        ["daily_revenue", "daily_revenue_by_currency", "user_funnel"]
    );
    let (_, d) = get(port, "/api/lineage/dependencies/stg_payments");
    let downstream: Vec<&str> = d["downstream_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        downstream,
        ["daily_revenue", "payment_success", "user_funnel"]
    );
    let (_, i) = get(port, "/api/lineage/impact/stg_payments");
    assert_eq!(i["summary"]["max_criticality"], "critical");

    // Errors: unknown names are 404 with a message; a wrong kind is 404 too; bad depth 400.
    let (status, e) = get(port, "/api/lineage/affected/no_such_table");
    assert_eq!(status, 404);
    assert!(
        e["error"].as_str().unwrap().contains("no_such_table"),
        "{e}"
    );
    let (status, _) = get(port, "/api/lineage/dependencies/orders_src");
    assert_eq!(status, 404, "a table is not a job");
    let (status, e) = get(port, "/api/lineage/impact/stg_orders?depth=0");
    assert_eq!(status, 400, "{e}");
    let (status, e) = http_as(port, "POST", "/api/v1/lineage", "{not json", Some(TOKEN)).unwrap();
    assert_eq!(status, 400, "{e}");
    // Exports.
    let (status, dot) = http(port, "GET", "/api/lineage/graph?format=dot", "").unwrap();
    assert_eq!(status, 200);
    assert!(dot.starts_with("digraph lineage"), "{dot}");
    assert!(dot.contains("shop.extract_orders"));
    let (_, mermaid) = http(port, "GET", "/api/lineage/graph?format=mermaid", "").unwrap();
    assert!(mermaid.starts_with("flowchart LR"));

    // OpenLineage's Kafka transport: an event on the lineage-events topic reaches the graph.
    let bus = heal_bus::Bus::new(Some(&kafka)).unwrap();
    let event = serde_json::json!({
        "eventType": "COMPLETE", "eventTime": "2026-03-02T00:00:00Z",
        "producer": "https://example.com/spark",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": { "runId": "0191c1d2-3b4a-7c5d-8e6f-7a8b9c0d1e2f" },
        "job": { "namespace": "spark", "name": "export_revenue" },
        "inputs": [{ "namespace": "postgres://warehouse:5432", "name": "public.revenue" }],
        "outputs": [{ "namespace": "s3://lake", "name": "revenue.parquet" }],
    });
    bus.send(
        heal_model::topics::LINEAGE_EVENTS,
        vec![heal_bus::Record {
            key: b"spark".to_vec(),
            payload: event.to_string().into_bytes(),
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        }],
    )
    .await
    .unwrap();
    wait_for("the topic's event in the graph", || {
        let (_, a) = get(port, "/api/lineage/affected/revenue");
        a["affected"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["name"] == "revenue.parquet"))
    });

    // The CLI answers the same question over HTTP.
    let out = Command::new(env!("CARGO_BIN_EXE_heal"))
        .args([
            "lineage",
            "affected",
            "orders_src",
            "--output",
            "json",
            "--url",
        ])
        .arg(format!("http://127.0.0.1:{port}"))
        .env("HEAL_LOG_LEVEL", "warn")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        names(&cli["affected"], "dataset"),
        ["orders_clean", "revenue", "revenue.parquet"]
    );
    drop(_heal);
    t.finish().await;
}
