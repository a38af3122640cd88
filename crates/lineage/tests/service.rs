//! The lineage service over PostgreSQL: events posted through [`Lineage::accept`] and events
//! other roles append to the log are projected into the graph exactly once; an event seen
//! twice is stored once; an invalid event is refused with every problem; a rebuild from the
//! log gives the same graph.

use heal_lineage::pg::PgGraph;
use heal_lineage::service::AcceptError;
use heal_lineage::{Graph, Lineage, LineageApi};
use heal_testkit::{server_url, Backend, TestDb};
use serde_json::json;

#[tokio::test]
async fn events_reach_the_graph_once_from_every_path() {
    let Some(admin) = server_url() else {
        eprintln!("skipped: needs HEAL_TEST_DATABASE_URL");
        return;
    };
    let t = TestDb::new(&Backend::Server(admin)).await;
    let pool = t.pool().clone();
    let schemas = heal_lineage::validate::Schemas::load(&heal_testkit::openlineage_dir()).unwrap();
    let l = Lineage::new(
        Graph::Postgres(PgGraph::new(pool.clone())),
        pool.clone(),
        Some(std::sync::Arc::new(schemas)),
    );
    // Another role's events, appended to the log directly.
    for job in heal_batch::catalog::jobs() {
        let e = heal_batch::events::job_event("heal", &job, chrono::Utc::now());
        assert!(heal_store::lineage_log::record(&pool, "batch", &e)
            .await
            .unwrap());
    }
    assert_eq!(l.project().await.unwrap(), 7);
    assert_eq!(
        l.project().await.unwrap(),
        0,
        "each event is projected once"
    );
    assert!(l.dependencies("daily_revenue").await.is_ok());

    let event = json!({
        "eventType": "COMPLETE", "eventTime": "2026-03-02T00:00:00Z",
        "producer": "https://example.com/x",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": { "runId": "0191c1d2-3b4a-7c5d-8e6f-7a8b9c0d1e2f" },
        "job": { "namespace": "ext", "name": "export" },
        "inputs": [{ "namespace": "postgres://heal", "name": "public.daily_revenue" }],
        "outputs": [{ "namespace": "s3://bucket", "name": "reports/revenue.csv" }],
    });
    let a = l.accept(&event, "http").await.unwrap();
    assert!(a.stored);
    assert_eq!(a.projected, 1);
    let again = l.accept(&event, "topic").await.unwrap();
    assert!(
        !again.stored,
        "the same event by another path is stored once"
    );
    let affected = l.affected("daily_revenue", None).await.unwrap();
    assert!(affected
        .affected
        .iter()
        .any(|x| x.name == "reports/revenue.csv" && x.depth == 2));

    let mut bad = event.clone();
    bad["run"]["runId"] = json!("x");
    bad["eventTime"] = json!("noon");
    match l.accept(&bad, "http").await {
        Err(AcceptError::Invalid(r)) => {
            assert!(
                r.problems.iter().any(|p| p.starts_with("run.runId")),
                "{r:?}"
            );
            assert!(
                r.problems.iter().any(|p| p.starts_with("eventTime")),
                "{r:?}"
            );
        }
        other => panic!("accepted an invalid event: {other:?}"),
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM lineage_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 8, "nothing invalid is stored");

    // An event the graph cannot take (a name beyond the key index's limit, put in the log
    // behind validation's back) is marked and skipped; the rest of its batch lands.
    let mut huge = event.clone();
    huge["run"]["runId"] = json!("0191c1d2-3b4a-7c5d-8e6f-000000000001");
    // Incompressible, so that the index entry really exceeds its limit.
    let mut x = 1u64;
    let name: String = (0..5000)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + (x >> 59) as u8 % 26)
        })
        .collect();
    huge["outputs"][0]["name"] = json!(name);
    let mut fine = event.clone();
    fine["run"]["runId"] = json!("0191c1d2-3b4a-7c5d-8e6f-000000000002");
    fine["outputs"][0]["name"] = json!("reports/fine.csv");
    for e in [&huge, &fine] {
        heal_store::lineage_log::record(&pool, "test", e)
            .await
            .unwrap();
    }
    assert_eq!(l.project().await.unwrap(), 2);
    let errors: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT projection_error FROM lineage_events WHERE source = 'test' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(errors[0].is_some(), "{errors:?}");
    assert!(errors[1].is_none(), "{errors:?}");
    assert!(l
        .affected("daily_revenue", None)
        .await
        .unwrap()
        .affected
        .iter()
        .any(|x| x.name == "reports/fine.csv"));

    let before = l.export().await.unwrap();
    assert_eq!(l.rebuild().await.unwrap(), 10);
    assert_eq!(l.project().await.unwrap(), 10);
    let after = l.export().await.unwrap();
    assert_eq!(before, after, "a rebuild from the log gives the same graph");
    t.finish().await;
}
