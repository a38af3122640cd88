use super::*;
use crate::topology::tests::platform;
use heal_model::quality::{Severity, FAILURE_EVENT_SCHEMA};
use serde_json::json;

fn at(h: i64) -> DateTime<Utc> {
    "2026-03-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h)
}

struct F {
    next: i64,
}

impl F {
    fn event(
        &mut self,
        check: &str,
        check_type: &str,
        dataset: &str,
        from_h: i64,
        to_h: i64,
    ) -> FailureEvent {
        self.next += 1;
        FailureEvent {
            schema: FAILURE_EVENT_SCHEMA.into(),
            event_id: format!("e{}", self.next),
            emitted_at: Utc::now(),
            change: ConditionChange::Opened,
            condition_id: self.next,
            check: check.into(),
            check_type: check_type.into(),
            dataset: dataset.into(),
            column: None,
            subject: dataset.into(),
            severity: Severity::Medium,
            observed: None,
            expected: None,
            lower: None,
            upper: None,
            threshold: String::new(),
            window_start: at(from_h),
            window_end: at(to_h),
            partition: None,
            run_id: None,
            message: format!("{check} failed"),
            sample: vec![],
            first_seen: Utc::now(),
            last_seen: Utc::now(),
            occurrences: 1,
            data_start: Some(at(from_h)),
            data_end: Some(at(to_h)),
            detail: json!({}),
        }
    }

    fn refused(
        &mut self,
        dataset: &str,
        reason: &str,
        n: i64,
        from_h: i64,
        to_h: i64,
    ) -> FailureEvent {
        let mut e = self.event(
            &format!("{dataset}_schema"),
            "schema",
            dataset,
            from_h,
            to_h,
        );
        e.observed = Some(n as f64);
        e.threshold = "refused payloads ≤ 0".into();
        e.message = format!("{n} payloads refused ({reason}: {n})");
        e.detail = json!({ "by_reason": { reason: n } });
        e.sample = vec![
            json!({ "quarantine_id": 7, "event_id": "ev-1", "reason": reason,
            "detail": "required field `amount` is missing and unknown field(s) `amount_cents` appeared" }),
        ];
        e
    }

    fn volume(&mut self, dataset: &str, observed: f64, expected: f64, from_h: i64) -> FailureEvent {
        let mut e = self.event(
            &format!("{dataset}_volume"),
            "volume",
            dataset,
            from_h,
            from_h + 1,
        );
        e.observed = Some(observed);
        e.expected = Some(expected);
        e.lower = Some(expected * 0.7);
        e.upper = Some(expected * 1.3);
        e
    }

    fn job_failed(&mut self, job: &str, from_h: i64) -> FailureEvent {
        let mut e = self.event("pipeline_health", "pipeline", job, from_h, from_h + 24);
        e.subject = job.into();
        e.message = format!("{job} failed for 2026-03-02 after 3 attempts: injected job_failure");
        e.sample =
            vec![json!({ "run_id": "r1", "day": "2026-03-02", "status": "failed", "attempts": 3 })];
        e
    }
}

fn engine() -> Engine {
    Engine::new(Settings::default(), Arc::new(Topology::new(platform())))
}

fn feed(engine: &mut Engine, events: &[FailureEvent]) -> Vec<IncidentMessage> {
    let mut out = Vec::new();
    for e in events {
        out.extend(engine.ingest(e));
    }
    out.extend(engine.flush());
    out
}

fn opened(msgs: &[IncidentMessage]) -> Vec<&Incident> {
    msgs.iter()
        .filter(|m| m.change == IncidentChange::Opened)
        .map(|m| &m.incident)
        .collect()
}

fn latest<'a>(engine: &'a Engine, id: &str) -> &'a Incident {
    engine
        .incidents()
        .into_iter()
        .find(|i| i.id == id)
        .expect("held")
}

