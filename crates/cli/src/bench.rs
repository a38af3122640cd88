//! Benchmarks, one command each (figures go to docs/benchmarks.md).

use crate::cli::Global;
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput: Kafka → PostgreSQL server, embedded path, and plain COPY reference.
    Ingest(IngestBenchArgs),
}

#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// Events to ingest.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
}

pub async fn bench(_global: &Global, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest(args) => {
            anyhow::bail!("bench ingest ({} events) is being written", args.events)
        }
    }
}
