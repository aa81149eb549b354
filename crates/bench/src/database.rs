//! PostgreSQL from the harness's side: the bench databases (created fresh, dropped at the
//! end), their schema (applied by the service's own `factors migrate`), the seed, and the
//! counts that prove removals really removed.
//!
//! The seed: users `u<i>` of organization `org-bench`, each with exactly one verified OTP
//! SMS authenticator `o<i>` on its own Swiss mobile number `+4179<i, 7 digits>`, created
//! and last changed at [`SEEDED_AT`] and at sequence [`SEEDED_SEQUENCE`], with the two
//! events the service would have written for that history.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use sqlx::{Connection, Executor, PgConnection};
use tokio::process::Command;
use url::Url;

use crate::ledger::UserRange;

/// The instance the service serves by default (`instance.id`).
pub const INSTANCE: &str = "factors";
pub const ORG: &str = "org-bench";
/// Who created the seeded users, and who removes in the benchmark (the token's subject).
pub const ACTOR: &str = "bench-admin";

/// The origin the service records in each event of the bench's requests: wrk's loopback
/// address and a request id as long as the ones factors gives (a UUID). wrk sends no
/// user agent and the bench's tokens name no `amr`.
pub const ORIGIN_JSON: &str = r#"{"clientAddress": "127.0.0.1", "requestId": "00000000-0000-4000-8000-000000000000"}"#;

/// [`ORIGIN_JSON`] as a value.
pub fn origin() -> serde_json::Value {
    serde_json::from_str(ORIGIN_JSON).expect("valid JSON")
}
/// T: when every seeded user and authenticator was created and last changed.
pub const SEEDED_AT: &str = "2025-01-01T00:00:00Z";
/// T as seconds since the epoch, for `to_timestamp`: pgbench would read the colons of the
/// text form as variables.
pub const SEEDED_AT_EPOCH: i64 = 1_735_689_600;
/// The sequence of a seeded user: its second event, the authenticator's addition.
pub const SEEDED_SEQUENCE: i64 = 2;
/// The event a removal appends.
pub const REMOVED_EVENT: &str = "user.human.mfa.otp.sms.removed";
/// The phone numbers hold `i` in 7 digits.
pub const MAX_USERS: u64 = 9_999_999;

/// The PostgreSQL server the databases are created on.
#[derive(Debug, Clone)]
pub struct Server {
    url: Url,
}

impl Server {
    /// # Errors
    /// When the URL does not parse.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self { url: Url::parse(url).context("parsing the database URL")? })
    }

    /// The URL of database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        let mut url = self.url.clone();
        url.set_path(&format!("/{name}"));
        url.to_string()
    }

    /// The URL without its password, for the report.
    pub fn display(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        url.to_string()
    }

    /// A connection to the database the URL names (`postgres` when it names none), to
    /// create and drop the bench databases from.
    async fn admin(&self) -> anyhow::Result<PgConnection> {
        let url = if self.url.path().trim_start_matches('/').is_empty() {
            self.database_url("postgres")
        } else {
            self.url.to_string()
        };
        PgConnection::connect(&url).await.with_context(|| format!("connecting to PostgreSQL at {}", self.display()))
    }

    /// The server's version, e.g. "15.20 (Debian 15.20-0+deb12u1)".
    pub async fn version(&self) -> anyhow::Result<String> {
        let mut admin = self.admin().await?;
        let version: String =
            sqlx::query_scalar("SHOW server_version").fetch_one(&mut admin).await.context("asking the version")?;
        Ok(version)
    }

    /// Drops database `name` if it exists (closing its sessions) and creates it empty.
    pub async fn recreate(&self, name: &str) -> anyhow::Result<()> {
        self.drop_database(name).await?;
        let mut admin = self.admin().await?;
        admin
            .execute(format!("CREATE DATABASE {}", quoted(name)?).as_str())
            .await
            .with_context(|| format!("creating database {name} (the user of --database-url needs CREATEDB)"))?;
        Ok(())
    }

    /// Drops database `name` if it exists, closing its sessions first.
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        let mut admin = self.admin().await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(name)?).as_str())
            .await
            .with_context(|| format!("dropping database {name}"))?;
        Ok(())
    }
}

