//! The run, step by step: tools, build, a launch on a database that does not exist yet,
//! the small database of the scale comparison, the main database with the calibration
//! that sizes every run (and seeds more users if they need more), the database's limits,
//! the service without Redis (with sign-in and the profile) and the HTTP floor, the Redis
//! variants, the scale runs on the small database, then the embedded store ([`embedded`]);
//! then the clean-up, which follows whatever happened, and the report. `--store` picks the
//! stores. Every removal run gets users of its own from a [`Ledger`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};

use crate::cache_server;
use crate::database::{self, Removals, Server};
use crate::floor::{Floor, Removal};
use crate::ledger::{Ledger, UserRange, allotment};
use crate::machine::Machine;
use crate::options::{Options, Plan, RedisMode};
use crate::pgbench::{self, Length, Script};
use crate::procfs::{CpuMeter, Memory};
use crate::profile;
use crate::proxies::{Proxy, Route};
use crate::report::{self, DbKind, DbRun, HttpKind, HttpRun, MemoryFigure, Purpose, Report, Store};
use crate::service::{self, Launch, Service};
use crate::sqlite::SqliteFile;
use crate::tools;
use crate::workspace;
use crate::wrk::{self, Load};

mod embedded;

/// The databases a run creates; all are dropped at the end.
const MAIN_DB: &str = "factors_bench_main";
const SCALE_DB: &str = "factors_bench_scale";
const FRESH_DB: &str = "factors_bench_fresh";
/// Users of the small database of the scale comparison.
const SCALE_USERS: u64 = 10_000;
/// Connections (wrk) and clients (pgbench) of the removal runs.
const CONCURRENCY: [u64; 2] = [8, 32];
/// The highest of them: the service's pool size, and the unit allotments are rounded to.
const MAX_CONCURRENCY: u64 = 32;
/// Connections of the reads (GetUser, /healthz, LOAD_USER).
const READ_CONCURRENCY: u64 = 32;
/// Connections of the profiled run, of the removal scale runs and of the sign-ins.
const SMALL_CONCURRENCY: u64 = 8;
/// Length of the GetUser scale runs: they consume no users.
const SCALE_READ_SECONDS: u64 = 2;
/// The calibration: a bounded run (`-t`) of each removal script, whose rates size every
/// later run before any of them starts.
const CALIBRATION_CLIENTS: u64 = 8;
const CALIBRATION_USERS: u64 = 4096;
/// Fresh users a run gets over its expected rate × time: rates vary by half from one run
/// to the next on a shared machine.
const MARGIN: f64 = 2.0;
/// Length of the unmeasured warm-up after each start of the service.
const WARM_UP_SECONDS: u64 = 1;

