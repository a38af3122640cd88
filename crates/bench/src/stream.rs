//! `heal bench stream-faults`: how soon a stream fault becomes a failure event.
//!
//! The generator, ingest and quality roles run in this process on a fresh database (the
//! in-process bus), the generator sending clean traffic in real time. One bad event at a time
//! is sent beside it, rotating over every event type: a payload that does not fit its schema
//! (one field made null), one that is not JSON, and a valid event sent two hours before its
//! own time. Before each, a pause spread evenly over the quality cycle's interval, so faults
//! fall at every phase of it; each waits for the failure event of the check on its table.
//! Measured: from the event's quarantine row (ingest's commit) to the failure event on `data-quality-checks`, and
//! from the send to it. Two runs side by side: the quality role running its quarantine checks
//! when ingest reports refused events (`quality.on_refusals`, the default), and the reference,
//! the same checks at their cycle alone, at the same `interval`.

use super::progress::{phase, Progress};
use super::{on_server, percentile, Server};
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use heal_bus::{Consumer, Record};
use heal_clikit::output::table;
use heal_clikit::{Global, OutputFormat};
use heal_config::{Config, Role, RoleSet};
use heal_generator::{Generator, SchemaMix};
use heal_model::quality::{ConditionChange, FailureEvent};
use heal_model::topics;
use heal_model::EventKind;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct StreamBenchArgs {
    /// Bad events sent with the quarantine checks run on ingest's report.
    #[arg(long, default_value_t = 30)]
    pub faults: usize,
    /// Bad events sent in the reference run (checks at their cycle only).
    #[arg(long, default_value_t = 15)]
    pub reference_faults: usize,
    /// Clean background traffic of the real-time generator, events per second.
    #[arg(long, default_value_t = 200.0)]
    pub events_per_second: f64,
    /// The quality cycle's interval in both runs, seconds (the shipped default is 60).
    #[arg(long, default_value_t = 10)]
    pub interval_secs: u64,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// The goal: a stream fault is a failure event within this long of being ingested (p95).
const GOAL_SECS: f64 = 5.0;

/// One kind of bad event and the check meant to catch it.
#[derive(Debug, Clone)]
struct Target {
    /// `schema`, `malformed` or `future`.
    fault: &'static str,
    /// The table whose check must fail.
    dataset: &'static str,
    /// The check type of that check.
    check_type: &'static str,
    payload: Vec<u8>,
    /// The producer's send time to stamp it with; `None`: when it is sent. A future fault is
    /// stamped two hours before the event's own time.
    produced_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct Trial {
    fault: &'static str,
    dataset: &'static str,
    check: Option<String>,
    /// Quarantine row (ingest's commit) → failure event read from the topic.
    ingested_to_event_secs: Option<f64>,
    /// Send → failure event read from the topic.
    sent_to_event_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Run {
    mode: &'static str,
    interval_secs: u64,
    trials: Vec<Trial>,
    detected: usize,
    p50_secs: Option<f64>,
    p95_secs: Option<f64>,
    max_secs: Option<f64>,
    sent_p95_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    server_version: Option<String>,
    events_per_second: f64,
    goal_p95_secs: f64,
    runs: Vec<Run>,
}

pub async fn run(global: &Global, args: StreamBenchArgs) -> anyhow::Result<ExitCode> {
    let bench = async |config: &heal_config::Config, server: &mut Server| {
        measure_all(config, &args, server).await
    };
    on_server(
        global,
        "heal bench stream-faults",
        Some("error"),
        args.output,
        bench,
        print,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn measure_all(
    config: &Config,
    args: &StreamBenchArgs,
    server: &mut Server,
) -> anyhow::Result<Report> {
    let targets = targets()?;
    let mut runs = Vec::new();
    for (mode, on_refusals, faults) in [
        ("on ingest's report", true, args.faults),
        ("cycle only (reference)", false, args.reference_faults),
    ] {
        if faults == 0 {
            continue;
        }
        phase(&format!(
            "{mode}: {faults} bad events beside {} events/s, checks every {} s",
            args.events_per_second, args.interval_secs
        ));
        let name = format!(
            "heal_bench_stream_{}_{}",
            if on_refusals { "report" } else { "cycle" },
            std::process::id()
        );
        let (url, db) = server.create(&name).await?;
        db.close().await;
        let mut cfg = config.clone();
        cfg.database.url = Some(url);
        cfg.kafka.bootstrap_servers = None;
        cfg.http_addr = "127.0.0.1:0".parse().expect("an address");
        cfg.quality.interval = std::time::Duration::from_secs(args.interval_secs);
        cfg.quality.on_refusals = on_refusals;
        cfg.generator.events_per_second = args.events_per_second;
        let trials = trials(cfg, &targets, faults, args.interval_secs).await?;
        runs.push(summarize(mode, args.interval_secs, trials));
        server.drop_database(&name).await?;
    }
    Ok(Report {
        server_version: server.version().await,
        events_per_second: args.events_per_second,
        goal_p95_secs: GOAL_SECS,
        runs,
    })
}

/// One bad event of each kind per event type: a schema refusal, a future timestamp, and one
/// payload that is not JSON.
fn targets() -> anyhow::Result<Vec<Target>> {
    // A seed apart from the generator role's, so no event id repeats one it sends; a slow
    // simulation over the past month, so refunds (days after their order) come soon.
    let mut samples: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
    let generator = Generator::realtime(
        0x05ee_db4d,
        0.1,
        Utc::now() - chrono::Duration::days(30),
        SchemaMix {
            v1: 1.0,
            v2: 0.0,
            v3: 0.0,
        },
    );
    for ev in generator.take(1_000_000) {
        samples.entry(ev.kind.table()).or_insert(ev.payload);
        if samples.len() == EventKind::ALL.len() {
            break;
        }
    }
    let mut schema = Vec::new();
    let mut future = Vec::new();
    for kind in EventKind::ALL {
        let table = kind.table();
        let valid = samples
            .get(table)
            .with_context(|| format!("the generator made no {table} event"))?;
        schema.push(Target {
            fault: "schema",
            dataset: table,
            check_type: "schema",
            payload: unfit(valid).with_context(|| {
                format!("no field of a {table} event whose null value its schema refuses")
            })?,
            produced_at: None,
        });
        let at = heal_model::decode::decode(valid)
            .map_err(|e| anyhow::anyhow!("a generated {table} event does not decode: {e:?}"))?
            .occurred_at;
        future.push(Target {
            fault: "future",
            dataset: table,
            check_type: "validity",
            payload: valid.clone(),
            produced_at: Some(at - chrono::Duration::hours(2)),
        });
    }
    let mut out = vec![Target {
        fault: "malformed",
        dataset: "raw_events",
        check_type: "schema",
        // No event type to be found in it: charged to raw_events.
        payload: b"{\"event_id\": \"bench\", \"truncated".to_vec(),
        produced_at: None,
    }];
    // Alternate the two faults so that a table's checks are far apart in the rotation.
    for (s, f) in schema.into_iter().zip(future) {
        out.push(s);
        out.push(f);
    }
    Ok(out)
}

/// `valid` with the first field (top level, then `properties`) whose null value decoding
/// refuses for its schema made null.
fn unfit(valid: &[u8]) -> Option<Vec<u8>> {
    let root: Value = serde_json::from_slice(valid).ok()?;
    let obj = root.as_object()?;
    let mut paths: Vec<(Option<&str>, String)> = obj
        .keys()
        .filter(|k| !matches!(k.as_str(), "event_type" | "schema_version"))
        .map(|k| (None, k.clone()))
        .collect();
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        paths.extend(props.keys().map(|k| (Some("properties"), k.clone())));
    }
    for (parent, key) in paths {
        let mut v = root.clone();
        let slot = match parent {
            Some(p) => v.get_mut(p).and_then(|p| p.get_mut(&key)),
            None => v.get_mut(&key),
        };
        *slot? = Value::Null;
        let bytes = serde_json::to_vec(&v).ok()?;
        if let Err(e) = heal_model::decode::decode(&bytes) {
            if heal_quality::checks::SCHEMA_REASONS.contains(&e.reason) {
                return Some(bytes);
            }
        }
    }
    None
}

async fn trials(
    config: Config,
    targets: &[Target],
    faults: usize,
    interval_secs: u64,
) -> anyhow::Result<Vec<Trial>> {
    let app = heal_server::App::create_in(
        config,
        &RoleSet::new(vec![Role::Generator, Role::Ingest, Role::Quality]),
        heal_server::Mode::Monolithic,
    )
    .await?;
    let pool = app.database().pool().clone();
    let bus = app.bus().clone();
    let mut watch = bus.consumer("bench-watch", topics::DATA_QUALITY_CHECKS)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.start(stop_rx, Some(bound_tx)));
    bound_rx.await.context("the roles did not start")?;
    // The first cycle runs at start: wait for it, and for traffic to be flowing.
    let started = Instant::now();
    loop {
        let (judged, stored): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM quality_cursors WHERE moment IS NOT NULL),
                    (SELECT count(*) FROM raw_events)",
        )
        .fetch_one(&pool)
        .await?;
        if judged > 0 && stored > 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the first check cycle did not run within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wait = Duration::from_secs(interval_secs * 2 + 30);
    let mut progress = Progress::new("faults", faults as u64);
    let mut out = Vec::new();
    let mut seen: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM quarantine")
        .fetch_one(&pool)
        .await?;
    for (i, target) in targets.iter().cycle().take(faults).enumerate() {
        // Faults fall at every phase of the cycle alike in both runs: a pause spread evenly
        // over the interval (golden-ratio steps) before each.
        let phase = (i as f64 * 0.618_034).fract();
        tokio::time::sleep(Duration::from_secs_f64(phase * interval_secs as f64)).await;
        let sent = Utc::now();
        let record = Record {
            key: format!("bench-{i}").into_bytes(),
            payload: target.payload.clone(),
            timestamp_ms: target.produced_at.unwrap_or(sent).timestamp_millis(),
        };
        bus.send(topics::RAW_EVENTS, vec![record]).await?;
        let event = next_opened(&mut watch, target, wait).await?;
        let received = Utc::now();
        let quarantined: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, received_at FROM quarantine WHERE id > $1 ORDER BY id LIMIT 1",
        )
        .bind(seen)
        .fetch_optional(&pool)
        .await?;
        if let Some((id, _)) = quarantined {
            seen = id;
        }
        let secs = |from: DateTime<Utc>| (received - from).num_milliseconds() as f64 / 1000.0;
        out.push(Trial {
            fault: target.fault,
            dataset: target.dataset,
            check: event.as_ref().map(|e| e.check.clone()),
            ingested_to_event_secs: event.as_ref().and(quarantined).map(|(_, at)| secs(at)),
            sent_to_event_secs: event.as_ref().map(|_| secs(sent)),
        });
        progress.set(i as u64 + 1, faults as u64);
    }
    progress.finish();
    let _ = stop_tx.send(true);
    server.await.context("the roles' task")??;
    Ok(out)
}

/// The next failure event opening a condition of `target`'s check type on its table, or
/// `None` after `within`.
async fn next_opened(
    watch: &mut Consumer,
    target: &Target,
    within: Duration,
) -> anyhow::Result<Option<FailureEvent>> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for m in watch.poll_batch(100, Duration::from_millis(100)).await? {
            let Ok(e) = serde_json::from_slice::<FailureEvent>(&m.payload) else {
                continue;
            };
            if e.change == ConditionChange::Opened
                && e.dataset == target.dataset
                && e.check_type == target.check_type
            {
                return Ok(Some(e));
            }
        }
    }
    Ok(None)
}

