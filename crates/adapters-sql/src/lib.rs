//! What factors' SQL stores (PostgreSQL, SQLite) share: rows as their statements answer
//! them, decoded the same way from either database (the schemas name and type their
//! columns alike), and their conversion into domain values. A row that no longer passes
//! the domain's checks is reported as unexpected, never silently repaired.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeDelta, Utc};
use factors_application::ports::{
    ClaimedNotice, FeedCursor, FeedEvent, NoticeKind, RecordedEvent, StoreUnreachable, StoredPolicies, Unexpected,
    UserPage, UserSearch,
};
use factors_domain::{
    BreakerEvent, CheckedOtpSms, CheckedUser, CodeHash, Contact, ContactEmail, ContactPhone, EmailAddress, LoginPolicy,
    Notice, OrgId, OtpSmsAuthenticator, OtpSmsChallenge, OtpSmsId, PendingCode, PhoneNumber, PolicyChange, PolicyEvent,
    SchemaId, Scope, Session, SessionEvent, SessionId, StoredPolicy, TokenHash, User, UserData, UserId, UserSession,
    UserSnapshot, UserState, Version,
};
use sqlx::{Arguments, Database, Encode, Type};

/// The columns of a user, prefixed `u.`, as [`UserRow`] decodes them: both stores'
/// statements select them (`concat!("SELECT ", user_columns!(), ...)`).
#[macro_export]
macro_rules! user_columns {
    () => {
        "u.id, u.org_id, u.state, u.schema_id, u.data, u.email, u.email_verified, u.phone, u.phone_verified, \
         u.created_at, u.changed_at, u.sequence"
    };
}

/// The columns of a session and its pending challenge (`s.`, `c.`), as [`SessionRow`]
/// decodes them: both stores' statements select them.
#[macro_export]
macro_rules! session_columns {
    () => {
        "s.id, s.user_id, s.user_org_id, s.user_checked_at, s.otp_sms_id, s.otp_sms_checked_at, s.token_hash, \
         s.metadata, s.expires_at, s.created_at, s.changed_at, s.sequence, c.otp_sms_id AS challenge_otp_sms_id, \
         c.code_hash AS challenge_code_hash, c.expires_at AS challenge_expires_at, \
         c.failed_attempts AS challenge_failed_attempts, c.created_at AS challenge_created_at"
    };
}

