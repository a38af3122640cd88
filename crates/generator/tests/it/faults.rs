//! Ground truth against observation: every fault's records must match exactly what the
//! decoder (and the send times) show for the messages of the run, compared with the clean run
//! of the same seed.

use crate::common::{run, scenario, scenarios_dir};
use chrono::Duration;
use heal_generator::{parse_iso_duration, GeneratedEvent, InjectionRecord, Scenario, Simulation};
use heal_model::{decode, wire, CanonicalEvent, EventBody, EventKind, FaultKind, SchemaVersion};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Send lag from which a decoded message counts as late (duplicates are sent sooner).
const LATE_FROM: Duration = Duration::minutes(10);

fn ids<'a>(records: impl Iterator<Item = &'a InjectionRecord>) -> HashSet<String> {
    records
        .flat_map(|r| r.affected_event_ids.iter().cloned())
        .collect()
}

/// A canonical field's value, read back through the v2 encoding.
fn field_of(ev: &CanonicalEvent, name: &str) -> Option<Value> {
    let value = wire::encode(ev, SchemaVersion::V2)?;
    let spec = wire::field(ev.kind(), SchemaVersion::V2, name)?;
    wire::get_path(&value, spec.path).cloned()
}

fn duration_param(record: &InjectionRecord, key: &str) -> Duration {
    parse_iso_duration(record.params[key].as_str().unwrap()).unwrap()
}

