//! `heal`: one binary for every role of the self-healing analytics platform, plus the
//! commands operators and developers use around it.

mod aiops;
mod batch;
mod cli;
mod demo;
mod eval;
mod incidents;
mod lineage;
mod ops;
mod quality;

use heal_clikit::output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
