//! The generator's stream: determinism, order, volume, seasonality, referential integrity of
//! what the decoder reads back, progress estimates and the real-time mode.

use crate::common::{run, scenario, scenarios_dir, start};
use chrono::{Duration, Timelike};
use heal_generator::{GeneratedEvent, Generator, Scenario, SchemaMix};
use heal_model::event::PaymentStatus;
use heal_model::{decode, CanonicalEvent, EventBody, EventKind, SchemaVersion};
use std::collections::{HashMap, HashSet};

fn demo(events_per_day: f64) -> Scenario {
    let mut s = Scenario::load(scenarios_dir().join("demo.toml")).unwrap();
    s.events_per_day = events_per_day;
    s
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let a = run(&demo(2_000.0));
    let b = run(&demo(2_000.0));
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    let mut other = demo(2_000.0);
    other.seed += 1;
    let c = run(&other);
    assert_ne!(a.0[..10], c.0[..10]);
}

#[test]
fn messages_are_sent_in_order_and_are_what_they_claim() {
    let (messages, _) = run(&demo(2_000.0));
    assert!(messages
        .windows(2)
        .all(|w| w[0].produced_at <= w[1].produced_at));
    let mut decoded = 0;
    for m in &messages {
        if let Ok(ev) = decode(&m.payload) {
            assert_eq!(
                (ev.event_id.as_str(), ev.kind(), ev.user_id.as_str()),
                (m.event_id.as_str(), m.kind, m.key.as_str())
            );
            decoded += 1;
        }
    }
    assert!(decoded > messages.len() * 9 / 10);
}

fn clean(seed: u64, days: f64, events_per_day: f64) -> Scenario {
    Scenario::clean("clean", seed, start(), days, events_per_day)
}

#[test]
fn clean_volume_is_within_ten_percent_and_matches_the_estimate() {
    for (seed, days, per_day) in [(1, 2.0, 5_000.0), (9, 0.5, 10_000.0), (4, 4.0, 1_000.0)] {
        let s = clean(seed, days, per_day);
        let generator = Generator::new(&s);
        let expected = generator.expected_events() as f64;
        assert_eq!(expected, days * per_day);
        let n = generator.count() as f64;
        assert!((n - expected).abs() <= 0.1 * expected, "{n} vs {expected}");
    }
    // With faults, the estimate accounts for drops, duplicates and spikes.
    let s = demo(3_000.0);
    let generator = Generator::new(&s);
    let expected = generator.expected_events() as f64;
    let n = generator.count() as f64;
    assert!((n - expected).abs() <= 0.1 * expected, "{n} vs {expected}");
}

#[test]
fn diurnal_seasonality_is_visible() {
    let (messages, _) = run(&clean(21, 4.0, 4_000.0));
    let mut by_hour = [0f64; 24];
    for m in &messages {
        by_hour[m.produced_at.hour() as usize] += 1.0;
    }
    let peak = by_hour[19] + by_hour[20] + by_hour[21];
    let trough = by_hour[3] + by_hour[4] + by_hour[5];
    assert!(peak > 2.5 * trough, "{by_hour:?}");
}

fn decoded(messages: &[GeneratedEvent]) -> Vec<(CanonicalEvent, &GeneratedEvent)> {
    messages
        .iter()
        .map(|m| (decode(&m.payload).expect("clean events decode"), m))
        .collect()
}

