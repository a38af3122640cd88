//! Every fault kind of the scenario files, end to end: the generator runs `scenarios/<kind>.toml`
//! (scaled down), its messages go through `Ingestor::ingest` as a consumer of `raw-events` on
//! three partitions would deliver them, the ground truth is stored in `fault_injections` and
//! read back, and each injected event must have ended where its record says — quarantined with
//! the promised reason, stored late with its partition dirty, deduplicated, dropped, stored
//! with the injected change visible, or (batch-job faults) nothing at all — while every event
//! no fault touched is stored exactly as in the clean run of the same scenario.

mod common;

use chrono::Duration;
use common::*;
use heal_generator::InjectionRecord;
use heal_ingest::BatchOutcome;
use heal_model::{EventBody, EventKind, FaultKind};
use heal_testkit::{backends, TestDb};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// Fewest events an event fault must affect at the scaled-down volume.
const MIN_AFFECTED: u64 = 20;
/// How far after its original a volume spike's extra event may be sent (the generator's
/// spread).
const SPIKE_SPREAD: Duration = Duration::seconds(60);

macro_rules! scenario_tests {
    ($($name:ident: $stem:literal at $events_per_day:expr;)*) => {
        /// The scenario files the tests below run.
        const TESTED: &[&str] = &[$($stem),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                check_scenario($stem, $events_per_day).await;
            }
        )*
    };
}

// Volumes are chosen so that each fault affects a few dozen events in its (cut-down) window:
// orders and payments are under 2% of the traffic, product views about 70%.
scenario_tests! {
    baseline_is_clean: "baseline" at 3_000.0;
    malformed_json: "malformed_json" at 8_000.0;
    encoding_corruption: "encoding_corruption" at 10_000.0;
    missing_field: "missing_field" at 12_000.0;
    null_field: "null_field" at 16_000.0;
    type_change: "type_change" at 5_000.0;
    schema_drift: "schema_drift" at 14_000.0;
    invalid_schema_version: "invalid_schema_version" at 8_000.0;
    duplicate_events: "duplicate_events" at 14_000.0;
    late_events: "late_events" at 30_000.0;
    future_timestamps: "future_timestamps" at 8_000.0;
    volume_drop: "volume_drop" at 3_000.0;
    volume_spike: "volume_spike" at 2_000.0;
    source_outage: "source_outage" at 3_000.0;
    value_outlier: "value_outlier" at 30_000.0;
    distribution_shift: "distribution_shift" at 8_000.0;
    orphan_reference: "orphan_reference" at 10_000.0;
    job_failure: "job_failure" at 2_000.0;
    job_delay: "job_delay" at 2_000.0;
}

#[test]
fn every_fault_kind_has_a_test() {
    // Outages touch no event: what ingest does during one is tested in `tests/outage.rs`.
    for kind in FaultKind::ALL.into_iter().filter(|k| !k.is_outage()) {
        assert!(TESTED.contains(&kind.as_str()), "no test for {kind}");
    }
    assert!(TESTED.contains(&"baseline"));
}

