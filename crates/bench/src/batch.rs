//! `heal bench batch`: builds N simulated days in a fresh database on the PostgreSQL server,
//! then measures, in one run, a full recompute of every job, and the incremental run after
//! late data for one day arrives (the full recompute is the reference). Reports the ratio
//! (goal: incremental ≤ 1/10 of full) and rows/s per job.

use super::progress::{phase, Progress};
use super::{on_server, Server};
use anyhow::bail;
use clap::Args;
use heal_batch::{Engine, Selection, Trigger};
use heal_clikit::output::{count, table};
use heal_clikit::{Global, OutputFormat};
use heal_generator::{GeneratedEvent, Generator, Scenario};
use heal_ingest::{Incoming, Ingestor, Settings, Source};
use heal_model::EventKind;
use serde::Serialize;
use std::process::ExitCode;
use std::time::Instant;

/// Goal: the incremental run after one late day takes at most this share of a full recompute.
const RATIO_GOAL: f64 = 0.1;

#[derive(Debug, Args)]
pub struct BatchBenchArgs {
    /// Simulated days to build.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Events per simulated day.
    #[arg(long, default_value_t = 105_000.0)]
    pub events_per_day: f64,
    /// Share of the middle day's orders and payments held back and sent late.
    #[arg(long, default_value_t = 0.05)]
    pub late_share: f64,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Serialize)]
struct JobTiming {
    job: String,
    partitions: usize,
    rows_read: i64,
    rows_written: i64,
    secs: f64,
    rows_read_per_sec: f64,
}

#[derive(Debug, Serialize)]
struct BatchReport {
    days: u32,
    events: u64,
    late_events: u64,
    late_day: chrono::NaiveDate,
    server_version: Option<String>,
    full_secs: f64,
    incremental_secs: f64,
    ratio: f64,
    ratio_goal: f64,
    goal_met: bool,
    full: Vec<JobTiming>,
    incremental: Vec<JobTiming>,
    incremental_partitions: Vec<String>,
}

pub async fn run(global: &Global, args: BatchBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.days >= 3, "--days must be at least 3");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.late_share) && args.late_share > 0.0,
        "--late-share must be in (0, 1]"
    );
    let quiet = Some("warn,sqlx::query=error");
    let bench = async |config: &heal_config::Config, server: &mut Server| {
        measure(&args, config, server).await
    };
    on_server(global, "heal bench batch", quiet, args.output, bench, print).await?;
    Ok(ExitCode::SUCCESS)
}

fn source() -> Source {
    Source::Topic {
        group: "bench-batch".into(),
        topic: "raw-events".into(),
    }
}

async fn send(
    ingestor: &Ingestor,
    chunk: &[GeneratedEvent],
    offset: &mut i64,
) -> anyhow::Result<()> {
    let items = chunk
        .iter()
        .map(|e| {
            *offset += 1;
            Incoming {
                partition: Some(0),
                offset: Some(*offset - 1),
                payload: e.payload.clone(),
                produced_at: Some(e.produced_at),
            }
        })
        .collect();
    ingestor.ingest(&source(), items).await?;
    Ok(())
}

async fn timed(
    engine: &Engine,
    trigger: Trigger,
    sel: Selection,
) -> anyhow::Result<(Vec<JobTiming>, Vec<String>)> {
    let mut out = Vec::new();
    let mut partitions = Vec::new();
    let names: Vec<&str> = engine.dag().ordered().map(|j| j.name).collect();
    for name in names {
        let started = Instant::now();
        let report = engine.run(&[name], trigger, sel).await?;
        let secs = started.elapsed().as_secs_f64();
        if report.failed() > 0 {
            bail!(
                "{name} failed: {:?}",
                report.runs.iter().find(|r| !r.succeeded)
            );
        }
        let rows_read: i64 = report.runs.iter().map(|r| r.rows_read).sum();
        partitions.extend(report.runs.iter().map(|r| format!("{} {}", r.job, r.day)));
        out.push(JobTiming {
            job: name.to_string(),
            partitions: report.runs.len(),
            rows_read,
            rows_written: report.runs.iter().map(|r| r.rows_written).sum(),
            secs,
            rows_read_per_sec: if secs > 0.0 {
                rows_read as f64 / secs
            } else {
                0.0
            },
        });
    }
    Ok((out, partitions))
}

