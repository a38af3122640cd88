//! `heal bench quality`: how sensitive the shipped checks are, and what a check cycle costs.
//!
//! 1. Sensitivity: every fault kind's scenario file, at its own (high) intensity and at a low
//!    one (volume faults also sustained: an 18 % drop for 6 hours, a ×1.5 spike for 3 hours;
//!    and a halving or doubling for one hour), with four more days of clean history before the fault, ingested into a fresh
//!    database; one check cycle; was the fault caught by the check meant for it, on the right
//!    dataset, and how long after the fault began (simulated time) and after the data landed
//!    (the cycle's wall time).
//! 2. False alarms: clean traffic for `--clean-days`; conditions opened per simulated day
//!    judged.
//! 3. Cycle cost: `--cycle-days` × `--cycle-events-per-day` (3M events by default) with the
//!    batch jobs run; the first cycle (every window of the `history`) and a steady one.

use super::progress::{phase, Progress};
use super::{on_server, Server};
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::Args;
use heal_clikit::output::{count, table};
use heal_clikit::{Global, OutputFormat};
use heal_generator::{FaultAction, Generator, Scenario};
use heal_ingest::{Incoming, Ingestor, Settings, Source};
use heal_model::quality::ConditionChange;
use heal_model::FaultKind;
use heal_quality::{Catalog, ChecksFile, Quality};
use serde::Serialize;
use sqlx::PgPool;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct QualityBenchArgs {
    /// Folder of the scenario files (one per fault kind).
    #[arg(long, default_value = "scenarios")]
    pub scenarios: PathBuf,
    /// Events per simulated day of the fault and clean runs.
    #[arg(long, default_value_t = 20_000.0)]
    pub events_per_day: f64,
    /// Simulated days of the clean run.
    #[arg(long, default_value_t = 21)]
    pub clean_days: u32,
    /// Simulated days and events per day of the cycle-cost run (0 days: skipped).
    #[arg(long, default_value_t = 30)]
    pub cycle_days: u32,
    #[arg(long, default_value_t = 100_000.0)]
    pub cycle_events_per_day: f64,
    /// Only these fault kinds (comma-separated); all when absent.
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<FaultKind>,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Days of clean history added before each fault (the volume baseline judges from the fifth
/// day on).
const EXTRA_DAYS: i64 = 4;

#[derive(Debug, Serialize)]
struct Detection {
    kind: String,
    intensity: &'static str,
    /// What was injected, in words.
    fault: String,
    check: &'static str,
    dataset: &'static str,
    detected: bool,
    /// From the fault's start to the end of the first failing window (windowed checks), in
    /// simulated minutes; `None` for checks judged on arrival or when not detected.
    delay_sim_min: Option<f64>,
    /// Wall time of the check cycle run after the data landed.
    cycle_ms: u64,
    events: u64,
    /// Other conditions the cycle opened (side effects of the fault, or false alarms).
    also_opened: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Clean {
    days: u32,
    events: u64,
    judged_days: f64,
    opened: Vec<String>,
    false_alarms_per_day: f64,
    judged_windows: i64,
}

#[derive(Debug, Serialize)]
struct CycleCost {
    events: u64,
    checks: usize,
    first_cycle_secs: f64,
    first_cycle_windows: usize,
    steady_cycle_secs: f64,
    /// Reference: one `count(*)` over every table the checks read, in the same database.
    scan_secs: f64,
    slowest: Vec<(String, u64)>,
}

#[derive(Debug, Serialize)]
struct Report {
    server_version: Option<String>,
    events_per_day: f64,
    detections: Vec<Detection>,
    clean: Clean,
    cycle: Option<CycleCost>,
}

pub async fn run(global: &Global, args: QualityBenchArgs) -> anyhow::Result<ExitCode> {
    let bench = async |_: &heal_config::Config, server: &mut Server| measure(&args, server).await;
    on_server(
        global,
        "heal bench quality",
        Some("error"),
        args.output,
        bench,
        print,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// The scenario file of `kind` with its fault moved `EXTRA_DAYS` later, cut three hours after
/// the fault (plus the delay of late events), at `intensity`: `high` (its own), `low`,
/// `sustained`, `halved` or `doubled`.
fn scenario(
    dir: &std::path::Path,
    kind: FaultKind,
    per_day: f64,
    intensity: &str,
) -> anyhow::Result<(Scenario, String)> {
    let low = intensity == "low";
    // Accumulated evidence counts once the fault's weekday has a profile: a week more.
    let extra = match intensity {
        "sustained" | "halved" | "doubled" => EXTRA_DAYS + 7,
        _ => EXTRA_DAYS,
    };
    let path = dir.join(format!("{kind}.toml"));
    let mut s = Scenario::load(&path).with_context(|| format!("{}", path.display()))?;
    s.events_per_day = per_day;
    let mut end = Duration::zero();
    let mut words = Vec::new();
    for f in &mut s.faults {
        f.start += Duration::days(extra);
        if low {
            match &mut f.action {
                FaultAction::VolumeSpike { factor } => *factor = 1.5,
                FaultAction::JobFailure { failures, .. } => *failures = Some(1),
                FaultAction::JobDelay { delay } => *delay = Duration::minutes(45),
                FaultAction::SourceOutage => f.duration = Duration::minutes(30),
                _ => f.rate = (f.rate * 0.2).max(0.01),
            }
        }
        // Volume shifts that no single hour shows clearly, and the halving and doubling
        // that the first hourly window must show.
        match (intensity, &mut f.action) {
            ("sustained", FaultAction::VolumeSpike { factor }) => {
                *factor = 1.5;
                f.duration = Duration::hours(3);
            }
            ("sustained", _) => {
                f.rate = 0.18;
                f.duration = Duration::hours(6);
            }
            ("halved", _) => {
                f.rate = 0.5;
                f.duration = Duration::hours(1);
            }
            ("doubled", FaultAction::VolumeSpike { factor }) => {
                *factor = 2.0;
                f.duration = Duration::hours(1);
            }
            _ => {}
        }
        words.push(match &f.action {
            FaultAction::VolumeSpike { factor } => format!("×{factor} for {}", human(f.duration)),
            FaultAction::JobFailure {
                failures: Some(n), ..
            } => format!("{n} failed attempt(s)"),
            FaultAction::JobFailure { .. } => "every attempt fails".into(),
            FaultAction::JobDelay { delay } => format!("{} late", human(*delay)),
            FaultAction::SourceOutage => format!("nothing for {}", human(f.duration)),
            FaultAction::ValueOutlier { factor, .. } => format!(
                "{:.0} % ×{factor} for {}",
                f.rate * 100.0,
                human(f.duration)
            ),
            _ => format!("{:.0} % for {}", f.rate * 100.0, human(f.duration)),
        });
        let tail = match &f.action {
            FaultAction::LateEvents { delay } => *delay,
            _ => Duration::zero(),
        };
        end = end.max(f.start + f.duration + tail);
    }
    s.days = (end + Duration::hours(3)).num_milliseconds() as f64 / 86_400_000.0;
    Ok((s, words.join("; ")))
}

fn human(d: Duration) -> String {
    let m = d.num_minutes();
    if m % 60 == 0 {
        format!("{}h", m / 60)
    } else {
        format!("{m}min")
    }
}

async fn ingest(
    pool: &PgPool,
    scenario: &Scenario,
    label: &str,
) -> anyhow::Result<(u64, Vec<heal_generator::InjectionRecord>)> {
    let ingestor = Ingestor::new(pool.clone(), Settings::default()).await?;
    let source = Source::Topic {
        group: "bench-quality".into(),
        topic: "raw-events".into(),
    };
    let expected = (scenario.days * scenario.events_per_day) as u64;
    let mut progress = Progress::new(label, expected);
    let mut generator = Generator::new(scenario);
    let mut chunk = Vec::with_capacity(5000);
    let mut n = 0u64;
    for e in generator.by_ref() {
        chunk.push(Incoming {
            partition: Some(0),
            offset: Some(n as i64),
            payload: e.payload,
            produced_at: Some(e.produced_at),
        });
        n += 1;
        if chunk.len() == 5000 {
            ingestor.ingest(&source, std::mem::take(&mut chunk)).await?;
            progress.set(n, expected);
        }
    }
    ingestor.ingest(&source, chunk).await?;
    progress.finish();
    let truth = generator.ground_truth();
    heal_store::faults::record_ground_truth(pool, "bench", &scenario.name, &truth).await?;
    Ok((n, truth))
}

async fn run_batch(pool: &PgPool) -> anyhow::Result<()> {
    let settings = heal_batch::Settings {
        retry_backoff: std::time::Duration::from_millis(10),
        delay_scale: 1e-6,
        ..heal_batch::Settings::default()
    };
    let engine = heal_batch::Engine::new(pool.clone(), None, settings)?;
    engine
        .run(
            &[],
            heal_batch::Trigger::Schedule,
            heal_batch::Selection::default(),
        )
        .await?;
    Ok(())
}

async fn quality(pool: &PgPool) -> anyhow::Result<Quality> {
    let catalog = Catalog::load(pool).await?;
    Ok(Quality::new(pool.clone(), ChecksFile::default_checks(&catalog)?).await?)
}

async fn measure(args: &QualityBenchArgs, server: &mut Server) -> anyhow::Result<Report> {
    let stamp = format!("{}_{}", Utc::now().format("%H%M%S"), std::process::id());
    let kinds: Vec<FaultKind> = if args.kinds.is_empty() {
        // Outages are reported by ingest, not by checks.
        FaultKind::ALL
            .into_iter()
            .filter(|k| !k.is_outage())
            .collect()
    } else {
        args.kinds.clone()
    };
    let mut detections = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let intensities: &[&'static str] = match kind {
            FaultKind::VolumeDrop => &["high", "low", "sustained", "halved"],
            FaultKind::VolumeSpike => &["high", "low", "sustained", "doubled"],
            _ => &["high", "low"],
        };
        for &intensity in intensities {
            let (s, fault) = scenario(&args.scenarios, *kind, args.events_per_day, intensity)?;
            phase(&format!("{kind} ({intensity}: {fault})"));
            let name = format!("heal_bench_quality_{stamp}_{i}_{intensity}");
            let (_, db) = server.create(&name).await?;
            let pool = db.pool().clone();
            let (events, truth) = ingest(&pool, &s, "ingest").await?;
            if kind.targets_job() {
                run_batch(&pool).await?;
            }
            let q = quality(&pool).await?;
            let started = Instant::now();
            let report = q.run_cycle(None).await?;
            let cycle_ms = started.elapsed().as_millis() as u64;
            let (check, dataset) = heal_quality::checks::catching(*kind)
                .ok_or_else(|| anyhow::anyhow!("no check catches {kind}"))?;
            let start = truth.first().map(|t| t.window_start);
            // A condition of the catching check that ended before the fault began is no
            // detection of it (a false alarm in the history before, listed as such).
            let before = |e: &heal_model::quality::FailureEvent| {
                start.is_some_and(|s| e.window_end <= s)
                    && !matches!(e.check_type.as_str(), "schema" | "pipeline" | "validity")
            };
            let hit = report.events.iter().find(|e| {
                e.change == ConditionChange::Opened
                    && e.check == check
                    && e.dataset == dataset
                    && !before(e)
            });
            let windowed = !matches!(
                hit.map(|h| h.check_type.as_str()),
                Some("schema" | "pipeline")
            ) && check != "sessions_timestamps";
            let delay_sim_min = match (hit, start) {
                (Some(h), Some(s)) if windowed => {
                    Some((h.window_end - s).num_seconds() as f64 / 60.0)
                }
                _ => None,
            };
            let mut also: Vec<String> = report
                .events
                .iter()
                .filter(|e| e.change == ConditionChange::Opened && (e.check != check || before(e)))
                .map(|e| {
                    if before(e) {
                        format!("{} (before the fault)", e.check)
                    } else {
                        e.check.clone()
                    }
                })
                .collect();
            also.sort();
            also.dedup();
            detections.push(Detection {
                kind: kind.to_string(),
                intensity,
                fault,
                check,
                dataset,
                detected: hit.is_some(),
                delay_sim_min,
                cycle_ms,
                events,
                also_opened: also,
            });
            db.close().await;
            server.drop_database(&name).await?;
        }
    }

    phase(&format!("clean traffic, {} days", args.clean_days));
    let name = format!("heal_bench_quality_{stamp}_clean");
    let (_, db) = server.create(&name).await?;
    let pool = db.pool().clone();
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse()?;
    let clean_scenario = Scenario::clean(
        "bench-quality-clean",
        1,
        start,
        f64::from(args.clean_days),
        args.events_per_day,
    );
    let (events, _) = ingest(&pool, &clean_scenario, "ingest").await?;
    run_batch(&pool).await?;
    let report = quality(&pool).await?.run_cycle(None).await?;
    let opened: Vec<String> = report
        .events
        .iter()
        .filter(|e| e.change == ConditionChange::Opened)
        .map(|e| format!("{} at {}", e.check, e.window_end.format("%m-%d %H:%M")))
        .collect();
    let judged_windows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM quality_results WHERE status IN ('pass', 'fail')")
            .fetch_one(&pool)
            .await?;
    // The volume baselines judge from the fifth day on; the rule checks from the first.
    let judged_days = f64::from(args.clean_days).min(14.0);
    let server_version: Option<String> = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .ok();
    db.close().await;
    server.drop_database(&name).await?;
    let clean = Clean {
        days: args.clean_days,
        events,
        judged_days,
        false_alarms_per_day: opened.len() as f64 / judged_days,
        opened,
        judged_windows,
    };

    let cycle = if args.cycle_days > 0 {
        phase(&format!(
            "cycle cost: {} days × {} events",
            args.cycle_days,
            count(args.cycle_events_per_day as i64)
        ));
        let name = format!("heal_bench_quality_{stamp}_cycle");
        let (_, db) = server.create(&name).await?;
        let pool = db.pool().clone();
        let s = Scenario::clean(
            "bench-quality-cycle",
            7,
            start,
            f64::from(args.cycle_days),
            args.cycle_events_per_day,
        );
        let (events, _) = ingest(&pool, &s, "ingest").await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        phase("batch jobs");
        run_batch(&pool).await?;
        let q = quality(&pool).await?;
        phase("reference: count(*) over every table the checks read");
        let mut tables: Vec<String> = q
            .checks()
            .checks
            .iter()
            .map(|c| c.dataset.clone())
            .filter(|d| !d.is_empty())
            .collect();
        tables.sort();
        tables.dedup();
        let started = Instant::now();
        for t in &tables {
            let _: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {}",
                heal_quality::eval::ident(t)
            ))
            .fetch_one(&pool)
            .await?;
        }
        let scan_secs = started.elapsed().as_secs_f64();
        phase("first check cycle (every window of the history)");
        let started = Instant::now();
        let first = q.run_cycle(None).await?;
        let first_cycle_secs = started.elapsed().as_secs_f64();
        phase("steady check cycle");
        let started = Instant::now();
        q.run_cycle(None).await?;
        let steady_cycle_secs = started.elapsed().as_secs_f64();
        let mut slowest: Vec<(String, u64)> = first
            .checks
            .iter()
            .map(|c| (c.check.clone(), c.wall_ms))
            .collect();
        slowest.sort_by_key(|s| std::cmp::Reverse(s.1));
        slowest.truncate(5);
        db.close().await;
        server.drop_database(&name).await?;
        Some(CycleCost {
            events,
            checks: first.checks.len(),
            first_cycle_secs,
            first_cycle_windows: first.checks.iter().map(|c| c.evaluated).sum(),
            steady_cycle_secs,
            scan_secs,
            slowest,
        })
    } else {
        None
    };
    Ok(Report {
        server_version,
        events_per_day: args.events_per_day,
        detections,
        clean,
        cycle,
    })
}

fn print(r: &Report) {
    println!(
        "Sensitivity of the shipped checks ({} events/day, fault after {} clean days; PostgreSQL {})",
        count(r.events_per_day as i64),
        EXTRA_DAYS + 1,
        r.server_version.as_deref().unwrap_or("?")
    );
    let mut t = table(&[
        "fault kind",
        "intensity",
        "injected",
        "check",
        "detected",
        "delay (sim)",
        "cycle",
        "also opened",
    ]);
    for d in &r.detections {
        t.add_row(vec![
            d.kind.clone(),
            d.intensity.to_string(),
            d.fault.clone(),
            format!("{} on {}", d.check, d.dataset),
            if d.detected { "yes" } else { "no" }.to_string(),
            match (d.detected, d.delay_sim_min) {
                (true, Some(m)) => format!("{m:.0} min"),
                (true, None) => "on arrival".into(),
                _ => "-".into(),
            },
            format!("{} ms", d.cycle_ms),
            d.also_opened.join(", "),
        ]);
    }
    println!("{t}");
    println!(
        "Clean traffic: {} days ({} events), {} windows judged, {} conditions opened = {:.3} false alarms per simulated day{}",
        r.clean.days,
        count(r.clean.events as i64),
        count(r.clean.judged_windows),
        r.clean.opened.len(),
        r.clean.false_alarms_per_day,
        if r.clean.opened.is_empty() { String::new() } else { format!(": {}", r.clean.opened.join("; ")) }
    );
    if let Some(c) = &r.cycle {
        println!(
            "Check cycle on {} events ({} checks): first cycle {:.2} s ({} windows judged), steady cycle {:.2} s; reference count(*) over the checked tables {:.2} s; slowest checks in the first: {}",
            count(c.events as i64),
            c.checks,
            c.first_cycle_secs,
            count(c.first_cycle_windows as i64),
            c.steady_cycle_secs,
            c.scan_secs,
            c.slowest.iter().map(|(n, ms)| format!("{n} {ms} ms")).collect::<Vec<_>>().join(", ")
        );
    }
}
