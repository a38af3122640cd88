//! The lineage contract on the PostgreSQL backend (embedded engine and server).

mod common;

use heal_lineage::pg::PgGraph;
use heal_lineage::{Graph, Lineage};
use heal_testkit::{backends, TestDb};

#[tokio::test]
async fn postgres_backend_passes_the_contract() {
    for backend in backends() {
        let db = TestDb::new(&backend).await;
        let columns = heal_ingest::lineage::output_columns(db.pool())
            .await
            .unwrap();
        assert!(columns
            .iter()
            .any(|c| c.0 == "orders" && c.1 == "amount_minor"));
        let events = common::events(&columns);
        let graph = Graph::Postgres(PgGraph::new(db.pool().clone()));
        common::build(&graph, &events).await;
        let l = Lineage::new(graph, db.pool().clone(), None);
        common::contract(&l, &events).await;
        common::idempotent(&l, &events).await;
        // The schema facet comes from the database's own column list.
        let orders = l.resolve("table:orders", &[]).await.unwrap();
        let fields = orders.props.fields.unwrap();
        assert!(fields.contains(&"amount_minor".to_string()), "{fields:?}");
        db.finish().await;
    }
}
