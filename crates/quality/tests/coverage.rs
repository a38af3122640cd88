//! Coverage: every fault kind judged per event (schema refusals, future and late timestamps,
//! redelivered copies) and the volume faults, injected into every event type they can hit, is caught by the shipped check of that event
//! type's own table. One scenario per kind with one fault per event type (the kind's default
//! field where it needs one; an event type without such a field is not hit by the kind), so a
//! single cycle must open a condition on each of those tables. `faults.rs` holds every kind to
//! its check on one event type, with the detection window.

mod common;

use chrono::Duration;
use common::*;
use heal_generator::Scenario;
use heal_model::quality::ConditionChange;
use heal_model::quality::FailureEvent;
use heal_model::{EventKind, FaultKind};
use heal_testkit::{server_url, Backend, TestDb};

/// The kind's faults, one per event type it can hit, over the third and fourth days (refunds
/// come days after their order), and the event types hit.
fn scenario(kind: FaultKind) -> (Scenario, Vec<EventKind>) {
    let mut hit = Vec::new();
    let mut faults = String::new();
    for event in EventKind::ALL {
        let fault = match kind {
            // Volume needs its weekday's profile (a week of history), and each event type
            // its own two hours (a spike of every type at once would leave their relations
            // flat): day nine on, twice a day, in the daytime.
            FaultKind::VolumeSpike | FaultKind::VolumeDrop => format!(
                "[[fault]]\nkind = \"{kind}\"\ntarget = \"{}\"\nstart = \"P{}DT{}H\"\nduration = \"PT2H\"\n{}\n",
                event.target_name(),
                8 + hit.len() / 2,
                if hit.len() % 2 == 0 { 11 } else { 17 },
                if kind == FaultKind::VolumeSpike { "params = { factor = 4 }" } else { "rate = 0.9" }
            ),
            _ => format!(
                "[[fault]]\nkind = \"{kind}\"\ntarget = \"{}\"\nstart = \"P2D\"\nduration = \"P1DT12H\"\nrate = 0.5\n",
                event.target_name()
            ),
        };
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
    let (days, per_day) = match kind {
        FaultKind::VolumeSpike | FaultKind::VolumeDrop => (12, 20000),
        _ => (4, 12000),
    };
    format!(
        "name = \"coverage_{kind}\"\nseed = 7\nstart = \"2026-03-01T00:00:00Z\"\ndays = {days}\nevents_per_day = {per_day}\n"
    )
}

/// Events a volume fault must add or remove in its two hours for its stream's checks to be
/// required to notice. Below it are refunds (a few an hour) and a 90 % drop of orders (about
/// eleven an hour at this rate: 22 missing), which hourly bursts of a sparse stream hide; the
/// payments left without their orders report that one (`payments_reference_orders`).
const MIN_VOLUME_HIT: u64 = 50;

/// The shipped check meant for `kind` on `table`.
fn check_for(kind: FaultKind, table: &str) -> String {
    match kind {
        FaultKind::FutureTimestamps => format!("{table}_timestamps"),
        FaultKind::LateEvents => format!("{table}_on_time"),
        FaultKind::DuplicateEvents => format!("{table}_unique"),
        FaultKind::VolumeSpike | FaultKind::VolumeDrop => format!("{table}_volume"),
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
    let opened: Vec<&FailureEvent> = report
        .events
        .iter()
        .filter(|e| e.change == ConditionChange::Opened)
        .collect();
    let mut missed = Vec::new();
    for (event, record) in hit.iter().zip(&truth) {
        assert!(record.affected_count > 0, "{kind} on {event:?} hit nothing");
        let table = event.table();
        let check = check_for(kind, table);
        let found = if matches!(kind, FaultKind::VolumeSpike | FaultKind::VolumeDrop) {
            // A volume fault that moved a stream by fewer than MIN_VOLUME_HIT events is
            // within what a sparse stream does by chance.
            if record.affected_count < MIN_VOLUME_HIT {
                continue;
            }
            // The stream's volume, or a relation that names it as the side that moved,
            // for a window of its fault.
            let fault = (record.window_start, record.window_end + Duration::hours(3));
            opened.iter().any(|e| {
                e.dataset == table
                    && (e.check == check || e.check_type == "relation")
                    && overlaps((e.window_start, e.window_end), fault)
            })
        } else {
            opened.iter().any(|e| e.check == check)
        };
        if !found {
            missed.push(format!("{check} ({} events hit)", record.affected_count));
        }
    }
    if !missed.is_empty() {
        // What the volume and relation checks saw in the faults' hours, to tell why.
        let seen: Vec<(String, chrono::DateTime<chrono::Utc>, String, String)> = sqlx::query_as(
            "SELECT r.check_name, r.window_end, r.status, r.message FROM quality_results r
             JOIN fault_injections f ON r.window_end > f.window_start
              AND r.window_end <= f.window_end + interval '2 hours'
             WHERE r.check_type IN ('volume', 'relation') ORDER BY 1, 2",
        )
        .fetch_all(t.pool())
        .await
        .unwrap_or_default();
        panic!(
            "{kind}: no condition on {missed:?}; the cycle's events:\n{}\nvolume and relations in the faults' hours:\n{}",
            describe(&report.events),
            seen.iter()
                .map(|r| format!("{} {} {} {}", r.0, r.1, r.2, r.3))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
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
    duplicate_events_on_every_event_type: DuplicateEvents;
    volume_spike_on_every_event_type: VolumeSpike;
    volume_drop_on_every_event_type: VolumeDrop;
}
