//! One module per RPC. Each exposes a trait (what delivery calls, mockable), a command,
//! an error enum mapping into [`Failure`], and the service implementing the trait.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::task::{Context, Waker};

use tracing::Instrument;

use factors_domain::{
    AccessRefusal, Action, Caller, CheckBudget, Decision, OrgId, Transition, User, UserId, UserSnapshot, authorize,
    may_look_up,
};

use crate::ports::{SecurityMetrics, SmsPurpose, SnapshotCache, Unexpected, UserReader, WriteError};
use crate::scope::{InstanceContext, OrgFilter, RequestScope, ScopeError};
use crate::{ErrorKind, Failure};

pub mod add_otp_sms;
pub mod create_user;
pub mod delete_user;
pub mod get_user;
pub mod list_user_events;
pub mod login_policy;
pub mod remove_otp_sms;
pub mod sessions;
pub mod verify_otp_sms;

/// Every use case, as the deliveries (REST, gRPC) receive them from the composition root.
#[derive(Clone)]
pub struct UseCases {
    pub create_user: Arc<dyn create_user::CreateUser>,
    pub get_user: Arc<dyn get_user::GetUser>,
    pub delete_user: Arc<dyn delete_user::DeleteUser>,
    pub add_otp_sms: Arc<dyn add_otp_sms::AddOtpSms>,
    pub verify_otp_sms: Arc<dyn verify_otp_sms::VerifyOtpSms>,
    pub remove_otp_sms: Arc<dyn remove_otp_sms::RemoveOtpSms>,
    pub sessions: Arc<dyn sessions::Sessions>,
    pub login_policies: Arc<dyn login_policy::LoginPolicies>,
    pub list_user_events: Arc<dyn list_user_events::ListUserEvents>,
}

/// The `details` of a user-scoped answer: the user's id, when it was created, when this
/// change was committed, and the organization owning it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub id: UserId,
    pub created: DateTime<Utc>,
    pub changed: DateTime<Utc>,
    pub owner: OrgId,
}

impl Details {
    /// The details of `user` as it stands: GetUser's answer, where nothing was changed by
    /// the call, so `changed` is the user's last change.
    pub fn of(user: &User) -> Self {
        Self { id: user.id.clone(), created: user.created, changed: user.changed, owner: user.org.clone() }
    }

    /// The details of the write that moves `user` by `transition`.
    pub(crate) fn of_write(user: &User, transition: &Transition) -> Self {
        Self { changed: transition.to.changed, ..Self::of(user) }
    }
}

/// How a phone number or e-mail address is to be proven (the `verification` oneof).
pub use factors_domain::Verification;