/// Checks every record of a run against what was observed; returns the records.
pub fn check_ground_truth(scenario: &Scenario) -> Vec<InjectionRecord> {
    let (messages, truth) = run(scenario);
    let mut clean_scenario = scenario.clone();
    clean_scenario.faults.clear();
    let (clean_messages, clean_truth) = run(&clean_scenario);
    assert!(clean_truth.is_empty());
    assert_eq!(truth.len(), scenario.faults.len());
    assert!(messages
        .windows(2)
        .all(|w| w[0].produced_at <= w[1].produced_at));

    let clean: HashMap<&str, &GeneratedEvent> = clean_messages
        .iter()
        .map(|m| (m.event_id.as_str(), m))
        .collect();
    let clean_decoded: HashMap<&str, CanonicalEvent> = clean_messages
        .iter()
        .map(|m| {
            (
                m.event_id.as_str(),
                decode(&m.payload).expect("clean events decode"),
            )
        })
        .collect();

    // The simulated events themselves (whatever version they were sent in).
    let canonical: HashMap<String, CanonicalEvent> =
        if truth.iter().any(|r| r.kind == FaultKind::ValueOutlier) {
            Simulation::new(&clean_scenario)
                .map(|e| (e.event_id.clone(), e))
                .collect()
        } else {
            HashMap::new()
        };

    // What the messages show.
    let mut observed: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut observed_messages: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_id: HashMap<&str, Vec<&GeneratedEvent>> = HashMap::new();
    let mut decoded: HashMap<&str, CanonicalEvent> = HashMap::new();
    for m in &messages {
        per_id.entry(m.event_id.as_str()).or_default().push(m);
        let outcome = match decode(&m.payload) {
            Err(e) => {
                assert_eq!(
                    e.event_id.as_deref(),
                    Some(m.event_id.as_str()),
                    "traceable: {e}"
                );
                Some(format!("quarantine:{}", e.reason.as_str()))
            }
            Ok(ev) => {
                assert_eq!(ev.event_id, m.event_id);
                assert_eq!(ev.kind(), m.kind);
                assert_eq!(ev.user_id, m.key);
                let outcome = if ev.occurred_at > m.produced_at {
                    Some("quarantine:future_timestamp".to_string())
                } else if m.produced_at - ev.occurred_at >= LATE_FROM {
                    Some("late".to_string())
                } else {
                    None
                };
                decoded.insert(m.event_id.as_str(), ev);
                outcome
            }
        };
        if let Some(outcome) = outcome {
            observed
                .entry(outcome.clone())
                .or_default()
                .insert(m.event_id.clone());
            *observed_messages.entry(outcome).or_default() += 1;
        }
    }
    let dups: HashSet<String> = per_id
        .iter()
        .filter(|(_, ms)| ms.len() > 1)
        .map(|(id, _)| id.to_string())
        .collect();
    let extra_copies: u64 = per_id.values().map(|ms| ms.len() as u64 - 1).sum();
    let faulty_ids: HashSet<&str> = per_id.keys().copied().collect();
    let dropped: HashSet<String> = clean
        .keys()
        .filter(|id| !faulty_ids.contains(*id))
        .map(|id| id.to_string())
        .collect();
    let new_ids: HashSet<String> = faulty_ids
        .iter()
        .filter(|id| !clean.contains_key(*id))
        .map(|id| id.to_string())
        .collect();

    // Quarantine, late: the observed sets equal the union of the records promising them.
    let mut outcomes: BTreeMap<&str, Vec<&InjectionRecord>> = BTreeMap::new();
    for r in &truth {
        outcomes.entry(r.expected.as_str()).or_default().push(r);
        if r.kind.targets_job() {
            assert_eq!((r.affected_count, r.expected.as_str()), (0, "job"));
            assert!(r.affected_event_ids.is_empty());
        } else if r.kind.is_outage() {
            assert_eq!((r.affected_count, r.expected.as_str()), (0, "outage"));
            assert!(r.affected_event_ids.is_empty());
        } else if r.kind == FaultKind::DuplicateEvents {
            let copies = r.params["copies"].as_u64().unwrap();
            assert_eq!(r.affected_count, copies * r.affected_event_ids.len() as u64);
        } else {
            assert_eq!(r.affected_count, r.affected_event_ids.len() as u64);
        }
    }
    for (outcome, seen) in &observed {
        let records = outcomes.get(outcome.as_str()).cloned().unwrap_or_default();
        let promised = ids(records.iter().copied());
        assert_eq!(seen, &promised, "{outcome}: observed vs ground truth");
        let count: u64 = records.iter().map(|r| r.affected_count).sum();
        assert_eq!(
            observed_messages[outcome], count,
            "{outcome}: message count"
        );
    }
    for (outcome, records) in &outcomes {
        let promised = ids(records.iter().copied());
        match *outcome {
            "deduplicated" => {
                assert_eq!(dups, promised, "duplicated ids");
                let count: u64 = records.iter().map(|r| r.affected_count).sum();
                assert_eq!(extra_copies, count, "extra copies");
                for r in records {
                    assert!(duration_param(r, "delay") < LATE_FROM, "test precondition");
                }
            }
            "dropped" => assert_eq!(dropped, promised, "dropped ids"),
            "job" => {}
            "stored" => {}
            other => assert!(
                observed.contains_key(other) || promised.is_empty(),
                "{other}: promised {} events, none observed",
                promised.len()
            ),
        }
    }
    if !outcomes.contains_key("deduplicated") {
        assert!(dups.is_empty(), "no duplicates without a duplicate fault");
    }
    if !outcomes.contains_key("dropped") {
        assert!(dropped.is_empty(), "no drops without a drop fault");
    }

    // Exact per-record checks.
    let clean_orders: HashSet<String> = clean_decoded
        .values()
        .filter_map(|e| match &e.body {
            EventBody::Order { order_id, .. } => Some(order_id.clone()),
            _ => None,
        })
        .collect();
    let clean_payments: HashSet<String> = clean_decoded
        .values()
        .filter_map(|e| match &e.body {
            EventBody::Payment { payment_id, .. } => Some(payment_id.clone()),
            _ => None,
        })
        .collect();
    let mut spiked: HashSet<String> = HashSet::new();
    let mut changed: HashSet<String> = HashSet::new();
    for r in &truth {
        for id in &r.affected_event_ids {
            let ev = decoded.get(id.as_str());
            let was = clean_decoded.get(id.as_str());
            match r.kind {
                FaultKind::LateEvents => {
                    let ev = ev.expect("late events decode");
                    let m = per_id[id.as_str()][0];
                    assert_eq!(m.produced_at - ev.occurred_at, duration_param(r, "delay"));
                    assert_eq!(ev, was.unwrap());
                }
                FaultKind::FutureTimestamps => {
                    let ev = ev.expect("future events decode");
                    let m = per_id[id.as_str()][0];
                    assert_eq!(ev.occurred_at - m.produced_at, duration_param(r, "skew"));
                }
                FaultKind::VolumeSpike => {
                    assert!(ev.is_some(), "spike events decode");
                    spiked.insert(id.clone());
                }
                FaultKind::ValueOutlier => {
                    let name = r.params["field"].as_str().unwrap();
                    let factor = r.params["factor"].as_f64().unwrap();
                    let now = field_of(ev.unwrap(), name).unwrap().as_f64().unwrap();
                    let before = field_of(&canonical[id], name).unwrap().as_f64().unwrap();
                    let limit = if name == "quantity" { 10_000.0 } else { 9.0e13 };
                    let want = (before * factor).round().min(limit);
                    assert!(
                        (now - want).abs() <= 1.0,
                        "{id}: {before} × {factor} = {now}"
                    );
                    changed.insert(id.clone());
                }
                FaultKind::DistributionShift => {
                    let name = r.params["field"].as_str().unwrap();
                    assert_eq!(field_of(ev.unwrap(), name).unwrap(), r.params["to"]);
                    changed.insert(id.clone());
                }
                FaultKind::OrphanReference => {
                    match &ev.unwrap().body {
                        EventBody::Payment { order_id, .. } => {
                            let order_id = order_id.as_ref().expect("v2/v3 payment");
                            assert!(!clean_orders.contains(order_id));
                        }
                        EventBody::Refund { payment_id, .. } => {
                            assert!(!clean_payments.contains(payment_id));
                        }
                        other => panic!("orphan on {other:?}"),
                    }
                    changed.insert(id.clone());
                }
                _ => {}
            }
        }
    }
    assert_eq!(
        new_ids, spiked,
        "new events are exactly the spikes' extra events"
    );

    // Everything no fault touched is sent exactly as in the clean run.
    let touched = ids(truth.iter());
    for m in &messages {
        if touched.contains(&m.event_id) {
            continue;
        }
        let c = clean[m.event_id.as_str()];
        assert_eq!(
            m.payload, c.payload,
            "untouched {} differs from the clean run",
            m.event_id
        );
        assert_eq!(m.produced_at, c.produced_at);
    }
    for id in &changed {
        assert!(decoded.contains_key(id.as_str()), "stored events decode");
    }
    truth
}

