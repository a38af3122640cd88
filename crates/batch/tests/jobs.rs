//! The batch engine on generated traffic, on the embedded engine and a PostgreSQL server:
//! every job's output equals the oracle's independent computation; late data recomputes
//! exactly the affected partitions; injected failures are retried, recorded and make
//! downstream jobs wait.

#![allow(clippy::type_complexity)]

mod common;

use chrono::NaiveDate;
use common::*;
use heal_batch::{Engine, Selection, Settings, Trigger};
use heal_model::{EventBody, SchemaVersion};
use heal_testkit::{backends, TestDb};
use std::collections::BTreeSet;
use std::time::Duration;

/// One scheduled pass over every job, as the scheduler makes it.
async fn tick(engine: &Engine) -> heal_batch::Report {
    engine
        .run(&[], Trigger::Schedule, Selection::default())
        .await
        .unwrap()
}

fn settings() -> Settings {
    Settings {
        retry_backoff: Duration::from_millis(20),
        delay_scale: 1e-5,
        ..Settings::default()
    }
}

#[tokio::test]
async fn every_job_matches_an_independent_computation() {
    let messages = generate(21, 4.0, 3000.0);
    let events = decoded(&messages);
    // The data covers what the jobs must handle.
    let currencies: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Order { currency, .. } => Some(currency.as_str()),
            _ => None,
        })
        .collect();
    assert!(currencies.len() >= 3, "currencies {currencies:?}");
    let versions: BTreeSet<SchemaVersion> = events.iter().map(|e| e.schema_version).collect();
    assert_eq!(versions.len(), 3, "schema versions {versions:?}");
    let oracle = Oracle::new(&events);
    assert!(oracle.days().len() >= 4);
    assert!(
        oracle.revenue.values().any(|r| r.refunds_usd > 0.0),
        "some refunds"
    );

    for backend in backends() {
        let t = TestDb::new(&backend).await;
        ingest(t.pool(), &messages, 0).await;
        let engine = Engine::new(t.pool().clone(), None, settings()).unwrap();
        let report = engine
            .run(&[], Trigger::Manual, Selection::default())
            .await
            .unwrap();
        assert_eq!(report.failed(), 0, "{backend}: {:?}", report.runs);
        assert!(report.waiting.is_empty(), "{backend}: {:?}", report.waiting);
        let diffs = differences(t.pool(), &oracle).await;
        assert!(diffs.is_empty(), "{backend}: {}", diffs.join("\n"));

        // Nothing changed: a second run does nothing.
        let again = tick(&engine).await;
        assert!(again.runs.is_empty(), "{backend}: reran {:?}", again.runs);
        // A backfill recomputes and gives the same numbers, without double counting.
        let days: Vec<NaiveDate> = oracle.days().into_iter().collect();
        let backfill = engine
            .run(
                &[],
                Trigger::Backfill,
                Selection {
                    from: Some(days[0]),
                    to: Some(days[days.len() - 1]),
                    force: true,
                },
            )
            .await
            .unwrap();
        let partitions: i64 = sqlx::query_scalar("SELECT count(*) FROM job_partitions")
            .fetch_one(t.pool())
            .await
            .unwrap();
        assert_eq!(
            backfill.runs.len() as i64,
            partitions,
            "{backend}: every partition recomputed"
        );
        assert!(backfill.runs.iter().all(|r| r.succeeded));
        let diffs = differences(t.pool(), &oracle).await;
        assert!(
            diffs.is_empty(),
            "{backend} after backfill: {}",
            diffs.join("\n")
        );
        t.finish().await;
    }
}

