//! The lineage contract on the Bolt backend, against the Bolt/Cypher server named by
//! `HEAL_TEST_BOLT` (`bolt://host:port`; the test script runs FalkorDB for it in a private
//! network namespace). Required in CI.

mod common;

use heal_lineage::bolt::{BoltGraph, BoltSettings};
use heal_lineage::{Graph, Lineage};

fn bolt_uri() -> Option<String> {
    match std::env::var("HEAL_TEST_BOLT") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI=true but HEAL_TEST_BOLT is not set: the Bolt backend must be tested in CI")
        }
        _ => None,
    }
}

#[tokio::test]
async fn bolt_backend_passes_the_contract() {
    let Some(uri) = bolt_uri() else {
        eprintln!("note: HEAL_TEST_BOLT is not set; the Bolt contract is not run");
        return;
    };
    let graph = BoltGraph::connect(BoltSettings {
        uri,
        username: None,
        password: None,
        // FalkorDB takes no database name (it reads a query's first metadata key as the graph).
        database: None,
    })
    .await
    .expect("connect to the Bolt server");
    graph.clear().await.unwrap();
    // The ingest tables' columns as the migrations create them are not needed by the
    // contract; the Bolt test runs without PostgreSQL.
    let events = common::events(&[]);
    let graph = Graph::Bolt(graph);
    common::build(&graph, &events).await;
    // Queries never touch PostgreSQL; the pool is never connected.
    let pool = sqlx::PgPool::connect_lazy("postgresql://unused@127.0.0.1:1/unused").unwrap();
    let l = Lineage::new(graph.clone(), pool, None);
    common::contract(&l, &events).await;
    common::idempotent(&l, &events).await;
    graph.clear().await.unwrap();
}