/// A scenario file with its volume scaled down for a fast test.
fn scaled(path: &std::path::Path) -> Scenario {
    let mut s = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
    s.events_per_day = s.events_per_day.min(2_500.0);
    s
}

#[test]
fn every_scenario_file_injects_what_its_ground_truth_says() {
    for kind in FaultKind::ALL {
        let path = scenarios_dir().join(format!("{}.toml", kind.as_str()));
        let truth = check_ground_truth(&scaled(&path));
        for r in &truth {
            if r.kind.mutates_events() {
                assert!(
                    r.affected_count > 0,
                    "{}: {} affected nothing",
                    path.display(),
                    r.kind
                );
            }
        }
        assert!(truth.iter().any(|r| r.kind == kind), "{}", path.display());
    }
}

#[test]
fn the_demo_injects_what_its_ground_truth_says() {
    let truth = check_ground_truth(&scaled(&scenarios_dir().join("demo.toml")));
    assert!(truth.len() >= 6);
    // Event faults touched events; job faults act on the batch engine, not on events.
    assert!(truth
        .iter()
        .all(|r| r.affected_count > 0 || !r.kind.mutates_events()));
}

/// All field faults a kind accepts, sharing one window: fault `i` of `n` takes `1/(n-i)` of
/// what the earlier ones left, so each gets about `1/n` of the events. All the kind's fields
/// (envelope included) are probed unless `only` names some.
fn field_fault_scenario(
    kind: EventKind,
    only: Option<&[&'static str]>,
    days: f64,
    events_per_day: f64,
) -> (Scenario, usize) {
    let mut names: Vec<&str> = Vec::new();
    match only {
        Some(fields) => names.extend(fields),
        None => {
            names.extend(["user_id", "occurred_at", "session_id"]);
            for version in kind.versions() {
                names.extend(wire::fields(kind, *version).map(|f| f.name));
            }
        }
    }
    names.sort_unstable();
    names.dedup();
    let target = kind.target_name();
    let mut faults: Vec<String> = Vec::new();
    for fault in [
        "missing_field",
        "null_field",
        "type_change",
        "schema_drift",
        "value_outlier",
        "distribution_shift",
    ] {
        for name in &names {
            let key = if fault == "schema_drift" {
                "rename"
            } else {
                "field"
            };
            let spec = format!(
                "kind = \"{fault}\"\ntarget = \"{target}\"\nparams = {{ {key} = \"{name}\" }}"
            );
            let probe = format!(
                "name = \"probe\"\nseed = 1\nstart = \"2026-03-01T00:00:00Z\"\ndays = 1\nevents_per_day = 10\n[[fault]]\n{spec}\n"
            );
            if Scenario::parse(&probe, "probe").is_ok() {
                faults.push(spec);
            }
        }
    }
    // A schema drift to an unknown version, garbage versions and broken bytes as well.
    for extra in [
        "kind = \"schema_drift\"\nparams = { version = \"4.0\" }",
        "kind = \"invalid_schema_version\"",
        "kind = \"invalid_schema_version\"\nparams = { value = 2 }",
        "kind = \"malformed_json\"",
        "kind = \"encoding_corruption\"",
    ] {
        faults.push(format!("{extra}\ntarget = \"{target}\""));
    }
    let n = faults.len();
    let mut text = format!(
        "name = \"fields-{target}\"\nseed = 5\nstart = \"2026-03-01T00:00:00Z\"\ndays = {days}\nevents_per_day = {events_per_day}\nschema_mix = {{ v1 = 1, v2 = 1, v3 = 1 }}\n"
    );
    for (i, fault) in faults.iter().enumerate() {
        let rate = 1.0 / (n - i) as f64;
        text.push_str(&format!(
            "\n[[fault]]\n{fault}\nstart = \"PT1H\"\nrate = {rate}\n"
        ));
    }
    (scenario(&text), n)
}

#[test]
fn every_accepted_field_fault_gives_exactly_its_reason_in_every_version() {
    for kind in EventKind::ALL {
        // Refunds are rare (4% of paid orders) and come days after their payment: probe a few
        // of their fields on a longer run.
        let refund = kind == EventKind::RefundIssued;
        let (s, n) = if refund {
            field_fault_scenario(
                kind,
                Some(&["amount", "payment_id", "reason"]),
                6.0,
                4_000.0,
            )
        } else {
            field_fault_scenario(kind, None, 1.0, 3_000.0)
        };
        assert!(n >= 15, "{kind:?}: only {n} faults accepted");
        let truth = check_ground_truth(&s);
        let hit = truth.iter().filter(|r| r.affected_count > 0).count();
        let want = if refund { 3 } else { n * 6 / 10 };
        assert!(
            hit >= want,
            "{kind:?}: only {hit} of {n} faults hit an event"
        );
    }
}

#[test]
fn overlapping_faults_each_claim_distinct_events() {
    let s = scenario(
        r#"
name = "overlap"
seed = 3
start = "2026-03-01T00:00:00Z"
days = 1
events_per_day = 4000

[[fault]]
kind = "late_events"
target = "product_view"
start = "PT6H"
duration = "PT12H"
rate = 0.3

[[fault]]
kind = "duplicate_events"
target = "product_view"
start = "PT6H"
duration = "PT12H"
rate = 0.5
params = { copies = 2, delay = "PT30S" }

[[fault]]
kind = "missing_field"
target = "product_view"
start = "PT6H"
duration = "PT12H"

[[fault]]
kind = "volume_drop"
target = "all"
start = "PT20H"
duration = "PT2H"

[[fault]]
kind = "job_delay"
target = "daily_revenue"
start = "PT2H"
duration = "PT1H"
"#,
    );
    let truth = check_ground_truth(&s);
    let late = truth[0].affected_count as f64;
    let dup = truth[1].affected_event_ids.len() as f64;
    let missing = truth[2].affected_count as f64;
    assert_eq!(
        truth[1].affected_count,
        2 * truth[1].affected_event_ids.len() as u64
    );
    // 30% late, 35% duplicated, the remaining 35% lose their product id.
    assert!((dup / late - 35.0 / 30.0).abs() < 0.25, "{late} {dup}");
    assert!((missing / dup - 1.0).abs() < 0.2, "{dup} {missing}");
    assert_eq!(truth[4].kind, FaultKind::JobDelay);
    assert_eq!(truth[4].params["delay"], "PT2H");
}