/// Runs one scenario file on every backend and checks where each event ended up.
async fn check_scenario(stem: &str, events_per_day: f64) {
    let run = Run::new(stem, events_per_day);
    check_generation(&run);
    for backend in backends() {
        let started = Instant::now();
        let ctx = format!("{stem} on {backend}");
        let t = TestDb::new(&backend).await;
        let pool = t.pool().clone();
        let outcome = ingest_all(&pool, &run.items).await;

        let run_id = format!("test-{stem}-{backend}");
        record_ground_truth(&pool, &run_id, &run.scenario.name, &run.truth).await;
        let truth = read_ground_truth(&pool, &run_id, &run.scenario.name).await;
        assert_eq!(truth, run.truth, "{ctx}: ground truth read back");

        let db = Snapshot::load(&pool).await;
        check_common(&run, &truth, &outcome, &db, &ctx);
        let mut drops = Vec::new();
        for (i, r) in truth.iter().enumerate() {
            match r.expected.as_str() {
                "late" => check_late(&run, r, &db, &ctx),
                "deduplicated" => check_deduplicated(r, &db, &ctx),
                "dropped" => {
                    check_dropped(r, &db, &ctx);
                    let stored =
                        stored_in_window(&pool, &r.target, r.window_start, r.window_end).await;
                    drops.push((r, stored));
                }
                "stored" => check_stored(&pool, &run, r, &db, &ctx).await,
                "job" => check_job(&run, i, r, &db, &ctx),
                other => {
                    let reason = other
                        .strip_prefix("quarantine:")
                        .unwrap_or_else(|| panic!("{ctx}: unknown expectation {other}"));
                    check_quarantined(reason, r, &db, &ctx);
                }
            }
        }
        if truth.is_empty() {
            assert!(db.quarantine.is_empty(), "{ctx}: clean run quarantined");
            assert!(db.dirty.is_empty(), "{ctx}: clean run marked partitions");
            assert!(db
                .raw
                .values()
                .all(|r| !r.is_late && r.duplicate_count == 0));
            assert_eq!(db.raw.len(), run.clean.len(), "{ctx}: clean run stored");
            assert_eq!((outcome.late, outcome.duplicates), (0, 0), "{ctx}");
        }
        finish(t).await;

        if !drops.is_empty() {
            // The clean run of the same scenario, ingested the same way: the windows of the
            // drop faults must hold exactly the events that were not dropped.
            let clean_db = TestDb::new(&backend).await;
            let clean_outcome = ingest_all(clean_db.pool(), &run.clean_items).await;
            assert!(clean_outcome.quarantined.is_empty(), "{ctx}: clean run");
            assert_eq!(clean_outcome.inserted, run.clean.len() as u64);
            for (r, stored) in drops {
                let clean =
                    stored_in_window(clean_db.pool(), &r.target, r.window_start, r.window_end)
                        .await;
                assert!(
                    stored < clean,
                    "{ctx}: {stored} events stored in the window, not fewer than the clean run's {clean}"
                );
                assert_eq!(
                    stored,
                    clean - r.affected_count as i64,
                    "{ctx}: stored in the window = clean run less the dropped"
                );
                if r.rate == 1.0 {
                    assert_eq!(stored, 0, "{ctx}: an outage leaves the window empty");
                }
            }
            finish(clean_db).await;
        }
        let affected: Vec<String> = truth
            .iter()
            .map(|r| format!("{} {} ({} events)", r.kind, r.expected, r.affected_count))
            .collect();
        eprintln!(
            "{ctx}: {} messages, faults {affected:?}, {:.1?}",
            run.items.len(),
            started.elapsed()
        );
    }
}

/// The ground truth itself, against the scenario file and the clean run: every record is the
/// file's fault at its window, hits enough events, and names events that exist in the clean
/// run with the target kind and a time in the window (spikes: new events).
fn check_generation(run: &Run) {
    let stem = &run.stem;
    assert_eq!(run.truth.len(), run.original.faults.len(), "{stem}");
    if stem != "baseline" {
        assert!(
            run.truth.iter().any(|r| r.kind.as_str() == stem.as_str()),
            "{stem}: the file injects its own kind"
        );
    }
    let mut claimed: HashSet<&str> = HashSet::new();
    for (r, spec) in run.truth.iter().zip(&run.original.faults) {
        let ctx = format!("{stem}: {}", r.kind);
        assert_eq!(r.kind, spec.kind, "{ctx}");
        assert_eq!(r.target, spec.target.name(), "{ctx}");
        assert_eq!(
            (r.window_start, r.window_end),
            spec.window(run.original.start),
            "{ctx}: the scaled run keeps the file's window"
        );
        assert_eq!(r.rate, spec.rate, "{ctx}");
        let unique: HashSet<&str> = r.affected_event_ids.iter().map(String::as_str).collect();
        assert_eq!(
            unique.len(),
            r.affected_event_ids.len(),
            "{ctx}: ids repeat"
        );
        for id in &unique {
            assert!(claimed.insert(id), "{ctx}: {id} claimed by two faults");
        }
        if !r.kind.mutates_events() {
            assert!(["job", "outage"].contains(&r.expected.as_str()), "{ctx}");
            continue;
        }
        let per_event = if r.kind == FaultKind::DuplicateEvents {
            r.params["copies"].as_u64().expect("copies")
        } else {
            1
        };
        assert_eq!(
            r.affected_count,
            per_event * r.affected_event_ids.len() as u64,
            "{ctx}"
        );
        assert!(
            r.affected_event_ids.len() as u64 >= MIN_AFFECTED,
            "{ctx}: only {} events affected; raise the test's volume",
            r.affected_event_ids.len()
        );
        let target = EventKind::from_target_name(&r.target);
        for id in &r.affected_event_ids {
            let clean = run.clean.get(id);
            if r.kind == FaultKind::VolumeSpike {
                assert!(
                    clean.is_none(),
                    "{ctx}: spike event {id} exists in the clean run"
                );
                continue;
            }
            let ev = clean.unwrap_or_else(|| panic!("{ctx}: {id} is not in the clean run"));
            if let Some(kind) = target {
                assert_eq!(ev.kind(), kind, "{ctx}: {id}");
            }
            assert!(
                ev.occurred_at >= r.window_start && ev.occurred_at < r.window_end,
                "{ctx}: {id} at {} is outside the window",
                ev.occurred_at
            );
        }
    }
}

