//! The floor on PostgreSQL: one connection per HTTP connection, sending
//! `factors_adapters_postgres::sql` with the parameters the service binds.

use anyhow::Context;
use chrono::{DateTime, Utc};
use factors_adapters_postgres::sql;
use factors_adapters_sql::OTP_SMS_REMOVED_NOTICE;
use factors_domain::PolicyEvent;
use sqlx::postgres::PgConnectOptions;
use sqlx::types::Json;
use sqlx::{ConnectOptions, PgConnection};

use super::{NewSession, Statements, UserRead};
use crate::database::OtpRemoval;
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
}

impl Statements for Connection {
    async fn load_user(&mut self, user: &str) -> anyhow::Result<Option<UserRead>> {
        let rows = sqlx::query(sql::LOAD_USER).bind(INSTANCE).bind(user).fetch_all(&mut self.0).await?;
        UserRead::from_rows(&rows)
    }

    async fn remove(&mut self, removal: &OtpRemoval<'_>) -> anyhow::Result<bool> {
        let OtpRemoval { user, otp, guard, next, .. } = *removal;
        let payload = removal.payload();
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
            .bind(PolicyEvent::ORG_AGGREGATE)
            .bind(PolicyEvent::INSTANCE_AGGREGATE)
            .bind(OTP_SMS_REMOVED_NOTICE)
            .fetch_one(&mut self.0)
            .await?;
        Ok(moved == 1)
    }

    async fn create_session(&mut self, read: &UserRead, session: &NewSession<'_>) -> anyhow::Result<bool> {
        let (user, at) = (session.user, session.at);
        let (org, (sequence, changed)) = (&read.org, read.version);
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
            .bind(org)
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
            .bind(org)
            .bind(sequence)
            .bind(changed)
            .bind("session")
            .bind(Json(events))
            .bind(ACTOR)
            .fetch_one(&mut self.0)
            .await?;
        Ok(written == 1)
    }
}
