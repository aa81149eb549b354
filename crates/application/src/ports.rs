//! Ports: what the use cases need from the outside world, split by capability. Adapters
//! implement them (Postgres, Redis, JWT, SMS providers); tests use the mockall mocks that
//! the `mocks` feature exposes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
#[cfg(feature = "inspection")]
use factors_domain::Scope;
use factors_domain::{
    BreakerEvent, Caller, CheckBudget, Creation, Decision, Notice, OrgId, OtpSmsId, PendingCode, PhoneNumber,
    PolicyChange, Session, SessionDecision, SessionId, SessionTermination, SessionToken, StoredPolicy, UserId,
    UserSession, UserSnapshot, UserState, VerificationCode,
};

#[cfg(feature = "mocks")]
use mockall::automock;

/// An unexpected infrastructure failure (connection lost, timeout, ...). Its cause is
/// for the log; the caller answers INTERNAL or UNAVAILABLE.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Unexpected(#[from] pub anyhow::Error);

/// Marks an [`Unexpected`] failure (as a context of its cause) as the store being out of
/// reach: a connection refused or cut, none to be had in time. Such a request may simply
/// be tried again, so it answers UNAVAILABLE, not INTERNAL.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the store cannot be reached")]
pub struct StoreUnreachable;

/// The current time, truncated to what the store keeps (microseconds).
#[cfg_attr(feature = "mocks", automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// New, unique ids for users and authenticators.
#[cfg_attr(feature = "mocks", automock)]
pub trait IdGenerator: Send + Sync {
    fn next_id(&self) -> String;
}

/// New verification codes, uniformly random from a CSPRNG.
#[cfg_attr(feature = "mocks", automock)]
pub trait CodeGenerator: Send + Sync {
    fn generate(&self) -> VerificationCode;
}

/// New session tokens: 256 bits from a CSPRNG, in a form fit for URLs and headers.
#[cfg_attr(feature = "mocks", automock)]
pub trait TokenGenerator: Send + Sync {
    fn generate(&self) -> SessionToken;
}

/// Reads users as the rules need them: each method is one round trip to the store (a
/// search, one read transaction of two statements).
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait UserReader: Send + Sync {
    /// The user with this id in this deployment's instance, with its OTP SMS
    /// authenticators (oldest first), or `None`.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn load(&self, id: &UserId) -> Result<Option<UserSnapshot>, Unexpected>;

    /// The same, with the code pending for the user's authenticator `otp_sms` (`None`
    /// when the user does not hold it or no code is pending). Code checks read this, and
    /// never a cache.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn load_with_code(
        &self,
        id: &UserId,
        otp_sms: &OtpSmsId,
    ) -> Result<Option<(UserSnapshot, Option<PendingCode>)>, Unexpected>;

    /// The number of the last event of user id `id` in any of its lives (0 when it never
    /// existed): where a new user of this id continues the numbering.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn last_sequence(&self, id: &UserId) -> Result<u64, Unexpected>;

    /// The ids of the users `search` selects, in its order, from its offset on and at
    /// most its limit of them, and how many it selects in all; both from one snapshot of
    /// the store.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn search(&self, search: &UserSearch) -> Result<UserPage, Unexpected>;
}

/// Which users a search selects (all conditions hold), in which order, which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearch {
    /// Only users of these organizations; `None`: of every organization of the instance.
    pub within: Option<Vec<OrgId>>,
    /// Only users of this organization.
    pub org: Option<OrgId>,
    /// Only the user with this id.
    pub id: Option<UserId>,
    /// Only users in this state.
    pub state: Option<UserState>,
    /// Sorted by this, then by id, both ways as `descending` says.
    pub order: UserOrder,
    pub descending: bool,
    /// How many of the selected users come before the page.
    pub offset: u64,
    /// The most users the page holds.
    pub limit: u32,
}

/// What a search sorts users by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserOrder {
    Id,
    Created,
    Changed,
    State,
}

