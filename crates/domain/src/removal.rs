//! The headline rule: removing an OTP SMS authenticator from a user.

use chrono::{DateTime, Utc};

use crate::access::{Action, authorize};
use crate::protection::{ProtectionRefusal, Weakening, protect_own_account};
use crate::{
    AccessRefusal, Caller, Change, Decision, Event, EventKind, OtpSmsAuthenticator, OtpSmsId, PhoneNumber,
    PolicyInForce, Transition, UserId, UserSnapshot,
};

/// Operator choices that shape removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovalPolicy {
    /// Whether users may remove their own authenticators (docs/CONTRACT.md, rule 2; on by default).
    pub self_service: bool,
}

impl Default for RemovalPolicy {
    fn default() -> Self {
        Self { self_service: true }
    }
}

/// Why a removal is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RemovalRefusal {
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    #[error("the user has no such OTP SMS authenticator")]
    AuthenticatorNotFound,
    /// The user removing its own verified authenticator: the last one while the login
    /// policy forces MFA (only an administrator may), or without the step-up it asks.
    #[error(transparent)]
    Protection(#[from] ProtectionRefusal),
}

/// An SMS to the number of a removed authenticator, written to the outbox in the
/// removal's own write and sent once it has committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Unique per removed authenticator and the same on every try: the user and the
    /// removal's event number (which never repeats, across the user's lives), and for a
    /// deletion, which removes several at once, the authenticator.
    pub id: String,
    pub user: UserId,
    pub to: PhoneNumber,
    pub created: DateTime<Utc>,
}

impl Notice {
    /// The notice of `removed`'s removal by the write that moves the user by `transition`,
    /// when `notify` (the login policy's `notifyOnRemoval`) asks for one and the number was
    /// proven: one of an abandoned enrolment may be anyone's, and removing it must not be
    /// a way to text strangers. `several`: the write removes more than one (a deletion).
    pub(crate) fn of_removal(
        notify: bool,
        removed: &OtpSmsAuthenticator,
        transition: &Transition,
        several: bool,
    ) -> Option<Self> {
        let id = match several {
            false => format!("{}/{}", transition.user.as_str(), transition.to.sequence),
            true => format!("{}/{}/{}", transition.user.as_str(), transition.to.sequence, removed.id.as_str()),
        };
        (notify && removed.verified).then(|| Self {
            id,
            user: transition.user.clone(),
            to: removed.phone.clone(),
            created: transition.to.changed,
        })
    }
}

/// Decides whether `caller` may remove authenticator `target` of user `target_user`, given
/// the user as read (`None`: not found), the operator's removal policy, the login policy
/// in force for the user's organization, and `now`.
///
/// The rules, in order:
/// 1. the access rules (docs/CONTRACT.md, rules 1 to 4);
/// 2. `target` must be one of the user's authenticators;
/// 3. removing an unverified authenticator (an abandoned enrolment) is always allowed;
/// 4. a caller removing its own verified authenticator (its token's `sub` is the user's
///    id, administrator or not, whatever organization the token names) may not remove its
///    last one while the policy forces MFA, and needs a second-factor sign-in within the
///    policy's step-up age ([`protect_own_account`]); administrators acting on others are
///    asked neither: lockout recovery.
///
/// The decision carries the policy's versions and the user's: of two concurrent
/// removals of a user's last two factors, the store applies one and refuses the other,
/// whose caller reads again and finds the remaining one the last.
///
/// # Errors
/// The [`RemovalRefusal`] of the first rule that refuses.
pub fn plan_removal(
    caller: &Caller,
    target_user: &UserId,
    snapshot: Option<&UserSnapshot>,
    target: &OtpSmsId,
    policy: &RemovalPolicy,
    login: &PolicyInForce,
    now: DateTime<Utc>,
) -> Result<Decision, RemovalRefusal> {
    let action = Action::ManageCredentials { self_service: policy.self_service };
    let user = authorize(caller, target_user, snapshot.map(|s| &s.user), action)?;
    let snapshot = snapshot.ok_or(RemovalRefusal::AuthenticatorNotFound)?;
    let authenticator = snapshot.otp_sms(target).ok_or(RemovalRefusal::AuthenticatorNotFound)?;
    let last_factor = authenticator.verified && !snapshot.otp_sms.iter().any(|a| a.verified && a.id != *target);
    if authenticator.verified && caller.bears_id_of(user) {
        protect_own_account(caller, Weakening::RemoveFactor { last: last_factor }, &login.policy, now)?;
    }
    let mut decision = removal(snapshot, target, caller, now).ok_or(RemovalRefusal::AuthenticatorNotFound)?;
    let notice = Notice::of_removal(login.policy.notify_on_removal, authenticator, &decision.transition, false);
    decision.change = Change::RemoveOtpSms { authenticator: target.clone(), guard: Some(login.guard), notice };
    if let EventKind::OtpSmsRemoved { last_factor: flag, .. } = &mut decision.event.kind {
        *flag = last_factor;
    }
    Ok(decision)
}

