//! `heal quality …`. So far: `heal quality detect`, the anomaly detector on a user's own
//! series, to tune sensitivity before checks use it.

use crate::cli::OutputFormat;
use crate::output::table;
use anyhow::{bail, Context};
use clap::Subcommand;
use heal_quality::{detect, parse_csv, Settings};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum QualityCommand {
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
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

pub async fn quality(cmd: QualityCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        QualityCommand::Detect {
            input,
            sensitivity,
            period,
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
                                format!("{:?}", f.direction).to_lowercase(),
                            ]);
                        }
                        println!("{t}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