fn ids_of<'a>(records: impl Iterator<Item = &'a InjectionRecord>) -> HashSet<String> {
    records
        .flat_map(|r| r.affected_event_ids.iter().cloned())
        .collect()
}

/// A short description of how two id sets differ.
fn diff(got: &HashSet<String>, want: &HashSet<String>) -> String {
    let missing: Vec<&String> = want.difference(got).take(5).collect();
    let extra: Vec<&String> = got.difference(want).take(5).collect();
    format!(
        "{} missing (e.g. {missing:?}), {} unexpected (e.g. {extra:?})",
        want.difference(got).count(),
        got.difference(want).count()
    )
}

/// What must hold whatever the fault: offsets, totals, no valid event quarantined, every
/// untouched event stored once exactly as sent, and the late, duplicate and quarantine
/// bookkeeping equal to the union of the records promising it.
fn check_common(
    run: &Run,
    truth: &[InjectionRecord],
    outcome: &BatchOutcome,
    db: &Snapshot,
    ctx: &str,
) {
    // Offsets: the last offset + 1 of every partition, stored with the rows.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for item in &run.items {
        let e = last.entry(item.partition.unwrap()).or_insert(-1);
        *e = (*e).max(item.offset.unwrap());
    }
    let want: BTreeMap<i32, i64> = last.into_iter().map(|(p, o)| (p, o + 1)).collect();
    assert_eq!(
        want.len(),
        PARTITIONS as usize,
        "{ctx}: every partition used"
    );
    assert_eq!(db.offsets, want, "{ctx}: consumer offsets");

    // The outcomes add up to what is stored.
    let late: HashSet<String> = db
        .raw
        .values()
        .filter(|r| r.is_late)
        .map(|r| r.event_id.clone())
        .collect();
    let dup_total: i64 = db.raw.values().map(|r| i64::from(r.duplicate_count)).sum();
    assert_eq!(outcome.inserted, db.raw.len() as u64, "{ctx}: inserted");
    assert_eq!(outcome.late, late.len() as u64, "{ctx}: late");
    assert_eq!(outcome.duplicates, dup_total as u64, "{ctx}: duplicates");
    assert_eq!(
        outcome.quarantined.len(),
        db.quarantine.len(),
        "{ctx}: quarantined"
    );
    for q in &outcome.quarantined {
        assert_eq!(
            q.event_id.as_deref(),
            Some(run.messages[q.index].event_id.as_str()),
            "{ctx}: quarantined item {} names its event",
            q.index
        );
    }

    // Quarantine: only events a fault promised there, with the promised reason, traced to
    // where they were read.
    let mut promised: BTreeMap<&str, Vec<&InjectionRecord>> = BTreeMap::new();
    for r in truth {
        if let Some(reason) = r.expected.strip_prefix("quarantine:") {
            promised.entry(reason).or_default().push(r);
        }
    }
    for q in &db.quarantine {
        let id = q
            .event_id
            .as_deref()
            .unwrap_or_else(|| panic!("{ctx}: quarantined ({}) without an event id", q.reason));
        let records = promised.get(q.reason.as_str());
        assert!(
            records.is_some_and(|rs| rs
                .iter()
                .any(|r| r.affected_event_ids.iter().any(|a| a == id))),
            "{ctx}: event {id} quarantined as {} but no fault promised that",
            q.reason
        );
        assert_eq!(
            (
                q.source.as_str(),
                q.source_topic.as_deref(),
                q.status.as_str()
            ),
            (TOPIC, Some(TOPIC), "open"),
            "{ctx}: {id}"
        );
        let (partition, offset) = (q.source_partition.unwrap(), q.source_offset.unwrap());
        assert!(
            run.sent[id]
                .iter()
                .any(|s| (s.0, s.1) == (partition, offset)),
            "{ctx}: {id} quarantined from {partition}/{offset}, sent to {:?}",
            run.sent[id]
        );
    }
    for (reason, records) in &promised {
        let want = ids_of(records.iter().copied());
        let rows: Vec<&QuarantineRow> = db
            .quarantine
            .iter()
            .filter(|q| q.reason == *reason)
            .collect();
        let got: HashSet<String> = rows.iter().filter_map(|q| q.event_id.clone()).collect();
        assert!(
            got == want,
            "{ctx}: quarantined as {reason}: {}",
            diff(&got, &want)
        );
        assert_eq!(
            rows.len(),
            got.len(),
            "{ctx}: {reason}: an event quarantined twice"
        );
        let count: u64 = records.iter().map(|r| r.affected_count).sum();
        assert_eq!(rows.len() as u64, count, "{ctx}: {reason}: affected_count");
        let reported = outcome
            .quarantined
            .iter()
            .filter(|q| q.reason == *reason)
            .count();
        assert_eq!(reported as u64, count, "{ctx}: {reason}: batch outcomes");
    }

    // Every event no fault touched is stored, and nothing else is.
    let affected = run.affected();
    let stored: HashSet<String> = db.raw.keys().cloned().collect();
    let stored_untouched: HashSet<String> = stored.difference(&affected).cloned().collect();
    let clean_untouched: HashSet<String> = run
        .clean
        .keys()
        .filter(|id| !affected.contains(*id))
        .cloned()
        .collect();
    assert!(
        stored_untouched == clean_untouched,
        "{ctx}: untouched events stored vs the clean run: {}",
        diff(&stored_untouched, &clean_untouched)
    );
    for (id, r) in &db.raw {
        let first = run.sent[id][0];
        assert_eq!(
            (
                r.source.as_str(),
                r.source_partition,
                r.source_offset,
                r.produced_at
            ),
            (TOPIC, Some(first.0), Some(first.1), Some(first.2)),
            "{ctx}: {id} stored from its first delivery"
        );
        if !affected.contains(id) {
            let clean = &run.clean[id];
            assert_eq!(r.occurred_at, clean.occurred_at, "{ctx}: {id}");
            assert_eq!(r.event_type, clean.kind().wire_name(), "{ctx}: {id}");
            assert!(!r.is_late, "{ctx}: untouched {id} flagged late");
            assert_eq!(
                r.duplicate_count, 0,
                "{ctx}: untouched {id} counted duplicate"
            );
        }
    }

    // Every stored event is in its typed table, with the same late flag.
    for kind in EventKind::ALL {
        let raw = db
            .raw
            .values()
            .filter(|r| r.event_type == kind.wire_name())
            .count() as i64;
        assert_eq!(
            db.typed[kind.table()],
            raw,
            "{ctx}: rows in {}",
            kind.table()
        );
    }
    assert!(
        db.typed_late == late,
        "{ctx}: late flags of the typed tables: {}",
        diff(&db.typed_late, &late)
    );

    // Late: exactly the events of the late faults, their (table, day) partitions dirty.
    let late_promised = ids_of(truth.iter().filter(|r| r.expected == "late"));
    assert!(
        late == late_promised,
        "{ctx}: late events: {}",
        diff(&late, &late_promised)
    );
    let mut dirty: BTreeMap<(String, chrono::NaiveDate), i64> = BTreeMap::new();
    for id in &late_promised {
        let ev = &run.clean[id];
        *dirty
            .entry((ev.kind().table().to_string(), ev.occurred_at.date_naive()))
            .or_default() += 1;
    }
    assert_eq!(db.dirty, dirty, "{ctx}: dirty partitions");

    // Duplicates: exactly the events of the duplicate faults.
    let dup_records: Vec<&InjectionRecord> = truth
        .iter()
        .filter(|r| r.expected == "deduplicated")
        .collect();
    let duplicated: HashSet<String> = db
        .raw
        .values()
        .filter(|r| r.duplicate_count > 0)
        .map(|r| r.event_id.clone())
        .collect();
    let dup_promised = ids_of(dup_records.iter().copied());
    assert!(
        duplicated == dup_promised,
        "{ctx}: duplicated events: {}",
        diff(&duplicated, &dup_promised)
    );
    let extra: u64 = dup_records.iter().map(|r| r.affected_count).sum();
    assert_eq!(dup_total as u64, extra, "{ctx}: duplicate copies");
}

