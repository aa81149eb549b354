//! The store contract suite: what every store adapter of factors must do, written once
//! against the six store ports ([`UserReader`], [`UserWriter`], [`AuditLog`],
//! [`SessionStore`], [`PolicyStore`], [`Outbox`]) and read back through the test-only
//! [`StoreInspection`], never against an adapter's tables. An adapter passes it with a line in its tests:
//!
//! ```text
//! async fn fixture() -> factors_store_contract::Fixture { /* a fresh, empty store */ }
//! factors_store_contract::store_contract!(fixture);
//! ```
//!
//! Each test gets a fresh store from the fixture, writes through decisions the domain
//! makes on what the store answered (as the use cases do), and checks the outcome through
//! the read ports, the audit log and [`StoreInspection`].

// Panicking with a message is how a test fails; these functions only ever run in tests.
#![allow(clippy::missing_panics_doc)]

use std::any::Any;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use factors_application::ports::{
    AuditLog, CheckCharge, CreateError, EventStream, FeedCursor, HandClosing, NoticeKind, Outbox, PolicyStore,
    RecordedEvent, SessionRead, SessionStore, StoreInspection, StoredPolicies, TryTaken, UserOrder, UserReader,
    UserSearch, UserWriter, WriteError,
};
use factors_domain::{
    BreakerChange, BreakerEvent, Caller, ChallengeRequest, Change, CheckBudget, CodeCheck, CodeKey, CodePolicy,
    CodeRejection, Contact, Creation, Decision, Grant, LoginPolicy, NewOtpSms, NewSession, OrgId, Origin, OtpSmsId,
    PendingCode, Permission, PhoneNumber, PolicyInForce, PolicyRead, RemovalPolicy, SchemaId, Scope, Session,
    SessionDecision, SessionId, SessionPlan, SessionRequest, SessionToken, StateChange, User, UserData, UserId,
    UserSession, UserSnapshot, UserState, Verification, VerificationCode, VerificationRefusal, Version, plan_deletion,
    plan_policy_change, plan_registration, plan_removal, plan_session, plan_state_change, plan_termination,
    plan_verification,
};

/// Every port a store serves.
pub trait Store: UserReader + UserWriter + AuditLog + SessionStore + PolicyStore + Outbox + StoreInspection {}

impl<T: UserReader + UserWriter + AuditLog + SessionStore + PolicyStore + Outbox + StoreInspection> Store for T {}

/// A fresh, empty store, and whatever keeps it alive (a test database, say) until the
/// test ends.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _keep: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    pub fn new(store: impl Store + 'static, keep: impl Any + Send + Sync) -> Self {
        Self { store: Arc::new(store), _keep: Box::new(keep) }
    }
}

/// Runs every test of the suite against the stores `$fixture` (an `async fn() -> Fixture`)
/// makes, one `#[tokio::test]` each. The calling crate needs `tokio` with its macros.
#[macro_export]
macro_rules! store_contract {
    ($fixture:path) => {
        $crate::store_contract!(@names (@tests $fixture));
    };
    // Every test marked `#[ignore = $reason]`: for stores that need what a plain run of
    // the workspace's tests cannot count on, run with `-- --ignored` where it is there.
    ($fixture:path, ignore = $reason:literal) => {
        $crate::store_contract!(@names (@ignored $fixture, $reason));
    };
    (@names ($($head:tt)*)) => {
        $crate::store_contract!($($head)*;
            a_user_is_stored_and_read_back_as_written,
            a_taken_user_id_is_already_exists_and_writes_no_event,
            added_authenticators_move_the_user_and_are_listed_oldest_first_with_their_codes,
            every_write_appends_its_event_numbered_and_stamped_as_decided,
            a_decision_made_on_another_version_is_refused_and_changes_nothing,
            a_decision_naming_another_organization_is_refused_and_changes_nothing,
            a_number_the_user_holds_is_refused_as_a_conflict_not_stored_twice,
            removal_deletes_the_authenticator_voids_its_code_and_appends_one_event,
            of_fifty_concurrent_removals_exactly_one_lands,
            the_right_code_verifies_once_and_is_used_up,
            of_many_concurrent_code_tries_at_most_the_allowed_are_taken,
            a_pending_code_expires_as_stored,
            deleting_a_user_takes_everything_it_holds_and_a_recreated_id_continues_its_numbering,
            a_creation_numbered_into_another_life_is_a_conflict,
            a_lock_and_an_unlock_move_the_users_state_each_with_its_event_and_a_stale_one_is_refused,
            the_audit_trail_pages_through_the_current_life_of_a_user_id_oldest_first,
            the_event_feed_lists_every_stream_of_the_instance_in_write_order_and_resumes_after_a_cursor,
            breaker_events_are_numbered_per_region_whichever_replica_writes_them_and_the_last_hand_closing_is_found,
            a_feed_reader_resuming_from_its_cursor_while_removals_land_sees_each_event_once,
            a_search_lists_the_instances_users_by_id_with_their_total_page_by_page_and_descending_reverses_it,
            each_condition_of_a_search_narrows_it_and_together_they_all_hold,
            a_search_sorts_by_creation_change_or_state_with_the_id_breaking_ties,
            a_session_is_stored_with_its_challenge_and_numbered_events,
            a_session_decision_made_on_another_version_is_refused,
            a_session_decision_holding_the_user_of_another_organization_is_refused,
            removing_the_challenged_authenticator_voids_the_challenge_and_refuses_a_check_decided_before,
            of_many_concurrent_sign_in_tries_at_most_the_allowed_are_taken,
            a_users_sessions_are_listed_with_their_versions,
            deleting_a_user_ends_its_sessions_each_with_its_event,
            a_deletion_that_does_not_end_every_session_as_read_is_refused_and_changes_nothing,
            a_terminated_session_is_gone_and_its_last_event_says_so,
            a_policy_is_set_from_the_version_read_with_its_events_and_a_stale_set_is_refused,
            a_removal_decided_on_a_policy_that_changed_since_is_refused_and_changes_nothing,
            a_removal_with_a_notice_leaves_it_in_the_outbox_and_a_refused_one_leaves_none,
            a_claimed_notice_is_held_for_its_lease_tried_again_when_due_and_gone_once_finished,
            a_deletion_leaves_a_notice_per_verified_number_and_one_decided_on_a_changed_policy_is_refused,
            a_users_budget_of_failed_checks_holds_across_its_codes_under_concurrency_until_its_window_passes,
        );
    };
    (@tests $fixture:path; $($name:ident,)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::$name($fixture().await).await;
            }
        )*
    };
    (@ignored $fixture:path, $reason:literal; $($name:ident,)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[ignore = $reason]
            async fn $name() {
                $crate::$name($fixture().await).await;
            }
        )*
    };
}

// ----- arrangements ---------------------------------------------------------------------

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 10, minute, 0).single().expect("valid time")
}

/// Alice's id, for charges that outlive a borrow of a local.
static ALICE: std::sync::LazyLock<UserId> = std::sync::LazyLock::new(|| uid("alice"));

fn uid(id: &str) -> UserId {
    UserId::new(id).expect("valid id")
}

fn oid(id: &str) -> OtpSmsId {
    OtpSmsId::new(id).expect("valid id")
}

fn phone(number: &str) -> PhoneNumber {
    PhoneNumber::parse(number).expect("valid phone")
}

fn key() -> CodeKey {
    CodeKey::new([9u8; 32]).expect("32 bytes")
}

fn hash(otp: &str, code: &str) -> factors_domain::CodeHash {
    key().hash(&oid(otp), &VerificationCode::parse(code).expect("six digits"))
}

/// An instance administrator: every decision of these tests is allowed by the rules. Its
/// requests come from [`origin`]. The stores' own tests decide with it too.
pub fn admin() -> Caller {
    Caller {
        user_id: uid("admin"),
        org: None,
        grants: Permission::ALL.iter().map(|p| Grant { permission: *p, scope: Scope::Instance }).collect(),
        authentication: Default::default(),
        origin: origin(),
    }
}

