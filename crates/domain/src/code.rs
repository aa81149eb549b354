//! One-time verification codes: six digits, stored only as a keyed hash, valid for a
//! while, void after too many wrong tries, compared in constant time, used once.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{OtpSmsId, SessionId};

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// A code as sent to or typed by a user. Its `Debug` output is redacted; the digits are
/// reachable only through [`VerificationCode::expose`], for the SMS text and the
/// `returnCode` answer.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationCode(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a verification code is exactly six digits")]
pub struct CodeFormatError;

impl VerificationCode {
    /// The code for a number drawn uniformly from `0..1_000_000` by a CSPRNG.
    pub fn from_number(n: u32) -> Self {
        Self(format!("{:06}", n % 1_000_000))
    }

    /// A code typed by a user: six ASCII digits, surrounding whitespace ignored.
    ///
    /// # Errors
    /// [`CodeFormatError`] for anything else.
    pub fn parse(input: &str) -> Result<Self, CodeFormatError> {
        let input = input.trim();
        if input.len() == CODE_DIGITS && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(input.to_owned()))
        } else {
            Err(CodeFormatError)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationCode(******)")
    }
}

/// The secret key of the code hashes (HMAC-SHA256). A database dump alone then does not
/// let anyone test the million possible codes offline.
#[derive(Clone)]
pub struct CodeKey(Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the code hashing key must be at least 32 bytes")]
pub struct CodeKeyError;

impl CodeKey {
    pub const MIN_BYTES: usize = 32;

    /// # Errors
    /// [`CodeKeyError`] for keys shorter than [`Self::MIN_BYTES`].
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self, CodeKeyError> {
        let key = key.into();
        if key.len() < Self::MIN_BYTES {
            return Err(CodeKeyError);
        }
        Ok(Self(key))
    }

    /// The hash of a registration `code` for `authenticator`: binding the authenticator's
    /// id means a code issued for one authenticator can never verify another.
    pub fn hash(&self, authenticator: &OtpSmsId, code: &VerificationCode) -> CodeHash {
        self.hash_parts(&[authenticator.as_str()], code)
    }

    /// The hash of a sign-in `code` sent for `authenticator` to `session`. Bound to its
    /// purpose, its session and its authenticator: it never passes a registration check
    /// (whose input holds one separator, this one three; ids hold no control characters),
    /// another session's check, nor the reverse.
    pub fn hash_sign_in(&self, session: &SessionId, authenticator: &OtpSmsId, code: &VerificationCode) -> CodeHash {
        self.hash_parts(&[SIGN_IN_PURPOSE, session.as_str(), authenticator.as_str()], code)
    }

    /// The HMAC of the `parts`, each followed by a NUL, then the code.
    fn hash_parts(&self, parts: &[&str], code: &VerificationCode) -> CodeHash {
        // An HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.update(code.expose().as_bytes());
        CodeHash(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey(<redacted>)")
    }
}

/// The first part of a sign-in code's hash input.
const SIGN_IN_PURPOSE: &str = "factors.sign_in";

/// The stored form of a code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CodeHash([u8; 32]);

impl CodeHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time, so the time taken leaks nothing about the stored hash.
    pub fn matches(&self, other: &CodeHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash(<redacted>)")
    }
}

/// How long codes live and how many wrong tries void them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePolicy {
    pub ttl: TimeDelta,
    pub max_attempts: u32,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self { ttl: TimeDelta::minutes(10), max_attempts: 5 }
    }
}

impl CodePolicy {
    /// Whether the `taken`-th try of a code is its last one: a wrong code then voids it.
    pub fn is_last_try(&self, taken: u32) -> bool {
        taken >= self.max_attempts
    }

    /// Sign-in codes (a session's OTP SMS challenge): 5 minutes, 5 tries.
    pub const SIGN_IN: Self = Self { ttl: TimeDelta::minutes(5), max_attempts: 5 };
}

/// How many failed code checks one user may make, across all its sessions' challenges and
/// its registrations, in a window that starts at its first failure and resets when the
/// window has passed. A code's own tries ([`CodePolicy::max_attempts`]) end with the code;
/// a new challenge would bring new ones, so without this budget every SMS the user's limit
/// allows would buy another round of guesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckBudget {
    pub max_failures: u32,
    pub window: TimeDelta,
}

impl Default for CheckBudget {
    fn default() -> Self {
        Self { max_failures: 10, window: TimeDelta::minutes(15) }
    }
}

impl CheckBudget {
    /// A window that started at or before this instant has passed at `now`: its failures
    /// no longer count.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.window
    }

    /// How long a user whose budget was spent in the window that started `since` waits at
    /// `now` (zero once it has passed).
    pub fn locked_for(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> TimeDelta {
        (since + self.window - now).max(TimeDelta::zero())
    }
}

/// A code waiting to be typed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCode {
    pub hash: CodeHash,
    pub expires_at: DateTime<Utc>,
    /// Wrong tries so far.
    pub failed_attempts: u32,
}

impl PendingCode {
    pub fn issue(hash: CodeHash, now: DateTime<Utc>, policy: &CodePolicy) -> Self {
        Self { hash, expires_at: now + policy.ttl, failed_attempts: 0 }
    }

    /// Whether a typed code may still be compared with this one at `now`: in time, and
    /// with a try left. A check takes its try (atomically, in the store) before comparing,
    /// so concurrent guesses can never be compared more than `max_attempts` times.
    pub fn is_open(&self, now: DateTime<Utc>, policy: &CodePolicy) -> bool {
        now < self.expires_at && self.failed_attempts < policy.max_attempts
    }
}