fn summarize(mode: &'static str, interval_secs: u64, trials: Vec<Trial>) -> Run {
    let mut lat: Vec<f64> = trials
        .iter()
        .filter_map(|t| t.ingested_to_event_secs)
        .collect();
    let mut sent: Vec<f64> = trials.iter().filter_map(|t| t.sent_to_event_secs).collect();
    lat.sort_by(f64::total_cmp);
    sent.sort_by(f64::total_cmp);
    Run {
        mode,
        interval_secs,
        detected: trials.iter().filter(|t| t.check.is_some()).count(),
        p50_secs: percentile(&lat, 0.5),
        p95_secs: percentile(&lat, 0.95),
        max_secs: lat.last().copied(),
        sent_p95_secs: percentile(&sent, 0.95),
        trials,
    }
}

fn print(r: &Report) {
    println!(
        "Stream fault → failure event ({} clean events/s beside; PostgreSQL {}; goal p95 < {GOAL_SECS} s)",
        r.events_per_second,
        r.server_version.as_deref().unwrap_or("?")
    );
    let mut t = table(&[
        "quarantine checks run",
        "cycle",
        "faults",
        "failure events",
        "ingested → event p50",
        "p95",
        "max",
        "sent → event p95",
    ]);
    let s = |v: Option<f64>| v.map(|v| format!("{v:.2} s")).unwrap_or_else(|| "-".into());
    for run in &r.runs {
        t.add_row(vec![
            run.mode.to_string(),
            format!("{} s", run.interval_secs),
            run.trials.len().to_string(),
            run.detected.to_string(),
            s(run.p50_secs),
            s(run.p95_secs),
            s(run.max_secs),
            s(run.sent_p95_secs),
        ]);
    }
    println!("{t}");
    let missed: Vec<String> = r
        .runs
        .iter()
        .flat_map(|run| {
            run.trials
                .iter()
                .filter(|t| t.check.is_none())
                .map(move |t| format!("{}: {} on {}", run.mode, t.fault, t.dataset))
        })
        .collect();
    if !missed.is_empty() {
        println!("No failure event for: {}", missed.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_a_schema_fault_its_decoder_refuses() {
        let targets = targets().unwrap();
        assert_eq!(targets.len(), 1 + 2 * EventKind::ALL.len());
        for t in targets.iter().filter(|t| t.fault != "future") {
            let e = heal_model::decode::decode(&t.payload).expect_err(t.dataset);
            assert!(
                heal_quality::checks::SCHEMA_REASONS.contains(&e.reason),
                "{}: {:?}",
                t.dataset,
                e.reason
            );
        }
        for t in targets.iter().filter(|t| t.fault == "future") {
            let e = heal_model::decode::decode(&t.payload).expect(t.dataset);
            assert_eq!(e.kind().table(), t.dataset);
        }
    }
}