/// Where the administrator's requests come from: each of its events records it.
fn origin() -> Origin {
    Origin {
        client_address: Some(std::net::IpAddr::from([203, 0, 113, 7])),
        user_agent: Some("console/2.1".into()),
        request_id: Some("req-1".into()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        amr: vec!["pwd".into(), "otp".into()],
    }
}

/// The login UI's service account, creating and checking sessions.
fn login_ui() -> Caller {
    Caller { user_id: uid("login-ui"), grants: Vec::new(), ..admin() }
}

fn new_user(id: &str) -> User {
    User {
        id: uid(id),
        org: OrgId::new("org-a").expect("valid"),
        state: UserState::Active,
        schema_id: SchemaId::new("human").expect("valid"),
        data: UserData::new(serde_json::json!({"name": "Ada", "tags": ["a", 1]})).expect("object"),
        contact: Contact::default(),
        created: at(0),
        changed: at(0),
        sequence: 0,
    }
}

async fn create(store: &dyn Store, id: &str, minute: u32) -> User {
    create_in(store, id, "org-a", minute).await
}

async fn create_in(store: &dyn Store, id: &str, org: &str, minute: u32) -> User {
    let user = User { org: OrgId::new(org).expect("valid"), ..new_user(id) };
    let last = store.last_sequence(&uid(id)).await.expect("readable");
    let creation = Creation::new(user, &admin(), last, at(minute));
    store.create(&creation).await.expect("created");
    creation.user
}

async fn load(store: &dyn Store, id: &str) -> UserSnapshot {
    store.load(&uid(id)).await.expect("readable").expect("the user exists")
}

/// Applies a decision the rules made on `snapshot`.
async fn apply(store: &dyn Store, decision: &Decision) {
    store.apply(decision).await.unwrap_or_else(|e| panic!("{:?} applied: {e}", decision.change));
}

fn registration(snapshot: &UserSnapshot, otp: &str, number: &str, code: Option<&str>, minute: u32) -> Decision {
    let new = NewOtpSms {
        id: oid(otp),
        phone: phone(number),
        verification: if code.is_some() { Verification::ReturnCode } else { Verification::IsVerified },
        code: code.map(|c| hash(otp, c)),
    };
    let login = LoginPolicy::default();
    plan_registration(
        &admin(),
        &snapshot.user.id,
        Some(snapshot),
        new,
        true,
        &login,
        &CodePolicy::default(),
        at(minute),
    )
    .expect("the rules allow the add")
}

async fn add(store: &dyn Store, user: &str, otp: &str, number: &str, code: Option<&str>, minute: u32) -> Decision {
    let decision = registration(&load(store, user).await, otp, number, code, minute);
    apply(store, &decision).await;
    decision
}

fn removal(snapshot: &UserSnapshot, otp: &str, minute: u32) -> Decision {
    removal_under(snapshot, otp, minute, &PolicyInForce::resolve(None, None))
}

fn removal_under(snapshot: &UserSnapshot, otp: &str, minute: u32, login: &PolicyInForce) -> Decision {
    plan_removal(&admin(), &snapshot.user.id, Some(snapshot), &oid(otp), &RemovalPolicy::default(), login, at(minute))
        .expect("the rules allow the removal")
}

fn org_a() -> OrgId {
    OrgId::new("org-a").expect("valid")
}

async fn policies(store: &dyn Store) -> StoredPolicies {
    store.load_policies(Some(&org_a())).await.expect("policies readable")
}

/// Sets `policy` for `scope` on what the store holds, as the use case does.
async fn set_policy(store: &dyn Store, scope: &Scope, policy: LoginPolicy, minute: u32) {
    let stored = policies(store).await;
    let change = plan_policy_change(&admin(), scope, read_of(&stored), policy, at(minute))
        .expect("the rules allow it")
        .expect("a change");
    store.apply_policy(&change).await.expect("policy set");
}

/// The policies as the rules read them, for an administrator without an account here.
fn read_of(stored: &StoredPolicies) -> PolicyRead<'_> {
    PolicyRead { org: stored.org.as_ref(), instance: stored.instance.as_ref(), own_org: None }
}

/// The deletion of the snapshot's user, holding no session, by an administrator, under
/// `login`.
fn deletion_under(snapshot: &UserSnapshot, minute: u32, login: &PolicyInForce) -> Decision {
    plan_deletion(&admin(), &snapshot.user.id, Some(snapshot), &[], login, at(minute)).expect("the rules allow it")
}

/// The deletion of the snapshot's user by an administrator, ending `sessions`.
fn deletion_ending(snapshot: &UserSnapshot, sessions: &[UserSession], minute: u32) -> Decision {
    let login = PolicyInForce::resolve(None, None);
    plan_deletion(&admin(), &snapshot.user.id, Some(snapshot), sessions, &login, at(minute))
        .expect("the rules allow it")
}

fn deletion(snapshot: &UserSnapshot, minute: u32) -> Decision {
    deletion_under(snapshot, minute, &PolicyInForce::resolve(None, None))
}

async fn in_force(store: &dyn Store) -> PolicyInForce {
    let stored = policies(store).await;
    PolicyInForce::resolve(stored.org.as_ref(), stored.instance.as_ref())
}

fn notifying() -> LoginPolicy {
    LoginPolicy { notify_on_removal: true, ..LoginPolicy::default() }
}

/// A charge against a budget no test of a code's own tries reaches.
fn unlimited(user: &UserId) -> CheckCharge<'_> {
    CheckCharge { user, budget: CheckBudget { max_failures: 1_000, window: TimeDelta::minutes(15) }, now: at(2) }
}

/// The tries a try taken answered.
fn taken_tries(taken: &TryTaken) -> Option<u32> {
    match taken {
        TryTaken::Taken(tries) => Some(*tries),
        _ => None,
    }
}

async fn check(
    store: &dyn Store,
    user: &str,
    otp: &str,
    code: &str,
    now: DateTime<Utc>,
) -> Result<CodeCheck, VerificationRefusal> {
    let (snapshot, pending) = store.load_with_code(&uid(user), &oid(otp)).await.expect("readable").expect("exists");
    plan_verification(
        &admin(),
        &uid(user),
        Some(&snapshot),
        &oid(otp),
        pending.as_ref(),
        &hash(otp, code),
        true,
        &CodePolicy::default(),
        now,
    )
}

async fn pending_code(store: &dyn Store, user: &str, otp: &str) -> Option<PendingCode> {
    store.load_with_code(&uid(user), &oid(otp)).await.expect("readable").and_then(|(_, code)| code)
}

async fn events(store: &dyn Store, user: &str) -> Vec<RecordedEvent> {
    store.events_of(EventStream::User(&uid(user))).await.expect("the audit log is readable")
}

async fn event_types(store: &dyn Store, user: &str) -> Vec<(u64, String)> {
    events(store, user).await.into_iter().map(|e| (e.sequence, e.event_type)).collect()
}

// ----- the contract -----------------------------------------------------------------------

pub async fn a_user_is_stored_and_read_back_as_written(f: Fixture) {
    let created = create(f.store.as_ref(), "alice", 1).await;

    let read = load(f.store.as_ref(), "alice").await;

    assert_eq!(read, UserSnapshot { user: created, otp_sms: vec![] });
    assert_eq!(f.store.load(&uid("ghost")).await.expect("readable"), None);
    assert_eq!(event_types(f.store.as_ref(), "alice").await, [(1, "user.human.added".to_owned())]);
}

pub async fn a_taken_user_id_is_already_exists_and_writes_no_event(f: Fixture) {
    create(f.store.as_ref(), "alice", 1).await;

    let again = f.store.create(&Creation::new(new_user("alice"), &admin(), 1, at(2))).await;

    assert!(matches!(again, Err(CreateError::AlreadyExists)), "{again:?}");
    assert_eq!(events(f.store.as_ref(), "alice").await.len(), 1);
}

pub async fn added_authenticators_move_the_user_and_are_listed_oldest_first_with_their_codes(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;

    add(store, "alice", "a1", "+41791234567", Some("123456"), 1).await;
    add(store, "alice", "a2", "+41791234568", None, 2).await;

    let read = load(store, "alice").await;
    assert_eq!(read.user.version(), Version { sequence: 3, changed: at(2) });
    let listed: Vec<_> = read.otp_sms.iter().map(|a| (a.id.as_str(), a.verified, a.created)).collect();
    assert_eq!(listed, [("a1", false, at(1)), ("a2", true, at(2))]);
    assert_eq!(read.otp_sms[0].phone, phone("+41791234567"));
    assert_eq!(
        pending_code(store, "alice", "a1").await,
        Some(PendingCode::issue(hash("a1", "123456"), at(1), &CodePolicy::default())),
        "the code comes back as stored"
    );
    assert_eq!(pending_code(store, "alice", "a2").await, None, "a verified number has no code");
}

pub async fn every_write_appends_its_event_numbered_and_stamped_as_decided(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    let added = add(store, "alice", "a1", "+41791234567", Some("123456"), 1).await;
    let Ok(CodeCheck::Verified(verified)) = check(store, "alice", "a1", "123456", at(2)).await else {
        panic!("the right code verifies")
    };
    apply(store, &verified).await;
    let removed = removal(&load(store, "alice").await, "a1", 3);
    apply(store, &removed).await;

    let recorded = events(store, "alice").await;

    let expected: Vec<(u64, &str, DateTime<Utc>, serde_json::Value)> = [&added, &verified, &removed]
        .iter()
        .map(|d| (d.transition.to.sequence, d.event.event_type(), d.transition.to.changed, d.event.payload()))
        .collect();
    let got: Vec<_> =
        recorded[1..].iter().map(|e| (e.sequence, e.event_type.as_str(), e.created_at, e.payload.clone())).collect();
    assert_eq!(got, expected);
    assert!(recorded.iter().all(|e| e.creator == "admin"), "{recorded:?}");
    assert_eq!(
        load(store, "alice").await.user.version(),
        removed.transition.to,
        "the user stands where the last write left it"
    );
}

