//! Operator commands: `heal generate` and `heal quarantine list|show|replay`.

use crate::cli::{load_config, Global, OutputFormat};
use crate::output::{count, progress, table};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use heal_generator::{InjectionRecord, Scenario};
use heal_ingest::quarantine::{self, Filter};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Scenario file (TOML) describing the run and the faults to inject; see scenarios/.
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Write the events as NDJSON to FILE (`-` for stdout) instead of publishing to Kafka.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Do not record the ground truth of injected faults in the database.
    #[arg(long)]
    pub no_truth: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn generate(global: &Global, args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(global, &[])?;
    let scenario = Scenario::load(&args.scenario)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    // Job faults are recorded before the events go out (a running batch role reads them).
    let truth_first = !args.no_truth && heal_generator::role::truth_first(&scenario);
    if truth_first {
        let db = crate::cli::open_database(&config).await?;
        let truth = heal_generator::role::dry_run(&scenario);
        heal_store::faults::record_ground_truth(db.pool(), &run_id, &scenario.name, &truth).await?;
        db.close().await;
    }
    let (sent, truth) = match &args.out {
        Some(path) => {
            let mut out: Box<dyn Write> = if path.as_os_str() == "-" {
                Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                ))
            };
            heal_generator::role::write_scenario(&scenario, &mut out)?
        }
        None => {
            let Some(servers) = config.kafka.bootstrap_servers.as_deref() else {
                bail!("no Kafka configured: set KAFKA_BOOTSTRAP_SERVERS to publish, or use --out FILE (or --out - for stdout)");
            };
            let bus = heal_bus::Bus::new(Some(servers))?;
            bus.create_topics(
                &heal_model::topics::ALL,
                config.kafka.partitions,
                config.kafka.replication_factor,
            )
            .await?;
            let bar = progress("generate", 0);
            let result =
                heal_generator::role::publish_scenario(&bus, &scenario, |sent, expected| {
                    bar.set_length(expected);
                    bar.set_position(sent);
                })
                .await?;
            bar.finish_and_clear();
            result
        }
    };
    if !args.no_truth && !truth_first {
        let db = crate::cli::open_database(&config).await?;
        heal_store::faults::record_ground_truth(db.pool(), &run_id, &scenario.name, &truth).await?;
        db.close().await;
    }
    let summary = serde_json::json!({
        "run_id": run_id,
        "scenario": scenario.name,
        "events": sent,
        "faults": truth,
    });
    match args.output {
        OutputFormat::Json => eprintln!("{}", serde_json::to_string_pretty(&summary)?),
        OutputFormat::Table => {
            eprintln!(
                "generated {} events of scenario {:?} (run {run_id})",
                count(sent as i64),
                scenario.name
            );
            if !truth.is_empty() {
                eprintln!("{}", fault_table(&truth));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The ground truth of a run as a table.
pub fn fault_table(truth: &[InjectionRecord]) -> comfy_table::Table {
    let mut t = table(&[
        "fault",
        "target",
        "window (UTC)",
        "affected",
        "expected outcome",
    ]);
    for r in truth {
        t.add_row(vec![
            r.kind.to_string(),
            r.target.clone(),
            format!(
                "{} → {}",
                r.window_start.format("%m-%d %H:%M"),
                r.window_end.format("%m-%d %H:%M")
            ),
            count(r.affected_count as i64),
            r.expected.clone(),
        ]);
    }
    t
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined events (newest last).
    List {
        /// Only this reason code (e.g. malformed_json, schema_drift).
        #[arg(long)]
        reason: Option<String>,
        /// Only this status: open, replayed or discarded.
        #[arg(long)]
        status: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show one quarantined event, with its bytes.
    Show {
        id: i64,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Decode quarantined events again and ingest those that now pass.
    Replay {
        /// Quarantine ids to replay (repeatable).
        #[arg(long = "id")]
        ids: Vec<i64>,
        /// Replay every open event with this reason.
        #[arg(long)]
        reason: Option<String>,
        /// Replay every open event.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

pub async fn quarantine(global: &Global, cmd: QuarantineCommand) -> anyhow::Result<ExitCode> {
    let config = load_config(global, &[])?;
    let db = crate::cli::open_database(&config).await?;
    let pool = db.pool().clone();
    let result = match cmd {
        QuarantineCommand::List {
            reason,
            status,
            limit,
            output,
        } => {
            if let Some(s) = &status {
                if !matches!(s.as_str(), "open" | "replayed" | "discarded") {
                    bail!("--status {s:?} is not one of open, replayed, discarded");
                }
            }
            let rows = quarantine::list(
                &pool,
                &Filter {
                    reason,
                    status,
                    ids: Vec::new(),
                    limit,
                },
            )
            .await?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                OutputFormat::Table => {
                    let mut t = table(&[
                        "id", "received", "source", "event id", "reason", "detail", "status",
                    ]);
                    for r in &rows {
                        let source = match (r.source_partition, r.source_offset) {
                            (Some(p), Some(o)) => format!(
                                "{}[{p}]@{o}",
                                r.source_topic.as_deref().unwrap_or(&r.source)
                            ),
                            _ => r.source.clone(),
                        };
                        let mut detail = r.detail.clone();
                        if detail.chars().count() > 70 {
                            detail = detail.chars().take(69).collect::<String>() + "…";
                        }
                        t.add_row(vec![
                            r.id.to_string(),
                            r.received_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            source,
                            r.event_id.clone().unwrap_or_else(|| "-".into()),
                            r.reason.clone(),
                            detail,
                            r.status.clone(),
                        ]);
                    }
                    println!("{t}");
                    println!("{} row(s)", rows.len());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Show { id, output } => match quarantine::show(&pool, id).await? {
            None => {
                eprintln!("no quarantined event with id {id}");
                Ok(ExitCode::from(3))
            }
            Some(rec) => {
                match output {
                    OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rec)?),
                    OutputFormat::Table => {
                        let e = &rec.entry;
                        println!("id:        {}", e.id);
                        println!("received:  {}", e.received_at);
                        println!(
                            "source:    {} topic={:?} partition={:?} offset={:?}",
                            e.source, e.source_topic, e.source_partition, e.source_offset
                        );
                        println!("event id:  {}", e.event_id.as_deref().unwrap_or("-"));
                        println!("reason:    {}", e.reason);
                        println!("detail:    {}", e.detail);
                        println!(
                            "status:    {} (replayed {} time(s))",
                            e.status, e.replay_attempts
                        );
                        if let Some(err) = &e.last_replay_error {
                            println!("last replay error: {err}");
                        }
                        println!("bytes ({}):", e.size);
                        println!("{}", rec.raw_text);
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        },
        QuarantineCommand::Replay {
            ids,
            reason,
            all,
            output,
        } => {
            if ids.is_empty() && reason.is_none() && !all {
                bail!("name what to replay: --id N (repeatable), --reason CODE, or --all");
            }
            let ingestor =
                heal_ingest::Ingestor::new(pool.clone(), heal_ingest::Settings::default()).await?;
            let report = quarantine::replay(
                &ingestor,
                &Filter {
                    reason,
                    status: None,
                    ids,
                    limit: 0,
                },
            )
            .await?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                OutputFormat::Table => {
                    println!(
                        "examined {}, ingested {}, already stored {}, still failing {}",
                        report.examined, report.ingested, report.duplicates, report.still_failing
                    );
                    if !report.failures.is_empty() {
                        let mut t = table(&["id", "reason", "detail"]);
                        for f in report.failures.iter().take(20) {
                            t.add_row(vec![f.id.to_string(), f.reason.clone(), f.detail.clone()]);
                        }
                        println!("{t}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    db.close().await;
    result
}
