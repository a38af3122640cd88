//! Tests of the simulation: order, determinism, volume, seasonality and the consistency of
//! the simulated shop (sign-up first, orders before payments, refunds after payments).

use super::*;
use heal_model::event::PaymentStatus;
use heal_model::{EventBody, SchemaVersion};
use std::collections::{HashMap, HashSet};

fn scenario(seed: u64, days: f64, events_per_day: f64) -> Scenario {
    let start = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Scenario::clean("test", seed, start, days, events_per_day)
}

#[test]
fn events_come_in_time_order_within_the_run() {
    let s = scenario(1, 1.0, 5_000.0);
    let events: Vec<CanonicalEvent> = Simulation::new(&s).collect();
    assert!(!events.is_empty());
    assert!(events
        .windows(2)
        .all(|w| w[0].occurred_at <= w[1].occurred_at));
    assert!(events.first().unwrap().occurred_at >= s.start);
    assert!(events.last().unwrap().occurred_at < s.end());
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
}

#[test]
fn peek_time_is_a_lower_bound_of_the_next_event() {
    let s = scenario(2, 0.2, 5_000.0);
    let mut sim = Simulation::new(&s);
    while let Some(bound) = sim.peek_time() {
        match sim.next() {
            Some(ev) => assert!(ev.occurred_at >= bound),
            None => break,
        }
    }
    assert!(sim.next().is_none());
    assert!(sim.peek_time().is_none());
}

#[test]
fn same_seed_same_events_and_another_seed_other_events() {
    let a: Vec<CanonicalEvent> = Simulation::new(&scenario(7, 0.3, 4_000.0)).collect();
    let b: Vec<CanonicalEvent> = Simulation::new(&scenario(7, 0.3, 4_000.0)).collect();
    let c: Vec<CanonicalEvent> = Simulation::new(&scenario(8, 0.3, 4_000.0)).collect();
    assert_eq!(a, b);
    assert_ne!(a.len(), 0);
    assert_ne!(a[0].event_id, c[0].event_id);
}

#[test]
fn clean_volume_is_within_ten_percent_of_the_target() {
    for (seed, days, per_day) in [
        (1, 3.0, 6_000.0),
        (2, 0.5, 8_000.0),
        (3, 1.25, 3_000.0),
        (4, 8.0, 1_500.0),
    ] {
        let target = days * per_day;
        let n = Simulation::new(&scenario(seed, days, per_day)).count() as f64;
        assert!(
            (n - target).abs() <= 0.10 * target,
            "seed {seed}, {days} days × {per_day}: {n} events for a target of {target}"
        );
    }
}

#[test]
fn evenings_are_much_busier_than_early_mornings() {
    let s = scenario(5, 7.0, 3_000.0);
    let mut by_hour = [0u32; 24];
    for ev in Simulation::new(&s) {
        by_hour[ev
            .occurred_at
            .format("%H")
            .to_string()
            .parse::<usize>()
            .unwrap()] += 1;
    }
    let peak = by_hour[19] + by_hour[20] + by_hour[21];
    let trough = by_hour[3] + by_hour[4] + by_hour[5];
    assert!(
        f64::from(peak) > 2.5 * f64::from(trough),
        "peak {peak} vs trough {trough}: {by_hour:?}"
    );
    assert!(seasonality::diurnal(0) > 0.0);
}