#[test]
fn a_cascade_across_lineage_is_one_incident_rooted_at_its_source() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let mut rate = f.event("pipeline_health", "pipeline", "quarantine", 15, 20);
    rate.subject = "ingest".into();
    rate.observed = Some(0.08);
    let mut recon = f.event(
        "stg_payments_reconcile",
        "reconciliation",
        "stg_payments",
        0,
        24,
    );
    recon.observed = Some(0.9);
    let events = vec![
        f.refused("payments", "schema_drift", 1200, 15, 16),
        rate,
        f.refused("payments", "schema_drift", 900, 16, 20),
        recon,
        f.volume("daily_revenue", 10.0, 40.0, 17),
    ];
    let msgs = feed(&mut e, &events);
    let inc = opened(&msgs);
    assert_eq!(
        inc.len(),
        1,
        "{:#?}",
        inc.iter().map(|i| &i.title).collect::<Vec<_>>()
    );
    let held = latest(&e, &inc[0].id);
    assert_eq!(held.symptoms.len(), 5, "every failure joined");
    assert_eq!(held.failure_events, 5);
    let top = &held.root_causes[0];
    assert_eq!(top.node.name, "payments");
    assert_eq!(top.class, IncidentClass::SchemaDrift);
    assert!(top.grounded);
    let to_revenue = top
        .paths
        .iter()
        .find(|p| p.node.name == "daily_revenue")
        .unwrap();
    assert_eq!(to_revenue.steps.len(), 4);
    assert_eq!(held.classification.class, IncidentClass::SchemaDrift);
    // The replay carries the rename read from the refused payloads.
    match &held.recommendations[0].action {
        heal_model::incident::Action::ReplayQuarantine { mapping, .. } => {
            assert_eq!(
                mapping,
                &vec![("amount_cents".to_string(), "amount".to_string())]
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(held.affected.iter().any(|a| a.node.kind == "kpi"));
}

#[test]
fn two_unrelated_faults_at_the_same_time_stay_two() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let mut late = f.event("orders_on_time", "validity", "orders", 10, 11);
    late.column = Some("is_late".into());
    let events = vec![
        f.refused("payments", "schema_drift", 500, 10, 11),
        f.volume("sessions", 100.0, 1000.0, 10),
        late,
        f.refused("payments", "schema_drift", 400, 11, 12),
        f.volume("sessions", 120.0, 1000.0, 11),
    ];
    let msgs = feed(&mut e, &events);
    let inc = opened(&msgs);
    assert_eq!(
        inc.len(),
        3,
        "payments, sessions and orders are three problems"
    );
    let mut roots: Vec<(String, IncidentClass)> = inc
        .iter()
        .map(|i| {
            let h = latest(&e, &i.id);
            (h.root_causes[0].node.name.clone(), h.classification.class)
        })
        .collect();
    roots.sort();
    assert_eq!(
        roots,
        vec![
            ("orders".to_string(), IncidentClass::LateData),
            ("payments".to_string(), IncidentClass::SchemaDrift),
            ("sessions".to_string(), IncidentClass::VolumeAnomaly),
        ]
    );
}

#[test]
fn a_drop_of_every_stream_is_one_incident_at_the_source() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let events = vec![
        f.volume("raw_events", 1000.0, 5000.0, 8),
        f.volume("sessions", 100.0, 900.0, 8),
        f.volume("product_views", 300.0, 2000.0, 8),
        f.volume("sessions", 90.0, 900.0, 9),
    ];
    let msgs = feed(&mut e, &events);
    let inc = opened(&msgs);
    assert_eq!(inc.len(), 1);
    let h = latest(&e, &inc[0].id);
    assert_eq!(h.classification.class, IncidentClass::VolumeAnomaly);
    assert_eq!(h.root_causes[0].node.name, "raw-events");
    assert_eq!(h.root_causes[0].node.kind, "stream");
    assert!(h.root_causes[0].grounded);
    // Both sibling tables are single-stream candidates that cannot explain the other one.
    assert!(h
        .root_causes
        .iter()
        .skip(1)
        .all(|c| c.score <= h.root_causes[0].score || !c.grounded));
}

