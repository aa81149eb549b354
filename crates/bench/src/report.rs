//! The figures of a run and how they read in `bench/REPORT.md`: the targets with their
//! limits measured in the same run, the runs behind them, and the hand-written `## Notes`
//! of the previous report, carried over untouched.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::database::Removals;
use crate::ledger::UserRange;
use crate::machine::Machine;
use crate::pgbench;
use crate::procfs::{CpuSpent, Memory};
use crate::profile::Profile;
use crate::service::CacheLookups;
use crate::wrk;

/// Where hand-written analysis starts; from there to the end, the report is kept.
const NOTES: &str = "## Notes";

/// Which HTTP load a run sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpKind {
    /// DELETE of authenticators of users nobody touched before.
    ColdRemoval,
    /// The same, after a GetUser of each user put it in the cache.
    WarmRemoval,
    GetUser,
    /// CreateSession with a user check: a sign-in's first step.
    SignIn,
    Health,
}

impl HttpKind {
    fn name(self) -> &'static str {
        match self {
            Self::ColdRemoval => "cold removal",
            Self::WarmRemoval => "warm removal",
            Self::GetUser => "GetUser",
            Self::SignIn => "sign-in",
            Self::Health => "/healthz",
        }
    }
}

/// The store a run's server kept its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Store {
    #[default]
    Postgres,
    Sqlite,
}

/// What a run is for, besides its figure: most runs count towards the targets, a few
/// serve one comparison only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Measure,
    /// Under perf: its speed is not quoted.
    Profile,
    /// A short run (this many seconds) for the scale comparison.
    Scale(u64),
    /// The same load on the HTTP floor (`floor`), not on the service.
    Floor,
}

impl Purpose {
    /// How long a run of this purpose lasts, given the run length of the options.
    pub fn seconds(self, run_length: u64) -> u64 {
        match self {
            Self::Measure | Self::Profile | Self::Floor => run_length,
            Self::Scale(seconds) => seconds,
        }
    }
}

/// One wrk run.
#[derive(Debug, Clone)]
pub struct HttpRun {
    pub store: Store,
    pub kind: HttpKind,
    pub purpose: Purpose,
    pub redis: bool,
    pub database_users: u64,
    pub connections: u64,
    pub seconds: u64,
    pub outcome: wrk::Outcome,
    pub cpu: CpuSpent,
    pub range: Option<UserRange>,
    pub removed: Option<Removals>,
    pub cache: Option<CacheLookups>,
    /// SQLite: the size of the write-ahead log after the run (it starts empty).
    pub wal_bytes: Option<u64>,
    pub flags: Vec<String>,
}

/// Which statements a pgbench run replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    OneStatement,
    ReadThenWrite,
    Read,
    SignIn,
}

impl DbKind {
    fn name(self) -> &'static str {
        match self {
            Self::OneStatement => "one-statement removal (REMOVE_OTP_SMS)",
            Self::ReadThenWrite => "read + guarded write (LOAD_USER, REMOVE_OTP_SMS)",
            Self::Read => "GetUser's read (LOAD_USER)",
            Self::SignIn => "sign-in (LOAD_USER, CREATE_SESSION)",
        }
    }
}

/// One pgbench run.
#[derive(Debug, Clone)]
pub struct DbRun {
    pub kind: DbKind,
    /// A short bounded run that sizes the others (`-t`); not a limit quoted.
    pub calibration: bool,
    pub database_users: u64,
    pub clients: u64,
    pub outcome: pgbench::Outcome,
    pub cpu: CpuSpent,
    pub range: Option<UserRange>,
    pub removed: Option<Removals>,
    pub flags: Vec<String>,
}

/// The service's memory: idle after start, and after its load.
#[derive(Debug, Clone)]
pub struct MemoryFigure {
    pub redis: bool,
    pub idle: Memory,
    pub after: Memory,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub date: String,
    pub commit: String,
    pub machine: Option<Machine>,
    pub command_line: String,
    pub users_asked: u64,
    pub users_seeded: u64,
    pub seed_time: Duration,
    /// VACUUM ANALYZE and CHECKPOINT after the seed.
    pub settle_time: Duration,
    pub seconds: u64,
    pub redis: Option<String>,
    pub profile_wanted: bool,
    pub database: String,
    pub launches: Vec<(String, Duration)>,
    pub http: Vec<HttpRun>,
    /// Removal through a proxy or a pooler, beside the direct connection.
    pub routes: Vec<(crate::proxies::Route, HttpRun)>,
    pub db: Vec<DbRun>,
    pub memory: Vec<MemoryFigure>,
    pub profile: Option<Result<Profile, String>>,
    pub sqlite: SqliteFigures,
    pub notes: Vec<String>,
    pub total: Duration,
}

