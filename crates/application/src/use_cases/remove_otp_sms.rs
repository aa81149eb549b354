//! RemoveOTPSMSAuthenticator: the headline operation.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{
    Caller, Change, OtpSmsId, ProtectionRefusal, RemovalPolicy, RemovalRefusal, UserId, plan_removal,
};
use tokio::sync::Notify;

use super::login_policy::PoliciesInForce;
use super::{Ports, Rules};
use crate::ports::{Clock, SnapshotCache, UserReader, UserWriter};
use crate::scope::{InstanceContext, RequestScope};
use crate::tasks::keep_after;
use crate::write_pattern::{Details, Reads, WriteFailure, landed, write_failure_conversions};
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveOtpSmsCommand {
    pub scope: RequestScope,
    pub user: UserId,
    pub otp_sms: OtpSmsId,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveOtpSmsError {
    #[error("the user has no such OTP SMS authenticator")]
    NotFound,
    /// The caller's own verified authenticator: its last while the login policy forces
    /// MFA, or without the step-up the policy asks.
    #[error(transparent)]
    Protection(#[from] ProtectionRefusal),
    /// The lookup, a user that kept changing under every decision, or the store.
    #[error(transparent)]
    Write(#[from] WriteFailure),
}

write_failure_conversions!(RemoveOtpSmsError);

impl From<RemoveOtpSmsError> for Failure {
    fn from(error: RemoveOtpSmsError) -> Self {
        match error {
            RemoveOtpSmsError::NotFound => otp_sms_not_found(),
            RemoveOtpSmsError::Protection(refusal) => refusal.into(),
            RemoveOtpSmsError::Write(e) => e.into(),
        }
    }
}

impl From<RemovalRefusal> for RemoveOtpSmsError {
    fn from(refusal: RemovalRefusal) -> Self {
        match refusal {
            RemovalRefusal::Access(e) => Self::Write(e.into()),
            RemovalRefusal::AuthenticatorNotFound => Self::NotFound,
            RemovalRefusal::Protection(refusal) => Self::Protection(refusal),
        }
    }
}

pub(crate) fn otp_sms_not_found() -> Failure {
    Failure::new(ErrorKind::NotFound, "OTPSMS-NotFound", "OTP SMS authenticator not found")
}

/// Removes an OTP SMS authenticator from a user, for good.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait RemoveOtpSms: Send + Sync {
    /// # Errors
    /// [`RemoveOtpSmsError::Write`] for the scope and access rules,
    /// [`RemoveOtpSmsError::NotFound`] when the user holds no such authenticator (also
    /// when a concurrent removal won), [`RemoveOtpSmsError::Write`] also when the user
    /// changed under every decision and when the store fails.
    async fn remove_otp_sms(&self, caller: &Caller, command: RemoveOtpSmsCommand)
    -> Result<Details, RemoveOtpSmsError>;
}

pub struct RemoveOtpSmsService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn UserWriter>,
    /// When given, the first decision is made on the cached snapshot: one round trip to
    /// the store (the guarded write) instead of two when it is current.
    pub cache: Option<Arc<dyn SnapshotCache>>,
    pub clock: Arc<dyn Clock>,
    pub policy: RemovalPolicy,
    /// The login policies in force, as the removal rules read them.
    pub login_policies: Arc<PoliciesInForce>,
    /// Woken when a removal left a notice in the outbox, so that the notice worker sends
    /// it now rather than at its next poll.
    pub notices: Arc<Notify>,
}

impl RemoveOtpSmsService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules, login_policies: Arc<PoliciesInForce>) -> Self {
        Self {
            context: rules.context.clone(),
            users: ports.users.clone(),
            store: ports.writer.clone(),
            cache: ports.cache.clone(),
            clock: ports.clock.clone(),
            policy: rules.removal,
            login_policies,
            notices: ports.notices.clone(),
        }
    }
}