#[test]
fn a_failed_job_is_the_root_of_its_downstream_symptoms() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let mut recon = f.event(
        "stg_orders_reconcile",
        "reconciliation",
        "stg_orders",
        0,
        24,
    );
    recon.observed = Some(0.0);
    let events = vec![f.job_failed("stg_orders", 0), recon];
    let msgs = feed(&mut e, &events);
    let inc = opened(&msgs);
    assert_eq!(inc.len(), 1);
    let h = latest(&e, &inc[0].id);
    assert_eq!(h.root_causes[0].node.kind, "job");
    assert_eq!(h.root_causes[0].node.name, "stg_orders");
    assert_eq!(h.classification.class, IncidentClass::PipelineFailure);
    match &h.recommendations[0].action {
        heal_model::incident::Action::RerunJob { job, partitions } => {
            assert_eq!(job, "stg_orders");
            assert_eq!(partitions, &vec!["2026-03-02".to_string()]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_recurrence_after_resolution_opens_a_linked_incident() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let first = f.refused("payments", "schema_drift", 500, 10, 11);
    let mut resolved = first.clone();
    resolved.change = ConditionChange::Resolved;
    resolved.data_start = Some(at(12));
    resolved.data_end = Some(at(13));
    let mut msgs = e.ingest(&first);
    msgs.extend(e.ingest(&resolved));
    // Still open: the quiet period has not passed.
    assert_eq!(e.open_count(), 1);
    msgs.extend(e.advance(at(20)));
    assert_eq!(e.open_count(), 0);
    let closed: Vec<&IncidentMessage> = msgs
        .iter()
        .filter(|m| m.change == IncidentChange::Resolved)
        .collect();
    assert_eq!(closed.len(), 1);
    let first_id = closed[0].incident.id.clone();
    // The same problem a day later: a new incident that points at the first.
    let again = f.refused("payments", "schema_drift", 300, 34, 35);
    let msgs = e.ingest(&again);
    let inc = opened(&msgs);
    assert_eq!(inc.len(), 1, "a resolved incident absorbs nothing");
    assert_ne!(inc[0].id, first_id);
    assert_eq!(inc[0].previous.as_deref(), Some(first_id.as_str()));
}

#[test]
fn the_explanation_carries_the_numbers_and_the_path() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let events = vec![
        f.refused("payments", "schema_drift", 1234, 15, 16),
        f.volume("daily_revenue", 12.0, 40.0, 17),
    ];
    let msgs = feed(&mut e, &events);
    let h = latest(&e, &opened(&msgs)[0].id);
    let text = &h.explanation.text;
    for needle in [
        "1234",
        "schema_drift ×1234",
        "observed 12 vs expected 40",
        "payments (dataset) -reads-> stg_payments (job)",
        "daily_revenue (dataset)",
        "KPIs at risk: revenue (critical)",
        "2026-03-02 15:00",
        "event_id=ev-1",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    assert!(h.explanation.runner_up.is_some(), "{text}");
}

#[test]
fn a_label_correction_changes_the_next_similar_decision() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let mut recon = f.event(
        "stg_orders_reconcile",
        "reconciliation",
        "stg_orders",
        0,
        24,
    );
    recon.observed = Some(0.5);
    recon.lower = Some(0.999);
    let msgs = feed(&mut e, std::slice::from_ref(&recon));
    let first = latest(&e, &opened(&msgs)[0].id).classification.clone();
    assert_ne!(first.class, IncidentClass::VolumeAnomaly);
    e.learn(first.features.clone(), IncidentClass::VolumeAnomaly);
    let mut again = f.event(
        "stg_orders_reconcile",
        "reconciliation",
        "stg_orders",
        48,
        72,
    );
    again.observed = Some(0.5);
    again.lower = Some(0.999);
    let msgs = feed(&mut e, &[again]);
    let second = &latest(&e, &opened(&msgs)[0].id).classification;
    assert_eq!(second.class, IncidentClass::VolumeAnomaly, "{second:?}");
}

#[test]
fn a_failure_outside_the_window_is_a_new_incident() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let events = vec![
        f.refused("payments", "schema_drift", 100, 1, 2),
        f.refused("payments", "schema_drift", 100, 30, 31),
    ];
    let msgs = feed(&mut e, &events);
    assert_eq!(opened(&msgs).len(), 2);
}

