//! Sign-in sessions (ZITADEL's `zitadel.session.v2`): a session collects checked factors,
//! here the user and the OTP SMS code that a challenge sent to one of its authenticators.
//!
//! The rules are pure: [`plan_session`] takes the session as read (or none, for a new one),
//! the user it concerns as read, what the request asks and `now`, and answers the state
//! after the request with its events, or a refusal. Like the user's decisions, a session's
//! is applied only while the session is still at the version read, and, when it concerns
//! a user, only while that user is too: a challenge or a check decided before a removal of
//! the authenticator can never be written after it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::snapshot::next_change;
use crate::{
    Caller, CodeHash, CodeKey, CodePolicy, CodeRejection, OrgId, Origin, OtpSmsId, PendingCode, PhoneNumber, SessionId,
    UserId, UserSnapshot, UserState, VerificationCode, Version, check_code,
};

/// A session token as handed to the client. Only its [`TokenHash`] is stored; its `Debug`
/// output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// A token of the text given (minted from a CSPRNG, or presented by a client).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// The stored form of a session token: its SHA-256. Tokens are 256 random bits, so a plain
/// hash suffices (nothing to guess offline), and a database dump holds no usable token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `presented` is the token of this hash, compared in constant time.
    pub fn admits(&self, presented: &SessionToken) -> bool {
        self.0.ct_eq(&presented.hash().0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// The user a session was checked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUser {
    pub id: UserId,
    pub org: OrgId,
    pub checked_at: DateTime<Utc>,
}

/// An OTP SMS code checked on a session, and the authenticator it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOtpSms {
    pub authenticator: OtpSmsId,
    pub checked_at: DateTime<Utc>,
}

/// A sign-in code waiting to be typed back: sent for `authenticator`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpSmsChallenge {
    pub authenticator: OtpSmsId,
    pub code: PendingCode,
    pub created: DateTime<Utc>,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user: Option<CheckedUser>,
    pub otp_sms: Option<CheckedOtpSms>,
    pub challenge: Option<OtpSmsChallenge>,
    /// The hash of the current token; every write replaces it.
    pub token: TokenHash,
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub changed: DateTime<Utc>,
    /// The number of the session's last event.
    pub sequence: u64,
}

impl Session {
    pub fn version(&self) -> Version {
        Version { sequence: self.sequence, changed: self.changed }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// When the OTP SMS factor was checked, as the session shows it. With
    /// `revoke_on_removal`, the factor counts only while the user (as read in `user`) still
    /// holds the authenticator the code was sent to: a removal takes it away from every
    /// session it verified, at the instant the removal commits.
    pub fn otp_sms_verified_at(&self, user: Option<&UserSnapshot>, revoke_on_removal: bool) -> Option<DateTime<Utc>> {
        let checked = self.otp_sms.as_ref()?;
        let held = || user.is_some_and(|u| u.otp_sms(&checked.authenticator).is_some());
        (!revoke_on_removal || held()).then_some(checked.checked_at)
    }
}

/// What happened to a session. Payloads carry masked phone numbers only, never codes or
/// tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEventKind {
    Added,
    UserChecked { user: UserId, org: OrgId },
    OtpSmsChallenged { authenticator: OtpSmsId, masked_phone: String, code_returned: bool },
    OtpSmsChecked { authenticator: OtpSmsId },
    MetadataSet { keys: Vec<String> },
    LifetimeSet { expires_at: DateTime<Utc> },
    TokenSet,
    Terminated,
}

/// An event on the session aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub session: SessionId,
    pub actor: UserId,
    pub origin: Origin,
    pub at: DateTime<Utc>,
    pub kind: SessionEventKind,
}

impl SessionEvent {
    /// The aggregate type of session events.
    pub const AGGREGATE_TYPE: &'static str = "session";

