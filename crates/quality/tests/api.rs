//! The role end to end on each backend (the embedded engine too): a cycle asked over HTTP
//! publishes failure events on the bus, repeated cycles keep one ongoing condition and then
//! resolve it, a check whose query fails at run time is an errored check (never a pass), and
//! the API answers bad requests with 400/404 naming the parameter.

mod common;

use common::*;
use heal_bus::Bus;
use heal_model::quality::{ConditionChange, FailureEvent};
use heal_quality::role::QualityRole;
use heal_quality::{Catalog, ChecksFile, Quality};
use heal_testkit::{backends, TestDb};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

async fn call(port: u16, method: &'static str, path: &str) -> (u16, Value) {
    let path = path.to_string();
    let (status, body) =
        tokio::task::spawn_blocking(move || heal_testkit::http(port, method, &path, ""))
            .await
            .unwrap()
            .expect("the server answers");
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// The shipped checks plus one whose query divides by zero once rows exist.
fn checks(catalog: &Catalog) -> ChecksFile {
    let text = format!(
        "{}\n[[check]]\nname = \"broken_sql\"\ntype = \"custom_sql\"\ndataset = \"product_views\"\nsql = \"SELECT event_id FROM product_views WHERE viewed_at >= $1 AND viewed_at < $2 AND 1 / (length(event_id) - length(event_id)) = 1\"\n",
        heal_quality::checks::DEFAULT_CHECKS
    );
    ChecksFile::parse(&text, "test.toml", catalog).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_over_http_publish_one_event_per_condition_change() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool().clone();
        let scenario = shifted("malformed_json", 3_000.0, 0);
        let (items, _) = generate(&scenario);
        ingest_all(&pool, items).await;

        let catalog = Catalog::load(&pool).await.unwrap();
        let quality = Arc::new(Quality::new(pool.clone(), checks(&catalog)).await.unwrap());
        let bus = Bus::new(None).unwrap();
        bus.create_topics(&heal_model::topics::ALL, 1, 1)
            .await
            .unwrap();
        let mut events = bus
            .consumer("test", heal_model::topics::DATA_QUALITY_CHECKS)
            .unwrap();
        let role = Arc::new(QualityRole::new(
            quality,
            Some(bus.clone()),
            heal_model::topics::DATA_QUALITY_CHECKS,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = heal_quality::http::routes(role.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        // A result far behind the data clock is dropped by the cycle (retention).
        sqlx::query(
            "INSERT INTO quality_results (check_name, check_type, dataset, subject, window_start, window_end, status)
             VALUES ('raw_events_volume', 'volume', 'raw_events', 'raw_events', '2025-01-01T00:00Z', '2025-01-01T01:00Z', 'pass')",
        )
        .execute(&pool)
        .await
        .unwrap();
        let (status, report) = call(port, "POST", "/api/quality/run").await;
        assert_eq!(status, 200, "{backend}: {report}");
        let broken = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "broken_sql")
            .unwrap();
        assert!(
            broken["error"]
                .as_str()
                .unwrap()
                .contains("division by zero"),
            "{broken}"
        );
        assert_eq!(broken["passed"], 0, "an errored check never passes");

        // Published: one opened condition per failing check and subject.
        let received = events
            .poll_batch(1000, Duration::from_secs(2))
            .await
            .unwrap();
        let published: Vec<FailureEvent> = received
            .iter()
            .map(|m| serde_json::from_slice(&m.payload).expect("a failure event"))
            .collect();
        let opened = |check: &str| {
            published
                .iter()
                .filter(|e| e.check == check && e.change == ConditionChange::Opened)
                .count()
        };
        assert_eq!(
            opened("product_views_schema"),
            1,
            "{backend}: {}",
            describe(&published)
        );
        assert_eq!(
            opened("broken_sql"),
            1,
            "an errored check opens a condition"
        );
        let e = published
            .iter()
            .find(|e| e.check == "product_views_schema")
            .unwrap();
        assert_eq!(e.dataset, "product_views");
        assert!(e.message.contains("malformed_json"), "{}", e.message);
        assert!(!e.sample.is_empty() && e.sample.len() <= 10);
        assert_eq!(
            published.len(),
            report["events"].as_array().unwrap().len(),
            "the answer lists what was published"
        );

        // The API.
        let old: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM quality_results WHERE window_end < '2026-01-01T00:00Z'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            old, 0,
            "{backend}: results older than the retention are dropped"
        );
        let (status, body) = call(port, "GET", "/api/quality/checks").await;
        assert_eq!(status, 200);
        let listed = body["checks"].as_array().unwrap();
        // The built-in checks (declared and generated) and the test's own one.
        let built_in = ChecksFile::default_checks(&catalog).unwrap().checks.len();
        assert!(
            built_in
                > heal_quality::checks::DEFAULT_CHECKS
                    .matches("[[check]]")
                    .count()
        );
        assert_eq!(listed.len(), built_in + 1);
        let schema = listed
            .iter()
            .find(|c| c["name"] == "product_views_schema")
            .unwrap();
        assert_eq!(schema["last"]["status"], "fail");
        assert_eq!(schema["open_conditions"], 1);
        let (status, body) = call(
            port,
            "GET",
            "/api/quality/results?check=product_views_schema&status=fail",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
        let (status, body) = call(port, "GET", "/api/quality/conditions?state=open").await;
        assert_eq!(status, 200);
        assert!(body
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check_name"] == "product_views_schema"));
        for (path, code, names) in [
            ("/api/quality/results?limit=lots", 400, "limit"),
            ("/api/quality/results?status=bad", 400, "status"),
            ("/api/quality/results?check=nope", 404, "check"),
            ("/api/quality/results?bogus=1", 400, "bogus"),
            ("/api/quality/conditions?state=closed", 400, "state"),
            ("/api/quality/run?check=nope", 404, "check"),
        ] {
            let method = if path.starts_with("/api/quality/run") {
                "POST"
            } else {
                "GET"
            };
            let (status, body) = call(port, method, path).await;
            assert_eq!(status, code, "{path}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains(names),
                "{path}: {body}"
            );
            assert_eq!(body["field"], names, "{path}: {body}");
            let want = match (code, names) {
                (404, _) => "not_found",
                (_, "bogus") => "unknown_parameter",
                _ => "invalid_parameter",
            };
            assert_eq!(body["code"], want, "{path}: {body}");
        }

        // Nothing new was refused: the schema condition passes twice and resolves; the broken
        // check keeps failing and stays one condition.
        for _ in 0..2 {
            role.run(None).await.unwrap();
        }
        let received = events
            .poll_batch(1000, Duration::from_secs(2))
            .await
            .unwrap();
        let later: Vec<FailureEvent> = received
            .iter()
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect();
        assert!(
            later.iter().any(|e| e.check == "product_views_schema"
                && e.change == ConditionChange::Resolved
                && e.occurrences == 1),
            "{backend}: {}",
            describe(&later)
        );
        assert!(
            !later.iter().any(|e| e.change == ConditionChange::Opened),
            "repeated failures are one condition: {}",
            describe(&later)
        );
        let (errors, open): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM quality_results WHERE check_name = 'broken_sql' AND status = 'error'),
                    (SELECT occurrences FROM quality_conditions WHERE check_name = 'broken_sql' AND state = 'open')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((errors, open), (3, 3), "{backend}");

        server.abort();
        drop(role);
        t.finish().await;
    }
}

#[tokio::test]
async fn a_query_postgres_refuses_is_refused_at_start_naming_the_check() {
    let t = TestDb::new(&heal_testkit::Backend::Embedded).await;
    let catalog = Catalog::load(t.pool()).await.unwrap();
    let file = ChecksFile::parse(
        "[[check]]\nname = \"late_orders\"\ntype = \"volume\"\ndataset = \"orders\"\nfilter = \"is_lat = true\"\n",
        "mine.toml",
        &catalog,
    )
    .unwrap();
    let err = match Quality::new(t.pool().clone(), file).await {
        Ok(_) => panic!("accepted a filter on a missing column"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("mine.toml") && err.contains("late_orders") && err.contains("is_lat"),
        "{err}"
    );
    t.finish().await;
}

#[tokio::test]
async fn a_checks_file_layers_over_the_shipped_one_and_switches_checks_off() {
    let t = TestDb::new(&heal_testkit::Backend::Embedded).await;
    let catalog = Catalog::load(t.pool()).await.unwrap();
    let shipped = ChecksFile::default_checks(&catalog).unwrap();
    // Every event stream has its generated checks, named after its table.
    for table in [
        "users",
        "sessions",
        "product_views",
        "cart_items",
        "orders",
        "payments",
        "refunds",
    ] {
        for class in ["volume", "schema", "timestamps", "on_time", "unique"] {
            let name = format!("{table}_{class}");
            assert!(shipped.get(&name).is_some(), "{name} missing");
        }
    }
    // The shipped file's own `orders_volume` overrides the generated one.
    let orders = shipped.get("orders_volume").unwrap();
    assert_eq!(orders.anomaly.unwrap().sensitivity, 8.0);

    let mine = ChecksFile::parse(
        r#"
        builtin = true
        off = ["payments_method_mix", "users_unique"]
        [[check]]
        name = "orders_volume"
        type = "volume"
        dataset = "orders"
        sensitivity = 6.0
        [[check]]
        name = "big_orders"
        type = "validity"
        dataset = "orders"
        column = "amount_minor"
        max = 1000000
        "#,
        "mine.toml",
        &catalog,
    )
    .unwrap();
    assert_eq!(mine.checks.len(), shipped.checks.len() - 2 + 1);
    assert!(mine.get("payments_method_mix").is_none() && mine.get("users_unique").is_none());
    assert_eq!(
        mine.get("orders_volume")
            .unwrap()
            .anomaly
            .unwrap()
            .sensitivity,
        6.0
    );
    assert!(mine.get("big_orders").is_some() && mine.get("refunds_volume").is_some());

    // Alone (no `builtin`), a file gets only its own and the generated checks.
    let alone = ChecksFile::parse(
        "[[check]]\nname = \"big\"\ntype = \"volume\"\ndataset = \"orders\"\n",
        "mine.toml",
        &catalog,
    )
    .unwrap();
    assert!(alone.get("payments_method_mix").is_none() && alone.get("orders_unique").is_some());
    let bare = ChecksFile::parse("generate = false\n", "mine.toml", &catalog).unwrap();
    assert!(bare.checks.is_empty());

    // Switching off a check nobody has is refused, naming the key and the value.
    let e = ChecksFile::parse(
        "builtin = true\noff = [\"orders_volum\"]\n",
        "mine.toml",
        &catalog,
    )
    .expect_err("refused");
    assert_eq!(e.key, "off[1]");
    assert!(e.message.contains("orders_volum"), "{}", e.message);
    t.finish().await;
}

#[tokio::test]
async fn a_finished_job_triggers_its_pipeline_check_and_the_checks_of_its_output() {
    let t = TestDb::new(&heal_testkit::Backend::Embedded).await;
    let q = common::quality(t.pool()).await;
    let mut stg = q.triggered_by("stg_orders");
    stg.sort();
    assert_eq!(stg, vec!["pipeline_health", "stg_orders_reconcile"]);
    assert_eq!(q.triggered_by("daily_revenue"), vec!["pipeline_health"]);
    t.finish().await;
}
