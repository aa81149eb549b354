//! The command line, and the settings a run derives from it ([`Plan`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Parser;

/// Users seeded by default, and with `--quick`.
const DEFAULT_USERS: u64 = 1_000_000;
const QUICK_USERS: u64 = 50_000;
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const QUICK_DURATION: Duration = Duration::from_secs(3);

/// Benchmark factors: seed PostgreSQL, load the service with wrk, measure the database's
/// own limit with pgbench on the service's statements, profile with perf, and write the
/// report (bench/REPORT.md).
#[derive(Debug, Parser)]
#[command(name = "factors-bench", version)]
pub struct Options {
    /// Users seeded in the main database [default: 1000000; 50000 with --quick]. More are
    /// seeded when the runs need more fresh users than this.
    #[arg(long)]
    pub users: Option<u64>,
    /// Length of every measured run, whole seconds (wrk's resolution) [default: 10s; 3s
    /// with --quick].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Run the Redis variants too (fail when Redis does not answer). Without this flag they
    /// run when Redis answers at 127.0.0.1:6379.
    #[arg(long)]
    pub redis: bool,
    /// A small seed and short runs, to check the harness itself.
    #[arg(long)]
    pub quick: bool,
    /// Skip the perf profile (perf is then not needed).
    #[arg(long)]
    pub no_profile: bool,
    /// Which stores to measure: PostgreSQL (with Redis), the embedded SQLite, or both.
    #[arg(long, value_enum, default_value = "both")]
    pub store: Stores,
    /// The PostgreSQL server; the harness creates and drops its own databases on it.
    // Without TLS by default: on loopback it protects nothing, and the service (rustls)
    // and pgbench (OpenSSL) would otherwise pay different prices for it. The same URL
    // goes to both, so whatever it says applies to both alike.
    #[arg(long, env = "BENCH_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/?sslmode=disable")]
    pub database_url: String,
    /// Where to write the report [default: bench/REPORT.md in the workspace].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Internal: serve the HTTP floor on this address instead of benchmarking (the
    /// harness starts itself so; see `floor`).
    #[arg(long, hide = true)]
    pub floor_server: Option<String>,
    /// Internal: what the floor server's DELETE sends.
    #[arg(long, hide = true, value_enum, default_value = "read-then-write")]
    pub floor_removal: crate::floor::Removal,
}

/// Which stores a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stores {
    Both,
    Postgres,
    Sqlite,
}

impl Stores {
    pub fn postgres(self) -> bool {
        self != Self::Sqlite
    }

    pub fn sqlite(self) -> bool {
        self != Self::Postgres
    }
}

/// Whether the Redis variants run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// `--redis`: they must run.
    Required,
    /// No flag: they run if Redis answers.
    IfAvailable,
}

/// The options with their defaults applied.
#[derive(Debug, Clone)]
pub struct Plan {
    pub users: u64,
    pub duration: Duration,
    pub redis: RedisMode,
    pub profile: bool,
    pub stores: Stores,
    pub database_url: String,
    pub report: Option<PathBuf>,
    /// The arguments as given, for the report.
    pub command_line: String,
}

impl Plan {
    /// # Errors
    /// When the duration is not a positive whole number of seconds, or fewer users than
    /// the smallest useful seed are asked for.
    pub fn from_options(options: Options) -> anyhow::Result<Self> {
        let users = options.users.unwrap_or(if options.quick { QUICK_USERS } else { DEFAULT_USERS });
        let duration = options.duration.unwrap_or(if options.quick { QUICK_DURATION } else { DEFAULT_DURATION });
        ensure!(
            duration.subsec_nanos() == 0 && duration.as_secs() >= 1,
            "--duration {}: wrk and pgbench count whole seconds; give at least 1s",
            humantime::format_duration(duration)
        );
        ensure!(users >= 10_000, "--users {users}: seed at least 10000 users");
        url::Url::parse(&options.database_url).context("--database-url is not a URL")?;
        Ok(Self {
            users,
            duration,
            redis: if options.redis { RedisMode::Required } else { RedisMode::IfAvailable },
            profile: !options.no_profile && options.store.postgres(),
            stores: options.store,
            database_url: options.database_url,
            report: options.report,
            command_line: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        })
    }

    pub fn seconds(&self) -> u64 {
        self.duration.as_secs()
    }
}
