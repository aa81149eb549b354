//! The embedded store's part of a run: two SQLite files (10,000 users, and the users
//! asked), the writer's own rate in process, the service on the main file (cold removal,
//! GetUser, sign-in, and the short scale runs), GetUser in rounds alternating between the
//! service and the HTTP floor, the floor on the same file and loads, and the short scale
//! runs on the small file. The files live in the scratch folder and
//! are removed at the end, whatever happened.

use anyhow::{Context, ensure};

use super::{
    Bench, Category, Database, HttpSpec, MARGIN, MAX_CONCURRENCY, READ_CONCURRENCY, SCALE_USERS, SMALL_CONCURRENCY,
};
use crate::database;
use crate::floor::{Floor, Removal};
use crate::ledger::{Ledger, UserRange, allotment};
use crate::report::{HttpKind, Purpose};
use crate::service::Service;
use crate::sqlite::SqliteFile;
use crate::wrk::{self, Load};

const MAIN_FILE: &str = "factors-bench-main";
const SCALE_FILE: &str = "factors-bench-scale";
/// Removals of the writer's own run: a second or two at its rate.
const WRITER_REMOVALS: u64 = 20_000;
/// GetUser's paired rounds: how many, and how long each side of one runs.
const PAIRED_ROUNDS: usize = 6;
const PAIRED_SECONDS: u64 = 2;

