//! The self-healing executor on every backend: an incident with duplicated orders is healed
//! (deduplicated, its downstream held, its owner notified through a real webhook), verified on
//! its check and its KPI, and resolved; a fix that does not bring the KPI back is rolled back
//! until the data is exactly as before; approvals, refusals, the breaker and the audit log's
//! append-only rule; two executors never apply one action twice.

mod common;

use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use common::{at, incident, message, node};
use heal_incidents::executor::policy::{Caps, Policy};
use heal_incidents::executor::verify::Kpi;
use heal_incidents::executor::{self, Executor, Settings};
use heal_incidents::store;
use heal_model::incident::*;
use heal_model::quality::Severity;
use heal_testkit::{backends, TestDb};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 20 orders a day from 2026-03-01 to 2026-03-10; on 2026-03-09, 10 of them arrive twice.
async fn orders_with_duplicates(pool: &PgPool, extra_distinct: i32) {
    sqlx::query(
        "INSERT INTO orders (event_id, order_id, user_id, amount_minor, currency, item_count,
                             lines, placed_at, schema_version)
         SELECT 'e-' || d || '-' || i, 'o-' || d || '-' || i, 'u' || i, 1000, 'USD', 1, '[]'::jsonb,
                timestamptz '2026-03-01 00:00:00+00' + make_interval(days => d, mins => i), '3.0'
         FROM generate_series(0, 9) d, generate_series(1, 20) i",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO orders (event_id, order_id, user_id, amount_minor, currency, item_count,
                             lines, placed_at, schema_version)
         SELECT 'dup-' || i, 'o-8-' || i, 'u' || i, 1000, 'USD', 1, '[]'::jsonb,
                timestamptz '2026-03-09 00:00:30+00' + make_interval(mins => i), '3.0'
         FROM generate_series(1, 10) i
         UNION ALL
         SELECT 'x-' || i, 'ox-' || i, 'u' || i, 1000, 'USD', 1, '[]'::jsonb,
                timestamptz '2026-03-09 12:00:00+00' + make_interval(mins => i), '3.0'
         FROM generate_series(1, $1) i",
    )
    .bind(extra_distinct)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO daily_revenue (day, orders, order_value_usd, avg_order_value_usd,
                                    gross_revenue_usd, refunds_usd, net_revenue_usd,
                                    paying_customers)
         VALUES ('2026-03-08', 20, 200, 10, 200, 0, 200, 20),
                ('2026-03-09', 30, 300, 10, 300, 0, 300, 30)",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Orders per day of `orders`: the KPI verification compares with its baseline.
fn orders_kpi() -> Kpi {
    Kpi::new(
        "orders_per_day",
        "orders",
        "(placed_at AT TIME ZONE 'UTC')::date",
        "count(*)",
    )
}

/// The duplicate incident on 2026-03-09 with its three recommendations.
fn duplicate_incident(id: &str, severity: Severity) -> Incident {
    let mut i = incident(
        id,
        IncidentClass::DuplicateEvents,
        "dataset:orders",
        &["dataset:orders"],
        0,
    );
    i.severity = severity;
    i.data_start = "2026-03-09T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
    i.data_end = "2026-03-09T23:00:00Z".parse::<DateTime<Utc>>().unwrap();
    i.symptoms[0].condition_id = 4242;
    i.affected = vec![AffectedAsset {
        node: node("dataset:daily_revenue"),
        distance: 1,
        criticality: None,
    }];
    let rec = |rank, action| Recommendation {
        rank,
        action,
        success_rate: 0.8,
        rationale: "test".into(),
    };
    i.recommendations = vec![
        rec(
            1,
            Action::Deduplicate {
                dataset: "orders".into(),
                key: vec!["order_id".into()],
            },
        ),
        rec(
            2,
            Action::HoldPublication {
                datasets: vec!["daily_revenue".into()],
                from: i.data_start.to_rfc3339(),
                to: i.data_end.to_rfc3339(),
            },
        ),
        rec(
            3,
            Action::NotifyOwner {
                node: "dataset:orders".into(),
                owner: Some("team-orders".into()),
                reason: "duplicates".into(),
            },
        ),
    ];
    i
}