/// A database name as an SQL identifier; the harness only uses plain names.
fn quoted(name: &str) -> anyhow::Result<String> {
    ensure!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "unexpected database name {name:?}"
    );
    Ok(format!("\"{name}\""))
}

/// Applies the service's migrations with `factors migrate`, as an operator would.
pub async fn migrate(binary: &Path, config_dir: &Path, url: &str) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .arg("migrate")
        .env("FACTORS_ENV", "development")
        .env("FACTORS_CONFIG_DIR", config_dir)
        .env("FACTORS__DATABASE__URL", url)
        .env("FACTORS__LOG__FORMAT", "json")
        .output()
        .await
        .context("running factors migrate")?;
    ensure!(
        output.status.success(),
        "factors migrate failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Seeds the users of `range` (see the module doc) and returns how long it took. The
/// three tables fill in parallel, each from `generate_series` in one statement.
pub async fn seed(url: &str, range: UserRange) -> anyhow::Result<Duration> {
    ensure!(range.last() <= MAX_USERS, "at most {MAX_USERS} users fit the seeded phone numbers");
    let started = Instant::now();
    let users = format!(
        "INSERT INTO users (instance_id, id, org_id, state, schema_id, data, created_at, changed_at, sequence) \
         SELECT '{INSTANCE}', 'u' || i, '{ORG}', 1, 'human', '{{}}'::jsonb, to_timestamp({SEEDED_AT_EPOCH}), \
                to_timestamp({SEEDED_AT_EPOCH}), {SEEDED_SEQUENCE} \
         FROM generate_series($1::bigint, $2::bigint) AS i"
    );
    let authenticators = format!(
        "INSERT INTO otp_sms_authenticators (instance_id, id, user_id, phone, verified, created_at) \
         SELECT '{INSTANCE}', 'o' || i, 'u' || i, '+4179' || lpad(i::text, 7, '0'), TRUE, to_timestamp({SEEDED_AT_EPOCH}) \
         FROM generate_series($1::bigint, $2::bigint) AS i"
    );
    // The payloads the service writes (crates/domain/src/event.rs), phone masked as
    // PhoneNumber::masked does for a Swiss mobile: +41, six stars, the last three digits.
    let events = format!(
        "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, created_at) \
         SELECT '{INSTANCE}', 'user', 'u' || i, e.sequence, e.event_type, \
                jsonb_build_object('actor', '{ACTOR}', 'userId', 'u' || i, 'at', '{SEEDED_AT}') || CASE e.sequence \
                    WHEN 1 THEN jsonb_build_object('orgId', '{ORG}', 'schemaId', 'human') \
                    ELSE jsonb_build_object('otpSmsId', 'o' || i, 'phone', '+41******' || right(lpad(i::text, 7, '0'), 3), \
                                            'isVerified', TRUE) END, \
                '{ACTOR}', to_timestamp({SEEDED_AT_EPOCH}) \
         FROM generate_series($1::bigint, $2::bigint) AS i \
         CROSS JOIN (VALUES (1, 'user.human.added'), (2, 'user.human.mfa.otp.sms.added')) AS e(sequence, event_type)"
    );
    if may_skip_foreign_keys(url).await? {
        tokio::try_join!(fill(url, &users, range), fill(url, &authenticators, range), fill(url, &events, range))?;
    } else {
        // Checked foreign keys only see committed users: the users go first.
        fill(url, &users, range).await?;
        tokio::try_join!(fill(url, &authenticators, range), fill(url, &events, range))?;
    }
    Ok(started.elapsed())
}

/// Whether this role may switch the foreign-key triggers off (superusers only).
async fn may_skip_foreign_keys(url: &str) -> anyhow::Result<bool> {
    let mut connection = PgConnection::connect(url).await.context("connecting to seed")?;
    Ok(connection.execute("SET session_replication_role = replica").await.is_ok())
}

/// Runs one seeding statement on a connection of its own.
async fn fill(url: &str, statement: &str, range: UserRange) -> anyhow::Result<()> {
    let mut connection = PgConnection::connect(url).await.context("connecting to seed")?;
    // The rows are consistent by construction, and the tables fill in parallel: skip the
    // foreign-key triggers, which would make authenticators wait for their users (and
    // cost a lookup each). Only a superuser may; otherwise the checks run.
    let unchecked = connection.execute("SET session_replication_role = replica").await.is_ok();
    let first = i64::try_from(range.first).context("user number")?;
    let last = i64::try_from(range.last()).context("user number")?;
    sqlx::query(statement)
        .bind(first)
        .bind(last)
        .execute(&mut connection)
        .await
        .with_context(|| format!("seeding users {first}..={last} (foreign keys checked: {})", !unchecked))?;
    Ok(())
}

/// `VACUUM ANALYZE` so the planner knows the seeded tables, autovacuum off on them (a
/// vacuum set off by one run's deletes would land in the CPU of whichever run follows,
/// the service's or pgbench's), then a checkpoint so the seed's dirty pages are not
/// written out during the measured runs.
pub async fn settle(url: &str) -> anyhow::Result<()> {
    let mut connection = PgConnection::connect(url).await.context("connecting to vacuum")?;
    connection.execute("VACUUM ANALYZE").await.context("VACUUM ANALYZE")?;
    for table in ["users", "otp_sms_authenticators", "otp_sms_codes", "events"] {
        connection
            .execute(format!("ALTER TABLE {table} SET (autovacuum_enabled = false)").as_str())
            .await
            .with_context(|| format!("turning autovacuum off on {table}"))?;
    }
    quiesce(&mut connection).await;
    Ok(())
}

/// A checkpoint before a measured run, so that none falls inside it (by time or WAL
/// volume) and each run starts with the same clean buffers.
pub async fn checkpoint(url: &str) -> anyhow::Result<()> {
    let mut connection = PgConnection::connect(url).await.context("connecting to checkpoint")?;
    quiesce(&mut connection).await;
    Ok(())
}

async fn quiesce(connection: &mut PgConnection) {
    // Only a superuser (or pg_checkpoint) may; the runs are merely noisier without it.
    let _ = connection.execute("CHECKPOINT").await;
}

/// What the database holds for a range of seeded users after removals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removals {
    /// Removal events appended for the range.
    pub events: u64,
    /// Seeded authenticators of the range that are gone.
    pub authenticators_gone: u64,
}