/// Runs the benchmark and writes the report.
///
/// # Errors
/// Whatever stopped the run; the databases are dropped and the Redis keys deleted all the
/// same.
pub async fn main(options: Options) -> anyhow::Result<()> {
    let plan = Plan::from_options(options)?;
    let started = Instant::now();
    let server = Server::new(&plan.database_url)?;
    let prefix = cache_server::unique_prefix();
    let result = tokio::select! {
        result = run(&plan, &server, &prefix) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    // Dropping the run above killed the service, if it was up (kill_on_drop).
    let cleanup = clean_up(&server, &prefix).await;
    let mut report = result?;
    report.notes.extend(cleanup);
    report.total = started.elapsed();
    let path = match &plan.report {
        Some(path) => path.clone(),
        None => workspace::root()?.join("bench").join("REPORT.md"),
    };
    let written = report::write(&report, &path)?;
    println!("\nreport written to {} (the run took {:.0} s)", written.display(), report.total.as_secs_f64());
    Ok(())
}

/// Drops the bench databases and deletes this run's Redis keys; returns what failed.
async fn clean_up(server: &Server, prefix: &str) -> Vec<String> {
    println!("cleaning up: dropping the bench databases, deleting the Redis keys of {prefix}");
    let mut problems = Vec::new();
    for name in [MAIN_DB, SCALE_DB, FRESH_DB] {
        if let Err(error) = server.drop_database(name).await {
            problems.push(format!("clean-up: {error:#}"));
        }
    }
    if cache_server::answers().await {
        match cache_server::delete_prefix(prefix.to_owned()).await {
            Ok(deleted) => println!("deleted {deleted} Redis keys"),
            Err(error) => problems.push(format!("clean-up: {error:#}")),
        }
    }
    for problem in &problems {
        println!("{problem}");
    }
    problems
}

async fn run(plan: &Plan, server: &Server, prefix: &str) -> anyhow::Result<Report> {
    tools::ensure(plan.stores.postgres(), plan.profile).await?;
    let root = workspace::root()?;
    let target = workspace::target_dir(&root).await?;
    // Scratch files (scripts, logs, perf data) stay in the target dir, out of git.
    let scratch = target.join("factors-bench");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let binary = workspace::build_service(&root, &target).await?;
    let config_dir = root.join("config");
    let machine = Machine::describe(server.version().await?, plan.profile).await;
    let redis = plan.stores.postgres()
        && match plan.redis {
            RedisMode::Required => {
                ensure!(cache_server::answers().await, "--redis: Redis does not answer at {}", cache_server::URL);
                true
            }
            RedisMode::IfAvailable => cache_server::answers().await,
        };
    let token = service::mint_token(&binary, &config_dir, "ORG_USER_MANAGER").await?;
    let login_token = service::mint_token(&binary, &config_dir, "IAM_LOGIN_CLIENT").await?;
    let wrk_script = scratch.join("factors-bench.lua");
    wrk::write_script(&wrk_script)?;
    let report = Report {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        commit: workspace::git_commit(&root).await,
        machine: Some(machine),
        command_line: plan.command_line.clone(),
        users_asked: plan.users,
        seconds: plan.seconds(),
        redis: redis.then(|| format!("run (Redis at {}, key prefix {prefix})", cache_server::URL)),
        profile_wanted: plan.profile,
        database: server.display(),
        ..Report::default()
    };
    let mut bench = Bench {
        plan,
        server,
        scratch,
        binary,
        config_dir,
        wrk_script,
        token,
        login_token,
        prefix,
        rates: Rates::default(),
        spent: UserRange { first: 1, count: 1 },
        report,
    };

    if plan.stores.postgres() {
        bench.launch_on_missing_database().await?;
        bench.create(SCALE_DB, SCALE_USERS).await?;
        let mut small = Ledger::new(SCALE_USERS);
        let mut main = bench.main_database(redis).await?;
        let scale_seconds = bench.scale_seconds(small.left());
        bench.without_redis(&mut main, scale_seconds).await?;
        if redis {
            bench.with_redis(&mut main).await?;
        } else {
            println!("Redis does not answer at {}: skipping the Redis variants", cache_server::URL);
        }
        // After the runs the targets are read from, as before this step existed: its six
        // runs and PgBouncer's server connections are not the Redis variants' background.
        bench.through_proxies(&mut main).await?;
        bench.scale_on_small_database(&mut small, scale_seconds).await?;
    }
    if plan.stores.sqlite() {
        bench.embedded().await?;
    }
    Ok(bench.report)
}

/// What a run consumes users for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Category {
    OneStatement,
    ReadThenWrite,
    ColdRemoval,
    WarmRemoval,
    /// A cold removal on SQLite.
    SqliteRemoval,
}

/// The highest rate seen per category, at any concurrency: what the next run may reach.
/// (The calibration runs at 8 only, and a run at 32 is sometimes faster, sometimes
/// slower: the highest of all is the safe guess.)
#[derive(Debug, Default)]
struct Rates(HashMap<Category, f64>);

impl Rates {
    fn record(&mut self, category: Category, rate: f64) {
        let seen = self.0.entry(category).or_insert(0.0);
        *seen = seen.max(rate);
    }

    /// The rate to size a run by. Until the service has run, the limits of what it does
    /// stand in: the read + guarded write for a cold removal, the one statement for a
    /// warm one (an overestimate, which only seeds more).
    fn expected(&self, category: Category) -> f64 {
        let seen = |category| self.0.get(&category).copied().filter(|rate| *rate > 0.0);
        let rate = match category {
            Category::OneStatement | Category::ReadThenWrite | Category::SqliteRemoval => seen(category),
            Category::ColdRemoval => seen(category).or_else(|| seen(Category::ReadThenWrite)),
            Category::WarmRemoval => seen(category).or_else(|| seen(Category::OneStatement)),
        };
        rate.unwrap_or(1.0)
    }
}

/// A run in progress: where things are, the token, and the figures so far.
struct Bench<'a> {
    plan: &'a Plan,
    server: &'a Server,
    scratch: PathBuf,
    binary: PathBuf,
    config_dir: PathBuf,
    wrk_script: PathBuf,
    /// An ORG_USER_MANAGER of the seeded organization: reads and removals.
    token: String,
    /// An IAM_LOGIN_CLIENT: sign-ins.
    login_token: String,
    prefix: &'a str,
    rates: Rates,
    /// Users already removed (the calibration's): warm-ups read these, so they put no
    /// user in the cache that a cold run will remove later.
    spent: UserRange,
    report: Report,
}

/// A wrk run to do.
struct HttpSpec {
    kind: HttpKind,
    purpose: Purpose,
    redis: bool,
    load: Load,
    connections: u64,
    database: Database,
    database_users: u64,
}

/// Where a run's data is: a PostgreSQL database of the server, or a SQLite file.
#[derive(Debug, Clone)]
enum Database {
    Postgres(&'static str),
    Sqlite(SqliteFile),
}

impl Database {
    fn store(&self) -> Store {
        match self {
            Self::Postgres(_) => Store::Postgres,
            Self::Sqlite(_) => Store::Sqlite,
        }
    }