pub async fn a_decision_made_on_another_version_is_refused_and_changes_nothing(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    let before = load(store, "alice").await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;
    let now = load(store, "alice").await;

    // Made on the version before the add: the sequence moved on.
    let on_old_sequence = registration(&before, "a2", "+41791234568", None, 2);
    // Made on a state of the same sequence but another history (a restore, a failover).
    let mut other_history = now.clone();
    other_history.user.changed += TimeDelta::microseconds(1);
    let on_other_history = removal(&other_history, "a1", 2);

    for decision in [on_old_sequence, on_other_history] {
        let refused = store.apply(&decision).await;
        assert!(matches!(refused, Err(WriteError::Conflict)), "{:?}: {refused:?}", decision.change);
    }
    assert_eq!(load(store, "alice").await, now);
    assert_eq!(events(store, "alice").await.len(), 2, "no event for a refused decision");
}

pub async fn a_decision_naming_another_organization_is_refused_and_changes_nothing(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", Some("123456"), 1).await;
    let now = load(store, "alice").await;
    // Decided on a user of the same id and version in another organization: the access
    // rules judged that user, not this one.
    let elsewhere =
        UserSnapshot { user: User { org: OrgId::new("org-b").expect("valid"), ..now.user.clone() }, ..now.clone() };
    let Ok(CodeCheck::Verified(verification)) = plan_verification(
        &admin(),
        &uid("alice"),
        Some(&elsewhere),
        &oid("a1"),
        pending_code(store, "alice", "a1").await.as_ref(),
        &hash("a1", "123456"),
        true,
        &CodePolicy::default(),
        at(2),
    ) else {
        panic!("the right code verifies")
    };
    let deletion = deletion(&elsewhere, 2);
    let decisions = [
        registration(&elsewhere, "a2", "+41791234568", None, 2),
        *verification,
        removal(&elsewhere, "a1", 2),
        deletion,
    ];

    for decision in decisions {
        let refused = store.apply(&decision).await;
        assert!(matches!(refused, Err(WriteError::Conflict)), "{:?}: {refused:?}", decision.change);
    }
    assert_eq!(load(store, "alice").await, now);
    assert_eq!(events(store, "alice").await.len(), 2, "no event for a refused decision");
}

pub async fn a_number_the_user_holds_is_refused_as_a_conflict_not_stored_twice(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    create(store, "bob", 0).await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;

    // The rules never decide this; a store that is handed it anyway refuses it.
    let snapshot = load(store, "alice").await;
    let twice = registration(&UserSnapshot { otp_sms: vec![], ..snapshot.clone() }, "a2", "+41791234567", None, 2);
    let refused = store.apply(&twice).await;
    add(store, "bob", "b1", "+41791234567", None, 2).await;

    assert!(matches!(refused, Err(WriteError::Conflict)), "{refused:?}");
    assert_eq!(load(store, "alice").await, snapshot, "nothing changed");
    assert_eq!(load(store, "bob").await.otp_sms.len(), 1, "another user may hold the number");
}

pub async fn removal_deletes_the_authenticator_voids_its_code_and_appends_one_event(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", Some("123456"), 1).await;

    apply(store, &removal(&load(store, "alice").await, "a1", 5)).await;

    assert!(load(store, "alice").await.otp_sms.is_empty());
    assert_eq!(pending_code(store, "alice", "a1").await, None, "no code of it is left to use");
    let recorded = events(store, "alice").await;
    let removed = recorded.last().expect("events");
    assert_eq!(removed.event_type, "user.human.mfa.otp.sms.removed");
    assert_eq!(
        (&removed.payload["otpSmsId"], &removed.payload["phone"], &removed.payload["actor"]),
        (&serde_json::json!("a1"), &serde_json::json!("+41******567"), &serde_json::json!("admin"))
    );
    assert_eq!(removed.payload["origin"], serde_json::json!(origin()), "the request's origin, as recorded");
    assert_eq!(check(store, "alice", "a1", "123456", at(6)).await, Err(VerificationRefusal::NotFound));
}

pub async fn of_fifty_concurrent_removals_exactly_one_lands(f: Fixture) {
    create(f.store.as_ref(), "alice", 0).await;
    add(f.store.as_ref(), "alice", "a1", "+41791234567", None, 1).await;
    let decision = Arc::new(removal(&load(f.store.as_ref(), "alice").await, "a1", 2));

    let attempts = (0..50).map(|_| {
        let (store, decision) = (f.store.clone(), decision.clone());
        tokio::spawn(async move { store.apply(&decision).await })
    });
    let results: Vec<_> =
        futures::future::join_all(attempts).await.into_iter().map(|r| r.expect("the task ran")).collect();

    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| matches!(r, Err(WriteError::Conflict))).count(), 49, "{results:?}");
    let removals = events(f.store.as_ref(), "alice")
        .await
        .into_iter()
        .filter(|e| e.event_type == "user.human.mfa.otp.sms.removed")
        .count();
    assert_eq!(removals, 1);
}

pub async fn the_right_code_verifies_once_and_is_used_up(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", Some("123456"), 1).await;

    let Ok(CodeCheck::Verified(verified)) = check(store, "alice", "a1", "123456", at(2)).await else {
        panic!("the right code verifies")
    };
    apply(store, &verified).await;

    assert!(load(store, "alice").await.otp_sms[0].verified);
    assert_eq!(pending_code(store, "alice", "a1").await, None, "the code is used up");
    assert_eq!(check(store, "alice", "a1", "123456", at(3)).await, Err(VerificationRefusal::AlreadyVerified));
    assert!(matches!(store.apply(&verified).await, Err(WriteError::Conflict)), "applying it twice");
}

pub async fn of_many_concurrent_code_tries_at_most_the_allowed_are_taken(f: Fixture) {
    create(f.store.as_ref(), "alice", 0).await;
    add(f.store.as_ref(), "alice", "a1", "+41791234567", Some("123456"), 1).await;
    let store = f.store.as_ref();
    let code = Arc::new(pending_code(store, "alice", "a1").await.expect("a pending code"));
    let max = CodePolicy::default().max_attempts;

    let tries = (0..20).map(|_| {
        let (store, code) = (f.store.clone(), code.clone());
        tokio::spawn(async move { store.take_code_try(&oid("a1"), &code, max, &unlimited(&uid("alice"))).await })
    });
    let results: Vec<_> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.expect("ran").expect("the store answers"))
        .collect();

    let mut taken: Vec<u32> = results.iter().filter_map(taken_tries).collect();
    taken.sort_unstable();
    assert_eq!(taken, (1..=max).collect::<Vec<_>>(), "each try counted once, never more than {max}: {results:?}");
    assert_eq!(pending_code(store, "alice", "a1").await.map(|c| c.failed_attempts), Some(max));
    assert_eq!(
        check(store, "alice", "a1", "123456", at(2)).await,
        Err(VerificationRefusal::Void(CodeRejection::Exhausted)),
        "the right code no longer passes"
    );
    let mut other = (*code).clone();
    other.hash = hash("a1", "654321");
    let another = store.take_code_try(&oid("a1"), &other, 99, &unlimited(&uid("alice"))).await.expect("answers");
    assert_eq!(another, TryTaken::Gone, "another code");
    assert!(!load(store, "alice").await.otp_sms[0].verified);
    assert_eq!(events(store, "alice").await.len(), 2, "tries are not events");
    assert_eq!(load(store, "alice").await.user.sequence, 2, "nor do they move the user");
}

pub async fn a_pending_code_expires_as_stored(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", Some("123456"), 1).await;

    let just_in_time =
        check(store, "alice", "a1", "123456", at(1) + CodePolicy::default().ttl - TimeDelta::microseconds(1)).await;
    let late = check(store, "alice", "a1", "123456", at(1) + CodePolicy::default().ttl).await;

    assert!(matches!(just_in_time, Ok(CodeCheck::Verified(_))), "{just_in_time:?}");
    assert_eq!(late, Err(VerificationRefusal::Void(CodeRejection::Expired)));
}

pub async fn deleting_a_user_takes_everything_it_holds_and_a_recreated_id_continues_its_numbering(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", Some("123456"), 1).await;
    let snapshot = load(store, "alice").await;
    let deletion = deletion(&snapshot, 5);
    assert!(matches!(deletion.change, Change::DeleteUser { .. }));

    apply(store, &deletion).await;
    let twice = store.apply(&deletion).await;

    assert!(matches!(twice, Err(WriteError::Conflict)), "{twice:?}");
    assert_eq!(store.load(&uid("alice")).await.expect("readable"), None);
    assert_eq!(store.load_with_code(&uid("alice"), &oid("a1")).await.expect("readable"), None);
    assert_eq!(store.last_sequence(&uid("alice")).await.expect("readable"), 3);

    let again = create(store, "alice", 6).await;

    assert_eq!((again.sequence, load(store, "alice").await.otp_sms.len()), (4, 0));
    let sequences: Vec<u64> = events(store, "alice").await.into_iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
}