/// What the embedded store's part of a run measured besides its HTTP runs.
#[derive(Debug, Clone, Default)]
pub struct SqliteFigures {
    /// Per file: users seeded, how long it took, the file's size after.
    pub seeds: Vec<(u64, Duration, u64)>,
    /// The writer alone, in process.
    pub writer: Option<crate::sqlite::WriterShare>,
    /// GetUser in alternating short rounds on the service and on the floor, both open on
    /// the main file: (the service's req/s, the floor's) per round.
    pub paired_get_user: Vec<(f64, f64)>,
}

impl SqliteFigures {
    /// The median of the paired rounds' ratios, service to floor: each pair ran seconds
    /// apart, so the machine's drift between the long runs stays out of it.
    pub fn paired_ratio(&self) -> Option<f64> {
        let mut ratios: Vec<f64> = self.paired_get_user.iter().map(|(service, floor)| service / floor).collect();
        ratios.sort_by(f64::total_cmp);
        let middle = ratios.len() / 2;
        match ratios.len() {
            0 => None,
            n if n % 2 == 1 => Some(ratios[middle]),
            _ => Some(f64::midpoint(ratios[middle - 1], ratios[middle])),
        }
    }
}

/// A target's verdict.
enum Verdict {
    Pass,
    Miss,
    /// Nothing to compare (a run did not happen).
    NotRun,
}

impl Report {
    fn http(&self, kind: HttpKind, redis: bool, connections: u64, purpose: Purpose) -> Option<&HttpRun> {
        self.http.iter().find(|r| {
            r.store == Store::Postgres
                && r.kind == kind
                && r.redis == redis
                && r.connections == connections
                && r.purpose == purpose
        })
    }

    /// The SQLite run of `kind` for `purpose` (on the main file, but for the scale runs).
    fn sqlite(&self, kind: HttpKind, purpose: Purpose) -> Option<&HttpRun> {
        self.http.iter().find(|r| r.store == Store::Sqlite && r.kind == kind && r.purpose == purpose)
    }

    fn db(&self, kind: DbKind, clients: u64) -> Option<&DbRun> {
        self.db.iter().find(|r| r.kind == kind && r.clients == clients && !r.calibration)
    }

    /// Every flagged run, for the verdicts and the Flags section.
    fn flagged(&self) -> Vec<String> {
        let http = self.http.iter().flat_map(|r| r.flags.iter().map(move |f| format!("{}: {f}", http_label(r))));
        let routes = self
            .routes
            .iter()
            .flat_map(|(route, r)| r.flags.iter().map(move |f| format!("removal {}: {f}", route.name())));
        let http = http.chain(routes);
        let db = self.db.iter().flat_map(|r| r.flags.iter().map(move |f| format!("pgbench {}: {f}", db_label(r))));
        http.chain(db).chain(self.notes.iter().cloned()).collect()
    }