impl UserOrder {
    /// The order's name, as the stores' search statements take it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Created => "created",
            Self::Changed => "changed",
            Self::State => "state",
        }
    }
}

/// One page of a search: the users' ids, and how many users the search selects in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPage {
    pub ids: Vec<UserId>,
    pub total: u64,
}

/// Why a guarded write was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The user is no longer at the version the decision was made on (or no longer
    /// exists): nothing was written; read again and decide again.
    #[error("the user changed since it was read")]
    Conflict,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("a user with this id exists")]
    AlreadyExists,
    /// The id's event numbering moved since it was read (another life of the id was
    /// created and deleted meanwhile): read again and decide again.
    #[error("the user's history changed since it was read")]
    Conflict,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// The charge a code check makes against its user's budget of failed checks
/// ([`CheckBudget`]): every compared code takes one unit, a right one gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckCharge<'a> {
    pub user: &'a UserId,
    pub budget: CheckBudget,
    pub now: DateTime<Utc>,
}

/// What taking a try of a code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryTaken {
    /// Taken, and charged to the user's budget: the code's tries taken so far, this one
    /// included.
    Taken(u32),
    /// No try left, or the code is no longer the one read (used, replaced, voided): read
    /// again.
    Gone,
    /// The user's budget of failed checks, counted from `since`, is spent: the typed code
    /// must not be compared, whatever it is.
    Locked { since: DateTime<Utc> },
}

/// Writes users. Each method is one round trip that changes the state and appends the
/// event together, or changes nothing.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait UserWriter: Send + Sync {
    /// Stores a new user and appends its event, numbered `creation.user.sequence`.
    ///
    /// # Errors
    /// [`CreateError::AlreadyExists`] when the id is taken, [`CreateError::Conflict`] when
    /// the event number is taken, [`CreateError::Unexpected`].
    async fn create(&self, creation: &Creation) -> Result<(), CreateError>;

    /// Applies `decision` (its change, the move of the user to `transition.to` and its
    /// event) only while the user is at `transition.from`. Of concurrent decisions made
    /// on one version, exactly one is applied. A deletion ends the sessions it lists, each
    /// with its event, and only while they are every session the user holds, each at the
    /// version read: no session of a deleted user ends without its `session.terminated`.
    ///
    /// # Errors
    /// [`WriteError::Conflict`] when the user is at another version or gone (or, for a
    /// deletion, holds a session it does not list, or one at another version);
    /// [`WriteError::Unexpected`].
    async fn apply(&self, decision: &Decision) -> Result<(), WriteError>;

    /// Takes one try of the code pending for authenticator `otp_sms`, before a typed code
    /// is compared with it, and charges it to the budget of `charge.user`: only while the
    /// code is still `code` (as read), fewer than `max_tries` were taken and the user's
    /// budget is not spent, in one atomic step, so that concurrent guesses are never
    /// compared more than `max_tries` times, nor more than the budget allows across all of
    /// the user's codes. Tries are not events and do not move the user.
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn take_code_try<'a>(
        &self,
        otp_sms: &OtpSmsId,
        code: &PendingCode,
        max_tries: u32,
        charge: &CheckCharge<'a>,
    ) -> Result<TryTaken, Unexpected>;

    /// Gives back the unit of `user`'s budget that a check of the right code took at
    /// `charged_at` ([`CheckCharge::now`]); a window that started since keeps its count.
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn forgive_code_try(&self, user: &UserId, charged_at: DateTime<Utc>) -> Result<(), Unexpected>;
}

/// A session as read, with the user it was checked for (and that user's authenticators).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRead {
    pub session: Session,
    /// `None` when the session has no user yet.
    pub user: Option<UserSnapshot>,
}

