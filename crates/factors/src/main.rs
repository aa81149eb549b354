//! `factors`: see `factors --help`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// values across threads, where glibc's malloc spent about a fifth of the process's
/// instructions (see bench/REPORT.md). Built with `no_thp`: mimalloc otherwise asks for
/// transparent huge pages, and on a kernel that grants them (`madvise` mode, the common
/// default) every 2 MiB its arenas touch becomes resident: about 56 MB idle instead of 35.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
