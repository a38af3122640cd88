//! The generator against the outside world: publishing a scenario's events to the
//! `raw-events` topic (or writing them as NDJSON), the real-time generator role, and what it
//! declares to lineage. (The ground truth of a run goes to `heal_store::faults`.)

use crate::{GeneratedEvent, Generator, InjectionRecord, Scenario, SchemaMix};
use chrono::Utc;
use heal_bus::{Bus, Record};
use heal_model::topics;
use sqlx::PgPool;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Events per bus call.
const CHUNK: usize = 2000;

fn record(ev: GeneratedEvent) -> Record {
    Record {
        key: ev.key.into_bytes(),
        payload: ev.payload,
        timestamp_ms: ev.produced_at.timestamp_millis(),
    }
}

/// The ground truth `scenario` produces, without publishing it (the generator is
/// deterministic, so publishing it later produces the same). A scenario with job faults needs
/// it recorded before its events go out: a batch role already running may otherwise compute
/// the days a fault targets before the fault is known, and never meet it.
pub fn dry_run(scenario: &Scenario) -> Vec<InjectionRecord> {
    let mut generator = Generator::new(scenario);
    generator.by_ref().for_each(drop);
    generator.ground_truth()
}

/// Whether `scenario`'s ground truth must be recorded before its events are published (see
/// [`dry_run`]).
pub fn truth_first(scenario: &Scenario) -> bool {
    scenario.faults.iter().any(|f| f.kind.targets_job())
}

/// Publishes every event of `scenario` to `raw-events`, calling `progress(sent, expected)`
/// after each chunk. Returns the number sent and the ground truth.
pub async fn publish_scenario(
    bus: &Bus,
    scenario: &Scenario,
    mut progress: impl FnMut(u64, u64),
) -> Result<(u64, Vec<InjectionRecord>), heal_bus::Error> {
    let mut generator = Generator::new(scenario);
    let expected = generator.expected_events();
    let mut sent = 0u64;
    loop {
        let chunk: Vec<Record> = generator.by_ref().take(CHUNK).map(record).collect();
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len() as u64;
        bus.send(topics::RAW_EVENTS, chunk).await?;
        sent += n;
        metrics::counter!("heal_generator_events_sent_total").increment(n);
        progress(sent, expected.max(sent));
    }
    Ok((sent, generator.ground_truth()))
}

/// Writes every event of `scenario` as one JSON line each (the payload bytes as produced,
/// corrupt ones included). Returns the number written and the ground truth.
pub fn write_scenario(
    scenario: &Scenario,
    out: &mut dyn Write,
) -> std::io::Result<(u64, Vec<InjectionRecord>)> {
    let mut generator = Generator::new(scenario);
    let mut n = 0u64;
    for ev in generator.by_ref() {
        out.write_all(&ev.payload)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok((n, generator.ground_truth()))
}

/// Live counters of the real-time generator role.
#[derive(Debug, Default)]
pub struct GeneratorStatus {
    pub sent: AtomicU64,
    pub errors: AtomicU64,
}

/// The generator role: an open-ended simulation paced against the wall clock.
pub async fn run_realtime(
    bus: Bus,
    seed: u64,
    events_per_second: f64,
    mix: SchemaMix,
    status: Arc<GeneratorStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut generator = Generator::realtime(seed, events_per_second, Utc::now(), mix).peekable();
    loop {
        let now = Utc::now();
        let mut due = Vec::new();
        while let Some(ev) = generator.next_if(|ev| ev.produced_at <= now) {
            due.push(record(ev));
            if due.len() >= CHUNK {
                break;
            }
        }
        if !due.is_empty() {
            let n = due.len() as u64;
            match bus.send(topics::RAW_EVENTS, due).await {
                Ok(()) => {
                    status.sent.fetch_add(n, Ordering::Relaxed);
                    metrics::counter!("heal_generator_events_sent_total").increment(n);
                }
                Err(e) => {
                    status.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "publishing generated events failed");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    tracing::info!(
        sent = status.sent.load(Ordering::Relaxed),
        "generator stopped"
    );
}

/// Declares the generator to lineage: the job `generator` producing the events topic.
pub async fn announce(pool: &PgPool, bootstrap: Option<&str>) -> Result<(), sqlx::Error> {
    use heal_model::openlineage as ol;
    let producer = ol::producer("generator");
    let at = heal_model::openlineage::declaration_time(Utc::now());
    let job = serde_json::json!({
        "namespace": ol::JOB_NAMESPACE,
        "name": "generator",
        "facets": {
            "jobType": ol::job_type_facet(&producer, "STREAMING", "JOB"),
            "documentation": ol::documentation_facet(
                &producer,
                "Simulates e-commerce traffic (signups, sessions, views, carts, orders, payments, refunds) with optional injected faults.",
            ),
        },
    });
    let topic = ol::topic_dataset(&producer, bootstrap, topics::RAW_EVENTS);
    let event = ol::job_event(&producer, at, job, vec![], vec![topic]);
    heal_store::lineage_log::record(pool, "generator", &event).await?;
    Ok(())
}