    /// A checkpoint before a measured run (see [`database::checkpoint`] and
    /// [`SqliteFile::checkpoint`]).
    async fn checkpoint(&self, server: &Server) -> anyhow::Result<()> {
        match self {
            Self::Postgres(name) => database::checkpoint(&server.database_url(name)).await,
            Self::Sqlite(file) => file.checkpoint().await,
        }
    }

    /// The users a load removes from, and what the database holds for them afterwards.
    async fn removed_by(&self, server: &Server, load: Load) -> anyhow::Result<(Option<UserRange>, Option<Removals>)> {
        let Load::Remove(range) = load else { return Ok((None, None)) };
        let removed = match self {
            Self::Postgres(name) => database::removals(&server.database_url(name), range).await?,
            Self::Sqlite(file) => file.removals(range).await?,
        };
        Ok((Some(range), Some(removed)))
    }

    fn wal_bytes(&self) -> Option<u64> {
        match self {
            Self::Postgres(_) => None,
            Self::Sqlite(file) => Some(file.wal_bytes()),
        }
    }
}

impl Bench<'_> {
    fn launch(&self, database: &str, redis: bool, log: &str) -> Launch {
        self.launch_on(self.server.database_url(database), redis, log)
    }

    /// How to start the service on the store `database_url` names.
    fn launch_on(&self, database_url: String, redis: bool, log: &str) -> Launch {
        Launch {
            binary: self.binary.clone(),
            config_dir: self.config_dir.clone(),
            database_url,
            redis: redis.then(|| (cache_server::URL.to_owned(), self.prefix.to_owned())),
            max_connections: MAX_CONCURRENCY,
            log: self.scratch.join(log),
            pooled: None,
        }
    }

    /// The users a run of `category` may consume in `seconds`, at the rate seen so far.
    fn allotment(&self, category: Category, seconds: u64) -> u64 {
        allotment(self.rates.expected(category), seconds, MARGIN, MAX_CONCURRENCY)
    }

    /// The scale runs stay within the small database: 1 or 2 s at the cold removal's rate.
    fn scale_seconds(&self, users: u64) -> u64 {
        self.scale_seconds_at(users, Category::ColdRemoval)
    }

    /// As [`Self::scale_seconds`], at the rate of `category`.
    fn scale_seconds_at(&self, users: u64, category: Category) -> u64 {
        #[allow(clippy::cast_precision_loss)] // at most 10,000 users
        let fits = users as f64 / (self.rates.expected(category) * MARGIN);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 1..=2
        let seconds = fits.floor().clamp(1.0, 2.0) as u64;
        seconds
    }

    /// Launch → ready on a database that does not exist: the service creates and migrates
    /// it (database.create_database is on in development).
    async fn launch_on_missing_database(&mut self) -> anyhow::Result<()> {
        self.server.drop_database(FRESH_DB).await?;
        let (service, launched) = Service::start(&self.launch(FRESH_DB, false, "factors-fresh.log")).await?;
        service.stop().await?;
        println!("launch -> ready on a database that does not exist yet: {} ms", launched.as_millis());
        self.report
            .launches
            .push(("database does not exist yet (the service creates and migrates it)".into(), launched));
        self.server.drop_database(FRESH_DB).await
    }

    /// Creates, migrates and seeds database `name` with users `1..=users`.
    async fn create(&self, name: &str, users: u64) -> anyhow::Result<(Duration, Duration)> {
        let url = self.server.database_url(name);
        self.server.recreate(name).await?;
        database::migrate(&self.binary, &self.config_dir, &url).await?;
        println!("seeding {name} with {users} users ...");
        let seeded = database::seed(&url, UserRange { first: 1, count: users }).await?;
        let started = Instant::now();
        database::settle(&url).await?;
        let settled = started.elapsed();
        println!(
            "seeded in {:.1} s, VACUUM ANALYZE + CHECKPOINT in {:.1} s",
            seeded.as_secs_f64(),
            settled.as_secs_f64()
        );
        Ok((seeded, settled))
    }

    /// The main database: seeded with the users asked, calibrated, then topped up with
    /// enough fresh users for every run at the calibrated rates.
    async fn main_database(&mut self, redis: bool) -> anyhow::Result<Ledger> {
        let (seeded, settled) = self.create(MAIN_DB, self.plan.users).await?;
        self.report.users_seeded = self.plan.users;
        self.report.seed_time = seeded;
        self.report.settle_time = settled;
        let mut main = Ledger::new(self.plan.users);
        self.spent = UserRange { first: 1, count: 2 * CALIBRATION_USERS };
        for kind in [DbKind::OneStatement, DbKind::ReadThenWrite] {
            let each = CALIBRATION_USERS / CALIBRATION_CLIENTS;
            self.removal_limit(&mut main, kind, CALIBRATION_CLIENTS, Length::Transactions(each)).await?;
        }
        let (needed, left) = (self.needed(redis), main.left());
        if needed > left {
            println!("the runs need up to {needed} fresh users at the calibrated rates");
            self.top_up(&mut main, needed - left).await?;
        }
        Ok(main)
    }