fn check_quarantined(reason: &str, r: &InjectionRecord, db: &Snapshot, ctx: &str) {
    let want: HashSet<String> = r.affected_event_ids.iter().cloned().collect();
    let got: HashSet<String> = db
        .quarantine
        .iter()
        .filter(|q| q.reason == reason)
        .filter_map(|q| q.event_id.clone())
        .collect();
    assert!(
        got == want,
        "{ctx}: quarantined as {reason}: {}",
        diff(&got, &want)
    );
    for id in &want {
        assert!(
            !db.raw.contains_key(id),
            "{ctx}: quarantined {id} also stored"
        );
    }
}

fn check_late(run: &Run, r: &InjectionRecord, db: &Snapshot, ctx: &str) {
    for id in &r.affected_event_ids {
        let row = db
            .raw
            .get(id)
            .unwrap_or_else(|| panic!("{ctx}: late event {id} not stored"));
        assert!(row.is_late, "{ctx}: {id} not flagged late");
        assert!(
            db.typed_late.contains(id),
            "{ctx}: {id} not late in its table"
        );
        let ev = &run.clean[id];
        let partition = (ev.kind().table().to_string(), ev.occurred_at.date_naive());
        assert!(
            db.dirty.get(&partition).is_some_and(|n| *n > 0),
            "{ctx}: {partition:?} not dirty for {id}"
        );
    }
}