    /// The report as Markdown, ending with `notes` (the kept `## Notes` section).
    pub fn render(&self, notes: &str) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.targets(&mut out);
        self.launch_table(&mut out);
        self.http_table(&mut out);
        self.floor_table(&mut out);
        self.db_table(&mut out);
        self.routes_table(&mut out);
        self.memory_table(&mut out);
        self.scale_table(&mut out);
        self.sqlite_section(&mut out);
        self.profile_section(&mut out);
        self.flags_section(&mut out);
        out.push_str(notes);
        out
    }

    fn header(&self, out: &mut String) {
        let _ = writeln!(out, "# factors benchmark\n");
        let _ = writeln!(
            out,
            "Written by `cargo run --release -p factors-bench{}{}` on {}, at commit `{}`. The whole run took {}.\n",
            if self.command_line.is_empty() { "" } else { " -- " },
            self.command_line,
            self.date,
            self.commit,
            humantime::format_duration(Duration::from_secs(self.total.as_secs()))
        );
        out.push_str(
            "Speeds are quoted as ratios to limits measured in the same run, because the machine is shared and \
             noisy: absolute figures move from one run to the next, while the service and its limit, measured \
             minutes apart on the same machine, move together. The limits are PostgreSQL's own, through pgbench \
             (`-M prepared`), on the very statements the service sends (`factors_adapters_postgres::sql`), on \
             users no other run touched. SQLite has no server to measure apart: on the embedded store the limit \
             is the HTTP floor on the same file and statements, beside the rate of its one writer connection \
             alone.\n\n",
        );
        if let Some(machine) = &self.machine {
            out.push_str("## Machine\n\n| | |\n|---|---|\n");
            for (name, value) in [
                ("CPUs (`nproc`)", &machine.nproc),
                ("CPU model", &machine.cpu_model),
                ("memory", &machine.memory),
                ("kernel", &machine.kernel),
                ("PostgreSQL", &machine.postgres),
                ("wrk", &machine.wrk),
                ("pgbench", &machine.pgbench),
                ("perf", &machine.perf),
            ] {
                let _ = writeln!(out, "| {name} | {value} |");
            }
            out.push('\n');
        }
        out.push_str("## Options\n\n| | |\n|---|---|\n");
        let seeded = if self.users_seeded > self.users_asked {
            format!(
                "{} (asked {}; raised so every run has fresh users), in {:.1} s, then VACUUM ANALYZE and \
                 CHECKPOINT in {:.1} s",
                thousands(self.users_seeded),
                thousands(self.users_asked),
                self.seed_time.as_secs_f64(),
                self.settle_time.as_secs_f64()
            )
        } else {
            format!(
                "{}, in {:.1} s, then VACUUM ANALYZE and CHECKPOINT in {:.1} s",
                thousands(self.users_seeded),
                self.seed_time.as_secs_f64(),
                self.settle_time.as_secs_f64()
            )
        };
        let _ = writeln!(out, "| users seeded | {seeded} |");
        let _ = writeln!(out, "| run length | {} s (wrk 2 threads, keep-alive; pgbench -j 2) |", self.seconds);
        let _ = writeln!(out, "| Redis variants | {} |", self.redis.as_deref().unwrap_or("not run"));
        let _ = writeln!(
            out,
            "| profile | {} |",
            if self.profile_wanted {
                "perf record -e cpu-clock -F 997 -g, one cold removal run"
            } else {
                "off (--no-profile)"
            }
        );
        let _ = writeln!(out, "| database server | {} |", self.database);
        let _ = writeln!(
            out,
            "| service | release build, FACTORS_ENV=development, JSON logs at info to a file, pool of 32 connections |\n"
        );
    }

    fn targets(&self, out: &mut String) {
        out.push_str("## Targets\n\n");
        out.push_str(
            "| figure | factors | limit (same run) | ratio | target | result |\n|---|---:|---:|---:|---|---|\n",
        );
        for connections in [8, 32] {
            let cold = self.http(HttpKind::ColdRemoval, false, connections, Purpose::Measure);
            for (kind, target, what) in [
                (DbKind::ReadThenWrite, 0.85, "read + guarded write"),
                (DbKind::OneStatement, 0.55, "one-statement removal"),
            ] {
                self.ratio_row(
                    out,
                    &format!("cold removal, {connections} connections, vs {what}"),
                    cold,
                    self.db(kind, connections),
                    target,
                );
            }
        }
        for connections in [8, 32] {
            self.ratio_row(
                out,
                &format!("warm removal (Redis on), {connections} connections, vs one-statement removal"),
                self.http(HttpKind::WarmRemoval, true, connections, Purpose::Measure),
                self.db(DbKind::OneStatement, connections),
                0.70,
            );
        }
        for (kind, redis) in [(HttpKind::ColdRemoval, false), (HttpKind::WarmRemoval, true)] {
            let run = self.http(kind, redis, 8, Purpose::Measure);
            let verdict = run.map_or(Verdict::NotRun, |r| pass(r.outcome.p99_ms < 10.0));
            let _ = writeln!(
                out,
                "| {} p99, 8 connections{} | {} | | | < 10 ms | {} |",
                kind.name(),
                if redis { " (Redis on)" } else { "" },
                run.map_or_else(dash, |r| format!("{:.2} ms", r.outcome.p99_ms)),
                verdict_text(&verdict, run.is_some_and(|r| !r.flags.is_empty()))
            );
        }
        let get = self.http(HttpKind::GetUser, false, 32, Purpose::Measure);
        self.ratio_row(out, "GetUser, 32 connections, vs its read (LOAD_USER)", get, self.db(DbKind::Read, 32), 0.70);
        if let (Some(get), Some(health)) = (get, self.http(HttpKind::Health, false, 32, Purpose::Measure)) {
            target_row(
                out,
                "GetUser, 32 connections, vs GET /healthz (the server's constant endpoint)",
                get.outcome.rps,
                (health.outcome.rps, "req/s"),
                None,
                false,
            );
        }
        let sign_in = self.http(HttpKind::SignIn, false, 8, Purpose::Measure);
        if let (Some(run), Some(limit)) = (sign_in, self.db(DbKind::SignIn, 8)) {
            target_row(
                out,
                "sign-in (CreateSession, user check), 8 connections, vs its statements",
                run.outcome.rps,
                (limit.outcome.tps, "tps"),
                None,
                false,
            );
        }
        for kind in [HttpKind::ColdRemoval, HttpKind::GetUser] {
            self.scale_row(out, "", Store::Postgres, kind);
        }
        self.sqlite_targets(out);
        for figure in &self.memory {
            let peak_mb = kb_to_mb(figure.after.peak_kb);
            let _ = writeln!(
                out,
                "| RSS under load, peak (VmHWM){} | {peak_mb:.1} MB | | | < 64 MB | {} |",
                if figure.redis { ", Redis on" } else { "" },
                verdict_text(&pass(peak_mb < 64.0), false)
            );
        }
        out.push_str(
            "\nA result marked \"flagged\" comes from a run with errors or a failed check; see Flags. \
             CPU per removal and every p50/p99 are in the tables below; \"The HTTP floor\" shows how close to \
             these limits an HTTP server gets on this machine with no product logic at all.\n\n",
        );
    }

    /// A row "factors vs its limit".
    fn ratio_row(&self, out: &mut String, figure: &str, run: Option<&HttpRun>, limit: Option<&DbRun>, target: f64) {
        let (Some(run), Some(limit)) = (run, limit) else {
            not_run_row(out, figure, Some(target));
            return;
        };
        let flagged = !run.flags.is_empty() || !limit.flags.is_empty();
        target_row(out, figure, run.outcome.rps, (limit.outcome.tps, "tps"), Some(target), flagged);
    }

    /// The scale runs of `kind` on `store`: (the small database, the main one).
    fn scale_pair(&self, store: Store, kind: HttpKind) -> Option<(&HttpRun, &HttpRun)> {
        let mut scale =
            self.http.iter().filter(|r| r.store == store && r.kind == kind && matches!(r.purpose, Purpose::Scale(_)));
        let (a, b) = (scale.next()?, scale.next()?);
        Some(if a.database_users <= b.database_users { (a, b) } else { (b, a) })
    }

    /// A row "p50 on the main database vs on the small one", target ≤ 1.25.
    fn scale_row(&self, out: &mut String, prefix: &str, store: Store, kind: HttpKind) {
        let Some((small, large)) = self.scale_pair(store, kind) else { return };
        let ratio = large.outcome.p50_ms / small.outcome.p50_ms;
        let flagged = !small.flags.is_empty() || !large.flags.is_empty();
        let _ = writeln!(
            out,
            "| {prefix}{} p50, {} connections, {} users vs {} | {:.2} ms | {:.2} ms | {:.2} | ≤ 1.25 | {} |",
            kind.name(),
            large.connections,
            thousands(large.database_users),
            thousands(small.database_users),
            large.outcome.p50_ms,
            small.outcome.p50_ms,
            ratio,
            verdict_text(&pass(ratio <= 1.25), flagged)
        );
    }

    /// The embedded store's targets: the service against the floor on the same file, the
    /// scale, and the writer's share.
    fn sqlite_targets(&self, out: &mut String) {
        for (kind, target) in
            [(HttpKind::ColdRemoval, Some(0.80)), (HttpKind::GetUser, Some(0.80)), (HttpKind::SignIn, None)]
        {
            let run = self.sqlite(kind, Purpose::Measure);
            let floor = self.sqlite(kind, Purpose::Floor);
            let figure = format!(
                "SQLite: {}, {} connections, {} users, vs the HTTP floor on its statements",
                kind.name(),
                run.map_or(0, |r| r.connections),
                thousands(run.map_or(0, |r| r.database_users))
            );
            let (Some(run), Some(floor)) = (run, floor) else {
                not_run_row(out, &figure, target);
                continue;
            };
            let flagged = !run.flags.is_empty() || !floor.flags.is_empty();
            target_row(out, &figure, run.outcome.rps, (floor.outcome.rps, "req/s"), target, flagged);
        }
        if let Some(ratio) = self.sqlite.paired_ratio() {
            let rounds = &self.sqlite.paired_get_user;
            let run = self.sqlite(HttpKind::GetUser, Purpose::Measure);
            let _ = writeln!(
                out,
                "| SQLite: GetUser, {} connections, {} users, vs the HTTP floor, in {} paired rounds (median ratio) | {} req/s | {} req/s | {ratio:.2} | ≥ 0.80 | {} |",
                run.map_or(0, |r| r.connections),
                thousands(run.map_or(0, |r| r.database_users)),
                rounds.len(),
                rate(rounds.iter().map(|r| r.0).sum::<f64>() / rounds.len() as f64),
                rate(rounds.iter().map(|r| r.1).sum::<f64>() / rounds.len() as f64),
                verdict_text(&pass(ratio >= 0.80), false)
            );
        }
        for kind in [HttpKind::ColdRemoval, HttpKind::GetUser] {
            self.scale_row(out, "SQLite: ", Store::Sqlite, kind);
        }
        if let (Some(writer), Some(run)) = (&self.sqlite.writer, self.sqlite(HttpKind::ColdRemoval, Purpose::Measure)) {
            let figure = format!(
                "SQLite: cold removal, {} connections, vs the writer connection alone (in process)",
                run.connections
            );
            target_row(out, &figure, run.outcome.rps, (writer.rate(), "/s"), None, false);
        }
    }

    fn launch_table(&self, out: &mut String) {
        out.push_str("## Launch → first `/readyz` 200\n\n| case | ms |\n|---|---:|\n");
        for (case, took) in &self.launches {
            let _ = writeln!(out, "| {case} | {:.0} |", took.as_secs_f64() * 1000.0);
        }
        out.push('\n');
    }

    fn http_table(&self, out: &mut String) {
        out.push_str("## HTTP runs (wrk --latency, 2 threads, keep-alive)\n\n");
        out.push_str(
            "| run | Redis | users in db | users removed from | conns | s | req/s | p50 ms | p99 ms | non-2xx | \
             factors CPU ms/req | postgres CPU ms/req | removed in db / 2xx answers | cache hit/miss | flags |\n",
        );
        out.push_str("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
        for run in self.http.iter().filter(|r| r.store == Store::Postgres && r.purpose != Purpose::Floor) {
            let (service_ms, postgres_ms) = run.cpu.per_operation_ms(run.outcome.requests);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                http_label(run),
                if run.redis { "on" } else { "off" },
                load_cells(run),
                optional_ms(service_ms),
                optional_ms(postgres_ms),
                removed_cell(run),
                run.cache.filter(|_| run.kind != HttpKind::Health).map_or_else(dash, |c| format!(
                    "{} / {}",
                    thousands(c.hit),
                    thousands(c.miss)
                )),
                flags_cell(&run.flags)
            );
        }
        out.push_str(
            "\nCPU is the service's own (utime + stime of its process) and that of all `postgres` processes, \
             over the run, per request answered. \"removed in db\" counts the removal events the database holds \
             for the run's users; it may exceed the 2xx answers by the requests still in flight when wrk \
             stopped.\n\n",
        );
    }

    fn floor(&self, kind: HttpKind, connections: u64) -> Option<&HttpRun> {
        self.http.iter().find(|r| {
            r.store == Store::Postgres && r.kind == kind && r.connections == connections && r.purpose == Purpose::Floor
        })
    }

    fn floor_table(&self, out: &mut String) {
        if !self.http.iter().any(|r| r.purpose == Purpose::Floor) {
            return;
        }
        out.push_str("## The HTTP floor: the same statements behind the leanest HTTP server\n\n");
        out.push_str(
            "The harness serves the statements of each figure itself, behind hyper's HTTP/1 server with one sqlx \
             connection per HTTP connection and nothing else: no token, no log line, no metrics, no access rules, \
             no JSON library (`crates/bench/src/floor.rs`), and wrk drives it as it drives the service. It shows \
             what HTTP, a Rust driver and a third process on the same cores cost before any product logic: \
             the part of the distance between the service and its limit that is not the service's. It is not a \
             hard ceiling: at 32 connections it keeps 32 database sessions busy where the service's pool keeps \
             fewer of them warm, and a leaner driver could spend less CPU.\n\n",
        );
        out.push_str(
            "| figure | conns | floor req/s | limit | floor / limit | factors req/s | factors / floor | \
             floor CPU ms/req | factors CPU ms/req | postgres CPU ms/req, floor | floor p50 / p99 ms | flags |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
        );
        let rows = [
            ("cold removal: read + guarded write", HttpKind::ColdRemoval, 8, DbKind::ReadThenWrite, false),
            ("cold removal: read + guarded write", HttpKind::ColdRemoval, 32, DbKind::ReadThenWrite, false),
            (
                "warm removal: the guarded write alone (factors: Redis on)",
                HttpKind::WarmRemoval,
                8,
                DbKind::OneStatement,
                true,
            ),
            (
                "warm removal: the guarded write alone (factors: Redis on)",
                HttpKind::WarmRemoval,
                32,
                DbKind::OneStatement,
                true,
            ),
            ("GetUser: LOAD_USER", HttpKind::GetUser, 32, DbKind::Read, false),
            ("sign-in: LOAD_USER, CREATE_SESSION", HttpKind::SignIn, 8, DbKind::SignIn, false),
        ];
        for (figure, kind, connections, limit, redis) in rows {
            let Some(floor) = self.floor(kind, connections) else { continue };
            let limit = self.db(limit, connections);
            let factors = self.http(kind, redis, connections, Purpose::Measure);
            let (floor_ms, postgres_ms) = floor.cpu.per_operation_ms(floor.outcome.requests);
            let factors_ms = factors.and_then(|f| f.cpu.per_operation_ms(f.outcome.requests).0);
            let _ = writeln!(
                out,
                "| {figure} | {connections} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} / {:.2} | {} |",
                rate(floor.outcome.rps),
                limit.map_or_else(dash, |l| format!("{} tps", rate(l.outcome.tps))),
                limit.map_or_else(dash, |l| format!("{:.2}", floor.outcome.rps / l.outcome.tps)),
                factors.map_or_else(dash, |f| rate(f.outcome.rps)),
                factors.map_or_else(dash, |f| format!("{:.2}", f.outcome.rps / floor.outcome.rps)),
                optional_ms(floor_ms),
                optional_ms(factors_ms),
                optional_ms(postgres_ms),
                floor.outcome.p50_ms,
                floor.outcome.p99_ms,
                flags_cell(&floor.flags)
            );
        }
        out.push('\n');
    }

    fn db_table(&self, out: &mut String) {
        out.push_str("## Database limits (pgbench -M prepared -n -j 2, the service's statements)\n\n");
        out.push_str(
            "| script | users in db | users removed from | clients | tps | latency avg ms | transactions | failed | \
             removed in db | postgres CPU ms/tx | flags |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for run in &self.db {
            let (_, postgres_ms) = run.cpu.per_operation_ms(run.outcome.processed);
            let _ = writeln!(
                out,
                "| {}{} | {} | {} | {} | {} | {:.3} | {} | {} | {} | {} | {} |",
                run.kind.name(),
                if run.calibration { ", calibration" } else { "" },
                thousands(run.database_users),
                run.range.map_or_else(dash, |r| r.to_string()),
                run.clients,
                rate(run.outcome.tps),
                run.outcome.latency_avg_ms,
                thousands(run.outcome.processed),
                run.outcome.failed,
                run.removed.map_or_else(dash, |r| thousands(r.events)),
                optional_ms(postgres_ms),
                flags_cell(&run.flags)
            );
        }
        out.push('\n');
    }

    fn routes_table(&self, out: &mut String) {
        if self.routes.is_empty() {
            return;
        }
        out.push_str(
            "## Removal through HAProxy and through PgBouncer

",
        );
        out.push_str(
            "Each route on a service of its own, started for its run; the three routes one after another, \
             twice. HAProxy forwards TCP; PgBouncer is in transaction mode, so the service runs every \
             statement unnamed in a transaction of its own (`database.pooler = \"transaction\"`). The ratio \
             is to the direct run of the same pass.\n\n",
        );
        out.push_str(
            "| pass | route | users in db | users | conns | s | req/s | p50 ms | p99 ms | non-2xx | ratio to direct | flags |\n\
             |---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let mut direct = None;
        let mut pass = 0;
        for (route, run) in &self.routes {
            if *route == crate::proxies::Route::Direct {
                direct = Some(run.outcome.rps);
                pass += 1;
            }
            let ratio = direct.filter(|d| *d > 0.0).map_or_else(dash, |d| format!("{:.2}", run.outcome.rps / d));
            let _ = writeln!(
                out,
                "| {pass} | {} | {} | {ratio} | {} |",
                route.name(),
                load_cells(run),
                flags_cell(&run.flags)
            );
        }
        out.push('\n');
    }

    fn memory_table(&self, out: &mut String) {
        out.push_str("## Memory of the factors process\n\n");
        out.push_str("| service | idle VmRSS | after the load VmRSS | peak VmHWM |\n|---|---:|---:|---:|\n");
        for figure in &self.memory {
            let _ = writeln!(
                out,
                "| {} | {:.1} MB | {:.1} MB | {:.1} MB |",
                if figure.redis { "Redis on" } else { "Redis off" },
                kb_to_mb(figure.idle.rss_kb),
                kb_to_mb(figure.after.rss_kb),
                kb_to_mb(figure.after.peak_kb)
            );
        }
        out.push('\n');
    }

    fn scale_table(&self, out: &mut String) {
        let pairs: Vec<_> = [Store::Postgres, Store::Sqlite]
            .into_iter()
            .flat_map(|store| [(store, HttpKind::ColdRemoval), (store, HttpKind::GetUser)])
            .filter_map(|(store, kind)| self.scale_pair(store, kind).map(|pair| (store, kind, pair)))
            .collect();
        if pairs.is_empty() {
            return;
        }
        out.push_str("## Scale: the same short run on a small and on the main database\n\n");
        out.push_str(
            "| store | run | conns | users in db | s | req/s | p50 ms | p99 ms | p50 ratio (target ≤ 1.25) |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (store, kind, (small, large)) in pairs {
            for run in [small, large] {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
                    store.name(),
                    kind.name(),
                    run.connections,
                    thousands(run.database_users),
                    run.seconds,
                    rate(run.outcome.rps),
                    run.outcome.p50_ms,
                    run.outcome.p99_ms,
                    if std::ptr::eq(run, large) {
                        format!("{:.2}", large.outcome.p50_ms / small.outcome.p50_ms)
                    } else {
                        String::new()
                    }
                );
            }
        }
        out.push('\n');
    }

    fn sqlite_section(&self, out: &mut String) {
        let runs: Vec<&HttpRun> = self.http.iter().filter(|r| r.store == Store::Sqlite).collect();
        if runs.is_empty() && self.sqlite.seeds.is_empty() {
            return;
        }
        out.push_str("## The embedded store (SQLite)\n\n");
        out.push_str(
            "The service on a SQLite file (`database.url = sqlite://…`, its readers and its one writer), beside \
             the HTTP floor on the same file: the statements of `factors_adapters_sqlite::sql` in the transactions \
             the store sends them in, opened with the store's own connection settings \
             (`factors_adapters_sqlite::connect_options`), behind the floor's bare HTTP server. SQLite has no \
             server of its own, so the floor is the limit a front end on this file can reach. Each run starts \
             from an emptied write-ahead log (`PRAGMA wal_checkpoint(TRUNCATE)`); \"WAL after\" is its size when \
             the run ends. CPU is the serving process's own, SQLite included.\n\n",
        );
        for (users, took, bytes) in &self.sqlite.seeds {
            let _ = writeln!(
                out,
                "- file of {} users: seeded in {:.1} s, {:.0} MB",
                thousands(*users),
                took.as_secs_f64(),
                mb(*bytes)
            );
        }
        if let Some(writer) = &self.sqlite.writer {
            let _ = writeln!(
                out,
                "- the writer alone: {} removals, one write transaction each on one connection in process, in \
                 {:.2} s: {} removals/s ({:.3} ms each); WAL after: {:.1} MB",
                thousands(writer.removals),
                writer.took.as_secs_f64(),
                rate(writer.rate()),
                writer.took.as_secs_f64() * 1000.0 / writer.removals.max(1) as f64,
                mb(writer.wal_bytes)
            );
        }
        out.push_str(
            "\n| run | server | users in db | users removed from | conns | s | req/s | p50 ms | p99 ms | non-2xx | \
             CPU ms/req | WAL after MB | removed in db / 2xx answers | flags |\n\
             |---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for run in runs {
            let (cpu_ms, _) = run.cpu.per_operation_ms(run.outcome.requests);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                http_label(run),
                if run.purpose == Purpose::Floor { "floor" } else { "factors" },
                load_cells(run),
                optional_ms(cpu_ms),
                run.wal_bytes.map_or_else(dash, |b| format!("{:.1}", mb(b))),
                removed_cell(run),
                flags_cell(&run.flags)
            );
        }
        out.push('\n');
    }

    fn profile_section(&self, out: &mut String) {
        out.push_str("## Profile of a cold removal run (8 connections)\n\n");
        let profile = match &self.profile {
            None => {
                out.push_str("Not taken (--no-profile).\n\n");
                return;
            }
            Some(Err(error)) => {
                let _ = writeln!(out, "Failed: {error}\n");
                return;
            }
            Some(Ok(profile)) => profile,
        };
        let _ = writeln!(
            out,
            "`perf record -e cpu-clock -F 997 -g -p <factors>` for the length of the run, read with \
             `perf report --stdio --no-children --sort symbol`: self time per symbol. Samples: {}; \
             unresolved addresses: {:.1} %.{}\n",
            profile.samples.as_deref().unwrap_or("unknown"),
            profile.unresolved_percent,
            profile.flamegraph.as_ref().map_or_else(String::new, |p| format!(" Flame graph: `{}`.", p.display()))
        );
        out.push_str("| by component | share |\n|---|---:|\n");
        for (component, share) in &profile.components {
            let _ = writeln!(out, "| {component} | {share:.1} % |");
        }
        out.push_str("\n| top symbols | | share |\n|---|---|---:|\n");
        for symbol in &profile.top {
            let _ = writeln!(
                out,
                "| `{}` | {} | {:.2} % |",
                symbol.name.replace('|', "\\|"),
                if symbol.kernel { "kernel" } else { "user" },
                symbol.percent
            );
        }
        out.push('\n');
    }

    fn flags_section(&self, out: &mut String) {
        out.push_str("## Flags\n\n");
        let flagged = self.flagged();
        if flagged.is_empty() {
            out.push_str(
                "None: every answer was 200, every pgbench transaction succeeded, and every removal is in the \
                 database.\n\n",
            );
        }
        for flag in flagged {
            let _ = writeln!(out, "- {}", flag.replace('\n', " "));
        }
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
    }
}

