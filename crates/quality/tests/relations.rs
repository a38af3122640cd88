//! Relations between streams: orders doubling for three hours while payments stay as they
//! were breaks `payments_per_order`, although neither stream alone leaves its own band.

mod common;

use chrono::Duration;
use common::*;
use heal_generator::{FaultAction, Target};
use heal_model::quality::ConditionChange;
use heal_model::EventKind;
use heal_testkit::{server_url, Backend, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_up_with_payments_flat_break_their_relation() {
    let Some(url) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    // The spike scenario, turned on orders: each extra order is a new one, without payment.
    let mut scenario = shifted("volume_spike", 20_000.0, 8);
    for f in &mut scenario.faults {
        f.target = Target::Event(EventKind::OrderPlaced);
        f.action = FaultAction::VolumeSpike { factor: 2.0 };
        f.duration = Duration::hours(3);
    }
    scenario.days += 2.0 / 24.0;
    let t = TestDb::new(&Backend::Server(url)).await;
    let (report, truth) = scenario_cycle(t.pool(), &scenario, false).await;
    let opened = |check: &str| {
        report
            .events
            .iter()
            .filter(|e| e.check == check && e.change == ConditionChange::Opened)
            .count()
    };
    if opened("payments_per_order") == 0 {
        let fault = &truth[0];
        let around: Vec<(chrono::DateTime<chrono::Utc>, String, String)> = sqlx::query_as(
            "SELECT window_end, status, message FROM quality_results
             WHERE check_name = 'payments_per_order' AND window_end BETWEEN $1 AND $2
             ORDER BY window_end",
        )
        .bind(fault.window_start - Duration::hours(2))
        .bind(fault.window_end + Duration::hours(4))
        .fetch_all(t.pool())
        .await
        .unwrap();
        panic!(
            "the relation is missed:\n{}\naround the fault:\n{}",
            describe(&report.events),
            around
                .iter()
                .map(|r| format!("{} {} {}", r.0, r.1, r.2))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let hit = report
        .events
        .iter()
        .find(|e| e.check == "payments_per_order")
        .unwrap();
    let fault = &truth[0];
    assert!(
        overlaps(
            (hit.window_start, hit.window_end),
            (fault.window_start, fault.window_end)
        ),
        "{} .. {} vs the fault {} .. {}",
        hit.window_start,
        hit.window_end,
        fault.window_start,
        fault.window_end
    );
    assert!(hit.message.contains("per"), "{}", hit.message);
    // The failure names the side that moved: orders, not payments.
    assert_eq!(hit.dataset, "orders", "{}", hit.message);
    // Each stream alone stays inside its own band.
    for alone in ["orders_volume", "payments_volume"] {
        assert_eq!(
            opened(alone),
            0,
            "{alone} saw it alone:\n{}",
            describe(&report.events)
        );
    }
    // Judged, not learning: the relation had a baseline on the clean days.
    let judged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM quality_results WHERE check_name = 'payments_per_order' AND status = 'pass'",
    )
    .fetch_one(t.pool())
    .await
    .unwrap();
    assert!(judged > 24, "{judged} windows passed");
}