    /// ZITADEL's name of the event type.
    pub fn event_type(&self) -> &'static str {
        match self.kind {
            SessionEventKind::Added => "session.added",
            SessionEventKind::UserChecked { .. } => "session.user.checked",
            SessionEventKind::OtpSmsChallenged { .. } => "session.otp.sms.challenged",
            SessionEventKind::OtpSmsChecked { .. } => "session.otp.sms.checked",
            SessionEventKind::MetadataSet { .. } => "session.metadata.set",
            SessionEventKind::LifetimeSet { .. } => "session.lifetime.set",
            SessionEventKind::TokenSet => "session.token.set",
            SessionEventKind::Terminated => "session.terminated",
        }
    }

    /// The payload, self-contained: who, on which session, what and when.
    pub fn payload(&self) -> serde_json::Value {
        let at = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let mut payload = json!({"actor": self.actor.as_str(), "sessionId": self.session.as_str(), "at": at(&self.at)});
        let details = match &self.kind {
            SessionEventKind::Added | SessionEventKind::TokenSet | SessionEventKind::Terminated => json!({}),
            SessionEventKind::UserChecked { user, org } => json!({"userId": user.as_str(), "orgId": org.as_str()}),
            SessionEventKind::OtpSmsChallenged { authenticator, masked_phone, code_returned } => {
                json!({"otpSmsId": authenticator.as_str(), "phone": masked_phone, "codeReturned": code_returned})
            }
            SessionEventKind::OtpSmsChecked { authenticator } => json!({"otpSmsId": authenticator.as_str()}),
            SessionEventKind::MetadataSet { keys } => json!({"keys": keys}),
            SessionEventKind::LifetimeSet { expires_at } => json!({"expiresAt": at(expires_at)}),
        };
        if let (Some(payload), serde_json::Value::Object(details)) = (payload.as_object_mut(), details) {
            payload.extend(details);
            if !self.origin.is_empty() {
                payload.insert("origin".into(), json!(self.origin));
            }
        }
        payload
    }
}

/// A user's version a session write depends on: the write applies only while the user is
/// still at it, in the organization it was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldUser {
    pub id: UserId,
    pub org: OrgId,
    pub version: Version,
}

/// A session write the rules allow, made on one version of the session (none, for a new
/// one): the store writes `after` and appends the events numbered on from the version
/// read, all or nothing, and only while the session is at `from` and the user at `holds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDecision {
    pub session: SessionId,
    pub from: Option<Version>,
    /// The state after the write; its version is the one the write moves to.
    pub after: Session,
    pub holds: Option<HeldUser>,
    /// What becomes of the pending challenge.
    pub challenge: ChallengeChange,
    pub events: Vec<SessionEvent>,
    /// Where a challenge's code goes by SMS (none when it was asked back with `returnCode`).
    pub sms: Option<PhoneNumber>,
}

/// The end of a session (DeleteSession), decided on one version of it: the store deletes
/// it and appends `event`, numbered `from.sequence + 1`, only while it is at `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTermination {
    pub session: SessionId,
    pub from: Version,
    pub event: SessionEvent,
}

impl SessionTermination {
    /// The version the session ends at: its last event's number and time.
    pub fn to(&self) -> Version {
        Version { sequence: self.from.sequence + 1, changed: self.event.at }
    }
}

/// What a session write does to the pending challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeChange {
    /// Leaves it as stored (a removal may have voided it meanwhile; that stands).
    Keep,
    /// Replaces it by the one of the state after.
    Replace,
    /// Uses it up.
    Clear,
}

/// A challenge to send: the code, and whether the caller wants it back instead of an SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRequest {
    pub code: VerificationCode,
    pub return_code: bool,
}

/// What a CreateSession or SetSession asks of the rules, its input checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// `checks.user`: the user to check (read into the `user` argument of [`plan_session`]).
    pub check_user: Option<UserId>,
    /// `checks.otpSms.code`.
    pub check_code: Option<VerificationCode>,
    pub challenge: Option<ChallengeRequest>,
    /// Keys to set; an empty value removes its key.
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub lifetime: Option<TimeDelta>,
    /// The token the write hands out.
    pub token: TokenHash,
}

