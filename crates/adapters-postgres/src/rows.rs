//! Rows as stored, and their conversion into domain values. A row that no longer passes
//! the domain's checks is reported as unexpected, never silently repaired.

use anyhow::Context;
use chrono::{DateTime, Utc};
use factors_application::Details;
use factors_application::ports::Unexpected;
use factors_domain::{
    Contact, ContactEmail, ContactPhone, EmailAddress, OrgId, OtpSmsAuthenticator, OtpSmsId, PhoneNumber, SchemaId,
    User, UserData, UserId, UserState,
};

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    org_id: String,
    state: i16,
    schema_id: String,
    data: serde_json::Value,
    email: Option<String>,
    email_verified: bool,
    phone: Option<String>,
    phone_verified: bool,
    created_at: DateTime<Utc>,
    changed_at: DateTime<Utc>,
    sequence: i64,
}

pub(crate) const USER_COLUMNS: &str = "id, org_id, state, schema_id, data, email, email_verified, phone, \
     phone_verified, created_at, changed_at, sequence";

pub(crate) fn state_to_db(state: UserState) -> i16 {
    match state {
        UserState::Active => 1,
        UserState::Inactive => 2,
        UserState::Deleted => 3,
        UserState::Locked => 4,
    }
}

impl TryFrom<UserRow> for User {
    type Error = Unexpected;

    fn try_from(row: UserRow) -> Result<Self, Unexpected> {
        let convert = || -> anyhow::Result<User> {
            let state = match row.state {
                1 => UserState::Active,
                2 => UserState::Inactive,
                3 => UserState::Deleted,
                4 => UserState::Locked,
                other => anyhow::bail!("unknown user state {other}"),
            };
            let email = row
                .email
                .map(|e| EmailAddress::parse(&e).map(|address| ContactEmail { address, verified: row.email_verified }))
                .transpose()?;
            let phone = row
                .phone
                .map(|p| {
                    PhoneNumber::from_stored(&p).map(|number| ContactPhone { number, verified: row.phone_verified })
                })
                .transpose()?;
            Ok(User {
                id: UserId::new(row.id)?,
                org: OrgId::new(row.org_id)?,
                state,
                schema_id: SchemaId::new(row.schema_id)?,
                data: UserData::new(row.data)?,
                contact: Contact { email, phone },
                created: row.created_at,
                changed: row.changed_at,
                sequence: u64::try_from(row.sequence)?,
            })
        };
        convert().context("a stored user fails the domain's checks").map_err(Unexpected)
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OtpSmsRow {
    id: String,
    user_id: String,
    phone: String,
    verified: bool,
    created_at: DateTime<Utc>,
}

impl TryFrom<OtpSmsRow> for OtpSmsAuthenticator {
    type Error = Unexpected;

    fn try_from(row: OtpSmsRow) -> Result<Self, Unexpected> {
        let convert = || -> anyhow::Result<OtpSmsAuthenticator> {
            Ok(OtpSmsAuthenticator {
                id: OtpSmsId::new(row.id)?,
                user: UserId::new(row.user_id)?,
                phone: PhoneNumber::from_stored(&row.phone)?,
                verified: row.verified,
                created: row.created_at,
            })
        };
        convert().context("a stored OTP SMS authenticator fails the domain's checks").map_err(Unexpected)
    }
}

/// What the `UPDATE users ... RETURNING` of a write gives back.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChangedUser {
    pub(crate) id: String,
    pub(crate) org_id: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) changed_at: DateTime<Utc>,
    pub(crate) sequence: i64,
}

impl ChangedUser {
    pub(crate) fn details(&self) -> Result<Details, Unexpected> {
        let convert = || -> anyhow::Result<Details> {
            Ok(Details {
                id: UserId::new(self.id.clone())?,
                created: self.created_at,
                changed: self.changed_at,
                owner: OrgId::new(self.org_id.clone())?,
            })
        };
        convert().context("a stored user fails the domain's checks").map_err(Unexpected)
    }
}
