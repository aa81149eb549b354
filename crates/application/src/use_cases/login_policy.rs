//! Login policies (our extension): GetLoginPolicy and SetLoginPolicy, and the policies in
//! force as the removal rules read them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_domain::{
    AccessRefusal, Caller, InstanceId, LoginPolicy, OrgId, PolicyInForce, PolicyRead, PolicyRefusal, PolicySource,
    ProtectionRefusal, Scope, StoredPolicy, UserSnapshot, may_read_policy, may_write_policy, plan_policy_change,
};

use super::{Ports, Rules};
use crate::ports::{Clock, PolicyStore, Unexpected, UserReader, WriteError};
use crate::write_pattern::MAX_DECISIONS;
use crate::{ErrorKind, Failure, InstanceContext};

#[cfg(feature = "mocks")]
use mockall::automock;

/// A policy as the API shows it: the one in force for the scope asked about, where it
/// comes from, and the stored version it is (none for the built-in default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyView {
    pub scope: Scope,
    pub policy: LoginPolicy,
    pub source: PolicySource,
    pub stored: Option<PolicyVersionView>,
}

/// The stored version of a policy: its number, when it was first set and last changed,
/// and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionView {
    pub sequence: u64,
    pub created: DateTime<Utc>,
    pub changed: DateTime<Utc>,
    pub owner: PolicyOwner,
}

/// Whose a stored policy is: the instance (its default) or one organization. An
/// organization that inherits the default shows the instance here, so a client sees
/// where to change what holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOwner {
    Instance(InstanceId),
    Org(OrgId),
}

