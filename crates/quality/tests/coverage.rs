//! Coverage: every fault kind judged per event (schema refusals, future and late timestamps),
//! injected into every event type it can hit, is caught by the shipped check of that event
//! type's own table. One scenario per kind with one fault per event type (the kind's default
//! field where it needs one; an event type without such a field is not hit by the kind), so a
//! single cycle must open a condition on each of those tables. `faults.rs` holds every kind to
//! its check on one event type, with the detection window.

mod common;

use common::*;
use heal_generator::Scenario;
use heal_model::quality::ConditionChange;
use heal_model::{EventKind, FaultKind};
use heal_testkit::{server_url, Backend, TestDb};
use std::collections::BTreeSet;

/// The kind's faults, one per event type it can hit, over the third and fourth days (refunds
/// come days after their order), and the event types hit.
fn scenario(kind: FaultKind) -> (Scenario, Vec<EventKind>) {
    let mut hit = Vec::new();
    let mut faults = String::new();
    for event in EventKind::ALL {
        let fault = format!(
            "[[fault]]\nkind = \"{kind}\"\ntarget = \"{}\"\nstart = \"P2D\"\nduration = \"P1DT12H\"\nrate = 0.5\n",
            event.target_name()
        );
        // A kind that needs a field the event type lacks is refused by the scenario format.
        let alone = format!("{}{fault}", header(kind));
        if Scenario::parse(&alone, "coverage.toml").is_ok() {
            faults.push_str(&fault);
            hit.push(event);
        }
    }
    let text = format!("{}{faults}", header(kind));
    let s = Scenario::parse(&text, "coverage.toml").unwrap_or_else(|e| panic!("{e}"));
    (s, hit)
}

fn header(kind: FaultKind) -> String {
    format!(
        "name = \"coverage_{kind}\"\nseed = 7\nstart = \"2026-03-01T00:00:00Z\"\ndays = 4\nevents_per_day = 12000\n"
    )
}

/// The shipped check meant for `kind` on `table`.
fn check_for(kind: FaultKind, table: &str) -> String {
    match kind {
        FaultKind::FutureTimestamps => format!("{table}_timestamps"),
        FaultKind::LateEvents => format!("{table}_on_time"),
        _ => format!("{table}_schema"),
    }
}

async fn covers(kind: FaultKind) {
    let Some(url) = server_url() else {
        eprintln!("skipped: HEAL_TEST_DATABASE_URL is not set");
        return;
    };
    let (scenario, hit) = scenario(kind);
    // Each of these kinds has a default field on every event type today.
    assert_eq!(
        hit.len(),
        EventKind::ALL.len(),
        "{kind} hits only {hit:?} of the event types"
    );
    let t = TestDb::new(&Backend::Server(url)).await;
    let (report, truth) = scenario_cycle(t.pool(), &scenario, false).await;
    let opened: BTreeSet<&str> = report
        .events
        .iter()
        .filter(|e| e.change == ConditionChange::Opened)
        .map(|e| e.check.as_str())
        .collect();
    let mut missed = Vec::new();
    for (event, record) in hit.iter().zip(&truth) {
        assert!(record.affected_count > 0, "{kind} on {event:?} hit nothing");
        let check = check_for(kind, event.table());
        if !opened.contains(check.as_str()) {
            missed.push(format!("{check} ({} events hit)", record.affected_count));
        }
    }
    assert!(
        missed.is_empty(),
        "{kind}: no condition on {missed:?}; the cycle's events:\n{}",
        describe(&report.events)
    );
    t.finish().await;
}

macro_rules! coverage_tests {
    ($($name:ident: $kind:ident;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                covers(FaultKind::$kind).await;
            }
        )*
    };
}

coverage_tests! {
    malformed_json_on_every_event_type: MalformedJson;
    encoding_corruption_on_every_event_type: EncodingCorruption;
    missing_field_on_every_event_type: MissingField;
    null_field_on_every_event_type: NullField;
    type_change_on_every_event_type: TypeChange;
    schema_drift_on_every_event_type: SchemaDrift;
    invalid_schema_version_on_every_event_type: InvalidSchemaVersion;
    future_timestamps_on_every_event_type: FutureTimestamps;
    late_events_on_every_event_type: LateEvents;
}