/// A webhook receiver that keeps what it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |Json(v): Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, got, task)
}

fn settings(webhook: &str) -> Settings {
    Settings {
        policy: Policy::all_auto(),
        caps: Caps::default(),
        interval: Duration::from_millis(100),
        verify_within: Duration::from_secs(600),
        kpi_tolerance: 0.25,
        kpis: vec![orders_kpi()],
        webhook_url: Some(webhook.to_string()),
    }
}

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn state_of(pool: &PgPool, id: &str) -> (String, Option<String>) {
    let s = store::summary(pool, id).await.unwrap();
    (s.state, s.resolution_reason)
}

/// A digest of every row of `orders`.
async fn orders_digest(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT md5(string_agg(to_jsonb(o)::text, ',' ORDER BY event_id)) FROM orders o",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_removed_held_notified_verified_and_the_incident_resolves() {
    let (hook, received, hook_task) = receiver().await;
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool();
        orders_with_duplicates(pool, 0).await;
        // The uniqueness check's condition is open until the quality role re-judges.
        sqlx::query(
            "INSERT INTO quality_conditions (id, check_name, subject, dataset, state, severity,
                 first_seen, last_seen, last_event)
             VALUES (4242, 'orders_unique', 'orders', 'orders', 'open', 'medium', now(), now(),
                     '{}')",
        )
        .execute(pool)
        .await
        .unwrap();
        let inc = duplicate_incident("inc-dup", Severity::Medium);
        store::apply_message(pool, &message(IncidentChange::Opened, &inc))
            .await
            .unwrap();
        let bus = heal_bus::Bus::new(None).unwrap();
        bus.create_topics(&heal_model::topics::ALL, 1, 1)
            .await
            .unwrap();
        let mut rechecks = bus
            .consumer("test-quality", heal_model::topics::QUALITY_REQUESTS)
            .unwrap();
        let ex = Executor::new(pool.clone(), settings(&hook), Some(bus.clone()));

        let tick = ex.tick().await.unwrap();
        assert_eq!((tick.planned, tick.applied), (3, 3), "{backend}: {tick:?}");
        // Verifying: the quality role is asked to judge the incident's check again at once.
        let asked = rechecks
            .poll_batch(10, std::time::Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(asked.len(), 1, "{backend}: one recheck request");
        let request: heal_model::quality::RecheckRequest =
            serde_json::from_slice(&asked[0].payload).unwrap();
        assert_eq!(
            (request.incident_id.as_str(), request.checks.clone()),
            ("inc-dup", vec!["orders_unique".to_string()]),
            "{backend}"
        );
        let actions = executor::actions_of(pool, "inc-dup").await.unwrap();
        let dedup = &actions[0];
        assert_eq!(dedup.action, "deduplicate");
        assert_eq!(dedup.dry_run["rows_deleted"], 10, "{backend}: the dry run");
        assert_eq!(dedup.dry_run["partitions"][0]["day"], "2026-03-09");
        assert!(dedup.data_changing);
        assert_eq!(
            scalar_i64(
                pool,
                "SELECT count(*) FROM orders WHERE placed_at >= '2026-03-09' AND placed_at < '2026-03-10'"
            )
            .await,
            20,
            "{backend}: the later copies are gone"
        );
        assert_eq!(
            scalar_i64(pool, "SELECT count(DISTINCT order_id) FROM orders").await,
            200
        );
        assert_eq!(
            scalar_i64(pool, "SELECT count(*) FROM executor_checkpoints").await,
            10
        );
        // Held: consumers of the seed's view do not see the suspect day.
        assert_eq!(
            scalar_i64(pool, "SELECT count(*) FROM analytics_daily_revenue").await,
            1,
            "{backend}: the held day is left out"
        );
        // The check has not passed yet: still verifying.
        assert_eq!(state_of(pool, "inc-dup").await.0, "verifying", "{backend}");
        {
            let got = received.lock().unwrap();
            let last = got.last().expect("the owner was notified");
            assert_eq!(last["incident"], "inc-dup");
            assert_eq!(last["action"]["owner"], "team-orders");
        }

        // A failing result judged after the fix does not help.
        let judged = |status: &'static str, end: &'static str| {
            sqlx::query(
                "INSERT INTO quality_results (check_name, check_type, dataset, subject,
                     window_start, window_end, status)
                 VALUES ('orders_unique', 'uniqueness', 'orders', 'orders',
                         $2::timestamptz - interval '1 hour', $2::timestamptz, $1)",
            )
            .bind(status)
            .bind(end)
            .execute(pool)
        };
        judged("fail", "2026-03-10T01:00:00Z").await.unwrap();
        assert_eq!(ex.tick().await.unwrap().verified, 0, "{backend}");
        assert_eq!(state_of(pool, "inc-dup").await.0, "verifying", "{backend}");
        // The quality role re-judged the check on the repaired data and it passed (its
        // condition closes only after more passes): verification passes.
        judged("pass", "2026-03-10T02:00:00Z").await.unwrap();
        let tick = ex.tick().await.unwrap();
        assert_eq!(tick.verified, 3, "{backend}: {tick:?}");
        assert_eq!(
            state_of(pool, "inc-dup").await,
            ("resolved".to_string(), Some("remediated".to_string())),
            "{backend}"
        );
        assert_eq!(
            scalar_i64(pool, "SELECT count(*) FROM analytics_daily_revenue").await,
            2,
            "{backend}: released after verification"
        );
        let d = store::get(pool, "inc-dup").await.unwrap();
        let kinds: Vec<&str> = d.timeline.iter().map(|e| e.kind.as_str()).collect();
        for k in ["kpis", "verification"] {
            assert!(kinds.contains(&k), "{backend}: {kinds:?}");
        }
        let v = d
            .timeline
            .iter()
            .find(|e| e.kind == "verification")
            .unwrap();
        assert_eq!(v.detail["passed"], true);
        assert_eq!(v.detail["detail"]["kpis"][0]["values"][0][1], 20.0);

        // Nothing is applied twice.
        let again = ex.tick().await.unwrap();
        assert_eq!((again.planned, again.applied), (0, 0), "{backend}");
        assert_eq!(
            scalar_i64(
                pool,
                "SELECT count(*) FROM executor_audit WHERE event = 'applied'"
            )
            .await,
            3
        );

        // The audit log only grows.
        for sql in [
            "UPDATE executor_audit SET actor = 'someone else'",
            "DELETE FROM executor_audit",
        ] {
            let e = sqlx::query(sql).execute(pool).await.unwrap_err();
            assert!(e.to_string().contains("append-only"), "{backend}: {e}");
        }
        let log = executor::audit_log(pool, Some("inc-dup"), 100)
            .await
            .unwrap();
        let events: Vec<&str> = log.iter().map(|e| e.event.as_str()).collect();
        for e in ["planned", "applied", "verifying", "verified"] {
            assert!(events.contains(&e), "{backend}: {events:?}");
        }
    }
    hook_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_that_does_not_restore_the_kpi_is_rolled_back_exactly() {
    let (hook, received, hook_task) = receiver().await;
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool();
        // 15 more distinct orders on the day: deduplicating cannot bring it back to 20.
        orders_with_duplicates(pool, 15).await;
        let before = orders_digest(pool).await;
        let version_before = scalar_i64(
            pool,
            "SELECT coalesce(max(version), 0) FROM partition_versions
             WHERE table_name = 'orders' AND day = '2026-03-09'",
        )
        .await;
        let inc = duplicate_incident("inc-bad", Severity::Medium);
        store::apply_message(pool, &message(IncidentChange::Opened, &inc))
            .await
            .unwrap();
        let mut s = settings(&hook);
        s.verify_within = Duration::ZERO;
        s.caps.breaker_failures = 2;
        let ex = Executor::new(pool.clone(), s, None);
        let tick = ex.tick().await.unwrap();
        assert_eq!(tick.applied, 3, "{backend}: {tick:?}");
        assert_eq!(
            tick.rolled_back, 1,
            "{backend}: the one data-changing action"
        );
        assert_eq!(state_of(pool, "inc-bad").await.0, "failed", "{backend}");
        assert_eq!(
            orders_digest(pool).await,
            before,
            "{backend}: the data is back exactly as before the action"
        );
        assert!(
            scalar_i64(
                pool,
                "SELECT max(version) FROM partition_versions
                 WHERE table_name = 'orders' AND day = '2026-03-09'"
            )
            .await
                >= version_before + 2,
            "{backend}: both the change and its rollback tell the jobs to recompute"
        );
        let actions = executor::actions_of(pool, "inc-bad").await.unwrap();
        assert_eq!(actions[0].state, "rolled_back");
        assert_eq!(
            actions[0].outcome.as_ref().unwrap()["rollback"]["rows_restored"],
            10
        );
        let d = store::get(pool, "inc-bad").await.unwrap();
        let v = d
            .timeline
            .iter()
            .find(|e| e.kind == "verification")
            .unwrap();
        assert_eq!(v.detail["passed"], false);
        assert!(
            v.detail["detail"]["kpis"][0]["worst_deviation"]
                .as_f64()
                .unwrap()
                > 0.25,
            "{v:?}"
        );
        assert!(received
            .lock()
            .unwrap()
            .iter()
            .any(|b| b["event"] == "escalated" && b["incident"] == "inc-bad"));

        // Three failures in a row: the breaker holds the next incident's actions.
        let next = duplicate_incident("inc-next", Severity::Low);
        store::apply_message(pool, &message(IncidentChange::Opened, &next))
            .await
            .unwrap();
        let tick = ex.tick().await.unwrap();
        assert_eq!(tick.applied, 0, "{backend}: {tick:?}");
        assert!(
            tick.held.as_deref().unwrap().contains("breaker"),
            "{tick:?}"
        );
        let status = ex.status().await.unwrap();
        assert_eq!(status["breaker_open"], true);
        executor::reset_breaker(pool, "ana").await.unwrap();
        let tick = ex.tick().await.unwrap();
        assert!(tick.applied >= 1, "{backend}: after the reset: {tick:?}");
    }
    hook_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_refusals_and_two_executors_at_once() {
    let (hook, _received, hook_task) = receiver().await;
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        let pool = t.pool();
        orders_with_duplicates(pool, 0).await;
        // High severity: the shipped policy asks an operator before deleting rows.
        let inc = duplicate_incident("inc-high", Severity::High);
        store::apply_message(pool, &message(IncidentChange::Opened, &inc))
            .await
            .unwrap();
        let mut s = settings(&hook);
        s.policy = Policy::standard();
        let ex = Arc::new(Executor::new(pool.clone(), s.clone(), None));
        let tick = ex.tick().await.unwrap();
        assert_eq!((tick.planned, tick.applied), (3, 2), "{backend}: {tick:?}");
        let actions = executor::actions_of(pool, "inc-high").await.unwrap();
        assert_eq!(actions[0].state, "pending_approval");
        assert_eq!(
            scalar_i64(pool, "SELECT count(*) FROM orders").await,
            210,
            "{backend}: nothing deleted before approval"
        );

        // Over HTTP: the API approves, refuses a second decision, names bad fields.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = heal_incidents::http::routes_with(pool.clone(), None, Some(ex.clone()));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let c = reqwest::Client::new();
        let post = |path: String, body: Value| {
            let (c, url) = (c.clone(), format!("{base}{path}"));
            async move {
                let r = c.post(url).json(&body).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let id = actions[0].id;
        let (code, body) = post(
            format!("/api/incidents/inc-high/actions/{id}/approve"),
            json!({ "actor": "ana", "note": "checked the dry run" }),
        )
        .await;
        assert_eq!(
            (code, body["state"].as_str()),
            (200, Some("ready")),
            "{body}"
        );
        let (code, _) = post(
            format!("/api/incidents/inc-high/actions/{id}/reject"),
            json!({}),
        )
        .await;
        assert_eq!(code, 409, "{backend}: only a pending action is decided");
        let (code, body) = post(
            "/api/incidents/inc-high/actions/x/approve".into(),
            json!({}),
        )
        .await;
        assert_eq!(
            (code, body["field"].as_str()),
            (400, Some("action")),
            "{body}"
        );
        let (code, _) = post(
            "/api/incidents/inc-high/actions/999999/approve".into(),
            json!({}),
        )
        .await;
        assert_eq!(code, 404);
        let (code, body) = post(
            format!("/api/incidents/inc-high/actions/{id}/approve"),
            json!({ "actr": "x" }),
        )
        .await;
        assert_eq!(
            (code, body["field"].as_str()),
            (400, Some("actr")),
            "{body}"
        );
        let listed: Value = c
            .get(format!("{base}/api/incidents/inc-high/actions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["actions"].as_array().unwrap().len(), 3);
        let status: Value = c
            .get(format!("{base}/api/executor/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["running"], true);
        assert_eq!(status["applied_last_hour"], 2);
        server.abort();

        // Two executors at once: the approved action is applied exactly once.
        let other = Executor::new(pool.clone(), s.clone(), None);
        let (a, b) = tokio::join!(ex.tick(), other.tick());
        assert_eq!(
            a.unwrap().applied + b.unwrap().applied,
            1,
            "{backend}: one executor applied it"
        );
        assert_eq!(
            scalar_i64(pool, "SELECT count(*) FROM executor_checkpoints").await,
            10,
            "{backend}: deleted and saved once"
        );
        assert_eq!(scalar_i64(pool, "SELECT count(*) FROM orders").await, 200);

        // A blast radius over the cap is refused at planning.
        let mut wide = duplicate_incident("inc-wide", Severity::Low);
        wide.affected = ["a", "b", "c"]
            .iter()
            .map(|n| AffectedAsset {
                node: node(&format!("dataset:{n}")),
                distance: 1,
                criticality: None,
            })
            .collect();
        // Recomputing orders reaches orders and the three downstream datasets: 4 > 2.
        wide.recommendations = vec![Recommendation {
            rank: 1,
            action: Action::Backfill {
                dataset: "orders".into(),
                from: wide.data_start.to_rfc3339(),
                to: wide.data_end.to_rfc3339(),
            },
            success_rate: 0.8,
            rationale: "test".into(),
        }];
        store::apply_message(pool, &message(IncidentChange::Opened, &wide))
            .await
            .unwrap();
        let mut narrow = s.clone();
        narrow.caps.max_blast_radius = 2;
        Executor::new(pool.clone(), narrow, None)
            .tick()
            .await
            .unwrap();
        let actions = executor::actions_of(pool, "inc-wide").await.unwrap();
        assert_eq!(actions[0].state, "refused", "{backend}: {:?}", actions[0]);
        assert_eq!(actions[0].blast_radius, 4);
        assert!(actions[0].outcome.as_ref().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("blast radius"));
    }
    hook_task.abort();
}

#[test]
fn fixture_days_are_what_the_tests_say() {
    // at(0) is 2026-03-02: the duplicate incident is set explicitly to 2026-03-09.
    assert_eq!(at(0).date_naive().to_string(), "2026-03-02");
    let i = duplicate_incident("x", Severity::Low);
    let ctx = heal_incidents::executor::Context::of(&i);
    assert_eq!(ctx.days.len(), 1);
    assert_eq!(ctx.affected, ["daily_revenue"]);
    assert!(ctx.datasets.contains(&"orders".to_string()));
}