#[tokio::test]
async fn late_orders_recompute_exactly_their_day() {
    let messages = generate(22, 3.0, 2000.0);
    let events = decoded(&messages);
    let late_day: NaiveDate = "2026-03-02".parse().unwrap();
    // Hold back a tenth of that day's orders; they arrive after the first run.
    let mut late = Vec::new();
    let mut on_time = Vec::new();
    let mut orders_that_day = 0;
    for (m, e) in messages.iter().zip(&events) {
        if matches!(e.body, EventBody::Order { .. }) && e.occurred_at.date_naive() == late_day {
            orders_that_day += 1;
            if orders_that_day % 4 == 0 {
                late.push(m.clone());
                continue;
            }
        }
        on_time.push(m.clone());
    }
    assert!(late.len() >= 5, "{} late orders", late.len());
    let oracle = Oracle::new(&events);

    for backend in backends() {
        let t = TestDb::new(&backend).await;
        ingest(t.pool(), &on_time, 0).await;
        let engine = Engine::new(t.pool().clone(), None, settings()).unwrap();
        let first = tick(&engine).await;
        assert_eq!(first.failed(), 0);
        let before: Vec<(String, NaiveDate, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT job, day, computed_at FROM job_partitions ORDER BY job, day")
                .fetch_all(t.pool())
                .await
                .unwrap();
        let revenue_before: i64 =
            sqlx::query_scalar("SELECT orders FROM daily_revenue WHERE day = $1")
                .bind(late_day)
                .fetch_one(t.pool())
                .await
                .unwrap();

        ingest(t.pool(), &late, on_time.len() as i64).await;
        let second = tick(&engine).await;
        assert_eq!(second.failed(), 0);
        let rerun: BTreeSet<(String, NaiveDate)> =
            second.runs.iter().map(|r| (r.job.clone(), r.day)).collect();
        let expected: BTreeSet<(String, NaiveDate)> =
            ["stg_orders", "daily_revenue", "user_funnel"]
                .iter()
                .map(|j| (j.to_string(), late_day))
                .collect();
        assert_eq!(
            rerun, expected,
            "{backend}: exactly the late day of the jobs that read orders"
        );

        // Untouched partitions keep their computation time; the late day's moved on.
        let after: Vec<(String, NaiveDate, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT job, day, computed_at FROM job_partitions ORDER BY job, day")
                .fetch_all(t.pool())
                .await
                .unwrap();
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            let recomputed = expected.contains(&(b.0.clone(), b.1));
            assert_eq!(
                a.2 != b.2,
                recomputed,
                "{backend}: {} {} recomputed={}",
                b.0,
                b.1,
                a.2 != b.2
            );
        }
        let runs_elsewhere: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job_runs WHERE day <> $1 GROUP BY job, day ORDER BY count(*) DESC LIMIT 1",
        )
        .bind(late_day)
        .fetch_one(t.pool())
        .await
        .unwrap();
        assert_eq!(runs_elsewhere, 1, "other days ran once");

        let revenue_after: i64 =
            sqlx::query_scalar("SELECT orders FROM daily_revenue WHERE day = $1")
                .bind(late_day)
                .fetch_one(t.pool())
                .await
                .unwrap();
        assert_eq!(revenue_after, revenue_before + late.len() as i64);
        let diffs = differences(t.pool(), &oracle).await;
        assert!(diffs.is_empty(), "{backend}: {}", diffs.join("\n"));
        t.finish().await;
    }
}

