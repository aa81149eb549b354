//! SQLite from the harness's side: the bench files (in the scratch folder, removed at the
//! end), their schema (applied by the service's own `factors migrate`), the seed, the
//! checkpoint before each run, the size of the write-ahead log after it, the counts that
//! prove removals really removed, and the writer's own rate.
//!
//! The seed is PostgreSQL's (see [`crate::database`]): the same users, authenticators and
//! events, with times bound as the store binds them, so that the service's guards find
//! the versions they read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use factors_adapters_sqlite::sql;
use factors_adapters_sqlite::{SqliteConfig, connect_options};
use factors_domain::PolicyEvent;
use sqlx::{ConnectOptions, Connection, Executor, SqliteConnection};

use crate::database::OtpRemoval;
use crate::database::{ACTOR, INSTANCE, MAX_USERS, ORG, REMOVED_EVENT, Removals, SEEDED_AT_EPOCH, SEEDED_SEQUENCE};
use crate::ledger::UserRange;

/// Users seeded per transaction: large enough that a commit costs nothing, small enough
/// that the log stays small.
const SEED_CHUNK: u64 = 100_000;

/// A bench database file.
#[derive(Debug, Clone)]
pub struct SqliteFile {
    path: PathBuf,
}

impl SqliteFile {
    /// The file `name`.db in `dir`, removed (with its log) if it is there.
    pub fn fresh(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let file = Self { path: dir.join(format!("{name}.db")) };
        file.remove()?;
        Ok(file)
    }

