//! Self-protection: what a caller needs before it weakens the protection of its own
//! account (docs/CONTRACT.md, "Protecting one's own account").
//!
//! The login policy protects each user from a stolen token of its own: it forbids removing
//! the last verified second factor while MFA is forced, and asks for a recent second-factor
//! sign-in before a verified one is removed. Every other way for an account to weaken its
//! own protection must meet the same rules, or the rules could be switched off by the
//! account they protect: deleting itself (and being created again without a factor),
//! enrolling another phone, and loosening the policy in force for its own organization.
//!
//! The rules apply whenever the token's `sub` is the account's id
//! ([`Caller::bears_id_of`]), whatever organization the token names and whatever roles it
//! holds: matching the organization may be needed to *gain* the rights of the user itself,
//! never to *escape* its limits. They apply only to an account that holds a verified
//! authenticator: one without has no second factor to lose or to prove.

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Caller, LoginPolicy};

/// How recent a second-factor sign-in a loosening of one's own policy needs when the policy
/// asks no step-up of its own: the loosening turns the rules off for later, so a token that
/// proved a second factor long ago (or a refreshed one that kept its first `amr`) is not
/// enough.
pub const LOOSENING_STEP_UP_MAX_AGE: TimeDelta = TimeDelta::minutes(5);

/// A write that weakens the protection of the caller's own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakening {
    /// Removing one of its verified authenticators; `last` when no other verified one remains.
    RemoveFactor { last: bool },
    /// Deleting itself, and with it every verified authenticator it holds.
    DeleteSelf,
    /// Enrolling another phone while it holds a verified authenticator: a phone of a thief's
    /// would become a second factor of the account.
    AddFactor,
    /// Loosening the login policy in force for its own organization: MFA no longer forced,
    /// a step-up age raised or turned off, removal notices turned off.
    LoosenPolicy,
}

/// Why a weakening of one's own account is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtectionRefusal {
    /// The policy forces MFA and the write would leave the account without a verified
    /// second factor; only an administrator acting on the account may.
    #[error("the login policy forces MFA and this would leave the account without a verified second factor")]
    LastFactor,
    /// The caller's token does not show a sign-in with a second factor within `max_age`.
    #[error("a sign-in with a second factor within the last {} seconds is needed", max_age.num_seconds())]
    StepUpRequired { max_age: TimeDelta },
}

