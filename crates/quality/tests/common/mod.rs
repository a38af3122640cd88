//! The fixture of the quality tests: a scenario file run through the generator with clean
//! history before its faults, ingested as a consumer of `raw-events` would deliver it, its
//! ground truth stored (the batch engine reads job faults from it), optionally the batch jobs
//! run, and then the quality role's checks.

#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use heal_generator::{FaultAction, InjectionRecord, Scenario};
use heal_ingest::Incoming;
use heal_model::quality::FailureEvent;
use heal_quality::{Catalog, ChecksFile, CycleReport, Quality};
use sqlx::PgPool;

pub use heal_testkit::scenarios_dir;

/// `scenarios/<stem>.toml` at `events_per_day`, with its faults moved `extra_days` later (so
/// that much more clean history comes first), cut three hours after the last fault window
/// (plus the delay of late events).
pub fn shifted(stem: &str, events_per_day: f64, extra_days: i64) -> Scenario {
    let path = scenarios_dir().join(format!("{stem}.toml"));
    let mut s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    s.events_per_day = events_per_day;
    let mut end = Duration::zero();
    for f in &mut s.faults {
        f.start += Duration::days(extra_days);
        let tail = match &f.action {
            FaultAction::LateEvents { delay } => *delay,
            _ => Duration::zero(),
        };
        end = end.max(f.start + f.duration + tail);
    }
    if !s.faults.is_empty() {
        let end = end + Duration::hours(3);
        s.days = end.num_milliseconds() as f64 / 86_400_000.0;
    }
    s
}

/// Messages on three partitions with per-partition offsets, as a consumer receives them.
pub fn generate(scenario: &Scenario) -> (Vec<Incoming>, Vec<InjectionRecord>) {
    heal_testkit::pipeline::deliveries(scenario, 3)
}

pub async fn ingest_all(pool: &PgPool, items: Vec<Incoming>) {
    heal_testkit::pipeline::ingest_all(pool, &heal_testkit::pipeline::source(), &items, 1000).await;
}

/// Runs every batch job once over all the data (the scheduler's way), with injected job
/// faults taken from the stored ground truth.
pub async fn run_batch(pool: &PgPool) {
    let settings = heal_batch::Settings {
        retry_backoff: std::time::Duration::from_millis(10),
        delay_scale: 1e-6,
        ..heal_batch::Settings::default()
    };
    let engine = heal_batch::Engine::new(pool.clone(), None, settings).expect("engine");
    engine
        .run(
            &[],
            heal_batch::Trigger::Schedule,
            heal_batch::Selection::default(),
        )
        .await
        .expect("batch run");
}

/// The quality engine on the shipped checks.
pub async fn quality(pool: &PgPool) -> Quality {
    let catalog = Catalog::load(pool).await.expect("catalog");
    let checks = ChecksFile::default_checks(&catalog).unwrap_or_else(|e| panic!("{e}"));
    Quality::new(pool.clone(), checks)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Generates, ingests, records the truth, runs the batch jobs when asked, and one check cycle.
pub async fn scenario_cycle(
    pool: &PgPool,
    scenario: &Scenario,
    batch: bool,
) -> (CycleReport, Vec<InjectionRecord>) {
    let (items, truth) = generate(scenario);
    ingest_all(pool, items).await;
    heal_store::faults::record_ground_truth(pool, "test", &scenario.name, &truth)
        .await
        .expect("ground truth");
    if batch {
        run_batch(pool).await;
    }
    let q = quality(pool).await;
    let report = q.run_cycle(None).await.unwrap_or_else(|e| panic!("{e}"));
    for c in &report.checks {
        assert!(
            c.error.is_none(),
            "check {} errored: {:?}",
            c.check,
            c.error
        );
    }
    (report, truth)
}

pub fn describe(events: &[FailureEvent]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{:?} {} on {} [{} .. {}]: {}",
                e.change, e.check, e.dataset, e.window_start, e.window_end, e.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}
