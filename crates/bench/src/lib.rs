//! Benchmarks, one command each (figures go to docs/benchmarks.md).
//!
//! `heal bench ingest` measures ingestion throughput on one machine, in one run, over the same
//! generated events: (a) through Kafka into the PostgreSQL server, by the real service in a
//! child process; (b) through the embedded path (in-process bus, embedded PostgreSQL) in this
//! process; and (c) plain `COPY` of the same rows into the same tables, the physical
//! reference, on the server and — when the engine accepts it — on the embedded engine. It
//! prints events/s, the ratio to `COPY` and peak RSS, and fails when the paths did not store
//! the same rows.

mod aiops;
mod batch;
mod console;
mod copy;
mod embedded;
mod events;
mod kafka;
mod lineage;
mod progress;
mod quality;
mod stream;
mod sys;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use heal_bus::Bus;
use heal_clikit::output::{count, table};
use heal_clikit::{load_config, Global, OutputFormat};
use heal_store::{redact, Database};
use progress::{phase, Progress};
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput: Kafka → PostgreSQL server, embedded path, and plain COPY reference.
    /// Needs DATABASE_URL (an admin URL: fresh databases are created and dropped) and
    /// KAFKA_BOOTSTRAP_SERVERS.
    Ingest(IngestBenchArgs),
    /// Batch engine: builds 30 simulated days (~3M events) in a fresh database on the server
    /// (DATABASE_URL, an admin URL), then times a full recompute of every job and the
    /// incremental run after one day of late data, and their ratio.
    Batch(batch::BatchBenchArgs),
    /// Lineage queries: generates a layered DAG (100k nodes / 500k edges by default) in a fresh
    /// database on the server (DATABASE_URL, an admin URL), then reports p50/p95 of the impact
    /// and upstream queries at depth 5 and unbounded, next to a naive recursive CTE.
    Lineage(lineage::LineageBenchArgs),
    /// Quality checks: every fault kind at high and low intensity (detected by the check meant
    /// for it? how soon?), false alarms per day on clean traffic, and the cost of a check
    /// cycle on 3M events; fresh databases on the server (DATABASE_URL, an admin URL).
    Quality(quality::QualityBenchArgs),
    /// Stream faults: the generator, ingest and quality roles in this process on a fresh
    /// database (DATABASE_URL, an admin URL) with clean real-time traffic; bad events of every
    /// event type sent one at a time; p50/p95 from ingest to the failure event, with the
    /// quarantine checks run on ingest's report and, as reference, at their cycle alone.
    StreamFaults(stream::StreamBenchArgs),
    /// AI Ops engine: failure events at a steady rate into the engine holding 10k incidents
    /// over a 100k-node lineage graph; sustained events/s and p50/p95 decision latency, beside
    /// the seed's grouping as reference. In memory: needs nothing.
    Aiops(aiops::AiopsBenchArgs),
    /// Web console: server-side render time (p50/p95) of the overview and an incident page
    /// with 10k incidents and a 100k-node lineage graph, beside the JSON API answer for the
    /// same incident; a fresh database on the server (DATABASE_URL, an admin URL).
    Console(console::ConsoleBenchArgs),
}

#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// Events to ingest (approximately: a clean generated scenario is sized to it).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn bench(global: &Global, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest(args) => ingest(global, args).await,
        BenchCommand::Batch(args) => batch::run(global, args).await,
        BenchCommand::Lineage(args) => lineage::run(global, args).await,
        BenchCommand::Quality(args) => quality::run(global, args).await,
        BenchCommand::StreamFaults(args) => stream::run(global, args).await,
        BenchCommand::Aiops(args) => aiops::run(args).await,
        BenchCommand::Console(args) => console::run(global, args).await,
    }
}

/// Goal of the Kafka path, as a share of `COPY` throughput.
const RATIO_GOAL: f64 = 0.5;
/// Goal for the peak RSS of the ingest service, in MB.
const RSS_GOAL_MB: f64 = 400.0;

/// Rows in the tables the ingest role writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub raw_events: i64,
    /// All typed tables together.
    pub typed_rows: i64,
    pub quarantined: i64,
}