#[derive(Debug, sqlx::FromRow)]
pub struct UserRow {
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

pub fn state_to_db(state: UserState) -> i16 {
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
pub struct OtpSmsRow {
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

/// One row of the stores' user read: the user, and one of its authenticators (if any).
#[derive(Debug, sqlx::FromRow)]
pub struct SnapshotRow {
    #[sqlx(flatten)]
    user: UserRow,
    otp_id: Option<String>,
    otp_phone: Option<String>,
    otp_verified: Option<bool>,
    otp_created_at: Option<DateTime<Utc>>,
}

/// One row of the stores' user-with-code read: as [`SnapshotRow`], with the pending
/// code on the row of the authenticator asked about.
#[derive(Debug, sqlx::FromRow)]
pub struct SnapshotCodeRow {
    #[sqlx(flatten)]
    row: SnapshotRow,
    code_hash: Option<Vec<u8>>,
    expires_at: Option<DateTime<Utc>>,
    failed_attempts: Option<i32>,
}

/// The snapshot the rows of one user make up; `None` for no rows (no such user).
pub fn snapshot(rows: Vec<SnapshotRow>) -> Result<Option<UserSnapshot>, Unexpected> {
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
pub fn snapshot_with_code(
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

/// One row of the stores' session read: a session and its pending challenge.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
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
pub fn metadata_to_db(metadata: &BTreeMap<String, Vec<u8>>) -> serde_json::Value {
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

/// A sequence or count as the database stores it (`bigint` / `integer`).
///
/// # Errors
/// [`Unexpected`] when it does not fit.
pub fn stored<T: TryFrom<u64>>(value: u64) -> Result<T, Unexpected> {
    T::try_from(value).map_err(|_| Unexpected(anyhow::anyhow!("{value} does not fit its column")))
}

/// A session a user holds, from its stored `id`, `sequence` and `changed_at`.
///
/// # Errors
/// [`Unexpected`] when the stored id or sequence is not a valid one.
pub fn user_session((id, sequence, changed): (String, i64, DateTime<Utc>)) -> Result<UserSession, Unexpected> {
    let convert = || -> anyhow::Result<UserSession> {
        Ok(UserSession { id: SessionId::new(id)?, version: Version { sequence: u64::try_from(sequence)?, changed } })
    };
    convert().map_err(|e| Unexpected(e.context("a stored session")))
}

/// A try count as stored.
///
/// # Errors
/// [`Unexpected`] when it is negative.
pub fn tries_taken(count: i32) -> Result<u32, Unexpected> {
    u32::try_from(count).map_err(|e| Unexpected(anyhow::Error::new(e).context("a negative try count")))
}

/// Whether a statement failed on a unique constraint (an id, a number or an event number
/// taken), in either database.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Wraps a sqlx error for the log, with what was being done; one that means the database
/// is out of reach is marked [`StoreUnreachable`] (the request answers UNAVAILABLE).
pub fn unexpected(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Unexpected {
    move |e| {
        let unreachable = is_unreachable(&e);
        let error = anyhow::Error::new(e).context(doing);
        Unexpected(if unreachable { error.context(StoreUnreachable) } else { error })
    }
}

/// Whether a failed statement says the database is out of reach (and the same request may
/// succeed later) rather than that the statement was wrong.
pub fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // connection_exception (08…), admin_shutdown, crash_shutdown, cannot_connect_now,
        // and read_only_sql_transaction: the server under the connection became a standby
        // (its cluster's leader moved), so the write belongs on the next leader.
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

/// The events of a session decision as the statements take them: a JSON array of
/// `{type, payload}`.
pub fn events_json(events: &[SessionEvent]) -> serde_json::Value {
    events.iter().map(|e| serde_json::json!({"type": e.event_type(), "payload": e.payload()})).collect()
}

/// One row of the audit log as read back.
#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    sequence: i64,
    event_type: String,
    creator: String,
    created_at: DateTime<Utc>,
    payload: serde_json::Value,
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = Unexpected;

    fn try_from(row: EventRow) -> Result<Self, Unexpected> {
        Ok(RecordedEvent {
            sequence: u64::try_from(row.sequence)
                .map_err(|e| Unexpected(anyhow::Error::new(e).context("a negative event number")))?,
            event_type: row.event_type,
            creator: row.creator,
            created_at: row.created_at,
            payload: row.payload,
        })
    }
}

/// One row of the instance's event feed as read back: an [`EventRow`] with its stream
/// and its cursor.
#[derive(Debug, sqlx::FromRow)]
pub struct FeedRow {
    tx: i64,
    position: i64,
    aggregate_type: String,
    aggregate_id: String,
    #[sqlx(flatten)]
    event: EventRow,
}

impl TryFrom<FeedRow> for FeedEvent {
    type Error = Unexpected;

    fn try_from(row: FeedRow) -> Result<Self, Unexpected> {
        let count =
            |n: i64| u64::try_from(n).map_err(|e| Unexpected(anyhow::Error::new(e).context("a negative position")));
        Ok(FeedEvent {
            cursor: FeedCursor { transaction: count(row.tx)?, position: count(row.position)? },
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            event: row.event.try_into()?,
        })
    }
}

/// A feed cursor as the statements bind it: no position or transaction reaches i64::MAX,
/// so a larger one leaves the page empty.
pub fn feed_binds(after: FeedCursor) -> (i64, i64) {
    let bind = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    (bind(after.transaction), bind(after.position))
}

/// A stored login policy, as both stores' policy reads answer it.
#[derive(Debug, sqlx::FromRow)]
pub struct PolicyRow {
    aggregate_type: String,
    aggregate_id: String,
    force_mfa: bool,
    step_up_max_age_seconds: i64,
    notify_on_removal: bool,
    created_at: DateTime<Utc>,
    changed_at: DateTime<Utc>,
    sequence: i64,
}

/// The parameters of a policy write, in the order both stores' statements take them:
/// `1` instance, `2`, `3` the scope's aggregate (type, id), `4` force MFA, `5` the step-up
/// age in seconds, `6` notify on removal, `7` created, `8` changed, `9` sequence, and
/// `10`, `11` the version the change was decided on (null: none, a first policy). A store
/// whose statement takes more adds them after these.
///
/// # Errors
/// [`Unexpected`] for a sequence out of its column's range, or a value the driver cannot
/// encode.
pub fn policy_arguments<'q, DB: Database>(
    instance: &'q str,
    change: &'q PolicyChange,
) -> Result<<DB as Database>::Arguments<'q>, Unexpected>
where
    &'q str: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
{
    let encoding = |e: sqlx::error::BoxDynError| Unexpected(anyhow::anyhow!("encoding a policy's parameters: {e}"));
    let (aggregate_type, aggregate_id) = PolicyEvent::aggregate_of(&change.scope, instance);
    let mut arguments = <DB as Database>::Arguments::<'q>::default();
    arguments.add(instance).map_err(encoding)?;
    arguments.add(aggregate_type).map_err(encoding)?;
    arguments.add(aggregate_id).map_err(encoding)?;
    arguments.add(change.policy.force_mfa).map_err(encoding)?;
    arguments.add(change.policy.self_removal_step_up_max_age.num_seconds()).map_err(encoding)?;
    arguments.add(change.policy.notify_on_removal).map_err(encoding)?;
    arguments.add(change.created).map_err(encoding)?;
    arguments.add(change.to.changed).map_err(encoding)?;
    arguments.add(stored::<i64>(change.to.sequence)?).map_err(encoding)?;
    arguments.add(change.from.map(|v| stored::<i64>(v.sequence)).transpose()?).map_err(encoding)?;
    arguments.add(change.from.map(|v| v.changed)).map_err(encoding)?;
    Ok(arguments)
}

/// The parameters of a breaker's event, in the order both stores' `RECORD_BREAKER` take
/// them: `1` instance, `2`, `3` the region's aggregate (type, id), `4` event type, `5`
/// payload, `6` creator, `7` time. The statement numbers the event after the region's last.
///
/// # Errors
/// [`Unexpected`] for a value the driver cannot encode.
pub fn breaker_arguments<'q, DB: Database>(
    instance: &'q str,
    event: &'q BreakerEvent,
) -> Result<<DB as Database>::Arguments<'q>, Unexpected>
where
    &'q str: Encode<'q, DB> + Type<DB>,
    serde_json::Value: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    let encoding = |e: sqlx::error::BoxDynError| Unexpected(anyhow::anyhow!("encoding a breaker event: {e}"));
    let mut arguments = <DB as Database>::Arguments::<'q>::default();
    arguments.add(instance).map_err(encoding)?;
    arguments.add(BreakerEvent::AGGREGATE_TYPE).map_err(encoding)?;
    arguments.add(event.region.as_str()).map_err(encoding)?;
    arguments.add(event.event_type()).map_err(encoding)?;
    arguments.add(event.payload()).map_err(encoding)?;
    arguments.add(event.creator()).map_err(encoding)?;
    arguments.add(event.at).map_err(encoding)?;
    Ok(arguments)
}

/// The parameters of a user search, in the order both stores' statements take them: `1`
/// instance, `2` the organizations the users are within (`within`, in the form the store's
/// statement reads a list; null for every one), `3` organization, `4` id, `5` state (each
/// null when the search does not ask); and for a `page`, `6` the order's name, `7`
/// descending, `8` limit, `9` offset.
///
/// # Errors
/// [`Unexpected`] for a value the driver cannot encode.
pub fn search_arguments<'q, DB: Database, W>(
    instance: &'q str,
    search: &'q UserSearch,
    within: Option<W>,
    page: bool,
) -> Result<<DB as Database>::Arguments<'q>, Unexpected>
where
    Option<W>: Encode<'q, DB> + Type<DB> + 'q,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<i16>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let encoding = |e: sqlx::error::BoxDynError| Unexpected(anyhow::anyhow!("encoding a search's parameters: {e}"));
    let mut arguments = <DB as Database>::Arguments::<'q>::default();
    arguments.add(instance).map_err(encoding)?;
    arguments.add(within).map_err(encoding)?;
    arguments.add(search.org.as_ref().map(OrgId::as_str)).map_err(encoding)?;
    arguments.add(search.id.as_ref().map(UserId::as_str)).map_err(encoding)?;
    arguments.add(search.state.map(state_to_db)).map_err(encoding)?;
    if page {
        arguments.add(search.order.name()).map_err(encoding)?;
        arguments.add(search.descending).map_err(encoding)?;
        arguments.add(i64::from(search.limit)).map_err(encoding)?;
        // No store holds i64::MAX users, so a larger offset leaves the page empty.
        arguments.add(i64::try_from(search.offset).unwrap_or(i64::MAX)).map_err(encoding)?;
    }
    Ok(arguments)
}

/// A search's page as the stores read it: the count of the users it selects and the ids of
/// the page.
///
/// # Errors
/// [`Unexpected`] for a negative count or a stored id that fails the domain's checks.
pub fn user_page(total: i64, ids: Vec<String>) -> Result<UserPage, Unexpected> {
    let total = u64::try_from(total).context("a negative count of users").map_err(Unexpected)?;
    let ids =
        ids.into_iter().map(UserId::new).collect::<Result<_, _>>().context("a stored user id").map_err(Unexpected)?;
    Ok(UserPage { ids, total })
}

/// The instance default and the organization's policy among `rows`.
///
/// # Errors
/// [`Unexpected`] for a row that fails the domain's checks.
pub fn stored_policies(rows: Vec<PolicyRow>) -> Result<StoredPolicies, Unexpected> {
    let mut policies = StoredPolicies::default();
    for row in rows {
        let convert = || -> anyhow::Result<StoredPolicy> {
            let scope = match row.aggregate_type.as_str() {
                PolicyEvent::INSTANCE_AGGREGATE => Scope::Instance,
                PolicyEvent::ORG_AGGREGATE => Scope::Org(OrgId::new(row.aggregate_id)?),
                other => anyhow::bail!("unknown policy aggregate {other}"),
            };
            let policy = LoginPolicy::new(
                row.force_mfa,
                TimeDelta::try_seconds(row.step_up_max_age_seconds).context("a step-up age out of range")?,
                row.notify_on_removal,
            )?;
            Ok(StoredPolicy {
                scope,
                policy,
                version: Version { sequence: u64::try_from(row.sequence)?, changed: row.changed_at },
                created: row.created_at,
            })
        };
        let stored = convert().context("a stored login policy fails the domain's checks").map_err(Unexpected)?;
        match stored.scope {
            Scope::Instance => policies.instance = Some(stored),
            Scope::Org(_) => policies.org = Some(stored),
        }
    }
    Ok(policies)
}

/// The outbox's `kind` of a notice that a verified number was removed.
pub const OTP_SMS_REMOVED_NOTICE: &str = "otp_sms_removed";

/// What the outbox's `kind` column holds for each kind of notice.
pub fn notice_kind_to_db(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::OtpSmsRemoved => OTP_SMS_REMOVED_NOTICE,
    }
}