#[test]
fn a_failed_job_run_does_not_swallow_upstream_data_problems_of_its_day() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let mut late = f.event("orders_on_time", "validity", "orders", 6, 7);
    late.column = Some("is_late".into());
    let mut revenue = f.job_failed("daily_revenue", 0);
    revenue.dataset = "daily_revenue".into();
    let events = vec![
        revenue,
        late,
        f.refused("payments", "schema_drift", 300, 18, 19),
        // A sibling job's late run the next day is another problem too.
        {
            let mut d = f.job_failed("user_funnel", 24);
            d.sample = vec![
                json!({ "run_id": "r2", "day": "2026-03-03", "status": "succeeded", "delayed_secs": 7200.0 }),
            ];
            d.message = "user_funnel started 120 min late for 2026-03-03 (allowed 60 min)".into();
            d
        },
    ];
    let msgs = feed(&mut e, &events);
    let mut found: Vec<(String, IncidentClass)> = opened(&msgs)
        .iter()
        .map(|i| {
            let h = latest(&e, &i.id);
            (h.root_causes[0].node.name.clone(), h.classification.class)
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("daily_revenue".to_string(), IncidentClass::PipelineFailure),
            ("orders".to_string(), IncidentClass::LateData),
            ("payments".to_string(), IncidentClass::SchemaDrift),
            ("user_funnel".to_string(), IncidentClass::StaleData),
        ]
    );
}

#[test]
fn failures_seen_before_lineage_knew_their_nodes_are_placed_once_it_does() {
    let mut f = F { next: 0 };
    let mut e = Engine::new(Settings::default(), Arc::new(Topology::default()));
    let msgs = e.ingest(&f.refused("payments", "schema_drift", 10, 3, 4));
    assert_eq!(opened(&msgs).len(), 1);
    assert!(
        e.incidents()[0].root_causes.is_empty(),
        "no graph, no candidate"
    );
    let updated = e.set_topology(Arc::new(Topology::new(platform())));
    assert_eq!(updated.len(), 1, "ranked again on the new graph");
    assert_eq!(updated[0].incident.root_causes[0].node.name, "payments");
    let msgs = e.ingest(&f.volume("daily_revenue", 1.0, 40.0, 4));
    assert!(
        opened(&msgs).is_empty(),
        "joins through lineage once the graph is known"
    );
    let h = e.incidents()[0];
    assert_eq!(h.symptoms[0].node.key, "dataset:payments");
    assert_eq!(h.root_causes[0].node.name, "payments");
}

#[test]
fn orphans_point_at_the_late_parent_and_a_reopened_check_stays_in_its_incident() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let late = |f: &mut F, h: i64| {
        let mut l = f.event("orders_on_time", "validity", "orders", h, h + 1);
        l.column = Some("is_late".into());
        l.message = "30 of 200 rows break is_late in {false}".into();
        l
    };
    let orphans = |f: &mut F, h: i64| {
        let mut o = f.event(
            "payments_reference_orders",
            "referential",
            "payments",
            h,
            h + 1,
        );
        o.message = "6 of 11 order_id values have no orders.order_id".into();
        o
    };
    let first = orphans(&mut f, 8);
    let mut closed = first.clone();
    closed.change = ConditionChange::Resolved;
    closed.data_start = Some(at(9));
    closed.data_end = Some(at(10));
    let events = vec![
        first,
        late(&mut f, 8),
        closed,
        orphans(&mut f, 12),
        late(&mut f, 12),
    ];
    let mut msgs = Vec::new();
    for ev in &events {
        msgs.extend(e.ingest(ev));
    }
    let inc = opened(&msgs);
    assert_eq!(
        inc.len(),
        1,
        "one problem: late orders and the orphans they leave"
    );
    let h = latest(&e, &inc[0].id);
    assert_eq!(h.root_causes[0].node.name, "orders");
    assert!(h.root_causes[0].grounded, "{:?}", h.root_causes[0]);
    assert_eq!(h.classification.class, IncidentClass::LateData);
    let to_payments = h.root_causes[0]
        .paths
        .iter()
        .find(|p| p.node.name == "payments")
        .expect("a path to the orphans");
    assert_eq!(to_payments.steps.last().unwrap().edge, "references");
}

