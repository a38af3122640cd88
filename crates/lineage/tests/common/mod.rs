//! The contract every lineage backend must pass, on a graph built from the platform's real
//! declarations: the batch catalog's job events, the ingest job event, run events of the batch
//! engine (one failed run), and a data-quality run event with one failing assertion, as a dbt
//! or Great Expectations emitter would send it.

#![allow(dead_code)]

use chrono::{NaiveDate, TimeZone, Utc};
use heal_batch::events::{self, RowCounts, RunState};
use heal_lineage::model::{Direction, NodeKind};
use heal_lineage::query::QueryError;
use heal_lineage::{mapping, Graph, Lineage, LineageApi};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The events the contract graph is built from, in the order they were emitted.
pub fn events(ingest_columns: &[(String, String, String)]) -> Vec<Value> {
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let t = |h: u32| Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap();
    let mut out = vec![heal_ingest::lineage::job_event(
        ingest_columns,
        Some("kafka:9092"),
        "raw-events",
        t(0),
    )];
    let jobs = heal_batch::catalog::jobs();
    for job in &jobs {
        out.push(events::job_event("heal", job, t(0)));
    }
    let job = |name: &str| jobs.iter().find(|j| j.name == name).unwrap();
    let stg = Uuid::new_v4();
    out.push(events::run_event(
        "heal",
        job("stg_orders"),
        stg,
        day,
        RunState::Start,
        t(1),
        None,
        None,
    ));
    let rows = RowCounts {
        read: vec![("orders", 1200)],
        written: vec![("stg_orders", 1180)],
    };
    out.push(events::run_event(
        "heal",
        job("stg_orders"),
        stg,
        day,
        RunState::Complete,
        t(2),
        Some(&rows),
        None,
    ));
    let rev = Uuid::new_v4();
    out.push(events::run_event(
        "heal",
        job("daily_revenue"),
        rev,
        day,
        RunState::Fail,
        t(3),
        None,
        Some("injected failure: disk full"),
    ));
    // An older START of the same run, delivered late: must not hide the failure.
    out.push(events::run_event(
        "heal",
        job("daily_revenue"),
        rev,
        day,
        RunState::Start,
        t(2),
        None,
        None,
    ));
    out.push(check_event(t(4)));
    out
}

/// A quality run that tests `stg_orders` (passing) and `daily_revenue` (failing).
pub fn check_event(at: chrono::DateTime<Utc>) -> Value {
    let facet = |assertions: Value| {
        json!({ "dataQualityAssertions": {
            "_producer": "https://github.com/dbt-labs/dbt-core",
            "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
            "assertions": assertions,
        }})
    };
    json!({
        "eventType": "COMPLETE",
        "eventTime": heal_model::openlineage::time(at),
        "producer": "https://github.com/dbt-labs/dbt-core",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": { "runId": Uuid::new_v4().to_string() },
        "job": { "namespace": "dbt", "name": "analytics.tests" },
        "inputs": [
            { "namespace": "postgres://heal", "name": "public.stg_orders",
              "inputFacets": facet(json!([{ "assertion": "not_null", "column": "order_id", "success": true }])) },
            { "namespace": "postgres://heal", "name": "public.daily_revenue",
              "inputFacets": facet(json!([{ "assertion": "expression", "name": "net_revenue_positive",
                                            "column": "net_revenue_usd", "success": false, "severity": "error" }])) },
        ],
    })
}

/// Applies `events` to the graph directly (as the projector would).
pub async fn build(graph: &Graph, events: &[Value]) {
    for e in events {
        graph.apply(&mapping::update(e)).await.expect("apply");
    }
}

