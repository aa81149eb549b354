//! Creating, locking and deleting users.

use chrono::{DateTime, Utc};

use crate::access::{Action, authorize};
use crate::protection::{ProtectionRefusal, Weakening, protect_own_account};
use crate::session::terminate;
use crate::{
    AccessRefusal, Caller, Change, Decision, Event, EventKind, Notice, PolicyInForce, Transition, User, UserId,
    UserSession, UserSnapshot, UserState,
};

/// A new user with its first event. Its id may have lived before (created, deleted):
/// the new life continues that id's event numbering, so the audit log of one id never
/// holds two events with the same number.
#[derive(Debug, Clone, PartialEq)]
pub struct Creation {
    pub user: User,
    pub event: Event,
}

impl Creation {
    /// Numbers `user` after `last_sequence`, the last event of its id (0 when it never
    /// lived), and stamps it and its event `at`.
    pub fn new(mut user: User, actor: &Caller, last_sequence: u64, at: DateTime<Utc>) -> Self {
        user.sequence = last_sequence + 1;
        user.created = at;
        user.changed = at;
        let event = Event {
            user: user.id.clone(),
            actor: actor.user_id.clone(),
            origin: actor.origin.clone(),
            at,
            kind: EventKind::UserAdded { org: user.org.clone(), schema_id: user.schema_id.clone() },
        };
        Self { user, event }
    }
}

/// Why a deletion is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeletionRefusal {
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    /// A caller deleting itself while it holds a verified authenticator: refused while the
    /// login policy forces MFA, and only with the step-up it asks (then created again
    /// with the same id, the account would have shed its factors without either rule).
    #[error(transparent)]
    Protection(#[from] ProtectionRefusal),
}

/// Decides whether `caller` may delete user `target_user` (as read in `snapshot`), under
/// `login`, the login policy in force for the user's organization. The deletion removes
/// every authenticator the user holds: with `notifyOnRemoval`, each verified number gets
/// its notice, as a removal would send; it ends every one of `sessions` (the user's, as
/// read), each with its own `session.terminated` event by `caller`; and it is applied only
/// while the policy is at the versions decided on.
///
/// # Errors
/// [`DeletionRefusal::Access`] by the access rules (deleting needs `user.delete`), then
/// [`DeletionRefusal::Protection`] for a caller deleting itself ([`protect_own_account`]).
pub fn plan_deletion(
    caller: &Caller,
    target_user: &UserId,
    snapshot: Option<&UserSnapshot>,
    sessions: &[UserSession],
    login: &PolicyInForce,
    now: DateTime<Utc>,
) -> Result<Decision, DeletionRefusal> {
    let user = authorize(caller, target_user, snapshot.map(|s| &s.user), Action::Delete)?;
    let held = snapshot.map_or(&[][..], |s| s.otp_sms.as_slice());
    if caller.bears_id_of(user) && held.iter().any(|a| a.verified) {
        protect_own_account(caller, Weakening::DeleteSelf, &login.policy, now)?;
    }
    let transition = Transition::next(user, now);
    let notices =
        held.iter().filter_map(|a| Notice::of_removal(login.policy.notify_on_removal, a, &transition, true)).collect();
    Ok(Decision {
        event: Event {
            user: user.id.clone(),
            actor: caller.user_id.clone(),
            origin: caller.origin.clone(),
            at: transition.to.changed,
            kind: EventKind::UserRemoved,
        },
        change: Change::DeleteUser {
            guard: Some(login.guard),
            notices,
            sessions: sessions.iter().map(|session| terminate(session, caller, now)).collect(),
        },
        transition,
    })
}

/// A change of a user's state that the user API asks for. A user that is not active
/// cannot sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    /// LockUser: an active user becomes locked, and cannot sign in until unlocked.
    Lock,
    /// UnlockUser: a locked user becomes active again.
    Unlock,
    /// DeactivateUser: an active user becomes inactive, its data kept, and cannot sign in
    /// until activated.
    Deactivate,
    /// ActivateUser: an inactive user becomes active again.
    Activate,
}

/// Why a change of state is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateRefusal {
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    /// Only an active user can be locked or deactivated (ZITADEL's rule).
    #[error("the user is not active")]
    NotActive,
    #[error("the user is not locked")]
    NotLocked,
    #[error("the user is not inactive")]
    NotInactive,
}

