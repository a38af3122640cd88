//! The batch HTTP API: job status, a manual run of one day, the run history, and clear
//! errors for bad requests.

mod common;

use common::*;
use heal_batch::{Engine, Schedules, Selection, Settings, Trigger};
use heal_testkit::{Backend, TestDb};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

async fn call(port: u16, method: &'static str, path: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || heal_testkit::http(port, method, &path, ""))
        .await
        .unwrap()
        .expect("the server answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_runs_and_manual_runs_over_http() {
    let t = TestDb::new(&Backend::Embedded).await;
    ingest(t.pool(), &generate(41, 2.0, 1000.0), 0).await;
    let engine = Arc::new(Engine::new(t.pool().clone(), None, Settings::default()).unwrap());
    let overrides = BTreeMap::from([("user_retention".to_string(), "0 3 * * *".to_string())]);
    let schedules = Arc::new(Schedules::build(&engine, "every 60s", &overrides).unwrap());
    // Compute everything but payment_success, which stays never run.
    let names: Vec<&str> = engine
        .dag()
        .ordered()
        .map(|j| j.name)
        .filter(|n| *n != "payment_success")
        .collect();
    engine
        .run(&names, Trigger::Schedule, Selection::default())
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = heal_batch::http::routes(engine.clone(), schedules);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (status, body) = call(port, "GET", "/api/batch/jobs".into()).await;
    assert_eq!(status, 200, "{body}");
    let jobs: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(jobs.len(), 7);
    let job = |name: &str| jobs.iter().find(|j| j["name"] == name).unwrap().clone();
    assert_eq!(job("daily_revenue")["state"], "fresh");
    assert_eq!(job("daily_revenue")["schedule"], "every 60s");
    assert_eq!(job("user_retention")["schedule"], "0 3 * * *");
    assert_eq!(job("payment_success")["state"], "never_run");
    assert_eq!(
        job("daily_revenue")["upstream"].as_array().unwrap().len(),
        3
    );
    assert_eq!(job("daily_revenue")["latest_partition"], "2026-03-02");

    let (status, body) = call(
        port,
        "POST",
        "/api/batch/jobs/daily_revenue/run?date=2026-03-01".into(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["runs"].as_array().unwrap().len(), 1);
    assert_eq!(report["runs"][0]["succeeded"], true);

    let (status, body) = call(
        port,
        "GET",
        "/api/batch/runs?job=daily_revenue&limit=50".into(),
    )
    .await;
    assert_eq!(status, 200);
    let runs: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        runs.len(),
        3,
        "two scheduled days and one manual rerun: {body}"
    );
    assert_eq!(runs[0]["trigger"], "manual");
    assert_eq!(runs[0]["day"], "2026-03-01");
    assert!(runs[0]["rows_read"].as_i64().unwrap() > 0);

    let (status, body) = call(port, "GET", "/api/batch/runs?limit=lots".into()).await;
    assert_eq!(status, 400);
    assert!(body.contains("limit"), "{body}");
    let (status, body) = call(port, "POST", "/api/batch/jobs/no_such_job/run".into()).await;
    assert_eq!(status, 404);
    assert!(body.contains("no_such_job"), "{body}");
    let (status, _) = call(
        port,
        "POST",
        "/api/batch/jobs/daily_revenue/run?date=yesterday".into(),
    )
    .await;
    assert_eq!(status, 400);

    server.abort();
    t.finish().await;
}
