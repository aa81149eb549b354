//! The headline rule: removing an OTP SMS authenticator from a user.

use chrono::{DateTime, Utc};

use crate::access::{Action, authorize};
use crate::{AccessRefusal, Caller, Event, EventKind, OtpSmsAuthenticator, OtpSmsId, User, UserId};

/// Operator choices that shape removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovalPolicy {
    /// Whether users may remove their own authenticators (CONTRACT.md rule 2; on by default).
    pub self_service: bool,
}

impl Default for RemovalPolicy {
    fn default() -> Self {
        Self { self_service: true }
    }
}

/// A removal the rules allow, with the audit event to append when it is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub user: UserId,
    pub authenticator: OtpSmsId,
    pub event: Event,
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
/// the user (`None`: not found) and its authenticators as read, the policy and `now`.
///
/// The store still removes with a guard on the row, so of two concurrent removals that
/// both pass this check, one finds nothing to remove.
///
/// # Errors
/// [`RemovalRefusal::Access`] by the access rules (CONTRACT.md rules 1 to 4), then
/// [`RemovalRefusal::AuthenticatorNotFound`] when `target` is not one of the user's.
pub fn plan_removal(
    caller: &Caller,
    target_user: &UserId,
    user: Option<&User>,
    authenticators: &[OtpSmsAuthenticator],
    target: &OtpSmsId,
    policy: &RemovalPolicy,
    now: DateTime<Utc>,
) -> Result<Removal, RemovalRefusal> {
    let user = authorize(caller, target_user, user, Action::ManageCredentials { self_service: policy.self_service })?;
    let authenticator = authenticators
        .iter()
        .find(|a| &a.id == target && a.user == user.id)
        .ok_or(RemovalRefusal::AuthenticatorNotFound)?;
    Ok(Removal {
        user: user.id.clone(),
        authenticator: authenticator.id.clone(),
        event: Event {
            user: user.id.clone(),
            actor: caller.user_id.clone(),
            at: now,
            kind: EventKind::OtpSmsRemoved {
                authenticator: authenticator.id.clone(),
                masked_phone: authenticator.phone.masked(),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Permission;
    use crate::access::tests::{caller, user};
    use crate::{PhoneNumber, UserId};
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
    ) -> Result<Removal, RemovalRefusal> {
        let target_user = UserId::new("alice").expect("valid id");
        let target = OtpSmsId::new(target).expect("valid id");
        plan_removal(who, &target_user, user, held, &target, &RemovalPolicy::default(), now())
    }

    #[test]
    fn a_user_removes_its_own_authenticator_and_the_event_says_who_what_and_when() {
        let alice = user("alice", "org-a");
        let removal =
            plan(&caller("alice", &[]), "a1", Some(&alice), &[authenticator("a1", "alice")]).expect("allowed");
        assert_eq!(removal.authenticator.as_str(), "a1");
        assert_eq!(removal.event.event_type(), "user.human.mfa.otp.sms.removed");
        assert_eq!(removal.event.actor.as_str(), "alice");
        assert_eq!(removal.event.at, now());
        assert_eq!(
            removal.event.kind,
            EventKind::OtpSmsRemoved {
                authenticator: removal.authenticator.clone(),
                masked_phone: "+41******567".into()
            }
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
        let refused = plan_removal(
            &caller("alice", &[]),
            &alice.id,
            Some(&alice),
            &[authenticator("a1", "alice")],
            &OtpSmsId::new("a1").expect("valid id"),
            &RemovalPolicy { self_service: false },
            now(),
        );
        assert_eq!(refused, Err(RemovalRefusal::Access(AccessRefusal::PermissionDenied)));
    }
}