    /// The fresh users the measured runs will need, at the rates seen so far (this mirrors
    /// the runs of [`Self::without_redis`] and [`Self::with_redis`]; should it fall short,
    /// [`Self::fresh`] seeds more before a run).
    fn needed(&self, redis: bool) -> u64 {
        let seconds = self.plan.seconds();
        let mut runs = Vec::new();
        for _ in CONCURRENCY {
            runs.extend([Category::OneStatement, Category::ReadThenWrite, Category::ColdRemoval]);
            // The floor's two removals (`Self::floor_removal`).
            runs.extend([Category::ReadThenWrite, Category::OneStatement]);
            if redis {
                runs.extend([Category::ColdRemoval, Category::WarmRemoval]);
            }
        }
        if self.plan.profile {
            runs.push(Category::ColdRemoval);
        }
        let measured: u64 = runs.iter().map(|&category| self.allotment(category, seconds)).sum();
        // The scale run lasts 2 s at most; the smoke test removes one.
        measured + self.allotment(Category::ColdRemoval, 2) + 1
    }

    /// Seeds `count` more users after the last one, and settles the database again.
    async fn top_up(&mut self, ledger: &mut Ledger, count: u64) -> anyhow::Result<()> {
        let range = UserRange { first: ledger.seeded() + 1, count };
        println!("seeding {range} more");
        let url = self.server.database_url(MAIN_DB);
        let seeded = database::seed(&url, range).await?;
        let started = Instant::now();
        database::settle(&url).await?;
        ledger.grow(count);
        self.report.users_seeded = ledger.seeded();
        self.report.seed_time += seeded;
        self.report.settle_time += started.elapsed();
        Ok(())
    }

    /// `count` fresh users of the main database; seeds more first should the runs have
    /// gone faster than planned.
    async fn fresh(&mut self, ledger: &mut Ledger, count: u64) -> anyhow::Result<UserRange> {
        if ledger.left() < count {
            println!("the runs go faster than the calibration said");
            self.top_up(ledger, count * 2).await?;
        }
        ledger.take(count)
    }

    /// The limits, the service without Redis (removals, reads, the scale run on the main
    /// database and the profile), and the HTTP floor on the same loads.
    async fn without_redis(&mut self, main: &mut Ledger, scale_seconds: u64) -> anyhow::Result<()> {
        let seconds = Length::Seconds(self.plan.seconds());
        let (service, launched) = Service::start(&self.launch(MAIN_DB, false, "factors-main.log")).await?;
        println!("launch -> ready on the migrated database: {} ms", launched.as_millis());
        self.report.launches.push(("database already migrated".into(), launched));
        let idle = Memory::of(service.pid())?;
        self.smoke_test(&service, main).await?;
        self.warm_up(&service, self.spent).await?;
        let url = self.server.database_url(MAIN_DB);
        let cold_floor = Floor::start(&url, Removal::ReadThenWrite, &self.scratch.join("floor-cold.log")).await?;
        let warm_floor = Floor::start(&url, Removal::OneStatement, &self.scratch.join("floor-warm.log")).await?;
        for connections in CONCURRENCY {
            // The limits first, then the service and the floor, minutes apart at most;
            // each on users of its own.
            self.removal_limit(main, DbKind::OneStatement, connections, seconds).await?;
            self.removal_limit(main, DbKind::ReadThenWrite, connections, seconds).await?;
            self.service_removal(&service, main, HttpKind::ColdRemoval, false, connections, Purpose::Measure).await?;
            self.floor_removal(&cold_floor, main, HttpKind::ColdRemoval, connections).await?;
            self.floor_removal(&warm_floor, main, HttpKind::WarmRemoval, connections).await?;
        }
        warm_floor.stop().await?;
        let users = main.seeded();
        self.db_run(MAIN_DB, users, DbKind::Read, Script::Read { users }, READ_CONCURRENCY, seconds).await?;
        self.reads(&service, false, users).await?;
        let everyone = Load::Get(UserRange { first: 1, count: users });
        let main_db = Database::Postgres(MAIN_DB);
        self.floor_run(&cold_floor, HttpKind::GetUser, everyone, READ_CONCURRENCY, main_db.clone(), users).await?;
        let signing_in = Script::SignIn { users };
        self.db_run(MAIN_DB, users, DbKind::SignIn, signing_in, SMALL_CONCURRENCY, seconds).await?;
        self.sign_in(&service, main_db.clone(), users).await?;
        let sign_ins = Load::SignIn(UserRange { first: 1, count: users });
        self.floor_run(&cold_floor, HttpKind::SignIn, sign_ins, SMALL_CONCURRENCY, main_db.clone(), users).await?;
        cold_floor.stop().await?;
        let scale = Purpose::Scale(scale_seconds);
        self.service_removal(&service, main, HttpKind::ColdRemoval, false, SMALL_CONCURRENCY, scale).await?;
        self.scale_read(&service, main_db, users).await?;
        if self.plan.profile {
            self.profiled_run(&service, main).await?;
        }
        let after = Memory::of(service.pid())?;
        self.report.memory.push(MemoryFigure { redis: false, idle, after });
        service.stop().await
    }