/// Decides whether `caller` may change user `target_user`'s state (`change`), as read in
/// `snapshot`. The user's authenticators and sessions stay as they are: the sessions of a
/// user that is not active refuse every further check, and signing in again needs an
/// active user.
///
/// # Errors
/// [`StateRefusal::Access`] by the access rules (needs `user.write`), then
/// [`StateRefusal::NotActive`], [`StateRefusal::NotLocked`] or
/// [`StateRefusal::NotInactive`] for a user not in the state the change starts from.
pub fn plan_state_change(
    caller: &Caller,
    target_user: &UserId,
    snapshot: Option<&UserSnapshot>,
    change: StateChange,
    now: DateTime<Utc>,
) -> Result<Decision, StateRefusal> {
    let user = authorize(caller, target_user, snapshot.map(|s| &s.user), Action::ChangeState)?;
    let (from, to, kind, refusal) = match change {
        StateChange::Lock => (UserState::Active, UserState::Locked, EventKind::UserLocked, StateRefusal::NotActive),
        StateChange::Unlock => (UserState::Locked, UserState::Active, EventKind::UserUnlocked, StateRefusal::NotLocked),
        StateChange::Deactivate => {
            (UserState::Active, UserState::Inactive, EventKind::UserDeactivated, StateRefusal::NotActive)
        }
        StateChange::Activate => {
            (UserState::Inactive, UserState::Active, EventKind::UserReactivated, StateRefusal::NotInactive)
        }
    };
    if user.state != from {
        return Err(refusal);
    }
    let transition = Transition::next(user, now);
    Ok(Decision {
        event: Event {
            user: user.id.clone(),
            actor: caller.user_id.clone(),
            origin: caller.origin.clone(),
            at: transition.to.changed,
            kind,
        },
        change: Change::SetState { state: to },
        transition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::{caller, user};
    use crate::{
        Authentication, LoginPolicy, OtpSmsAuthenticator, OtpSmsId, Permission, PhoneNumber, PolicyGuard, Scope,
        SessionId, StoredPolicy, Version,
    };
    use chrono::{TimeDelta, TimeZone};

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 22, 9, minute, 0).single().expect("valid time")
    }

    #[test]
    fn a_recreated_id_continues_the_numbering_of_its_earlier_life() {
        let admin = caller("admin", &[]);
        let first = Creation::new(user("alice", "org-a"), &admin, 0, at(1));
        let again = Creation::new(user("alice", "org-a"), &admin, 4, at(2));

        assert_eq!((first.user.sequence, first.user.created, first.user.changed), (1, at(1), at(1)));
        assert_eq!(again.user.sequence, 5);
        assert_eq!((again.event.event_type(), again.event.at), ("user.human.added", at(2)));
    }

    fn no_policy() -> PolicyInForce {
        PolicyInForce::resolve(None, None)
    }

    fn policy(force_mfa: bool, step_up_minutes: i64, notify: bool) -> PolicyInForce {
        let policy = LoginPolicy::new(force_mfa, TimeDelta::minutes(step_up_minutes), notify).expect("valid");
        let stored = StoredPolicy {
            scope: Scope::Instance,
            policy,
            version: Version { sequence: 3, changed: at(0) },
            created: at(0),
        };
        PolicyInForce::resolve(None, Some(&stored))
    }

    fn factor(id: &str, phone: &str, verified: bool) -> OtpSmsAuthenticator {
        OtpSmsAuthenticator {
            id: OtpSmsId::new(id).expect("valid"),
            user: UserId::new("alice").expect("valid"),
            phone: PhoneNumber::parse(phone).expect("valid"),
            verified,
            created: at(1),
        }
    }

    #[test]
    fn deleting_needs_user_delete_and_is_decided_on_the_version_read() {
        let snapshot = UserSnapshot { user: user("alice", "org-a"), otp_sms: vec![] };
        let deleter = caller("admin", &[(Permission::UserDelete, Some("org-a"))]);
        let writer = caller("admin", &[(Permission::UserWrite, Some("org-a"))]);

        let decision =
            plan_deletion(&deleter, &snapshot.user.id, Some(&snapshot), &[], &no_policy(), at(9)).expect("ok");

        assert_eq!(decision.transition, Transition::next(&snapshot.user, at(9)));
        let change = Change::DeleteUser { guard: Some(PolicyGuard::default()), notices: vec![], sessions: vec![] };
        assert_eq!((decision.change, decision.event.event_type()), (change, "user.removed"));
        assert_eq!(
            plan_deletion(&writer, &snapshot.user.id, Some(&snapshot), &[], &no_policy(), at(9)),
            Err(DeletionRefusal::Access(AccessRefusal::PermissionDenied))
        );
    }

    #[test]
    fn locking_needs_user_write_and_takes_an_active_user_to_locked_with_its_event() {
        let snapshot = UserSnapshot { user: user("alice", "org-a"), otp_sms: vec![] };
        let writer = caller("admin", &[(Permission::UserWrite, Some("org-a"))]);
        let reader = caller("admin", &[(Permission::UserRead, Some("org-a"))]);

        let decision =
            plan_state_change(&writer, &snapshot.user.id, Some(&snapshot), StateChange::Lock, at(9)).expect("ok");

        assert_eq!(decision.transition, Transition::next(&snapshot.user, at(9)));
        assert_eq!(decision.change, Change::SetState { state: UserState::Locked });
        assert_eq!((decision.event.event_type(), decision.event.actor.as_str()), ("user.locked", "admin"));
        assert_eq!(snapshot.after(&decision).map(|s| s.user.state), Some(UserState::Locked));
        assert_eq!(
            plan_state_change(&reader, &snapshot.user.id, Some(&snapshot), StateChange::Lock, at(9)),
            Err(StateRefusal::Access(AccessRefusal::PermissionDenied))
        );
    }

    #[test]
    fn only_an_active_user_is_locked_and_only_a_locked_one_unlocked() {
        let writer = caller("admin", &[(Permission::UserWrite, Some("org-a"))]);
        let in_state = |state| UserSnapshot { user: User { state, ..user("alice", "org-a") }, otp_sms: vec![] };
        let plan = |state, change| {
            plan_state_change(&writer, &user("alice", "org-a").id, Some(&in_state(state)), change, at(9))
        };

        assert_eq!(plan(UserState::Locked, StateChange::Lock).map(|d| d.change), Err(StateRefusal::NotActive));
        assert_eq!(plan(UserState::Inactive, StateChange::Lock).map(|d| d.change), Err(StateRefusal::NotActive));
        assert_eq!(plan(UserState::Active, StateChange::Unlock).map(|d| d.change), Err(StateRefusal::NotLocked));
        let unlocked = plan(UserState::Locked, StateChange::Unlock).expect("a locked user unlocks");
        assert_eq!(
            (unlocked.change, unlocked.event.event_type()),
            (Change::SetState { state: UserState::Active }, "user.unlocked")
        );
    }

    #[test]
    fn only_an_active_user_is_deactivated_and_only_an_inactive_one_activated() {
        let writer = caller("admin", &[(Permission::UserWrite, Some("org-a"))]);
        let reader = caller("admin", &[(Permission::UserRead, Some("org-a"))]);
        let in_state = |state| UserSnapshot { user: User { state, ..user("alice", "org-a") }, otp_sms: vec![] };
        let plan = |who: &Caller, state, change| {
            plan_state_change(who, &user("alice", "org-a").id, Some(&in_state(state)), change, at(9))
        };

        let deactivated = plan(&writer, UserState::Active, StateChange::Deactivate).expect("an active user");
        assert_eq!(
            (deactivated.change, deactivated.event.event_type()),
            (Change::SetState { state: UserState::Inactive }, "user.deactivated")
        );
        let activated = plan(&writer, UserState::Inactive, StateChange::Activate).expect("an inactive user");
        assert_eq!(
            (activated.change, activated.event.event_type()),
            (Change::SetState { state: UserState::Active }, "user.reactivated")
        );
        for state in [UserState::Inactive, UserState::Locked] {
            assert_eq!(plan(&writer, state, StateChange::Deactivate).map(|d| d.change), Err(StateRefusal::NotActive));
        }
        for state in [UserState::Active, UserState::Locked] {
            assert_eq!(plan(&writer, state, StateChange::Activate).map(|d| d.change), Err(StateRefusal::NotInactive));
        }
        assert_eq!(
            plan(&reader, UserState::Active, StateChange::Deactivate).map(|d| d.change),
            Err(StateRefusal::Access(AccessRefusal::PermissionDenied))
        );
        assert_eq!(
            plan(&writer, UserState::Inactive, StateChange::Unlock).map(|d| d.change),
            Err(StateRefusal::NotLocked),
            "an inactive user is not unlocked into an active one"
        );
    }

    #[test]
    fn a_deletion_ends_every_session_of_the_user_each_with_its_event_by_the_deleter() {
        let snapshot = UserSnapshot { user: user("alice", "org-a"), otp_sms: vec![] };
        let deleter = caller("admin", &[(Permission::UserDelete, Some("org-a"))]);
        let held = |id: &str, sequence, minute| UserSession {
            id: SessionId::new(id).expect("valid"),
            version: Version { sequence, changed: at(minute) },
        };
        let sessions = [held("s1", 3, 2), held("s2", 7, 12)];

        let decision =
            plan_deletion(&deleter, &snapshot.user.id, Some(&snapshot), &sessions, &no_policy(), at(9)).expect("ok");

        let Change::DeleteUser { sessions: ended, .. } = decision.change else { panic!("a deletion") };
        let ended: Vec<_> = ended
            .iter()
            .map(|t| (t.session.as_str(), t.from, t.event.event_type(), t.event.actor.as_str(), t.event.at))
            .collect();
        assert_eq!(
            ended,
            [
                ("s1", sessions[0].version, "session.terminated", "admin", at(9)),
                // A session changed after `now` (clocks apart) still ends after its last change.
                ("s2", sessions[1].version, "session.terminated", "admin", at(12) + TimeDelta::microseconds(1)),
            ]
        );
    }

    #[test]
    fn deleting_oneself_is_held_to_the_rules_of_removing_ones_last_factor() {
        let alice = user("alice", "org-a");
        let with = |otp_sms| UserSnapshot { user: alice.clone(), otp_sms };
        let verified = with(vec![factor("a1", "+41791234567", true)]);
        let pending_only = with(vec![factor("a1", "+41791234567", false)]);
        // alice holds user.delete on her own organization (a user manager); her token
        // names no organization.
        let mut alice_manager = Caller { org: None, ..caller("alice", &[(Permission::UserDelete, Some("org-a"))]) };
        let admin = caller("admin", &[(Permission::UserDelete, Some("org-a"))]);
        let delete = |who: &Caller, snapshot: &UserSnapshot, login: &PolicyInForce| {
            plan_deletion(who, &alice.id, Some(snapshot), &[], login, at(9)).map(|_| ())
        };

        let mfa = policy(true, 0, false);
        assert_eq!(delete(&alice_manager, &verified, &mfa), Err(ProtectionRefusal::LastFactor.into()));
        assert_eq!(delete(&alice_manager, &pending_only, &mfa), Ok(()), "no verified factor to lose");
        assert_eq!(delete(&admin, &verified, &mfa), Ok(()), "an administrator deleting someone else");

        let step_up = policy(false, 5, false);
        let refused = Err(ProtectionRefusal::StepUpRequired { max_age: TimeDelta::minutes(5) }.into());
        assert_eq!(delete(&alice_manager, &verified, &step_up), refused);
        alice_manager.authentication =
            Authentication { methods: vec!["pwd".into(), "sms".into()], at: Some(at(9) - TimeDelta::minutes(1)) };
        assert_eq!(delete(&alice_manager, &verified, &step_up), Ok(()));
    }

    #[test]
    fn a_deletion_notifies_every_verified_number_it_removes_when_the_policy_asks() {
        let alice = user("alice", "org-a");
        let snapshot = UserSnapshot {
            user: alice.clone(),
            otp_sms: vec![
                factor("a1", "+41791234567", true),
                factor("a2", "+41791234568", false),
                factor("a3", "+41791234569", true),
            ],
        };
        let admin = caller("admin", &[(Permission::UserDelete, None)]);
        let login = policy(false, 0, true);

        let decision = plan_deletion(&admin, &alice.id, Some(&snapshot), &[], &login, at(9)).expect("allowed");

        let when = decision.transition.to.changed;
        let Change::DeleteUser { guard, notices, .. } = decision.change else { panic!("a deletion") };
        assert_eq!(guard, Some(login.guard), "decided on the policy's versions");
        let sent: Vec<_> = notices.iter().map(|n| (n.id.as_str(), n.to.as_e164(), n.created)).collect();
        let sequence = alice.sequence + 1;
        assert_eq!(
            sent,
            [
                (format!("alice/{sequence}/a1").as_str(), "+41791234567", when),
                (format!("alice/{sequence}/a3").as_str(), "+41791234569", when),
            ],
            "the abandoned enrolment's number gets none"
        );
        let quiet = plan_deletion(&admin, &alice.id, Some(&snapshot), &[], &no_policy(), at(9)).expect("allowed");
        assert!(matches!(quiet.change, Change::DeleteUser { notices, .. } if notices.is_empty()));
    }
}