/// Stores sessions. Each method is one round trip.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The session `id` with its pending challenge, and its user (with the user's
    /// authenticators) when it has one, or `None`. Two round trips when the session has a
    /// user, one otherwise.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn load_session(&self, id: &SessionId) -> Result<Option<SessionRead>, Unexpected>;

    /// Every session user `user` holds, with its version, in one round trip: what a
    /// deletion of the user must end ([`factors_domain::Change::DeleteUser`]).
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn sessions_of(&self, user: &UserId) -> Result<Vec<UserSession>, Unexpected>;

    /// Applies `decision`: creates the session (`from` is `None`) or writes its state
    /// after, appending its events numbered on from the version read; only while the
    /// session is at `from` and the user it holds at its version. Writing a challenge
    /// replaces the pending one; a removal of the challenged authenticator (or of its
    /// user) voids it in the removal's own write.
    ///
    /// # Errors
    /// [`WriteError::Conflict`] when the session or the held user moved (or is gone, or the
    /// new session's id is taken); [`WriteError::Unexpected`].
    async fn apply_session(&self, decision: &SessionDecision) -> Result<(), WriteError>;

    /// Deletes the session and appends the termination's event, only while the session
    /// is at `termination.from`.
    ///
    /// # Errors
    /// [`WriteError::Conflict`] when the session moved or is gone; [`WriteError::Unexpected`].
    async fn end_session(&self, termination: &SessionTermination) -> Result<(), WriteError>;

    /// Takes one try of session `session`'s challenge, before a typed code is compared
    /// with it, and charges it to the budget of `charge.user` (the session's user), as
    /// [`UserWriter::take_code_try`] does for a registration code: atomically, never more
    /// than `max_tries` per challenge nor than the budget allows across the user's codes.
    /// [`TryTaken::Gone`] also when the challenge was replaced or voided meanwhile.
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn take_sign_in_try<'a>(
        &self,
        session: &SessionId,
        code: &PendingCode,
        max_tries: u32,
        charge: &CheckCharge<'a>,
    ) -> Result<TryTaken, Unexpected>;

    /// Gives back the unit of `user`'s budget that a check of the right sign-in code took at
    /// `charged_at`; a window that started since keeps its count.
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn forgive_sign_in_try(&self, user: &UserId, charged_at: DateTime<Utc>) -> Result<(), Unexpected>;
}

/// An event as the audit log recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Its number among the events of its user id, from 1, without gaps.
    pub sequence: u64,
    pub event_type: String,
    /// Who did it (a user id).
    pub creator: String,
    pub created_at: DateTime<Utc>,
    /// Self-contained: who, to whom, what and when; phone numbers masked.
    pub payload: serde_json::Value,
}

/// Where a reader of the instance's event feed stands: after the event at `position`,
/// written by transaction `transaction` (always 0 on a store whose commits follow its
/// positions). Cursors order as the feed does; the default is before the first event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedCursor {
    pub transaction: u64,
    pub position: u64,
}

/// An event of the instance's feed: the event, whose stream it belongs to, and the cursor
/// that resumes after it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    pub cursor: FeedCursor,
    /// `user`, `session`, `instance` or `org` (login policies), or `sms_breaker`.
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event: RecordedEvent,
}

/// Reads the audit log.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// One page of the audit trail of user id `user`: the events of its current life (those
    /// after the id's last `user.removed`, so an earlier life, perhaps in another
    /// organization, never shows) numbered above `after`, oldest first, at most `limit` of
    /// them. One round trip.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn events_page(&self, user: &UserId, after: u64, limit: u32) -> Result<Vec<RecordedEvent>, Unexpected>;

    /// One page of the instance's event feed: the events of every stream (users, sessions,
    /// login policies, SMS breakers) after `after`, oldest first, at most `limit` of them.
    /// A reader that resumes from the last cursor it got sees each event once, in order,
    /// while writes go on: an event that becomes readable later always sorts after every
    /// event already answered (it waits until no transaction that began before it is still
    /// open). One round trip.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn feed_page(&self, after: FeedCursor, limit: u32) -> Result<Vec<FeedEvent>, Unexpected>;
}

