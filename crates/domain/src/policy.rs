//! Login policies: what an organization asks of its users' second factors, with an
//! instance default for organizations that set none.
//!
//! A policy is stored per scope (the instance, or one organization) with a version and
//! its own events, and changed by the same shape as users: read, let [`plan_policy_change`]
//! decide, and hand the store a [`PolicyChange`] it applies only while the policy is at
//! the version read.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::json;

use crate::access::{AccessRefusal, Permission, Scope};
use crate::protection::{ProtectionRefusal, Weakening, protect_own_account};
use crate::{Caller, OrgId, Origin, UserId, Version, next_change};

/// The longest step-up age a policy may ask for: a year. Longer would mean "never".
pub const MAX_STEP_UP_AGE: TimeDelta = TimeDelta::days(366);

/// What an organization asks of its users' second factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginPolicy {
    /// Users must keep a verified second factor: a user may not remove its last one
    /// (an administrator may, for lockout recovery).
    pub force_mfa: bool,
    /// How recent a second-factor sign-in a user needs to remove one of its own verified
    /// authenticators; zero asks for none.
    pub self_removal_step_up_max_age: TimeDelta,
    /// Send an SMS to the number of a removed (verified) authenticator once the removal
    /// is committed.
    pub notify_on_removal: bool,
}

/// Why a policy was refused as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("selfRemovalStepUpMaxAge must be whole seconds from 0 (off) to 366 days")]
    StepUpAge,
}

impl LoginPolicy {
    /// Checks a policy as given.
    ///
    /// # Errors
    /// [`PolicyError::StepUpAge`] for an age below zero, above [`MAX_STEP_UP_AGE`], or
    /// not in whole seconds.
    pub fn new(
        force_mfa: bool,
        self_removal_step_up_max_age: TimeDelta,
        notify_on_removal: bool,
    ) -> Result<Self, PolicyError> {
        let age = self_removal_step_up_max_age;
        if age < TimeDelta::zero() || age > MAX_STEP_UP_AGE || age.subsec_nanos() != 0 {
            return Err(PolicyError::StepUpAge);
        }
        Ok(Self { force_mfa, self_removal_step_up_max_age: age, notify_on_removal })
    }

    /// Whether a user removing its own verified authenticator must have signed in with a
    /// second factor recently.
    pub fn asks_step_up(&self) -> bool {
        self.self_removal_step_up_max_age > TimeDelta::zero()
    }

    /// The settings (by their JSON names) that `next` asks less of than this policy: MFA
    /// no longer forced, a step-up turned off or allowed an older sign-in, notices turned
    /// off. Empty when `next` is as strict or stricter in every setting.
    pub fn loosened_by(&self, next: &Self) -> Vec<&'static str> {
        let step_up_loosened = self.asks_step_up()
            && (!next.asks_step_up() || next.self_removal_step_up_max_age > self.self_removal_step_up_max_age);
        [
            (self.force_mfa && !next.force_mfa, "forceMfa"),
            (step_up_loosened, "selfRemovalStepUpMaxAge"),
            (self.notify_on_removal && !next.notify_on_removal, "notifyOnRemoval"),
        ]
        .into_iter()
        .filter_map(|(loosened, name)| loosened.then_some(name))
        .collect()
    }
}

/// A policy as stored for one scope, at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub scope: Scope,
    pub policy: LoginPolicy,
    pub version: Version,
    pub created: DateTime<Utc>,
}

/// Where the policy in force for an organization comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// The organization set its own.
    Organization,
    /// The organization set none; the instance default holds.
    Instance,
    /// Neither is set: the built-in default (everything off).
    BuiltIn,
}

/// The versions a decision on a policy was made at: the organization's policy and the
/// instance default, 0 where none is stored. A write that relied on the policy is applied
/// only while both are still at these versions, so a removal decided on a policy that
/// changed meanwhile is refused, read again and decided again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyGuard {
    pub org_sequence: u64,
    pub instance_sequence: u64,
}

/// The policy in force for an organization, and the versions it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInForce {
    pub policy: LoginPolicy,
    pub source: PolicySource,
    pub guard: PolicyGuard,
}

impl PolicyInForce {
    /// The organization's own policy if it has one, else the instance default, else the
    /// built-in default.
    pub fn resolve(org: Option<&StoredPolicy>, instance: Option<&StoredPolicy>) -> Self {
        let guard = PolicyGuard {
            org_sequence: org.map_or(0, |p| p.version.sequence),
            instance_sequence: instance.map_or(0, |p| p.version.sequence),
        };
        let (policy, source) = match (org, instance) {
            (Some(org), _) => (org.policy, PolicySource::Organization),
            (None, Some(instance)) => (instance.policy, PolicySource::Instance),
            (None, None) => (LoginPolicy::default(), PolicySource::BuiltIn),
        };
        Self { policy, source, guard }
    }
}