pub fn http_label(run: &HttpRun) -> String {
    let purpose = match run.purpose {
        Purpose::Measure => "",
        Purpose::Profile => " (under perf)",
        Purpose::Scale(_) => " (scale)",
        Purpose::Floor => " (HTTP floor)",
    };
    format!(
        "{}{}{purpose}, {} conns{}",
        if run.store == Store::Sqlite { "SQLite " } else { "" },
        run.kind.name(),
        run.connections,
        if run.redis { ", Redis on" } else { "" }
    )
}

/// A run's speed in one line, for the progress output.
pub fn http_figures(run: &HttpRun) -> String {
    let outcome = &run.outcome;
    format!(
        "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx{}",
        outcome.rps,
        outcome.p50_ms,
        outcome.p99_ms,
        outcome.non_2xx,
        if run.flags.is_empty() { String::new() } else { format!(" FLAGGED: {}", run.flags.join("; ")) }
    )
}

/// An HTTP run's cells from "users in db" to "non-2xx", as the HTTP and SQLite tables
/// show them.
fn load_cells(run: &HttpRun) -> String {
    format!(
        "{} | {} | {} | {} | {} | {:.2} | {:.2} | {}",
        thousands(run.database_users),
        run.range.map_or_else(dash, |r| r.to_string()),
        run.connections,
        run.seconds,
        rate(run.outcome.rps),
        run.outcome.p50_ms,
        run.outcome.p99_ms,
        run.outcome.non_2xx
    )
}