/// An event stream a test reads back whole.
#[cfg(feature = "inspection")]
#[derive(Debug, Clone, Copy)]
pub enum EventStream<'a> {
    User(&'a UserId),
    Session(&'a SessionId),
    /// The login policy of a scope.
    Policy(&'a Scope),
}

#[cfg(feature = "inspection")]
impl<'a> EventStream<'a> {
    /// The aggregate (type, id) the stream's events are stored under, in instance
    /// `instance`.
    pub fn aggregate(self, instance: &'a str) -> (&'static str, &'a str) {
        match self {
            Self::User(user) => (factors_domain::Event::AGGREGATE_TYPE, user.as_str()),
            Self::Session(session) => (factors_domain::SessionEvent::AGGREGATE_TYPE, session.as_str()),
            Self::Policy(scope) => factors_domain::PolicyEvent::aggregate_of(scope, instance),
        }
    }
}

/// What a test reads back from a store to check what its writes left: whole event streams
/// and the outbox's depth. No use case needs them, so they are no production port: the
/// `inspection` feature brings them, for the store contract suite and the adapters' tests.
#[cfg(feature = "inspection")]
#[async_trait]
pub trait StoreInspection: Send + Sync {
    /// The events of `stream`, oldest first (a user id's over all its lives).
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn events_of(&self, stream: EventStream<'_>) -> Result<Vec<RecordedEvent>, Unexpected>;

    /// How many notices wait in the outbox, due or not.
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn pending_notices(&self) -> Result<u64, Unexpected>;
}

/// The login policies that hold for one organization, as stored: its own and the
/// instance default (`None` where none is set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredPolicies {
    pub org: Option<StoredPolicy>,
    pub instance: Option<StoredPolicy>,
}

/// Stores login policies with their events, and the events of the instance's SMS guard
/// (settings of the instance too, though set in its configuration).
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The policy of organization `org` (none asked when `None`) and the instance default,
    /// in one round trip.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn load_policies<'a>(&self, org: Option<&'a OrgId>) -> Result<StoredPolicies, Unexpected>;

    /// Stores `change.policy` for `change.scope` and appends its event, only while the
    /// scope's policy is at `change.from` (absent when `None`), in one round trip.
    ///
    /// # Errors
    /// [`WriteError::Conflict`] when the policy is at another version;
    /// [`WriteError::Unexpected`].
    async fn apply_policy(&self, change: &PolicyChange) -> Result<(), WriteError>;

    /// Appends `event`, a region's SMS breaker opening or closing, to the region's stream
    /// (numbered after its last event, whichever replica wrote that), in one round trip.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot write it.
    async fn record_breaker(&self, event: &BreakerEvent) -> Result<(), Unexpected>;

    /// The last closing by hand of `region`'s breaker, on any replica: when, and by whom.
    /// One round trip.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn last_hand_closing(&self, region: &str) -> Result<Option<HandClosing>, Unexpected>;
}

/// A closing by hand of a region's SMS breaker, as its event recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandClosing {
    pub at: DateTime<Utc>,
    /// The user who closed it.
    pub actor: String,
}

/// A notice taken from the outbox to send, with the number of this try (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedNotice {
    pub notice: Notice,
    pub kind: NoticeKind,
    pub attempt: u32,
}

/// The outbox of notices: written by the write that calls for a notice (a removal), in
/// its own transaction, and emptied by the notice worker once each is sent.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` notices due at `now`, oldest first, until `until`: each claim
    /// counts a try, and no other claim takes the notice before `until` (a worker that
    /// dies mid-send leaves it to be claimed again then).
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn claim_notices(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedNotice>, Unexpected>;

    /// Deletes notice `id`, sent (or given up) on try `attempt`; a notice claimed again
    /// since is left to its new claim.
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn finish_notice(&self, id: &str, attempt: u32) -> Result<(), Unexpected>;

    /// Makes notice `id`, whose try `attempt` failed, due again at `at`.
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn retry_notice(&self, id: &str, attempt: u32, at: DateTime<Utc>) -> Result<(), Unexpected>;

    /// When the oldest notice still in the outbox was written (`None`: it is empty): how
    /// far delivery lags, for operators' alerts.
    ///
    /// # Errors
    /// [`Unexpected`] when the store fails.
    async fn oldest_notice(&self) -> Result<Option<DateTime<Utc>>, Unexpected>;
}