fn check_deduplicated(r: &InjectionRecord, db: &Snapshot, ctx: &str) {
    let copies = r.params["copies"].as_u64().expect("copies") as i32;
    let mut total = 0u64;
    for id in &r.affected_event_ids {
        let row = db
            .raw
            .get(id)
            .unwrap_or_else(|| panic!("{ctx}: duplicated event {id} not stored"));
        assert_eq!(row.duplicate_count, copies, "{ctx}: {id}");
        assert!(!row.is_late, "{ctx}: {id}");
        total += row.duplicate_count as u64;
    }
    assert_eq!(total, r.affected_count, "{ctx}: duplicates counted");
}

fn check_dropped(r: &InjectionRecord, db: &Snapshot, ctx: &str) {
    let quarantined = db.quarantined_ids();
    for id in &r.affected_event_ids {
        assert!(!db.raw.contains_key(id), "{ctx}: dropped {id} stored");
        assert!(!quarantined.contains(id), "{ctx}: dropped {id} quarantined");
    }
}

fn check_job(run: &Run, index: usize, r: &InjectionRecord, db: &Snapshot, ctx: &str) {
    assert!(r.kind.targets_job(), "{ctx}");
    assert_eq!(r.affected_count, 0, "{ctx}: a job fault affects no event");
    assert!(r.affected_event_ids.is_empty(), "{ctx}");
    assert_eq!(run.original.faults[index].target.name(), r.target, "{ctx}");
    // The recorded parameters are the ones the file sets.
    let params = r.params.as_object().expect("params is an object");
    assert!(!params.is_empty(), "{ctx}: job parameters recorded");
    for (key, value) in params {
        let written = format!("{key} = {value}");
        assert!(
            run.file_text.contains(&written),
            "{ctx}: parameter `{written}` is not in the scenario file"
        );
    }
    // Nothing else is affected.
    assert!(db.quarantine.is_empty(), "{ctx}: nothing quarantined");
    assert_eq!(
        db.raw.len(),
        run.clean.len(),
        "{ctx}: the clean run is stored"
    );
    assert_eq!(
        run.messages.len(),
        run.clean.len(),
        "{ctx}: nothing sent extra"
    );
}

