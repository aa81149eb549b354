//! Shared arrangements for the use-case tests.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use factors_domain::{
    Caller, Contact, Grant, InstanceId, LoginPolicy, OrgId, OtpSmsAuthenticator, OtpSmsId, Permission, PhoneNumber,
    SchemaId, Scope, SmsBudgets, SmsCountries, StoredPolicy, User, UserData, UserId, UserSession, UserSnapshot,
    UserState, Version,
};

use crate::ports::{
    MockClock, MockPolicyStore, MockSecurityMetrics, MockSessionStore, MockUserReader, SnapshotCache, StoredPolicies,
};
use crate::scope::InstanceContext;
use crate::sms_guard::{GuardSettings, SmsGuard};
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
            .map(|(p, scope)| Grant { permission: *p, scope: scope.map_or(Scope::Instance, |o| Scope::Org(org(o))) })
            .collect(),
        authentication: Default::default(),
        origin: Default::default(),
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

/// A session store whose users hold exactly `sessions` each.
pub fn sessions_held(sessions: Vec<UserSession>) -> Arc<MockSessionStore> {
    let mut store = MockSessionStore::new();
    store.expect_sessions_of().returning(move |_| Ok(sessions.clone()));
    Arc::new(store)
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
/// An SMS guard that lets every region through and holds no breaker.
pub fn unguarded() -> Arc<SmsGuard> {
    guarded(SmsCountries::default())
}

/// An SMS guard of `countries`, without breakers.
pub fn guarded(countries: SmsCountries) -> Arc<SmsGuard> {
    let settings = GuardSettings { countries, budgets: SmsBudgets::OFF, breaker: None };
    // Without breakers, nothing is recorded.
    let mut events = MockPolicyStore::new();
    events.expect_record_breaker().never();
    Arc::new(SmsGuard::new(settings, Arc::new(events), "test#1".into(), clock(at(0)), no_metrics()))
}

pub fn no_metrics() -> Arc<MockSecurityMetrics> {
    let mut metrics = MockSecurityMetrics::new();
    metrics.expect_code_checks_locked().return_const(());
    metrics.expect_sms_region().return_const(());
    metrics.expect_sms_breaker().return_const(());
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