/// Snapshots of users kept near the service, so that a decision need not read the store
/// first. A cached snapshot may be older than the store's: only decisions whose writes
/// are guarded may use one (a write decided on an old version is refused, and the use
/// case reads the store and decides again), and no answer is ever shown from it.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait SnapshotCache: Send + Sync {
    /// The snapshot last kept for `user`; `None` on a miss and on any trouble of the cache.
    async fn get(&self, user: &UserId) -> Option<UserSnapshot>;

    /// Keeps `snapshot` unless a newer version of the user is kept already, where every
    /// replica finds it: what a read saw. Best effort.
    async fn put(&self, snapshot: &UserSnapshot);

    /// Keeps the state a write of this process left, for this process's next decisions;
    /// a cache with a tier of its own need not share it (the next read does). Best effort.
    async fn keep(&self, snapshot: &UserSnapshot) {
        self.put(snapshot).await;
    }
}

/// An SMS that may not be sent yet: a limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many SMS for this {scope:?}; retry after {retry_after:?}")]
pub struct RateLimited {
    pub scope: LimitScope,
    pub retry_after: std::time::Duration,
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    User,
    Phone,
    /// The numbers of one region (`rate_limits.sms_per_country`), against SMS pumping.
    Country,
    /// The numbers that share their leading digits (`rate_limits.sms_per_prefix`).
    Prefix,
}

/// One counted SMS, to give back if it was not sent after all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsPermit(pub String);

/// Limits how many SMS go out, per user and per phone number.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait SmsRateLimiter: Send + Sync {
    /// Counts one SMS for `user` to `to` when both are under their limits; counts nothing
    /// otherwise. Never fails for infrastructure reasons: a limiter that cannot reach its
    /// shared store falls back to counting in process.
    ///
    /// # Errors
    /// [`RateLimited`] naming the limit reached and when to retry.
    async fn try_acquire(&self, user: &UserId, to: &PhoneNumber) -> Result<SmsPermit, RateLimited>;

    /// Counts one notice to `to` when the number is under its limit; counts nothing
    /// otherwise. A notice carries no code and is no user's doing (an administrator's
    /// removal may send it), so it counts against the number's limit only: whoever
    /// removes numbers, a number gets no more SMS than the limit allows. Never fails for
    /// infrastructure reasons, as [`SmsRateLimiter::try_acquire`].
    ///
    /// # Errors
    /// [`RateLimited`] with [`LimitScope::Phone`] and when to retry.
    async fn try_acquire_notice(&self, to: &PhoneNumber) -> Result<SmsPermit, RateLimited>;

    /// Gives back a permit whose SMS was not sent (nothing stored, or the provider
    /// failed), so that it does not use up the allowance. Best effort. A notice's permit
    /// is given back with the notice's user, which it never counted against.
    async fn release(&self, user: &UserId, to: &PhoneNumber, permit: SmsPermit);
}

/// Why an SMS was not handed over for delivery.
#[derive(Debug, thiserror::Error)]
#[error("the SMS could not be sent")]
pub struct SmsError(#[source] pub anyhow::Error);

/// What a verification SMS is for; the sender renders the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmsPurpose {
    /// Proving the phone of a new OTP SMS authenticator.
    OtpSmsRegistration,
    /// Proving the contact phone of a user.
    ContactPhone,
    /// Signing in: the code of a session's OTP SMS challenge.
    SignIn,
}

impl SmsPurpose {
    /// The name providers and logs see (`registration`, `contact_phone`, `sign_in`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OtpSmsRegistration => "registration",
            Self::ContactPhone => "contact_phone",
            Self::SignIn => "sign_in",
        }
    }
}