/// An HTTP run's "removed in db / 2xx answers" cell.
fn removed_cell(run: &HttpRun) -> String {
    run.removed.map_or_else(dash, |r| format!("{} / {}", thousands(r.events), thousands(run.outcome.ok_requests())))
}

/// A run's "flags" cell: a dash, or how many flags in bold.
fn flags_cell(flags: &[String]) -> String {
    if flags.is_empty() { dash() } else { format!("**{}**", flags.len()) }
}

fn db_label(run: &DbRun) -> String {
    format!("{}{}, {} clients", run.kind.name(), if run.calibration { ", calibration" } else { "" }, run.clients)
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Sqlite => "SQLite",
        }
    }
}

/// A row of the targets table: factors' rate against a limit's (with its unit), their
/// ratio, and the verdict against `target` (none: the ratio is only shown).
fn target_row(
    out: &mut String,
    figure: &str,
    rps: f64,
    (limit, unit): (f64, &str),
    target: Option<f64>,
    flagged: bool,
) {
    let ratio = rps / limit;
    let _ = writeln!(
        out,
        "| {figure} | {} req/s | {} {unit} | {ratio:.2} | {} | {} |",
        rate(rps),
        rate(limit),
        target_text(target),
        target.map_or_else(dash, |t| verdict_text(&pass(ratio >= t), flagged))
    );
}

