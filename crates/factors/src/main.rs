//! `factors`: see `factors --help`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match factors::cli::run(factors::cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Before (or without) telemetry, stderr is the only place a start-up error can go.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("factors: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}
