//! The executor's `replay_quarantine`: the mapping a schema-drift incident carries repairs the
//! quarantined events, ingest replays them, verification judges the KPI; a replay whose KPI
//! does not come back is rolled back to exactly the rows there were before.

mod common;

use chrono::{DateTime, Duration as Days, TimeZone, Utc};
use common::{incident, message, node};
use heal_incidents::executor::policy::{Caps, Policy};
use heal_incidents::executor::verify::Kpi;
use heal_incidents::executor::{self, Executor, Settings};
use heal_incidents::store;
use heal_ingest::{quarantine, Incoming, Ingestor, Source};
use heal_model::event::{CanonicalEvent, EventBody, SchemaVersion};
use heal_model::incident::*;
use heal_testkit::{backends, TestDb};
use sqlx::PgPool;
use std::time::Duration;

fn order(id: &str, at: DateTime<Utc>) -> CanonicalEvent {
    CanonicalEvent {
        event_id: id.into(),
        occurred_at: at,
        user_id: format!("u-{id}"),
        session_id: None,
        schema_version: SchemaVersion::V2,
        body: EventBody::Order {
            order_id: format!("o-{id}"),
            amount_minor: 2500,
            currency: "USD".into(),
            item_count: 1,
            lines: vec![],
        },
    }
}

/// The v2 wire form of `ev`, with `data.amount_minor` renamed to `amount_cents` when drifted.
fn wire(ev: &CanonicalEvent, drifted: bool) -> Incoming {
    let mut v = heal_model::wire::encode(ev, SchemaVersion::V2).unwrap();
    if drifted {
        let amount = v["data"]
            .as_object_mut()
            .unwrap()
            .remove("amount_minor")
            .unwrap();
        v["data"]["amount_cents"] = amount;
    }
    Incoming {
        partition: None,
        offset: None,
        payload: v.to_string().into_bytes(),
        produced_at: None,
    }
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap()
}

/// `per_day` orders a day from 2026-03-01 to 2026-03-10; on 2026-03-09 ten of them arrive
/// with a renamed amount field and are quarantined.
async fn orders_with_drift(ingestor: &Ingestor, per_day: u32) {
    let mut items = Vec::new();
    for d in 1..=10 {
        for i in 0..per_day {
            let ev = order(&format!("{d}-{i}"), day(d) + Days::minutes(i as i64));
            items.push(wire(&ev, d == 9 && i < 10));
        }
    }
    let out = ingestor.ingest(&Source::Http, items).await.unwrap();
    assert_eq!(out.quarantined.len(), 10);
    assert!(out.quarantined.iter().all(|q| q.reason == "schema_drift"));
}

fn drift_incident() -> Incident {
    let mut i = incident(
        "inc-drift",
        IncidentClass::SchemaDrift,
        "dataset:orders",
        &["dataset:orders"],
        0,
    );
    i.severity = heal_model::quality::Severity::Medium;
    i.data_start = day(9);
    i.data_end = day(9) + Days::hours(23);
    i.symptoms[0].condition_id = 777;
    i.affected = vec![AffectedAsset {
        node: node("dataset:daily_revenue"),
        distance: 1,
        criticality: None,
    }];
    i.recommendations = vec![Recommendation {
        rank: 1,
        action: Action::ReplayQuarantine {
            event_type: Some("ORDER_PLACED".into()),
            reasons: vec!["schema_drift".into()],
            mapping: vec![("amount_cents".into(), "amount".into())],
        },
        success_rate: 0.8,
        rationale: "test".into(),
    }];
    i
}