async fn text_column(pool: &PgPool, table: &str, column: &str) -> HashMap<String, Option<String>> {
    sqlx::query_as::<_, (String, Option<String>)>(&format!(
        "SELECT event_id, {column} FROM {table}"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn check_stored(pool: &PgPool, run: &Run, r: &InjectionRecord, db: &Snapshot, ctx: &str) {
    let ids: HashSet<String> = r.affected_event_ids.iter().cloned().collect();
    for id in &ids {
        let row = db
            .raw
            .get(id)
            .unwrap_or_else(|| panic!("{ctx}: {id} not stored"));
        assert!(!row.is_late && row.duplicate_count == 0, "{ctx}: {id}");
    }
    let target = EventKind::from_target_name(&r.target);
    match r.kind {
        FaultKind::ValueOutlier => {
            let kind = target.expect("an event target");
            let field = r.params["field"].as_str().expect("field");
            let factor = r.params["factor"].as_f64().expect("factor");
            let (table, column) = column(kind, field);
            let stored: HashMap<String, Option<i64>> = sqlx::query_as::<_, (String, Option<i64>)>(
                &format!("SELECT event_id, {column}::int8 FROM {table}"),
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
            let (low, high) = if field == "quantity" {
                (1.0, 10_000.0)
            } else {
                (0.0, 9.0e13)
            };
            for (id, value) in &stored {
                let clean = numeric(&run.clean[id], field);
                if !ids.contains(id) {
                    assert_eq!(*value, clean, "{ctx}: untouched {id}.{field}");
                    continue;
                }
                let (clean, value) = (clean.expect("a value"), value.expect("a value"));
                let want = (clean as f64 * factor).round().clamp(low, high) as i64;
                assert!(
                    (value - want).abs() <= 1,
                    "{ctx}: {id}.{field} = {value}, clean {clean} × {factor} = {want}"
                );
                if clean > 0 {
                    assert_ne!(value, clean, "{ctx}: {id}.{field} unchanged");
                }
            }
            for id in &ids {
                assert!(stored.contains_key(id), "{ctx}: {id} not in {table}");
            }
        }
        FaultKind::DistributionShift => {
            let kind = target.expect("an event target");
            let field = r.params["field"].as_str().expect("field");
            let to = r.params["to"].as_str().expect("to");
            let (table, column) = column(kind, field);
            let stored = text_column(pool, table, column).await;
            let (mut stored_to, mut clean_to, mut changed) = (0, 0, 0);
            for (id, value) in &stored {
                let ev = &run.clean[id];
                let clean = text(ev, field);
                if ids.contains(id) {
                    assert_eq!(value.as_deref(), Some(to), "{ctx}: {id}.{field}");
                    changed += u32::from(clean.as_deref() != Some(to));
                } else {
                    assert_eq!(*value, clean, "{ctx}: untouched {id}.{field}");
                }
                if ev.occurred_at >= r.window_start && ev.occurred_at < r.window_end {
                    stored_to += u32::from(value.as_deref() == Some(to));
                    clean_to += u32::from(clean.as_deref() == Some(to));
                }
            }
            for id in &ids {
                assert!(stored.contains_key(id), "{ctx}: {id} not in {table}");
            }
            assert!(changed > 0, "{ctx}: the shift changed nothing");
            assert_eq!(stored_to, clean_to + changed, "{ctx}: {to} in the window");
        }
        FaultKind::OrphanReference => {
            assert_eq!(
                target,
                Some(EventKind::PaymentProcessed),
                "{ctx}: extend the test"
            );
            let orphans: HashSet<String> = sqlx::query_scalar(
                "SELECT p.event_id FROM payments p
                 WHERE p.order_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = p.order_id)",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
            assert!(
                orphans == ids,
                "{ctx}: payments referencing no order: {}",
                diff(&orphans, &ids)
            );
            let clean_orders: HashSet<&str> = run
                .clean
                .values()
                .filter_map(|e| match &e.body {
                    EventBody::Order { order_id, .. } => Some(order_id.as_str()),
                    _ => None,
                })
                .collect();
            let stored = text_column(pool, "payments", "order_id").await;
            for (id, order_id) in &stored {
                let EventBody::Payment {
                    order_id: clean, ..
                } = &run.clean[id].body
                else {
                    panic!("{ctx}: {id} is not a payment");
                };
                if ids.contains(id) {
                    let order_id = order_id.as_deref().expect("an orphan has a reference");
                    assert!(
                        !clean_orders.contains(order_id),
                        "{ctx}: {id} references a real order"
                    );
                } else {
                    assert_eq!(order_id, clean, "{ctx}: untouched {id}");
                }
            }
        }
        FaultKind::VolumeSpike => {
            for id in &ids {
                let row = &db.raw[id];
                if let Some(kind) = target {
                    assert_eq!(row.event_type, kind.wire_name(), "{ctx}: {id}");
                }
                assert!(
                    row.occurred_at >= r.window_start
                        && row.occurred_at <= r.window_end + SPIKE_SPREAD,
                    "{ctx}: spike event {id} at {}",
                    row.occurred_at
                );
            }
            for kind in EventKind::ALL {
                let clean = run.clean.values().filter(|e| e.kind() == kind).count() as i64;
                let extra = ids
                    .iter()
                    .filter(|id| db.raw[*id].event_type == kind.wire_name())
                    .count() as i64;
                assert_eq!(
                    db.typed[kind.table()],
                    clean + extra,
                    "{ctx}: {} holds the clean run and the spike",
                    kind.table()
                );
                if target == Some(kind) {
                    assert_eq!(extra as u64, r.affected_count, "{ctx}");
                }
            }
        }
        other => panic!("{ctx}: no check for stored {other}"),
    }
}
