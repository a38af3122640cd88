//! What the `heal` command line and the benchmarks share: the global flags and how they
//! load the configuration, the output format flag, and terminal output (`output`).

pub mod output;

use clap::{Args, ValueEnum};
use heal_config::Config;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (TOML). Default: ./heal.toml if it exists.
    #[arg(long, global = true, env = "HEAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where embedded state (the embedded PostgreSQL) lives [default: .heal].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Log level or filter (e.g. info, debug, heal_ingest=debug).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// Loads the configuration with the CLI flags given to this command on top.
pub fn load_config(
    global: &Global,
    extra: &[(&'static str, &'static str, String)],
) -> anyhow::Result<Config> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let (file, required) = match &global.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("heal.toml"), false),
    };
    let mut flags: Vec<(&str, &str, String)> = Vec::new();
    if let Some(d) = &global.data_dir {
        flags.push(("--data-dir", "data_dir", d.display().to_string()));
    }
    if let Some(f) = global.log_format {
        let v = match f {
            LogFormatArg::Text => "text",
            LogFormatArg::Json => "json",
        };
        flags.push(("--log-format", "log_format", v.to_string()));
    }
    if let Some(l) = &global.log_level {
        flags.push(("--log-level", "log_level", l.clone()));
    }
    flags.extend(extra.iter().map(|(a, b, c)| (*a, *b, c.clone())));
    let config = Config::load(Some(&file), required, &env, &flags)?;
    heal_server::telemetry::init_logs(config.log_format, &config.log_level);
    Ok(config)
}

/// The configured database (a server by URL, else the embedded engine in the data
/// directory), migrated to this binary's schema.
pub async fn open_database(config: &Config) -> anyhow::Result<heal_store::Database> {
    let db = heal_store::Database::open(
        config.database_url().as_deref(),
        config.database.max_connections,
        &config.data_dir,
    )
    .await?;
    db.migrate().await?;
    Ok(db)
}