fn names(assets: &[heal_lineage::query::Asset], kind: NodeKind) -> BTreeSet<String> {
    assets
        .iter()
        .filter(|a| a.kind == kind)
        .map(|a| a.name.trim_start_matches("public.").to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every assertion of the contract.
pub async fn contract(l: &Lineage, events_again: &[Value]) {
    // --- affected: a raw table.
    let a = l.affected("orders", None).await.expect("affected orders");
    assert_eq!(a.node.kind, NodeKind::Dataset);
    assert_eq!(
        names(&a.affected, NodeKind::Dataset),
        set(&[
            "stg_orders",
            "daily_revenue",
            "daily_revenue_by_currency",
            "user_funnel"
        ])
    );
    // The quality job reads stg_orders and daily_revenue: it is downstream too.
    assert_eq!(
        names(&a.affected, NodeKind::Job),
        set(&[
            "stg_orders",
            "daily_revenue",
            "user_funnel",
            "analytics.tests"
        ])
    );
    assert_eq!(
        names(&a.affected, NodeKind::Kpi),
        set(&[
            "net_revenue",
            "gross_revenue",
            "average_order_value",
            "conversion_rate"
        ])
    );
    assert_eq!(
        names(&a.affected, NodeKind::Check),
        set(&[
            "stg_orders:not_null(order_id)",
            "daily_revenue:net_revenue_positive"
        ])
    );
    let depth = |name: &str, kind: NodeKind| {
        a.affected
            .iter()
            .find(|x| x.kind == kind && x.name.trim_start_matches("public.") == name)
            .map(|x| x.depth)
    };
    assert_eq!(depth("stg_orders", NodeKind::Job), Some(1));
    assert_eq!(depth("stg_orders", NodeKind::Dataset), Some(2));
    assert_eq!(depth("daily_revenue", NodeKind::Dataset), Some(4));
    assert_eq!(depth("net_revenue", NodeKind::Kpi), Some(5));
    assert_eq!(a.counts[&NodeKind::Dataset], 4);
    // Depth-limited.
    let near = l.affected("orders", Some(2)).await.unwrap();
    assert!(near.affected.iter().all(|x| x.depth <= 2));
    assert_eq!(
        names(&near.affected, NodeKind::Dataset),
        set(&["stg_orders"])
    );

    // --- affected: a staging table and an analytics table.
    let a = l.affected("stg_payments", None).await.unwrap();
    assert_eq!(
        names(&a.affected, NodeKind::Dataset),
        set(&[
            "daily_revenue",
            "daily_revenue_by_currency",
            "user_funnel",
            "payment_success"
        ])
    );
    assert!(names(&a.affected, NodeKind::Kpi).contains("payment_success_rate"));
    let a = l.affected("daily_revenue", None).await.unwrap();
    assert_eq!(
        a.node.kind,
        NodeKind::Dataset,
        "affected takes the table, not the job"
    );
    assert_eq!(names(&a.affected, NodeKind::Dataset), set(&[]));
    assert_eq!(names(&a.affected, NodeKind::Job), set(&["analytics.tests"]));
    assert_eq!(
        names(&a.affected, NodeKind::Kpi),
        set(&["net_revenue", "gross_revenue", "average_order_value"])
    );
    // A stream: everything ingest writes is downstream of it.
    let a = l.affected("raw-events", Some(2)).await.unwrap();
    assert_eq!(a.node.kind, NodeKind::Stream);
    assert!(names(&a.affected, NodeKind::Dataset).is_superset(&set(&[
        "raw_events",
        "users",
        "orders",
        "payments",
        "refunds",
        "quarantine"
    ])));

    // --- dependencies of a job.
    let d = l.dependencies("stg_payments").await.expect("dependencies");
    let keys = |v: &[heal_lineage::Node]| -> BTreeSet<String> {
        v.iter().map(|n| n.short_name().to_string()).collect()
    };
    assert_eq!(keys(&d.inputs), set(&["payments", "fx_rates"]));
    assert_eq!(keys(&d.outputs), set(&["stg_payments"]));
    let jobs = |v: &[heal_lineage::query::Asset]| -> BTreeSet<(String, u32)> {
        v.iter().map(|a| (a.name.clone(), a.depth)).collect()
    };
    assert_eq!(
        jobs(&d.downstream_jobs),
        [
            ("daily_revenue", 1),
            ("user_funnel", 1),
            ("payment_success", 1),
            ("analytics.tests", 2)
        ]
        .iter()
        .map(|(n, d)| (n.to_string(), *d))
        .collect()
    );
    assert_eq!(jobs(&d.upstream_jobs), [("ingest".to_string(), 1)].into());
    let d = l.dependencies("daily_revenue").await.unwrap();
    assert_eq!(
        jobs(&d.downstream_jobs),
        [("analytics.tests".to_string(), 1)].into()
    );
    assert_eq!(
        jobs(&d.upstream_jobs),
        [
            ("stg_orders", 1),
            ("stg_payments", 1),
            ("stg_refunds", 1),
            ("ingest", 2)
        ]
        .iter()
        .map(|(n, d)| (n.to_string(), *d))
        .collect()
    );

    // --- impact.
    let i = l.impact("stg_payments", None).await.expect("impact");
    assert_eq!(i.summary.max_criticality.as_deref(), Some("critical"));
    assert_eq!(
        i.summary.kpis_at_risk.first().map(String::as_str),
        Some("net_revenue")
    );
    assert_eq!(i.summary.open_failures, 2, "{:?}", i.summary);
    let group = |kind: NodeKind, distance: u32| {
        i.groups
            .iter()
            .find(|g| g.kind == kind && g.distance == distance)
            .unwrap_or_else(|| panic!("no group {kind} at {distance}: {:?}", i.groups))
    };
    let job = group(NodeKind::Job, 1)
        .assets
        .iter()
        .find(|a| a.name == "daily_revenue")
        .expect("daily_revenue job at distance 1");
    assert_eq!(job.open_failures.len(), 1);
    assert_eq!(job.open_failures[0].kind, "job_failed");
    assert_eq!(
        job.open_failures[0].message.as_deref(),
        Some("injected failure: disk full")
    );
    let table = group(NodeKind::Dataset, 2)
        .assets
        .iter()
        .find(|a| a.name == "public.daily_revenue")
        .expect("daily_revenue table at distance 2");
    assert_eq!(table.criticality.as_deref(), Some("critical"));
    assert!(table.open_failures.iter().any(|f| f.kind == "check_failed"));
    assert!(table.open_failures.iter().any(|f| f.kind == "job_failed"));
    let ps = group(NodeKind::Dataset, 2)
        .assets
        .iter()
        .find(|a| a.name == "public.payment_success")
        .unwrap();
    assert_eq!(ps.criticality.as_deref(), Some("high"));
    assert!(ps.open_failures.is_empty());
    // Freshness: stg_orders was written by a completed run.
    let i = l.impact("orders", Some(2)).await.unwrap();
    let stg = &group_in(&i, NodeKind::Dataset, 2).assets[0];
    assert_eq!(stg.name, "public.stg_orders");
    assert_eq!(
        stg.freshness.last_updated.as_deref(),
        Some("2026-03-02T02:00:00.000Z")
    );
    assert!(stg.freshness.age_seconds.unwrap() > 0);

    // --- traversals, path, subgraph.
    let up = l
        .traverse("kpi:net_revenue", Direction::Upstream, None)
        .await
        .expect("upstream");
    let up_data = names(&up.nodes, NodeKind::Dataset);
    assert!(up_data.is_superset(&set(&[
        "daily_revenue",
        "stg_payments",
        "orders",
        "payments",
        "refunds",
        "fx_rates"
    ])));
    assert!(!up_data.contains("users"));
    assert_eq!(names(&up.nodes, NodeKind::Stream), set(&["raw-events"]));
    let p = l.path("raw-events", "kpi:net_revenue").await.expect("path");
    assert_eq!(p.direction, Direction::Downstream);
    assert_eq!(
        p.nodes.len(),
        8,
        "{:?}",
        p.nodes.iter().map(|n| &n.key).collect::<Vec<_>>()
    );
    assert_eq!(p.edges.len(), 7);
    assert_eq!(p.nodes.first().unwrap().kind, NodeKind::Stream);
    assert_eq!(p.nodes.last().unwrap().kind, NodeKind::Kpi);
    let back = l.path("kpi:net_revenue", "table:orders").await.unwrap();
    assert_eq!(back.direction, Direction::Upstream);
    assert!(matches!(
        l.path("table:users", "kpi:net_revenue").await,
        Err(QueryError::NoPath(_))
    ));
    let s = l.subgraph("table:stg_orders", 1).await.expect("subgraph");
    let around: BTreeSet<String> = s
        .nodes
        .iter()
        .map(|n| format!("{}:{}", n.kind, n.short_name()))
        .collect();
    assert_eq!(
        around,
        set(&[
            "dataset:stg_orders",
            "job:stg_orders",
            "job:daily_revenue",
            "job:user_funnel",
            "job:analytics.tests",
            "check:stg_orders:not_null(order_id)"
        ])
    );

    // --- column lineage.
    let (_, cols) = l.columns("daily_revenue").await.expect("columns");
    assert!(cols.iter().any(|c| c.dst_field == "net_revenue_usd"
        && c.src.ends_with("public.stg_refunds")
        && c.src_field == "amount_usd"
        && c.transformation == "DIRECT/AGGREGATION"));

    // --- node properties.
    let job = l.resolve("job:daily_revenue", &[]).await.unwrap();
    assert_eq!(
        job.props.last_run_state.as_deref(),
        Some("FAIL"),
        "late START must not win"
    );
    let stg = l.resolve("table:stg_orders", &[]).await.unwrap();
    assert_eq!(stg.props.row_count, Some(1180));
    assert_eq!(stg.props.layer.as_deref(), Some("staging"));
    let kpi = l.resolve("kpi:net_revenue", &[]).await.unwrap();
    assert_eq!(kpi.props.criticality.as_deref(), Some("critical"));

    // --- names with quotes and backslashes survive every backend.
    let odd = "public.o'brien\\x";
    let mut u = heal_lineage::model::Update::default();
    u.node(heal_lineage::Node::new(
        NodeKind::Dataset,
        "postgres://heal",
        odd,
        heal_lineage::Props {
            description: Some("it's \\ here".into()),
            ..Default::default()
        },
    ));
    l.graph().apply(&u).await.unwrap();
    let n = l.resolve(odd, &[]).await.expect("found by its odd name");
    assert_eq!(n.name, odd);
    assert_eq!(n.props.description.as_deref(), Some("it's \\ here"));
    l.graph().clear().await.unwrap();
    build(l.graph(), events_again).await;

    // --- errors.
    let e = l.affected("no_such_table", None).await.unwrap_err();
    assert!(matches!(e, QueryError::NotFound(_)), "{e}");
    assert!(e.to_string().contains("no_such_table"));
    let e = l.dependencies("orders").await.unwrap_err();
    assert!(
        matches!(e, QueryError::NotFound(_)),
        "a table is not a job: {e}"
    );
    let e = l
        .traverse("daily_revenue", Direction::Downstream, None)
        .await
        .unwrap_err();
    assert!(matches!(e, QueryError::Ambiguous(_)), "{e}");

    // --- export.
    let g = l.export().await.unwrap();
    let kinds: BTreeSet<NodeKind> = g.nodes.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, NodeKind::ALL.into_iter().collect());
    assert!(g
        .edges
        .iter()
        .all(|e| g.nodes.iter().any(|n| n.key == e.src) && g.nodes.iter().any(|n| n.key == e.dst)));
    let dot = heal_lineage::query::to_dot(&g);
    assert!(dot.contains(
        "\"job:heal:daily_revenue\" -> \"dataset:postgres://heal:public.daily_revenue\""
    ));
}

fn group_in(
    i: &heal_lineage::query::Impact,
    kind: NodeKind,
    distance: u32,
) -> &heal_lineage::query::ImpactGroup {
    i.groups
        .iter()
        .find(|g| g.kind == kind && g.distance == distance)
        .unwrap()
}

/// Applying the same events again changes nothing.
pub async fn idempotent(l: &Lineage, events: &[Value]) {
    let before = l.export().await.unwrap();
    build(l.graph(), events).await;
    let after = l.export().await.unwrap();
    assert_eq!(before.nodes.len(), after.nodes.len());
    assert_eq!(before.edges, after.edges);
    assert_eq!(before.nodes, after.nodes);
}