/// A row of the targets table whose runs did not happen.
fn not_run_row(out: &mut String, figure: &str, target: Option<f64>) {
    let _ = writeln!(out, "| {figure} | — | — | — | {} | not run |", target_text(target));
}

fn target_text(target: Option<f64>) -> String {
    target.map_or_else(|| "(shown)".to_owned(), |t| format!("≥ {t:.2}"))
}

#[allow(clippy::cast_precision_loss)] // file sizes
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn pass(ok: bool) -> Verdict {
    if ok { Verdict::Pass } else { Verdict::Miss }
}

fn verdict_text(verdict: &Verdict, flagged: bool) -> String {
    let text = match verdict {
        Verdict::Pass => "PASS",
        Verdict::Miss => "MISS",
        Verdict::NotRun => "not run",
    };
    if flagged { format!("{text} (flagged)") } else { text.to_owned() }
}

fn dash() -> String {
    "—".to_owned()
}

fn optional_ms(ms: Option<f64>) -> String {
    ms.map_or_else(dash, |ms| format!("{ms:.3}"))
}

#[allow(clippy::cast_precision_loss)] // kB of one process
fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// A rate without decimals, with thousands separators.
fn rate(value: f64) -> String {
    // Rates are far inside u64; the fraction is dropped on purpose.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = value.max(0.0).round() as u64;
    thousands(whole)
}

