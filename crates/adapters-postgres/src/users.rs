//! Users: reading, creating and deleting, each write with its event.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use factors_application::Details;
use factors_application::ports::{DeleteUserError, InsertUserError, Unexpected, UserReader, UserWriter};
use factors_domain::{Event, InstanceId, User, UserId};
use sqlx::PgConnection;

use crate::rows::{ChangedUser, USER_COLUMNS, UserRow, state_to_db};
use crate::{PgStore, unexpected};

/// Appends `event` to the audit log as the user's event number `sequence`, stamped `at`:
/// the time the write gave the user's `changed`, so the event and `details.changed` agree.
pub(crate) async fn append_event(
    conn: &mut PgConnection,
    instance: &InstanceId,
    sequence: i64,
    event: &Event,
    at: DateTime<Utc>,
) -> Result<(), Unexpected> {
    let event = Event { at, ..event.clone() };
    sqlx::query(
        "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, payload, creator, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(instance.as_str())
    .bind(Event::AGGREGATE_TYPE)
    .bind(event.user.as_str())
    .bind(sequence)
    .bind(event.event_type())
    .bind(event.payload())
    .bind(event.actor.as_str())
    .bind(event.at)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(unexpected("appending an event"))
}

/// Locks the user's row and moves `sequence` and `changed`: to `at`, or a microsecond past
/// the previous change if the clock says otherwise (a skewed replica), so `changed` always
/// moves. `None` when the user does not exist. Every write to a user or its
/// authenticators starts here.
pub(crate) async fn bump_user(
    conn: &mut PgConnection,
    instance: &InstanceId,
    user: &UserId,
    at: DateTime<Utc>,
) -> Result<Option<ChangedUser>, Unexpected> {
    sqlx::query_as::<_, ChangedUser>(
        "UPDATE users SET changed_at = GREATEST(changed_at + interval '1 microsecond', $3), sequence = sequence + 1 \
         WHERE instance_id = $1 AND id = $2 \
         RETURNING id, org_id, created_at, changed_at, sequence",
    )
    .bind(instance.as_str())
    .bind(user.as_str())
    .bind(at)
    .fetch_optional(conn)
    .await
    .map_err(unexpected("updating the user"))
}

#[async_trait]
impl UserReader for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %id), err(level = "debug", Display))]
    async fn find_user(&self, id: &UserId) -> Result<Option<User>, Unexpected> {
        let row = sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE instance_id = $1 AND id = $2"
        ))
        .bind(self.instance.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("reading a user"))?;
        row.map(User::try_from).transpose()
    }
}

#[async_trait]
impl UserWriter for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id), err(level = "debug", Display))]
    async fn insert_user(&self, user: &User, event: &Event) -> Result<(), InsertUserError> {
        let mut tx = self.pool.begin().await.map_err(unexpected("starting a transaction"))?;
        // A re-created id continues the numbering of its earlier life's events.
        let sequence: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (instance_id, id, org_id, state, schema_id, data, email, email_verified, phone, \
                                phone_verified, created_at, changed_at, sequence) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, \
                     (SELECT COALESCE(MAX(sequence), 0) + 1 FROM events \
                      WHERE instance_id = $1 AND aggregate_type = 'user' AND aggregate_id = $2)) \
             ON CONFLICT (instance_id, id) DO NOTHING \
             RETURNING sequence",
        )
        .bind(self.instance.as_str())
        .bind(user.id.as_str())
        .bind(user.org.as_str())
        .bind(state_to_db(user.state))
        .bind(user.schema_id.as_str())
        .bind(user.data.to_value())
        .bind(user.contact.email.as_ref().map(|e| e.address.as_str()))
        .bind(user.contact.email.as_ref().is_some_and(|e| e.verified))
        .bind(user.contact.phone.as_ref().map(|p| p.number.as_e164()))
        .bind(user.contact.phone.as_ref().is_some_and(|p| p.verified))
        .bind(user.created)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("inserting a user"))?;
        let sequence = sequence.ok_or(InsertUserError::AlreadyExists)?;
        append_event(&mut tx, &self.instance, sequence, event, user.created).await?;
        tx.commit().await.map_err(unexpected("committing a new user"))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user), err(level = "debug", Display))]
    async fn delete_user(&self, user: &UserId, event: &Event) -> Result<Details, DeleteUserError> {
        let mut tx = self.pool.begin().await.map_err(unexpected("starting a transaction"))?;
        // Authenticators and their pending codes go with the user (ON DELETE CASCADE).
        let deleted = sqlx::query_as::<_, ChangedUser>(
            "DELETE FROM users WHERE instance_id = $1 AND id = $2 \
             RETURNING id, org_id, created_at, changed_at, sequence",
        )
        .bind(self.instance.as_str())
        .bind(user.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("deleting a user"))?
        .ok_or(DeleteUserError::NotFound)?;
        let changed = event.at.max(deleted.changed_at + TimeDelta::microseconds(1));
        append_event(&mut tx, &self.instance, deleted.sequence + 1, event, changed).await?;
        tx.commit().await.map_err(unexpected("committing a user's deletion"))?;
        Ok(Details { changed, ..deleted.details()? })
    }
}