pub async fn a_lock_and_an_unlock_move_the_users_state_each_with_its_event_and_a_stale_one_is_refused(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    let active = load(store, "alice").await;
    let lock = plan_state_change(&admin(), &uid("alice"), Some(&active), StateChange::Lock, at(2)).expect("allowed");

    apply(store, &lock).await;
    let locked = load(store, "alice").await;
    let twice = store.apply(&lock).await;

    assert_eq!((locked.user.state, locked.user.version()), (UserState::Locked, lock.transition.to));
    assert!(matches!(twice, Err(WriteError::Conflict)), "{twice:?}");
    let unlock =
        plan_state_change(&admin(), &uid("alice"), Some(&locked), StateChange::Unlock, at(3)).expect("allowed");
    apply(store, &unlock).await;
    assert_eq!(load(store, "alice").await.user.state, UserState::Active);
    let recorded: Vec<_> = events(store, "alice").await.into_iter().map(|e| (e.sequence, e.event_type)).collect();
    assert_eq!(
        recorded,
        [(1, "user.human.added".to_owned()), (2, "user.locked".to_owned()), (3, "user.unlocked".to_owned())]
    );
}

pub async fn a_creation_numbered_into_another_life_is_a_conflict(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    let snapshot = load(store, "alice").await;
    apply(store, &deletion(&snapshot, 1)).await;

    // Decided before the first life's deletion was seen: numbered 2, which is taken.
    let stale = store.create(&Creation::new(new_user("alice"), &admin(), 1, at(2))).await;

    assert!(matches!(stale, Err(CreateError::Conflict)), "{stale:?}");
    assert_eq!(store.load(&uid("alice")).await.expect("readable"), None, "nothing was created");
}

async fn page(store: &dyn Store, user: &str, after: u64, limit: u32) -> Vec<(u64, String)> {
    let events = store.events_page(&uid(user), after, limit).await.expect("the audit log is readable");
    events.into_iter().map(|e| (e.sequence, e.event_type)).collect()
}

pub async fn the_audit_trail_pages_through_the_current_life_of_a_user_id_oldest_first(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    create(store, "bob", 0).await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;
    add(store, "bob", "b1", "+41791234568", None, 1).await;
    add(store, "alice", "a2", "+41791234569", None, 2).await;
    apply(store, &removal(&load(store, "alice").await, "a1", 3)).await;
    let owned = |pairs: &[(u64, &str)]| pairs.iter().map(|(n, t)| (*n, (*t).to_owned())).collect::<Vec<_>>();

    assert_eq!(
        page(store, "alice", 0, 2).await,
        owned(&[(1, "user.human.added"), (2, "user.human.mfa.otp.sms.added")])
    );
    assert_eq!(
        page(store, "alice", 2, 2).await,
        owned(&[(3, "user.human.mfa.otp.sms.added"), (4, "user.human.mfa.otp.sms.removed")])
    );
    assert_eq!(page(store, "alice", 4, 2).await, [], "past the last event");
    assert_eq!(page(store, "alice", u64::MAX, 2).await, [], "past any number");
    assert_eq!(page(store, "ghost", 0, 10).await, [], "an id that never lived");
    let whole = store.events_page(&uid("alice"), 0, 100).await.expect("readable");
    assert_eq!(whole, events(store, "alice").await, "the same events as the log holds, payloads and all");

    // A new life of the id (in another organization, say) starts a trail of its own.
    let snapshot = load(store, "alice").await;
    apply(store, &deletion(&snapshot, 5)).await;
    assert_eq!(page(store, "alice", 0, 10).await, [], "a deleted id has no current life");
    create(store, "alice", 6).await;
    assert_eq!(page(store, "alice", 0, 10).await, owned(&[(6, "user.human.added")]));
    assert_eq!(page(store, "alice", 2, 10).await, owned(&[(6, "user.human.added")]), "a cursor into an earlier life");
    assert_eq!(events(store, "alice").await.len(), 6, "the log keeps every life");
}

/// The instance's feed after `after`, read a page of `limit` at a time as a consumer
/// would, until `expect` events came: (stream, id, sequence, type) of each, and the last
/// cursor. On PostgreSQL an event shows once every transaction that began before it has
/// ended, in any database of the server, so a busy test server may hold it back a moment.
async fn feed(
    store: &dyn Store,
    mut after: FeedCursor,
    limit: u32,
    expect: usize,
) -> (Vec<(String, String, u64, String)>, FeedCursor) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let page = store.feed_page(after, limit).await.expect("the feed is readable");
        assert!(page.len() <= limit as usize, "a page holds at most its limit");
        let Some(last) = page.last() else {
            if seen.len() >= expect || std::time::Instant::now() > deadline {
                return (seen, after);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        assert!(page.windows(2).all(|w| w[0].cursor < w[1].cursor), "cursors grow within a page");
        assert!(page[0].cursor > after, "a page starts after its cursor");
        after = last.cursor;
        seen.extend(page.into_iter().map(|e| (e.aggregate_type, e.aggregate_id, e.event.sequence, e.event.event_type)));
    }
}

pub async fn the_event_feed_lists_every_stream_of_the_instance_in_write_order_and_resumes_after_a_cursor(f: Fixture) {
    let store = f.store.as_ref();
    assert_eq!(feed(store, FeedCursor::default(), 10, 0).await.0, [], "an empty store's feed");
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;
    set_policy(store, &Scope::Org(org_a()), notifying(), 2).await;
    create(store, "bob", 3).await;
    let login = in_force(store).await;
    apply(store, &removal_under(&load(store, "alice").await, "a1", 4, &login)).await;
    let entry = |stream: &str, id: &str, sequence: u64, kind: &str| {
        (stream.to_owned(), id.to_owned(), sequence, kind.to_owned())
    };
    let (all, last) = feed(store, FeedCursor::default(), 100, 5).await;
    assert_eq!(
        all,
        [
            entry("user", "alice", 1, "user.human.added"),
            entry("user", "alice", 2, "user.human.mfa.otp.sms.added"),
            entry("org", "org-a", 1, "org.policy.login.added"),
            entry("user", "bob", 1, "user.human.added"),
            entry("user", "alice", 3, "user.human.mfa.otp.sms.removed"),
        ],
        "every stream, in the order written"
    );
    assert_eq!(feed(store, FeedCursor::default(), 2, 5).await.0, all, "page by page, the same events");
    let whole = store.feed_page(FeedCursor::default(), 100).await.expect("readable");
    assert_eq!(whole[0].event, events(store, "alice").await[0], "the event as the log holds it, payload and all");
    assert_eq!(feed(store, whole[1].cursor, 100, 3).await.0, all[2..], "after a cursor: what follows it");
    assert_eq!(feed(store, last, 100, 0).await.0, [], "after the last: nothing yet");
    create(store, "carol", 5).await;
    assert_eq!(feed(store, last, 100, 1).await.0, [entry("user", "carol", 1, "user.human.added")], "then what came");
    let beyond = FeedCursor { transaction: u64::MAX, position: u64::MAX };
    assert_eq!(feed(store, beyond, 100, 0).await.0, [], "past any cursor");
}

pub async fn breaker_events_are_numbered_per_region_whichever_replica_writes_them_and_the_last_hand_closing_is_found(
    f: Fixture,
) {
    let store = f.store.clone();
    let event = |region: &str, change: BreakerChange, minute: u32| BreakerEvent {
        region: region.into(),
        change,
        actor: (change == BreakerChange::Closed).then(|| uid("admin")),
        origin: Origin::default(),
        at: at(minute),
        sent: 40,
        verified: 2,
        until: (change == BreakerChange::Opened).then(|| at(minute + 15)),
        enforced: true,
        replica: format!("web-{minute}#1"),
    };
    store.record_breaker(&event("GN", BreakerChange::Opened, 0)).await.expect("recorded");
    // Four replicas record the same region at once: each gets a number of its own.
    let replicas = (1..=4).map(|n| {
        let (store, event) = (store.clone(), event("GN", BreakerChange::Closed, n));
        tokio::spawn(async move { store.record_breaker(&event).await })
    });
    for replica in futures::future::join_all(replicas).await {
        replica.expect("ran").expect("recorded");
    }
    store.record_breaker(&event("SL", BreakerChange::Opened, 9)).await.expect("recorded");

    let (all, _) = feed(store.as_ref(), FeedCursor::default(), 100, 6).await;
    let mut guinea: Vec<(u64, String)> =
        all.iter().filter(|e| e.1 == "GN").map(|(kind, _, n, t)| (*n, format!("{kind} {t}"))).collect();
    guinea.sort();
    let closed = "sms_breaker sms.breaker.closed".to_owned();
    assert_eq!(
        guinea,
        [
            (1, "sms_breaker sms.breaker.opened".to_owned()),
            (2, closed.clone()),
            (3, closed.clone()),
            (4, closed.clone()),
            (5, closed)
        ]
    );
    assert!(all.contains(&("sms_breaker".into(), "SL".into(), 1, "sms.breaker.opened".into())), "{all:?}");
    let whole = store.feed_page(FeedCursor::default(), 100).await.expect("readable");
    let opened = whole.iter().find(|e| e.aggregate_id == "SL").expect("in the feed");
    assert_eq!(opened.event.payload, event("SL", BreakerChange::Opened, 9).payload(), "the payload as written");
    assert_eq!(opened.event.creator, "SYSTEM");

    // The last closing by hand: the guard's own closings and other regions' do not count.
    assert_eq!(store.last_hand_closing("SL").await.expect("readable"), None, "SL was only opened");
    let by_hand = BreakerEvent { actor: Some(uid("owner-b")), ..event("GN", BreakerChange::Closed, 7) };
    store.record_breaker(&by_hand).await.expect("recorded");
    let by_guard = BreakerEvent { actor: None, ..event("GN", BreakerChange::Closed, 8) };
    store.record_breaker(&by_guard).await.expect("recorded");
    let last = store.last_hand_closing("GN").await.expect("readable");
    assert_eq!(last, Some(HandClosing { at: at(7), actor: "owner-b".into() }));
}

