//! Registering an OTP SMS authenticator: adding a phone, and proving it with the code
//! sent to it.

use chrono::{DateTime, Utc};

use crate::access::{Action, authorize};
use crate::protection::{ProtectionRefusal, Weakening, protect_own_account};
use crate::{
    AccessRefusal, Caller, Change, CodeHash, CodePolicy, CodeRejection, Decision, Event, EventKind, LoginPolicy,
    OtpSmsAuthenticator, OtpSmsId, PendingCode, PhoneNumber, Transition, UserId, UserSnapshot, check_code,
};

/// How a new phone is to be proven (the `verification` oneof of `SetPhone` and `SetEmail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verification {
    /// Send the code (also when nothing is said).
    #[default]
    SendCode,
    /// Return the code to the caller instead of sending it.
    ReturnCode,
    /// Store it as verified at once.
    IsVerified,
}

impl Verification {
    /// What the caller does: sending the code is the ordinary way; returning it or
    /// skipping it lets the caller vouch for a phone it did not prove.
    pub fn action(self, self_service: bool) -> Action {
        match self {
            Self::SendCode => Action::ManageCredentials { self_service },
            Self::ReturnCode | Self::IsVerified => Action::SkipPhoneProof,
        }
    }
}

/// An authenticator to add, as the use case prepared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOtpSms {
    pub id: OtpSmsId,
    pub phone: PhoneNumber,
    pub verification: Verification,
    /// The hash of the code that is to prove the phone; unused for [`Verification::IsVerified`].
    pub code: Option<CodeHash>,
}

/// Why an authenticator cannot be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefusal {
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    /// The caller enrolling a phone of its own while it holds a verified authenticator,
    /// without the step-up the login policy asks for removing one.
    #[error(transparent)]
    Protection(#[from] ProtectionRefusal),
    #[error("the user already has an OTP SMS authenticator on this number")]
    PhoneTaken,
}

/// Decides whether `caller` may add `new` to user `target_user` (as read in `snapshot`),
/// under `login`, the login policy in force for the user's organization.
///
/// # Errors
/// [`RegistrationRefusal::Access`] by the access rules (returning or skipping the code
/// needs write permission and is never allowed on oneself), then
/// [`RegistrationRefusal::Protection`] for a caller enrolling a phone of its own while it
/// holds a verified authenticator, without the step-up `login` asks
/// ([`protect_own_account`]), then [`RegistrationRefusal::PhoneTaken`] when the user holds
/// the number already.
#[allow(clippy::too_many_arguments)] // the inputs of one rule, each needed
pub fn plan_registration(
    caller: &Caller,
    target_user: &UserId,
    snapshot: Option<&UserSnapshot>,
    new: NewOtpSms,
    self_service: bool,
    login: &LoginPolicy,
    code_policy: &CodePolicy,
    now: DateTime<Utc>,
) -> Result<Decision, RegistrationRefusal> {
    let user = authorize(caller, target_user, snapshot.map(|s| &s.user), new.verification.action(self_service))?;
    let snapshot = snapshot.ok_or(AccessRefusal::UserNotFound)?;
    if caller.bears_id_of(user) && snapshot.otp_sms.iter().any(|a| a.verified) {
        protect_own_account(caller, Weakening::AddFactor, login, now)?;
    }
    if snapshot.otp_sms.iter().any(|a| a.phone == new.phone) {
        return Err(RegistrationRefusal::PhoneTaken);
    }
    let transition = Transition::next(&snapshot.user, now);
    let at = transition.to.changed;
    let verified = new.verification == Verification::IsVerified;
    let pending_code = new.code.filter(|_| !verified).map(|hash| PendingCode::issue(hash, at, code_policy));
    let authenticator =
        OtpSmsAuthenticator { id: new.id, user: snapshot.user.id.clone(), phone: new.phone, verified, created: at };
    Ok(Decision {
        event: Event {
            user: snapshot.user.id.clone(),
            actor: caller.user_id.clone(),
            origin: caller.origin.clone(),
            at,
            kind: EventKind::OtpSmsAdded {
                authenticator: authenticator.id.clone(),
                masked_phone: authenticator.phone.masked(),
                verified,
            },
        },
        change: Change::AddOtpSms { authenticator, pending_code },
        transition,
    })
}

