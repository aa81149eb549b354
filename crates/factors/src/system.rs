//! The standard implementations of the small system ports: the clock, id minting and
//! code generation. They use only the standard library and the OS random source.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, Utc};
use factors_domain::{SessionToken, VerificationCode, compose_flake_id};
use rand::Rng;
use rand::rngs::OsRng;

use factors_application::ports::{Clock, CodeGenerator, IdGenerator, TokenGenerator};

/// The system clock, truncated to microseconds so that a time read back from Postgres
/// equals the time written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// Start of the id clock: 2024-01-01T00:00:00Z, in milliseconds since the Unix epoch.
const FLAKE_EPOCH_MS: u64 = 1_704_067_200_000;

/// Mints ZITADEL-style ids: decimal strings of a time-ordered 63-bit integer (time in
/// 10 ms units, a sequence within the unit, the node). Replicas must use distinct nodes.
#[derive(Debug)]
pub struct FlakeIds {
    node: u16,
    state: Mutex<(u64, u8)>,
}

impl FlakeIds {
    pub fn new(node: u16) -> Self {
        Self { node, state: Mutex::new((0, 0)) }
    }

    fn elapsed_units() -> u64 {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        u64::try_from(ms).unwrap_or(u64::MAX).saturating_sub(FLAKE_EPOCH_MS) / 10
    }
}

impl IdGenerator for FlakeIds {
    fn next_id(&self) -> String {
        // A poisoned lock only means another thread panicked mid-update; the state is two
        // plain integers and stays usable.
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last_unit, sequence) = *state;
        let now = Self::elapsed_units();
        // Time never goes backwards for ids: a clock step back reuses the last unit, and a
        // full unit (256 ids in 10 ms) borrows the next one.
        let (unit, sequence) = match now.cmp(&last_unit) {
            std::cmp::Ordering::Greater => (now, 0),
            _ if sequence < u8::MAX => (last_unit, sequence + 1),
            _ => (last_unit + 1, 0),
        };
        *state = (unit, sequence);
        compose_flake_id(unit, sequence, self.node).to_string()
    }
}

/// Six-digit codes drawn uniformly from the operating system's CSPRNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRngCodes;

impl CodeGenerator for OsRngCodes {
    fn generate(&self) -> VerificationCode {
        VerificationCode::from_number(OsRng.gen_range(0..1_000_000))
    }
}

/// Session tokens: 32 bytes from the operating system's CSPRNG, base64url without padding.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRngTokens;

impl TokenGenerator for OsRngTokens {
    fn generate(&self) -> SessionToken {
        let mut bytes = [0u8; 32];
        OsRng.fill(&mut bytes);
        SessionToken::new(URL_SAFE_NO_PAD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn minted_ids_are_unique_and_increasing() {
        let ids = FlakeIds::new(7);
        let minted: Vec<u64> = (0..5_000).map(|_| ids.next_id().parse().expect("decimal")).collect();
        assert!(minted.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
        assert!(minted.iter().all(|id| *id < (1 << 63)), "63 bits");
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: HashSet<String> = (0..200).map(|_| OsRngCodes.generate().expose().to_owned()).collect();
        assert!(codes.iter().all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(codes.len() > 190, "200 draws from a million rarely collide: {}", codes.len());
    }

    #[test]
    fn the_clock_keeps_microseconds_only() {
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1_000, 0);
    }

    #[test]
    fn session_tokens_are_43_url_safe_characters_and_never_repeat() {
        let tokens: HashSet<String> = (0..1000).map(|_| OsRngTokens.generate().expose().to_owned()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(
            tokens
                .iter()
                .all(|t| t.len() == 43 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        );
    }
}