impl PolicyView {
    /// The view of `scope`: an organization's own policy, else the instance default, else
    /// the built-in one.
    fn of(
        context: &InstanceContext,
        scope: Scope,
        org: Option<&StoredPolicy>,
        instance: Option<&StoredPolicy>,
    ) -> Self {
        let in_force = PolicyInForce::resolve(org, instance);
        let stored = org.or(instance).map(|p| PolicyVersionView {
            sequence: p.version.sequence,
            created: p.created,
            changed: p.version.changed,
            owner: match &p.scope {
                Scope::Instance => PolicyOwner::Instance(context.id.clone()),
                Scope::Org(org) => PolicyOwner::Org(org.clone()),
            },
        });
        Self { scope, policy: in_force.policy, source: in_force.source, stored }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginPolicyError {
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    /// A loosening of the policy the caller's own account is under, without the
    /// second-factor sign-in it asks.
    #[error(transparent)]
    Protection(#[from] ProtectionRefusal),
    #[error("the policy kept changing under every decision")]
    Contended,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<PolicyRefusal> for LoginPolicyError {
    fn from(refusal: PolicyRefusal) -> Self {
        match refusal {
            PolicyRefusal::Access(e) => Self::Access(e),
            PolicyRefusal::Protection(e) => Self::Protection(e),
        }
    }
}

impl From<LoginPolicyError> for Failure {
    fn from(error: LoginPolicyError) -> Self {
        match error {
            LoginPolicyError::Access(e) => e.into(),
            LoginPolicyError::Protection(e) => e.into(),
            LoginPolicyError::Contended => {
                Failure::new(ErrorKind::Aborted, "POLICY-Contended", "the policy changed concurrently; try again")
            }
            LoginPolicyError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// Reads and sets login policies.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait LoginPolicies: Send + Sync {
    /// The policy in force for `scope` (for an organization without its own: the
    /// instance default, or the built-in one).
    ///
    /// # Errors
    /// [`LoginPolicyError::Access`] without `policy.read` on the scope;
    /// [`LoginPolicyError::Unexpected`].
    async fn get_login_policy(&self, caller: &Caller, scope: Scope) -> Result<PolicyView, LoginPolicyError>;

    /// Sets `policy` for `scope`; setting the policy already stored writes nothing. A
    /// change that loosens the policy in force for the caller's own account is held to
    /// that account's protection; anyone's loosening is logged and its event names what
    /// it loosened.
    ///
    /// # Errors
    /// [`LoginPolicyError::Access`] without `policy.write` on the scope;
    /// [`LoginPolicyError::Protection`]; [`LoginPolicyError::Contended`];
    /// [`LoginPolicyError::Unexpected`].
    async fn set_login_policy(
        &self,
        caller: &Caller,
        scope: Scope,
        policy: LoginPolicy,
    ) -> Result<PolicyView, LoginPolicyError>;
}

pub struct LoginPolicyService {
    pub context: Arc<InstanceContext>,
    pub store: Arc<dyn PolicyStore>,
    pub in_force: Arc<PoliciesInForce>,
    /// Reads the caller's own account, which a loosening of its policy must not escape.
    pub users: Arc<dyn UserReader>,
    pub clock: Arc<dyn Clock>,
}

impl LoginPolicyService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules, in_force: Arc<PoliciesInForce>) -> Self {
        Self {
            context: rules.context.clone(),
            store: ports.policies.clone(),
            in_force,
            users: ports.users.clone(),
            clock: ports.clock.clone(),
        }
    }
}

#[async_trait]
impl LoginPolicies for LoginPolicyService {
    #[tracing::instrument(name = "get_login_policy", level = "debug", skip_all, fields(actor = %caller.user_id), err(level = "debug", Display))]
    async fn get_login_policy(&self, caller: &Caller, scope: Scope) -> Result<PolicyView, LoginPolicyError> {
        may_read_policy(caller, &scope)?;
        let stored = self.store.load_policies(org_of(&scope)).await?;
        Ok(PolicyView::of(&self.context, scope, stored.org.as_ref(), stored.instance.as_ref()))
    }

    #[tracing::instrument(name = "set_login_policy", level = "debug", skip_all, fields(actor = %caller.user_id), err(level = "debug", Display))]
    async fn set_login_policy(
        &self,
        caller: &Caller,
        scope: Scope,
        policy: LoginPolicy,
    ) -> Result<PolicyView, LoginPolicyError> {
        // Before anything is read: a caller that may not learns nothing, not even by timing.
        may_write_policy(caller, &scope)?;
        // The caller's own account (the user its token's `sub` names), when it holds a
        // verified factor: the policy it is under must not be loosened by a stolen token.
        let own = self.users.load(&caller.user_id).await?;
        let own_org = own.filter(|s| s.otp_sms.iter().any(|a| a.verified)).map(|s| s.user.org);
        for _ in 0..MAX_DECISIONS {
            // An organization's write reads that organization's policy; the default's, the
            // caller's own organization's (whether it inherits the default).
            let org = match &scope {
                Scope::Org(org) => Some(org),
                Scope::Instance => own_org.as_ref(),
            };
            let stored = self.store.load_policies(org).await?;
            let read =
                PolicyRead { org: stored.org.as_ref(), instance: stored.instance.as_ref(), own_org: own_org.as_ref() };
            let (scope_org, instance) = match &scope {
                Scope::Instance => (None, stored.instance.as_ref()),
                Scope::Org(_) => (stored.org.as_ref(), stored.instance.as_ref()),
            };
            let Some(change) = plan_policy_change(caller, &scope, read, policy, self.clock.now())? else {
                return Ok(PolicyView::of(&self.context, scope, scope_org, instance));
            };
            match self.store.apply_policy(&change).await {
                Ok(()) => {
                    self.in_force.forget(&scope);
                    if !change.event.loosened.is_empty() {
                        tracing::warn!(
                            actor = %caller.user_id,
                            policy = %scope_name(&scope),
                            loosened = ?change.event.loosened,
                            "login policy loosened"
                        );
                    }
                    let written =
                        StoredPolicy { scope: scope.clone(), policy, version: change.to, created: change.created };
                    let (org, instance) = match &scope {
                        Scope::Instance => (None, Some(&written)),
                        Scope::Org(_) => (Some(&written), instance),
                    };
                    return Ok(PolicyView::of(&self.context, scope.clone(), org, instance));
                }
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Unexpected(e)) => return Err(e.into()),
            }
        }
        Err(LoginPolicyError::Contended)
    }
}

fn org_of(scope: &Scope) -> Option<&OrgId> {
    match scope {
        Scope::Instance => None,
        Scope::Org(org) => Some(org),
    }
}

/// How logs name a policy: `instance` for the default, `org:<id>` for an organization's.
fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::Instance => "instance".to_owned(),
        Scope::Org(org) => format!("org:{}", org.as_str()),
    }
}

/// The policies in force per organization, kept in this process after a first read.
///
/// A kept policy may be behind the store (another replica changed it): the writes that
/// rely on it (removals, deletions) are guarded by its versions and refused then, and a
/// refusal decided on a kept policy is decided again on a fresh one, so keeping it costs
/// no correctness. A write that is not guarded by the policy's versions (an add) must read
/// it afresh ([`PoliciesInForce::for_decision`] with `first` false).
pub struct PoliciesInForce {
    store: Arc<dyn PolicyStore>,
    kept: RwLock<HashMap<OrgId, PolicyInForce>>,
}

/// How many organizations' policies are kept at most; past it, all are read afresh.
const KEPT_ORGANIZATIONS: usize = 10_000;

impl PoliciesInForce {
    pub fn new(store: Arc<dyn PolicyStore>) -> Self {
        Self { store, kept: RwLock::new(HashMap::new()) }
    }