    /// The `sqlite://` URL the service and the floor are given.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// Removes the file, its write-ahead log and its shared-memory index.
    pub fn remove(&self) -> anyhow::Result<()> {
        for path in [self.path.clone(), self.companion("-wal"), self.companion("-shm")] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
        }
        Ok(())
    }

    fn companion(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// The size of the write-ahead log now (0 when there is none).
    pub fn wal_bytes(&self) -> u64 {
        std::fs::metadata(self.companion("-wal")).map_or(0, |m| m.len())
    }

    /// The size of the database file.
    pub fn bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// A connection as the store opens one.
    async fn connect(&self) -> anyhow::Result<SqliteConnection> {
        let config = SqliteConfig { url: self.url(), max_connections: 1, acquire_timeout: Duration::from_secs(5) };
        connect_options(&config)?.connect().await.with_context(|| format!("opening {}", self.path.display()))
    }

    /// Seeds the users of `range` and returns how long it took.
    pub async fn seed(&self, range: UserRange) -> anyhow::Result<Duration> {
        ensure!(range.last() <= MAX_USERS, "at most {MAX_USERS} users fit the seeded phone numbers");
        let started = Instant::now();
        let mut connection = self.connect().await?;
        let seeded = DateTime::<Utc>::from_timestamp(SEEDED_AT_EPOCH, 0).context("the seed's time")?;
        let seeded_text = seeded.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        // `?1..=?2` the users, `?3` the time as the store binds it.
        let numbers = "WITH RECURSIVE g(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM g WHERE i < ?2)";
        let users = format!(
            "{numbers} INSERT INTO users (instance_id, id, org_id, state, schema_id, data, created_at, changed_at, \
             sequence) SELECT '{INSTANCE}', 'u' || i, '{ORG}', 1, 'human', '{{}}', ?3, ?3, {SEEDED_SEQUENCE} FROM g"
        );
        let authenticators = format!(
            "{numbers} INSERT INTO otp_sms_authenticators (instance_id, id, user_id, phone, verified, created_at) \
             SELECT '{INSTANCE}', 'o' || i, 'u' || i, '+4179' || substr('000000' || i, -7), 1, ?3 FROM g"
        );
        let events = format!(
            "{numbers} INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, \
             creator, created_at) \
             SELECT '{INSTANCE}', 'user', 'u' || i, e.sequence, e.event_type, CASE e.sequence \
                 WHEN 1 THEN json_object('actor', '{ACTOR}', 'userId', 'u' || i, 'at', '{seeded_text}', \
                                         'orgId', '{ORG}', 'schemaId', 'human') \
                 ELSE json_object('actor', '{ACTOR}', 'userId', 'u' || i, 'at', '{seeded_text}', 'otpSmsId', 'o' || i, \
                                  'phone', '+41******' || substr('000000' || i, -3), 'isVerified', json('true')) END, \
                 '{ACTOR}', ?3 \
             FROM g CROSS JOIN (SELECT 1 AS sequence, 'user.human.added' AS event_type \
                                UNION ALL SELECT 2, 'user.human.mfa.otp.sms.added') AS e"
        );
        let mut first = range.first;
        while first <= range.last() {
            let last = (first + SEED_CHUNK - 1).min(range.last());
            let mut tx = connection.begin().await.context("starting a seed transaction")?;
            for statement in [&users, &authenticators, &events] {
                sqlx::query(statement)
                    .bind(i64::try_from(first)?)
                    .bind(i64::try_from(last)?)
                    .bind(seeded)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("seeding users {first}..={last} of {}", self.path.display()))?;
            }
            tx.commit().await.context("committing a seed transaction")?;
            first = last + 1;
        }
        connection.close().await.context("closing the seed connection")?;
        Ok(started.elapsed())
    }

    /// A checkpoint before a measured run that empties the log, so that each run starts
    /// from the same state and the log's size after it is the run's own.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        let mut connection = self.connect().await?;
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").await.context("checkpointing")?;
        connection.close().await.context("closing the checkpoint connection")?;
        Ok(())
    }

    /// Counts the removals the file holds for `range`.
    pub async fn removals(&self, range: UserRange) -> anyhow::Result<Removals> {
        let mut connection = self.connect().await?;
        let (events, left): (i64, i64) = sqlx::query_as(&format!(
            "WITH RECURSIVE g(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM g WHERE i < ?2) SELECT \
               (SELECT count(*) FROM events WHERE instance_id = '{INSTANCE}' AND aggregate_type = 'user' \
                  AND event_type = '{REMOVED_EVENT}' AND aggregate_id IN (SELECT 'u' || i FROM g)), \
               (SELECT count(*) FROM otp_sms_authenticators WHERE instance_id = '{INSTANCE}' \
                  AND id IN (SELECT 'o' || i FROM g))"
        ))
        .bind(i64::try_from(range.first)?)
        .bind(i64::try_from(range.last())?)
        .fetch_one(&mut connection)
        .await
        .context("counting removals")?;
        connection.close().await.context("closing the counting connection")?;
        Ok(Removals {
            events: u64::try_from(events)?,
            authenticators_gone: range.count.saturating_sub(u64::try_from(left)?),
        })
    }

    /// The writer's share: the removals of `range` one after the other on one connection
    /// opened as the store opens its writer, each the write transaction the store sends
    /// for a cold removal (`BEGIN IMMEDIATE`, the guarded move, the policies' versions,
    /// the code, the authenticator, the event, `COMMIT`), in this process: no HTTP, no
    /// read, no other connection. Every write in the service goes through one such
    /// connection, so its rate bounds the service's removals per second.
    pub async fn writer_share(&self, range: UserRange) -> anyhow::Result<WriterShare> {
        let mut connection = self.connect().await?;
        let seeded = DateTime::<Utc>::from_timestamp(SEEDED_AT_EPOCH, 0).context("the seed's time")?;
        let started = Instant::now();
        for i in range.first..=range.last() {
            let (user, otp) = (format!("u{i}"), format!("o{i}"));
            let next = (SEEDED_SEQUENCE + 1, Utc::now());
            let mut tx = connection.begin_with("BEGIN IMMEDIATE").await.context("starting a removal")?;
            let phone = format!("+4179{i:0>7}");
            let removal = OtpRemoval { user: &user, otp: &otp, guard: (SEEDED_SEQUENCE, seeded), next, phone: &phone };
            let moved = remove_in(&mut tx, &removal).await?;
            ensure!(moved, "user {user} was not at its seeded version");
            tx.commit().await.context("committing a removal")?;
        }
        let took = started.elapsed();
        let wal_bytes = self.wal_bytes();
        connection.close().await.context("closing the writer")?;
        Ok(WriterShare { removals: range.count, took, wal_bytes })
    }
}

/// What the writer did alone.
#[derive(Debug, Clone, Copy)]
pub struct WriterShare {
    pub removals: u64,
    pub took: Duration,
    /// The log's size at the end.
    pub wal_bytes: u64,
}

impl WriterShare {
    /// Removals per second.
    pub fn rate(&self) -> f64 {
        // Counts of one run, far inside f64's exact integers.
        #[allow(clippy::cast_precision_loss)]
        let removals = self.removals as f64;
        removals / self.took.as_secs_f64().max(1e-9)
    }
}