#[test]
fn decoded_clean_events_are_referentially_consistent() {
    let (messages, _) = run(&clean(5, 12.0, 2_500.0));
    let events = decoded(&messages);
    let mut users: HashSet<&str> = HashSet::new();
    let mut orders: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    let mut payments: HashMap<String, (chrono::DateTime<chrono::Utc>, PaymentStatus)> =
        HashMap::new();
    let mut versions: HashMap<SchemaVersion, usize> = HashMap::new();
    let (mut checked_payments, mut refunds) = (0, 0);
    for (ev, m) in &events {
        assert_eq!(ev.occurred_at, m.produced_at);
        *versions.entry(ev.schema_version).or_default() += 1;
        if users.insert(m.key.as_str()) {
            assert_eq!(ev.kind(), EventKind::UserCreated, "{}'s first event", m.key);
        }
        match &ev.body {
            EventBody::Order { order_id, .. } => {
                orders.insert(order_id.clone(), ev.occurred_at);
            }
            EventBody::Payment {
                payment_id,
                order_id,
                status,
                ..
            } => {
                if ev.schema_version != SchemaVersion::V1 {
                    let order_id = order_id
                        .as_ref()
                        .expect("v2/v3 payments reference an order");
                    let placed = orders.get(order_id).expect("the order exists");
                    assert!(*placed < ev.occurred_at);
                    checked_payments += 1;
                }
                payments.insert(payment_id.clone(), (ev.occurred_at, *status));
            }
            EventBody::Refund {
                payment_id,
                order_id,
                ..
            } => {
                let (paid_at, status) = payments[payment_id];
                assert_eq!(status, PaymentStatus::Succeeded);
                assert!(paid_at + Duration::days(1) <= ev.occurred_at);
                assert!(ev.occurred_at <= paid_at + Duration::days(10));
                assert!(orders.contains_key(order_id.as_ref().unwrap()));
                refunds += 1;
            }
            _ => {}
        }
    }
    assert!(checked_payments > 100, "{checked_payments}");
    assert!(refunds > 5, "{refunds}");
    assert_eq!(versions.len(), 3, "{versions:?}");
}

#[test]
fn ground_truth_grows_while_iterating_and_lists_every_fault() {
    let s = demo(2_000.0);
    let mut generator = Generator::new(&s);
    let before = generator.ground_truth();
    assert_eq!(before.len(), s.faults.len());
    assert!(before.iter().all(|r| r.affected_count == 0));
    assert_eq!(generator.sim_time(), s.start);
    let mut last = s.start;
    for m in generator.by_ref() {
        last = m.produced_at;
    }
    assert_eq!(generator.sim_time(), last);
    let after = generator.ground_truth();
    // Event faults count the events they touched; job faults act on the batch engine later.
    assert!(after
        .iter()
        .all(|r| r.affected_count > 0 || !r.kind.mutates_events()));
    assert!(after.iter().any(|r| r.kind.targets_job()));
    let json = serde_json::to_value(&after).unwrap();
    assert_eq!(json[0]["kind"], after[0].kind.as_str());
    assert!(json[0]["window_start"].is_string());
    assert_eq!(generator.end(), Some(s.end()));
}

#[test]
fn realtime_is_open_ended_ordered_and_at_the_requested_rate() {
    let t0 = start();
    let mut generator = Generator::realtime(42, 0.25, t0, SchemaMix::default());
    assert_eq!(generator.expected_events(), 0);
    assert_eq!(generator.end(), None);
    let horizon = t0 + Duration::days(2);
    let mut n = 0.0f64;
    let mut last = t0;
    for m in generator.by_ref() {
        assert!(m.produced_at >= last);
        last = m.produced_at;
        if m.produced_at >= horizon {
            break;
        }
        decode(&m.payload).expect("real-time events decode");
        n += 1.0;
    }
    let want = 0.25 * 86_400.0 * 2.0;
    assert!((n - want).abs() < 0.12 * want, "{n} vs {want}");
    assert!(generator.next().is_some());
    assert!(generator.ground_truth().is_empty());
}

#[test]
fn a_scenario_can_be_parsed_and_run_from_a_string() {
    let s = scenario(
        r#"
name = "tiny"
seed = 99
start = "2026-03-01T12:00:00Z"
days = 0.25
events_per_day = 8000
schema_mix = { v1 = 1 }
"#,
    );
    let (messages, truth) = run(&s);
    assert!(truth.is_empty());
    let events = decoded(&messages);
    for (ev, _) in &events {
        let want = if ev.kind().versions().contains(&SchemaVersion::V1) {
            // v1 cannot express failed or non-USD payments.
            match &ev.body {
                EventBody::Payment {
                    status, currency, ..
                } if *status == PaymentStatus::Failed || currency != "USD" => SchemaVersion::V2,
                _ => SchemaVersion::V1,
            }
        } else {
            SchemaVersion::V2
        };
        assert_eq!(ev.schema_version, want, "{:?}", ev.kind());
    }
}