/// The latest time a session may expire: the last second a `google.protobuf.Timestamp`
/// (and RFC 3339, which factors writes) holds, 9999-12-31T23:59:59Z.
pub fn latest_expiry() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why a session request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    #[error("the session has expired")]
    Expired,
    /// The lifetime would end the session after [`latest_expiry`].
    #[error("the lifetime ends after 9999-12-31T23:59:59Z")]
    LifetimeTooLong,
    #[error("the user to check does not exist")]
    UserNotFound,
    #[error("the user is not active")]
    UserInactive,
    #[error("the session is checked for another user")]
    UserChanged,
    #[error("no user is checked on the session")]
    UserNotChecked,
    #[error("the user has no verified OTP SMS authenticator")]
    NoOtpSms,
    #[error("no OTP SMS challenge is pending")]
    NoChallenge,
    /// Expired or exhausted: the code is void, whatever was typed.
    #[error(transparent)]
    Void(CodeRejection),
}

/// What the rules make of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPlan {
    Write(Box<SessionDecision>),
    /// A wrong code: nothing of the request is written (its try was taken before the
    /// comparison, see [`PendingCode::is_open`]); `void` says it was the last one allowed.
    WrongCode {
        void: bool,
    },
}

/// A session about to be created: its id, fixed before the first decision so that every
/// decision (and the code's hash, bound to the session) names the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
}

/// Decides a CreateSession (`current` is [`Err`] with the new session's id) or a SetSession
/// (`current` is the session as read), for `actor` at `now`.
///
/// `user` is the user as read: the one `checks.user` names, else the session's own. In the
/// order ZITADEL applies them: the user check, the OTP SMS check, the challenge, metadata,
/// lifetime; a new token always.
///
/// # Errors
/// [`SessionRefusal`], the first that applies.
#[allow(clippy::too_many_arguments)] // the inputs of one rule, each needed
pub fn plan_session(
    current: Result<&Session, &NewSession>,
    user: Option<&UserSnapshot>,
    request: &SessionRequest,
    code_key: &CodeKey,
    code_policy: &CodePolicy,
    actor: &Caller,
    now: DateTime<Utc>,
) -> Result<SessionPlan, SessionRefusal> {
    let (mut session, from) = starting_point(current, request, now)?;
    let at = from.map_or(now, |from| next_change(from.changed, now));
    let mut kinds = Vec::new();
    if from.is_none() {
        kinds.push(SessionEventKind::Added);
    }
    if let Some(checked) = &request.check_user {
        check_user(&mut session, user, checked, at, &mut kinds)?;
    }
    let concerned = concerned_user(&session, user, request)?;
    let mut challenge_change = ChallengeChange::Keep;
    if let Some(typed) = &request.check_code {
        match check_sign_in_code(&mut session, concerned, typed, code_key, code_policy, now, at)? {
            SignInCode::Passed(authenticator) => kinds.push(SessionEventKind::OtpSmsChecked { authenticator }),
            SignInCode::Wrong { void } => return Ok(SessionPlan::WrongCode { void }),
        }
        challenge_change = ChallengeChange::Clear;
    }
    let mut sms = None;
    if let Some(challenge) = &request.challenge {
        challenge_change = ChallengeChange::Replace;
        sms = issue_challenge(&mut session, concerned, challenge, code_key, code_policy, at, &mut kinds)?;
    }
    set_metadata_and_lifetime(&mut session, request, at, &mut kinds)?;

    session.token = request.token;
    kinds.push(SessionEventKind::TokenSet);
    session.changed = at;
    session.sequence = from.map_or(0, |v| v.sequence) + kinds.len() as u64;
    let holds =
        concerned.map(|u| HeldUser { id: u.user.id.clone(), org: u.user.org.clone(), version: u.user.version() });
    let events = kinds
        .into_iter()
        .map(|kind| SessionEvent {
            session: session.id.clone(),
            actor: actor.user_id.clone(),
            origin: actor.origin.clone(),
            at,
            kind,
        })
        .collect();
    Ok(SessionPlan::Write(Box::new(SessionDecision {
        session: session.id.clone(),
        from,
        after: session,
        holds,
        challenge: challenge_change,
        events,
        sms,
    })))
}

/// The session a request starts from, with the version read (`None` for a new one); an
/// expired session takes no request.
fn starting_point(
    current: Result<&Session, &NewSession>,
    request: &SessionRequest,
    now: DateTime<Utc>,
) -> Result<(Session, Option<Version>), SessionRefusal> {
    match current {
        Ok(session) if session.is_expired(now) => Err(SessionRefusal::Expired),
        Ok(session) => Ok((session.clone(), Some(session.version()))),
        Err(new) => Ok((
            Session {
                id: new.id.clone(),
                user: None,
                otp_sms: None,
                challenge: None,
                token: request.token,
                metadata: BTreeMap::new(),
                expires_at: None,
                created: now,
                changed: now,
                sequence: 0,
            },
            None,
        )),
    }
}