pub async fn a_feed_reader_resuming_from_its_cursor_while_removals_land_sees_each_event_once(f: Fixture) {
    const USERS: usize = 24;
    let store = f.store.clone();
    for n in 0..USERS {
        let user = format!("user-{n}");
        create(store.as_ref(), &user, 0).await;
        add(store.as_ref(), &user, &format!("otp-{n}"), &format!("+4179123{n:04}"), None, 1).await;
    }
    let (before, start) = feed(store.as_ref(), FeedCursor::default(), 1000, USERS * 2).await;
    assert_eq!(before.len(), USERS * 2);
    // Removals land from several tasks while a consumer keeps reading small pages.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in (w..USERS).step_by(4) {
                    let user = format!("user-{n}");
                    let snapshot = load(store.as_ref(), &user).await;
                    apply(store.as_ref(), &removal(&snapshot, &format!("otp-{n}"), 2)).await;
                }
            })
        })
        .collect();
    let mut cursor = start;
    let mut seen = Vec::new();
    let mut writing = true;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while writing || seen.len() < USERS {
        assert!(std::time::Instant::now() < deadline, "the feed gave {} of {USERS} removals within 30 s", seen.len());
        writing = !writers.iter().all(tokio::task::JoinHandle::is_finished);
        let page = store.feed_page(cursor, 3).await.expect("readable");
        if let Some(last) = page.last() {
            cursor = last.cursor;
        }
        seen.extend(page.into_iter().map(|e| (e.aggregate_id, e.event.sequence, e.event.event_type)));
        assert!(seen.len() <= USERS, "more events than removals: {seen:?}");
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.expect("the removals landed");
    }
    let mut removed: Vec<String> = seen.iter().map(|(user, _, _)| user.clone()).collect();
    removed.sort();
    removed.dedup();
    assert_eq!(removed.len(), USERS, "each removal's event once: {seen:?}");
    assert!(seen.iter().all(|(_, sequence, kind)| *sequence == 3 && kind == "user.human.mfa.otp.sms.removed"));
    assert_eq!(feed(store.as_ref(), cursor, 100, 0).await.0, [], "nothing left behind the cursor");
}

/// A search of every user of the instance by id, ascending, in one page of up to 100.
pub fn everyone() -> UserSearch {
    UserSearch {
        within: None,
        org: None,
        id: None,
        state: None,
        order: UserOrder::Id,
        descending: false,
        offset: 0,
        limit: 100,
    }
}