/// Why a typed code was refused ([`check_code`]); a wrong one is then counted as a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeRejection {
    /// Wrong code: one more failed attempt is recorded; `void` says it was the last one.
    #[error("the code is wrong")]
    Wrong { void: bool },
    /// The code's time is over.
    #[error("the code has expired")]
    Expired,
    /// Too many wrong tries were made before; the code is void.
    #[error("too many wrong codes were tried")]
    Exhausted,
}

/// Checks `presented` against `pending` at `now`: `Ok` means the code is right and in time,
/// and is now used up. Exhaustion and expiry are checked first, so a void code is never
/// compared at all.
///
/// # Errors
/// The [`CodeRejection`] that applies.
pub fn check_code(
    pending: &PendingCode,
    presented: &CodeHash,
    now: DateTime<Utc>,
    policy: &CodePolicy,
) -> Result<(), CodeRejection> {
    if pending.failed_attempts >= policy.max_attempts {
        return Err(CodeRejection::Exhausted);
    }
    if now >= pending.expires_at {
        return Err(CodeRejection::Expired);
    }
    if pending.hash.matches(presented) {
        Ok(())
    } else {
        Err(CodeRejection::Wrong { void: pending.failed_attempts + 1 >= policy.max_attempts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn a_spent_budget_waits_for_its_window_to_pass() {
        let budget = CheckBudget::default();
        let since = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).single().expect("valid");
        assert_eq!(budget.locked_for(since, since + TimeDelta::minutes(5)), TimeDelta::minutes(10));
        assert_eq!(budget.locked_for(since, since + TimeDelta::minutes(20)), TimeDelta::zero());
        assert_eq!(budget.cutoff(since + TimeDelta::minutes(15)), since, "a window of 15 minutes has passed");
    }

    fn key() -> CodeKey {
        CodeKey::new([7u8; 32]).expect("32 bytes")
    }

    fn id(s: &str) -> OtpSmsId {
        OtpSmsId::new(s).expect("valid id")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).single().expect("valid time")
    }

    fn pending(code: &str) -> PendingCode {
        let code = VerificationCode::parse(code).expect("six digits");
        PendingCode::issue(key().hash(&id("1"), &code), now(), &CodePolicy::default())
    }

    fn typed(code: &str) -> CodeHash {
        key().hash(&id("1"), &VerificationCode::parse(code).expect("six digits"))
    }

    #[test]
    fn the_right_code_in_time_is_accepted() {
        let check =
            check_code(&pending("123456"), &typed("123456"), now() + TimeDelta::minutes(9), &CodePolicy::default());
        assert_eq!(check, Ok(()));
    }

    #[test]
    fn a_wrong_code_is_refused_and_the_fifth_wrong_try_voids_it() {
        let policy = CodePolicy::default();
        let mut code = pending("123456");
        for attempt in 1..=5 {
            let check = check_code(&code, &typed("654321"), now(), &policy);
            assert_eq!(check, Err(CodeRejection::Wrong { void: attempt == 5 }), "attempt {attempt}");
            code.failed_attempts += 1;
        }
        assert_eq!(
            check_code(&code, &typed("123456"), now(), &policy),
            Err(CodeRejection::Exhausted),
            "even the right code"
        );
    }

    #[test]
    fn a_code_is_open_while_in_time_and_with_a_try_left() {
        let policy = CodePolicy::default();
        let mut code = pending("123456");
        assert!(code.is_open(now(), &policy));
        assert!(!code.is_open(now() + TimeDelta::minutes(10), &policy), "expired");
        code.failed_attempts = 5;
        assert!(!code.is_open(now(), &policy), "exhausted");
    }

    #[test]
    fn a_code_expires_after_ten_minutes() {
        let check =
            check_code(&pending("123456"), &typed("123456"), now() + TimeDelta::minutes(10), &CodePolicy::default());
        assert_eq!(check, Err(CodeRejection::Expired));
    }

    #[test]
    fn a_code_hashed_for_one_authenticator_does_not_match_another() {
        let code = VerificationCode::parse("123456").expect("six digits");
        assert!(!key().hash(&id("1"), &code).matches(&key().hash(&id("2"), &code)));
    }

    #[test]
    fn a_code_is_bound_to_its_purpose_its_session_and_its_authenticator() {
        let code = VerificationCode::parse("123456").expect("six digits");
        let session = |s: &str| SessionId::new(s).expect("valid id");
        let sign_in = key().hash_sign_in(&session("s1"), &id("1"), &code);
        assert!(!sign_in.matches(&key().hash(&id("1"), &code)), "a registration code is no sign-in code");
        assert!(!sign_in.matches(&key().hash_sign_in(&session("s2"), &id("1"), &code)), "another session");
        assert!(!sign_in.matches(&key().hash_sign_in(&session("s1"), &id("2"), &code)), "another authenticator");
        assert!(sign_in.matches(&key().hash_sign_in(&session("s1"), &id("1"), &code)));
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(CodeKey::new([0u8; 31]).map(|_| ()), Err(CodeKeyError));
    }

    #[test]
    fn codes_never_show_in_debug_output() {
        let code = VerificationCode::parse("123456").expect("six digits");
        assert!(!format!("{code:?} {:?} {:?}", typed("123456"), key()).contains("123456"));
    }

    proptest! {
        #[test]
        fn codes_from_numbers_are_six_digits(n: u32) {
            let code = VerificationCode::from_number(n);
            prop_assert_eq!(VerificationCode::parse(code.expose()), Ok(code.clone()));
        }

        #[test]
        fn only_six_digits_parse(s in ".{0,12}") {
            let valid = s.trim().len() == 6 && s.trim().bytes().all(|b| b.is_ascii_digit());
            prop_assert_eq!(VerificationCode::parse(&s).is_ok(), valid);
        }
    }
}