/// The removal of authenticator `target` from the snapshot's user on behalf of `actor`,
/// with no access or policy rule: for taking back an authenticator whose code could not
/// be sent. `None` when the user does not hold it (any more).
pub fn removal(snapshot: &UserSnapshot, target: &OtpSmsId, actor: &Caller, now: DateTime<Utc>) -> Option<Decision> {
    let authenticator = snapshot.otp_sms(target)?;
    let transition = Transition::next(&snapshot.user, now);
    Some(Decision {
        event: Event {
            user: snapshot.user.id.clone(),
            actor: actor.user_id.clone(),
            origin: actor.origin.clone(),
            at: transition.to.changed,
            kind: EventKind::OtpSmsRemoved {
                authenticator: authenticator.id.clone(),
                masked_phone: authenticator.phone.masked(),
                last_factor: false,
            },
        },
        change: Change::RemoveOtpSms { authenticator: authenticator.id.clone(), guard: None, notice: None },
        transition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Permission;
    use crate::access::tests::{caller, user};
    use crate::{Authentication, Grant, OtpSmsAuthenticator, PhoneNumber, PolicyGuard, Scope, User, UserId};
    use crate::{LoginPolicy, StoredPolicy, Version};
    use chrono::{TimeDelta, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 22, 9, 31, 2).single().expect("valid time")
    }

    fn authenticator(id: &str, of: &str) -> OtpSmsAuthenticator {
        OtpSmsAuthenticator {
            id: OtpSmsId::new(id).expect("valid id"),
            user: UserId::new(of).expect("valid id"),
            phone: PhoneNumber::parse("+41791234567").expect("valid phone"),
            verified: true,
            created: now(),
        }
    }

    fn plan(
        who: &Caller,
        target: &str,
        user: Option<&User>,
        held: &[OtpSmsAuthenticator],
    ) -> Result<Decision, RemovalRefusal> {
        let target_user = UserId::new("alice").expect("valid id");
        let target = OtpSmsId::new(target).expect("valid id");
        let snapshot = user.map(|u| UserSnapshot { user: u.clone(), otp_sms: held.to_vec() });
        plan_removal(who, &target_user, snapshot.as_ref(), &target, &RemovalPolicy::default(), &no_policy(), now())
    }

    fn no_policy() -> PolicyInForce {
        PolicyInForce::resolve(None, None)
    }

    #[test]
    fn a_user_removes_its_own_authenticator_and_the_event_says_who_what_and_when() {
        let alice = user("alice", "org-a");
        let removal =
            plan(&caller("alice", &[]), "a1", Some(&alice), &[authenticator("a1", "alice")]).expect("allowed");
        let a1 = OtpSmsId::new("a1").expect("valid id");
        assert_eq!(
            removal.change,
            Change::RemoveOtpSms { authenticator: a1.clone(), guard: Some(PolicyGuard::default()), notice: None }
        );
        assert_eq!(removal.transition, Transition::next(&alice, now()), "decided on the version read");
        assert_eq!(removal.event.event_type(), "user.human.mfa.otp.sms.removed");
        assert_eq!(removal.event.actor.as_str(), "alice");
        assert_eq!(removal.event.at, now());
        assert_eq!(
            removal.event.kind,
            EventKind::OtpSmsRemoved { authenticator: a1, masked_phone: "+41******567".into(), last_factor: true }
        );
    }

    #[test]
    fn an_authenticator_the_user_does_not_hold_is_not_found() {
        let alice = user("alice", "org-a");
        let cases = [
            (vec![], "no authenticators"),
            (vec![authenticator("a2", "alice")], "another id"),
            (vec![authenticator("a1", "bob")], "someone else's"),
        ];
        for (held, case) in cases {
            let refused = plan(&caller("alice", &[]), "a1", Some(&alice), &held);
            assert_eq!(refused, Err(RemovalRefusal::AuthenticatorNotFound), "{case}");
        }
    }

    #[test]
    fn access_rules_come_before_the_authenticator_lookup() {
        let alice = user("alice", "org-a");
        let held = [authenticator("a1", "alice")];
        let cases = [
            (caller("bob", &[]), Some(&alice), AccessRefusal::PermissionDenied, "plain user on someone else"),
            (caller("bob", &[]), None, AccessRefusal::PermissionDenied, "plain user, missing user"),
            (
                caller("admin", &[(Permission::UserWrite, Some("org-b"))]),
                Some(&alice),
                AccessRefusal::UserNotFound,
                "admin of another org",
            ),
            (
                caller("admin", &[(Permission::UserWrite, None)]),
                None,
                AccessRefusal::UserNotFound,
                "instance admin, missing user",
            ),
            (
                caller("reader", &[(Permission::UserRead, Some("org-a"))]),
                Some(&alice),
                AccessRefusal::PermissionDenied,
                "read-only",
            ),
        ];
        for (who, user, expected, case) in cases {
            assert_eq!(plan(&who, "a1", user, &held), Err(RemovalRefusal::Access(expected)), "{case}");
        }
    }

    #[test]
    fn admins_with_write_or_credential_write_may_remove() {
        let alice = user("alice", "org-a");
        let held = [authenticator("a1", "alice")];
        for grants in [
            vec![(Permission::UserWrite, Some("org-a"))],
            vec![(Permission::UserCredentialWrite, Some("org-a"))],
            vec![(Permission::UserWrite, None)],
        ] {
            let removal = plan(&caller("admin", &grants), "a1", Some(&alice), &held).expect("allowed");
            assert_eq!(removal.event.actor.as_str(), "admin", "{grants:?}");
        }
    }

    #[test]
    fn without_self_service_users_cannot_remove_their_own() {
        let alice = user("alice", "org-a");
        let snapshot = UserSnapshot { user: alice.clone(), otp_sms: vec![authenticator("a1", "alice")] };
        let refused = plan_removal(
            &caller("alice", &[]),
            &alice.id,
            Some(&snapshot),
            &OtpSmsId::new("a1").expect("valid id"),
            &RemovalPolicy { self_service: false },
            &no_policy(),
            now(),
        );
        assert_eq!(refused, Err(RemovalRefusal::Access(AccessRefusal::PermissionDenied)));
    }

    /// Who removes: the user itself, or an administrator of its organization.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Who {
        Own,
        Admin,
    }

    /// How the caller signed in, against a step-up age of five minutes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum StepUp {
        /// The policy asks for no step-up.
        Off,
        /// A second factor two minutes ago.
        Fresh,
        /// A second factor ten minutes ago.
        Stale,
        /// A password only, just now.
        Missing,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        Removed,
        /// Removed, and the event says it was the user's last verified factor.
        RemovedLast,
        LastFactor,
        StepUp,
    }

    fn signed_in(step_up: StepUp) -> Authentication {
        let (methods, minutes_ago) = match step_up {
            StepUp::Off | StepUp::Fresh => (vec!["pwd", "sms"], 2),
            StepUp::Stale => (vec!["pwd", "otp"], 10),
            StepUp::Missing => (vec!["pwd"], 0),
        };
        Authentication {
            methods: methods.into_iter().map(str::to_owned).collect(),
            at: Some(now() - TimeDelta::minutes(minutes_ago)),
        }
    }

    fn login_policy(force_mfa: bool, step_up: StepUp) -> PolicyInForce {
        let age = if step_up == StepUp::Off { TimeDelta::zero() } else { TimeDelta::minutes(5) };
        let policy = LoginPolicy::new(force_mfa, age, false).expect("valid");
        let stored = StoredPolicy {
            scope: Scope::Org(crate::access::tests::org("org-a")),
            policy,
            version: Version { sequence: 4, changed: now() },
            created: now(),
        };
        PolicyInForce::resolve(Some(&stored), None)
    }

    /// `who`'s removal of `target` from the snapshot's user, under `login`.
    fn plan_under(
        who: &Caller,
        snapshot: &UserSnapshot,
        target: &str,
        login: &PolicyInForce,
    ) -> Result<Decision, RemovalRefusal> {
        let target = OtpSmsId::new(target).expect("valid id");
        plan_removal(who, &snapshot.user.id, Some(snapshot), &target, &RemovalPolicy::default(), login, now())
    }

    /// The removal of a1 by `who`, a1 `verified` or not, a2 (verified) held too unless
    /// a1 is `last`, under a policy forcing MFA or not and asking a step-up or not.
    fn outcome(who: Who, verified: bool, last: bool, force_mfa: bool, step_up: StepUp) -> Outcome {
        let alice = user("alice", "org-a");
        let mut a1 = authenticator("a1", "alice");
        a1.verified = verified;
        let mut held = vec![a1];
        if !last {
            held.push(authenticator("a2", "alice"));
        }
        let mut caller = match who {
            Who::Own => caller("alice", &[]),
            Who::Admin => caller("admin", &[(Permission::UserWrite, Some("org-a"))]),
        };
        caller.authentication = signed_in(step_up);
        let snapshot = UserSnapshot { user: alice.clone(), otp_sms: held };
        let login = login_policy(force_mfa, step_up);
        match plan_under(&caller, &snapshot, "a1", &login) {
            Ok(decision) => {
                assert_eq!(
                    decision.change,
                    Change::RemoveOtpSms {
                        authenticator: OtpSmsId::new("a1").expect("valid id"),
                        guard: Some(login.guard),
                        notice: None
                    },
                    "decided on the policy's versions"
                );
                match decision.event.kind {
                    EventKind::OtpSmsRemoved { last_factor: true, .. } => Outcome::RemovedLast,
                    _ => Outcome::Removed,
                }
            }
            Err(RemovalRefusal::Protection(ProtectionRefusal::LastFactor)) => Outcome::LastFactor,
            Err(RemovalRefusal::Protection(ProtectionRefusal::StepUpRequired { max_age })) => {
                assert_eq!(max_age, TimeDelta::minutes(5));
                Outcome::StepUp
            }
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }

    #[test]
    fn removal_rules_over_every_combination_of_caller_factor_policy_and_sign_in() {
        use Outcome::{LastFactor, Removed, RemovedLast, StepUp as NeedsStepUp};
        use StepUp::{Fresh, Missing, Off, Stale};
        use Who::{Admin, Own};
        // (who, a1 verified, a1 last, force_mfa, sign-in against step-up, outcome)
        #[rustfmt::skip]
        let table = [
            // The user itself, a verified factor, not its last: only the step-up matters.
            (Own, true, false, false, Off, Removed),
            (Own, true, false, false, Fresh, Removed),
            (Own, true, false, false, Stale, NeedsStepUp),
            (Own, true, false, false, Missing, NeedsStepUp),
            (Own, true, false, true, Off, Removed),
            (Own, true, false, true, Fresh, Removed),
            (Own, true, false, true, Stale, NeedsStepUp),
            (Own, true, false, true, Missing, NeedsStepUp),
            // Its last verified factor: refused outright while MFA is forced (no step-up helps).
            (Own, true, true, false, Off, RemovedLast),
            (Own, true, true, false, Fresh, RemovedLast),
            (Own, true, true, false, Stale, NeedsStepUp),
            (Own, true, true, false, Missing, NeedsStepUp),
            (Own, true, true, true, Off, LastFactor),
            (Own, true, true, true, Fresh, LastFactor),
            (Own, true, true, true, Stale, LastFactor),
            (Own, true, true, true, Missing, LastFactor),
            // An abandoned enrolment: always allowed; it is nobody's last verified factor.
            (Own, false, false, false, Off, Removed),
            (Own, false, false, false, Fresh, Removed),
            (Own, false, false, false, Stale, Removed),
            (Own, false, false, false, Missing, Removed),
            (Own, false, false, true, Off, Removed),
            (Own, false, false, true, Fresh, Removed),
            (Own, false, false, true, Stale, Removed),
            (Own, false, false, true, Missing, Removed),
            (Own, false, true, false, Off, Removed),
            (Own, false, true, false, Fresh, Removed),
            (Own, false, true, false, Stale, Removed),
            (Own, false, true, false, Missing, Removed),
            (Own, false, true, true, Off, Removed),
            (Own, false, true, true, Fresh, Removed),
            (Own, false, true, true, Stale, Removed),
            (Own, false, true, true, Missing, Removed),
            // An administrator: neither rule applies; the event tells a last factor.
            (Admin, true, false, false, Off, Removed),
            (Admin, true, false, false, Fresh, Removed),
            (Admin, true, false, false, Stale, Removed),
            (Admin, true, false, false, Missing, Removed),
            (Admin, true, false, true, Off, Removed),
            (Admin, true, false, true, Fresh, Removed),
            (Admin, true, false, true, Stale, Removed),
            (Admin, true, false, true, Missing, Removed),
            (Admin, true, true, false, Off, RemovedLast),
            (Admin, true, true, false, Fresh, RemovedLast),
            (Admin, true, true, false, Stale, RemovedLast),
            (Admin, true, true, false, Missing, RemovedLast),
            (Admin, true, true, true, Off, RemovedLast),
            (Admin, true, true, true, Fresh, RemovedLast),
            (Admin, true, true, true, Stale, RemovedLast),
            (Admin, true, true, true, Missing, RemovedLast),
            (Admin, false, false, false, Off, Removed),
            (Admin, false, false, false, Fresh, Removed),
            (Admin, false, false, false, Stale, Removed),
            (Admin, false, false, false, Missing, Removed),
            (Admin, false, false, true, Off, Removed),
            (Admin, false, false, true, Fresh, Removed),
            (Admin, false, false, true, Stale, Removed),
            (Admin, false, false, true, Missing, Removed),
            (Admin, false, true, false, Off, Removed),
            (Admin, false, true, false, Fresh, Removed),
            (Admin, false, true, false, Stale, Removed),
            (Admin, false, true, false, Missing, Removed),
            (Admin, false, true, true, Off, Removed),
            (Admin, false, true, true, Fresh, Removed),
            (Admin, false, true, true, Stale, Removed),
            (Admin, false, true, true, Missing, Removed),
        ];
        assert_eq!(table.len(), 2 * 2 * 2 * 2 * 4, "every combination once");
        for (who, verified, last, force_mfa, step_up, expected) in table {
            assert_eq!(
                outcome(who, verified, last, force_mfa, step_up),
                expected,
                "{who:?} removing a {} factor{} with force_mfa {force_mfa}, step-up {step_up:?}",
                if verified { "verified" } else { "unverified" },
                if last { " (the only one)" } else { "" },
            );
        }
    }

    #[test]
    fn a_step_up_needs_a_second_factor_method_and_a_sign_in_time() {
        let alice = user("alice", "org-a");
        let snapshot = UserSnapshot { user: alice.clone(), otp_sms: vec![authenticator("a1", "alice")] };
        let login = login_policy(false, StepUp::Fresh);
        let just_now = Some(now() - TimeDelta::seconds(1));
        let cases = [
            (vec!["mfa"], just_now, true),
            (vec!["hwk"], just_now, true),
            (vec!["swk", "pwd"], just_now, true),
            (vec!["otp"], Some(now() - TimeDelta::minutes(5)), true),
            (vec!["otp"], Some(now() + TimeDelta::seconds(30)), true),
            (vec!["otp"], None, false),
            (vec!["pwd", "kba"], just_now, false),
            (vec![], just_now, false),
            (vec!["SMS"], just_now, false),
        ];
        for (methods, at, allowed) in cases {
            let mut alice_caller = caller("alice", &[]);
            alice_caller.authentication =
                Authentication { methods: methods.iter().map(|m| (*m).to_owned()).collect(), at };
            let planned = plan_under(&alice_caller, &snapshot, "a1", &login);
            assert_eq!(planned.is_ok(), allowed, "{methods:?} at {at:?}: {planned:?}");
        }
    }

    #[test]
    fn an_administrator_acting_on_itself_is_held_to_the_self_service_rules() {
        let admin_user = user("admin", "org-a");
        let snapshot = UserSnapshot { user: admin_user.clone(), otp_sms: vec![authenticator("a1", "admin")] };
        let admin = caller("admin", &[(Permission::UserWrite, None)]);
        let refused = plan_under(&admin, &snapshot, "a1", &login_policy(true, StepUp::Off));
        assert_eq!(refused, Err(RemovalRefusal::Protection(ProtectionRefusal::LastFactor)));
    }

    #[test]
    fn a_token_bearing_the_users_id_is_held_to_its_rules_whatever_organization_it_names() {
        // ZITADEL adds the organization claim only when the client asks for its scope: a
        // token of alice's without it (or naming another organization) that holds a user
        // manager's role on org-a must not remove her last factor as an administrator would.
        let alice = user("alice", "org-a");
        let snapshot = UserSnapshot { user: alice.clone(), otp_sms: vec![authenticator("a1", "alice")] };
        let manager_of_a = [(Permission::UserWrite, Some("org-a"))];
        for (org, case) in [(None, "no org claim"), (Some(crate::access::tests::org("org-b")), "another org")] {
            let alice_elsewhere = Caller { org, ..caller("alice", &manager_of_a) };
            let refused = plan_under(&alice_elsewhere, &snapshot, "a1", &login_policy(true, StepUp::Missing));
            assert_eq!(refused, Err(RemovalRefusal::Protection(ProtectionRefusal::LastFactor)), "{case}");
            let mut two = snapshot.clone();
            two.otp_sms.push(authenticator("a2", "alice"));
            let refused = plan_under(&alice_elsewhere, &two, "a1", &login_policy(false, StepUp::Missing));
            assert!(
                matches!(refused, Err(RemovalRefusal::Protection(ProtectionRefusal::StepUpRequired { .. }))),
                "{case}: {refused:?}"
            );
        }
    }

    #[test]
    fn a_notice_goes_to_a_removed_verified_number_only_and_is_named_by_the_removal() {
        let alice = user("alice", "org-a");
        let mut pending = authenticator("a2", "alice");
        pending.verified = false;
        let snapshot = UserSnapshot { user: alice.clone(), otp_sms: vec![authenticator("a1", "alice"), pending] };
        let mut login = login_policy(false, StepUp::Off);
        login.policy.notify_on_removal = true;
        let admin = caller("admin", &[(Permission::UserWrite, None)]);
        let plan = |target: &str| plan_under(&admin, &snapshot, target, &login).expect("allowed");
        let verified = plan("a1");
        let Change::RemoveOtpSms { notice: Some(notice), .. } = &verified.change else {
            panic!("a notice for a verified number: {:?}", verified.change)
        };
        assert_eq!(notice.id, format!("alice/{}", alice.sequence + 1));
        assert_eq!((notice.to.as_e164(), notice.user.as_str(), notice.created), ("+41791234567", "alice", now()));
        assert!(
            matches!(plan("a2").change, Change::RemoveOtpSms { notice: None, .. }),
            "none for an abandoned enrolment"
        );
    }

    #[test]
    fn a_grant_of_another_scope_is_not_an_administrators() {
        // An admin of org B is not asked the step-up but cannot see alice at all.
        let alice = user("alice", "org-a");
        let snapshot = UserSnapshot { user: alice.clone(), otp_sms: vec![authenticator("a1", "alice")] };
        let mut other = caller("admin", &[]);
        other.grants =
            vec![Grant { permission: Permission::UserWrite, scope: Scope::Org(crate::access::tests::org("org-b")) }];
        let refused = plan_under(&other, &snapshot, "a1", &login_policy(true, StepUp::Fresh));
        assert_eq!(refused, Err(RemovalRefusal::Access(AccessRefusal::UserNotFound)));
    }
}
