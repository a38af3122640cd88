//! The false-alarm test: fifteen simulated days of clean traffic, with the generator's daily
//! and weekly seasonality and its noise, ingested and run through the batch jobs; the shipped
//! checks then judge every window of the two weeks and must raise no failure event at all,
//! while the seasonal checks must actually have judged (not just learned) most windows.

mod common;

use common::*;
use heal_testkit::{server_url, Backend, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_weeks_of_clean_traffic_raise_nothing() {
    let Some(url) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let mut scenario = shifted("baseline", 8_000.0, 0);
    scenario.days = 15.0;
    let t = TestDb::new(&Backend::Server(url)).await;
    let (report, truth) = scenario_cycle(t.pool(), &scenario, true).await;
    assert!(truth.is_empty());
    assert!(
        report.events.is_empty(),
        "false alarms on clean traffic:\n{}",
        describe(&report.events)
    );
    // The seasonal checks judged two weeks minus their warm-up.
    for check in [
        "raw_events_volume",
        "product_views_volume",
        "sessions_volume",
    ] {
        let (pass, learning): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'learning')
             FROM quality_results WHERE check_name = $1",
        )
        .bind(check)
        .fetch_one(t.pool())
        .await
        .unwrap();
        assert!(
            pass >= 9 * 24,
            "{check}: {pass} windows judged, {learning} learning"
        );
    }
    // Every windowed rule check judged hundreds of windows, all passing.
    let judged: Vec<(String, i64)> = sqlx::query_as(
        "SELECT check_name, count(*) FROM quality_results WHERE status = 'pass' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(t.pool())
    .await
    .unwrap();
    let judged: std::collections::BTreeMap<String, i64> = judged.into_iter().collect();
    for check in [
        "raw_events_freshness",
        "orders_amount_range",
        "payments_reference_orders",
        "payments_method_mix",
        "orders_unique",
        "stg_orders_reconcile",
    ] {
        assert!(
            judged.get(check).copied().unwrap_or(0) >= 10,
            "{check} judged too little: {judged:?}"
        );
    }
    // A second cycle finds nothing new to judge wrongly either.
    let again = quality(t.pool()).await.run_cycle(None).await.unwrap();
    assert!(again.events.is_empty(), "{}", describe(&again.events));
    t.finish().await;
}