impl Counts {
    pub async fn read(pool: &PgPool) -> anyhow::Result<Counts> {
        let (raw_events, typed_rows, quarantined): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM raw_events),
                    (SELECT count(*) FROM users) + (SELECT count(*) FROM sessions)
                      + (SELECT count(*) FROM product_views) + (SELECT count(*) FROM cart_items)
                      + (SELECT count(*) FROM orders) + (SELECT count(*) FROM payments)
                      + (SELECT count(*) FROM refunds),
                    (SELECT count(*) FROM quarantine)",
        )
        .fetch_one(pool)
        .await
        .context("counting rows")?;
        Ok(Counts {
            raw_events,
            typed_rows,
            quarantined,
        })
    }
}

/// The PostgreSQL server behind the admin URL, and the databases created on it.
pub struct Server {
    admin_url: String,
    created: Vec<String>,
}

/// What every benchmark on the PostgreSQL server shares: the configuration (with `quiet` as
/// the log level unless one was chosen: a benchmark's bulk statements are slow on purpose),
/// a [`Server`] for the databases it creates, the measurement, those databases dropped
/// whatever happened, and the report printed as a table (`print`) or JSON.
pub(crate) async fn on_server<R: Serialize>(
    global: &Global,
    bench: &str,
    quiet: Option<&str>,
    output: OutputFormat,
    measure: impl AsyncFnOnce(&heal_config::Config, &mut Server) -> anyhow::Result<R>,
    print: impl FnOnce(&R),
) -> anyhow::Result<R> {
    let mut extra = Vec::new();
    if let Some(level) = quiet {
        if global.log_level.is_none() && std::env::var_os("HEAL_LOG_LEVEL").is_none() {
            extra.push(("--log-level", "log_level", level.to_string()));
        }
    }
    let config = load_config(global, &extra)?;
    let mut server = Server::for_bench(&config, bench)?;
    let outcome = measure(&config, &mut server).await;
    server.drop_created().await;
    let report = outcome?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print(&report),
    }
    Ok(report)
}

impl Server {
    /// The server of `config`'s `DATABASE_URL`, which `bench` (e.g. `heal bench batch`) needs
    /// as an admin URL.
    pub fn for_bench(config: &heal_config::Config, bench: &str) -> anyhow::Result<Server> {
        let Some(admin_url) = config.database_url() else {
            anyhow::bail!("{bench} needs DATABASE_URL (an admin URL of the PostgreSQL server: the benchmark creates and drops its own databases)");
        };
        Ok(Server {
            admin_url,
            created: Vec::new(),
        })
    }

    async fn admin(&self) -> anyhow::Result<PgConnection> {
        let options = PgConnectOptions::from_str(&self.admin_url)
            .with_context(|| format!("invalid DATABASE_URL {}", redact(&self.admin_url)))?
            // CHECKPOINT and DROP DATABASE are slow on purpose; no warnings about them.
            .disable_statement_logging();
        PgConnection::connect_with(&options)
            .await
            .with_context(|| format!("connecting to {}", redact(&self.admin_url)))
    }

    /// Creates a fresh database, connects and migrates it; returns its URL and handle.
    pub async fn create(&mut self, name: &str) -> anyhow::Result<(String, Database)> {
        let mut admin = self.admin().await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .with_context(|| {
                format!("creating database {name} (the DATABASE_URL user needs CREATEDB)")
            })?;
        self.created.push(name.to_string());
        let _ = admin.close().await;
        let url = with_database(&self.admin_url, name)?;
        let db = Database::connect(&url, 2).await?;
        db.migrate().await?;
        Ok((url, db))
    }

    /// Flushes the previous phase's dirty pages so that it does not slow the next one down.
    /// Needs superuser (or pg_checkpoint); skipped without.
    async fn checkpoint(&self) {
        if let Ok(mut admin) = self.admin().await {
            if let Err(e) = sqlx::query("CHECKPOINT").execute(&mut admin).await {
                tracing::debug!(error = %e, "CHECKPOINT refused; continuing without");
            }
            let _ = admin.close().await;
        }
    }