#[async_trait]
impl RemoveOtpSms for RemoveOtpSmsService {
    #[tracing::instrument(
        name = "remove_otp_sms",
        level = "debug",
        skip_all,
        fields(actor = %caller.user_id, user_id = %command.user, otp_sms_id = %command.otp_sms),
        err(level = "debug", Display)
    )]
    async fn remove_otp_sms(
        &self,
        caller: &Caller,
        command: RemoveOtpSmsCommand,
    ) -> Result<Details, RemoveOtpSmsError> {
        let cache = self.cache.as_deref();
        let mut reads =
            Reads::start(&self.context, self.users.as_ref(), cache, caller, &command.scope, &command.user).await?;
        while let Some(read) = reads.next().await? {
            // The first decision may use the policy kept in this process; every later one
            // (after a lost race or a refusal decided on kept state) reads it afresh.
            let (login, policy_fresh) = self.login_policies.for_decision(read.snapshot.as_ref(), read.first).await?;
            let planned = plan_removal(
                caller,
                &command.user,
                read.snapshot.as_ref(),
                &command.otp_sms,
                &self.policy,
                &login,
                self.clock.now(),
            );
            let Some((snapshot, decision)) = read.decided(planned, policy_fresh)? else { continue };
            if landed(self.store.apply(&decision).await)? {
                if matches!(decision.change, Change::RemoveOtpSms { notice: Some(_), .. }) {
                    self.notices.notify_one();
                }
                keep_after(self.cache.as_ref(), &snapshot, &decision);
                return Ok(Details::of_write(&snapshot.user, &decision.transition));
            }
        }
        Err(WriteFailure::Contended.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockPolicyStore, StoredPolicies};
    use crate::ports::{MockUserReader, MockUserWriter, Unexpected, WriteError};
    use crate::use_cases::fixtures::*;
    use crate::write_pattern::MAX_DECISIONS;
    use crate::write_pattern::UserLookupError;
    use factors_domain::{
        AccessRefusal, Change, EventKind, LoginPolicy, Permission, PolicyGuard, Scope, StoredPolicy, Transition,
        UserSnapshot, Version,
    };

    fn command(user: &str, otp: &str) -> RemoveOtpSmsCommand {
        RemoveOtpSmsCommand { scope: RequestScope::default(), user: user_id(user), otp_sms: otp_id(otp) }
    }

    fn service(users: Arc<MockUserReader>, store: MockUserWriter) -> RemoveOtpSmsService {
        let mut policies = MockPolicyStore::new();
        policies.expect_load_policies().returning(|_| Ok(StoredPolicies::default()));
        with_policies(users, store, policies)
    }

    fn with_policies(
        users: Arc<MockUserReader>,
        store: MockUserWriter,
        policies: MockPolicyStore,
    ) -> RemoveOtpSmsService {
        RemoveOtpSmsService {
            context: context(),
            users,
            store: Arc::new(store),
            cache: None,
            clock: clock(at(31)),
            policy: RemovalPolicy::default(),
            login_policies: Arc::new(PoliciesInForce::new(Arc::new(policies))),
            notices: Arc::new(Notify::new()),
        }
    }

    fn org_a_policy(policy: LoginPolicy, sequence: u64) -> StoredPolicies {
        let stored = StoredPolicy {
            scope: Scope::Org(org("org-a")),
            policy,
            version: Version { sequence, changed: at(1) },
            created: at(1),
        };
        StoredPolicies { org: Some(stored), instance: None }
    }

    fn forcing_mfa() -> LoginPolicy {
        LoginPolicy { force_mfa: true, ..LoginPolicy::default() }
    }

    fn with_cache(service: RemoveOtpSmsService, cache: Arc<RecordingCache>) -> RemoveOtpSmsService {
        RemoveOtpSmsService { cache: Some(cache), ..service }
    }

    fn alice_with_a1() -> UserSnapshot {
        alice_holding(vec![authenticator("a1", "alice")])
    }

    /// Alice as another writer left her: one version on, without a1.
    fn alice_after_a_concurrent_removal() -> UserSnapshot {
        let mut moved = alice_holding(vec![]);
        moved.user.sequence += 1;
        moved.user.changed = at(30);
        moved
    }

    fn details() -> Details {
        Details { id: user_id("alice"), created: at(0), changed: at(31), owner: org("org-a") }
    }

    fn removes_a1_from(version: u64) -> impl Fn(&factors_domain::Decision) -> bool {
        move |decision| {
            decision.transition.from.sequence == version
                && matches!(&decision.change, Change::RemoveOtpSms { authenticator, .. } if *authenticator == otp_id("a1"))
        }
    }

    #[tokio::test]
    async fn removing_its_own_authenticator_writes_one_guarded_removal_with_its_event() {
        let alice = alice_with_a1();
        let expected_transition = Transition::next(&alice.user, at(31));
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(move |decision| {
                decision.transition == expected_transition
                    && matches!(&decision.change, Change::RemoveOtpSms { authenticator, .. } if *authenticator == otp_id("a1"))
                    && decision.event.actor.as_str() == "alice"
                    && decision.event.at == at(31)
                    && matches!(&decision.event.kind, EventKind::OtpSmsRemoved { masked_phone, .. } if masked_phone == "+41******567")
            })
            .times(1)
            .returning(|_| Ok(()));
        let service = service(users(vec![alice]), store);

        let result = service.remove_otp_sms(&caller("alice", &[]), command("alice", "a1")).await;

        assert_eq!(result.expect("removed"), details());
    }

    #[tokio::test]
    async fn a_plain_user_acting_on_someone_else_is_denied_before_any_lookup() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        let cache = RecordingCache::holding(alice_with_a1());
        let service = with_cache(service(no_lookup(), store), cache);

        let result = service.remove_otp_sms(&caller("bob", &[]), command("alice", "a1")).await;

        assert!(matches!(
            result,
            Err(RemoveOtpSmsError::Write(WriteFailure::Lookup(UserLookupError::Access(
                AccessRefusal::PermissionDenied
            ))))
        ));
    }

    #[tokio::test]
    async fn refusals_follow_the_contract_and_write_nothing() {
        let cases: Vec<(Caller, &str, &str, ErrorKind, &str)> = vec![
            (org_admin(), "ghost", "a1", ErrorKind::NotFound, "USER-NotFound"),
            (
                caller("other", &[(Permission::UserWrite, Some("org-b"))]),
                "alice",
                "a1",
                ErrorKind::NotFound,
                "USER-NotFound",
            ),
            (
                caller("reader", &[(Permission::UserRead, Some("org-a"))]),
                "alice",
                "a1",
                ErrorKind::PermissionDenied,
                "AUTHZ-PermissionDenied",
            ),
            (org_admin(), "alice", "a2", ErrorKind::NotFound, "OTPSMS-NotFound"),
            (caller("alice", &[]), "alice", "a9", ErrorKind::NotFound, "OTPSMS-NotFound"),
        ];
        for (who, user_arg, otp, kind, id) in cases {
            let mut store = MockUserWriter::new();
            store.expect_apply().never();
            let service = service(users(vec![alice_with_a1()]), store);

            let failure =
                Failure::from(service.remove_otp_sms(&who, command(user_arg, otp)).await.expect_err("refused"));

            assert_eq!((failure.kind, failure.id), (kind, id), "{} on {user_arg}/{otp}", who.user_id);
        }
    }

    #[tokio::test]
    async fn an_organization_selector_the_user_is_not_in_answers_not_found() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        let service = service(users(vec![alice_with_a1()]), store);
        let mut cmd = command("alice", "a1");
        cmd.scope.organization = Some(crate::OrgSelector::Id(org("org-b")));

        let failure = Failure::from(service.remove_otp_sms(&org_admin(), cmd).await.expect_err("refused"));

        assert_eq!(failure.id, "USER-NotFound");
    }

    #[tokio::test]
    async fn losing_a_race_reads_the_store_again_and_answers_not_found_when_the_winner_removed_it() {
        let mut reads = mockall::Sequence::new();
        let mut users = MockUserReader::new();
        users.expect_load().times(1).in_sequence(&mut reads).returning(|_| Ok(Some(alice_with_a1())));
        users
            .expect_load()
            .times(1)
            .in_sequence(&mut reads)
            .returning(|_| Ok(Some(alice_after_a_concurrent_removal())));
        let mut store = MockUserWriter::new();
        store.expect_apply().times(1).returning(|_| Err(WriteError::Conflict));
        let service = service(Arc::new(users), store);

        let result = service.remove_otp_sms(&org_admin(), command("alice", "a1")).await;

        assert!(matches!(result, Err(RemoveOtpSmsError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_removal_decided_on_a_stale_cached_state_is_refused_by_the_store_and_decided_again_on_its_state() {
        let mut stale = alice_with_a1();
        stale.user.sequence -= 1;
        let current = alice_with_a1();
        let current_version = current.user.sequence;
        let mut store = MockUserWriter::new();
        let mut writes = mockall::Sequence::new();
        store
            .expect_apply()
            .withf(removes_a1_from(current_version - 1))
            .times(1)
            .in_sequence(&mut writes)
            .returning(|_| Err(WriteError::Conflict));
        store
            .expect_apply()
            .withf(removes_a1_from(current_version))
            .times(1)
            .in_sequence(&mut writes)
            .returning(|_| Ok(()));
        let service = with_cache(service(users(vec![current]), store), RecordingCache::holding(stale));

        let result = service.remove_otp_sms(&org_admin(), command("alice", "a1")).await;

        assert_eq!(result.expect("removed"), details());
    }

    #[tokio::test]
    async fn a_refusal_decided_on_the_cached_state_is_decided_again_on_the_stores() {
        // The cache has not seen a1 added yet; the store has.
        let mut behind = alice_holding(vec![]);
        behind.user.sequence -= 1;
        let mut store = MockUserWriter::new();
        store.expect_apply().withf(removes_a1_from(alice_with_a1().user.sequence)).times(1).returning(|_| Ok(()));
        let service = with_cache(service(users(vec![alice_with_a1()]), store), RecordingCache::holding(behind));

        let result = service.remove_otp_sms(&org_admin(), command("alice", "a1")).await;

        assert_eq!(result.expect("removed"), details());
    }

    #[tokio::test]
    async fn a_current_cached_state_decides_without_reading_the_store_and_the_state_left_is_kept_before_the_answer() {
        let mut users = MockUserReader::new();
        users.expect_load().never();
        let mut store = MockUserWriter::new();
        store.expect_apply().times(1).returning(|_| Ok(()));
        let cache = RecordingCache::holding(alice_with_a1());
        let service = with_cache(service(Arc::new(users), store), cache.clone());

        let result = service.remove_otp_sms(&org_admin(), command("alice", "a1")).await;

        assert_eq!(result.expect("removed"), details());
        // Kept by the time the answer is given: the client's next request finds it.
        let kept = cache.kept.lock().expect("lock").pop().expect("the state left is kept");
        assert_eq!((kept.user.sequence, kept.otp_sms.len()), (alice_with_a1().user.sequence + 1, 0));
    }

    #[tokio::test]
    async fn a_user_that_changes_under_every_decision_answers_aborted_after_a_bounded_number_of_tries() {
        let mut store = MockUserWriter::new();
        store.expect_apply().times(MAX_DECISIONS).returning(|_| Err(WriteError::Conflict));
        let service = service(users(vec![alice_with_a1()]), store);

        let failure =
            Failure::from(service.remove_otp_sms(&org_admin(), command("alice", "a1")).await.expect_err("contended"));

        assert_eq!((failure.kind, failure.id), (ErrorKind::Aborted, "USER-Contended"));
    }

    #[tokio::test]
    async fn a_store_failure_is_internal_and_keeps_its_cause_out_of_the_message() {
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .returning(|_| Err(WriteError::Unexpected(Unexpected(anyhow::anyhow!("connection reset")))));
        let service = service(users(vec![alice_with_a1()]), store);

        let failure =
            Failure::from(service.remove_otp_sms(&org_admin(), command("alice", "a1")).await.expect_err("fails"));

        assert_eq!((failure.kind, failure.message.as_ref()), (ErrorKind::Internal, "internal error"));
        assert!(failure.cause.is_some_and(|c| c.to_string().contains("connection reset")));
    }

    #[tokio::test]
    async fn a_user_may_not_remove_its_last_verified_factor_while_its_organization_forces_mfa() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        let mut policies = MockPolicyStore::new();
        policies.expect_load_policies().returning(|_| Ok(org_a_policy(forcing_mfa(), 2)));
        let service = with_policies(users(vec![alice_with_a1()]), store, policies);

        let failure = Failure::from(
            service.remove_otp_sms(&caller("alice", &[]), command("alice", "a1")).await.expect_err("refused"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::FailedPrecondition, "OTPSMS-LastFactor"));
    }

    #[tokio::test]
    async fn an_administrator_removes_a_last_factor_under_the_policys_guard_and_the_event_says_so() {
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(|decision| {
                matches!(
                    decision.change,
                    Change::RemoveOtpSms { guard: Some(PolicyGuard { org_sequence: 2, instance_sequence: 0 }), .. }
                ) && matches!(decision.event.kind, EventKind::OtpSmsRemoved { last_factor: true, .. })
            })
            .times(1)
            .returning(|_| Ok(()));
        let mut policies = MockPolicyStore::new();
        policies.expect_load_policies().returning(|_| Ok(org_a_policy(forcing_mfa(), 2)));
        let service = with_policies(users(vec![alice_with_a1()]), store, policies);

        let result = service.remove_otp_sms(&org_admin(), command("alice", "a1")).await;

        assert_eq!(result.expect("removed"), details());
    }

    #[tokio::test]
    async fn a_refusal_decided_on_a_kept_policy_is_decided_again_on_the_stores() {
        // This process kept "force MFA"; another replica has turned it off since.
        let mut policies = MockPolicyStore::new();
        let mut reads = mockall::Sequence::new();
        policies
            .expect_load_policies()
            .times(1)
            .in_sequence(&mut reads)
            .returning(|_| Ok(org_a_policy(forcing_mfa(), 2)));
        policies
            .expect_load_policies()
            .times(1)
            .in_sequence(&mut reads)
            .returning(|_| Ok(org_a_policy(LoginPolicy::default(), 3)));
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(|decision| {
                matches!(decision.change, Change::RemoveOtpSms { guard: Some(PolicyGuard { org_sequence: 3, .. }), .. })
            })
            .times(1)
            .returning(|_| Ok(()));
        let service = with_policies(users(vec![alice_with_a1()]), store, policies);
        let kept = service.login_policies.kept_or_read(&org("org-a")).await.expect("kept");
        assert!(kept.0.policy.force_mfa);

        let result = service.remove_otp_sms(&caller("alice", &[]), command("alice", "a1")).await;

        assert_eq!(result.expect("removed"), details());
    }

    #[tokio::test]
    async fn a_stale_sign_in_is_told_to_step_up_and_a_removal_with_a_notice_wakes_the_worker() {
        let step_up = LoginPolicy::new(false, chrono::TimeDelta::minutes(5), true).expect("valid");
        let mut policies = MockPolicyStore::new();
        policies.expect_load_policies().returning(move |_| Ok(org_a_policy(step_up, 1)));
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        let service = with_policies(users(vec![alice_with_a1()]), store, policies);
        let failure = Failure::from(
            service.remove_otp_sms(&caller("alice", &[]), command("alice", "a1")).await.expect_err("step-up"),
        );
        assert_eq!((failure.kind, failure.id), (ErrorKind::PermissionDenied, "AUTHZ-StepUpRequired"));
        assert!(failure.message.contains("within the last 300 seconds"), "{}", failure.message);

        let mut policies = MockPolicyStore::new();
        policies.expect_load_policies().returning(move |_| Ok(org_a_policy(step_up, 1)));
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(|decision| matches!(&decision.change, Change::RemoveOtpSms { notice: Some(n), .. } if n.to.as_e164() == "+41791234567"))
            .times(1)
            .returning(|_| Ok(()));
        let service = with_policies(users(vec![alice_with_a1()]), store, policies);
        let woken = service.notices.clone();
        let mut fresh_alice = caller("alice", &[]);
        fresh_alice.authentication = factors_domain::Authentication { methods: vec!["sms".into()], at: Some(at(30)) };

        service.remove_otp_sms(&fresh_alice, command("alice", "a1")).await.expect("removed");

        tokio::time::timeout(std::time::Duration::from_secs(1), woken.notified()).await.expect("the worker was woken");
    }
}
