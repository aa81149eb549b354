//! The floor on SQLite: the file opened as the service opens it (its connection
//! settings and pools, readers beside one writer), sending `factors_adapters_sqlite::sql` in the
//! transactions the service sends them in: the read on a reader, the write as one
//! `BEGIN IMMEDIATE` transaction on the writer.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use factors_adapters_sqlite::{SqliteConfig, connect_options, pool_options, sql};
use sqlx::SqlitePool;

use super::{NewSession, Statements, UserRead};
use crate::database::{INSTANCE, OtpRemoval};
use crate::sqlite::{append, remove_in};

/// Readers: as many as the service's (the harness's pool size).
pub const READERS: u32 = 32;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The file's readers and its one writer.
pub struct Store {
    readers: SqlitePool,
    writer: SqlitePool,
}

impl Store {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let config = SqliteConfig { url: url.to_owned(), max_connections: READERS, acquire_timeout: ACQUIRE_TIMEOUT };
        let options = connect_options(&config)?;
        let writer =
            pool_options(1, ACQUIRE_TIMEOUT).connect_with(options.clone()).await.context("opening the writer")?;
        let readers =
            pool_options(READERS, ACQUIRE_TIMEOUT).connect_with(options).await.context("opening the readers")?;
        Ok(Self { readers, writer })
    }
}

impl Statements for &Store {
    async fn load_user(&mut self, user: &str) -> anyhow::Result<Option<UserRead>> {
        let rows = sqlx::query(sql::LOAD_USER).bind(INSTANCE).bind(user).fetch_all(&self.readers).await?;
        UserRead::from_rows(&rows)
    }

    async fn remove(&mut self, removal: &OtpRemoval<'_>) -> anyhow::Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let moved = remove_in(&mut tx, removal).await?;
        if moved {
            tx.commit().await?;
        }
        Ok(moved)
    }

    async fn create_session(&mut self, read: &UserRead, session: &NewSession<'_>) -> anyhow::Result<bool> {
        let (user, at) = (session.user, session.at);
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let held: i64 = sqlx::query_scalar(sql::USER_AT)
            .bind(INSTANCE)
            .bind(user)
            .bind(read.version.0)
            .bind(read.version.1)
            .bind(&read.org)
            .fetch_one(&mut *tx)
            .await?;
        if held == 0 {
            return Ok(false);
        }
        sqlx::query(sql::INSERT_SESSION)
            .bind(INSTANCE)
            .bind(&session.id)
            .bind(user)
            .bind(&read.org)
            .bind(at)
            .bind(None::<&str>)
            .bind(None::<DateTime<Utc>>)
            .bind(session.token_hash.as_slice())
            .bind(serde_json::json!({}))
            .bind(None::<DateTime<Utc>>)
            .bind(at)
            .bind(at)
            .bind(3_i64)
            .execute(&mut *tx)
            .await?;
        for (sequence, (kind, payload)) in (1_i64..).zip(session.events.iter()) {
            append(&mut tx, "session", &session.id, sequence, kind, payload.clone(), at).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
