//! Rows as stored, and their conversion into domain values. A row that no longer passes
//! the domain's checks is reported as unexpected, never silently repaired.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use factors_application::ports::Unexpected;
use factors_domain::{
    CheckedOtpSms, CheckedUser, CodeHash, Contact, ContactEmail, ContactPhone, EmailAddress, OrgId,
    OtpSmsAuthenticator, OtpSmsChallenge, OtpSmsId, PendingCode, PhoneNumber, SchemaId, Session, SessionId, TokenHash,
    User, UserData, UserId, UserSnapshot, UserState,
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

/// One row of [`crate::sql::LOAD_USER`]: the user, and one of its authenticators (if any).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SnapshotRow {
    #[sqlx(flatten)]
    user: UserRow,
    otp_id: Option<String>,
    otp_phone: Option<String>,
    otp_verified: Option<bool>,
    otp_created_at: Option<DateTime<Utc>>,
}

/// One row of [`crate::sql::LOAD_USER_WITH_CODE`]: as [`SnapshotRow`], with the pending
/// code on the row of the authenticator asked about.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SnapshotCodeRow {
    #[sqlx(flatten)]
    row: SnapshotRow,
    code_hash: Option<Vec<u8>>,
    expires_at: Option<DateTime<Utc>>,
    failed_attempts: Option<i32>,
}

/// The snapshot the rows of one user make up; `None` for no rows (no such user).
pub(crate) fn snapshot(rows: Vec<SnapshotRow>) -> Result<Option<UserSnapshot>, Unexpected> {
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else { return Ok(None) };
    let mut otp_sms = Vec::new();
    let user = User::try_from(first.user)?;
    for (id, phone, verified, created) in
        std::iter::once((first.otp_id, first.otp_phone, first.otp_verified, first.otp_created_at))
            .chain(rows.map(|r| (r.otp_id, r.otp_phone, r.otp_verified, r.otp_created_at)))
    {
        if let (Some(id), Some(phone), Some(verified), Some(created)) = (id, phone, verified, created) {
            otp_sms
                .push(OtpSmsRow { id, user_id: user.id.to_string(), phone, verified, created_at: created }.try_into()?);
        }
    }
    Ok(Some(UserSnapshot { user, otp_sms }))
}

/// The snapshot and the pending code the rows hold.
pub(crate) fn snapshot_with_code(
    rows: Vec<SnapshotCodeRow>,
) -> Result<Option<(UserSnapshot, Option<PendingCode>)>, Unexpected> {
    let mut pending = None;
    let mut plain = Vec::with_capacity(rows.len());
    for row in rows {
        if let (Some(hash), Some(expires_at), Some(failed)) = (row.code_hash, row.expires_at, row.failed_attempts) {
            let hash: [u8; 32] = hash
                .as_slice()
                .try_into()
                .map_err(|_| Unexpected(anyhow::anyhow!("a stored code hash is not 32 bytes")))?;
            pending = Some(PendingCode {
                hash: CodeHash::from_bytes(hash),
                expires_at,
                failed_attempts: u32::try_from(failed).unwrap_or(u32::MAX),
            });
        }
        plain.push(row.row);
    }
    Ok(snapshot(plain)?.map(|s| (s, pending)))
}

/// One row of [`crate::sql::LOAD_SESSION`]: a session and its pending challenge.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    user_id: Option<String>,
    user_org_id: Option<String>,
    user_checked_at: Option<DateTime<Utc>>,
    otp_sms_id: Option<String>,
    otp_sms_checked_at: Option<DateTime<Utc>>,
    token_hash: Vec<u8>,
    metadata: serde_json::Value,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    changed_at: DateTime<Utc>,
    sequence: i64,
    challenge_otp_sms_id: Option<String>,
    challenge_code_hash: Option<Vec<u8>>,
    challenge_expires_at: Option<DateTime<Utc>>,
    challenge_failed_attempts: Option<i32>,
    challenge_created_at: Option<DateTime<Utc>>,
}

fn hash_bytes(bytes: &[u8], what: &str) -> anyhow::Result<[u8; 32]> {
    bytes.try_into().with_context(|| format!("a stored {what} is not 32 bytes"))
}

/// Session metadata as stored: keys to base64 values.
pub(crate) fn metadata_to_db(metadata: &BTreeMap<String, Vec<u8>>) -> serde_json::Value {
    serde_json::Value::Object(metadata.iter().map(|(k, v)| (k.clone(), STANDARD.encode(v).into())).collect())
}

fn metadata_from_db(value: serde_json::Value) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let serde_json::Value::Object(map) = value else { anyhow::bail!("session metadata is not an object") };
    map.into_iter()
        .map(|(k, v)| {
            let text = v.as_str().context("a session metadata value is not a string")?;
            Ok((k, STANDARD.decode(text).context("a session metadata value is not base64")?))
        })
        .collect()
}

impl TryFrom<SessionRow> for Session {
    type Error = Unexpected;

    fn try_from(row: SessionRow) -> Result<Self, Unexpected> {
        let convert = || -> anyhow::Result<Session> {
            let user = match (row.user_id, row.user_org_id, row.user_checked_at) {
                (Some(id), Some(org), Some(checked_at)) => {
                    Some(CheckedUser { id: UserId::new(id)?, org: OrgId::new(org)?, checked_at })
                }
                (None, None, None) => None,
                _ => anyhow::bail!("a session's user is stored in part"),
            };
            let otp_sms = match (row.otp_sms_id, row.otp_sms_checked_at) {
                (Some(id), Some(checked_at)) => Some(CheckedOtpSms { authenticator: OtpSmsId::new(id)?, checked_at }),
                (None, None) => None,
                _ => anyhow::bail!("a session's OTP SMS factor is stored in part"),
            };
            let challenge = match (
                row.challenge_otp_sms_id,
                row.challenge_code_hash,
                row.challenge_expires_at,
                row.challenge_failed_attempts,
                row.challenge_created_at,
            ) {
                (Some(id), Some(hash), Some(expires_at), Some(failed), Some(created)) => Some(OtpSmsChallenge {
                    authenticator: OtpSmsId::new(id)?,
                    code: PendingCode {
                        hash: CodeHash::from_bytes(hash_bytes(&hash, "code hash")?),
                        expires_at,
                        failed_attempts: u32::try_from(failed)?,
                    },
                    created,
                }),
                _ => None,
            };
            Ok(Session {
                id: SessionId::new(row.id)?,
                user,
                otp_sms,
                challenge,
                token: TokenHash::from_bytes(hash_bytes(&row.token_hash, "token hash")?),
                metadata: metadata_from_db(row.metadata)?,
                expires_at: row.expires_at,
                created: row.created_at,
                changed: row.changed_at,
                sequence: u64::try_from(row.sequence)?,
            })
        };
        convert().context("a stored session fails the domain's checks").map_err(Unexpected)
    }
}