    /// The policy kept for `org`, if any (`false`: not read just now), else a fresh one.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    pub async fn kept_or_read(&self, org: &OrgId) -> Result<(PolicyInForce, bool), Unexpected> {
        let kept = self.kept.read().map(|kept| kept.get(org).cloned()).unwrap_or(None);
        match kept {
            Some(policy) => Ok((policy, false)),
            None => Ok((self.read(org).await?, true)),
        }
    }

    /// The policy in force for `org`, read from the store now (and kept).
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    pub async fn read(&self, org: &OrgId) -> Result<PolicyInForce, Unexpected> {
        let stored = self.store.load_policies(Some(org)).await?;
        let in_force = PolicyInForce::resolve(stored.org.as_ref(), stored.instance.as_ref());
        if let Ok(mut kept) = self.kept.write() {
            if kept.len() >= KEPT_ORGANIZATIONS {
                kept.clear();
            }
            kept.insert(org.clone(), in_force.clone());
        }
        Ok(in_force)
    }

    /// The policy in force for the user of `snapshot` (`None`: no user, no policy matters),
    /// for a decision of the write pattern: on the `first` decision the one kept in this
    /// process may serve, every later one (after a lost race, or a refusal decided on kept
    /// state) reads it afresh. Also answers whether it was read from the store just now.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    pub async fn for_decision(
        &self,
        snapshot: Option<&UserSnapshot>,
        first: bool,
    ) -> Result<(PolicyInForce, bool), Unexpected> {
        match snapshot {
            Some(snapshot) if first => self.kept_or_read(&snapshot.user.org).await,
            Some(snapshot) => Ok((self.read(&snapshot.user.org).await?, true)),
            None => Ok((PolicyInForce::resolve(None, None), true)),
        }
    }

    /// Forgets what is kept for `scope` (every organization for the instance default).
    pub fn forget(&self, scope: &Scope) {
        if let Ok(mut kept) = self.kept.write() {
            match scope {
                Scope::Instance => kept.clear(),
                Scope::Org(org) => {
                    kept.remove(org);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockPolicyStore, StoredPolicies};
    use crate::use_cases::fixtures::{at, authenticator, caller, clock, context, holding, org, user, users};
    use chrono::TimeDelta;
    use factors_domain::{Permission, Version};

    fn strict() -> LoginPolicy {
        LoginPolicy::new(true, TimeDelta::minutes(5), true).expect("valid")
    }

    fn stored(scope: Scope, policy: LoginPolicy, sequence: u64) -> StoredPolicy {
        StoredPolicy { scope, policy, version: Version { sequence, changed: at(2) }, created: at(1) }
    }

    fn owner() -> Caller {
        caller("owner", &[(Permission::PolicyRead, Some("org-a")), (Permission::PolicyWrite, Some("org-a"))])
    }

    fn service(store: MockPolicyStore) -> (LoginPolicyService, Arc<PoliciesInForce>) {
        with_accounts(store, vec![])
    }

    /// The service, with `accounts` the users the store holds.
    fn with_accounts(
        store: MockPolicyStore,
        accounts: Vec<UserSnapshot>,
    ) -> (LoginPolicyService, Arc<PoliciesInForce>) {
        let store = Arc::new(store);
        let in_force = Arc::new(PoliciesInForce::new(store.clone()));
        let service = LoginPolicyService {
            context: context(),
            store,
            in_force: in_force.clone(),
            users: users(accounts),
            clock: clock(at(9)),
        };
        (service, in_force)
    }

    #[tokio::test]
    async fn an_organization_without_its_own_policy_shows_the_instance_default_as_inherited() {
        let mut store = MockPolicyStore::new();
        let default = stored(Scope::Instance, strict(), 3);
        store
            .expect_load_policies()
            .returning(move |_| Ok(StoredPolicies { org: None, instance: Some(default.clone()) }));
        let (service, _) = service(store);

        let view = service.get_login_policy(&owner(), Scope::Org(org("org-a"))).await.expect("readable");

        assert_eq!((view.policy, view.source), (strict(), PolicySource::Instance));
        let stored = view.stored.expect("the default is stored");
        assert_eq!(stored.sequence, 3);
        assert_eq!(stored.owner, PolicyOwner::Instance(context().id.clone()), "whose policy holds");
    }

    #[tokio::test]
    async fn without_any_stored_policy_the_built_in_one_holds_and_has_no_version() {
        let mut store = MockPolicyStore::new();
        store.expect_load_policies().returning(|_| Ok(StoredPolicies::default()));
        let (service, _) = service(store);

        let view = service.get_login_policy(&owner(), Scope::Org(org("org-a"))).await.expect("readable");

        assert_eq!((view.policy, view.source, view.stored), (LoginPolicy::default(), PolicySource::BuiltIn, None));
    }

    #[tokio::test]
    async fn reading_or_setting_another_scope_is_denied_before_the_store_is_asked() {
        let mut store = MockPolicyStore::new();
        store.expect_load_policies().never();
        store.expect_apply_policy().never();
        let (service, _) = service(store);
        for scope in [Scope::Instance, Scope::Org(org("org-b"))] {
            let read = service.get_login_policy(&owner(), scope.clone()).await;
            assert!(matches!(read, Err(LoginPolicyError::Access(AccessRefusal::PermissionDenied))), "{scope:?}");
            let set = service.set_login_policy(&owner(), scope.clone(), strict()).await;
            let failure = Failure::from(set.expect_err("denied"));
            assert_eq!((failure.kind, failure.id), (ErrorKind::PermissionDenied, "AUTHZ-PermissionDenied"));
        }
    }

    #[tokio::test]
    async fn setting_a_policy_writes_it_from_the_version_read_and_forgets_what_removals_kept() {
        let mut store = MockPolicyStore::new();
        let mut reads = mockall::Sequence::new();
        let before = stored(Scope::Org(org("org-a")), LoginPolicy::default(), 2);
        store
            .expect_load_policies()
            .times(1)
            .in_sequence(&mut reads)
            .returning(move |_| Ok(StoredPolicies { org: Some(before.clone()), instance: None }));
        store
            .expect_apply_policy()
            .withf(|change| {
                change.from.map(|v| v.sequence) == Some(2) && change.to.sequence == 3 && change.policy == strict()
            })
            .times(1)
            .returning(|_| Ok(()));
        // What a removal kept is read again after the change.
        store.expect_load_policies().times(1).in_sequence(&mut reads).returning(move |_| {
            Ok(StoredPolicies { org: Some(stored(Scope::Org(org("org-a")), strict(), 3)), instance: None })
        });
        let (service, in_force) = service(store);

        let view = service.set_login_policy(&owner(), Scope::Org(org("org-a")), strict()).await.expect("set");

        assert_eq!((view.policy, view.source), (strict(), PolicySource::Organization));
        assert_eq!(
            view.stored.map(|s| (s.sequence, s.created, s.changed, s.owner)),
            Some((3, at(1), at(9), PolicyOwner::Org(org("org-a"))))
        );
        let (policy, fresh) = in_force.kept_or_read(&org("org-a")).await.expect("read");
        assert_eq!((policy.policy, fresh), (strict(), true), "read afresh after the change");
    }

    #[tokio::test]
    async fn a_lost_race_reads_again_and_setting_what_is_stored_writes_nothing() {
        let mut store = MockPolicyStore::new();
        let mut reads = mockall::Sequence::new();
        store.expect_load_policies().times(1).in_sequence(&mut reads).returning(|_| Ok(StoredPolicies::default()));
        store.expect_apply_policy().times(1).returning(|_| Err(WriteError::Conflict));
        // The winner set the same policy.
        store.expect_load_policies().times(1).in_sequence(&mut reads).returning(|_| {
            Ok(StoredPolicies { org: Some(stored(Scope::Org(org("org-a")), strict(), 1)), instance: None })
        });
        let (service, _) = service(store);

        let view = service.set_login_policy(&owner(), Scope::Org(org("org-a")), strict()).await.expect("set");

        assert_eq!(view.stored.map(|s| s.sequence), Some(1));
    }

    #[tokio::test]
    async fn a_policy_that_changes_under_every_decision_answers_aborted() {
        let mut store = MockPolicyStore::new();
        store.expect_load_policies().returning(|_| Ok(StoredPolicies::default()));
        store.expect_apply_policy().times(MAX_DECISIONS).returning(|_| Err(WriteError::Conflict));
        let (service, _) = service(store);

        let failure = Failure::from(
            service.set_login_policy(&owner(), Scope::Org(org("org-a")), strict()).await.expect_err("contended"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::Aborted, "POLICY-Contended"));
    }

    #[tokio::test]
    async fn an_owner_cannot_loosen_the_policy_of_its_own_account_with_a_password_only_token() {
        let mut store = MockPolicyStore::new();
        store.expect_load_policies().withf(|org| org.is_some_and(|o| o.as_str() == "org-a")).returning(|_| {
            Ok(StoredPolicies { org: Some(stored(Scope::Org(org("org-a")), strict(), 2)), instance: None })
        });
        store.expect_apply_policy().never();
        // The owner is a user of org-a with a verified factor; its token names no organization.
        let account = holding(user("owner", "org-a"), vec![authenticator("a1", "owner")]);
        let (service, _) = with_accounts(store, vec![account]);
        let owner_without_org = Caller { org: None, ..owner() };

        let refused =
            service.set_login_policy(&owner_without_org, Scope::Org(org("org-a")), LoginPolicy::default()).await;

        let failure = Failure::from(refused.expect_err("step-up"));
        assert_eq!((failure.kind, failure.id), (ErrorKind::PermissionDenied, "AUTHZ-StepUpRequired"));
    }

    #[tokio::test]
    async fn a_loosening_of_someone_elses_policy_goes_through_and_its_event_names_what_it_loosened() {
        let mut store = MockPolicyStore::new();
        store.expect_load_policies().returning(|_| {
            Ok(StoredPolicies { org: Some(stored(Scope::Org(org("org-a")), strict(), 2)), instance: None })
        });
        store
            .expect_apply_policy()
            .withf(|change| change.event.loosened == ["forceMfa", "selfRemovalStepUpMaxAge", "notifyOnRemoval"])
            .times(1)
            .returning(|_| Ok(()));
        // An instance owner whose own account lives in another organization.
        let iam = caller("iam", &[(Permission::PolicyWrite, None)]);
        let account = holding(user("iam", "org-admin"), vec![authenticator("a1", "iam")]);
        let (service, _) = with_accounts(store, vec![account]);

        let view = service.set_login_policy(&iam, Scope::Org(org("org-a")), LoginPolicy::default()).await;

        assert_eq!(view.expect("set").policy, LoginPolicy::default());
    }
}