#[test]
fn the_shop_is_consistent() {
    let s = scenario(11, 12.0, 1_500.0);
    let events: Vec<CanonicalEvent> = Simulation::new(&s).collect();
    let mut seen_users: HashSet<&str> = HashSet::new();
    let mut orders: HashMap<&str, (&CanonicalEvent, i64)> = HashMap::new();
    let mut payments: HashMap<&str, &CanonicalEvent> = HashMap::new();
    let mut kinds: HashMap<EventKind, usize> = HashMap::new();
    let (mut failed, mut refunds) = (0usize, 0usize);
    for ev in &events {
        *kinds.entry(ev.kind()).or_default() += 1;
        if seen_users.insert(ev.user_id.as_str()) {
            assert_eq!(
                ev.kind(),
                EventKind::UserCreated,
                "first event of {}",
                ev.user_id
            );
        }
        match &ev.body {
            EventBody::Order {
                order_id,
                amount_minor,
                lines,
                item_count,
                ..
            } => {
                assert_eq!(order_id, &ev.event_id);
                let sum: i64 = lines
                    .iter()
                    .map(|l| i64::from(l.quantity) * l.unit_price_minor)
                    .sum();
                assert_eq!(*amount_minor, sum);
                assert_eq!(*item_count, lines.iter().map(|l| l.quantity).sum::<i32>());
                orders.insert(order_id, (ev, *amount_minor));
            }
            EventBody::Payment {
                payment_id,
                order_id,
                amount_minor,
                currency,
                status,
                attempt,
                failure_reason,
                ..
            } => {
                let (order, amount) = orders[order_id.as_deref().unwrap()];
                assert!(order.occurred_at < ev.occurred_at);
                assert_eq!(order.user_id, ev.user_id);
                assert_eq!(*amount_minor, amount);
                assert!((1..=3).contains(attempt));
                if let EventBody::Order { currency: c, .. } = &order.body {
                    assert_eq!(c, currency);
                }
                assert_eq!(*status == PaymentStatus::Failed, failure_reason.is_some());
                failed += usize::from(*status == PaymentStatus::Failed);
                if ev.schema_version == SchemaVersion::V1 {
                    assert!(*status == PaymentStatus::Succeeded && currency == "USD");
                }
                payments.insert(payment_id, ev);
            }
            EventBody::Refund {
                payment_id,
                amount_minor,
                ..
            } => {
                let payment = payments[payment_id.as_str()];
                assert!(payment.occurred_at + chrono::Duration::days(1) <= ev.occurred_at);
                if let EventBody::Payment {
                    status,
                    amount_minor: paid,
                    ..
                } = &payment.body
                {
                    assert_eq!(*status, PaymentStatus::Succeeded);
                    assert!(amount_minor <= paid);
                }
                refunds += 1;
            }
            _ => {}
        }
    }
    let n_payments = kinds[&EventKind::PaymentProcessed] as f64;
    let failure_share = failed as f64 / n_payments;
    assert!((0.04..0.10).contains(&failure_share), "{failure_share}");
    assert!(refunds > 0, "some refunds within 12 days");
    for kind in EventKind::ALL {
        assert!(kinds.get(&kind).copied().unwrap_or(0) > 0, "{kind:?}");
    }
}

#[test]
fn returning_customers_have_skewed_activity() {
    let s = scenario(13, 5.0, 4_000.0);
    let mut sessions: HashMap<String, u32> = HashMap::new();
    for ev in Simulation::new(&s) {
        if ev.kind() == EventKind::SessionStarted {
            *sessions.entry(ev.user_id).or_default() += 1;
        }
    }
    let mut counts: Vec<u32> = sessions.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let total: u32 = counts.iter().sum();
    let top_decile: u32 = counts[..counts.len() / 10].iter().sum();
    assert!(
        counts.iter().filter(|c| **c > 1).count() > counts.len() / 4,
        "many come back"
    );
    assert!(
        f64::from(top_decile) > 0.25 * f64::from(total),
        "top 10% make >25% of sessions"
    );
}

#[test]
fn schema_versions_follow_the_mix() {
    let mut s = scenario(17, 1.0, 6_000.0);
    s.schema_mix = SchemaMix {
        v1: 0.0,
        v2: 0.0,
        v3: 1.0,
    };
    assert!(Simulation::new(&s).all(|e| e.schema_version == SchemaVersion::V3));
    s.schema_mix = SchemaMix::default();
    let views: Vec<SchemaVersion> = Simulation::new(&s)
        .filter(|e| e.kind() == EventKind::ProductViewed)
        .map(|e| e.schema_version)
        .collect();
    let v1 = views.iter().filter(|v| **v == SchemaVersion::V1).count() as f64 / views.len() as f64;
    assert!((0.17..0.23).contains(&v1), "{v1}");
}

#[test]
fn realtime_runs_at_the_requested_rate_without_end() {
    let start = DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut sim = Simulation::realtime(3, 0.2, start, SchemaMix::default());
    assert!(sim.end().is_none());
    // 0.2 events per second over two simulated days: about 34560 events.
    let horizon = start + chrono::Duration::days(2);
    let n = sim.by_ref().take_while(|e| e.occurred_at < horizon).count() as f64;
    assert!((n - 34_560.0).abs() < 0.12 * 34_560.0, "{n}");
    assert!(sim.next().is_some());
}