/// The ids a search found, in its order, and its total.
async fn found(store: &dyn Store, search: &UserSearch) -> (Vec<String>, u64) {
    let page = store.search(search).await.unwrap_or_else(|e| panic!("{search:?} answered: {e}"));
    (page.ids.iter().map(|id| id.as_str().to_owned()).collect(), page.total)
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn orgs(names: &[&str]) -> Vec<OrgId> {
    names.iter().map(|n| OrgId::new(*n).expect("valid")).collect()
}

/// Moves user `id` as `change` says, at `minute`.
async fn change_state(store: &dyn Store, id: &str, change: StateChange, minute: u32) {
    let snapshot = load(store, id).await;
    apply(store, &plan_state_change(&admin(), &uid(id), Some(&snapshot), change, at(minute)).expect("allowed")).await;
}

/// Five users of three organizations, created and changed in an order that is not their
/// ids': created carol 1, alice 2, erin 2, dave 3, bob 4; changed alice 2, erin 2, bob 4,
/// carol 5 (locked), dave 6 (deactivated).
async fn searched(store: &dyn Store) {
    create_in(store, "carol", "org-a", 1).await;
    create_in(store, "alice", "org-a", 2).await;
    create_in(store, "erin", "org-b", 2).await;
    create_in(store, "dave", "org-b", 3).await;
    create_in(store, "bob", "org-c", 4).await;
    change_state(store, "carol", StateChange::Lock, 5).await;
    change_state(store, "dave", StateChange::Deactivate, 6).await;
}

pub async fn a_search_lists_the_instances_users_by_id_with_their_total_page_by_page_and_descending_reverses_it(
    f: Fixture,
) {
    let store = f.store.as_ref();
    assert_eq!(found(store, &everyone()).await, (ids(&[]), 0), "an empty store");
    for (id, minute) in [("carol", 1), ("alice", 2), ("erin", 3), ("bob", 4), ("dave", 5)] {
        create(store, id, minute).await;
    }
    let page = |offset, limit, descending| UserSearch { offset, limit, descending, ..everyone() };

    assert_eq!(found(store, &everyone()).await, (ids(&["alice", "bob", "carol", "dave", "erin"]), 5));
    assert_eq!(found(store, &page(1, 2, false)).await, (ids(&["bob", "carol"]), 5));
    assert_eq!(found(store, &page(4, 2, false)).await, (ids(&["erin"]), 5), "the last page");
    assert_eq!(found(store, &page(5, 2, false)).await, (ids(&[]), 5), "past the last user");
    assert_eq!(found(store, &page(u64::MAX, 2, false)).await, (ids(&[]), 5), "past any number");
    assert_eq!(found(store, &page(0, 0, false)).await, (ids(&[]), 5), "an empty page still counts");
    assert_eq!(found(store, &page(0, 100, true)).await, (ids(&["erin", "dave", "carol", "bob", "alice"]), 5));
    assert_eq!(found(store, &page(1, 2, true)).await, (ids(&["dave", "carol"]), 5));

    apply(store, &deletion(&load(store, "bob").await, 6)).await;

    assert_eq!(found(store, &everyone()).await, (ids(&["alice", "carol", "dave", "erin"]), 4), "bob is deleted");
}

pub async fn each_condition_of_a_search_narrows_it_and_together_they_all_hold(f: Fixture) {
    let store = f.store.as_ref();
    searched(store).await;
    let within = |names: &[&str]| UserSearch { within: Some(orgs(names)), ..everyone() };
    let org = |name: &str| Some(OrgId::new(name).expect("valid"));

    assert_eq!(found(store, &within(&["org-a", "org-b"])).await, (ids(&["alice", "carol", "dave", "erin"]), 4));
    assert_eq!(found(store, &within(&["org-c"])).await, (ids(&["bob"]), 1));
    assert_eq!(found(store, &within(&["org-z"])).await, (ids(&[]), 0), "an organization without users");
    assert_eq!(found(store, &within(&[])).await, (ids(&[]), 0), "within no organization");
    assert_eq!(found(store, &UserSearch { org: org("org-b"), ..everyone() }).await, (ids(&["dave", "erin"]), 2));
    assert_eq!(found(store, &UserSearch { id: Some(uid("carol")), ..everyone() }).await, (ids(&["carol"]), 1));
    assert_eq!(found(store, &UserSearch { id: Some(uid("ghost")), ..everyone() }).await, (ids(&[]), 0));
    let in_state = |state| UserSearch { state: Some(state), ..everyone() };
    assert_eq!(found(store, &in_state(UserState::Active)).await, (ids(&["alice", "bob", "erin"]), 3));
    assert_eq!(found(store, &in_state(UserState::Locked)).await, (ids(&["carol"]), 1));
    assert_eq!(found(store, &in_state(UserState::Inactive)).await, (ids(&["dave"]), 1));
    assert_eq!(found(store, &in_state(UserState::Deleted)).await, (ids(&[]), 0));

    let active_within = UserSearch { state: Some(UserState::Active), ..within(&["org-a", "org-b"]) };
    assert_eq!(found(store, &active_within).await, (ids(&["alice", "erin"]), 2));
    let active_of_a = UserSearch { org: org("org-a"), ..active_within.clone() };
    assert_eq!(found(store, &active_of_a).await, (ids(&["alice"]), 1));
    assert_eq!(found(store, &UserSearch { org: org("org-a"), ..within(&["org-c"]) }).await, (ids(&[]), 0));
    assert_eq!(found(store, &UserSearch { org: org("org-a"), id: Some(uid("dave")), ..everyone() }).await.1, 0);
    assert_eq!(
        found(store, &UserSearch { org: org("org-b"), id: Some(uid("dave")), ..everyone() }).await,
        (ids(&["dave"]), 1)
    );
    let narrowed_page = UserSearch { offset: 1, limit: 1, ..in_state(UserState::Active) };
    assert_eq!(found(store, &narrowed_page).await, (ids(&["bob"]), 3), "the total counts every active user");
}

pub async fn a_search_sorts_by_creation_change_or_state_with_the_id_breaking_ties(f: Fixture) {
    let store = f.store.as_ref();
    searched(store).await;
    let sorted = |order, descending| UserSearch { order, descending, ..everyone() };

    for (order, ascending) in [
        (UserOrder::Id, ["alice", "bob", "carol", "dave", "erin"]),
        (UserOrder::Created, ["carol", "alice", "erin", "dave", "bob"]),
        (UserOrder::Changed, ["alice", "erin", "bob", "carol", "dave"]),
        // Active 1, inactive 2, locked 4, as ZITADEL numbers them.
        (UserOrder::State, ["alice", "bob", "erin", "dave", "carol"]),
    ] {
        let mut descending = ascending;
        descending.reverse();
        assert_eq!(found(store, &sorted(order, false)).await, (ids(&ascending), 5), "{order:?}");
        assert_eq!(found(store, &sorted(order, true)).await, (ids(&descending), 5), "{order:?} descending");
    }
    let created_page = |offset| UserSearch { offset, limit: 1, ..sorted(UserOrder::Created, false) };
    assert_eq!(found(store, &created_page(1)).await, (ids(&["alice"]), 5), "a page ending inside a tie");
    assert_eq!(found(store, &created_page(2)).await, (ids(&["erin"]), 5), "the next page goes on after it");
    let state_page = UserSearch { offset: 2, limit: 2, ..sorted(UserOrder::State, false) };
    assert_eq!(found(store, &state_page).await, (ids(&["erin", "dave"]), 5));
}

// ----- sessions ---------------------------------------------------------------------------

fn sid(id: &str) -> SessionId {
    SessionId::new(id).expect("valid id")
}

fn code(digits: &str) -> VerificationCode {
    VerificationCode::parse(digits).expect("six digits")
}

/// A request for the rules: a user check, a code check and a challenge, as given.
fn session_request(user: Option<&str>, typed: Option<&str>, challenge: Option<&str>, token: &str) -> SessionRequest {
    SessionRequest {
        check_user: user.map(uid),
        check_code: typed.map(code),
        challenge: challenge.map(|c| ChallengeRequest { code: code(c), return_code: true }),
        metadata: std::collections::BTreeMap::new(),
        lifetime: None,
        token: SessionToken::new(token).hash(),
    }
}

/// What the rules decide for `request` on session `id` as the store holds it (a new
/// session when it holds none), with `user` read as the use case would.
async fn decide_session(store: &dyn Store, id: &str, request: &SessionRequest, now: DateTime<Utc>) -> SessionPlan {
    let read = store.load_session(&sid(id)).await.expect("readable");
    let user = match (&request.check_user, read.as_ref().and_then(|r| r.user.clone())) {
        (Some(checked), _) => store.load(checked).await.expect("readable"),
        (None, user) => user,
    };
    let new = NewSession { id: sid(id) };
    let current = read.as_ref().map(|r| &r.session).ok_or(&new);
    plan_session(current, user.as_ref(), request, &key(), &CodePolicy::SIGN_IN, &login_ui(), now)
        .expect("the rules allow the request")
}

fn write_of(plan: SessionPlan) -> SessionDecision {
    match plan {
        SessionPlan::Write(decision) => *decision,
        SessionPlan::WrongCode { .. } => panic!("a write, not a wrong code"),
    }
}

async fn session(store: &dyn Store, id: &str) -> Option<SessionRead> {
    store.load_session(&sid(id)).await.expect("readable")
}

async fn session_event_types(store: &dyn Store, id: &str) -> Vec<(u64, String)> {
    let recorded = store.events_of(EventStream::Session(&sid(id))).await.expect("the audit log is readable");
    recorded.into_iter().map(|e| (e.sequence, e.event_type)).collect()
}

/// Alice with one verified authenticator, and session `s1` checked for her with a sign-in
/// code `123456` pending for it; returns the session as stored.
async fn challenged_session(store: &dyn Store) -> Session {
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;
    let request = session_request(Some("alice"), None, Some("123456"), "t1");
    let decision = write_of(decide_session(store, "s1", &request, at(2)).await);
    store.apply_session(&decision).await.expect("created");
    session(store, "s1").await.expect("stored").session
}

pub async fn a_session_is_stored_with_its_challenge_and_numbered_events(f: Fixture) {
    let store = f.store.as_ref();
    let stored = challenged_session(store).await;

    let read = session(store, "s1").await.expect("stored");
    assert_eq!(read.user.as_ref().map(|u| u.user.id.as_str()), Some("alice"), "read with its user");
    assert_eq!(read.user.as_ref().map(|u| u.otp_sms.len()), Some(1));
    let challenge = stored.challenge.as_ref().expect("a pending challenge");
    assert_eq!(challenge.authenticator, oid("a1"));
    assert!(challenge.code.hash.matches(&key().hash_sign_in(&sid("s1"), &oid("a1"), &code("123456"))));
    assert_eq!(challenge.code.expires_at, at(2) + CodePolicy::SIGN_IN.ttl);
    assert!(stored.token.admits(&SessionToken::new("t1")));
    assert_eq!(
        session_event_types(store, "s1").await,
        [
            (1, "session.added".to_owned()),
            (2, "session.user.checked".to_owned()),
            (3, "session.otp.sms.challenged".to_owned()),
            (4, "session.token.set".to_owned()),
        ]
    );
    assert_eq!(stored.sequence, 4);

    let mut metadata = session_request(None, None, None, "t2");
    metadata.metadata.insert("k".to_owned(), vec![0, 1, 255]);
    store.apply_session(&write_of(decide_session(store, "s1", &metadata, at(3)).await)).await.expect("applied");
    let after = session(store, "s1").await.expect("stored").session;
    assert_eq!(after.metadata.get("k"), Some(&vec![0, 1, 255]));
    assert_eq!(after.challenge, stored.challenge, "a write that keeps the challenge keeps it");
    assert!(after.token.admits(&SessionToken::new("t2")) && !after.token.admits(&SessionToken::new("t1")));
}

pub async fn a_session_decision_made_on_another_version_is_refused(f: Fixture) {
    let store = f.store.as_ref();
    challenged_session(store).await;
    let first = write_of(decide_session(store, "s1", &session_request(None, None, None, "t2"), at(3)).await);
    let second = write_of(decide_session(store, "s1", &session_request(None, None, None, "t3"), at(3)).await);

    store.apply_session(&first).await.expect("the first lands");
    let refused = store.apply_session(&second).await;

    assert!(matches!(refused, Err(WriteError::Conflict)), "{refused:?}");
    let token = session(store, "s1").await.expect("stored").session.token;
    assert!(token.admits(&SessionToken::new("t2")));

    let taken = write_of(decide_session(store, "fresh", &session_request(None, None, None, "t9"), at(4)).await);
    store.apply_session(&taken).await.expect("created");
    let again = store.apply_session(&taken).await;
    assert!(matches!(again, Err(WriteError::Conflict)), "an id taken: {again:?}");
}

pub async fn a_session_decision_holding_the_user_of_another_organization_is_refused(f: Fixture) {
    let store = f.store.as_ref();
    let stored = challenged_session(store).await;
    let mut check =
        write_of(decide_session(store, "s1", &session_request(None, Some("123456"), None, "t2"), at(3)).await);
    let held = check.holds.as_mut().expect("a code check holds the user");
    held.org = OrgId::new("org-b").expect("valid");

    let refused = store.apply_session(&check).await;

    assert!(matches!(refused, Err(WriteError::Conflict)), "{refused:?}");
    assert_eq!(session(store, "s1").await.expect("stored").session, stored, "nothing changed");
}

pub async fn removing_the_challenged_authenticator_voids_the_challenge_and_refuses_a_check_decided_before(f: Fixture) {
    let store = f.store.as_ref();
    challenged_session(store).await;
    let check = write_of(decide_session(store, "s1", &session_request(None, Some("123456"), None, "t2"), at(3)).await);

    apply(store, &removal(&load(store, "alice").await, "a1", 4)).await;
    let late = store.apply_session(&check).await;

    assert!(matches!(late, Err(WriteError::Conflict)), "a check decided before the removal: {late:?}");
    let read = session(store, "s1").await.expect("the session stays");
    assert_eq!(read.session.challenge, None, "the removal voided the challenge");
    assert_eq!(read.session.otp_sms, None);
}

pub async fn of_many_concurrent_sign_in_tries_at_most_the_allowed_are_taken(f: Fixture) {
    let store = f.store.as_ref();
    let stored = challenged_session(store).await;
    let code = Arc::new(stored.challenge.expect("a pending challenge").code);
    let max = CodePolicy::SIGN_IN.max_attempts;

    let attempts = (0..20).map(|_| {
        let (store, code) = (f.store.clone(), code.clone());
        tokio::spawn(async move { store.take_sign_in_try(&sid("s1"), &code, max, &unlimited(&uid("alice"))).await })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("the task ran").expect("the store answers"))
        .collect();

    let mut taken: Vec<u32> = results.iter().filter_map(taken_tries).collect();
    taken.sort_unstable();
    assert_eq!(taken, (1..=max).collect::<Vec<_>>(), "each try counted once, never more than {max}: {results:?}");
    let challenge = session(store, "s1").await.expect("stored").session.challenge.expect("still pending");
    assert_eq!(challenge.code.failed_attempts, max);
    let mut other = (*code).clone();
    other.hash = key().hash(&oid("a1"), &VerificationCode::parse("123456").expect("digits"));
    other.failed_attempts = 0;
    let another = store.take_sign_in_try(&sid("s1"), &other, 99, &unlimited(&uid("alice"))).await.expect("answers");
    assert_eq!(another, TryTaken::Gone, "another challenge");
}

pub async fn a_users_sessions_are_listed_with_their_versions(f: Fixture) {
    let store = f.store.as_ref();
    let stored = challenged_session(store).await;
    create(store, "bob", 0).await;

    let alices = store.sessions_of(&uid("alice")).await.expect("readable");
    let bobs = store.sessions_of(&uid("bob")).await.expect("readable");

    assert_eq!(alices, [UserSession { id: sid("s1"), version: stored.version() }]);
    assert_eq!(bobs, [], "bob holds none");
}

pub async fn deleting_a_user_ends_its_sessions_each_with_its_event(f: Fixture) {
    let store = f.store.as_ref();
    let stored = challenged_session(store).await;
    let snapshot = load(store, "alice").await;
    let sessions = store.sessions_of(&uid("alice")).await.expect("readable");

    apply(store, &deletion_ending(&snapshot, &sessions, 5)).await;

    assert_eq!(session(store, "s1").await, None);
    let recorded = store.events_of(EventStream::Session(&sid("s1"))).await.expect("readable");
    let last = recorded.last().expect("the session's events");
    assert_eq!(
        (last.sequence, last.event_type.as_str(), last.creator.as_str(), last.created_at),
        (stored.sequence + 1, "session.terminated", "admin", at(5)),
    );
}

pub async fn a_deletion_that_does_not_end_every_session_as_read_is_refused_and_changes_nothing(f: Fixture) {
    let store = f.store.as_ref();
    let stored = challenged_session(store).await;
    let snapshot = load(store, "alice").await;
    let moved_on =
        UserSession { id: sid("s1"), version: Version { sequence: stored.sequence + 1, ..stored.version() } };

    let missing = store.apply(&deletion_ending(&snapshot, &[], 5)).await;
    let stale = store.apply(&deletion_ending(&snapshot, &[moved_on], 5)).await;

    assert!(matches!(missing, Err(WriteError::Conflict)), "a session it does not end: {missing:?}");
    assert!(matches!(stale, Err(WriteError::Conflict)), "a session at another version: {stale:?}");
    assert_eq!(load(store, "alice").await, snapshot, "the user stays as it was");
    assert_eq!(session(store, "s1").await.map(|read| read.session), Some(stored.clone()), "and its session");
    assert_eq!(session_event_types(store, "s1").await.len(), usize::try_from(stored.sequence).expect("small"));
}

pub async fn a_terminated_session_is_gone_and_its_last_event_says_so(f: Fixture) {
    let store = f.store.as_ref();
    let stored = challenged_session(store).await;
    let termination = plan_termination(&stored, &login_ui(), at(3));

    store.end_session(&termination).await.expect("ended");
    let twice = store.end_session(&termination).await;

    assert!(matches!(twice, Err(WriteError::Conflict)), "{twice:?}");
    assert_eq!(session(store, "s1").await, None);
    let types = session_event_types(store, "s1").await;
    assert_eq!(types.last(), Some(&(5, "session.terminated".to_owned())));
}

// ----- login policies and the notice outbox ----------------------------------------------

pub async fn a_policy_is_set_from_the_version_read_with_its_events_and_a_stale_set_is_refused(f: Fixture) {
    let store = f.store.as_ref();
    let org = Scope::Org(org_a());
    assert_eq!(policies(store).await, StoredPolicies::default(), "none is stored at first");

    set_policy(store, &Scope::Instance, notifying(), 1).await;
    let strict = LoginPolicy::new(true, TimeDelta::minutes(5), false).expect("valid");
    set_policy(store, &org, strict, 2).await;
    let before = policies(store).await;
    set_policy(store, &org, LoginPolicy::default(), 3).await;

    let stored = policies(store).await;
    let (own, default) = (stored.org.expect("the org's"), stored.instance.expect("the default"));
    assert_eq!(
        (own.policy, own.version, own.created),
        (LoginPolicy::default(), Version { sequence: 2, changed: at(3) }, at(2))
    );
    assert_eq!((default.policy, default.version.sequence), (notifying(), 1));
    assert_eq!(store.load_policies(None).await.expect("readable").org, None, "no organization asked, none answered");
    let org_events: Vec<_> = store
        .events_of(EventStream::Policy(&org))
        .await
        .expect("readable")
        .into_iter()
        .map(|e| (e.sequence, e.event_type, e.payload["forceMfa"].clone(), e.creator))
        .collect();
    assert_eq!(
        org_events,
        [
            (1, "org.policy.login.added".to_owned(), serde_json::json!(true), "admin".to_owned()),
            (2, "org.policy.login.changed".to_owned(), serde_json::json!(false), "admin".to_owned()),
        ]
    );
    let default_events = store.events_of(EventStream::Policy(&Scope::Instance)).await.expect("readable");
    assert_eq!(default_events.len(), 1);
    assert_eq!(default_events[0].event_type, "instance.policy.login.added");

    // A change decided on the version before the last one is refused and writes nothing.
    let stale =
        plan_policy_change(&admin(), &org, read_of(&before), notifying(), at(4)).expect("allowed").expect("a change");
    assert!(matches!(store.apply_policy(&stale).await, Err(WriteError::Conflict)));
    // So is a first policy for a scope that has one.
    let first_again = plan_policy_change(&admin(), &org, PolicyRead::default(), notifying(), at(4))
        .expect("allowed")
        .expect("a change");
    assert!(matches!(store.apply_policy(&first_again).await, Err(WriteError::Conflict)));
    assert_eq!(policies(store).await.org.map(|p| p.version.sequence), Some(2));
    assert_eq!(store.events_of(EventStream::Policy(&org)).await.expect("readable").len(), 2);
}

pub async fn a_removal_decided_on_a_policy_that_changed_since_is_refused_and_changes_nothing(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;
    let decided = removal_under(&load(store, "alice").await, "a1", 3, &in_force(store).await);

    // Another writer makes the instance default force MFA: the removal was not decided on it.
    set_policy(store, &Scope::Instance, LoginPolicy { force_mfa: true, ..LoginPolicy::default() }, 2).await;

    assert!(matches!(store.apply(&decided).await, Err(WriteError::Conflict)));
    assert_eq!(load(store, "alice").await.otp_sms.len(), 1, "nothing removed");
    let redecided = removal_under(&load(store, "alice").await, "a1", 3, &in_force(store).await);
    apply(store, &redecided).await;
    assert!(load(store, "alice").await.otp_sms.is_empty());
}

pub async fn a_removal_with_a_notice_leaves_it_in_the_outbox_and_a_refused_one_leaves_none(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;
    add(store, "alice", "a2", "+41791234568", None, 2).await;
    set_policy(store, &Scope::Org(org_a()), notifying(), 3).await;
    let login = in_force(store).await;
    let snapshot = load(store, "alice").await;
    let first = removal_under(&snapshot, "a1", 4, &login);
    let raced = removal_under(&snapshot, "a2", 4, &login);

    apply(store, &first).await;
    assert!(matches!(store.apply(&raced).await, Err(WriteError::Conflict)), "decided on the version before");

    assert_eq!(store.pending_notices().await.expect("countable"), 1, "only the removal that landed left one");
    let claimed = store.claim_notices(at(4), at(5), 10).await.expect("claimed");
    assert_eq!(claimed.len(), 1);
    let notice = &claimed[0];
    assert_eq!(
        (
            notice.notice.id.as_str(),
            notice.notice.to.as_e164(),
            notice.notice.user.as_str(),
            notice.kind,
            notice.attempt
        ),
        (
            format!("alice/{}", snapshot.user.sequence + 1).as_str(),
            "+41791234567",
            "alice",
            NoticeKind::OtpSmsRemoved,
            1
        )
    );
    assert_eq!(notice.notice.created, at(4));
}

pub async fn a_claimed_notice_is_held_for_its_lease_tried_again_when_due_and_gone_once_finished(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;
    add(store, "alice", "a2", "+41791234568", None, 2).await;
    set_policy(store, &Scope::Org(org_a()), notifying(), 3).await;
    assert_eq!(store.oldest_notice().await.expect("readable"), None, "an empty outbox");
    apply(store, &removal_under(&load(store, "alice").await, "a1", 4, &in_force(store).await)).await;
    apply(store, &removal_under(&load(store, "alice").await, "a2", 5, &in_force(store).await)).await;
    assert_eq!(store.oldest_notice().await.expect("readable"), Some(at(4)), "the first written");
    assert_eq!(store.claim_notices(at(3), at(9), 10).await.expect("claimable"), [], "not due before it was written");

    // One claim takes the oldest; the other waits for the next.
    let first = store.claim_notices(at(6), at(10), 1).await.expect("claimed");
    assert_eq!(first.iter().map(|c| c.notice.to.as_e164()).collect::<Vec<_>>(), ["+41791234567"]);
    let second = store.claim_notices(at(6), at(10), 10).await.expect("claimed");
    assert_eq!(
        second.iter().map(|c| c.notice.to.as_e164()).collect::<Vec<_>>(),
        ["+41791234568"],
        "held ones are skipped"
    );

    // A worker that died mid-send: its notice comes back once the lease runs out, as a new try.
    assert_eq!(store.claim_notices(at(9), at(20), 10).await.expect("claimable"), [], "still held");
    let again = store.claim_notices(at(10), at(20), 10).await.expect("claimed");
    assert_eq!(again.iter().map(|c| c.attempt).collect::<Vec<_>>(), [2, 2]);

    // The dead worker's late report of its try changes nothing; the live claim's does.
    let a1 = &again[0].notice.id;
    store.finish_notice(a1, 1).await.expect("finished");
    assert_eq!(store.pending_notices().await.expect("countable"), 2);
    store.finish_notice(a1, 2).await.expect("finished");
    assert_eq!(store.pending_notices().await.expect("countable"), 1);
    assert_eq!(store.oldest_notice().await.expect("readable"), Some(at(5)), "the one left, claims or not");

    // A failed try is due again when asked, not before.
    let a2 = &again[1].notice.id;
    store.retry_notice(a2, 2, at(30)).await.expect("put back");
    assert_eq!(store.claim_notices(at(29), at(40), 10).await.expect("claimable"), []);
    let retried = store.claim_notices(at(30), at(40), 10).await.expect("claimed");
    assert_eq!(retried.iter().map(|c| (c.notice.id.as_str(), c.attempt)).collect::<Vec<_>>(), [(a2.as_str(), 3)]);
    store.finish_notice(a2, 3).await.expect("finished");
    assert_eq!(store.pending_notices().await.expect("countable"), 0);
    assert_eq!(store.oldest_notice().await.expect("readable"), None);
}

pub async fn a_deletion_leaves_a_notice_per_verified_number_and_one_decided_on_a_changed_policy_is_refused(f: Fixture) {
    let store = f.store.as_ref();
    create(store, "alice", 0).await;
    add(store, "alice", "a1", "+41791234567", None, 1).await;
    add(store, "alice", "a2", "+41791234568", None, 2).await;
    set_policy(store, &Scope::Org(org_a()), notifying(), 3).await;
    let decided = deletion_under(&load(store, "alice").await, 4, &in_force(store).await);

    // The default changes meanwhile: the deletion was not decided on it.
    set_policy(store, &Scope::Instance, LoginPolicy { force_mfa: true, ..LoginPolicy::default() }, 4).await;
    assert!(matches!(store.apply(&decided).await, Err(WriteError::Conflict)));
    assert_eq!(store.pending_notices().await.expect("countable"), 0, "a refused deletion leaves none");
    assert_eq!(load(store, "alice").await.otp_sms.len(), 2, "nothing deleted");

    let snapshot = load(store, "alice").await;
    apply(store, &deletion_under(&snapshot, 5, &in_force(store).await)).await;

    assert!(store.load(&uid("alice")).await.expect("readable").is_none());
    let mut claimed: Vec<_> = store
        .claim_notices(at(5), at(6), 10)
        .await
        .expect("claimed")
        .into_iter()
        .map(|c| (c.notice.id, c.notice.to.as_e164().to_owned(), c.notice.user.as_str().to_owned(), c.kind))
        .collect();
    claimed.sort_by(|a, b| a.0.cmp(&b.0));
    let sequence = snapshot.user.sequence + 1;
    assert_eq!(
        claimed,
        [
            (format!("alice/{sequence}/a1"), "+41791234567".to_owned(), "alice".to_owned(), NoticeKind::OtpSmsRemoved),
            (format!("alice/{sequence}/a2"), "+41791234568".to_owned(), "alice".to_owned(), NoticeKind::OtpSmsRemoved),
        ]
    );
}

pub async fn a_users_budget_of_failed_checks_holds_across_its_codes_under_concurrency_until_its_window_passes(
    f: Fixture,
) {
    let store = f.store.as_ref();
    let challenge = challenged_session(store).await.challenge.expect("a pending challenge").code;
    add(store, "alice", "a2", "+41791234568", Some("123456"), 2).await;
    add(store, "alice", "a3", "+41791234569", Some("123456"), 2).await;
    let registration = pending_code(store, "alice", "a2").await.expect("pending");
    let budget = CheckBudget { max_failures: 6, window: TimeDelta::minutes(15) };
    let charge = |now| CheckCharge { user: &ALICE, budget, now };

    // Ten tries of the sign-in code and ten of a registration code, all at once: the codes
    // allow five each, the user's budget six in all.
    let tries_of = |n: usize, sign_in: bool| {
        let (store, challenge, registration) = (f.store.clone(), challenge.clone(), registration.clone());
        tokio::spawn(async move {
            let charge = CheckCharge { user: &ALICE, budget, now: at(3) };
            let taken = if sign_in {
                store.take_sign_in_try(&sid("s1"), &challenge, 5, &charge).await
            } else {
                store.take_code_try(&oid("a2"), &registration, 5, &charge).await
            };
            (n, taken.expect("the store answers"))
        })
    };
    let answers: Vec<TryTaken> = futures::future::join_all((0..20).map(|n| tries_of(n, n % 2 == 0)))
        .await
        .into_iter()
        .map(|r| r.expect("ran").1)
        .collect();
    let taken = answers.iter().filter(|a| matches!(a, TryTaken::Taken(_))).count();
    assert_eq!(taken, 6, "six units in the budget, whatever the codes allow: {answers:?}");
    assert!(
        answers.iter().all(|a| matches!(a, TryTaken::Taken(_) | TryTaken::Locked { .. } | TryTaken::Gone)),
        "{answers:?}"
    );

    // Spent: a third code finds it locked, from the window's start.
    let third = pending_code(store, "alice", "a3").await.expect("pending");
    let locked = store.take_code_try(&oid("a3"), &third, 5, &charge(at(4))).await.expect("answers");
    assert_eq!(locked, TryTaken::Locked { since: at(3) });
    assert_eq!(pending_code(store, "alice", "a3").await.map(|c| c.failed_attempts), Some(0), "no try taken");

    // A right code's unit given back is one more check; then it is spent again.
    store.forgive_code_try(&ALICE, at(4)).await.expect("given back");
    assert_eq!(store.take_code_try(&oid("a3"), &third, 5, &charge(at(4))).await.expect("answers"), TryTaken::Taken(1));
    let spent = store.take_code_try(&oid("a3"), &third, 5, &charge(at(4))).await.expect("answers");
    assert!(matches!(spent, TryTaken::Locked { .. }), "{spent:?}");
    store.forgive_sign_in_try(&ALICE, at(4)).await.expect("given back");
    let third = pending_code(store, "alice", "a3").await.expect("pending");
    assert_eq!(store.take_code_try(&oid("a3"), &third, 5, &charge(at(4))).await.expect("answers"), TryTaken::Taken(2));

    // Once the window has passed, a new one starts with the next check; giving back a unit
    // charged in the old one leaves the new one's count as it is.
    let third = pending_code(store, "alice", "a3").await.expect("pending");
    let later = at(3) + TimeDelta::minutes(15);
    let taken = store.take_code_try(&oid("a3"), &third, 5, &charge(later)).await;
    assert_eq!(taken.expect("answers"), TryTaken::Taken(3));
    store.forgive_code_try(&ALICE, at(4)).await.expect("answers");
    add(store, "alice", "a4", "+41791234571", Some("123456"), 20).await;
    let fourth = pending_code(store, "alice", "a4").await.expect("pending");
    for n in 1..=5 {
        let taken = store.take_code_try(&oid("a4"), &fourth, 5, &charge(later)).await.expect("answers");
        assert_eq!(taken, TryTaken::Taken(n), "the new window's unit {}", n + 1);
    }
    let third = pending_code(store, "alice", "a3").await.expect("pending");
    let spent = store.take_code_try(&oid("a3"), &third, 5, &charge(later)).await.expect("answers");
    assert_eq!(spent, TryTaken::Locked { since: later }, "six in the new window, none given back by the old");
    // Another user's budget is its own.
    create(store, "bob", 5).await;
    add(store, "bob", "b1", "+41791234570", Some("123456"), 6).await;
    let bobs = pending_code(store, "bob", "b1").await.expect("pending");
    let bob = uid("bob");
    let charged = store.take_code_try(&oid("b1"), &bobs, 5, &CheckCharge { user: &bob, budget, now: at(4) }).await;
    assert_eq!(charged.expect("answers"), TryTaken::Taken(1));
}