async fn measure(
    args: &BatchBenchArgs,
    config: &heal_config::Config,
    server: &mut Server,
) -> anyhow::Result<BatchReport> {
    let name = format!(
        "heal_bench_batch_{}_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    );
    let (_, db) = server.create(&name).await?;
    let pool = db.pool().clone();
    let start: chrono::DateTime<chrono::Utc> = "2026-01-01T00:00:00Z".parse()?;
    let scenario = Scenario::clean(
        "bench-batch",
        7,
        start,
        f64::from(args.days),
        args.events_per_day,
    );
    let late_day = (start + chrono::Duration::days(i64::from(args.days / 2))).date_naive();
    let every = (1.0 / args.late_share).round().max(1.0) as u64;

    phase(&format!(
        "building {} simulated days (~{} events) in database {name}",
        args.days,
        count((f64::from(args.days) * args.events_per_day) as i64)
    ));
    let ingestor = Ingestor::new(pool.clone(), Settings::default()).await?;
    let expected = (f64::from(args.days) * args.events_per_day) as u64;
    let mut progress = Progress::new("ingest", expected);
    let mut offset = 0i64;
    let mut late = Vec::new();
    let mut chunk = Vec::with_capacity(5000);
    let mut n = 0u64;
    let mut seen_on_late_day = 0u64;
    for e in Generator::new(&scenario) {
        n += 1;
        if matches!(e.kind, EventKind::OrderPlaced | EventKind::PaymentProcessed)
            && e.produced_at.date_naive() == late_day
        {
            seen_on_late_day += 1;
            if seen_on_late_day.is_multiple_of(every) {
                late.push(e);
                continue;
            }
        }
        chunk.push(e);
        if chunk.len() == 5000 {
            send(&ingestor, &chunk, &mut offset).await?;
            chunk.clear();
            progress.set(n, expected);
        }
    }
    send(&ingestor, &chunk, &mut offset).await?;
    progress.finish();
    sqlx::query("ANALYZE").execute(&pool).await?;

    let settings = heal_server::batch_settings(config);
    let engine = Engine::new(pool.clone(), None, settings)?;
    phase("full recompute of every job over every day");
    let full_started = Instant::now();
    let (full, _) = timed(
        &engine,
        Trigger::Backfill,
        Selection {
            force: true,
            ..Selection::default()
        },
    )
    .await?;
    let full_secs = full_started.elapsed().as_secs_f64();

    phase(&format!(
        "{} late orders and payments for {late_day} arrive",
        count(late.len() as i64)
    ));
    for c in late.chunks(5000) {
        send(&ingestor, c, &mut offset).await?;
    }
    phase("incremental run");
    let inc_started = Instant::now();
    let (incremental, partitions) = timed(&engine, Trigger::Schedule, Selection::default()).await?;
    let incremental_secs = inc_started.elapsed().as_secs_f64();
    let server_version: Option<String> = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .ok();
    db.close().await;
    server.drop_database(&name).await?;
    let ratio = incremental_secs / full_secs;
    Ok(BatchReport {
        days: args.days,
        events: n,
        late_events: late.len() as u64,
        late_day,
        server_version,
        full_secs,
        incremental_secs,
        ratio,
        ratio_goal: RATIO_GOAL,
        goal_met: ratio <= RATIO_GOAL,
        full,
        incremental,
        incremental_partitions: partitions,
    })
}

fn print(r: &BatchReport) {
    println!(
        "\n{} simulated days, {} events; {} late events for {} (PostgreSQL {})\n",
        r.days,
        count(r.events as i64),
        count(r.late_events as i64),
        r.late_day,
        r.server_version.as_deref().unwrap_or("?")
    );
    let mut t = table(&[
        "job",
        "full: partitions",
        "full: s",
        "full: rows read/s",
        "incr.: partitions",
        "incr.: s",
    ]);
    for (f, i) in r.full.iter().zip(&r.incremental) {
        t.add_row(vec![
            f.job.clone(),
            f.partitions.to_string(),
            format!("{:.2}", f.secs),
            count(f.rows_read_per_sec as i64),
            i.partitions.to_string(),
            format!("{:.3}", i.secs),
        ]);
    }
    println!("{t}");
    println!(
        "full recompute {:.1} s, incremental {:.2} s: ratio {:.3} (goal ≤ {}: {})",
        r.full_secs,
        r.incremental_secs,
        r.ratio,
        r.ratio_goal,
        if r.goal_met { "met" } else { "NOT met" }
    );
    println!("recomputed: {}", r.incremental_partitions.join(", "));
}