/// What a typed code leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// The right code in time: it is used up and the authenticator verified.
    Verified(Box<Decision>),
    /// A wrong code: its try was taken before the comparison
    /// ([`PendingCode::is_open`]); `void` says it was the last one allowed.
    Wrong { void: bool },
}

/// Why a typed code is not even compared, or cannot be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerificationRefusal {
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    #[error("the user has no such OTP SMS authenticator")]
    NotFound,
    #[error("the authenticator is verified already")]
    AlreadyVerified,
    #[error("no code is pending for the authenticator")]
    NoPendingCode,
    /// Expired or exhausted: the code is void, whatever was typed.
    #[error(transparent)]
    Void(CodeRejection),
}

/// Checks `presented` (the keyed hash of the typed code) for authenticator `target` of
/// user `target_user`, as read in `snapshot` with its `pending` code.
///
/// # Errors
/// [`VerificationRefusal`]: the access rules, then a missing or verified authenticator, a
/// missing code, and a code that has expired or was tried too often.
#[allow(clippy::too_many_arguments)] // the inputs of one rule, each needed
pub fn plan_verification(
    caller: &Caller,
    target_user: &UserId,
    snapshot: Option<&UserSnapshot>,
    target: &OtpSmsId,
    pending: Option<&PendingCode>,
    presented: &CodeHash,
    self_service: bool,
    code_policy: &CodePolicy,
    now: DateTime<Utc>,
) -> Result<CodeCheck, VerificationRefusal> {
    authorize(caller, target_user, snapshot.map(|s| &s.user), Action::ManageCredentials { self_service })?;
    let snapshot = snapshot.ok_or(AccessRefusal::UserNotFound)?;
    let authenticator = snapshot.otp_sms(target).ok_or(VerificationRefusal::NotFound)?;
    if authenticator.verified {
        return Err(VerificationRefusal::AlreadyVerified);
    }
    let pending = pending.ok_or(VerificationRefusal::NoPendingCode)?;
    match check_code(pending, presented, now, code_policy) {
        Ok(()) => {
            let transition = Transition::next(&snapshot.user, now);
            Ok(CodeCheck::Verified(Box::new(Decision {
                event: Event {
                    user: snapshot.user.id.clone(),
                    actor: caller.user_id.clone(),
                    origin: caller.origin.clone(),
                    at: transition.to.changed,
                    kind: EventKind::OtpSmsVerified { authenticator: authenticator.id.clone() },
                },
                change: Change::VerifyOtpSms { authenticator: authenticator.id.clone() },
                transition,
            })))
        }
        Err(CodeRejection::Wrong { void }) => Ok(CodeCheck::Wrong { void }),
        Err(rejection) => Err(VerificationRefusal::Void(rejection)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::{caller, user};
    use crate::{Authentication, CodeKey, Permission, VerificationCode};
    use chrono::{TimeDelta, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 22, 9, 31, 2).single().expect("valid time")
    }

    fn id(s: &str) -> OtpSmsId {
        OtpSmsId::new(s).expect("valid id")
    }

    fn phone(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).expect("valid phone")
    }

    fn hash(code: &str) -> CodeHash {
        CodeKey::new([5u8; 32]).expect("32 bytes").hash(&id("a1"), &VerificationCode::parse(code).expect("digits"))
    }

    fn alice_with(held: &[(&str, &str, bool)]) -> UserSnapshot {
        let alice = user("alice", "org-a");
        let otp_sms = held
            .iter()
            .map(|(otp, number, verified)| OtpSmsAuthenticator {
                id: id(otp),
                user: alice.id.clone(),
                phone: phone(number),
                verified: *verified,
                created: now() - TimeDelta::minutes(1),
            })
            .collect();
        UserSnapshot { user: alice, otp_sms }
    }

    fn new(verification: Verification) -> NewOtpSms {
        NewOtpSms { id: id("a2"), phone: phone("+41791234568"), verification, code: Some(hash("123456")) }
    }

    fn admin() -> Caller {
        caller("admin", &[(Permission::UserWrite, Some("org-a"))])
    }

    #[test]
    fn an_added_authenticator_waits_for_its_code_on_the_next_version() {
        let snapshot = alice_with(&[("a1", "+41791234567", true)]);
        let decision = plan_registration(
            &caller("alice", &[]),
            &snapshot.user.id,
            Some(&snapshot),
            new(Verification::SendCode),
            true,
            &LoginPolicy::default(),
            &CodePolicy::default(),
            now(),
        )
        .expect("allowed");

        assert_eq!(decision.transition, Transition::next(&snapshot.user, now()));
        let Change::AddOtpSms { authenticator, pending_code } = &decision.change else {
            panic!("an add: {:?}", decision.change)
        };
        assert_eq!((authenticator.id.as_str(), authenticator.verified, authenticator.created), ("a2", false, now()));
        assert_eq!(pending_code, &Some(PendingCode::issue(hash("123456"), now(), &CodePolicy::default())));
        assert_eq!(decision.event.event_type(), "user.human.mfa.otp.sms.added");
    }

    #[test]
    fn an_administrator_may_store_a_number_verified_without_a_code() {
        let snapshot = alice_with(&[]);
        let decision = plan_registration(
            &admin(),
            &snapshot.user.id,
            Some(&snapshot),
            new(Verification::IsVerified),
            true,
            &LoginPolicy::default(),
            &CodePolicy::default(),
            now(),
        )
        .expect("allowed");

        assert!(
            matches!(&decision.change, Change::AddOtpSms { authenticator, pending_code: None } if authenticator.verified)
        );
    }

    #[test]
    fn a_number_the_user_holds_already_is_taken_and_skipping_the_proof_on_oneself_is_denied() {
        let snapshot = alice_with(&[("a1", "+41791234568", false)]);
        let alice = caller("alice", &[(Permission::UserWrite, None)]);
        let cases = [
            (&alice, Verification::SendCode, RegistrationRefusal::PhoneTaken),
            (&alice, Verification::ReturnCode, RegistrationRefusal::Access(AccessRefusal::PermissionDenied)),
            (&alice, Verification::IsVerified, RegistrationRefusal::Access(AccessRefusal::PermissionDenied)),
        ];
        for (who, verification, expected) in cases {
            let refused = plan_registration(
                who,
                &snapshot.user.id,
                Some(&snapshot),
                new(verification),
                true,
                &LoginPolicy::default(),
                &CodePolicy::default(),
                now(),
            );
            assert_eq!(refused, Err(expected), "{verification:?}");
        }
    }

    #[test]
    fn enrolling_another_phone_of_ones_own_needs_the_step_up_the_policy_asks_for_removing_one() {
        let step_up = LoginPolicy::new(false, TimeDelta::minutes(5), false).expect("valid");
        let add = |who: &Caller, snapshot: &UserSnapshot| {
            plan_registration(
                who,
                &snapshot.user.id,
                Some(snapshot),
                new(Verification::SendCode),
                true,
                &step_up,
                &CodePolicy::default(),
                now(),
            )
            .map(|_| ())
        };
        let holding = alice_with(&[("a1", "+41791234567", true)]);
        let password_only = Caller {
            authentication: Authentication { methods: vec!["pwd".into()], at: Some(now()) },
            ..caller("alice", &[])
        };
        let refused =
            Err(RegistrationRefusal::Protection(ProtectionRefusal::StepUpRequired { max_age: TimeDelta::minutes(5) }));
        assert_eq!(add(&password_only, &holding), refused);
        // A manager's role and a token without the organization claim change nothing.
        let manager_without_org = Caller { org: None, ..Caller { grants: admin().grants, ..password_only.clone() } };
        assert_eq!(add(&manager_without_org, &holding), refused);
        // A first factor (nothing verified yet) needs no step-up; nor does an administrator.
        assert_eq!(add(&password_only, &alice_with(&[("a1", "+41791234567", false)])), Ok(()));
        assert_eq!(add(&admin(), &holding), Ok(()));
        let stepped_up = Caller {
            authentication: Authentication {
                methods: vec!["pwd".into(), "sms".into()],
                at: Some(now() - TimeDelta::minutes(1)),
            },
            ..caller("alice", &[])
        };
        assert_eq!(add(&stepped_up, &holding), Ok(()));
    }

    fn verify(
        snapshot: &UserSnapshot,
        pending: Option<&PendingCode>,
        typed: &str,
    ) -> Result<CodeCheck, VerificationRefusal> {
        plan_verification(
            &caller("alice", &[]),
            &snapshot.user.id,
            Some(snapshot),
            &id("a1"),
            pending,
            &hash(typed),
            true,
            &CodePolicy::default(),
            now(),
        )
    }

    fn pending(failed_attempts: u32, expires_in: TimeDelta) -> PendingCode {
        PendingCode { hash: hash("123456"), expires_at: now() + expires_in, failed_attempts }
    }

    #[test]
    fn the_right_code_verifies_on_the_next_version() {
        let snapshot = alice_with(&[("a1", "+41791234567", false)]);
        let check = verify(&snapshot, Some(&pending(0, TimeDelta::minutes(5))), "123456").expect("checked");

        let CodeCheck::Verified(decision) = check else { panic!("verified: {check:?}") };
        assert_eq!(decision.change, Change::VerifyOtpSms { authenticator: id("a1") });
        assert_eq!(decision.transition, Transition::next(&snapshot.user, now()));
    }

    #[test]
    fn a_wrong_code_is_refused_and_the_last_allowed_try_voids_it() {
        let snapshot = alice_with(&[("a1", "+41791234567", false)]);
        for (before, void) in [(0, false), (3, false), (4, true)] {
            let code = pending(before, TimeDelta::minutes(5));
            let check = verify(&snapshot, Some(&code), "000000").expect("checked");
            assert_eq!(check, CodeCheck::Wrong { void }, "after {before} tries");
        }
    }

    #[test]
    fn refusals_come_in_the_order_that_reveals_nothing() {
        let unverified = alice_with(&[("a1", "+41791234567", false)]);
        let verified = alice_with(&[("a1", "+41791234567", true)]);
        let none = alice_with(&[]);
        let fresh = pending(0, TimeDelta::minutes(5));
        let cases = [
            (&none, Some(&fresh), VerificationRefusal::NotFound, "no such authenticator"),
            (&verified, Some(&fresh), VerificationRefusal::AlreadyVerified, "verified already"),
            (&unverified, None, VerificationRefusal::NoPendingCode, "no code"),
        ];
        for (snapshot, code, expected, case) in cases {
            assert_eq!(verify(snapshot, code, "123456"), Err(expected), "{case}");
        }
        let expired = pending(0, TimeDelta::zero());
        let exhausted = pending(5, TimeDelta::minutes(5));
        assert_eq!(
            verify(&unverified, Some(&expired), "123456"),
            Err(VerificationRefusal::Void(CodeRejection::Expired))
        );
        assert_eq!(
            verify(&unverified, Some(&exhausted), "123456"),
            Err(VerificationRefusal::Void(CodeRejection::Exhausted))
        );
        let reader = caller("reader", &[(Permission::UserRead, Some("org-a"))]);
        let denied = plan_verification(
            &reader,
            &unverified.user.id,
            Some(&unverified),
            &id("a1"),
            Some(&fresh),
            &hash("123456"),
            true,
            &CodePolicy::default(),
            now(),
        );
        assert_eq!(denied, Err(VerificationRefusal::Access(AccessRefusal::PermissionDenied)));
    }
}