    /// The Redis variants: cold and warm removal at each concurrency, and the reads.
    async fn with_redis(&mut self, main: &mut Ledger) -> anyhow::Result<()> {
        let (service, launched) = Service::start(&self.launch(MAIN_DB, true, "factors-redis.log")).await?;
        println!("launch -> ready with Redis: {} ms", launched.as_millis());
        self.report.launches.push(("database already migrated, Redis on".into(), launched));
        let idle = Memory::of(service.pid())?;
        self.warm_up(&service, self.spent).await?;
        for connections in CONCURRENCY {
            for kind in [HttpKind::ColdRemoval, HttpKind::WarmRemoval] {
                self.service_removal(&service, main, kind, true, connections, Purpose::Measure).await?;
            }
        }
        self.reads(&service, true, main.seeded()).await?;
        let after = Memory::of(service.pid())?;
        self.report.memory.push(MemoryFigure { redis: true, idle, after });
        service.stop().await
    }

    /// The cold removal at 8 connections on the small database, for the scale comparison.
    async fn scale_on_small_database(&mut self, small: &mut Ledger, seconds: u64) -> anyhow::Result<()> {
        let (service, _) = Service::start(&self.launch(SCALE_DB, false, "factors-scale.log")).await?;
        // No Redis here: reading any of the users leaves nothing behind.
        self.warm_up(&service, UserRange { first: 1, count: SCALE_USERS }).await?;
        let left = small.left();
        let range = small.take(left - left % MAX_CONCURRENCY)?;
        let spec = HttpSpec {
            kind: HttpKind::ColdRemoval,
            purpose: Purpose::Scale(seconds),
            redis: false,
            load: Load::Remove(range),
            connections: SMALL_CONCURRENCY,
            database: Database::Postgres(SCALE_DB),
            database_users: SCALE_USERS,
        };
        self.http_run(&service, spec).await?;
        self.scale_read(&service, Database::Postgres(SCALE_DB), SCALE_USERS).await?;
        service.stop().await
    }

    /// GetUser at 32 connections for a short while, for the scale comparison.
    async fn scale_read(&mut self, service: &Service, database: Database, users: u64) -> anyhow::Result<()> {
        let spec = HttpSpec {
            kind: HttpKind::GetUser,
            purpose: Purpose::Scale(SCALE_READ_SECONDS),
            redis: false,
            load: Load::Get(UserRange { first: 1, count: users }),
            connections: READ_CONCURRENCY,
            database,
            database_users: users,
        };
        self.http_run(service, spec).await
    }

    /// Sign-ins (CreateSession with a user check) of random users, at 8 connections.
    async fn sign_in(&mut self, service: &Service, database: Database, users: u64) -> anyhow::Result<()> {
        let spec = HttpSpec {
            kind: HttpKind::SignIn,
            purpose: Purpose::Measure,
            redis: false,
            load: Load::SignIn(UserRange { first: 1, count: users }),
            connections: SMALL_CONCURRENCY,
            database,
            database_users: users,
        };
        self.http_run(service, spec).await
    }

    /// The token a load is sent with: sign-ins are a login client's.
    fn token_for(&self, load: Load) -> &str {
        match load {
            Load::SignIn(_) => &self.login_token,
            Load::Remove(_) | Load::Get(_) | Load::Health => &self.token,
        }
    }

    /// A second of GetUser at 32 connections on `users`, not measured: a fresh service
    /// opens its pool's connections (TLS included) and prepares its statements on the
    /// first requests, which would otherwise land in the first run's p99 alone.
    async fn warm_up(&self, service: &Service, users: UserRange) -> anyhow::Result<()> {
        let outcome =
            wrk::run(service.base(), &self.token, &self.wrk_script, Load::Get(users), MAX_CONCURRENCY, WARM_UP_SECONDS)
                .await?;
        ensure!(
            outcome.non_2xx == 0,
            "{} answers of the warm-up's GetUser were not 2xx (see the service's log)",
            outcome.non_2xx
        );
        Ok(())
    }