/// Checks user `checked` into the session: it must be the user read, active, and the
/// session's own user if it has one.
fn check_user(
    session: &mut Session,
    user: Option<&UserSnapshot>,
    checked: &UserId,
    at: DateTime<Utc>,
    kinds: &mut Vec<SessionEventKind>,
) -> Result<(), SessionRefusal> {
    let user = user.filter(|u| &u.user.id == checked).ok_or(SessionRefusal::UserNotFound)?;
    if user.user.state != UserState::Active {
        return Err(SessionRefusal::UserInactive);
    }
    if session.user.as_ref().is_some_and(|u| &u.id != checked) {
        return Err(SessionRefusal::UserChanged);
    }
    session.user = Some(CheckedUser { id: checked.clone(), org: user.user.org.clone(), checked_at: at });
    kinds.push(SessionEventKind::UserChecked { user: checked.clone(), org: user.user.org.clone() });
    Ok(())
}

/// The user the factors of the request concern, as read: the session's checked user. A
/// session whose user is gone is deleted with it, so a checked user that was not read is
/// not found; a code or a challenge needs an active checked user.
fn concerned_user<'a>(
    session: &Session,
    user: Option<&'a UserSnapshot>,
    request: &SessionRequest,
) -> Result<Option<&'a UserSnapshot>, SessionRefusal> {
    let concerned = match &session.user {
        Some(checked) => Some(user.filter(|u| u.user.id == checked.id).ok_or(SessionRefusal::UserNotFound)?),
        None => None,
    };
    let needs_user = request.check_code.is_some() || request.challenge.is_some();
    match concerned {
        // Only an active user signs in, whenever its state was read.
        Some(user) if needs_user && user.user.state != UserState::Active => Err(SessionRefusal::UserInactive),
        Some(user) => Ok(Some(user)),
        None if needs_user => Err(SessionRefusal::UserNotChecked),
        None => Ok(None),
    }
}

/// What a typed sign-in code came to.
enum SignInCode {
    /// The OTP SMS factor of this authenticator is checked.
    Passed(OtpSmsId),
    /// A wrong code; `void` when it spent the challenge's last try.
    Wrong { void: bool },
}