/// A policy's event: `actor` set `policy` for `scope` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEvent {
    pub scope: Scope,
    pub actor: UserId,
    pub origin: Origin,
    pub at: DateTime<Utc>,
    pub policy: LoginPolicy,
    /// The first version of the scope's policy (added) rather than a later one (changed).
    pub first: bool,
    /// The settings this change loosened against the policy in force for the scope
    /// before it ([`LoginPolicy::loosened_by`]), so the trail shows who weakened what.
    pub loosened: Vec<&'static str>,
}

impl PolicyEvent {
    /// The aggregate type of the instance default's policy and its events (ZITADEL's).
    pub const INSTANCE_AGGREGATE: &'static str = "instance";
    /// The aggregate type of an organization's policy and its events (ZITADEL's).
    pub const ORG_AGGREGATE: &'static str = "org";

    /// The aggregate type a policy of `scope` is stored and numbered under.
    pub fn aggregate_type_of(scope: &Scope) -> &'static str {
        match scope {
            Scope::Instance => Self::INSTANCE_AGGREGATE,
            Scope::Org(_) => Self::ORG_AGGREGATE,
        }
    }

    /// The aggregate (type, id) a policy of `scope` is stored and numbered under, in
    /// instance `instance`.
    pub fn aggregate_of<'a>(scope: &'a Scope, instance: &'a str) -> (&'static str, &'a str) {
        let id = match scope {
            Scope::Instance => instance,
            Scope::Org(org) => org.as_str(),
        };
        (Self::aggregate_type_of(scope), id)
    }

    /// The aggregate the event belongs to: ZITADEL's `instance` or `org`.
    pub fn aggregate_type(&self) -> &'static str {
        Self::aggregate_type_of(&self.scope)
    }

    /// ZITADEL's event type names for login policies.
    pub fn event_type(&self) -> &'static str {
        match (&self.scope, self.first) {
            (Scope::Instance, true) => "instance.policy.login.added",
            (Scope::Instance, false) => "instance.policy.login.changed",
            (Scope::Org(_), true) => "org.policy.login.added",
            (Scope::Org(_), false) => "org.policy.login.changed",
        }
    }

    /// The payload, self-contained: who set what, where and when.
    pub fn payload(&self) -> serde_json::Value {
        let mut payload = json!({
            "actor": self.actor.as_str(),
            "at": self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "forceMfa": self.policy.force_mfa,
            "selfRemovalStepUpMaxAge": format!("{}s", self.policy.self_removal_step_up_max_age.num_seconds()),
            "notifyOnRemoval": self.policy.notify_on_removal,
        });
        if let Some(object) = payload.as_object_mut() {
            if let Scope::Org(org) = &self.scope {
                object.insert("orgId".into(), json!(org.as_str()));
            }
            if !self.loosened.is_empty() {
                object.insert("loosened".into(), json!(self.loosened));
            }
            if !self.origin.is_empty() {
                object.insert("origin".into(), json!(self.origin));
            }
        }
        payload
    }
}

/// A policy write the rules allow: store `policy` for `scope` at version `to`, only while
/// the scope's policy is at `from` (`None`: none is stored yet), and append the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    pub scope: Scope,
    pub from: Option<Version>,
    pub to: Version,
    /// When the scope's policy was first set.
    pub created: DateTime<Utc>,
    pub policy: LoginPolicy,
    pub event: PolicyEvent,
}

/// Whether `caller` may read the policy of `scope`: `policy.read` on the organization
/// (or instance-wide); the instance default only instance-wide.
///
/// # Errors
/// [`AccessRefusal::PermissionDenied`] otherwise.
pub fn may_read_policy(caller: &Caller, scope: &Scope) -> Result<(), AccessRefusal> {
    allowed(caller, Permission::PolicyRead, scope)
}

/// Whether `caller` may set the policy of `scope`: `policy.write` on the organization
/// (or instance-wide); the instance default only instance-wide.
///
/// # Errors
/// [`AccessRefusal::PermissionDenied`] otherwise.
pub fn may_write_policy(caller: &Caller, scope: &Scope) -> Result<(), AccessRefusal> {
    allowed(caller, Permission::PolicyWrite, scope)
}

