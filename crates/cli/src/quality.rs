//! `heal quality …`: run the checks (`run`), see where they stand (`status`, `results`,
//! `conditions`), validate a checks file (`validate`), and the anomaly detector on a user's
//! own series (`detect`), to tune sensitivity before checks use it.

use crate::cli::{load_config, Global, OutputFormat};
use crate::output::table;
use anyhow::{bail, Context};
use clap::Subcommand;
use heal_quality::{detect, parse_csv, Settings};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum QualityCommand {
    /// Run every check (or one) now against the configured database: windows of event time
    /// that ended since the last run, and what arrived since (quarantine, job runs). Prints a
    /// line per check; failure events go to Kafka when it is configured.
    Run {
        /// Only this check.
        #[arg(long, value_name = "NAME")]
        check: Option<String>,
        /// A checks file instead of `quality.checks_file` (or the built-in checks).
        #[arg(long, value_name = "FILE")]
        checks: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Every check with its latest result, its metric trend and open conditions.
    Status {
        #[arg(long, value_name = "FILE")]
        checks: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Stored results, newest window first.
    Results {
        #[arg(long, value_name = "NAME")]
        check: Option<String>,
        /// pass, fail, error or learning.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 30)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Ongoing (and resolved) failure conditions, newest first.
    Conditions {
        /// open or resolved.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 30)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Validate a checks file against the configured database (tables, columns, and every
    /// query planned by PostgreSQL); prints its checks.
    Validate {
        #[arg(long, value_name = "FILE")]
        checks: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Flag the anomalies of a metric series against its seasonal baseline. Reads CSV with a
    /// header line and `timestamp,value` rows (ISO 8601 or `YYYY-MM-DD HH:MM:SS`, UTC unless
    /// an offset is given; irregular spacing is fine), infers the period, and prints the
    /// flagged points with expected value, band and score. Exit status 0 either way.
    Detect {
        /// The CSV file (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Score above which a point is flagged (higher flags less).
        #[arg(long, default_value_t = Settings::default().sensitivity)]
        sensitivity: f64,
        /// The period in steps of the series (e.g. 24 for hourly data with a daily cycle);
        /// inferred when not given.
        #[arg(long, value_name = "STEPS")]
        period: Option<usize>,
        /// Judge as the checks do: a flagged point teaches nothing, so an abnormal stretch
        /// stays flagged while it lasts (by default a lasting change is flagged at its onset
        /// and then followed).
        #[arg(long)]
        hold: bool,
        /// The series counts events per step: judge as volume checks do (implies `--hold`):
        /// on a log scale, with sustained shifts accumulated over consecutive points and a
        /// weekday profile for hourly data.
        #[arg(long)]
        counts: bool,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Score the detector on a labelled corpus, beside a naive rolling z-score in the same run.
    /// The corpus is a directory with `labels.json` mapping each series file (relative path,
    /// CSV as `detect` reads it) to its anomaly windows `[[start, end], …]` (`[]`: clean).
    /// Prints window recall, flag and episode precision, F1 and detection delay per series and
    /// over the corpus.
    DetectEval {
        /// The corpus directory.
        #[arg(long, value_name = "DIR")]
        corpus: PathBuf,
        /// Score above which the detector flags a point.
        #[arg(long, default_value_t = Settings::default().sensitivity)]
        sensitivity: f64,
        /// Points before a point that the naive z-score compares it with.
        #[arg(long, default_value_t = 288)]
        naive_window: usize,
        /// |z| above which the naive z-score flags a point.
        #[arg(long, default_value_t = 4.0)]
        naive_threshold: f64,
        /// Score the holding judgement (as the checks judge) instead of the adaptive one.
        #[arg(long)]
        hold: bool,
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

async fn engine(
    global: &Global,
    checks: Option<PathBuf>,
) -> anyhow::Result<(
    heal_store::Database,
    heal_quality::Quality,
    heal_config::Config,
)> {
    let mut config = load_config(global, &[])?;
    if checks.is_some() {
        config.quality.checks_file = checks;
    }
    let db = crate::cli::open_database(&config).await?;
    let engine = heal_server::quality_engine(&config, db.pool().clone()).await?;
    Ok((db, engine, config))
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn metric(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e12 => format!("{x:.0}"),
        Some(x) if x.abs() < 1.0 => format!("{x:.4}"),
        Some(x) => format!("{x:.1}"),
    }
}

/// A sparkline of a metric's recent values.
fn spark(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|v| {
            if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

pub async fn quality(global: &Global, cmd: QualityCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        QualityCommand::Run {
            check,
            checks,
            output,
        } => {
            let (db, engine, config) = engine(global, checks).await?;
            let bus = match &config.kafka.bootstrap_servers {
                Some(servers) => Some(heal_bus::Bus::new(Some(servers))?),
                None => None,
            };
            let role = heal_quality::role::QualityRole::new(
                std::sync::Arc::new(engine),
                bus,
                heal_model::topics::DATA_QUALITY_CHECKS,
            );
            let spinner = (output == OutputFormat::Table).then(|| {
                let p = indicatif::ProgressBar::new_spinner();
                p.set_message("running checks");
                p.enable_steady_tick(std::time::Duration::from_millis(200));
                p
            });
            let result = role.run(check.as_deref()).await;
            if let Some(p) = spinner {
                p.finish_and_clear();
            }
            let report = result?;
            db.close().await;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                OutputFormat::Table => {
                    println!(
                        "data clock {}; {} checks in {} ms",
                        report
                            .clock
                            .map(when)
                            .unwrap_or_else(|| "(no data yet)".into()),
                        report.checks.len(),
                        report.wall_ms
                    );
                    let mut t = table(&[
                        "check", "type", "dataset", "judged", "pass", "fail", "learning", "error",
                        "ms",
                    ]);
                    for c in &report.checks {
                        t.add_row(vec![
                            c.check.clone(),
                            c.check_type.clone(),
                            c.dataset.clone(),
                            c.evaluated.to_string(),
                            c.passed.to_string(),
                            c.failed.to_string(),
                            c.learning.to_string(),
                            match &c.error {
                                Some(e) => clip(e, 40),
                                None => c.errored.to_string(),
                            },
                            c.wall_ms.to_string(),
                        ]);
                    }
                    println!("{t}");
                    if !report.events.is_empty() {
                        println!("\nfailure events:");
                        let mut t = table(&[
                            "change", "severity", "check", "dataset", "window", "message",
                        ]);
                        for e in &report.events {
                            t.add_row(vec![
                                format!("{:?}", e.change).to_lowercase(),
                                e.severity.to_string(),
                                e.check.clone(),
                                e.dataset.clone(),
                                format!("{} .. {}", when(e.window_start), when(e.window_end)),
                                clip(&e.message, 70),
                            ]);
                        }
                        println!("{t}");
                    }
                }
            }
            let errored = report.checks.iter().any(|c| c.errored > 0);
            Ok(if errored {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        QualityCommand::Status { checks, output } => {
            let (db, engine, _) = engine(global, checks).await?;
            let rows = heal_quality::report::overview(engine.pool(), engine.checks()).await?;
            db.close().await;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                OutputFormat::Table => {
                    let mut t = table(&[
                        "check",
                        "type",
                        "dataset",
                        "last",
                        "window end",
                        "metric",
                        "trend",
                        "open",
                        "message",
                    ]);
                    for r in &rows {
                        let (status, end, m, msg) = match &r.last {
                            Some(l) => (
                                l.status.clone(),
                                when(l.window_end),
                                metric(l.metric),
                                clip(&l.message, 50),
                            ),
                            None => ("never run".into(), "-".into(), "-".into(), String::new()),
                        };
                        t.add_row(vec![
                            r.name.clone(),
                            r.check_type.clone(),
                            r.dataset.clone(),
                            status,
                            end,
                            m,
                            spark(&r.trend),
                            r.open_conditions.to_string(),
                            msg,
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QualityCommand::Results {
            check,
            status,
            limit,
            output,
        } => {
            if let Some(s) = &status {
                if heal_quality::Status::parse(s).is_none() {
                    bail!("--status {s}: use pass, fail, error or learning");
                }
            }
            if !(1..=10_000).contains(&limit) {
                bail!("--limit {limit}: must be from 1 to 10000");
            }
            let config = load_config(global, &[])?;
            let db = crate::cli::open_database(&config).await?;
            let rows = heal_quality::report::results(
                db.pool(),
                check.as_deref(),
                status.as_deref(),
                limit,
            )
            .await?;
            db.close().await;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                OutputFormat::Table => {
                    let mut t = table(&[
                        "check", "subject", "window", "status", "metric", "expected", "message",
                    ]);
                    for r in &rows {
                        t.add_row(vec![
                            r.check_name.clone(),
                            r.subject.clone(),
                            format!("{} .. {}", when(r.window_start), when(r.window_end)),
                            r.status.clone(),
                            metric(r.metric),
                            metric(r.expected),
                            clip(&r.message, 60),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QualityCommand::Conditions {
            state,
            limit,
            output,
        } => {
            if let Some(s) = &state {
                if s != "open" && s != "resolved" {
                    bail!("--state {s}: use open or resolved");
                }
            }
            if !(1..=10_000).contains(&limit) {
                bail!("--limit {limit}: must be from 1 to 10000");
            }
            let config = load_config(global, &[])?;
            let db = crate::cli::open_database(&config).await?;
            let rows = heal_quality::report::conditions(db.pool(), state.as_deref(), limit).await?;
            db.close().await;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                OutputFormat::Table => {
                    let mut t = table(&[
                        "id",
                        "state",
                        "severity",
                        "check",
                        "subject",
                        "first seen",
                        "last seen",
                        "times",
                        "message",
                    ]);
                    for r in &rows {
                        t.add_row(vec![
                            r.id.to_string(),
                            r.state.clone(),
                            r.severity.clone(),
                            r.check_name.clone(),
                            r.subject.clone(),
                            when(r.first_seen),
                            when(r.last_seen),
                            r.occurrences.to_string(),
                            clip(r.first_event["message"].as_str().unwrap_or(""), 60),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QualityCommand::Validate { checks, output } => {
            let (db, engine, _) = engine(global, checks).await?;
            db.close().await;
            let file = engine.checks();
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(file)?),
                OutputFormat::Table => {
                    println!("{}: {} checks, all valid", file.source, file.checks.len());
                    let mut t = table(&[
                        "check", "type", "dataset", "column", "severity", "every", "window",
                    ]);
                    for c in &file.checks {
                        t.add_row(vec![
                            c.name.clone(),
                            c.kind.type_name().to_string(),
                            c.dataset.clone(),
                            c.column.clone().unwrap_or_default(),
                            c.severity.to_string(),
                            heal_model::duration::format_iso_duration(c.every),
                            heal_model::duration::format_iso_duration(c.window),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QualityCommand::Detect {
            input,
            sensitivity,
            period,
            hold,
            counts,
            output,
        } => {
            if !(sensitivity.is_finite() && sensitivity > 0.0) {
                bail!("--sensitivity {sensitivity}: must be a number above 0");
            }
            if period.is_some_and(|p| p < 2) {
                bail!("--period: must be at least 2 steps");
            }
            let text = if input.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&input)
                    .with_context(|| format!("reading {}", input.display()))?
            };
            let points = parse_csv(&text).with_context(|| format!("{}", input.display()))?;
            let settings = Settings {
                sensitivity,
                period,
                hold: hold || counts,
                counts,
                ..Settings::default()
            };
            let d = detect(&points, &settings).with_context(|| format!("{}", input.display()))?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&d)?),
                OutputFormat::Table => {
                    let human = |secs: i64| match secs {
                        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
                        s if s % 3600 == 0 => format!("{}h", s / 3600),
                        s if s % 60 == 0 => format!("{}min", s / 60),
                        s => format!("{s}s"),
                    };
                    let period = match (d.period, d.period_secs) {
                        (Some(p), Some(s)) => format!(
                            "period {p} steps ({}){}",
                            human(s),
                            if d.period_inferred { ", inferred" } else { "" }
                        ),
                        _ => "no period found: previous points are the baseline".into(),
                    };
                    println!(
                        "{} points, step {}, {period}; {} judged{}; {} flagged at sensitivity {}",
                        d.points,
                        human(d.step_secs),
                        d.judged,
                        d.warmup_until
                            .map(|t| format!(" from {}", t.format("%Y-%m-%d %H:%M:%S")))
                            .unwrap_or_else(|| " (the series is shorter than the warm-up)".into()),
                        d.flags.len(),
                        d.sensitivity
                    );
                    if !d.flags.is_empty() {
                        let mut t = table(&[
                            "timestamp",
                            "value",
                            "expected",
                            "band",
                            "score",
                            "direction",
                        ]);
                        for f in &d.flags {
                            t.add_row(vec![
                                f.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                                format!("{:.2}", f.value),
                                format!("{:.2}", f.expected),
                                format!("{:.2} .. {:.2}", f.lower, f.upper),
                                format!("{:+.1}", f.score),
                                match f.sustained {
                                    Some(_) => format!("{:?}, sustained", f.direction),
                                    None => format!("{:?}", f.direction),
                                }
                                .to_lowercase(),
                            ]);
                        }
                        println!("{t}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QualityCommand::DetectEval {
            corpus,
            sensitivity,
            naive_window,
            naive_threshold,
            hold,
            output,
        } => {
            if !(sensitivity.is_finite() && sensitivity > 0.0) {
                bail!("--sensitivity {sensitivity}: must be a number above 0");
            }
            if naive_window < 2 {
                bail!("--naive-window {naive_window}: must be at least 2");
            }
            detect_eval(
                &corpus,
                Settings {
                    sensitivity,
                    hold,
                    ..Settings::default()
                },
                naive_window,
                naive_threshold,
                output,
            )
        }
    }
}

fn detect_eval(
    corpus: &std::path::Path,
    settings: Settings,
    naive_window: usize,
    naive_threshold: f64,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    use heal_quality::score::{median_step, naive_zscore, parse_labels, score, Score};
    let labels_path = corpus.join("labels.json");
    let text = std::fs::read_to_string(&labels_path)
        .with_context(|| format!("reading {}", labels_path.display()))?;
    let labels = parse_labels(&labels_path.display().to_string(), &text)?;
    let sensitivity = settings.sensitivity;
    let judgement = if settings.hold { "holding" } else { "adaptive" };
    let (mut ours_total, mut naive_total) = (Score::default(), Score::default());
    let mut rows = Vec::new();
    let progress = crate::output::progress("series", labels.len() as u64);
    for (name, windows) in &labels {
        let path = corpus.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let points = parse_csv(&text).with_context(|| format!("{}", path.display()))?;
        let step = median_step(&points);
        let d = detect(&points, &settings).with_context(|| format!("{}", path.display()))?;
        let ours = score(
            &d.flags.iter().map(|f| f.at).collect::<Vec<_>>(),
            windows,
            step,
        );
        let naive = score(
            &naive_zscore(&points, naive_window, naive_threshold),
            windows,
            step,
        );
        ours_total.add(&ours);
        naive_total.add(&naive);
        rows.push((name.clone(), points.len(), ours, naive));
        progress.inc(1);
    }
    progress.finish_and_clear();
    let fmt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    match output {
        OutputFormat::Json => {
            let series: Vec<serde_json::Value> = rows
                .iter()
                .map(|(name, n, o, nv)| {
                    serde_json::json!({
                        "series": name, "points": n,
                        "detector": o.summary(), "naive": nv.summary(),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "corpus": corpus.display().to_string(),
                    "sensitivity": sensitivity,
                    "judgement": judgement,
                    "naive": { "window": naive_window, "threshold": naive_threshold },
                    "detector": ours_total.summary(),
                    "naive_zscore": naive_total.summary(),
                    "series": series,
                }))?
            );
        }
        OutputFormat::Table => {
            let mut t = table(&[
                "series",
                "points",
                "windows",
                "found",
                "flags (in)",
                "episodes (in)",
                "naive found",
                "naive flags (in)",
                "naive episodes (in)",
            ]);
            for (name, n, o, nv) in &rows {
                t.add_row(vec![
                    name.clone(),
                    n.to_string(),
                    o.windows.to_string(),
                    o.windows_found.to_string(),
                    format!("{} ({})", o.flags, o.flags_inside),
                    format!("{} ({})", o.episodes, o.episodes_inside),
                    nv.windows_found.to_string(),
                    format!("{} ({})", nv.flags, nv.flags_inside),
                    format!("{} ({})", nv.episodes, nv.episodes_inside),
                ]);
            }
            println!("{t}");
            let mut t = table(&[
                "detector",
                "window recall",
                "flag precision",
                "episode precision",
                "F1 (flags)",
                "F1 (episodes)",
                "median delay (share of window)",
            ]);
            for (label, s) in [
                (
                    format!("heal ({judgement}), sensitivity {sensitivity}"),
                    &ours_total,
                ),
                (
                    format!("naive z-score, {naive_window} points, |z| > {naive_threshold}"),
                    &naive_total,
                ),
            ] {
                t.add_row(vec![
                    label,
                    fmt(s.recall()),
                    fmt(s.flag_precision()),
                    fmt(s.episode_precision()),
                    fmt(s.f1_flags()),
                    fmt(s.f1_episodes()),
                    fmt(s.median_delay()),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