#[test]
fn a_shared_drop_too_big_for_its_one_stream_is_rooted_above_the_streams() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let mut orphans = f.event(
        "payments_reference_orders",
        "referential",
        "payments",
        10,
        11,
    );
    orphans.message = "5 of 5 order_id values have no orders.order_id".into();
    let events = vec![
        orphans,
        f.volume("raw_events", 89.0, 742.0, 10),
        f.volume("sessions", 10.0, 115.0, 10),
    ];
    let msgs = feed(&mut e, &events);
    let inc = opened(&msgs);
    assert_eq!(
        inc.len(),
        1,
        "the orphans of missing orders join the traffic drop"
    );
    let h = latest(&e, &inc[0].id);
    assert_eq!(
        h.root_causes[0].node.name, "raw-events",
        "{:#?}",
        h.root_causes
    );
    assert_eq!(h.classification.class, IncidentClass::VolumeAnomaly);
    // One stream that accounts for the shared drop is its own root.
    let mut e = engine();
    let events = vec![
        f.volume("raw_events", 600.0, 742.0, 10),
        f.volume("sessions", 10.0, 150.0, 10),
    ];
    let msgs = feed(&mut e, &events);
    let h = latest(&e, &opened(&msgs)[0].id);
    assert_eq!(h.root_causes[0].node.name, "sessions");
}

#[test]
fn a_resolution_dated_in_wall_time_neither_moves_the_clock_nor_delays_the_close() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let first = f.refused("product_views", "malformed_json", 20, 8, 10);
    let mut resolved = first.clone();
    resolved.change = ConditionChange::Resolved;
    // An incremental check that saw nothing: no data time, a wall-clock window.
    resolved.data_start = None;
    resolved.data_end = None;
    resolved.window_start = Utc::now();
    resolved.window_end = Utc::now();
    let mut msgs = e.ingest(&first);
    msgs.extend(e.ingest(&resolved));
    assert_eq!(e.open_count(), 1, "the wall clock did not close it");
    msgs.extend(e.advance(at(17)));
    assert_eq!(
        e.open_count(),
        0,
        "closed after the quiet period in data time"
    );
    let closed = e.incidents()[0].id.clone();
    let again = f.refused("product_views", "malformed_json", 20, 32, 34);
    let msgs = e.ingest(&again);
    assert_eq!(opened(&msgs)[0].previous.as_deref(), Some(closed.as_str()));
}

#[test]
fn a_store_outage_reported_by_ingest_is_an_infrastructure_incident_at_the_ingest_job() {
    use heal_model::pipeline::{PipelineEvent, PipelineStatus, STORAGE_UNAVAILABLE};
    let mut e = engine();
    let run = uuid::Uuid::new_v4();
    let mut down = PipelineEvent::new("ingest", at(9).date_naive(), run, PipelineStatus::Failed);
    down.reason = Some(STORAGE_UNAVAILABLE.into());
    down.attempt = 3;
    down.data_start = Some(at(9));
    down.data_end = Some(at(10));
    down.error = Some("the database cannot take writes (3 attempts): read-only".into());
    let failed = crate::symptom::from_pipeline(&down).expect("an outage is a failure");
    assert_eq!(failed.change, ConditionChange::Opened);
    // A job's own outcome is not converted: the quality role's checks report it.
    let own = PipelineEvent::new(
        "daily_revenue",
        at(9).date_naive(),
        run,
        PipelineStatus::Failed,
    );
    assert!(crate::symptom::from_pipeline(&own).is_none());

    let msgs = e.ingest(&failed);
    let inc = opened(&msgs);
    assert_eq!(inc.len(), 1);
    let id = inc[0].id.clone();
    let h = latest(&e, &id);
    assert_eq!(h.classification.class, IncidentClass::Infrastructure);
    assert_eq!(h.root_causes[0].node.key, "job:ingest");
    assert!(h.root_causes[0].grounded);
    assert_eq!(h.data_start, at(9));
    assert!(
        h.explanation.summary.contains("ingest"),
        "{}",
        h.explanation.summary
    );

    let mut up = down.clone();
    up.status = PipelineStatus::Succeeded;
    up.data_end = Some(at(10) + Duration::minutes(30));
    let resolved = crate::symptom::from_pipeline(&up).expect("the end too");
    assert_eq!(
        resolved.condition_id, failed.condition_id,
        "one condition per outage"
    );
    assert_eq!(resolved.change, ConditionChange::Resolved);
    e.ingest(&resolved);
    e.advance(at(20));
    let h = latest(&e, &id);
    assert_eq!(h.status, heal_model::incident::IncidentStatus::Resolved);
}