/// Counts the removals the database holds for `range`.
pub async fn removals(url: &str, range: UserRange) -> anyhow::Result<Removals> {
    let mut connection = PgConnection::connect(url).await.context("connecting to count removals")?;
    let (events, left): (i64, i64) = sqlx::query_as(&format!(
        "SELECT \
           (SELECT count(*) FROM events WHERE instance_id = '{INSTANCE}' AND aggregate_type = 'user' \
              AND event_type = '{REMOVED_EVENT}' \
              AND aggregate_id IN (SELECT 'u' || g FROM generate_series($1::bigint, $2::bigint) AS g)), \
           (SELECT count(*) FROM otp_sms_authenticators WHERE instance_id = '{INSTANCE}' \
              AND id IN (SELECT 'o' || g FROM generate_series($1::bigint, $2::bigint) AS g))"
    ))
    .bind(i64::try_from(range.first)?)
    .bind(i64::try_from(range.last())?)
    .fetch_one(&mut connection)
    .await
    .context("counting removals")?;
    let events = u64::try_from(events)?;
    let gone = range.count.saturating_sub(u64::try_from(left)?);
    Ok(Removals { events, authenticators_gone: gone })
}
/// A user's version: its sequence and when it last changed.
pub type Version = (i64, DateTime<Utc>);

/// A removal's guarded write, as both stores send it: `user`'s authenticator `otp` (its
/// number `phone`) removed, the user moved from version `guard` to `next`.
#[derive(Debug, Clone, Copy)]
pub struct OtpRemoval<'a> {
    pub user: &'a str,
    pub otp: &'a str,
    pub guard: Version,
    pub next: Version,
    pub phone: &'a str,
}

impl OtpRemoval<'_> {
    /// The removal event's payload, the phone masked as the service masks it.
    pub fn payload(&self) -> serde_json::Value {
        let (user, otp, at, phone) = (self.user, self.otp, self.next.1, self.phone);
        let masked = format!("{}******{}", &phone[..phone.len().min(3)], &phone[phone.len().saturating_sub(3)..]);
        serde_json::json!({
            "actor": ACTOR, "userId": user, "at": at, "otpSmsId": otp, "phone": masked, "lastFactor": true,
            "origin": origin(),
        })
    }
}