/// A cold removal's write, as the service's store sends it: the user moved from `guard`
/// to `next` (else nothing, and `false`), the login policies at the versions decided on
/// (none stored: 0), the code voided, the authenticator removed, the event appended.
pub async fn remove_in(tx: &mut SqliteConnection, removal: &OtpRemoval<'_>) -> anyhow::Result<bool> {
    let OtpRemoval { user, otp, guard, next, .. } = *removal;
    let moved = sqlx::query(sql::MOVE_USER)
        .bind(INSTANCE)
        .bind(user)
        .bind(guard.0)
        .bind(guard.1)
        .bind(next.0)
        .bind(next.1)
        .bind(ORG)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if moved == 0 {
        return Ok(false);
    }
    let versions: (i64, i64) = sqlx::query_as(sql::POLICY_VERSIONS)
        .bind(INSTANCE)
        .bind(ORG)
        .bind(PolicyEvent::ORG_AGGREGATE)
        .bind(PolicyEvent::INSTANCE_AGGREGATE)
        .fetch_one(&mut *tx)
        .await?;
    anyhow::ensure!(versions == (0, 0), "the bench database holds login policies: {versions:?}");
    sqlx::query(sql::DELETE_CODE).bind(INSTANCE).bind(otp).execute(&mut *tx).await?;
    sqlx::query(sql::REMOVE_AUTHENTICATOR).bind(INSTANCE).bind(user).bind(otp).execute(&mut *tx).await?;
    append(tx, "user", user, next.0, REMOVED_EVENT, removal.payload(), next.1).await?;
    Ok(true)
}

pub async fn append(
    tx: &mut SqliteConnection,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
    payload: serde_json::Value,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(sql::APPEND_EVENT)
        .bind(INSTANCE)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .bind(event_type)
        .bind(payload)
        .bind(ACTOR)
        .bind(at)
        .execute(tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use factors_adapters_sqlite::SqliteStore;
    use factors_application::ports::UserReader;
    use factors_domain::{InstanceId, OtpSmsId, UserId};
    use factors_testing::TestSqliteFile;

    use super::*;

    async fn store(file: &SqliteFile) -> SqliteStore {
        let config = SqliteConfig { url: file.url(), max_connections: 2, acquire_timeout: Duration::from_secs(5) };
        SqliteStore::open(&config, InstanceId::new(INSTANCE).expect("valid")).await.expect("the store opens")
    }

    async fn load(store: &SqliteStore, user: &str) -> factors_domain::UserSnapshot {
        let id = UserId::new(user).expect("valid");
        store.load(&id).await.expect("reads").unwrap_or_else(|| panic!("{user} is stored"))
    }

    #[tokio::test]
    async fn the_seed_reads_back_through_the_store_and_the_writer_removes_what_it_counts() {
        let folder = TestSqliteFile::new();
        let file = SqliteFile::fresh(folder.folder(), "bench").expect("a fresh file");
        let store = store(&file).await;
        file.seed(UserRange { first: 1, count: 40 }).await.expect("seeds");

        // The service reads a seeded user as it reads one it created itself.
        let user = load(&store, "u7").await;
        assert_eq!((user.user.sequence, user.user.org.as_str()), (SEEDED_SEQUENCE as u64, ORG));
        let o7 = user.otp_sms(&OtpSmsId::new("o7").expect("valid")).expect("u7 holds o7");
        assert!(o7.verified);
        assert_eq!(o7.phone.as_e164(), "+41790000007");

        let removed = UserRange { first: 11, count: 10 };
        let share = file.writer_share(removed).await.expect("the writer removes");
        assert_eq!(share.removals, 10);
        assert_eq!(file.removals(removed).await.ok(), Some(Removals { events: 10, authenticators_gone: 10 }));
        let untouched = UserRange { first: 21, count: 20 };
        assert_eq!(file.removals(untouched).await.ok(), Some(Removals { events: 0, authenticators_gone: 0 }));
        let user = load(&store, "u15").await;
        assert_eq!(user.user.sequence, SEEDED_SEQUENCE as u64 + 1);
        assert!(user.otp_sms.is_empty(), "{user:?}");

        // A second removal of the same users finds them moved: the guard holds.
        assert!(file.writer_share(removed).await.is_err());
        store.close().await;
        file.checkpoint().await.expect("checkpoints");
        assert_eq!(file.wal_bytes(), 0);
    }
}