impl Bench<'_> {
    /// Runs the embedded store's part and removes its files.
    pub(super) async fn embedded(&mut self) -> anyhow::Result<()> {
        println!("\nthe embedded store (SQLite)");
        let small = self.sqlite_file(SCALE_FILE, SCALE_USERS).await?;
        let main = self.sqlite_file(MAIN_FILE, self.plan.users).await?;
        let result = self.embedded_runs(&small, &main).await;
        let removed = small.remove().and(main.remove());
        result?;
        removed
    }

    /// A fresh file, migrated by the service and seeded with users `1..=users`.
    async fn sqlite_file(&mut self, name: &str, users: u64) -> anyhow::Result<SqliteFile> {
        let file = SqliteFile::fresh(&self.scratch, name)?;
        database::migrate(&self.binary, &self.config_dir, &file.url()).await?;
        println!("seeding {} with {users} users ...", file.url());
        let took = file.seed(UserRange { first: 1, count: users }).await?;
        println!("seeded in {:.1} s", took.as_secs_f64());
        self.report.sqlite.seeds.push((users, took, file.bytes()));
        Ok(file)
    }

    async fn embedded_runs(&mut self, small: &SqliteFile, main: &SqliteFile) -> anyhow::Result<()> {
        let mut ledger = Ledger::new(self.plan.users);
        let writer_removals = WRITER_REMOVALS.min(self.plan.users / 4);
        let writer = main.writer_share(ledger.take(writer_removals)?).await?;
        println!("the writer alone: {:.0} removals/s", writer.rate());
        // Every removal goes through that one connection: no run goes faster.
        self.rates.record(Category::SqliteRemoval, writer.rate());
        self.report.sqlite.writer = Some(writer);
        let scale_seconds = self.scale_seconds_at(SCALE_USERS, Category::SqliteRemoval);

        let database = Database::Sqlite(main.clone());
        let (service, launched) = Service::start(&self.launch_on(main.url(), false, "factors-sqlite.log")).await?;
        println!("launch -> ready on the seeded SQLite file: {} ms", launched.as_millis());
        self.report.launches.push(("SQLite file already seeded".into(), launched));
        self.smoke_test(&service, &mut ledger).await?;
        self.warm_up(&service, UserRange { first: 1, count: writer_removals }).await?;
        let scale = Purpose::Scale(scale_seconds);
        self.sqlite_removal(&service, main, &mut ledger, scale).await?;
        self.sqlite_removal(&service, main, &mut ledger, Purpose::Measure).await?;
        let users = ledger.seeded();
        let everyone = UserRange { first: 1, count: users };
        let reads = HttpSpec {
            kind: HttpKind::GetUser,
            purpose: Purpose::Measure,
            redis: false,
            load: Load::Get(everyone),
            connections: READ_CONCURRENCY,
            database: database.clone(),
            database_users: users,
        };
        self.http_run(&service, reads).await?;
        self.scale_read(&service, database.clone(), users).await?;
        self.sign_in(&service, database.clone(), users).await?;
        let floor = Floor::start(&main.url(), Removal::ReadThenWrite, &self.scratch.join("floor-sqlite.log")).await?;
        self.paired_reads(&service, &floor, everyone).await?;
        service.stop().await?;

        let range = self.sqlite_fresh(main, &mut ledger, self.sqlite_allotment(self.plan.seconds())).await?;
        let users = ledger.seeded();
        let runs = [
            (HttpKind::ColdRemoval, Load::Remove(range), SMALL_CONCURRENCY),
            (HttpKind::GetUser, Load::Get(everyone), READ_CONCURRENCY),
            (HttpKind::SignIn, Load::SignIn(everyone), SMALL_CONCURRENCY),
        ];
        for (kind, load, connections) in runs {
            self.floor_run(&floor, kind, load, connections, database.clone(), users).await?;
        }
        floor.stop().await?;

        let (service, _) = Service::start(&self.launch_on(small.url(), false, "factors-sqlite-scale.log")).await?;
        self.warm_up(&service, UserRange { first: 1, count: SCALE_USERS }).await?;
        let mut small_ledger = Ledger::new(SCALE_USERS);
        let left = small_ledger.left();
        let range = small_ledger.take(left - left % MAX_CONCURRENCY)?;
        let spec = HttpSpec {
            kind: HttpKind::ColdRemoval,
            purpose: scale,
            redis: false,
            load: Load::Remove(range),
            connections: SMALL_CONCURRENCY,
            database: Database::Sqlite(small.clone()),
            database_users: SCALE_USERS,
        };
        self.http_run(&service, spec).await?;
        self.scale_read(&service, Database::Sqlite(small.clone()), SCALE_USERS).await?;
        service.stop().await
    }

    /// GetUser on the service and on the floor in alternating short rounds, both open on
    /// the main file (GetUser only reads it); which goes first alternates too. Each pair
    /// runs seconds apart, so the machine's drift between the long runs, minutes apart,
    /// stays out of their ratio.
    async fn paired_reads(&mut self, service: &Service, floor: &Floor, users: UserRange) -> anyhow::Result<()> {
        for round in 0..PAIRED_ROUNDS {
            let mut rates = [0.0; 2];
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let base = if side == 0 { service.base() } else { floor.base() };
                let outcome =
                    wrk::run(base, &self.token, &self.wrk_script, Load::Get(users), READ_CONCURRENCY, PAIRED_SECONDS)
                        .await?;
                ensure!(outcome.non_2xx == 0, "{} GetUser answers of a paired round were not 2xx", outcome.non_2xx);
                rates[side] = outcome.rps;
            }
            println!("SQLite GetUser, paired round {}: {:.0} / {:.0} req/s", round + 1, rates[0], rates[1]);
            self.report.sqlite.paired_get_user.push((rates[0], rates[1]));
        }
        Ok(())
    }

    /// A cold removal run at 8 connections through the service on the main file.
    async fn sqlite_removal(
        &mut self,
        service: &Service,
        file: &SqliteFile,
        ledger: &mut Ledger,
        purpose: Purpose,
    ) -> anyhow::Result<()> {
        let count = self.sqlite_allotment(purpose.seconds(self.plan.seconds()));
        let range = self.sqlite_fresh(file, ledger, count).await?;
        let spec = HttpSpec {
            kind: HttpKind::ColdRemoval,
            purpose,
            redis: false,
            load: Load::Remove(range),
            connections: SMALL_CONCURRENCY,
            database: Database::Sqlite(file.clone()),
            database_users: ledger.seeded(),
        };
        self.http_run(service, spec).await
    }

    /// The users a removal run on SQLite may consume in `seconds`.
    fn sqlite_allotment(&self, seconds: u64) -> u64 {
        allotment(self.rates.expected(Category::SqliteRemoval), seconds, MARGIN, MAX_CONCURRENCY)
    }

    /// `count` fresh users of `file`; seeds more first when too few are left.
    async fn sqlite_fresh(&mut self, file: &SqliteFile, ledger: &mut Ledger, count: u64) -> anyhow::Result<UserRange> {
        if ledger.left() < count {
            let range = UserRange { first: ledger.seeded() + 1, count: (count - ledger.left()) * 2 };
            println!("seeding {range} more into {}", file.url());
            let took = file.seed(range).await.context("topping up the SQLite file")?;
            ledger.grow(range.count);
            // The main file's seed is the last one recorded (the small file's comes first).
            if let Some(seed) = self.report.sqlite.seeds.last_mut() {
                seed.0 = ledger.seeded();
                seed.1 += took;
                seed.2 = file.bytes();
            }
        }
        ledger.take(count)
    }
}