/// One SMS carrying a code: to whom, the code, what it is for, and the user it is sent for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSms {
    pub to: PhoneNumber,
    pub code: VerificationCode,
    pub purpose: SmsPurpose,
    pub user: UserId,
}

/// What a notice tells its reader; the sender renders the text from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// An OTP SMS authenticator with this number was removed from the user.
    OtpSmsRemoved,
}

impl NoticeKind {
    /// The name providers and logs see (`removal_notice`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OtpSmsRemoved => "removal_notice",
        }
    }
}

/// One SMS carrying no code: a notice to `to` about user `user`, sent from the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeSms {
    /// The notice's id in the outbox: the same on every try, so a provider that honours
    /// idempotency keys delivers it once however often it is handed over.
    pub id: String,
    pub to: PhoneNumber,
    pub kind: NoticeKind,
    pub user: UserId,
}

/// Sends SMS. Implementations must never log the code or the full number, and never send
/// one SMS twice on their own (a duplicate code is worse than an error).
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Hands `sms` to the provider.
    ///
    /// # Errors
    /// [`SmsError`] when the provider refuses or cannot be reached.
    async fn send_code(&self, sms: &CodeSms) -> Result<(), SmsError>;

    /// Hands the notice `sms` to the provider, with `sms.id` as its idempotency key where
    /// the provider takes one. The outbox may hand one notice over more than once (after
    /// a crash mid-send); the key is what lets the provider deliver it once.
    ///
    /// # Errors
    /// [`SmsError`] when the provider refuses or cannot be reached.
    async fn send_notice(&self, sms: &NoticeSms) -> Result<(), SmsError>;
}

/// What operators count that only the use cases see (Prometheus, through the binary).
#[cfg_attr(feature = "mocks", automock)]
pub trait SecurityMetrics: Send + Sync {
    /// A code check refused without comparing it, because its user's budget of failed
    /// checks is spent.
    fn code_checks_locked(&self, purpose: SmsPurpose);

    /// How long the oldest notice still in the outbox has waited (zero when it is empty),
    /// as the notice worker last saw it.
    fn notice_outbox_oldest(&self, waited: std::time::Duration);

    /// A code SMS to a number of `region` (a CLDR code, or `001`): sent, or refused by the
    /// SMS guard.
    fn sms_region(&self, region: &str, outcome: RegionOutcome);

    /// The conversion breaker of `region` is now in `state`.
    fn sms_breaker(&self, region: &str, state: &factors_domain::BreakerState);
}

/// What became of a code SMS to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionOutcome {
    Sent,
    /// `sms.countries` keeps codes from the region.
    NotAllowed,
    /// The region's breaker is open.
    Paused,
}

impl RegionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::NotAllowed => "not_allowed",
            Self::Paused => "paused",
        }
    }
}

/// Why a bearer token was refused. Each maps to UNAUTHENTICATED with its own error id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was presented")]
    MissingToken,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

/// Verifies bearer tokens and tells who the caller is.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The caller a token stands for, its role grants mapped to permissions.
    ///
    /// # Errors
    /// [`AuthError::Expired`] or [`AuthError::Invalid`] (bad signature, wrong issuer or
    /// audience, not yet valid, unsupported or confused algorithm, malformed claims).
    async fn verify(&self, token: &str) -> Result<Caller, AuthError>;
}

/// The state of one dependency, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyState {
    Up,
    /// Not working, but the service still answers without it (a cache, say).
    Degraded,
    Down,
}

impl DependencyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

/// Whether the service can do its work: ready unless a dependency it needs is down, or
/// it is shutting down.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Readiness {
    pub dependencies: Vec<(&'static str, DependencyState)>,
    /// Shutting down: finishing what is in flight, taking nothing new for long.
    pub draining: bool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        !self.draining && self.dependencies.iter().all(|(_, state)| *state != DependencyState::Down)
    }
}

/// Checks the dependencies, for `/readyz` and the gRPC health service.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    async fn readiness(&self) -> Readiness;
}