/// Checks the typed sign-in code against the session's challenge: on success the OTP SMS
/// factor is checked and the challenge used up.
fn check_sign_in_code(
    session: &mut Session,
    concerned: Option<&UserSnapshot>,
    typed: &VerificationCode,
    code_key: &CodeKey,
    code_policy: &CodePolicy,
    now: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<SignInCode, SessionRefusal> {
    let challenge = session.challenge.as_ref().ok_or(SessionRefusal::NoChallenge)?;
    // A challenge for an authenticator the user no longer holds verified is void.
    let held = concerned.and_then(|u| u.otp_sms(&challenge.authenticator)).is_some_and(|a| a.verified);
    if !held {
        return Err(SessionRefusal::NoChallenge);
    }
    let presented = code_key.hash_sign_in(&session.id, &challenge.authenticator, typed);
    match check_code(&challenge.code, &presented, now, code_policy) {
        Ok(()) => {
            let authenticator = challenge.authenticator.clone();
            session.otp_sms = Some(CheckedOtpSms { authenticator: authenticator.clone(), checked_at: at });
            session.challenge = None;
            Ok(SignInCode::Passed(authenticator))
        }
        Err(CodeRejection::Wrong { void }) => Ok(SignInCode::Wrong { void }),
        Err(rejection) => Err(SessionRefusal::Void(rejection)),
    }
}

/// Issues a sign-in code for the concerned user's oldest verified authenticator; answers
/// the number to send it to, unless the request asked for the code back.
fn issue_challenge(
    session: &mut Session,
    concerned: Option<&UserSnapshot>,
    challenge: &ChallengeRequest,
    code_key: &CodeKey,
    code_policy: &CodePolicy,
    at: DateTime<Utc>,
    kinds: &mut Vec<SessionEventKind>,
) -> Result<Option<PhoneNumber>, SessionRefusal> {
    let user = concerned.ok_or(SessionRefusal::UserNotChecked)?;
    let target = user.otp_sms.iter().find(|a| a.verified).ok_or(SessionRefusal::NoOtpSms)?;
    let hash: CodeHash = code_key.hash_sign_in(&session.id, &target.id, &challenge.code);
    session.challenge = Some(OtpSmsChallenge {
        authenticator: target.id.clone(),
        code: PendingCode::issue(hash, at, code_policy),
        created: at,
    });
    kinds.push(SessionEventKind::OtpSmsChallenged {
        authenticator: target.id.clone(),
        masked_phone: target.phone.masked(),
        code_returned: challenge.return_code,
    });
    Ok((!challenge.return_code).then(|| target.phone.clone()))
}

/// Sets the request's metadata (an empty value removes its key) and lifetime.
fn set_metadata_and_lifetime(
    session: &mut Session,
    request: &SessionRequest,
    at: DateTime<Utc>,
    kinds: &mut Vec<SessionEventKind>,
) -> Result<(), SessionRefusal> {
    if !request.metadata.is_empty() {
        for (key, value) in &request.metadata {
            if value.is_empty() {
                session.metadata.remove(key);
            } else {
                session.metadata.insert(key.clone(), value.clone());
            }
        }
        kinds.push(SessionEventKind::MetadataSet { keys: request.metadata.keys().cloned().collect() });
    }
    if let Some(lifetime) = request.lifetime {
        let expires_at =
            at.checked_add_signed(lifetime).filter(|e| *e <= latest_expiry()).ok_or(SessionRefusal::LifetimeTooLong)?;
        session.expires_at = Some(expires_at);
        kinds.push(SessionEventKind::LifetimeSet { expires_at });
    }
    Ok(())
}

/// Ends `session` (DeleteSession): it is deleted, with a `session.terminated` event.
pub fn plan_termination(session: &Session, actor: &Caller, now: DateTime<Utc>) -> SessionTermination {
    terminate(&UserSession { id: session.id.clone(), version: session.version() }, actor, now)
}

/// A session a user holds, as its user's deletion ends it: its id and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    pub id: SessionId,
    pub version: Version,
}

