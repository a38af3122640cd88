//! Stream faults raise a failure event as soon as they are ingested: the ingest role announces
//! each committed micro-batch with refused events on `pipeline-events`, and the quality role
//! runs its quarantine checks then instead of at its next cycle (an hour away here).

mod common;

use common::*;
use heal_bus::{Bus, Consumer, Record};
use heal_ingest::{Incoming, Ingestor, Settings, Source};
use heal_model::quality::RecheckRequest;
use heal_model::quality::{ConditionChange, FailureEvent};
use heal_model::topics::{DATA_QUALITY_CHECKS, PIPELINE_EVENTS, QUALITY_REQUESTS};
use heal_quality::role::{run_loop, QualityRole};
use heal_testkit::{server_url, wait_until, Backend, TestDb};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn next_failure(c: &mut Consumer, within: Duration) -> Option<FailureEvent> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for m in c
            .poll_batch(10, Duration::from_millis(200))
            .await
            .expect("poll")
        {
            let e: FailureEvent = serde_json::from_slice(&m.payload).expect("a failure event");
            if e.change == ConditionChange::Opened {
                return Some(e);
            }
        }
    }
    None
}

/// A fresh server database, the in-process bus with `topic` and the failure-event topic, and
/// the quality role publishing on it; `None` without a server.
async fn setup(topic: &str) -> Option<(TestDb, Bus, Arc<QualityRole>)> {
    let Some(url) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return None;
    };
    let t = TestDb::new(&Backend::Server(url)).await;
    let bus = Bus::new(None).unwrap();
    bus.create_topics(&[topic, DATA_QUALITY_CHECKS], 1, 1)
        .await
        .unwrap();
    let role = Arc::new(QualityRole::new(
        Arc::new(quality(t.pool()).await),
        Some(bus.clone()),
        DATA_QUALITY_CHECKS,
    ));
    Some((t, bus, role))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_raises_a_failure_event_without_waiting_for_the_cycle() {
    let Some((t, bus, role)) = setup(PIPELINE_EVENTS).await else {
        return;
    };
    let pool = t.pool().clone();
    let ingestor = Ingestor::new(pool.clone(), Settings::default())
        .await
        .unwrap()
        .with_events(bus.clone());
    let mut failures = bus.consumer("test-watch", DATA_QUALITY_CHECKS).unwrap();
    let pipeline = bus.consumer("test-quality", PIPELINE_EVENTS).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let looping = tokio::spawn(run_loop(
        role,
        Duration::from_secs(3600),
        Some((pipeline, PIPELINE_EVENTS.to_string())),
        None,
        stop_rx,
    ));
    // The loop's first cycle runs at once; after it, the next is an hour away.
    wait_until("the first cycle", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM quality_cursors
                 WHERE check_name = 'orders_schema' AND moment IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                > 0
        }
    })
    .await;
    assert!(
        next_failure(&mut failures, Duration::from_millis(500))
            .await
            .is_none(),
        "an empty database raises nothing"
    );

    // An order whose amount is text: refused by its schema, announced, checked at once.
    let now = chrono::Utc::now();
    let bad = serde_json::json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "event_type": "ORDER_PLACED",
        "schema_version": "1.0",
        "timestamp": now.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
        "user_id": "user_42",
        "properties": { "order_amount": "lots", "currency": "USD", "items": 3 },
    });
    let outcome = ingestor
        .ingest(
            &Source::Http,
            vec![Incoming {
                partition: None,
                offset: None,
                payload: serde_json::to_vec(&bad).unwrap(),
                produced_at: Some(now),
            }],
        )
        .await
        .unwrap();
    assert_eq!(outcome.quarantined.len(), 1, "{outcome:?}");
    let failure = next_failure(&mut failures, Duration::from_secs(30))
        .await
        .expect("a failure event long before the next cycle");
    assert_eq!(
        (failure.check.as_str(), failure.dataset.as_str()),
        ("orders_schema", "orders"),
        "{}",
        failure.message
    );
    stop_tx.send(true).unwrap();
    looping.await.unwrap();
    t.finish().await;
}

/// When check `name` last ran (its cursor's moment).
async fn last_run(pool: &sqlx::PgPool, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar("SELECT moment FROM quality_cursors WHERE check_name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .unwrap()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_request_runs_the_named_checks_without_waiting_for_the_cycle() {
    let Some((t, bus, role)) = setup(QUALITY_REQUESTS).await else {
        return;
    };
    let pool = t.pool().clone();
    let requests = bus.consumer("test-quality", QUALITY_REQUESTS).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let looping = tokio::spawn(run_loop(
        role,
        Duration::from_secs(3600),
        None,
        Some((requests, QUALITY_REQUESTS.to_string())),
        stop_rx,
    ));
    wait_until("the first cycle", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { last_run(&pool, "payments_schema").await.is_some() }
    })
    .await;
    let (orders, payments) = (
        last_run(&pool, "orders_schema").await.expect("ran"),
        last_run(&pool, "payments_schema").await.expect("ran"),
    );
    let request = RecheckRequest::new(
        "inc-test",
        vec!["orders_schema".into(), "no_such_check".into()],
        "remediation applied",
    );
    bus.send(
        QUALITY_REQUESTS,
        vec![Record {
            key: b"inc-test".to_vec(),
            payload: serde_json::to_vec(&request).unwrap(),
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        }],
    )
    .await
    .unwrap();
    wait_until(
        "orders_schema to run again",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move { last_run(&pool, "orders_schema").await > Some(orders) }
        },
    )
    .await;
    assert_eq!(
        last_run(&pool, "payments_schema").await,
        Some(payments),
        "a check the request does not name waits for the cycle"
    );
    stop_tx.send(true).unwrap();
    looping.await.unwrap();
    t.finish().await;
}
