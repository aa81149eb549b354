//! The floor on PostgreSQL: one connection per HTTP connection, sending
//! `factors_adapters_postgres::sql` with the parameters the service binds.

use anyhow::Context;
use chrono::{DateTime, Utc};
use factors_adapters_postgres::sql;
use hyper::StatusCode;
use sqlx::postgres::PgConnectOptions;
use sqlx::types::Json;
use sqlx::{ConnectOptions, PgConnection, Row};

use super::{Answer, Asked, NewSession, Removal, Route, next_version, removed, removed_payload, seeded_version};
use crate::database::{ACTOR, INSTANCE, ORG, REMOVED_EVENT};

/// The URL's options with the settings the service's sessions have.
pub fn options(database_url: &str) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = database_url.parse().context("--database-url")?;
    Ok(options.options(sql::SESSION_SETTINGS.iter().copied()))
}

/// The database connection of one HTTP connection.
pub struct Connection(PgConnection);

impl Connection {
    pub async fn open(options: &PgConnectOptions) -> anyhow::Result<Self> {
        Ok(Self(options.connect().await.context("connecting")?))
    }

    pub async fn answer(&mut self, removal: Removal, asked: Asked) -> anyhow::Result<Answer> {
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

    async fn load_user(&mut self, user: &str) -> anyhow::Result<Vec<sqlx::postgres::PgRow>> {
        Ok(sqlx::query(sql::LOAD_USER).bind(INSTANCE).bind(user).fetch_all(&mut self.0).await?)
    }

    async fn remove(&mut self, removal: Removal, user: &str, otp: &str) -> anyhow::Result<Answer> {
        let ((guard, next), phone) = match removal {
            Removal::ReadThenWrite => {
                let rows = self.load_user(user).await?;
                // The authenticator's row, if the user holds it: otherwise nothing to remove.
                let Some(row) =
                    rows.iter().find(|r| r.try_get::<Option<&str>, _>("otp_id").ok().flatten() == Some(otp))
                else {
                    return Ok((StatusCode::NOT_FOUND, String::new()));
                };
                (next_version(row.try_get("sequence")?, row.try_get("changed_at")?), row.try_get("otp_phone")?)
            }
            Removal::OneStatement => {
                // The seed's number holds the user's digits; the write only masks it.
                let digits: String = user.chars().filter(char::is_ascii_digit).collect();
                (seeded_version()?, format!("+4179{digits:0>7}"))
            }
        };
        let payload = removed_payload(user, otp, next.1, &phone);
        let moved: i64 = sqlx::query_scalar(sql::REMOVE_OTP_SMS)
            .bind(INSTANCE)
            .bind(user)
            .bind(guard.0)
            .bind(guard.1)
            .bind(next.0)
            .bind(next.1)
            .bind("user")
            .bind(REMOVED_EVENT)
            .bind(Json(payload))
            .bind(ACTOR)
            .bind(ORG)
            .bind(otp)
            // Guarded by the login policies (none stored: versions 0), no notice.
            .bind(true)
            .bind(0_i64)
            .bind(0_i64)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .fetch_one(&mut self.0)
            .await?;
        Ok(if moved == 1 { removed(otp, next.1) } else { (StatusCode::CONFLICT, String::new()) })
    }

    async fn sign_in(&mut self, user: &str) -> anyhow::Result<Answer> {
        let rows = self.load_user(user).await?;
        let Some(row) = rows.first() else { return Ok((StatusCode::NOT_FOUND, String::new())) };
        let (org, sequence, changed): (String, i64, DateTime<Utc>) =
            (row.try_get("org_id")?, row.try_get("sequence")?, row.try_get("changed_at")?);
        let at = Utc::now();
        let session = NewSession::new(user, &org, at);
        let events: serde_json::Value = session
            .events
            .iter()
            .map(|(kind, payload)| serde_json::json!({"type": kind, "payload": payload}))
            .collect();
        let written: i64 = sqlx::query_scalar(sql::CREATE_SESSION)
            .bind(INSTANCE)
            .bind(&session.id)
            .bind(None::<i64>)
            .bind(None::<DateTime<Utc>>)
            .bind(3_i64)
            .bind(at)
            .bind(user)
            .bind(&org)
            .bind(at)
            .bind(None::<&str>)
            .bind(None::<DateTime<Utc>>)
            .bind(session.token_hash.as_slice())
            .bind(Json(serde_json::json!({})))
            .bind(None::<DateTime<Utc>>)
            .bind(at)
            .bind("keep")
            .bind(None::<&str>)
            .bind(None::<&[u8]>)
            .bind(None::<DateTime<Utc>>)
            .bind(None::<i32>)
            .bind(None::<DateTime<Utc>>)
            .bind(user)
            .bind(&org)
            .bind(sequence)
            .bind(changed)
            .bind("session")
            .bind(Json(events))
            .bind(ACTOR)
            .fetch_one(&mut self.0)
            .await?;
        Ok(if written == 1 { session.created(at) } else { (StatusCode::CONFLICT, String::new()) })
    }
}