/// The end of `session` at `now` by `actor`: deleted, with a `session.terminated` event,
/// only while it is at the version read.
pub(crate) fn terminate(session: &UserSession, actor: &Caller, now: DateTime<Utc>) -> SessionTermination {
    SessionTermination {
        session: session.id.clone(),
        from: session.version,
        event: SessionEvent {
            session: session.id.clone(),
            actor: actor.user_id.clone(),
            origin: actor.origin.clone(),
            at: next_change(session.version.changed, now),
            kind: SessionEventKind::Terminated,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::user;
    use crate::{OtpSmsAuthenticator, PendingCode};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).single().expect("valid time")
    }

    fn key() -> CodeKey {
        CodeKey::new([9u8; 32]).expect("32 bytes")
    }

    fn sid() -> SessionId {
        SessionId::new("s1").expect("valid id")
    }

    fn otp(id: &str) -> OtpSmsId {
        OtpSmsId::new(id).expect("valid id")
    }

    fn code(digits: &str) -> VerificationCode {
        VerificationCode::parse(digits).expect("six digits")
    }

    fn token(text: &str) -> TokenHash {
        SessionToken::new(text).hash()
    }

    /// Alice with authenticators `(id, verified)`, oldest first.
    fn alice(held: &[(&str, bool)]) -> UserSnapshot {
        let alice = user("alice", "org-a");
        let otp_sms = held
            .iter()
            .enumerate()
            .map(|(i, (id, verified))| OtpSmsAuthenticator {
                id: otp(id),
                user: alice.id.clone(),
                phone: PhoneNumber::parse(&format!("+4179123456{i}")).expect("valid phone"),
                verified: *verified,
                created: now() - TimeDelta::hours(1) + TimeDelta::minutes(i64::try_from(i).expect("small")),
            })
            .collect();
        UserSnapshot { user: alice, otp_sms }
    }

    fn request() -> SessionRequest {
        SessionRequest {
            check_user: None,
            check_code: None,
            challenge: None,
            metadata: BTreeMap::new(),
            lifetime: None,
            token: token("t1"),
        }
    }

    fn actor() -> Caller {
        crate::access::tests::caller("login-ui", &[])
    }

    fn plan(
        current: Option<&Session>,
        user: Option<&UserSnapshot>,
        request: &SessionRequest,
        at: DateTime<Utc>,
    ) -> Result<SessionPlan, SessionRefusal> {
        let new = NewSession { id: sid() };
        let current = current.ok_or(&new);
        plan_session(current, user, request, &key(), &CodePolicy::SIGN_IN, &actor(), at)
    }

    fn written(plan: Result<SessionPlan, SessionRefusal>) -> SessionDecision {
        match plan {
            Ok(SessionPlan::Write(decision)) => *decision,
            other => panic!("a write: {other:?}"),
        }
    }

    fn types(decision: &SessionDecision) -> Vec<&'static str> {
        decision.events.iter().map(SessionEvent::event_type).collect()
    }

    /// A session of alice's with a challenge sent to `a1` for `123456` at `now()`.
    fn challenged() -> Session {
        let mut checked = request();
        checked.check_user = Some(UserId::new("alice").expect("id"));
        checked.challenge = Some(ChallengeRequest { code: code("123456"), return_code: false });
        let user = alice(&[("a1", true)]);
        written(plan(None, Some(&user), &checked, now())).after
    }

    #[test]
    fn a_new_session_checks_the_user_and_sends_a_challenge_to_the_oldest_verified_authenticator() {
        let user = alice(&[("a0", false), ("a1", true), ("a2", true)]);
        let mut asked = request();
        asked.check_user = Some(user.user.id.clone());
        asked.challenge = Some(ChallengeRequest { code: code("123456"), return_code: false });
        let decision = written(plan(None, Some(&user), &asked, now()));

        let session = &decision.after;
        assert_eq!(
            types(&decision),
            ["session.added", "session.user.checked", "session.otp.sms.challenged", "session.token.set"]
        );
        assert_eq!((decision.from, session.sequence), (None, 4));
        let challenge = session.challenge.as_ref().expect("a challenge");
        assert_eq!(challenge.authenticator, otp("a1"));
        assert_eq!(challenge.code.expires_at, now() + TimeDelta::minutes(5));
        assert!(challenge.code.hash.matches(&key().hash_sign_in(&sid(), &otp("a1"), &code("123456"))));
        assert_eq!(decision.sms.as_ref(), Some(&user.otp_sms[1].phone));
        assert_eq!(decision.challenge, ChallengeChange::Replace);
        assert_eq!(
            decision.holds,
            Some(HeldUser { id: user.user.id.clone(), org: user.user.org.clone(), version: user.user.version() })
        );
    }

    #[test]
    fn a_returned_code_is_not_sent() {
        let user = alice(&[("a1", true)]);
        let mut asked = request();
        asked.check_user = Some(user.user.id.clone());
        asked.challenge = Some(ChallengeRequest { code: code("123456"), return_code: true });
        assert_eq!(written(plan(None, Some(&user), &asked, now())).sms, None);
    }

    #[test]
    fn the_right_code_checks_the_factor_and_uses_the_challenge_up() {
        let session = challenged();
        let user = alice(&[("a1", true)]);
        let mut check = request();
        check.check_code = Some(code("123456"));
        check.token = token("t2");
        let decision = written(plan(Some(&session), Some(&user), &check, now() + TimeDelta::minutes(4)));

        let after = &decision.after;
        assert_eq!(
            after.otp_sms,
            Some(CheckedOtpSms { authenticator: otp("a1"), checked_at: now() + TimeDelta::minutes(4) })
        );
        assert_eq!((&after.challenge, decision.challenge), (&None, ChallengeChange::Clear));
        assert_eq!(after.token, token("t2"));
        assert_eq!(types(&decision), ["session.otp.sms.checked", "session.token.set"]);
        assert_eq!((decision.from, after.sequence), (Some(session.version()), session.sequence + 2));
    }

    #[test]
    fn a_wrong_code_is_refused_and_the_fifth_try_voids_the_challenge() {
        let mut session = challenged();
        let user = alice(&[("a1", true)]);
        let mut check = request();
        check.check_code = Some(code("000000"));
        for before in 0..5 {
            if let Some(challenge) = session.challenge.as_mut() {
                challenge.code.failed_attempts = before;
            }
            let planned = plan(Some(&session), Some(&user), &check, now());
            assert_eq!(planned, Ok(SessionPlan::WrongCode { void: before == 4 }), "after {before} tries");
        }
        if let Some(challenge) = session.challenge.as_mut() {
            challenge.code.failed_attempts = 5;
        }
        check.check_code = Some(code("123456"));
        assert_eq!(
            plan(Some(&session), Some(&user), &check, now()),
            Err(SessionRefusal::Void(CodeRejection::Exhausted)),
            "even the right code"
        );
    }

    #[test]
    fn a_code_expires_after_five_minutes_and_is_single_use() {
        let session = challenged();
        let user = alice(&[("a1", true)]);
        let mut check = request();
        check.check_code = Some(code("123456"));
        assert_eq!(
            plan(Some(&session), Some(&user), &check, now() + TimeDelta::minutes(5)),
            Err(SessionRefusal::Void(CodeRejection::Expired))
        );
        let used = written(plan(Some(&session), Some(&user), &check, now())).after;
        assert_eq!(plan(Some(&used), Some(&user), &check, now()), Err(SessionRefusal::NoChallenge), "used up");
    }

    #[test]
    fn a_registration_code_never_passes_a_sign_in_check() {
        let mut session = challenged();
        let registration = key().hash(&otp("a1"), &code("123456"));
        if let Some(challenge) = session.challenge.as_mut() {
            challenge.code = PendingCode::issue(registration, now(), &CodePolicy::SIGN_IN);
        }
        let mut check = request();
        check.check_code = Some(code("123456"));
        let planned = plan(Some(&session), Some(&alice(&[("a1", true)])), &check, now());
        assert!(matches!(planned, Ok(SessionPlan::WrongCode { .. })), "{planned:?}");
    }

    #[test]
    fn a_check_for_a_removed_or_unverified_authenticator_finds_no_challenge() {
        let session = challenged();
        let mut check = request();
        check.check_code = Some(code("123456"));
        for (user, case) in [(alice(&[]), "removed"), (alice(&[("a1", false)]), "unverified")] {
            assert_eq!(plan(Some(&session), Some(&user), &check, now()), Err(SessionRefusal::NoChallenge), "{case}");
        }
    }

    #[test]
    fn refusals_for_users_and_challenges() {
        let mut check_ghost = request();
        check_ghost.check_user = Some(UserId::new("ghost").expect("id"));
        assert_eq!(plan(None, None, &check_ghost, now()), Err(SessionRefusal::UserNotFound));

        let mut locked = alice(&[("a1", true)]);
        locked.user.state = UserState::Locked;
        let mut check_alice = request();
        check_alice.check_user = Some(locked.user.id.clone());
        assert_eq!(plan(None, Some(&locked), &check_alice, now()), Err(SessionRefusal::UserInactive));
        let session = challenged();
        let mut check = request();
        check.check_code = Some(code("123456"));
        assert_eq!(
            plan(Some(&session), Some(&locked), &check, now()),
            Err(SessionRefusal::UserInactive),
            "a user locked after its check signs in no further"
        );

        let mut challenge_only = request();
        challenge_only.challenge = Some(ChallengeRequest { code: code("123456"), return_code: true });
        assert_eq!(plan(None, None, &challenge_only, now()), Err(SessionRefusal::UserNotChecked));

        let mut check_and_challenge = check_alice.clone();
        check_and_challenge.challenge = challenge_only.challenge.clone();
        let unverified = alice(&[("a1", false)]);
        assert_eq!(plan(None, Some(&unverified), &check_and_challenge, now()), Err(SessionRefusal::NoOtpSms));

        let mut code_only = request();
        code_only.check_code = Some(code("123456"));
        let unchallenged = written(plan(None, Some(&unverified), &check_alice, now())).after;
        assert_eq!(plan(Some(&unchallenged), Some(&unverified), &code_only, now()), Err(SessionRefusal::NoChallenge));

        let mut bob = user("bob", "org-a");
        bob.sequence = 1;
        let bob = UserSnapshot { user: bob, otp_sms: vec![] };
        let mut check_bob = request();
        check_bob.check_user = Some(bob.user.id.clone());
        assert_eq!(plan(Some(&unchallenged), Some(&bob), &check_bob, now()), Err(SessionRefusal::UserChanged));
    }

    #[test]
    fn metadata_merges_lifetime_sets_the_expiry_and_an_expired_session_takes_no_change() {
        let mut first = request();
        first.metadata = BTreeMap::from([("a".to_owned(), b"1".to_vec()), ("b".to_owned(), b"2".to_vec())]);
        first.lifetime = Some(TimeDelta::minutes(30));
        let session = written(plan(None, None, &first, now())).after;
        assert_eq!(session.expires_at, Some(now() + TimeDelta::minutes(30)));

        let mut second = request();
        second.metadata = BTreeMap::from([("a".to_owned(), vec![]), ("c".to_owned(), b"3".to_vec())]);
        let decision = written(plan(Some(&session), None, &second, now() + TimeDelta::minutes(1)));
        let after = &decision.after;
        assert_eq!(after.metadata, BTreeMap::from([("b".to_owned(), b"2".to_vec()), ("c".to_owned(), b"3".to_vec())]));
        assert_eq!(types(&decision), ["session.metadata.set", "session.token.set"]);
        assert_eq!(decision.challenge, ChallengeChange::Keep);
        assert_eq!(decision.holds, None, "no user, nothing held");

        assert_eq!(
            plan(Some(&session), None, &request(), now() + TimeDelta::minutes(30)),
            Err(SessionRefusal::Expired)
        );
    }

    #[test]
    fn a_lifetime_may_end_at_the_last_second_a_timestamp_holds_and_no_later() {
        let until_the_end = latest_expiry() - now();
        let mut last = request();
        last.lifetime = Some(until_the_end);
        assert_eq!(written(plan(None, None, &last, now())).after.expires_at, Some(latest_expiry()));
        assert_eq!(latest_expiry().to_rfc3339(), "9999-12-31T23:59:59+00:00");
        for beyond in [until_the_end + TimeDelta::seconds(1), TimeDelta::days(365 * 10_000), TimeDelta::MAX] {
            let mut long = request();
            long.lifetime = Some(beyond);
            assert_eq!(plan(None, None, &long, now()), Err(SessionRefusal::LifetimeTooLong), "{beyond}");
        }
    }

    #[test]
    fn with_revocation_a_removal_takes_the_factor_away() {
        let session = challenged();
        let mut check = request();
        check.check_code = Some(code("123456"));
        let verified = written(plan(Some(&session), Some(&alice(&[("a1", true)])), &check, now())).after;
        let without = alice(&[]);
        let checked_at = verified.otp_sms.as_ref().map(|c| c.checked_at);
        assert!(checked_at.is_some());
        assert_eq!(verified.otp_sms_verified_at(Some(&alice(&[("a1", true)])), true), checked_at);
        assert_eq!(verified.otp_sms_verified_at(Some(&without), true), None);
        assert_eq!(verified.otp_sms_verified_at(Some(&without), false), checked_at, "off: the check stands");
    }

    #[test]
    fn tokens_are_kept_as_hashes_and_admit_only_themselves() {
        let hash = SessionToken::new("secret-token").hash();
        assert!(hash.admits(&SessionToken::new("secret-token")));
        assert!(!hash.admits(&SessionToken::new("secret-tokeN")));
        assert!(!format!("{:?} {hash:?}", SessionToken::new("secret-token")).contains("secret"));
    }

    #[test]
    fn a_termination_is_one_event_on_the_next_version() {
        let session = challenged();
        let later = now() + TimeDelta::minutes(1);
        let termination = plan_termination(&session, &actor(), later);
        assert_eq!(termination.event.event_type(), "session.terminated");
        assert_eq!(termination.to(), Version { sequence: session.sequence + 1, changed: later });
    }
}