    async fn version(&self) -> Option<String> {
        let mut admin = self.admin().await.ok()?;
        let v: Option<String> = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut admin)
            .await
            .ok();
        let _ = admin.close().await;
        v
    }

    /// Drops a database created here once its phase is over, so that autovacuum of its
    /// tables does not run during the next phase.
    pub async fn drop_database(&mut self, name: &str) -> anyhow::Result<()> {
        let mut admin = self.admin().await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("dropping database {name}"))?;
        self.created.retain(|n| n != name);
        let _ = admin.close().await;
        Ok(())
    }

    async fn drop_created(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let mut admin = match self.admin().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "warning: cannot drop the benchmark databases {:?}: {e:#}",
                    self.created
                );
                return;
            }
        };
        for name in std::mem::take(&mut self.created) {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(e) = sqlx::query(&sql).execute(&mut admin).await {
                eprintln!("warning: cannot drop database {name}: {e}");
            }
        }
        let _ = admin.close().await;
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    heal_config::dburl::with_database(url, name).map_err(|e| anyhow::anyhow!("DATABASE_URL {e}"))
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
struct ResultRow {
    method: &'static str,
    database: &'static str,
    events: u64,
    seconds: f64,
    events_per_sec: f64,
    /// Throughput relative to `COPY` into the same engine (the server's when the embedded
    /// engine refused `COPY`).
    ratio_to_copy: Option<f64>,
    ratio_reference: Option<&'static str>,
    peak_rss_mb: Option<f64>,
    /// Whose RSS `peak_rss_mb` is.
    rss_of: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Generated {
    scenario: String,
    seed: u64,
    simulated_days: f64,
    events_per_day: f64,
    events: u64,
    payload_mb: f64,
    secs: f64,
    events_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Produced {
    topic: String,
    partitions: i32,
    events: u64,
    secs: f64,
    events_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
struct EmbeddedCopy {
    run: Option<copy::CopyRun>,
    counts: Option<Counts>,
    peak_rss_kb: Option<u64>,
    rss_before_kb: Option<u64>,
    error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct CountRow {
    database: &'static str,
    counts: Counts,
}

#[derive(Debug, Clone, Serialize)]
struct Goals {
    kafka_ratio_to_copy: f64,
    kafka_ratio_goal: f64,
    kafka_ratio_met: bool,
    kafka_peak_rss_mb: Option<f64>,
    kafka_peak_rss_goal_mb: f64,
    kafka_peak_rss_met: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    command: String,
    date: String,
    machine: sys::Machine,
    postgres_version: Option<String>,
    kafka_bootstrap_servers: String,
    ingest_batch_size: usize,
    generated: Generated,
    produced: Produced,
    results: Vec<ResultRow>,
    kafka: kafka::ServiceRun,
    copy_server: copy::CopyRun,
    embedded: embedded::EmbeddedRun,
    copy_embedded: EmbeddedCopy,
    counts: Vec<CountRow>,
    counts_match: bool,
    goals: Goals,
}

/// Everything the phases need.
struct Bench<'a> {
    global: &'a Global,
    args: &'a IngestBenchArgs,
    config: heal_config::Config,
    bootstrap_servers: String,
    suffix: String,
    dir: PathBuf,
}

async fn ingest(global: &Global, args: IngestBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.events >= 1000, "--events must be at least 1000");
    // sqlx warns about statements over 1 s; a benchmark's bulk statements are slow on
    // purpose, so its own log leaves them out unless a log level was chosen.
    let mut extra = Vec::new();
    if global.log_level.is_none() && std::env::var_os("HEAL_LOG_LEVEL").is_none() {
        extra.push((
            "--log-level",
            "log_level",
            "info,sqlx::query=error".to_string(),
        ));
    }
    let config = load_config(global, &extra)?;
    let admin_url = config.database_url();
    let servers = config.kafka.bootstrap_servers.clone();
    let mut missing = Vec::new();
    if admin_url.is_none() {
        missing.push("DATABASE_URL (an admin URL of the PostgreSQL server: the benchmark creates and drops its own databases)");
    }
    if servers.is_none() {
        missing.push("KAFKA_BOOTSTRAP_SERVERS (host:port of the Kafka brokers)");
    }
    if !missing.is_empty() {
        bail!("heal bench ingest needs {}", missing.join(" and "));
    }
    let (Some(admin_url), Some(bootstrap_servers)) = (admin_url, servers) else {
        unreachable!("checked above");
    };
    let mut server = Server {
        admin_url,
        created: Vec::new(),
    };
    let cx = Bench {
        global,
        args: &args,
        config,
        bootstrap_servers,
        suffix: format!(
            "{}_{}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            std::process::id()
        ),
        dir: std::env::temp_dir(),
    };
    let outcome = run(&cx, &mut server).await;
    server.drop_created().await;
    let report = outcome?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print_report(&report),
    }
    if !report.counts_match {
        eprintln!("error: the paths did not store the same rows (see the row counts)");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn per_sec(events: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        events as f64 / secs
    } else {
        0.0
    }
}

async fn run(cx: &Bench<'_>, server: &mut Server) -> anyhow::Result<Report> {
    let machine = sys::machine();
    let partitions = cx.config.kafka.partitions;
    let scenario = events::scenario(cx.args.events);
    let expected = heal_generator::Generator::new(&scenario).expected_events();

    phase(&format!(
        "generating ~{} events (clean scenario, seed {}, {} simulated days; not timed)",
        count(expected as i64),
        events::SEED,
        events::DAYS
    ));
    let path = cx.dir.join(format!("heal-bench-{}.events", cx.suffix));
    let file = {
        let scenario = scenario.clone();
        let bar = Progress::new("generate", expected);
        tokio::task::spawn_blocking(move || events::EventFile::generate(&scenario, &path, bar))
            .await
            .context("the generator panicked")??
    };
    let generated = Generated {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        simulated_days: scenario.days,
        events_per_day: scenario.events_per_day,
        events: file.events,
        payload_mb: file.payload_bytes as f64 / 1e6,
        secs: file.generate_secs,
        events_per_sec: per_sec(file.events, file.generate_secs),
    };
    eprintln!(
        "  {} events, {:.0} MB of payload, in {:.1} s",
        count(file.events as i64),
        generated.payload_mb,
        generated.secs
    );

    // The in-process measurements first, while this process holds little else (its peak
    // RSS is reset before each, but memory the allocator kept from earlier phases would
    // count), and before the server is busy with anything of ours.
    let topic = format!("bench-raw-events-{}", cx.suffix);

    // (b) The embedded path, in this process.
    server.checkpoint().await;
    phase("(b) embedded path: in-process bus → embedded PostgreSQL, generator running alongside");
    let settings = heal_server::ingest_settings(&cx.config);
    let embedded_run = embedded::run(
        settings,
        &scenario,
        partitions,
        Progress::new("embedded", file.events),
    )
    .await?;
    eprintln!(
        "  {:.1} s, {:.0} events/s",
        embedded_run.secs,
        per_sec(embedded_run.events, embedded_run.secs)
    );

    // (c') COPY into the embedded engine, the reference for (b); optional.
    phase("(c') COPY reference into the embedded PostgreSQL");
    let copy_embedded = embedded_copy(&file, &topic, partitions).await;
    match (&copy_embedded.run, &copy_embedded.error) {
        (Some(run), _) => eprintln!(
            "  {:.1} s, {:.0} events/s",
            run.secs,
            per_sec(run.events, run.secs)
        ),
        (_, Some(e)) => eprintln!("  skipped: {e}"),
        _ => {}
    }

    let postgres_version = server.version().await;
    let kafka_db_name = format!("heal_bench_{}_kafka", cx.suffix);
    let copy_db_name = format!("heal_bench_{}_copy", cx.suffix);
    phase(&format!(
        "creating and migrating databases {kafka_db_name} and {copy_db_name}"
    ));
    let (kafka_url, kafka_db) = server.create(&kafka_db_name).await?;
    let (_, copy_db) = server.create(&copy_db_name).await?;

    phase(&format!(
        "producing the events to Kafka topic {topic} ({partitions} partitions; not timed)"
    ));
    let produced = {
        let bus = Bus::new(Some(&cx.bootstrap_servers)).context("connecting to Kafka")?;
        bus.create_topics(
            &[topic.as_str()],
            partitions,
            cx.config.kafka.replication_factor,
        )
        .await
        .with_context(|| format!("creating topic {topic}"))?;
        let (n, secs) =
            kafka::produce(&bus, &topic, &file, Progress::new("produce", file.events)).await?;
        Produced {
            topic: topic.clone(),
            partitions,
            events: n,
            secs,
            events_per_sec: per_sec(n, secs),
        }
    };
    eprintln!(
        "  {} events in {:.1} s",
        count(produced.events as i64),
        produced.secs
    );

    // (a) Kafka → PostgreSQL server, by the service in its own process.
    server.checkpoint().await;
    let mut global_args = Vec::new();
    if let Some(c) = &cx.global.config {
        global_args.extend(["--config".to_string(), c.display().to_string()]);
    }
    if let Some(l) = &cx.global.log_level {
        global_args.extend(["--log-level".to_string(), l.clone()]);
    }
    let service = kafka::Service {
        exe: std::env::current_exe().context("locating this executable")?,
        global_args,
        database_url: kafka_url,
        bootstrap_servers: cx.bootstrap_servers.clone(),
        topic: topic.clone(),
        group_prefix: format!("heal-bench-{}", cx.suffix),
        port: kafka::free_port()?,
        log: cx.dir.join(format!("heal-bench-{}-ingest.log", cx.suffix)),
    };
    phase(&format!(
        "(a) Kafka path: `heal run --roles ingest` (batch size {}), log in {}",
        cx.config.ingest.batch_size,
        service.log.display()
    ));
    let kafka_run = kafka::run_service(
        &service,
        kafka_db.pool(),
        produced.events,
        Progress::new("kafka", produced.events),
    )
    .await?;
    let kafka_counts = Counts::read(kafka_db.pool()).await?;
    kafka_db.close().await;
    server.drop_database(&kafka_db_name).await?;
    let _ = std::fs::remove_file(&service.log);
    eprintln!(
        "  {:.1} s, {:.0} events/s",
        kafka_run.secs,
        per_sec(produced.events, kafka_run.secs)
    );

    // (c) COPY into the server.
    server.checkpoint().await;
    phase("(c) COPY reference into the PostgreSQL server");
    let copy_run = copy::load(
        copy_db.pool(),
        &file,
        &topic,
        partitions,
        Progress::new("copy", file.events),
    )
    .await?;
    let copy_counts = Counts::read(copy_db.pool()).await?;
    copy_db.close().await;
    server.drop_database(&copy_db_name).await?;
    eprintln!(
        "  {:.1} s, {:.0} events/s",
        copy_run.secs,
        per_sec(copy_run.events, copy_run.secs)
    );

    let mut counts = vec![
        CountRow {
            database: "kafka → server",
            counts: kafka_counts,
        },
        CountRow {
            database: "COPY → server",
            counts: copy_counts,
        },
        CountRow {
            database: "embedded",
            counts: embedded_run.counts,
        },
    ];
    if let Some(c) = copy_embedded.counts {
        counts.push(CountRow {
            database: "COPY → embedded",
            counts: c,
        });
    }
    let counts_match = counts.iter().all(|c| {
        c.counts.raw_events == counts[0].counts.raw_events
            && c.counts.typed_rows == counts[0].counts.typed_rows
    }) && embedded_run.events == file.events;

    let copy_server_rate = per_sec(copy_run.events, copy_run.secs);
    let copy_embedded_rate = copy_embedded
        .run
        .as_ref()
        .map(|r| per_sec(r.events, r.secs));
    let kafka_rate = per_sec(produced.events, kafka_run.secs);
    let embedded_rate = per_sec(embedded_run.events, embedded_run.secs);
    let mb = |kb: Option<u64>| kb.map(sys::kb_to_mb);
    let mut results = vec![
        ResultRow {
            method: "Kafka → PostgreSQL server (heal run --roles ingest)",
            database: "server",
            events: produced.events,
            seconds: kafka_run.secs,
            events_per_sec: kafka_rate,
            ratio_to_copy: Some(kafka_rate / copy_server_rate),
            ratio_reference: Some("COPY → server"),
            peak_rss_mb: mb(kafka_run.peak_rss_kb),
            rss_of: "the ingest service process",
        },
        ResultRow {
            method: "COPY → PostgreSQL server (reference)",
            database: "server",
            events: copy_run.events,
            seconds: copy_run.secs,
            events_per_sec: copy_server_rate,
            ratio_to_copy: Some(1.0),
            ratio_reference: Some("COPY → server"),
            peak_rss_mb: None,
            rss_of: "not measured (the server's backends)",
        },
        ResultRow {
            method: "embedded: in-process bus → embedded PostgreSQL",
            database: "embedded",
            events: embedded_run.events,
            seconds: embedded_run.secs,
            events_per_sec: embedded_rate,
            ratio_to_copy: Some(embedded_rate / copy_embedded_rate.unwrap_or(copy_server_rate)),
            ratio_reference: Some(if copy_embedded_rate.is_some() {
                "COPY → embedded"
            } else {
                "COPY → server"
            }),
            peak_rss_mb: mb(embedded_run.peak_rss_kb),
            rss_of: "this process (generator, bus, consumer, engine)",
        },
    ];
    if let (Some(run), Some(rate)) = (&copy_embedded.run, copy_embedded_rate) {
        results.push(ResultRow {
            method: "COPY → embedded PostgreSQL (reference)",
            database: "embedded",
            events: run.events,
            seconds: run.secs,
            events_per_sec: rate,
            ratio_to_copy: Some(1.0),
            ratio_reference: Some("COPY → embedded"),
            peak_rss_mb: mb(copy_embedded.peak_rss_kb),
            rss_of: "this process (loader and engine)",
        });
    }
    let kafka_ratio = kafka_rate / copy_server_rate;
    let kafka_rss = mb(kafka_run.peak_rss_kb);
    let goals = Goals {
        kafka_ratio_to_copy: kafka_ratio,
        kafka_ratio_goal: RATIO_GOAL,
        kafka_ratio_met: kafka_ratio >= RATIO_GOAL,
        kafka_peak_rss_mb: kafka_rss,
        kafka_peak_rss_goal_mb: RSS_GOAL_MB,
        kafka_peak_rss_met: kafka_rss.is_some_and(|m| m < RSS_GOAL_MB),
    };
    Ok(Report {
        command: format!("heal bench ingest --events {}", cx.args.events),
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine,
        postgres_version,
        kafka_bootstrap_servers: cx.bootstrap_servers.clone(),
        ingest_batch_size: cx.config.ingest.batch_size,
        generated,
        produced,
        results,
        kafka: kafka_run,
        copy_server: copy_run,
        embedded: embedded_run,
        copy_embedded,
        counts,
        counts_match,
        goals,
    })
}

/// `COPY` into a temporary embedded engine; failures are reported, not fatal.
async fn embedded_copy(file: &events::EventFile, topic: &str, partitions: i32) -> EmbeddedCopy {
    let _ = sys::reset_peak_rss();
    let rss_before_kb = sys::rss_kb(None);
    let result = async {
        let (db, _) = embedded::start_engine().await?;
        let loaded = copy::load(
            db.pool(),
            file,
            topic,
            partitions,
            Progress::new("copy", file.events),
        )
        .await;
        let peak = sys::peak_rss_kb(None);
        let counts = match &loaded {
            Ok(_) => Some(Counts::read(db.pool()).await?),
            Err(_) => None,
        };
        db.close().await;
        anyhow::Ok((loaded?, counts, peak))
    }
    .await;
    match result {
        Ok((run, counts, peak)) => EmbeddedCopy {
            run: Some(run),
            counts,
            peak_rss_kb: peak,
            rss_before_kb,
            error: None,
        },
        Err(e) => EmbeddedCopy {
            run: None,
            counts: None,
            peak_rss_kb: None,
            rss_before_kb,
            error: Some(format!("{e:#}")),
        },
    }
}

fn print_report(r: &Report) {
    let m = &r.machine;
    println!(
        "heal bench ingest — {} events, {} — {} CPUs ({}), {:.0} GiB RAM, PostgreSQL {}, Kafka at {}",
        count(r.generated.events as i64),
        r.date,
        m.cpus,
        m.cpu_model.as_deref().unwrap_or("unknown CPU"),
        m.memory_gib.unwrap_or(0.0),
        r.postgres_version.as_deref().unwrap_or("?"),
        r.kafka_bootstrap_servers
    );
    let mut t = table(&[
        "method",
        "events",
        "seconds",
        "events/s",
        "ratio to COPY",
        "peak RSS MB",
    ]);
    for row in &r.results {
        t.add_row(vec![
            row.method.to_string(),
            count(row.events as i64),
            format!("{:.1}", row.seconds),
            count(row.events_per_sec.round() as i64),
            match (row.ratio_to_copy, row.ratio_reference) {
                (Some(x), Some(of)) => format!("{x:.2} (of {of})"),
                _ => "-".into(),
            },
            row.peak_rss_mb
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{t}");
    let k = &r.kafka;
    let opt = |x: Option<f64>| x.map(|v| format!("{v:.1} s")).unwrap_or_else(|| "?".into());
    println!(
        "Kafka path: child start → first stored row {}, first stored row → all stored {} ({} events/s over that window); service CPU {}; batch size {}; stopped: {}",
        opt(k.startup_secs),
        opt(k.first_row_to_done_secs),
        k.first_row_to_done_secs
            .map(|s| count(per_sec(r.produced.events, s).round() as i64))
            .unwrap_or_else(|| "?".into()),
        opt(k.cpu_secs),
        r.ingest_batch_size,
        k.exit
    );
    println!(
        "COPY → server: {:.1} s of {:.1} s waiting on the database; {} rows in 8 tables",
        r.copy_server.copy_secs,
        r.copy_server.secs,
        count(r.copy_server.rows as i64)
    );
    let mb = |kb: Option<u64>| {
        kb.map(|k| format!("{:.0} MB", sys::kb_to_mb(k)))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "embedded path: engine start and migrations {:.1} s (not timed); the generator runs inside the timing; process CPU {}; process RSS when the phase began {}{}",
        r.embedded.engine_start_secs,
        opt(r.embedded.cpu_secs),
        mb(r.embedded.rss_before_kb),
        if r.embedded.peak_reset { "" } else { " (peak RSS could not be reset: it is the whole run's)" }
    );
    if r.copy_embedded.run.is_some() {
        println!(
            "COPY → embedded: process RSS when the phase began {}",
            mb(r.copy_embedded.rss_before_kb)
        );
    }
    if let Some(e) = &r.copy_embedded.error {
        println!("COPY → embedded: not measured: {e}");
    }
    println!(
        "not timed: generating {} events {:.1} s ({} events/s); producing them to {} {:.1} s ({} events/s)",
        count(r.generated.events as i64),
        r.generated.secs,
        count(r.generated.events_per_sec.round() as i64),
        r.produced.topic,
        r.produced.secs,
        count(r.produced.events_per_sec.round() as i64)
    );
    let mut t = table(&["database", "raw_events", "typed rows", "quarantine"]);
    for c in &r.counts {
        t.add_row(vec![
            c.database.to_string(),
            count(c.counts.raw_events),
            count(c.counts.typed_rows),
            count(c.counts.quarantined),
        ]);
    }
    println!("{t}");
    println!(
        "row counts: {}",
        if r.counts_match {
            "equal across paths"
        } else {
            "DIFFERENT"
        }
    );
    let g = &r.goals;
    println!(
        "goal Kafka ≥ {:.1} × COPY: {:.2} — {}",
        g.kafka_ratio_goal,
        g.kafka_ratio_to_copy,
        if g.kafka_ratio_met { "met" } else { "NOT met" }
    );
    println!(
        "goal service peak RSS < {:.0} MB: {} — {}",
        g.kafka_peak_rss_goal_mb,
        g.kafka_peak_rss_mb
            .map(|x| format!("{x:.0} MB"))
            .unwrap_or_else(|| "unknown".into()),
        if g.kafka_peak_rss_met {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// The value at share `p` of sorted values (the index `(n − 1) · p`, rounded); `None` when
/// there are none. The benchmarks' and `heal eval`'s p50 and p95.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let i = (last as f64 * p).round() as usize;
    Some(sorted[i.min(last)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_round_to_the_nearest_index() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 0.95), Some(19));
        assert_eq!(percentile(&v, 0.5), Some(11));
        assert_eq!(percentile(&v, 1.0), Some(20));
        assert_eq!(percentile::<f64>(&[], 0.5), None);
    }

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgresql://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgresql://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "y").unwrap(),
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://h:5432", "z").unwrap(),
            "postgresql://h:5432/z"
        );
        assert!(with_database("h:5432/db", "z").is_err());
    }
}