/// Whether `caller` may make `weakening` to its own account under `policy`, the login
/// policy in force for the account now, at `now`.
///
/// - Removing its last verified factor or deleting itself while `policy` forces MFA:
///   [`ProtectionRefusal::LastFactor`], checked first.
/// - Any weakening while `policy` asks a step-up: a second-factor sign-in within its age.
/// - Loosening `policy` when it asks no step-up: a second-factor sign-in within
///   [`LOOSENING_STEP_UP_MAX_AGE`]. A password-only token must not turn off what the policy
///   demands, and a policy that asks nothing else still says the account's second factor
///   matters. (Refusing every loosening of one's own policy outright, as the last factor
///   is refused, would leave an organization's only owner unable ever to relax it.)
///
/// # Errors
/// The [`ProtectionRefusal`] of the first rule that refuses.
pub fn protect_own_account(
    caller: &Caller,
    weakening: Weakening,
    policy: &LoginPolicy,
    now: DateTime<Utc>,
) -> Result<(), ProtectionRefusal> {
    let leaves_no_factor = matches!(weakening, Weakening::RemoveFactor { last: true } | Weakening::DeleteSelf);
    if leaves_no_factor && policy.force_mfa {
        return Err(ProtectionRefusal::LastFactor);
    }
    let max_age = match weakening {
        _ if policy.asks_step_up() => policy.self_removal_step_up_max_age,
        Weakening::LoosenPolicy => LOOSENING_STEP_UP_MAX_AGE,
        _ => return Ok(()),
    };
    if caller.authentication.is_second_factor_within(max_age, now) {
        Ok(())
    } else {
        Err(ProtectionRefusal::StepUpRequired { max_age })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Authentication;
    use crate::access::tests::caller;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).single().expect("valid time")
    }

    fn signed_in(methods: &[&str], minutes_ago: i64) -> Caller {
        let mut alice = caller("alice", &[]);
        alice.authentication = Authentication {
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            at: Some(now() - TimeDelta::minutes(minutes_ago)),
        };
        alice
    }

    fn policy(force_mfa: bool, step_up_minutes: i64, notify: bool) -> LoginPolicy {
        LoginPolicy::new(force_mfa, TimeDelta::minutes(step_up_minutes), notify).expect("valid")
    }

    const ALL: [Weakening; 5] = [
        Weakening::RemoveFactor { last: false },
        Weakening::RemoveFactor { last: true },
        Weakening::DeleteSelf,
        Weakening::AddFactor,
        Weakening::LoosenPolicy,
    ];

    #[test]
    fn under_the_built_in_policy_every_weakening_but_a_loosening_needs_nothing() {
        let password_only = signed_in(&["pwd"], 0);
        for weakening in ALL {
            let outcome = protect_own_account(&password_only, weakening, &LoginPolicy::default(), now());
            assert_eq!(outcome.is_ok(), weakening != Weakening::LoosenPolicy, "{weakening:?}");
        }
    }

    #[test]
    fn forced_mfa_keeps_the_last_factor_whatever_the_sign_in_and_loosening_it_needs_a_second_factor() {
        let mfa = policy(true, 0, false);
        let stepped_up = signed_in(&["pwd", "sms"], 1);
        let password_only = signed_in(&["pwd"], 1);
        let cases = [
            (Weakening::RemoveFactor { last: true }, &stepped_up, Err(ProtectionRefusal::LastFactor)),
            (Weakening::DeleteSelf, &stepped_up, Err(ProtectionRefusal::LastFactor)),
            (Weakening::RemoveFactor { last: false }, &password_only, Ok(())),
            (Weakening::AddFactor, &password_only, Ok(())),
            (
                Weakening::LoosenPolicy,
                &password_only,
                Err(ProtectionRefusal::StepUpRequired { max_age: LOOSENING_STEP_UP_MAX_AGE }),
            ),
            (Weakening::LoosenPolicy, &stepped_up, Ok(())),
        ];
        for (weakening, who, expected) in cases {
            assert_eq!(protect_own_account(who, weakening, &mfa, now()), expected, "{weakening:?}");
        }
    }

    #[test]
    fn a_step_up_age_asks_every_weakening_for_a_recent_second_factor() {
        let step_up = policy(false, 5, true);
        let refused = Err(ProtectionRefusal::StepUpRequired { max_age: TimeDelta::minutes(5) });
        for weakening in ALL {
            for (who, case) in [
                (signed_in(&["pwd"], 1), "a password only"),
                (signed_in(&["pwd", "otp"], 10), "a second factor ten minutes ago"),
                (caller("alice", &[]), "a token that says nothing"),
            ] {
                assert_eq!(protect_own_account(&who, weakening, &step_up, now()), refused, "{weakening:?}: {case}");
            }
            let fresh = signed_in(&["pwd", "hwk"], 2);
            assert_eq!(protect_own_account(&fresh, weakening, &step_up, now()), Ok(()), "{weakening:?}");
        }
    }

    #[test]
    fn turning_notices_off_needs_a_recent_second_factor_even_when_nothing_else_is_asked() {
        let notify_only = policy(false, 0, true);
        let outcome = |who: &Caller| protect_own_account(who, Weakening::LoosenPolicy, &notify_only, now());
        let refused = Err(ProtectionRefusal::StepUpRequired { max_age: LOOSENING_STEP_UP_MAX_AGE });
        assert_eq!(outcome(&signed_in(&["pwd"], 0)), refused, "a password only");
        assert_eq!(outcome(&signed_in(&["mfa"], 600)), refused, "a second factor ten hours ago");
        assert_eq!(outcome(&signed_in(&["mfa"], 4)), Ok(()), "four minutes ago");
    }
}