/// A notice as a claim of the outbox answers it.
#[derive(Debug, sqlx::FromRow)]
pub struct NoticeRow {
    id: String,
    kind: String,
    user_id: String,
    phone: String,
    created_at: DateTime<Utc>,
    attempts: i32,
}

/// The notices a claim answered, oldest first (then by id): the order they are sent in,
/// whatever order the database returned them in.
///
/// # Errors
/// [`Unexpected`] for a row that fails the domain's checks.
pub fn claimed_notices(rows: Vec<NoticeRow>) -> Result<Vec<ClaimedNotice>, Unexpected> {
    let mut claimed: Vec<ClaimedNotice> = rows.into_iter().map(ClaimedNotice::try_from).collect::<Result<_, _>>()?;
    claimed.sort_by(|a, b| a.notice.created.cmp(&b.notice.created).then_with(|| a.notice.id.cmp(&b.notice.id)));
    Ok(claimed)
}

impl TryFrom<NoticeRow> for ClaimedNotice {
    type Error = Unexpected;

    fn try_from(row: NoticeRow) -> Result<Self, Unexpected> {
        let convert = || -> anyhow::Result<ClaimedNotice> {
            let kind = match row.kind.as_str() {
                OTP_SMS_REMOVED_NOTICE => NoticeKind::OtpSmsRemoved,
                other => anyhow::bail!("unknown notice kind {other}"),
            };
            Ok(ClaimedNotice {
                notice: Notice {
                    id: row.id,
                    user: UserId::new(row.user_id)?,
                    to: PhoneNumber::from_stored(&row.phone)?,
                    created: row.created_at,
                },
                kind,
                attempt: u32::try_from(row.attempts)?,
            })
        };
        convert().context("a stored notice fails the domain's checks").map_err(Unexpected)
    }
}
