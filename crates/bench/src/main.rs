//! factors-bench: the benchmark harness of factors, in one command.
//!
//! ```sh
//! cargo run --release -p factors-bench -- [--quick] [--users N] [--duration 10s] [--redis]
//!                                          [--store both|postgres|sqlite]
//! ```
//!
//! It builds the service, seeds PostgreSQL and SQLite files, drives the service over HTTP
//! with wrk and PostgreSQL with pgbench (replaying the service's own statements, to
//! measure the limit the service is compared with), samples CPU and memory from `/proc`,
//! profiles the service with perf, and writes `bench/REPORT.md`. It orchestrates those
//! tools and generates no measured load itself. For comparison it also serves the same
//! statements behind a bare HTTP server (the HTTP floor, [`floor`]), on either store: this
//! binary again, started with a hidden `--floor-server` option.
//!
//! Modules, in the order a run uses them: [`options`], [`tools`], [`workspace`],
//! [`machine`], [`database`], [`ledger`], [`pgbench`], [`service`], [`wrk`], [`procfs`],
//! [`floor`], [`profile`], [`cache_server`], [`sqlite`], [`report`]; [`scenario`] puts
//! them in sequence.

// Printing progress on stdout is this tool's job: a run takes minutes, and the person who
// started it wants to see where it is.
#![allow(clippy::print_stdout)]

mod cache_server;
mod database;
mod floor;
mod ledger;
mod machine;
mod options;
mod pgbench;
mod procfs;
mod profile;
mod proxies;
mod report;
mod scenario;
mod service;
mod sqlite;
mod tools;
mod workspace;
mod wrk;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let options = options::Options::parse();
    let done = match &options.floor_server {
        Some(addr) => floor::serve(addr, &options.database_url, options.floor_removal).await,
        None => scenario::main(options).await,
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole chain: the outermost context says what failed, the rest why.
            println!("factors-bench failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}