    /// A removal limit through pgbench, on fresh users of the main database.
    async fn removal_limit(
        &mut self,
        main: &mut Ledger,
        kind: DbKind,
        clients: u64,
        length: Length,
    ) -> anyhow::Result<()> {
        let count = match length {
            Length::Transactions(each) => each * clients,
            Length::Seconds(seconds) => self.allotment(category(kind), seconds),
        };
        let range = self.fresh(main, count).await?;
        let script = match kind {
            DbKind::OneStatement => Script::OneStatement { range },
            DbKind::ReadThenWrite => Script::ReadThenWrite { range },
            DbKind::Read => Script::Read { users: main.seeded() },
            DbKind::SignIn => Script::SignIn { users: main.seeded() },
        };
        self.db_run(MAIN_DB, main.seeded(), kind, script, clients, length).await
    }

    /// A removal run through the service, on fresh users of the main database; a warm one
    /// reads each of them first (GetUser), which puts it in the cache.
    async fn service_removal(
        &mut self,
        service: &Service,
        main: &mut Ledger,
        kind: HttpKind,
        redis: bool,
        connections: u64,
        purpose: Purpose,
    ) -> anyhow::Result<()> {
        let spec = self.removal_spec(service, main, kind, redis, connections, purpose).await?;
        self.http_run(service, spec).await
    }

    /// A removal run's spec, on fresh users of the main database (read first, for a warm
    /// one).
    async fn removal_spec(
        &mut self,
        service: &Service,
        main: &mut Ledger,
        kind: HttpKind,
        redis: bool,
        connections: u64,
        purpose: Purpose,
    ) -> anyhow::Result<HttpSpec> {
        let seconds = purpose.seconds(self.plan.seconds());
        let category = if kind == HttpKind::WarmRemoval { Category::WarmRemoval } else { Category::ColdRemoval };
        let range = self.fresh(main, self.allotment(category, seconds)).await?;
        if kind == HttpKind::WarmRemoval {
            println!("warming the cache: GetUser on {range}");
            service.warm(&self.token, range, MAX_CONCURRENCY).await?;
        }
        Ok(HttpSpec {
            kind,
            purpose,
            redis,
            load: Load::Remove(range),
            connections,
            database: Database::Postgres(MAIN_DB),
            database_users: main.seeded(),
        })
    }

    /// Removal through HAProxy and through PgBouncer in transaction mode beside the direct
    /// connection, at 32 connections: each route on a service of its own (started for its
    /// run and stopped after, so the three never hold connections at once), the three
    /// routes one after another, twice.
    async fn through_proxies(&mut self, main: &mut Ledger) -> anyhow::Result<()> {
        let direct = self.server.database_url(MAIN_DB);
        let upstream = url::Url::parse(&direct)?;
        let haproxy = Proxy::haproxy(&upstream, &self.scratch).await?;
        // The tests' PgBouncer, with a pool as large as the service's.
        let pgbouncer = factors_testing::TestPooler::in_front_of(&upstream, MAX_CONCURRENCY).await?;
        for _ in 0..2 {
            for route in Route::ALL {
                let log = format!("factors-{}.log", route.name().split(' ').next().unwrap_or("route").to_lowercase());
                let launch = match route {
                    Route::Direct => self.launch(MAIN_DB, false, &log),
                    Route::HaProxy => self.launch_on(haproxy.url(&direct)?, false, &log),
                    Route::PgBouncer => Launch {
                        pooled: Some(direct.clone()),
                        ..self.launch_on(pgbouncer.url_to(MAIN_DB), false, &log)
                    },
                };
                let (service, _) = Service::start(&launch).await?;
                self.warm_up(&service, self.spent).await?;
                let spec = self
                    .removal_spec(&service, main, HttpKind::ColdRemoval, false, MAX_CONCURRENCY, Purpose::Measure)
                    .await?;
                let run = self.measure_http(&service, spec).await?;
                println!("removal {}: {}", route.name(), report::http_figures(&run));
                self.report.routes.push((route, run));
                service.stop().await?;
            }
        }
        Ok(())
    }

    /// GetUser on random users, and /healthz, at 32 connections.
    async fn reads(&mut self, service: &Service, redis: bool, users: u64) -> anyhow::Result<()> {
        for (kind, load) in
            [(HttpKind::GetUser, Load::Get(UserRange { first: 1, count: users })), (HttpKind::Health, Load::Health)]
        {
            let spec = HttpSpec {
                kind,
                purpose: Purpose::Measure,
                redis,
                load,
                connections: READ_CONCURRENCY,
                database: Database::Postgres(MAIN_DB),
                database_users: users,
            };
            self.http_run(service, spec).await?;
        }
        Ok(())
    }

