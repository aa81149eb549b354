//! Sliding-window rate limits: at most `limit` events in any window of `window_ms`. The
//! in-process limiter runs this function; the Redis limiter runs the same rule in Lua.

use std::collections::VecDeque;
use std::time::Duration;

/// A limit: at most `limit` events in any `window_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window_ms: u64,
}

/// Budgets of code SMS shared by many numbers: per region, and per prefix of a number's
/// leading digits, within their own window. SMS pumping spreads over thousands of numbers
/// of a few premium-rate ranges, which per-number limits do not see. 0 is no budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsBudgets {
    pub per_country: u32,
    pub per_prefix: u32,
    /// Leading digits of the E.164 number (its country code included) a prefix has.
    pub prefix_digits: usize,
    pub window: Duration,
}

impl SmsBudgets {
    /// No budget.
    pub const OFF: Self = Self { per_country: 0, per_prefix: 0, prefix_digits: 6, window: Duration::from_secs(3600) };
}

/// Admits an event at `now_ms` into `log` (times of admitted events, oldest first) when
/// fewer than `limit` events lie inside the window, forgetting the ones that left it.
///
/// # Errors
/// The milliseconds until the oldest event leaves the window (at least 1) when the limit
/// is reached; `log` then records nothing new.
pub fn admit(log: &mut VecDeque<u64>, now_ms: u64, rule: RateLimit) -> Result<(), u64> {
    while log.front().is_some_and(|t| t.saturating_add(rule.window_ms) <= now_ms) {
        log.pop_front();
    }
    if log.len() < usize::try_from(rule.limit).unwrap_or(usize::MAX) {
        log.push_back(now_ms);
        return Ok(());
    }
    let oldest = log.front().copied().unwrap_or(now_ms);
    Err(oldest.saturating_add(rule.window_ms).saturating_sub(now_ms).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIVE_PER_TEN_MINUTES: RateLimit = RateLimit { limit: 5, window_ms: 600_000 };

    #[test]
    fn five_are_admitted_the_sixth_waits_for_the_oldest_to_leave_the_window() {
        let mut log = VecDeque::new();
        for minute in 0..5 {
            assert_eq!(admit(&mut log, minute * 60_000, FIVE_PER_TEN_MINUTES), Ok(()), "minute {minute}");
        }
        assert_eq!(admit(&mut log, 5 * 60_000, FIVE_PER_TEN_MINUTES), Err(5 * 60_000));
        assert_eq!(admit(&mut log, 10 * 60_000, FIVE_PER_TEN_MINUTES), Ok(()), "the first left the window");
        assert_eq!(log.len(), 5);
    }

    #[test]
    fn a_limit_of_zero_admits_nothing() {
        assert_eq!(admit(&mut VecDeque::new(), 0, RateLimit { limit: 0, window_ms: 1_000 }), Err(1_000));
    }

    proptest! {
        #[test]
        fn no_window_ever_holds_more_than_the_limit(steps in proptest::collection::vec(0u64..120_000, 1..200), limit in 1u32..8) {
            let rule = RateLimit { limit, window_ms: 60_000 };
            let mut log = VecDeque::new();
            let mut admitted = Vec::new();
            let mut now = 0;
            for step in steps {
                now += step % 20_000;
                if admit(&mut log, now, rule).is_ok() {
                    admitted.push(now);
                }
            }
            for (i, start) in admitted.iter().enumerate() {
                let inside = admitted[i..].iter().take_while(|t| **t < start + rule.window_ms).count();
                prop_assert!(inside <= limit as usize, "{inside} events in the window from {start}");
            }
        }
    }
}
