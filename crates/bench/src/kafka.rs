//! The Kafka path: the events are produced to a fresh topic before anything is timed, then
//! the real service is started as a child process exactly as an operator would
//! (`heal run --roles ingest`), and timed until the offsets it stored in PostgreSQL cover
//! every produced event. Its peak RSS is read from `/proc/<pid>/status` (`VmHWM`).

use super::events::EventFile;
use super::progress::Progress;
use super::sys;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use heal_bus::{Bus, Record};
use serde::Serialize;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Records per producer call (each call waits for its deliveries).
const PRODUCE_CHUNK: usize = 20_000;
/// How often the stored offsets and the child's memory are read.
const POLL: Duration = Duration::from_millis(50);
/// Give up when the stored offsets do not move for this long.
const STALL: Duration = Duration::from_secs(180);

/// Produces every event of `file` to `topic`. Returns the number produced and the seconds.
pub async fn produce(
    bus: &Bus,
    topic: &str,
    file: &EventFile,
    mut progress: Progress,
) -> anyhow::Result<(u64, f64)> {
    let total = file.events;
    let mut reader = file.reader()?;
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<Record>>>(2);
    let started = Instant::now();
    tokio::task::spawn_blocking(move || loop {
        let mut chunk = Vec::with_capacity(PRODUCE_CHUNK);
        while chunk.len() < PRODUCE_CHUNK {
            match reader.next_event() {
                Ok(Some(ev)) => chunk.push(Record {
                    key: ev.key,
                    payload: ev.payload,
                    timestamp_ms: ev.produced_at_ms,
                }),
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if chunk.is_empty() || tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    });
    let mut sent = 0u64;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.context("reading the events")?;
        let n = chunk.len() as u64;
        bus.send(topic, chunk)
            .await
            .with_context(|| format!("producing to {topic}"))?;
        sent += n;
        progress.set(sent, total);
    }
    progress.finish();
    anyhow::ensure!(sent == total, "produced {sent} events of {total}");
    Ok((sent, started.elapsed().as_secs_f64()))
}

/// How to start the ingest service.
pub struct Service {
    pub exe: PathBuf,
    /// Global flags to pass on (`--config`, `--log-level`).
    pub global_args: Vec<String>,
    pub database_url: String,
    pub bootstrap_servers: String,
    pub topic: String,
    pub group_prefix: String,
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

/// What the service did.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRun {
    /// Child start to every event stored.
    pub secs: f64,
    /// Child start to the first stored row (process start, connections, group join).
    pub startup_secs: Option<f64>,
    /// First stored row to every event stored.
    pub first_row_to_done_secs: Option<f64>,
    pub peak_rss_kb: Option<u64>,
    /// CPU seconds the child used until done.
    pub cpu_secs: Option<f64>,
    /// How the child ended after SIGTERM.
    pub exit: String,
}

/// Starts the service, waits until the offsets stored in the database behind `pool` sum to
/// `expected`, then stops it with SIGTERM.
pub async fn run_service(
    service: &Service,
    pool: &PgPool,
    expected: u64,
    mut progress: Progress,
) -> anyhow::Result<ServiceRun> {
    let log = std::fs::File::create(&service.log)
        .with_context(|| format!("creating {}", service.log.display()))?;
    let mut command = tokio::process::Command::new(&service.exe);
    command
        .args(&service.global_args)
        .args(["run", "--roles", "ingest"])
        // The operator's variables pass through; these name the benchmark's own resources.
        .env_remove("HEAL_DATABASE_URL")
        .env_remove("HEAL_KAFKA_BOOTSTRAP_SERVERS")
        .env("DATABASE_URL", &service.database_url)
        .env("KAFKA_BOOTSTRAP_SERVERS", &service.bootstrap_servers)
        .env("HEAL_INGEST__TOPIC", &service.topic)
        .env("HEAL_KAFKA__GROUP_PREFIX", &service.group_prefix)
        .env("HEAL_PORTS__INGEST", service.port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let started_wall = Utc::now();
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", service.exe.display()))?;
    let pid = child.id().context("the service exited at once")?;
    let mut peak = None;
    let mut stored = 0u64;
    let mut moved = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the ingest service exited ({status}) after {stored} of {expected} events; its log:\n{}",
                tail(&service.log, 30)
            );
        }
        peak = sys::peak_rss_kb(Some(pid)).or(peak);
        // The tables exist before the child starts (the benchmark migrated the database).
        let now: i64 =
            sqlx::query_scalar("SELECT coalesce(sum(next_offset), 0)::int8 FROM consumer_offsets")
                .fetch_one(pool)
                .await
                .context("reading the stored offsets")?;
        if now as u64 != stored {
            stored = now as u64;
            moved = Instant::now();
            progress.set(stored, expected);
        }
        if stored >= expected {
            break;
        }
        if moved.elapsed() > STALL {
            let partitions: Vec<(i32, i64)> = sqlx::query_as(
                "SELECT partition, next_offset FROM consumer_offsets ORDER BY partition",
            )
            .fetch_all(pool)
            .await
            .unwrap_or_default();
            let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM raw_events")
                .fetch_one(pool)
                .await
                .unwrap_or(-1);
            bail!(
                "no progress for {} s at {stored} of {expected} events (stored next offsets by partition {partitions:?}, {rows} raw_events rows); the service's log:\n{}",
                STALL.as_secs(),
                tail(&service.log, 30)
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let done_wall = Utc::now();
    peak = sys::peak_rss_kb(Some(pid)).or(peak);
    let cpu_secs = sys::cpu_secs(Some(pid));
    progress.finish();
    if stored > expected {
        bail!("the service stored offsets for {stored} events, but only {expected} were produced");
    }
    let exit = stop(&mut child, pid).await;
    let first: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT min(ingested_at) FROM raw_events")
            .fetch_one(pool)
            .await?;
    let secs_between =
        |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_microseconds().map(|us| us as f64 / 1e6);
    Ok(ServiceRun {
        secs,
        startup_secs: first.and_then(|f| secs_between(started_wall, f)),
        first_row_to_done_secs: first.and_then(|f| secs_between(f, done_wall)),
        peak_rss_kb: peak,
        cpu_secs,
        exit,
    })
}

/// SIGTERM, then up to 30 s for a graceful stop, then SIGKILL.
async fn stop(child: &mut tokio::process::Child, pid: u32) -> String {
    if let Err(e) = sys::terminate(pid).await {
        tracing::warn!(error = %e, "SIGTERM failed; killing the service");
        let _ = child.kill().await;
    }
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("unknown ({e})"),
        Err(_) => {
            let _ = child.kill().await;
            "killed after not stopping within 30 s of SIGTERM".to_string()
        }
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