#[test]
fn refusals_during_a_store_outage_are_their_own_incident() {
    use heal_model::pipeline::{PipelineEvent, PipelineStatus, STORAGE_UNAVAILABLE};
    let mut f = F { next: 0 };
    let mut e = engine();
    let mut down = PipelineEvent::new(
        "ingest",
        at(10).date_naive(),
        uuid::Uuid::new_v4(),
        PipelineStatus::Failed,
    );
    down.reason = Some(STORAGE_UNAVAILABLE.into());
    down.data_start = Some(at(10));
    down.data_end = Some(at(12));
    let outage = crate::symptom::from_pipeline(&down).unwrap();
    let drift = f.refused("payments", "schema_drift", 300, 11, 12);
    let msgs = feed(&mut e, &[outage, drift]);
    let inc = opened(&msgs);
    assert_eq!(
        inc.len(),
        2,
        "{:?}",
        inc.iter().map(|i| &i.title).collect::<Vec<_>>()
    );
    let classes: HashSet<IncidentClass> = inc
        .iter()
        .map(|i| latest(&e, &i.id).classification.class)
        .collect();
    assert!(classes.contains(&IncidentClass::Infrastructure));
    assert!(classes.contains(&IncidentClass::SchemaDrift));
}

#[test]
fn a_corrected_root_cause_ranks_first_in_the_next_similar_incident() {
    let mut f = F { next: 0 };
    let mut e = engine();
    let msgs = feed(&mut e, &[f.volume("daily_revenue", 10.0, 40.0, 17)]);
    let first = latest(&e, &opened(&msgs)[0].id).clone();
    let top = &first.root_causes[0];
    let other = first.root_causes[1..]
        .iter()
        .find(|c| c.grounded == top.grounded)
        .expect("a second candidate to correct to");
    assert_ne!(top.node.key, other.node.key);
    let symptom_nodes: Vec<String> = first.symptoms.iter().map(|s| s.node.key.clone()).collect();
    e.record_root_cause(first.classification.class, &symptom_nodes, &other.node.key);

    // Two days later the same symptom: the operator's root cause comes first.
    let msgs = feed(&mut e, &[f.volume("daily_revenue", 10.0, 40.0, 65)]);
    let second = latest(&e, &opened(&msgs)[0].id);
    assert_eq!(
        second.root_causes[0].node.key, other.node.key,
        "{:#?}",
        second.root_causes
    );
    assert_eq!(second.root_causes[0].factors["confirmed"], 1.0);
    // A correction under another class teaches nothing here.
    let mut fresh = engine();
    let wrong = if first.classification.class == IncidentClass::LateData {
        IncidentClass::VolumeAnomaly
    } else {
        IncidentClass::LateData
    };
    fresh.record_root_cause(wrong, &symptom_nodes, &other.node.key);
    let msgs = feed(&mut fresh, &[f.volume("daily_revenue", 10.0, 40.0, 17)]);
    let same = latest(&fresh, &opened(&msgs)[0].id);
    assert_eq!(same.root_causes[0].node.key, top.node.key);
}
