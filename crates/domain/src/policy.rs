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
use crate::{Caller, UserId, Version, next_change};

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
    pub at: DateTime<Utc>,
    pub policy: LoginPolicy,
    /// The first version of the scope's policy (added) rather than a later one (changed).
    pub first: bool,
}

impl PolicyEvent {
    /// The aggregate the event belongs to: ZITADEL's `instance` or `org`.
    pub fn aggregate_type(&self) -> &'static str {
        match self.scope {
            Scope::Instance => "instance",
            Scope::Org(_) => "org",
        }
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
        if let (Scope::Org(org), Some(object)) = (&self.scope, payload.as_object_mut()) {
            object.insert("orgId".into(), json!(org.as_str()));
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

/// Decides setting `policy` for `scope`, on `current` as read (`None`: none stored).
/// `Ok(None)` when the stored policy already is `policy`: nothing to write, no event.
///
/// # Errors
/// [`AccessRefusal::PermissionDenied`] without `policy.write` on the scope.
pub fn plan_policy_change(
    caller: &Caller,
    scope: &Scope,
    current: Option<&StoredPolicy>,
    policy: LoginPolicy,
    now: DateTime<Utc>,
) -> Result<Option<PolicyChange>, AccessRefusal> {
    may_write_policy(caller, scope)?;
    if current.is_some_and(|c| c.policy == policy) {
        return Ok(None);
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
            at: to.changed,
            policy,
            first: from.is_none(),
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
            let planned = plan_policy_change(who, scope, None, strict(), at(2));
            assert_eq!(planned.is_ok(), writes, "{} writes {scope:?}", who.user_id);
            if !writes {
                assert_eq!(planned, Err(AccessRefusal::PermissionDenied));
            }
        }
    }

    #[test]
    fn the_first_policy_of_a_scope_is_added_and_later_ones_change_it_from_the_version_read() {
        let owner = caller("owner", &[(Permission::PolicyWrite, Some("org-a"))]);
        let org_a = Scope::Org(org("org-a"));

        let first = plan_policy_change(&owner, &org_a, None, strict(), at(2)).expect("allowed").expect("a write");
        assert_eq!((first.from, first.to), (None, Version { sequence: 1, changed: at(2) }));
        assert_eq!(first.event.event_type(), "org.policy.login.added");
        assert_eq!(first.event.aggregate_type(), "org");
        assert_eq!(
            first.event.payload(),
            json!({"actor": "owner", "orgId": "org-a", "at": "2026-11-27T10:00:02Z", "forceMfa": true,
                   "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true})
        );

        let current = stored(org_a.clone(), strict(), 4);
        let relaxed = LoginPolicy { force_mfa: false, ..strict() };
        let next = plan_policy_change(&owner, &org_a, Some(&current), relaxed, at(3)).expect("allowed").expect("write");
        assert_eq!((next.from, next.to.sequence, next.created), (Some(current.version), 5, at(0)));
        assert_eq!(next.event.event_type(), "org.policy.login.changed");
        assert!(!next.event.first);

        let unchanged = plan_policy_change(&owner, &org_a, Some(&current), strict(), at(3));
        assert_eq!(unchanged, Ok(None), "setting the stored policy again writes nothing");
    }

    #[test]
    fn the_instance_default_has_its_own_event_types() {
        let iam = caller("iam", &[(Permission::PolicyWrite, None)]);
        let change =
            plan_policy_change(&iam, &Scope::Instance, None, strict(), at(2)).expect("allowed").expect("write");
        assert_eq!(
            (change.event.event_type(), change.event.aggregate_type()),
            ("instance.policy.login.added", "instance")
        );
        assert!(change.event.payload().get("orgId").is_none());
    }
}