fn allowed(caller: &Caller, permission: Permission, scope: &Scope) -> Result<(), AccessRefusal> {
    let holds = match scope {
        Scope::Instance => caller.has_instance_wide(permission),
        Scope::Org(org) => caller.has(permission, org),
    };
    if holds { Ok(()) } else { Err(AccessRefusal::PermissionDenied) }
}

/// What a policy write is decided on: the policies as read, and the caller's own account.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyRead<'a> {
    /// An organization's own policy: for a write of an organization's policy, that
    /// organization's; for a write of the instance default, the one of `own_org`.
    pub org: Option<&'a StoredPolicy>,
    /// The instance default.
    pub instance: Option<&'a StoredPolicy>,
    /// The organization of the caller's own account (the user whose id is the token's
    /// `sub`), when it holds a verified authenticator: an account without one has no
    /// second factor for a policy to protect.
    pub own_org: Option<&'a OrgId>,
}

/// Why a policy write is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    /// A loosening of the policy the caller's own account is under, without the
    /// second-factor sign-in it asks ([`protect_own_account`]).
    #[error(transparent)]
    Protection(#[from] ProtectionRefusal),
}

/// Decides setting `policy` for `scope`, on the policies as `read`. `Ok(None)` when the
/// stored policy already is `policy`: nothing to write, no event.
///
/// A write that loosens the policy in force for the caller's own account (its
/// organization's own, or the instance default it inherits) needs what weakening the
/// account needs ([`Weakening::LoosenPolicy`]); anyone else's loosening goes through, and
/// its event names what it loosened.
///
/// # Errors
/// [`PolicyRefusal::Access`] without `policy.write` on the scope, then
/// [`PolicyRefusal::Protection`].
pub fn plan_policy_change(
    caller: &Caller,
    scope: &Scope,
    read: PolicyRead<'_>,
    policy: LoginPolicy,
    now: DateTime<Utc>,
) -> Result<Option<PolicyChange>, PolicyRefusal> {
    may_write_policy(caller, scope)?;
    // The scope's own policy, the one in force for it, and whether the caller's account is
    // under it (its organization's own, or the default that organization inherits).
    let (current, in_force, governs_own_account) = match scope {
        Scope::Instance => {
            (read.instance, PolicyInForce::resolve(None, read.instance), read.own_org.is_some() && read.org.is_none())
        }
        Scope::Org(org) => (read.org, PolicyInForce::resolve(read.org, read.instance), read.own_org == Some(org)),
    };
    if current.is_some_and(|c| c.policy == policy) {
        return Ok(None);
    }
    let in_force = in_force.policy;
    let loosened = in_force.loosened_by(&policy);
    if governs_own_account && !loosened.is_empty() {
        protect_own_account(caller, Weakening::LoosenPolicy, &in_force, now)?;
    }
    let from = current.map(|c| c.version);
    let to = match from {
        Some(from) => Version { sequence: from.sequence + 1, changed: next_change(from.changed, now) },
        None => Version { sequence: 1, changed: now },
    };
    Ok(Some(PolicyChange {
        scope: scope.clone(),
        from,
        to,
        created: current.map_or(to.changed, |c| c.created),
        policy,
        event: PolicyEvent {
            scope: scope.clone(),
            actor: caller.user_id.clone(),
            origin: caller.origin.clone(),
            at: to.changed,
            policy,
            first: from.is_none(),
            loosened,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::{caller, org};
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, second).single().expect("valid time")
    }

    fn strict() -> LoginPolicy {
        LoginPolicy::new(true, TimeDelta::minutes(5), true).expect("valid")
    }

    fn stored(scope: Scope, policy: LoginPolicy, sequence: u64) -> StoredPolicy {
        StoredPolicy { scope, policy, version: Version { sequence, changed: at(1) }, created: at(0) }
    }

    #[test]
    fn step_up_ages_are_whole_seconds_from_zero_to_a_year() {
        assert!(LoginPolicy::new(false, TimeDelta::zero(), false).is_ok());
        assert!(LoginPolicy::new(false, MAX_STEP_UP_AGE, false).is_ok());
        for bad in [TimeDelta::seconds(-1), MAX_STEP_UP_AGE + TimeDelta::seconds(1), TimeDelta::milliseconds(1500)] {
            assert_eq!(LoginPolicy::new(false, bad, false), Err(PolicyError::StepUpAge), "{bad}");
        }
        assert!(!LoginPolicy::default().asks_step_up());
        assert!(strict().asks_step_up());
    }

    #[test]
    fn the_organizations_policy_wins_over_the_instance_default_over_the_built_in_one() {
        let org_a = Scope::Org(org("org-a"));
        let own = stored(org_a, strict(), 3);
        let default = stored(Scope::Instance, LoginPolicy { force_mfa: true, ..LoginPolicy::default() }, 7);

        let in_force = PolicyInForce::resolve(Some(&own), Some(&default));
        assert_eq!((in_force.policy, in_force.source), (strict(), PolicySource::Organization));
        assert_eq!(in_force.guard, PolicyGuard { org_sequence: 3, instance_sequence: 7 });

        let in_force = PolicyInForce::resolve(None, Some(&default));
        assert_eq!((in_force.policy, in_force.source), (default.policy, PolicySource::Instance));
        assert_eq!(in_force.guard, PolicyGuard { org_sequence: 0, instance_sequence: 7 });

        let in_force = PolicyInForce::resolve(None, None);
        assert_eq!((in_force.policy, in_force.source), (LoginPolicy::default(), PolicySource::BuiltIn));
        assert_eq!(in_force.guard, PolicyGuard::default());
    }

    #[test]
    fn who_may_read_and_write_which_policy() {
        let org_a = Scope::Org(org("org-a"));
        let org_b = Scope::Org(org("org-b"));
        let iam = caller("iam", &[(Permission::PolicyRead, None), (Permission::PolicyWrite, None)]);
        let owner_a =
            caller("owner", &[(Permission::PolicyRead, Some("org-a")), (Permission::PolicyWrite, Some("org-a"))]);
        let reader_a = caller("reader", &[(Permission::PolicyRead, Some("org-a"))]);
        let user_admin = caller("manager", &[(Permission::UserWrite, None)]);
        let cases = [
            (&iam, &Scope::Instance, true, true),
            (&iam, &org_a, true, true),
            (&owner_a, &org_a, true, true),
            (&owner_a, &org_b, false, false),
            (&owner_a, &Scope::Instance, false, false),
            (&reader_a, &org_a, true, false),
            (&user_admin, &org_a, false, false),
        ];
        for (who, scope, reads, writes) in cases {
            assert_eq!(may_read_policy(who, scope).is_ok(), reads, "{} reads {scope:?}", who.user_id);
            let planned = plan_policy_change(who, scope, PolicyRead::default(), strict(), at(2));
            assert_eq!(planned.is_ok(), writes, "{} writes {scope:?}", who.user_id);
            if !writes {
                assert_eq!(planned, Err(AccessRefusal::PermissionDenied.into()));
            }
        }
    }

    #[test]
    fn the_first_policy_of_a_scope_is_added_and_later_ones_change_it_from_the_version_read() {
        let owner = caller("owner", &[(Permission::PolicyWrite, Some("org-a"))]);
        let org_a = Scope::Org(org("org-a"));

        let first = plan_policy_change(&owner, &org_a, PolicyRead::default(), strict(), at(2))
            .expect("allowed")
            .expect("write");
        assert_eq!((first.from, first.to), (None, Version { sequence: 1, changed: at(2) }));
        assert_eq!(first.event.event_type(), "org.policy.login.added");
        assert_eq!(first.event.aggregate_type(), "org");
        assert_eq!(
            first.event.payload(),
            json!({"actor": "owner", "orgId": "org-a", "at": "2026-11-27T10:00:02Z", "forceMfa": true,
                   "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true})
        );

        let current = stored(org_a.clone(), strict(), 4);
        let read = PolicyRead { org: Some(&current), ..PolicyRead::default() };
        let relaxed = LoginPolicy { force_mfa: false, ..strict() };
        let next = plan_policy_change(&owner, &org_a, read, relaxed, at(3)).expect("allowed").expect("write");
        assert_eq!((next.from, next.to.sequence, next.created), (Some(current.version), 5, at(0)));
        assert_eq!(next.event.event_type(), "org.policy.login.changed");
        assert!(!next.event.first);
        assert_eq!(next.event.payload()["loosened"], json!(["forceMfa"]), "the trail names what was loosened");

        let unchanged = plan_policy_change(&owner, &org_a, read, strict(), at(3));
        assert_eq!(unchanged, Ok(None), "setting the stored policy again writes nothing");
    }

    #[test]
    fn the_instance_default_has_its_own_event_types() {
        let iam = caller("iam", &[(Permission::PolicyWrite, None)]);
        let change = plan_policy_change(&iam, &Scope::Instance, PolicyRead::default(), strict(), at(2))
            .expect("allowed")
            .expect("write");
        assert_eq!(
            (change.event.event_type(), change.event.aggregate_type()),
            ("instance.policy.login.added", "instance")
        );
        assert!(change.event.payload().get("orgId").is_none());
        assert!(change.event.payload().get("loosened").is_none(), "nothing loosened");
    }

    #[test]
    fn loosening_means_asking_less_in_any_one_setting() {
        let age = |seconds| TimeDelta::seconds(seconds);
        let policy = |force_mfa, step_up, notify| LoginPolicy::new(force_mfa, age(step_up), notify).expect("valid");
        let cases = [
            (policy(true, 300, true), policy(true, 300, true), vec![]),
            (policy(true, 300, true), policy(true, 60, true), vec![]),
            (policy(false, 0, false), policy(true, 300, true), vec![]),
            (policy(true, 300, true), policy(false, 300, true), vec!["forceMfa"]),
            (policy(true, 300, true), policy(true, 600, true), vec!["selfRemovalStepUpMaxAge"]),
            (policy(true, 300, true), policy(true, 0, true), vec!["selfRemovalStepUpMaxAge"]),
            (policy(true, 300, true), policy(true, 300, false), vec!["notifyOnRemoval"]),
            (
                policy(true, 300, true),
                LoginPolicy::default(),
                vec!["forceMfa", "selfRemovalStepUpMaxAge", "notifyOnRemoval"],
            ),
        ];
        for (before, after, loosened) in cases {
            assert_eq!(before.loosened_by(&after), loosened, "{before:?} -> {after:?}");
        }
    }

    /// A caller of org-a's that signed in with a password only and holds `grants`.
    fn password_only(grants: &[(Permission, Option<&str>)]) -> Caller {
        let mut who = caller("owner", grants);
        who.authentication = crate::Authentication { methods: vec!["pwd".into()], at: Some(at(0)) };
        who
    }

    #[test]
    fn the_account_a_policy_protects_cannot_loosen_it_without_a_second_factor() {
        let org_a = Scope::Org(org("org-a"));
        let own = org("org-a");
        let owner =
            password_only(&[(Permission::PolicyWrite, Some("org-a")), (Permission::PolicyWrite, Some("org-b"))]);
        let strict_a = stored(org_a.clone(), strict(), 2);
        let default = stored(Scope::Instance, strict(), 1);
        let refused =
            Err(PolicyRefusal::Protection(ProtectionRefusal::StepUpRequired { max_age: TimeDelta::minutes(5) }));
        let cases = [
            // Its own organization's policy, or the default it inherits: refused.
            (org_a.clone(), PolicyRead { org: Some(&strict_a), instance: None, own_org: Some(&own) }, refused),
            (org_a.clone(), PolicyRead { org: None, instance: Some(&default), own_org: Some(&own) }, refused),
            (Scope::Instance, PolicyRead { org: None, instance: Some(&default), own_org: Some(&own) }, refused),
            // A default its organization does not inherit, another organization's policy, or
            // an account without a verified factor: allowed.
            (
                Scope::Instance,
                PolicyRead { org: Some(&strict_a), instance: Some(&default), own_org: Some(&own) },
                Ok(()),
            ),
            (
                Scope::Org(org("org-b")),
                PolicyRead { org: Some(&strict_a), instance: None, own_org: Some(&own) },
                Ok(()),
            ),
            (org_a.clone(), PolicyRead { org: Some(&strict_a), instance: None, own_org: None }, Ok(())),
        ];
        let iam_and_owner =
            Caller { grants: caller("owner", &[(Permission::PolicyWrite, None)]).grants, ..owner.clone() };
        for (scope, read, expected) in cases {
            let planned = plan_policy_change(&iam_and_owner, &scope, read, LoginPolicy::default(), at(3));
            assert_eq!(planned.map(|_| ()), expected, "{scope:?} with {read:?}");
        }
        // Tightening needs nothing; loosening with a fresh second factor goes through.
        let read = PolicyRead { org: Some(&strict_a), instance: None, own_org: Some(&own) };
        let stricter = LoginPolicy { self_removal_step_up_max_age: TimeDelta::minutes(1), ..strict() };
        assert!(plan_policy_change(&owner, &org_a, read, stricter, at(3)).is_ok());
        let mut stepped_up = owner.clone();
        stepped_up.authentication = crate::Authentication { methods: vec!["sms".into()], at: Some(at(2)) };
        assert!(plan_policy_change(&stepped_up, &org_a, read, LoginPolicy::default(), at(3)).is_ok());
    }
}