/// 1234567 as "1,234,567".
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The `## Notes` section of the report at `path`, from its heading to the end, or an
/// empty one when there is none.
pub fn kept_notes(path: &Path) -> String {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let start = existing.lines().scan(0, |offset, line| {
        let here = *offset;
        *offset += line.len() + 1;
        Some((here, line))
    });
    let found = start.filter(|(_, line)| line.trim_end() == NOTES).map(|(offset, _)| offset).next();
    match found {
        Some(offset) => existing[offset.min(existing.len())..].to_owned(),
        None => format!("{NOTES}\n"),
    }
}

/// Writes the report to `path`, keeping its `## Notes`.
pub fn write(report: &Report, path: &Path) -> anyhow::Result<PathBuf> {
    let notes = kept_notes(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, report.render(&notes)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_kept_verbatim_or_started_empty() {
        let dir = std::env::temp_dir().join(format!("factors-bench-notes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("REPORT.md");
        assert_eq!(kept_notes(&path), "## Notes\n");
        std::fs::write(&path, "# old\n\n## Flags\n\n## Notes\n\nWhy p99 moved.\n## Not a heading of ours\n")
            .expect("write");
        assert_eq!(kept_notes(&path), "## Notes\n\nWhy p99 moved.\n## Not a heading of ours\n");
        let rendered = Report::default().render(&kept_notes(&path));
        assert!(rendered.ends_with("## Notes\n\nWhy p99 moved.\n## Not a heading of ours\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_paired_figure_is_the_median_of_the_rounds_ratios() {
        let rounds =
            |pairs: &[(f64, f64)]| SqliteFigures { paired_get_user: pairs.to_vec(), ..SqliteFigures::default() };
        assert_eq!(rounds(&[]).paired_ratio(), None);
        // One round far off (a neighbour's burst) does not move the median.
        let odd = rounds(&[(70.0, 100.0), (7.0, 100.0), (80.0, 100.0)]);
        assert_eq!(odd.paired_ratio(), Some(0.7));
        let even = rounds(&[(60.0, 100.0), (90.0, 100.0), (70.0, 100.0), (80.0, 100.0)]);
        assert_eq!(even.paired_ratio(), Some(0.75));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(rate(1234.6), "1,235");
    }
}