    /// A cold removal run at 8 connections with perf attached; its speed is not quoted.
    async fn profiled_run(&mut self, service: &Service, main: &mut Ledger) -> anyhow::Result<()> {
        let data = self.scratch.join("perf.data");
        let recording = profile::start(service.pid(), self.plan.seconds(), &data)?;
        self.service_removal(service, main, HttpKind::ColdRemoval, false, SMALL_CONCURRENCY, Purpose::Profile).await?;
        let flamegraph = workspace::root()?.join("bench").join("flamegraph.svg");
        let analysed = match recording.finish().await {
            Ok(file) => profile::analyse(&file, &flamegraph).await,
            Err(error) => Err(error),
        };
        if let Ok(profile) = &analysed {
            println!("profile: {} symbols kept, {:.1} % unresolved", profile.top.len(), profile.unresolved_percent);
        }
        self.report.profile = Some(analysed.map_err(|e| format!("{e:#}")));
        Ok(())
    }

    /// A removal run on the HTTP floor, on fresh users of the main database: `ColdRemoval`
    /// on a floor that reads first, `WarmRemoval` on one that only writes.
    async fn floor_removal(
        &mut self,
        floor: &Floor,
        main: &mut Ledger,
        kind: HttpKind,
        connections: u64,
    ) -> anyhow::Result<()> {
        // The floor does what pgbench does, and HTTP besides: pgbench's rate bounds it.
        let category = if kind == HttpKind::WarmRemoval { Category::OneStatement } else { Category::ReadThenWrite };
        let range = self.fresh(main, self.allotment(category, self.plan.seconds())).await?;
        self.floor_run(floor, kind, Load::Remove(range), connections, Database::Postgres(MAIN_DB), main.seeded()).await
    }

    /// A wrk run on the HTTP floor, with its CPU and, for removals, the count that proves
    /// they removed.
    async fn floor_run(
        &mut self,
        floor: &Floor,
        kind: HttpKind,
        load: Load,
        connections: u64,
        database: Database,
        database_users: u64,
    ) -> anyhow::Result<()> {
        database.checkpoint(self.server).await?;
        let meter = CpuMeter::start(Some(floor.pid()));
        let seconds = self.plan.seconds();
        let outcome =
            wrk::run(floor.base(), self.token_for(load), &self.wrk_script, load, connections, seconds).await?;
        // Its database connections end with wrk's: their CPU counts once they have.
        let cpu = meter.stop_when_settled().await;
        let wal_bytes = database.wal_bytes();
        let (range, removed) = database.removed_by(self.server, load).await?;
        let flags = load_flags(&outcome, removed);
        self.record(HttpRun {
            store: database.store(),
            kind,
            purpose: Purpose::Floor,
            redis: false,
            database_users,
            connections,
            seconds,
            outcome,
            cpu,
            range,
            removed,
            cache: None,
            wal_bytes,
            flags,
        });
        Ok(())
    }

    /// One removal by hand before any load: the seed is what the service expects, and the
    /// token is accepted. A failure here stops the run with the exchange that failed.
    async fn smoke_test(&self, service: &Service, main: &mut Ledger) -> anyhow::Result<()> {
        let i = main.take(1)?.first;
        let user = format!("/resources/v3alpha/users/u{i}");
        let removal = format!("{user}/otp_sms/o{i}");
        let (status, body) = service.call(reqwest::Method::GET, &user, &self.token).await?;
        ensure!(status == 200 && body.contains(&format!("\"o{i}\"")), "GET {user} answered {status}: {body}");
        let (status, body) = service.call(reqwest::Method::DELETE, &removal, &self.token).await?;
        ensure!(status == 200, "DELETE {removal} answered {status}: {body}");
        let (status, body) = service.call(reqwest::Method::DELETE, &removal, &self.token).await?;
        ensure!(status == 404, "DELETE {removal} a second time answered {status} (404 expected): {body}");
        Ok(())
    }

    /// A pgbench run, its CPU, and for removals the count that proves they removed.
    async fn db_run(
        &mut self,
        database: &str,
        database_users: u64,
        kind: DbKind,
        script: Script,
        clients: u64,
        length: Length,
    ) -> anyhow::Result<()> {
        let url = self.server.database_url(database);
        let path = self.scratch.join(format!("pgbench-{kind:?}-{clients}.sql").to_lowercase());
        database::checkpoint(&url).await?;
        let meter = CpuMeter::start(None);
        let outcome = pgbench::run(&url, script, &path, clients, length).await?;
        let cpu = meter.stop_when_settled().await;
        let mut flags = outcome.problems.clone();
        let removed = match script.range() {
            Some(range) => Some(database::removals(&url, range).await?),
            None => None,
        };
        if let Some(removed) = removed {
            if removed.events != outcome.processed || removed.authenticators_gone != outcome.processed {
                flags.push(format!(
                    "{} transactions processed, but the database holds {} removal events and {} authenticators are gone",
                    outcome.processed, removed.events, removed.authenticators_gone
                ));
            }
            self.rates.record(category(kind), outcome.tps);
        }
        println!(
            "pgbench {kind:?}{}, {clients} clients: {:.0} tps, latency avg {:.3} ms{}",
            if matches!(length, Length::Transactions(_)) { " (calibration)" } else { "" },
            outcome.tps,
            outcome.latency_avg_ms,
            if flags.is_empty() { String::new() } else { format!(" FLAGGED: {}", flags.join("; ")) }
        );
        let range = script.range();
        let calibration = matches!(length, Length::Transactions(_));
        self.report.db.push(DbRun { kind, calibration, database_users, clients, outcome, cpu, range, removed, flags });
        Ok(())
    }