async fn inject(pool: &sqlx::PgPool, kind: &str, job: &str, day: &str, params: serde_json::Value) {
    let start: chrono::DateTime<chrono::Utc> = format!("{day}T02:00:00Z").parse().unwrap();
    sqlx::query(
        "INSERT INTO fault_injections (run_id, scenario, fault_index, kind, target, window_start, window_end,
                                       rate, params, expected, affected_count, affected_event_ids)
         VALUES ('test', 'test', (SELECT count(*) FROM fault_injections), $5, $1, $2, $3, 1, $4,
                 'pipeline_failure', 0, '[]')",
    )
    .bind(job)
    .bind(start)
    .bind(start + chrono::Duration::hours(2))
    .bind(params)
    .bind(kind)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn injected_failures_are_retried_recorded_and_block_downstream() {
    let messages = generate(23, 3.0, 1500.0);
    let oracle = Oracle::new(&decoded(&messages));
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        ingest(t.pool(), &messages, 0).await;
        // One transient failure of stg_orders on day 1; stg_payments fails every attempt of
        // the first run on day 2.
        inject(
            t.pool(),
            "job_failure",
            "stg_orders",
            "2026-03-01",
            serde_json::json!({ "value": "executor lost", "failures": 1 }),
        )
        .await;
        inject(
            t.pool(),
            "job_failure",
            "stg_payments",
            "2026-03-02",
            serde_json::json!({ "value": "out of memory" }),
        )
        .await;
        // user_retention starts three simulated hours late on day 1 (slept as 3 h × delay_scale).
        inject(
            t.pool(),
            "job_delay",
            "user_retention",
            "2026-03-01",
            serde_json::json!({ "delay": "PT3H" }),
        )
        .await;
        let bus = heal_bus::Bus::new(None).unwrap();
        bus.create_topics(&heal_model::topics::ALL, 1, 1)
            .await
            .unwrap();
        let mut pipeline = bus
            .consumer("test", heal_model::topics::PIPELINE_EVENTS)
            .unwrap();
        let engine = Engine::new(t.pool().clone(), Some(bus.clone()), settings()).unwrap();
        let report = tick(&engine).await;
        let day1: NaiveDate = "2026-03-01".parse().unwrap();
        let day2: NaiveDate = "2026-03-02".parse().unwrap();
        let run = |job: &str, day: NaiveDate| {
            report
                .runs
                .iter()
                .find(|r| r.job == job && r.day == day)
                .cloned()
        };
        let retried = run("stg_orders", day1).expect("stg_orders day 1 ran");
        assert!(retried.succeeded && retried.attempts == 2, "{retried:?}");
        let failed = run("stg_payments", day2).expect("stg_payments day 2 ran");
        assert!(!failed.succeeded && failed.attempts == 3, "{failed:?}");
        assert!(failed.error.as_deref().unwrap().contains("out of memory"));
        // Downstream of the failed partition waits instead of computing on stale inputs.
        for job in ["daily_revenue", "user_funnel", "payment_success"] {
            assert!(run(job, day2).is_none(), "{job} must not run on day 2");
            assert!(
                report
                    .waiting
                    .iter()
                    .any(|w| w.job == job && w.day == day2 && w.upstream == "stg_payments"),
                "{job} waits: {:?}",
                report.waiting
            );
            assert!(
                run(job, day1).is_some_and(|r| r.succeeded),
                "{job} day 1 ran"
            );
        }
        // Recorded in job_runs.
        let (status, attempts, error): (String, i32, Option<String>) = sqlx::query_as(
            "SELECT status, attempts, error FROM job_runs WHERE job = 'stg_payments' AND day = $1",
        )
        .bind(day2)
        .fetch_one(t.pool())
        .await
        .unwrap();
        assert_eq!((status.as_str(), attempts), ("failed", 3));
        assert!(error
            .unwrap()
            .contains("injected job_failure: out of memory"));
        // Emitted as a FAIL run event and a failed pipeline event.
        let fail_events: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM lineage_events WHERE job_name = 'stg_payments' AND event_type = 'FAIL'
               AND payload->'run'->'facets'->'errorMessage'->>'message' LIKE '%out of memory%'",
        )
        .fetch_one(t.pool())
        .await
        .unwrap();
        assert_eq!(fail_events, 1);
        let mut statuses = Vec::new();
        loop {
            let batch = pipeline
                .poll_batch(1000, Duration::from_millis(100))
                .await
                .unwrap();
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                statuses.push((
                    v["job"].as_str().unwrap().to_string(),
                    v["partition"].as_str().unwrap().to_string(),
                    v["status"].as_str().unwrap().to_string(),
                ));
            }
        }
        assert!(
            statuses.contains(&("stg_payments".into(), "2026-03-02".into(), "failed".into())),
            "{statuses:?}"
        );
        assert!(statuses.contains(&("stg_orders".into(), "2026-03-01".into(), "succeeded".into())));
        assert!(
            statuses.contains(&(
                "user_retention".into(),
                "2026-03-01".into(),
                "delayed".into()
            )),
            "{statuses:?}"
        );
        let delayed: f64 = sqlx::query_scalar(
            "SELECT delayed_secs FROM job_runs WHERE job = 'user_retention' AND day = $1",
        )
        .bind(day1)
        .fetch_one(t.pool())
        .await
        .unwrap();
        assert_eq!(delayed, 3.0 * 3600.0);

        // The fault is spent: the next run heals the partition and downstream catches up.
        let next = tick(&engine).await;
        assert_eq!(next.failed(), 0, "{:?}", next.runs);
        assert!(next.waiting.is_empty());
        let healed: BTreeSet<&str> = next
            .runs
            .iter()
            .filter(|r| r.day == day2)
            .map(|r| r.job.as_str())
            .collect();
        assert_eq!(
            healed,
            BTreeSet::from([
                "stg_payments",
                "daily_revenue",
                "user_funnel",
                "payment_success"
            ])
        );
        let diffs = differences(t.pool(), &oracle).await;
        assert!(diffs.is_empty(), "{backend}: {}", diffs.join("\n"));

        // A run left `running` by a process that died is marked failed once old enough.
        sqlx::query(
            "INSERT INTO job_runs (run_id, job, day, trigger, status, scheduled_at, started_at)
             VALUES (gen_random_uuid(), 'daily_revenue', $1, 'schedule', 'running', now() - interval '2 hours',
                     now() - interval '2 hours')",
        )
        .bind(day1)
        .execute(t.pool())
        .await
        .unwrap();
        assert_eq!(
            engine
                .mark_interrupted(Duration::from_secs(3600))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            engine
                .mark_interrupted(Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        let running: i64 =
            sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE status = 'running'")
                .fetch_one(t.pool())
                .await
                .unwrap();
        assert_eq!(running, 0);
        t.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_runs_due_jobs_and_catches_up_with_new_data() {
    let messages = generate(24, 2.0, 1000.0);
    let half = messages.len() / 2;
    let t = TestDb::new(&heal_testkit::Backend::Embedded).await;
    ingest(t.pool(), &messages[..half], 0).await;
    let engine = std::sync::Arc::new(Engine::new(t.pool().clone(), None, settings()).unwrap());
    let schedules = heal_batch::Schedules::build(&engine, "every 1s", &Default::default()).unwrap();
    let state = std::sync::Arc::new(heal_batch::schedule::SchedulerState::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(heal_batch::run_scheduler(
        engine.clone(),
        schedules,
        state.clone(),
        stop_rx,
    ));
    let fresh = |engine: std::sync::Arc<Engine>| async move {
        for job in engine.dag().ordered().map(|j| j.name).collect::<Vec<_>>() {
            if !engine
                .pending(job, Selection::default())
                .await
                .unwrap()
                .is_empty()
            {
                return false;
            }
        }
        true
    };
    let wait_fresh = |engine: std::sync::Arc<Engine>| async move {
        for _ in 0..100 {
            if fresh(engine.clone()).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        wait_fresh(engine.clone()).await,
        "the first scheduled pass computes everything"
    );
    // New data arrives while the scheduler runs: the next passes pick it up.
    ingest(t.pool(), &messages[half..], half as i64).await;
    assert!(wait_fresh(engine.clone()).await, "a later pass catches up");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the scheduler stops when asked")
        .unwrap()
        .unwrap();
    assert!(state.last_report.lock().unwrap().is_some());
    let triggers: Vec<String> = sqlx::query_scalar("SELECT DISTINCT trigger FROM job_runs")
        .fetch_all(t.pool())
        .await
        .unwrap();
    assert_eq!(triggers, ["schedule"]);
    let diffs = differences(t.pool(), &Oracle::new(&decoded(&messages))).await;
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    t.finish().await;
}

/// Two workers (e.g. two replicas of the batch role) on one server database run each
/// partition once between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_partitions_without_running_one_twice() {
    let Some(admin) = heal_testkit::server_url() else {
        eprintln!("skipped: needs HEAL_TEST_DATABASE_URL");
        return;
    };
    let messages = generate(25, 3.0, 1500.0);
    let t = TestDb::new(&heal_testkit::Backend::Server(admin)).await;
    ingest(t.pool(), &messages, 0).await;
    let a = Engine::new(t.pool().clone(), None, settings()).unwrap();
    let b = Engine::new(t.pool().clone(), None, settings()).unwrap();
    let (ra, rb) = tokio::join!(
        a.run(&[], Trigger::Schedule, Selection::default()),
        b.run(&[], Trigger::Schedule, Selection::default())
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.failed() + rb.failed(), 0);
    let runs: Vec<(String, NaiveDate, i64)> = sqlx::query_as(
        "SELECT job, day, count(*) FROM job_runs GROUP BY job, day ORDER BY job, day",
    )
    .fetch_all(t.pool())
    .await
    .unwrap();
    let partitions: i64 = sqlx::query_scalar("SELECT count(*) FROM job_partitions")
        .fetch_one(t.pool())
        .await
        .unwrap();
    assert_eq!(runs.len() as i64, partitions);
    assert!(
        runs.iter().all(|r| r.2 == 1),
        "a partition ran twice: {runs:?}"
    );
    assert_eq!(
        (ra.runs.len() + rb.runs.len()) as i64,
        partitions,
        "every partition was run by exactly one worker"
    );
    let diffs = differences(t.pool(), &Oracle::new(&decoded(&messages))).await;
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    t.finish().await;
}

/// The seed's tables, as views over ours: the same numbers under the seed's column names, and
/// the quarantine readable as `raw_events_corrupted`.
#[tokio::test]
async fn the_seeds_views_read_our_tables() {
    let messages = generate(5, 3.0, 2000.0);
    let events = decoded(&messages);
    // Sign-ups per day, each event once (a redelivery is one sign-up).
    let mut seen = BTreeSet::new();
    let mut signups: std::collections::BTreeMap<NaiveDate, i64> = Default::default();
    for e in &events {
        if matches!(e.body, EventBody::User { .. }) && seen.insert(e.event_id.clone()) {
            *signups.entry(e.occurred_at.date_naive()).or_default() += 1;
        }
    }
    for backend in backends() {
        let t = TestDb::new(&backend).await;
        ingest(t.pool(), &messages, 0).await;
        let engine = Engine::new(t.pool().clone(), None, settings()).unwrap();
        let report = tick(&engine).await;
        assert_eq!(report.failed(), 0, "{backend}");

        let revenue: Vec<(NaiveDate, f64, i64)> = sqlx::query_as(
            "SELECT date, total_revenue::float8, order_count FROM analytics_daily_revenue ORDER BY date",
        )
        .fetch_all(t.pool())
        .await
        .unwrap();
        let ours: Vec<(NaiveDate, f64, i64)> = sqlx::query_as(
            "SELECT day, gross_revenue_usd::float8, orders FROM daily_revenue ORDER BY day",
        )
        .fetch_all(t.pool())
        .await
        .unwrap();
        assert!(revenue.len() >= 3, "{backend}: {revenue:?}");
        assert_eq!(revenue, ours, "{backend}");

        let funnel: Vec<(NaiveDate, i64, i64, i64)> = sqlx::query_as(
            "SELECT date, users_created, orders_placed, payments_processed FROM analytics_user_funnel ORDER BY date",
        )
        .fetch_all(t.pool())
        .await
        .unwrap();
        assert!(!funnel.is_empty(), "{backend}");
        for (day, users, orders, _) in &funnel {
            assert_eq!(
                *users,
                signups.get(day).copied().unwrap_or(0),
                "{backend}: sign-ups on {day}"
            );
            let (o,): (i64,) = sqlx::query_as("SELECT orders FROM user_funnel WHERE day = $1")
                .bind(day)
                .fetch_one(t.pool())
                .await
                .unwrap();
            assert_eq!(*orders, o);
        }
        let cohorts: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM analytics_user_retention r JOIN user_retention u
               ON u.day = r.cohort_date AND u.cohort_size = r.user_count
              AND u.active_d7 = r.day_7_active",
        )
        .fetch_one(t.pool())
        .await
        .unwrap();
        let all: i64 = sqlx::query_scalar("SELECT count(*) FROM user_retention")
            .fetch_one(t.pool())
            .await
            .unwrap();
        assert_eq!(cohorts, all, "{backend}");

        // A quarantined event, with bytes that are not UTF-8, reads as text with its reason.
        sqlx::query(
            "INSERT INTO quarantine (source, reason, detail, raw)
             VALUES ('http', 'malformed_json', 'expected value at line 1', $1)",
        )
        .bind(b"{\"broken\": \xff".to_vec())
        .execute(t.pool())
        .await
        .unwrap();
        let (raw, message): (String, String) = sqlx::query_as(
            "SELECT raw_json, error_message FROM raw_events_corrupted ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(t.pool())
        .await
        .unwrap();
        assert!(raw.starts_with("{\"broken\": "), "{backend}: {raw}");
        assert_eq!(message, "malformed_json: expected value at line 1");
        t.finish().await;
    }
}
