//! The headline rule: removing an OTP SMS authenticator from a user.

use chrono::{DateTime, Utc};

use crate::access::{Action, authorize};
use crate::{AccessRefusal, Caller, Change, Decision, Event, EventKind, OtpSmsId, Transition, UserId, UserSnapshot};

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
}

/// Decides whether `caller` may remove authenticator `target` of user `target_user`, given
/// the user as read (`None`: not found), the policy and `now`.
///
/// The decision is made on the snapshot's version; of two concurrent removals that both
/// pass this check, the store applies one and refuses the other, whose caller then reads
/// again and finds the authenticator gone.
///
/// # Errors
/// [`RemovalRefusal::Access`] by the access rules (docs/CONTRACT.md, rules 1 to 4), then
/// [`RemovalRefusal::AuthenticatorNotFound`] when `target` is not one of the user's.
pub fn plan_removal(
    caller: &Caller,
    target_user: &UserId,
    snapshot: Option<&UserSnapshot>,
    target: &OtpSmsId,
    policy: &RemovalPolicy,
    now: DateTime<Utc>,
) -> Result<Decision, RemovalRefusal> {
    let action = Action::ManageCredentials { self_service: policy.self_service };
    authorize(caller, target_user, snapshot.map(|s| &s.user), action)?;
    snapshot.and_then(|s| removal(s, target, &caller.user_id, now)).ok_or(RemovalRefusal::AuthenticatorNotFound)
}

/// The removal of authenticator `target` from the snapshot's user on behalf of `actor`,
/// with no access rule: for taking back an authenticator whose code could not be sent.
/// `None` when the user does not hold it (any more).
pub fn removal(snapshot: &UserSnapshot, target: &OtpSmsId, actor: &UserId, now: DateTime<Utc>) -> Option<Decision> {
    let authenticator = snapshot.otp_sms(target)?;
    let transition = Transition::next(&snapshot.user, now);
    Some(Decision {
        event: Event {
            user: snapshot.user.id.clone(),
            actor: actor.clone(),
            at: transition.to.changed,
            kind: EventKind::OtpSmsRemoved {
                authenticator: authenticator.id.clone(),
                masked_phone: authenticator.phone.masked(),
            },
        },
        change: Change::RemoveOtpSms { authenticator: authenticator.id.clone() },
        transition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Permission;
    use crate::access::tests::{caller, user};
    use crate::{OtpSmsAuthenticator, PhoneNumber, User, UserId};
    use chrono::TimeZone;

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
        plan_removal(who, &target_user, snapshot.as_ref(), &target, &RemovalPolicy::default(), now())
    }

    #[test]
    fn a_user_removes_its_own_authenticator_and_the_event_says_who_what_and_when() {
        let alice = user("alice", "org-a");
        let removal =
            plan(&caller("alice", &[]), "a1", Some(&alice), &[authenticator("a1", "alice")]).expect("allowed");
        let a1 = OtpSmsId::new("a1").expect("valid id");
        assert_eq!(removal.change, Change::RemoveOtpSms { authenticator: a1.clone() });
        assert_eq!(removal.transition, Transition::next(&alice, now()), "decided on the version read");
        assert_eq!(removal.event.event_type(), "user.human.mfa.otp.sms.removed");
        assert_eq!(removal.event.actor.as_str(), "alice");
        assert_eq!(removal.event.at, now());
        assert_eq!(
            removal.event.kind,
            EventKind::OtpSmsRemoved { authenticator: a1, masked_phone: "+41******567".into() }
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
            now(),
        );
        assert_eq!(refused, Err(RemovalRefusal::Access(AccessRefusal::PermissionDenied)));
    }
}
