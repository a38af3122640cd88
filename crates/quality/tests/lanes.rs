//! A clock per source: a scenario's history posted over HTTP while live traffic flows on the
//! events topic (as the generator role publishes it, with current times). Each source is judged
//! on its own data time, so the history's fault is found in its own span, and neither source is
//! judged over the empty weeks between them (no freshness or volume failures there), and the
//! history's events are not late against the live watermark.

mod common;

use chrono::{Duration, DurationRound, Utc};
use common::*;
use heal_generator::Scenario;
use heal_ingest::{Incoming, Ingestor, Settings, Source};
use heal_model::quality::ConditionChange;
use heal_testkit::{server_url, Backend, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_posted_beside_live_traffic_is_judged_on_its_own_clock() {
    let Some(url) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let t = TestDb::new(&Backend::Server(url)).await;
    let pool = t.pool();

    // History: the volume-drop scenario (March 2026) with four clean days before its fault.
    let history = shifted("volume_drop", 20_000.0, 4);
    let (past, truth) = generate(&history);
    let past: Vec<Incoming> = past
        .into_iter()
        .map(|i| Incoming {
            partition: None,
            offset: None,
            produced_at: None,
            ..i
        })
        .collect();
    // Live: the last six hours up to now on the topic's partitions.
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let live = Scenario::clean("live", 5, now - Duration::hours(6), 0.25, 20_000.0);
    let (current, _) = generate(&live);

    // Both arrive at once, batch by batch.
    let ingestor = Ingestor::new(pool.clone(), Settings::default())
        .await
        .unwrap();
    let topic = Source::Topic {
        group: "heal-ingest".into(),
        topic: "raw-events".into(),
    };
    let mut past = past.into_iter().peekable();
    let mut current = current.into_iter().peekable();
    while past.peek().is_some() || current.peek().is_some() {
        let posted: Vec<Incoming> = past.by_ref().take(1000).collect();
        if !posted.is_empty() {
            ingestor.ingest(&Source::Http, posted).await.unwrap();
        }
        let live_batch: Vec<Incoming> = current.by_ref().take(100).collect();
        if !live_batch.is_empty() {
            ingestor.ingest(&topic, live_batch).await.unwrap();
        }
    }
    let late: i64 = sqlx::query_scalar("SELECT count(*) FROM raw_events WHERE is_late")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(late, 0, "history is on time on its own stream");

    let q = quality(pool).await;
    let lanes = q.lanes().await.unwrap();
    let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["http", "raw-events"], "{lanes:?}");

    let report = q.run_cycle(None).await.unwrap();
    for c in &report.checks {
        assert!(c.error.is_none(), "{}: {:?}", c.check, c.error);
    }
    let opened: Vec<_> = report
        .events
        .iter()
        .filter(|e| e.change == ConditionChange::Opened)
        .collect();
    let fault = &truth[0];
    let hit = opened
        .iter()
        .find(|e| e.check == "raw_events_volume")
        .unwrap_or_else(|| {
            panic!(
                "the history's drop was not found:\n{}",
                describe(&report.events)
            )
        });
    assert!(
        overlaps(
            (hit.window_start, hit.window_end),
            (fault.window_start, fault.window_end)
        ),
        "the drop is found in its own span: {hit:?}"
    );
    // Nothing between the history's end and the live traffic's start, nor in the live hours
    // (which have no baseline yet): every windowed condition lies in the history's fault.
    for e in &opened {
        if e.check_type == "schema" || e.check_type == "pipeline" || e.check_type == "staleness" {
            continue;
        }
        assert!(
            overlaps(
                (e.window_start, e.window_end),
                (fault.window_start, fault.window_end + Duration::hours(6))
            ),
            "{} opened outside the history's fault:\n{}",
            e.check,
            describe(std::slice::from_ref(e))
        );
    }
    // Both spans were judged: results exist in the history's days and in the live hours.
    let (in_history, in_live): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE window_end <= $1), count(*) FILTER (WHERE window_start >= $2)
         FROM quality_results WHERE check_name = 'raw_events_volume'",
    )
    .bind(fault.window_end + Duration::hours(3))
    .bind(now - Duration::hours(6))
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(in_history > 24, "history judged: {in_history} windows");
    assert!(in_live >= 1, "live judged: {in_live} windows");
    let empty: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM quality_results
         WHERE window_start > $1 AND window_end < $2 AND check_type NOT IN ('schema', 'pipeline', 'staleness')",
    )
    .bind(fault.window_end + Duration::hours(4))
    .bind(now - Duration::hours(6))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(empty, 0, "nothing judged between the two spans");

    // A second cycle with nothing new posted judges the history lane no more; the live lane
    // (the newest) still is, and nothing new opens.
    let again = q.run_cycle(None).await.unwrap();
    assert!(
        !again
            .events
            .iter()
            .any(|e| e.change == ConditionChange::Opened),
        "{}",
        describe(&again.events)
    );
    t.finish().await;
}
