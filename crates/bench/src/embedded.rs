//! The embedded path, in this process: a temporary embedded PostgreSQL, the in-process bus,
//! the ingest consumer on a task, and the generator publishing the scenario into the bus
//! while it runs (the bus is bounded, so memory stays bounded). The peak RSS is this
//! process's, reset before the phase.

use super::progress::Progress;
use super::sys;
use super::Counts;
use anyhow::Context;
use heal_bus::Bus;
use heal_generator::Scenario;
use heal_ingest::{run_consumer, ConsumerStats, Ingestor, Settings};
use heal_model::topics;
use heal_store::Database;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the embedded path did.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddedRun {
    pub events: u64,
    /// Start of generation and ingestion to every event stored.
    pub secs: f64,
    /// Starting the engine and migrating (not in `secs`).
    pub engine_start_secs: f64,
    /// Peak RSS of this process during the phase, engine included.
    pub peak_rss_kb: Option<u64>,
    /// RSS when the phase started (what the process held before).
    pub rss_before_kb: Option<u64>,
    /// Whether the peak could be reset before the phase.
    pub peak_reset: bool,
    /// CPU seconds of this process (generator, consumer and engine) during `secs`.
    pub cpu_secs: Option<f64>,
    pub counts: Counts,
}

/// Starts a temporary embedded database and migrates it; returns it with the seconds taken.
pub async fn start_engine() -> anyhow::Result<(Database, f64)> {
    let started = Instant::now();
    let db = Database::embedded(None)
        .await
        .context("starting the embedded PostgreSQL")?;
    db.migrate()
        .await
        .context("migrating the embedded database")?;
    Ok((db, started.elapsed().as_secs_f64()))
}

pub async fn run(
    settings: Settings,
    scenario: &Scenario,
    partitions: i32,
    mut progress: Progress,
) -> anyhow::Result<EmbeddedRun> {
    let peak_reset = sys::reset_peak_rss();
    let rss_before_kb = sys::rss_kb(None);
    let (db, engine_start_secs) = start_engine().await?;
    let bus = Bus::new(None)?;
    bus.create_topics(&[topics::RAW_EVENTS], partitions, 1)
        .await?;
    let group = "heal-bench-ingest".to_string();
    let consumer = bus.consumer(&group, topics::RAW_EVENTS)?;
    let ingestor = Arc::new(Ingestor::new(db.pool().clone(), settings).await?);
    let stats = Arc::new(ConsumerStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cpu_before = sys::cpu_secs(None);
    let started = Instant::now();
    let mut task = tokio::spawn(run_consumer(
        ingestor,
        consumer,
        None,
        group,
        topics::RAW_EVENTS.to_string(),
        stats.clone(),
        stop_rx,
    ));
    let publish = heal_generator::role::publish_scenario(&bus, scenario, |sent, expected| {
        progress.set(stats.messages.load(Ordering::Relaxed).min(sent), expected);
    });
    let (sent, _) = tokio::select! {
        published = publish => published.context("publishing to the in-process bus")?,
        ended = &mut task => anyhow::bail!("the ingest consumer stopped early: {:?}", ended),
    };
    loop {
        let stored = stats.messages.load(Ordering::Relaxed);
        progress.set(stored, sent);
        if stored >= sent {
            break;
        }
        if task.is_finished() {
            let ended = (&mut task).await;
            anyhow::bail!("the ingest consumer stopped early: {ended:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_secs = match (cpu_before, sys::cpu_secs(None)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let peak_rss_kb = sys::peak_rss_kb(None);
    progress.finish();
    let _ = stop_tx.send(true);
    task.await
        .context("the ingest consumer panicked")?
        .context("the ingest consumer failed")?;
    let counts = Counts::read(db.pool()).await?;
    db.close().await;
    Ok(EmbeddedRun {
        events: sent,
        secs,
        engine_start_secs,
        peak_rss_kb,
        rss_before_kb,
        peak_reset,
        cpu_secs,
        counts,
    })
}
