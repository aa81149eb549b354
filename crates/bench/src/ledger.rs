//! Which seeded users each run may consume. A removal run needs users nobody touched
//! before (a second removal answers 404 and would distort it), so every run gets a range
//! of its own from the [`Ledger`], sized by [`allotment`] from the rate it could reach.

use anyhow::ensure;

/// Users `first..first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRange {
    pub first: u64,
    pub count: u64,
}

impl UserRange {
    /// The last user of the range (inclusive).
    pub fn last(self) -> u64 {
        self.first + self.count.saturating_sub(1)
    }
}

impl std::fmt::Display for UserRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "u{}..u{}", self.first, self.last())
    }
}

/// Hands out disjoint ranges of the users `1..=seeded`, in order.
#[derive(Debug)]
pub struct Ledger {
    next: u64,
    seeded: u64,
}

impl Ledger {
    pub fn new(seeded: u64) -> Self {
        Self { next: 1, seeded }
    }

    /// The next `count` fresh users.
    ///
    /// # Errors
    /// When fewer than `count` are left (the plan that seeded them was wrong).
    pub fn take(&mut self, count: u64) -> anyhow::Result<UserRange> {
        let left = self.left();
        ensure!(count <= left, "{count} fresh users wanted, {left} left of {}", self.seeded);
        let range = UserRange { first: self.next, count };
        self.next += count;
        Ok(range)
    }

    /// Counts `count` more users as seeded (after a top-up seed of the next ones).
    pub fn grow(&mut self, count: u64) {
        self.seeded += count;
    }

    pub fn seeded(&self) -> u64 {
        self.seeded
    }

    pub fn left(&self) -> u64 {
        (self.seeded + 1).saturating_sub(self.next)
    }
}

/// How many users a run may consume: `rate` per second for `seconds`, times `margin`,
/// rounded up to a multiple of `parts` so each wrk thread or pgbench client gets the same
/// share.
pub fn allotment(rate: f64, seconds: u64, margin: f64, parts: u64) -> u64 {
    let parts = parts.max(1);
    // Rates are well inside f64's exact integers; the cast only drops the fraction.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let wanted = (rate.max(1.0) * seconds as f64 * margin).ceil() as u64;
    wanted.div_ceil(parts).max(1) * parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_disjoint_and_bounded() {
        let mut ledger = Ledger::new(100);
        assert_eq!(ledger.take(60).ok(), Some(UserRange { first: 1, count: 60 }));
        assert_eq!(ledger.take(40).ok(), Some(UserRange { first: 61, count: 40 }));
        assert!(ledger.take(1).is_err(), "all 100 are taken");
    }

    #[test]
    fn an_allotment_covers_rate_times_time_with_margin_in_equal_shares() {
        assert_eq!(allotment(1000.0, 10, 1.5, 32), 15008);
        assert_eq!(allotment(0.0, 1, 1.0, 2), 2);
    }
}
