//! The floor on SQLite: the file opened as the service opens it (its connection
//! settings and pools, readers beside one writer), sending `factors_adapters_sqlite::sql` in the
//! transactions the service sends them in: the read on a reader, the write as one
//! `BEGIN IMMEDIATE` transaction on the writer.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use factors_adapters_sqlite::{SqliteConfig, connect_options, pool_options, sql};
use hyper::StatusCode;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::{Answer, Asked, NewSession, Removal, Route, next_version, removed, seeded_version};
use crate::database::INSTANCE;
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

    pub async fn answer(&self, removal: Removal, asked: Asked) -> anyhow::Result<Answer> {
        match asked.route() {
            Route::Health => Ok((StatusCode::OK, "{}".to_owned())),
            Route::GetUser(user) => {
                let rows = self.load_user(user).await?;
                let Some(row) = rows.first() else { return Ok((StatusCode::NOT_FOUND, String::new())) };
                let sequence: i64 = row.try_get("sequence")?;
                let body = format!(r#"{{"user":{{"id":"{user}","sequence":{sequence},"rows":{}}}}}"#, rows.len());
                Ok((StatusCode::OK, body))
            }
            Route::Remove { user, otp } => self.remove(removal, user, otp).await,
            Route::SignIn(user) => self.sign_in(user).await,
            Route::Unknown => Ok((StatusCode::NOT_FOUND, String::new())),
        }
    }

    async fn load_user(&self, user: &str) -> anyhow::Result<Vec<SqliteRow>> {
        Ok(sqlx::query(sql::LOAD_USER).bind(INSTANCE).bind(user).fetch_all(&self.readers).await?)
    }

    async fn remove(&self, removal: Removal, user: &str, otp: &str) -> anyhow::Result<Answer> {
        let ((guard, next), phone) = match removal {
            Removal::ReadThenWrite => {
                let rows = self.load_user(user).await?;
                let Some(row) =
                    rows.iter().find(|r| r.try_get::<Option<&str>, _>("otp_id").ok().flatten() == Some(otp))
                else {
                    return Ok((StatusCode::NOT_FOUND, String::new()));
                };
                (next_version(row.try_get("sequence")?, row.try_get("changed_at")?), row.try_get("otp_phone")?)
            }
            Removal::OneStatement => {
                let digits: String = user.chars().filter(char::is_ascii_digit).collect();
                (seeded_version()?, format!("+4179{digits:0>7}"))
            }
        };
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let moved = remove_in(&mut tx, user, otp, guard, next, &phone).await?;
        if !moved {
            return Ok((StatusCode::CONFLICT, String::new()));
        }
        tx.commit().await?;
        Ok(removed(otp, next.1))
    }

    async fn sign_in(&self, user: &str) -> anyhow::Result<Answer> {
        let rows = self.load_user(user).await?;
        let Some(row) = rows.first() else { return Ok((StatusCode::NOT_FOUND, String::new())) };
        let (org, sequence, changed): (String, i64, DateTime<Utc>) =
            (row.try_get("org_id")?, row.try_get("sequence")?, row.try_get("changed_at")?);
        let at = Utc::now();
        let session = NewSession::new(user, &org, at);
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let held: i64 = sqlx::query_scalar(sql::USER_AT)
            .bind(INSTANCE)
            .bind(user)
            .bind(sequence)
            .bind(changed)
            .bind(&org)
            .fetch_one(&mut *tx)
            .await?;
        if held == 0 {
            return Ok((StatusCode::CONFLICT, String::new()));
        }
        sqlx::query(sql::INSERT_SESSION)
            .bind(INSTANCE)
            .bind(&session.id)
            .bind(user)
            .bind(&org)
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
        Ok(session.created(at))
    }
}