fn settings(verify_within: Duration) -> Settings {
    Settings {
        policy: Policy::all_auto(),
        caps: Caps::default(),
        interval: Duration::from_millis(100),
        verify_within,
        kpi_tolerance: 0.25,
        kpis: vec![Kpi::new(
            "orders_per_day",
            "orders",
            "(placed_at AT TIME ZONE 'UTC')::date",
            "count(*)",
        )],
        webhook_url: None,
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// A digest of what the replay and its rollback touch: typed and raw rows, quarantine states.
async fn digest(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT md5(
            (SELECT coalesce(string_agg(to_jsonb(o)::text, ',' ORDER BY event_id), '') FROM orders o)
         || (SELECT coalesce(string_agg(event_id || source || payload::text, ',' ORDER BY event_id), '')
             FROM raw_events)
         || (SELECT coalesce(string_agg(id || status || reason, ',' ORDER BY id), '') FROM quarantine))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_repairs_quarantined_events_and_holds_for_new_ones() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool();
        let ingestor = Ingestor::new(pool.clone(), Default::default())
            .await
            .unwrap();
        orders_with_drift(&ingestor, 20).await;
        store::apply_message(pool, &message(IncidentChange::Opened, &drift_incident()))
            .await
            .unwrap();
        let ex = Executor::new(pool.clone(), settings(Duration::from_secs(600)), None);

        let tick = ex.tick().await.unwrap();
        assert_eq!((tick.planned, tick.applied), (1, 1), "{backend}: {tick:?}");
        let a = &executor::actions_of(pool, "inc-drift").await.unwrap()[0];
        assert!(a.data_changing);
        assert_eq!(a.dry_run["quarantined_events"], 10, "{backend}: {a:?}");
        assert_eq!(a.dry_run["would_ingest"], 10);
        assert_eq!(a.dry_run["partitions"][0]["table"], "orders");
        assert_eq!(a.dry_run["partitions"][0]["day"], "2026-03-09");
        assert_eq!(a.dry_run["mappings"][0]["schema_version"], "2.0");
        assert_eq!(
            count(pool, "SELECT count(*) FROM field_mappings WHERE active").await,
            1
        );
        // Ingest has not replayed yet: verification waits for it.
        assert_eq!(ex.tick().await.unwrap().verified, 0);
        assert_eq!(
            store::summary(pool, "inc-drift").await.unwrap().state,
            "verifying"
        );

        assert_eq!(quarantine::run_requested(&ingestor).await.unwrap(), 1);
        assert_eq!(
            count(
                pool,
                "SELECT count(*) FROM orders WHERE placed_at >= '2026-03-09' AND placed_at < '2026-03-10'"
            )
            .await,
            20,
            "{backend}: the replayed orders are stored"
        );
        assert_eq!(
            count(pool, "SELECT min(amount_minor) FROM orders").await,
            2500,
            "{backend}: with the amount from the renamed field"
        );
        assert_eq!(
            count(
                pool,
                "SELECT count(*) FROM quarantine WHERE status = 'open'"
            )
            .await,
            0
        );
        let tick = ex.tick().await.unwrap();
        assert_eq!(tick.verified, 1, "{backend}: {tick:?}");
        let s = store::summary(pool, "inc-drift").await.unwrap();
        assert_eq!(
            (s.state.as_str(), s.resolution_reason.as_deref()),
            ("resolved", Some("remediated"))
        );

        // From then on, ingest maps new events of that type and version as they arrive.
        let later = order("late-1", day(10) + Days::hours(5));
        let out = ingestor
            .ingest(&Source::Http, vec![wire(&later, true)])
            .await
            .unwrap();
        assert_eq!((out.inserted, out.quarantined.len()), (1, 0), "{backend}");
        let stored: serde_json::Value =
            sqlx::query_scalar("SELECT payload FROM raw_events WHERE event_id = 'late-1'")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(stored["data"]["amount_minor"], 2500, "{backend}: {stored}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_does_not_restore_the_kpi_is_rolled_back_exactly() {
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool();
        let ingestor = Ingestor::new(pool.clone(), Default::default())
            .await
            .unwrap();
        // 30 a day; on 2026-03-09 ten are quarantined and ten are lost (deleted below), so the
        // replay brings the day to 20: a third under its baseline of 30.
        orders_with_drift(&ingestor, 30).await;
        sqlx::query(
            "DELETE FROM orders WHERE placed_at >= '2026-03-09 00:20' AND placed_at < '2026-03-10'",
        )
        .execute(pool)
        .await
        .unwrap();
        store::apply_message(pool, &message(IncidentChange::Opened, &drift_incident()))
            .await
            .unwrap();
        let before = digest(pool).await;

        let tick = Executor::new(pool.clone(), settings(Duration::from_secs(600)), None)
            .tick()
            .await
            .unwrap();
        assert_eq!(tick.applied, 1, "{backend}: {tick:?}");
        assert_eq!(quarantine::run_requested(&ingestor).await.unwrap(), 1);
        assert_ne!(
            digest(pool).await,
            before,
            "{backend}: the replay changed rows"
        );

        // Out of time, the KPI still off: everything the replay did is undone.
        let tick = Executor::new(pool.clone(), settings(Duration::ZERO), None)
            .tick()
            .await
            .unwrap();
        assert_eq!(tick.rolled_back, 1, "{backend}: {tick:?}");
        assert_eq!(digest(pool).await, before, "{backend}: exactly as before");
        assert_eq!(
            store::summary(pool, "inc-drift").await.unwrap().state,
            "failed"
        );
        assert_eq!(
            count(pool, "SELECT count(*) FROM field_mappings WHERE active").await,
            0
        );
        let a = &executor::actions_of(pool, "inc-drift").await.unwrap()[0];
        assert_eq!(a.state, "rolled_back");
        assert_eq!(
            a.outcome.as_ref().unwrap()["rollback"]["events_removed"],
            10
        );

        // The mapping is retired: a drifted event is quarantined again.
        ingestor.refresh_mappings(false).await.unwrap();
        let later = order("late-2", day(10) + Days::hours(5));
        let out = ingestor
            .ingest(&Source::Http, vec![wire(&later, true)])
            .await
            .unwrap();
        assert_eq!(out.quarantined.len(), 1, "{backend}");
    }
}