/// Why a user could not be looked up for an operation.
#[derive(Debug, thiserror::Error)]
pub enum UserLookupError {
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<UserLookupError> for Failure {
    fn from(error: UserLookupError) -> Self {
        match error {
            UserLookupError::Scope(e) => e.into(),
            UserLookupError::Access(e) => e.into(),
            UserLookupError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// The user for an operation that only reads: the request's selectors and the access
/// rules for `action`, on the store's state.
pub(crate) async fn authorized_snapshot(
    context: &InstanceContext,
    users: &dyn UserReader,
    caller: &Caller,
    scope: &RequestScope,
    id: &UserId,
    action: Action,
) -> Result<UserSnapshot, UserLookupError> {
    let mut reads = Reads::start(context, users, None, caller, scope, id).await?;
    let snapshot = reads.next().await?.and_then(|read| read.snapshot);
    authorize(caller, id, snapshot.as_ref().map(|s| &s.user), action)?;
    snapshot.ok_or_else(|| AccessRefusal::UserNotFound.into())
}

/// A code check refused without comparing the code: its user's budget of failed checks
/// ([`CheckBudget`]) was spent in the window that started `since`. Logged and counted
/// here; the answer ([`locked_failure`]) says when to retry.
pub(crate) fn code_checks_locked(
    metrics: &dyn SecurityMetrics,
    budget: &CheckBudget,
    user: &UserId,
    purpose: SmsPurpose,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> std::time::Duration {
    metrics.code_checks_locked(purpose);
    let retry_after = budget.locked_for(since, now).to_std().unwrap_or_default();
    tracing::warn!(
        user_id = %user,
        purpose = purpose.as_str(),
        retry_after_s = retry_after.as_secs(),
        "code check refused: the user's budget of failed code checks is spent"
    );
    retry_after
}

/// The answer to a check refused by [`code_checks_locked`].
pub(crate) fn locked_failure(retry_after: std::time::Duration) -> Failure {
    Failure {
        retry_after: Some(retry_after),
        ..Failure::new(
            ErrorKind::ResourceExhausted,
            "USER-CodeChecksLocked",
            "too many wrong codes were tried for this user: code checks are locked for a while; retry later",
        )
    }
}

/// The answer when a user kept changing under every decision a use case made: the
/// client may simply try again.
pub(crate) fn contended() -> Failure {
    Failure::new(ErrorKind::Aborted, "USER-Contended", "the user changed concurrently; try again")
}

/// How many times a use case decides before it gives up on a user that keeps changing
/// under it (each lost race means another writer won, so this bounds only the unlucky).
pub(crate) const MAX_DECISIONS: usize = 5;

/// One state to decide on.
pub(crate) struct Read {
    /// The user as read, `None` when it does not exist or lies outside the request's scope.
    pub snapshot: Option<UserSnapshot>,
    /// Whether it was read from the store just now: a refusal decided on a cached
    /// snapshot must be decided again on the store's, since the cache may be behind.
    pub fresh: bool,
}

impl Read {
    /// What a rule decided on this state: the decision; `None` when it must be decided
    /// again on the store's state (a refusal decided on a cached snapshot, which may be
    /// behind); or the refusal, decided on the store's state.
    ///
    /// # Errors
    /// The refusal, when it stands.
    pub(crate) fn decided<D, R>(&self, planned: Result<D, R>) -> Result<Option<D>, R> {
        match planned {
            Ok(decision) => Ok(Some(decision)),
            Err(_) if !self.fresh => Ok(None),
            Err(refusal) => Err(refusal),
        }
    }
}

/// Keeps the state `decision` (made on `snapshot` and applied) left, for this process's
/// next decisions ([`SnapshotCache::keep`]), without making the answer wait ([`detach`]): a
/// cache that fails costs nothing but the next decision's speed.
pub(crate) fn keep_after(cache: Option<&Arc<dyn SnapshotCache>>, snapshot: &UserSnapshot, decision: &Decision) {
    if let (Some(cache), Some(after)) = (cache, snapshot.after(decision)) {
        let cache = cache.clone();
        detach(async move { cache.keep(&after).await });
    }
}

/// Shares what a read saw ([`SnapshotCache::put`]), without making the answer wait.
pub(crate) fn share(cache: Arc<dyn SnapshotCache>, snapshot: UserSnapshot) {
    detach(async move { cache.put(&snapshot).await });
}

/// Runs best-effort work the answer must not wait for: here, up to its first wait, and
/// from there on a task of its own. The in-process cache never waits, so what it keeps is
/// in place before the answer leaves (the client's next request finds it) and costs no
/// task; a round trip to Redis goes on a task.
fn detach(work: impl Future<Output = ()> + Send + 'static) {
    let mut work = Box::pin(work);
    // A future that answers `Pending` has left this waker with what it waits for; the new
    // task polls it again at once, which hands over the task's own waker.
    if work.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending() {
        tokio::spawn(work);
    }
}

/// Runs `work` on a task of its own, in the current span: a write and what must follow it
/// (sending its SMS, taking it back when the send fails) are not cut apart by a caller that
/// goes away or by a request deadline.
pub(crate) async fn on_own_task<T, E>(work: impl Future<Output = Result<T, E>> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Unexpected> + Send + 'static,
{
    tokio::spawn(work.in_current_span())
        .await
        .map_err(|e| E::from(Unexpected(anyhow::Error::new(e).context("the use case's task failed"))))?
}

/// Whether a guarded write landed; `false` when the user had moved on from the version it
/// was decided on, and the use case decides again on a new read.
///
/// # Errors
/// [`Unexpected`] when the store failed.
pub(crate) fn landed(written: Result<(), WriteError>) -> Result<bool, Unexpected> {
    match written {
        Ok(()) => Ok(true),
        Err(WriteError::Conflict) => Ok(false),
        Err(WriteError::Unexpected(e)) => Err(e),
    }
}

/// The states a write decides on, in the order the write pattern reads them
/// (docs/DESIGN.md, The write pattern): a cached snapshot when one is given, then the store's, read again after
/// every refused decision or lost race, at most [`MAX_DECISIONS`] times.
pub(crate) struct Reads<'a> {
    users: &'a dyn UserReader,
    id: UserId,
    filter: OrgFilter,
    cached: Option<UserSnapshot>,
    left: usize,
}

impl<'a> Reads<'a> {
    /// Refuses callers without any user permission before anything is read, then checks
    /// the request's selectors, then reads `id` from `cache` if given, else from `users`.
    /// A caller without user permissions (one that may only act on itself) learns nothing
    /// from the selectors either: one naming another instance or an unknown organization
    /// domain cannot select its own user, and answers as a user it may not see would.
    pub(crate) async fn start(
        context: &InstanceContext,
        users: &'a dyn UserReader,
        cache: Option<&dyn SnapshotCache>,
        caller: &Caller,
        scope: &RequestScope,
        id: &UserId,
    ) -> Result<Self, UserLookupError> {
        may_look_up(caller, id)?;
        let filter = context.resolve(scope).map_err(|e| {
            if caller.holds_any_user_permission() {
                UserLookupError::Scope(e)
            } else {
                AccessRefusal::PermissionDenied.into()
            }
        })?;
        let cached = match cache {
            Some(cache) => cache.get(id).await,
            None => None,
        };
        Ok(Self { users, id: id.clone(), filter, cached, left: MAX_DECISIONS })
    }

    /// The states of the user of `snapshot`, starting with `snapshot`: a state this
    /// process knows the store held a moment ago (what its own write left).
    pub(crate) fn continuing(users: &'a dyn UserReader, snapshot: UserSnapshot) -> Self {
        let id = snapshot.user.id.clone();
        Self { users, id, filter: OrgFilter::default(), cached: Some(snapshot), left: MAX_DECISIONS }
    }

    /// The next state to decide on; `None` once [`MAX_DECISIONS`] states were handed out.
    pub(crate) async fn next(&mut self) -> Result<Option<Read>, Unexpected> {
        if !self.next_turn() {
            return Ok(None);
        }
        let read = match self.cached.take() {
            Some(snapshot) => Read { snapshot: Some(snapshot), fresh: false },
            None => Read { snapshot: self.users.load(&self.id).await?, fresh: true },
        };
        Ok(Some(Read { snapshot: read.snapshot.filter(|s| self.admits(s)), ..read }))
    }

    /// Takes one of the [`MAX_DECISIONS`] turns, for a use case that reads the store in
    /// its own way (a code check reads the pending code too); `false` once none is left.
    pub(crate) fn next_turn(&mut self) -> bool {
        let left = self.left > 0;
        self.left = self.left.saturating_sub(1);
        left
    }

    /// Whether `snapshot` lies inside the request's scope; a user outside it is answered
    /// as not found.
    pub(crate) fn admits(&self, snapshot: &UserSnapshot) -> bool {
        self.filter.admits(&snapshot.user)
    }
}
#[cfg(test)]
mod tests {
    use super::fixtures::{at, org, user, user_id};
    use super::*;

    #[test]
    fn the_details_of_a_user_are_its_id_dates_and_organization_and_a_write_moves_changed() {
        let alice = user("alice", "org-a");
        assert_eq!(
            Details::of(&alice),
            Details { id: user_id("alice"), created: at(0), changed: at(1), owner: org("org-a") }
        );
        assert_eq!(Details::of_write(&alice, &Transition::next(&alice, at(7))).changed, at(7));
    }

    // A plain test, outside any runtime: spawning a task would panic.
    #[test]
    fn work_that_never_waits_is_done_before_detach_returns() {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        detach(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn work_that_waits_is_finished_by_a_task_of_its_own() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel();
        detach(async move {
            let _ = wait.await;
            let _ = done.send(());
        });
        go.send(()).expect("the work was kept, still waiting");
        let finished = tokio::time::timeout(std::time::Duration::from_secs(5), finished).await;
        assert_eq!(finished.expect("finished in time"), Ok(()));
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Shared arrangements for the use-case tests.
    use std::collections::HashMap;
    use std::sync::Arc;

    use chrono::{DateTime, TimeZone, Utc};
    use factors_domain::{
        Caller, Contact, Grant, InstanceId, LoginPolicy, OrgId, OtpSmsAuthenticator, OtpSmsId, Permission, PhoneNumber,
        SchemaId, Scope, StoredPolicy, User, UserData, UserId, UserSnapshot, UserState, Version,
    };

    use crate::ports::{
        MockClock, MockPolicyStore, MockSecurityMetrics, MockUserReader, SnapshotCache, StoredPolicies,
    };
    use crate::scope::InstanceContext;
    use crate::use_cases::login_policy::PoliciesInForce;

    pub fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 22, 9, minute, 0).single().expect("valid time")
    }

    pub fn context() -> Arc<InstanceContext> {
        Arc::new(InstanceContext {
            id: InstanceId::new("inst").expect("valid"),
            domains: vec!["auth.example.com".into()],
            org_domains: HashMap::new(),
        })
    }

    pub fn user_id(id: &str) -> UserId {
        UserId::new(id).expect("valid user id")
    }

    pub fn otp_id(id: &str) -> OtpSmsId {
        OtpSmsId::new(id).expect("valid otp sms id")
    }

    pub fn org(id: &str) -> OrgId {
        OrgId::new(id).expect("valid org id")
    }

    pub fn user(id: &str, in_org: &str) -> User {
        User {
            id: user_id(id),
            org: org(in_org),
            state: UserState::Active,
            schema_id: SchemaId::new("human").expect("valid"),
            data: UserData::default(),
            contact: Contact::default(),
            created: at(0),
            changed: at(1),
            sequence: 2,
        }
    }

    pub fn phone() -> PhoneNumber {
        PhoneNumber::parse("+41791234567").expect("valid phone")
    }

    pub fn authenticator(id: &str, of: &str) -> OtpSmsAuthenticator {
        OtpSmsAuthenticator { id: otp_id(id), user: user_id(of), phone: phone(), verified: true, created: at(1) }
    }

    pub fn caller(id: &str, grants: &[(Permission, Option<&str>)]) -> Caller {
        Caller {
            user_id: user_id(id),
            org: Some(org("org-a")),
            grants: grants
                .iter()
                .map(|(p, scope)| Grant {
                    permission: *p,
                    scope: scope.map_or(Scope::Instance, |o| Scope::Org(org(o))),
                })
                .collect(),
            authentication: Default::default(),
        }
    }

    pub fn org_admin() -> Caller {
        caller("admin", &[(Permission::UserRead, Some("org-a")), (Permission::UserWrite, Some("org-a"))])
    }

    pub fn clock(now: DateTime<Utc>) -> Arc<MockClock> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now);
        Arc::new(clock)
    }

    /// `user` holding `otp_sms`.
    pub fn holding(user: User, otp_sms: Vec<OtpSmsAuthenticator>) -> UserSnapshot {
        UserSnapshot { user, otp_sms }
    }

    /// Alice of org-a, holding `otp_sms`.
    pub fn alice_holding(otp_sms: Vec<OtpSmsAuthenticator>) -> UserSnapshot {
        holding(user("alice", "org-a"), otp_sms)
    }

    /// A user reader that knows exactly these users, and no pending codes.
    pub fn users(known: Vec<UserSnapshot>) -> Arc<MockUserReader> {
        let mut users = MockUserReader::new();
        let found = move |id: &UserId| known.iter().find(|s| &s.user.id == id).cloned();
        let found_too = found.clone();
        users.expect_load().returning(move |id| Ok(found(id)));
        users.expect_load_with_code().returning(move |id, _| Ok(found_too(id).map(|s| (s, None))));
        Arc::new(users)
    }

    /// The login policies in force, as `stored` holds them for every organization.
    pub fn policies_in_force(stored: StoredPolicies) -> Arc<PoliciesInForce> {
        let mut store = MockPolicyStore::new();
        store.expect_load_policies().returning(move |_| Ok(stored.clone()));
        Arc::new(PoliciesInForce::new(Arc::new(store)))
    }

    /// `policy` as the instance default, and no organization's own.
    pub fn instance_default(policy: LoginPolicy) -> StoredPolicies {
        let version = Version { sequence: 2, changed: at(1) };
        let stored = StoredPolicy { scope: Scope::Instance, policy, version, created: at(1) };
        StoredPolicies { org: None, instance: Some(stored) }
    }

    /// Security metrics that count nothing.
    pub fn no_metrics() -> Arc<MockSecurityMetrics> {
        let mut metrics = MockSecurityMetrics::new();
        metrics.expect_code_checks_locked().return_const(());
        Arc::new(metrics)
    }

    /// A user reader that must not be called: the caller is refused before any lookup.
    pub fn no_lookup() -> Arc<MockUserReader> {
        let mut users = MockUserReader::new();
        users.expect_load().never();
        users.expect_load_with_code().never();
        Arc::new(users)
    }

    /// A cache that records what it is given, at once (as the in-process tier does).
    #[derive(Default)]
    pub struct RecordingCache {
        pub held: std::sync::Mutex<Option<UserSnapshot>>,
        pub kept: std::sync::Mutex<Vec<UserSnapshot>>,
    }

    impl RecordingCache {
        pub fn holding(snapshot: UserSnapshot) -> Arc<Self> {
            Arc::new(Self { held: std::sync::Mutex::new(Some(snapshot)), ..Self::default() })
        }
    }

    #[async_trait::async_trait]
    impl SnapshotCache for RecordingCache {
        async fn get(&self, user: &UserId) -> Option<UserSnapshot> {
            self.held.lock().expect("lock").clone().filter(|s| &s.user.id == user)
        }

        async fn put(&self, snapshot: &UserSnapshot) {
            self.kept.lock().expect("lock").push(snapshot.clone());
        }

        async fn keep(&self, snapshot: &UserSnapshot) {
            self.put(snapshot).await;
        }
    }
}
