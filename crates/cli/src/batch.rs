//! `heal batch run|backfill|status|runs`: the batch engine from the command line, against the
//! configured database (events go to Kafka when it is configured).

use crate::cli::{load_config, Global, OutputFormat};
use crate::output::{count, progress, table};
use anyhow::bail;
use chrono::NaiveDate;
use clap::Subcommand;
use heal_batch::status::{self, RunFilter};
use heal_batch::{Engine, Report, Selection, Trigger};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Run jobs (all when none is named) on the partitions whose inputs changed, in dependency
    /// order; with --date, recompute that day.
    Run {
        /// Jobs to run (see `heal batch status`).
        jobs: Vec<String>,
        /// Recompute this day (YYYY-MM-DD) even if its inputs did not change.
        #[arg(long, value_name = "DAY")]
        date: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Recompute a range of days for a job and everything downstream of it (every job when
    /// --job is not given).
    Backfill {
        #[arg(long, value_name = "DAY")]
        from: NaiveDate,
        #[arg(long, value_name = "DAY")]
        to: NaiveDate,
        #[arg(long, value_name = "JOB")]
        job: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Every job with its schedule, state, latest partition, freshness and last run.
    Status {
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// The run history, newest first.
    Runs {
        #[arg(long)]
        job: Option<String>,
        /// running, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 30)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

pub async fn batch(global: &Global, cmd: BatchCommand) -> anyhow::Result<ExitCode> {
    let config = load_config(global, &[])?;
    let db = crate::cli::open_database(&config).await?;
    let bus = match &config.kafka.bootstrap_servers {
        Some(servers) => Some(heal_bus::Bus::new(Some(servers))?),
        None => None,
    };
    let engine = Engine::new(db.pool().clone(), bus, heal_server::batch_settings(&config))?;
    let code = match cmd {
        BatchCommand::Run { jobs, date, output } => {
            let sel = Selection {
                from: date,
                to: date,
                force: date.is_some(),
            };
            let report = run_with_progress(&engine, &jobs, Trigger::Manual, sel, output).await?;
            print_report(&report, output)?
        }
        BatchCommand::Backfill {
            from,
            to,
            job,
            output,
        } => {
            if from > to {
                bail!("--from {from} is after --to {to}");
            }
            let jobs: Vec<String> = match &job {
                Some(j) => {
                    let chain = engine.dag().with_descendants(j);
                    if chain.is_empty() {
                        bail!("no job is named {j:?}");
                    }
                    chain.iter().map(|j| j.name.to_string()).collect()
                }
                None => Vec::new(),
            };
            let sel = Selection {
                from: Some(from),
                to: Some(to),
                force: true,
            };
            let report = run_with_progress(&engine, &jobs, Trigger::Backfill, sel, output).await?;
            print_report(&report, output)?
        }
        BatchCommand::Status { output } => {
            let schedules = heal_batch::Schedules::build(
                &engine,
                &config.batch.default_schedule,
                &config.batch.schedules,
            )?;
            let jobs = status::jobs(&engine, Some(&schedules)).await?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&jobs)?),
                OutputFormat::Table => {
                    let mut t = table(&[
                        "job",
                        "schedule",
                        "state",
                        "partitions",
                        "latest",
                        "fresh",
                        "pending",
                        "last run",
                    ]);
                    for j in &jobs {
                        let last = j
                            .last_run
                            .as_ref()
                            .map(|r| format!("{} {} ({} attempt(s))", r.day, r.status, r.attempts))
                            .unwrap_or_else(|| "-".into());
                        t.add_row(vec![
                            j.name.clone(),
                            j.schedule.clone().unwrap_or_default(),
                            j.state.clone(),
                            j.partitions.to_string(),
                            j.latest_partition
                                .map(|d| d.to_string())
                                .unwrap_or_else(|| "-".into()),
                            j.freshness_secs
                                .map(|s| format!("{s}s ago"))
                                .unwrap_or_else(|| "-".into()),
                            j.pending_days.len().to_string(),
                            last,
                        ]);
                    }
                    println!("{t}");
                }
            }
            ExitCode::SUCCESS
        }
        BatchCommand::Runs {
            job,
            status: st,
            limit,
            output,
        } => {
            let rows = status::runs(
                &engine,
                &RunFilter {
                    job,
                    status: st,
                    day: None,
                    limit: Some(limit),
                },
            )
            .await?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                OutputFormat::Table => {
                    let mut t = table(&[
                        "started", "job", "day", "trigger", "status", "attempts", "read",
                        "written", "error",
                    ]);
                    for r in &rows {
                        t.add_row(vec![
                            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            r.job.clone(),
                            r.day.to_string(),
                            r.trigger.clone(),
                            r.status.clone(),
                            r.attempts.to_string(),
                            r.rows_read.map(count).unwrap_or_else(|| "-".into()),
                            r.rows_written.map(count).unwrap_or_else(|| "-".into()),
                            r.error.clone().unwrap_or_default(),
                        ]);
                    }
                    println!("{t}");
                    println!("{} run(s)", rows.len());
                }
            }
            ExitCode::SUCCESS
        }
    };
    db.close().await;
    Ok(code)
}

/// Runs the jobs one at a time in dependency order, with a progress bar over jobs.
pub async fn run_with_progress(
    engine: &Engine,
    jobs: &[String],
    trigger: Trigger,
    sel: Selection,
    output: OutputFormat,
) -> anyhow::Result<Report> {
    for j in jobs {
        if engine.dag().get(j).is_none() {
            bail!("no job is named {j:?}; see `heal batch status`");
        }
    }
    let order: Vec<&str> = engine
        .dag()
        .ordered()
        .map(|j| j.name)
        .filter(|n| jobs.is_empty() || jobs.iter().any(|j| j == n))
        .collect();
    let bar = progress("jobs", order.len() as u64);
    if output == OutputFormat::Json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut report = Report::default();
    for name in order {
        bar.set_message(name.to_string());
        let r = engine.run(&[name], trigger, sel).await?;
        report.runs.extend(r.runs);
        report.waiting.extend(r.waiting);
        report.skipped.extend(r.skipped);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report)
}

fn print_report(report: &Report, output: OutputFormat) -> anyhow::Result<ExitCode> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        OutputFormat::Table => {
            if report.runs.is_empty() && report.waiting.is_empty() {
                println!("every partition is up to date; nothing to run");
            }
            if !report.runs.is_empty() {
                let mut t = table(&[
                    "job", "day", "status", "attempts", "read", "written", "error",
                ]);
                for r in &report.runs {
                    t.add_row(vec![
                        r.job.clone(),
                        r.day.to_string(),
                        if r.succeeded { "succeeded" } else { "failed" }.to_string(),
                        r.attempts.to_string(),
                        count(r.rows_read),
                        count(r.rows_written),
                        r.error.clone().unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
            for c in &report.skipped {
                println!(
                    "skipped: {} {} is being run by another worker",
                    c.job, c.day
                );
            }
            for w in &report.waiting {
                println!(
                    "waiting: {} {} needs {} {} first",
                    w.job, w.day, w.upstream, w.upstream_day
                );
            }
        }
    }
    Ok(if report.failed() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
