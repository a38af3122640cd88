//! Every fault kind of the scenario format, injected into otherwise clean simulated traffic:
//! the scenario file runs with clean history before its fault, everything is ingested, and one
//! check cycle of the shipped checks must open a condition on the expected check and dataset,
//! for a window that overlaps the fault (or, for what is judged on arrival, right away).
//!
//! These run on the PostgreSQL server (required in CI): each ingests tens of thousands of
//! events, which the embedded engine would take minutes over. `embedded.rs` runs the role on
//! the embedded engine.

mod common;

use common::*;
use heal_model::quality::{ConditionChange, FailureEvent};
use heal_model::FaultKind;
use heal_testkit::{server_url, Backend, TestDb};

/// Days of clean history added before the scenario's fault (the files put it on day 2): the
/// volume baseline judges from the fifth day on (two cycles of baseline, then enough residuals
/// to know the noise).
const VOLUME_HISTORY: i64 = 4;

macro_rules! fault_tests {
    ($($name:ident: $stem:literal at $volume:expr, history $extra:expr, batch $batch:expr;)*) => {
        const TESTED: &[&str] = &[$($stem),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let kind: FaultKind = $stem.parse().unwrap();
                let (check, dataset) = heal_quality::checks::catching(kind).expect("a check catches it");
                detects($stem, $volume, $extra, $batch, check, dataset).await;
            }
        )*
    };
}

fault_tests! {
    malformed_json: "malformed_json" at 8_000.0, history 0, batch false;
    encoding_corruption: "encoding_corruption" at 10_000.0, history 0, batch false;
    missing_field: "missing_field" at 8_000.0, history 0, batch false;
    null_field: "null_field" at 8_000.0, history 0, batch false;
    type_change: "type_change" at 5_000.0, history 0, batch false;
    schema_drift: "schema_drift" at 8_000.0, history 0, batch false;
    invalid_schema_version: "invalid_schema_version" at 8_000.0, history 0, batch false;
    duplicate_events: "duplicate_events" at 8_000.0, history 0, batch false;
    late_events: "late_events" at 10_000.0, history 0, batch false;
    future_timestamps: "future_timestamps" at 8_000.0, history 0, batch false;
    volume_drop: "volume_drop" at 20_000.0, history VOLUME_HISTORY, batch false;
    volume_spike: "volume_spike" at 20_000.0, history VOLUME_HISTORY, batch false;
    source_outage: "source_outage" at 4_000.0, history 0, batch false;
    value_outlier: "value_outlier" at 30_000.0, history 1, batch false;
    distribution_shift: "distribution_shift" at 10_000.0, history 1, batch false;
    orphan_reference: "orphan_reference" at 8_000.0, history 0, batch false;
    job_failure: "job_failure" at 4_000.0, history 0, batch true;
    job_delay: "job_delay" at 4_000.0, history 0, batch true;
}

#[test]
fn every_fault_kind_has_a_test() {
    // An outage is reported by the role that cannot write (heal-ingest's `tests/outage.rs`),
    // not by a check.
    for kind in FaultKind::ALL.into_iter().filter(|k| !k.is_outage()) {
        assert!(TESTED.contains(&kind.as_str()), "no test for {kind}");
    }
}

fn opened<'a>(events: &'a [FailureEvent], check: &str) -> Vec<&'a FailureEvent> {
    events
        .iter()
        .filter(|e| e.check == check && e.change == ConditionChange::Opened)
        .collect()
}

async fn detects(
    stem: &str,
    volume: f64,
    extra_days: i64,
    batch: bool,
    check: &str,
    dataset: &str,
) {
    let Some(url) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let scenario = shifted(stem, volume, extra_days);
    let t = TestDb::new(&Backend::Server(url)).await;
    let (report, truth) = scenario_cycle(t.pool(), &scenario, batch).await;
    let events = &report.events;
    let hits = opened(events, check);
    let fault = &truth[0];
    if hits.is_empty() {
        // What the check saw around the fault, to tell why.
        #[allow(clippy::type_complexity)]
        let around: Vec<(
            chrono::DateTime<chrono::Utc>,
            String,
            Option<f64>,
            Option<f64>,
            String,
        )> = sqlx::query_as(
            "SELECT window_end, status, metric, expected, message FROM quality_results
                 WHERE check_name = $1 AND window_end BETWEEN $2 AND $3 ORDER BY window_end",
        )
        .bind(check)
        .bind(fault.window_start - chrono::Duration::hours(3))
        .bind(fault.window_end + chrono::Duration::hours(3))
        .fetch_all(t.pool())
        .await
        .unwrap();
        panic!(
            "{stem}: no condition opened on {check}; the cycle's events:\n{}\n{check} around the fault:\n{}",
            describe(events),
            around
                .iter()
                .map(|r| format!("{} {} {:?} {:?} {}", r.0, r.1, r.2, r.3, r.4))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let window = (fault.window_start, fault.window_end);
    let hit = hits
        .iter()
        .find(|e| e.dataset == dataset)
        .unwrap_or_else(|| {
            panic!(
                "{stem}: {check} failed on another dataset:\n{}",
                describe(events)
            )
        });
    let incremental =
        matches!(hit.check_type.as_str(), "schema" | "pipeline") || check == "sessions_timestamps";
    if !incremental {
        // A windowed check must point at the fault's time.
        let tail = if stem == "late_events" {
            chrono::Duration::hours(7)
        } else {
            chrono::Duration::hours(6)
        };
        assert!(
            overlaps(
                (hit.window_start, hit.window_end),
                (window.0, window.1 + tail)
            ),
            "{stem}: {check} failed for {} .. {}, not near the fault {} .. {}",
            hit.window_start,
            hit.window_end,
            window.0,
            window.1
        );
        // ... and nothing before the fault began.
        for e in events
            .iter()
            .filter(|e| e.change == ConditionChange::Opened)
        {
            assert!(
                e.window_end > window.0,
                "{stem}: {} failed before the fault began: {}",
                e.check,
                describe(std::slice::from_ref(e))
            );
        }
    }
    assert!(
        !hit.message.is_empty() && !hit.threshold.is_empty(),
        "{hit:?}"
    );
    if matches!(
        hit.check_type.as_str(),
        "schema" | "uniqueness" | "referential" | "validity"
    ) {
        assert!(!hit.sample.is_empty(), "{stem}: a failing sample: {hit:?}");
        assert!(hit.sample.len() <= 10);
    }
    // Stored: the failing result and the open condition.
    let (fails, open): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM quality_results WHERE check_name = $1 AND status = 'fail'),
                (SELECT count(*) FROM quality_conditions WHERE check_name = $1 AND state = 'open')",
    )
    .bind(check)
    .fetch_one(t.pool())
    .await
    .unwrap();
    assert!(fails >= 1, "{stem}: failing results stored");
    assert!(
        open >= 1
            || events
                .iter()
                .any(|e| e.check == check && e.change == ConditionChange::Resolved)
    );
    t.finish().await;
}
