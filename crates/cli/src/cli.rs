//! Command-line definition and dispatch. Global flags override `heal.toml` and the
//! environment (see `heal-config` for the precedence).

use crate::{demo, ops};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
pub use heal_clikit::{load_config, open_database, Global, OutputFormat};
use heal_config::RoleSet;
use std::process::ExitCode;

/// Self-healing analytics platform: synthetic e-commerce events with injected faults →
/// Kafka → exactly-once ingestion into PostgreSQL → quarantine, late data and more.
#[derive(Debug, Parser)]
#[command(name = "heal", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run roles as a service: all roles on one port by default, or a subset, each role on its
    /// own port (then DATABASE_URL is required, and KAFKA_BOOTSTRAP_SERVERS for every role but
    /// lineage).
    Run(RunArgs),
    /// Run the whole platform on this machine with nothing installed: embedded PostgreSQL and
    /// bus, a few simulated days with injected faults, a summary, then the HTTP API until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Apply the database migrations embedded in this binary (or show their status).
    Migrate(MigrateArgs),
    /// Generate a scenario's events: to Kafka (when configured) or as NDJSON to a file/stdout,
    /// recording the ground truth of injected faults in the database.
    Generate(ops::GenerateArgs),
    /// Inspect and replay events that could not be ingested.
    #[command(subcommand)]
    Quarantine(ops::QuarantineCommand),
    /// Batch analytics jobs: run, backfill, status and run history.
    #[command(subcommand)]
    Batch(crate::batch::BatchCommand),
    /// Lineage: what a table's failure affects, job dependencies, impact analysis, paths and
    /// graph export.
    #[command(subcommand)]
    Lineage(crate::lineage::LineageCommand),
    /// Data quality. So far: `detect`, the anomaly detector on a series of your own.
    #[command(subcommand)]
    Quality(crate::quality::QualityCommand),
    /// AI Ops: the incidents raised from failures, with root cause, class, explanation and
    /// recommended actions.
    #[command(subcommand)]
    Aiops(crate::aiops::AiopsCommand),
    /// The incident store: list, show, acknowledge, resolve, reopen, note, give feedback.
    #[command(subcommand)]
    Incidents(crate::incidents::IncidentsCommand),
    /// Score detection, root cause and classification on scenario files whose truth is known
    /// (each run from scratch in a fresh database; see the README's scoring rules).
    Eval(crate::eval::EvalArgs),
    /// Benchmarks (one command each; see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(heal_bench::BenchCommand),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Roles to run, comma-separated: generator, ingest, batch, quality, lineage, aiops,
    /// incidents, or `all`.
    #[arg(long, env = "HEAL_ROLES", default_value = "all", value_name = "ROLES")]
    pub roles: RoleSet,
    /// Listen address in monolithic mode (all roles on one port).
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: Option<String>,
    /// Check the configuration for these roles, print it (secrets hidden) and exit.
    #[arg(long)]
    pub check_config: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Only list applied migrations.
    #[arg(long)]
    pub status: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(&cli.global, args).await,
        Command::Demo(args) => demo::demo(&cli.global, args).await,
        Command::Migrate(args) => migrate(&cli.global, args).await,
        Command::Generate(args) => ops::generate(&cli.global, args).await,
        Command::Quarantine(cmd) => ops::quarantine(&cli.global, cmd).await,
        Command::Batch(cmd) => crate::batch::batch(&cli.global, cmd).await,
        Command::Lineage(cmd) => crate::lineage::lineage(&cli.global, cmd).await,
        Command::Quality(cmd) => crate::quality::quality(&cli.global, cmd).await,
        Command::Aiops(cmd) => crate::aiops::aiops(&cli.global, cmd).await,
        Command::Incidents(cmd) => crate::incidents::incidents(&cli.global, cmd).await,
        Command::Eval(args) => crate::eval::eval(&cli.global, args).await,
        Command::Bench(cmd) => heal_bench::bench(&cli.global, cmd).await,
    }
}

async fn run(global: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut extra = Vec::new();
    if let Some(a) = &args.http_addr {
        extra.push(("--http-addr", "http_addr", a.clone()));
    }
    let config = load_config(global, &extra)?;
    if args.check_config {
        let (mode, running) = heal_server::App::check(&config, &args.roles)?;
        let mut shown = serde_json::to_value(&config)?;
        for secret in ["/database/password", "/neo4j/password"] {
            if let Some(v) = shown.pointer_mut(secret) {
                if !v.is_null() {
                    *v = serde_json::json!("***");
                }
            }
        }
        if let Some(url) = shown.pointer_mut("/database/url") {
            if let Some(s) = url.as_str() {
                *url = serde_json::json!(heal_store::redact(s));
            }
        }
        let report = serde_json::json!({
            "mode": format!("{mode:?}").to_lowercase(),
            "roles": running.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "config": shown,
        });
        match args.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Table => {
                println!(
                    "configuration OK: {} mode, roles {}",
                    report["mode"].as_str().unwrap_or(""),
                    running
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                println!("{}", toml_like(&report["config"], ""));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let app = heal_server::App::create(config, &args.roles).await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight work");
        let _ = tx.send(true);
    });
    app.start(rx, None).await.context("service failed")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn toml_like(v: &serde_json::Value, prefix: &str) -> String {
    let mut out = String::new();
    if let Some(obj) = v.as_object() {
        for (k, v) in obj {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_object() {
                out.push_str(&toml_like(v, &key));
            } else {
                out.push_str(&format!("  {key} = {v}\n"));
            }
        }
    }
    out
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn migrate(global: &Global, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(global, &[])?;
    let db = heal_store::Database::open(
        config.database_url().as_deref(),
        config.database.max_connections,
        &config.data_dir,
    )
    .await?;
    if !args.status {
        db.migrate().await?;
    }
    let applied = db.applied_migrations().await.unwrap_or_default();
    let known: Vec<(i64, String)> = heal_store::MIGRATOR
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    db.close().await;
    let rows: Vec<serde_json::Value> = known
        .iter()
        .map(|(v, d)| {
            serde_json::json!({
                "version": v,
                "description": d,
                "applied": applied.iter().any(|(a, _)| a == v),
            })
        })
        .collect();
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Table => {
            let mut t = crate::output::table(&["version", "description", "applied"]);
            for r in &rows {
                t.add_row(vec![
                    r["version"].to_string(),
                    r["description"].as_str().unwrap_or("").to_string(),
                    if r["applied"].as_bool() == Some(true) {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                ]);
            }
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
