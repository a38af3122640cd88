//! Live detection: the staleness check judges the wall clock, so a source that stops sending
//! while traffic at this time of day says it should opens a condition during the outage, with
//! no later event needed, and resolves once events flow again. History loaded from the past
//! is not live and raises nothing here (`clean.rs` and `faults.rs` load such history).

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::*;
use heal_generator::Scenario;
use heal_model::quality::ConditionChange;
use heal_testkit::{server_url, Backend, TestDb};

const CHECK: &str = "events_arriving";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_silent_on_the_wall_clock_opens_a_condition_while_it_lasts() {
    let Some(url) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let t = TestDb::new(&Backend::Server(url)).await;
    let pool = t.pool();
    // Three days of traffic up to 40 minutes ago, as if it had arrived live and then stopped:
    // each event is ingested, then the arrival times are moved to when it happened.
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let silent = Duration::minutes(40);
    let start = now - Duration::days(3);
    let days = (Duration::days(3) - silent).num_seconds() as f64 / 86_400.0;
    let history = Scenario::clean("live-history", 7, start, days, 30_000.0);
    let (items, _) = generate(&history);
    ingest_all(pool, items).await;
    sqlx::query("UPDATE raw_events SET ingested_at = occurred_at")
        .execute(pool)
        .await
        .unwrap();

    let q = quality(pool).await;
    let report = q.run_cycle(Some(CHECK)).await.unwrap();
    let opened: Vec<&str> = report
        .events
        .iter()
        .filter(|e| e.change == ConditionChange::Opened)
        .map(|e| e.dataset.as_str())
        .collect();
    assert!(
        opened.contains(&"product_views"),
        "the busiest kind is missed: {}",
        describe(&report.events)
    );
    assert!(
        !opened.contains(&"refunds"),
        "a rare kind's quiet stretch is no outage: {}",
        describe(&report.events)
    );
    let views = report
        .events
        .iter()
        .find(|e| e.dataset == "product_views")
        .unwrap();
    assert!(
        views.message.contains("no PRODUCT_VIEWED for 4"),
        "{}",
        views.message
    );

    // Still silent: the condition stays open, nothing new is raised.
    let again = q.run_cycle(Some(CHECK)).await.unwrap();
    assert!(
        again.events.is_empty(),
        "unchanged while silent: {}",
        describe(&again.events)
    );
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM quality_conditions WHERE check_name = $1 AND state = 'open'",
    )
    .bind(CHECK)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(open as usize, opened.len());

    // Traffic resumes: fresh events of the last minutes; two passing cycles resolve.
    let fresh = Scenario::clean(
        "live-resumed",
        8,
        now - Duration::minutes(5),
        5.0 / 1440.0,
        400_000.0,
    );
    let (items, _) = generate(&fresh);
    ingest_all(pool, items).await;
    let mut resolved = Vec::new();
    for _ in 0..2 {
        let r = q.run_cycle(Some(CHECK)).await.unwrap();
        resolved.extend(
            r.events
                .into_iter()
                .filter(|e| e.change == ConditionChange::Resolved)
                .map(|e| e.dataset),
        );
    }
    assert!(
        resolved.contains(&"product_views".to_string()),
        "resolved: {resolved:?}"
    );
    let newest: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(ingested_at) FROM raw_events")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(newest.unwrap() > now - Duration::minutes(1));
}
