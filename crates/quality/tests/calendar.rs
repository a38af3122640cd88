//! The calendar of special days: a promotion day with three times the traffic of every
//! stream, declared in the checks file's `[[calendar]]`, raises nothing (the first day of its
//! kind is learned, not judged, and the ordinary days after it learn nothing from it), while
//! the same day undeclared is flagged by the volume checks.

mod common;

use chrono::{Duration, NaiveDate};
use common::*;
use heal_generator::Scenario;
use heal_model::quality::{ConditionChange, FailureEvent};
use heal_quality::checks::DEFAULT_CHECKS;
use heal_quality::{Catalog, ChecksFile, Quality};
use heal_testkit::{server_url, Backend, TestDb};

const PROMOTION: &str = "2026-03-15";

fn scenario() -> Scenario {
    Scenario::parse(
        r#"
        name = "promotion"
        seed = 31
        start = "2026-03-01T00:00:00Z"
        days = 16
        events_per_day = 8000

        [[fault]]
        kind = "volume_spike"
        target = "all"
        start = "P14D"
        duration = "P1D"
        params = { factor = 3 }
        "#,
        "promotion.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn cycle(pool: &sqlx::PgPool, calendar: &str) -> Vec<FailureEvent> {
    // Each run judges from scratch.
    sqlx::query("TRUNCATE quality_results, quality_conditions, quality_cursors, quality_lanes")
        .execute(pool)
        .await
        .unwrap();
    let catalog = Catalog::load(pool).await.unwrap();
    let text = format!("{DEFAULT_CHECKS}\n{calendar}");
    let checks =
        ChecksFile::parse(&text, "checks.toml", &catalog).unwrap_or_else(|e| panic!("{e}"));
    let q = Quality::new(pool.clone(), checks).await.unwrap();
    let report = q.run_cycle(None).await.unwrap();
    report
        .events
        .into_iter()
        .filter(|e| e.change == ConditionChange::Opened)
        .collect()
}

fn volume_on_promotion(events: &[FailureEvent]) -> Vec<&FailureEvent> {
    let day = NaiveDate::parse_from_str(PROMOTION, "%Y-%m-%d").unwrap();
    events
        .iter()
        .filter(|e| e.check_type == "volume")
        .filter(|e| {
            (e.window_start.date_naive()..=(e.window_end - Duration::seconds(1)).date_naive())
                .contains(&day)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_promotion_day_is_silent_and_an_undeclared_one_is_flagged() {
    let Some(url) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let t = TestDb::new(&Backend::Server(url)).await;
    let pool = t.pool();
    let (items, truth) = generate(&scenario());
    assert_eq!(truth.len(), 1);
    ingest_all(pool, items).await;

    let undeclared = cycle(pool, "").await;
    let flagged = volume_on_promotion(&undeclared);
    let datasets: std::collections::BTreeSet<&str> =
        flagged.iter().map(|e| e.dataset.as_str()).collect();
    assert!(
        datasets.contains("raw_events") && datasets.contains("product_views"),
        "the undeclared promotion is a spike of every stream: {}",
        describe(&undeclared)
    );

    let declared = cycle(
        pool,
        &format!(
            "[[calendar]]\nname = \"Spring sale\"\nkind = \"promotion\"\ndate = \"{PROMOTION}\"\n"
        ),
    )
    .await;
    let volume: Vec<&FailureEvent> = declared
        .iter()
        .filter(|e| e.check_type == "volume")
        .collect();
    assert!(
        volume.is_empty(),
        "a declared promotion and the days after it raise no volume condition: {volume:#?}"
    );
    // The promotion's windows were seen, as the first of their kind.
    let (learning, message): (i64, Option<String>) = sqlx::query_as(
        "SELECT count(*), max(message) FROM quality_results
         WHERE check_name = 'raw_events_volume' AND status = 'learning'
           AND detail->'calendar'->>'kind' = 'promotion'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(learning >= 20, "{learning} promotion windows");
    assert!(
        message.as_deref().unwrap_or("").contains("Spring sale"),
        "{message:?}"
    );
    // The day after the promotion is judged as an ordinary day again.
    let judged_after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM quality_results
         WHERE check_name = 'raw_events_volume' AND status = 'pass'
           AND window_start >= '2026-03-16T00:00:00Z'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(judged_after >= 12, "{judged_after} windows judged after");
    t.finish().await;
}