    /// A wrk run, kept for the report's tables by what it measured.
    async fn http_run(&mut self, service: &Service, spec: HttpSpec) -> anyhow::Result<()> {
        let run = self.measure_http(service, spec).await?;
        self.record(run);
        Ok(())
    }

    /// A wrk run with the service's CPU, its cache lookups and its log watched, and for
    /// removals the count that proves they removed.
    async fn measure_http(&mut self, service: &Service, spec: HttpSpec) -> anyhow::Result<HttpRun> {
        let position = service.log_position();
        let cache_before = if spec.redis { Some(service.cache_lookups().await?) } else { None };
        spec.database.checkpoint(self.server).await?;
        let meter = CpuMeter::start(Some(service.pid()));
        let seconds = spec.purpose.seconds(self.plan.seconds());
        let token = self.token_for(spec.load);
        let outcome = wrk::run(service.base(), token, &self.wrk_script, spec.load, spec.connections, seconds).await?;
        let cpu = meter.stop();
        let wal_bytes = spec.database.wal_bytes();
        let cache = match cache_before {
            Some(before) => Some(before.until(service.cache_lookups().await?)),
            None => None,
        };
        let (range, removed) = spec.database.removed_by(self.server, spec.load).await?;
        let mut flags = load_flags(&outcome, removed);
        if spec.kind == HttpKind::WarmRemoval && cache.is_some_and(|c| c.hit < outcome.ok_requests()) {
            flags.push(format!(
                "not every removal was warm: cache lookups {cache:?} for {} removals",
                outcome.ok_requests()
            ));
        }
        flags.extend(service.warnings_since(position, 3).into_iter().map(|line| format!("service log: {line}")));
        match spec.kind {
            HttpKind::ColdRemoval if spec.database.store() == Store::Sqlite => {
                self.rates.record(Category::SqliteRemoval, outcome.rps);
            }
            HttpKind::ColdRemoval => self.rates.record(Category::ColdRemoval, outcome.rps),
            HttpKind::WarmRemoval => self.rates.record(Category::WarmRemoval, outcome.rps),
            HttpKind::GetUser | HttpKind::SignIn | HttpKind::Health => {}
        }
        Ok(HttpRun {
            store: spec.database.store(),
            kind: spec.kind,
            purpose: spec.purpose,
            redis: spec.redis,
            database_users: spec.database_users,
            connections: spec.connections,
            seconds,
            outcome,
            cpu,
            range,
            removed,
            cache,
            wal_bytes,
            flags,
        })
    }

    /// Prints a wrk run's figures and keeps the run for the report.
    fn record(&mut self, run: HttpRun) {
        println!("{}: {}", report::http_label(&run), report::http_figures(&run));
        self.report.http.push(run);
    }
}

/// What makes a wrk run untrustworthy, on the service or the floor: answers other than
/// 2xx, socket errors, threads out of users, removals the database does not hold.
fn load_flags(outcome: &wrk::Outcome, removed: Option<Removals>) -> Vec<String> {
    let mut flags = Vec::new();
    if outcome.non_2xx > 0 {
        flags.push(format!("{} answers were not 2xx (the server's log has each status)", outcome.non_2xx));
    }
    if let Some(errors) = &outcome.socket_errors {
        flags.push(format!("socket errors: {errors}"));
    }
    if outcome.exhausted > 0 {
        flags.push(format!(
            "{} wrk threads ran out of fresh users and stopped early: the rate is too low (more --users helps)",
            outcome.exhausted
        ));
    }
    if let Some(removed) = removed
        && (removed.events < outcome.ok_requests() || removed.events > outcome.used)
    {
        flags.push(format!(
            "the database holds {} removals for {} answers of 2xx and {} requests sent",
            removed.events,
            outcome.ok_requests(),
            outcome.used
        ));
    }
    flags
}

/// What a pgbench script's rate stands for.
fn category(kind: DbKind) -> Category {
    match kind {
        DbKind::ReadThenWrite => Category::ReadThenWrite,
        // A read or a sign-in consumes no users; one-statement is the closest upper bound.
        DbKind::OneStatement | DbKind::Read | DbKind::SignIn => Category::OneStatement,
    }
}
