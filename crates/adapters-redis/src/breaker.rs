//! A circuit breaker: after a run of failures Redis is not called at all for a while, so
//! a dead or hanging Redis costs requests nothing; then one probe decides whether to close.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failures_to_open: u32,
    /// How long it stays open before a probe is let through.
    pub open_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// For the `factors_redis_circuit_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; another may go if it has not reported by `probe_deadline`.
    HalfOpen {
        probe_deadline: Instant,
    },
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self { config, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain data and every update is a single assignment: a panic
        // elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go to Redis now.
    pub fn allow(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { probe_deadline: until } if now < until => false,
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { probe_deadline: now + self.config.open_for };
                true
            }
        }
    }

    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    pub fn record_failure(&self, now: Instant) {
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.config.failures_to_open => {
                State::Closed { failures: failures + 1 }
            }
            _ => State::Open { until: now + self.config.open_for },
        };
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: BreakerConfig = BreakerConfig { failures_to_open: 3, open_for: Duration::from_secs(1) };

    #[test]
    fn a_run_of_failures_opens_the_circuit_and_a_success_in_between_resets_the_count() {
        let breaker = Breaker::new(CONFIG);
        let now = Instant::now();
        breaker.record_failure(now);
        breaker.record_failure(now);
        breaker.record_success();
        breaker.record_failure(now);
        breaker.record_failure(now);
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record_failure(now);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow(now + Duration::from_millis(999)), "no calls while open");
    }

    #[test]
    fn after_the_pause_one_probe_goes_and_decides() {
        let breaker = Breaker::new(CONFIG);
        let now = Instant::now();
        for _ in 0..3 {
            breaker.record_failure(now);
        }
        let later = now + Duration::from_secs(1);
        assert!(breaker.allow(later), "the probe");
        assert!(!breaker.allow(later), "only one probe at a time");
        breaker.record_failure(later);
        assert_eq!(breaker.state(), BreakerState::Open, "a failed probe opens it again");
        let even_later = later + Duration::from_secs(1);
        assert!(breaker.allow(even_later));
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allow(even_later));
    }

    #[test]
    fn a_probe_that_never_reports_does_not_keep_the_circuit_half_open_forever() {
        let breaker = Breaker::new(CONFIG);
        let now = Instant::now();
        for _ in 0..3 {
            breaker.record_failure(now);
        }
        assert!(breaker.allow(now + Duration::from_secs(1)));
        assert!(breaker.allow(now + Duration::from_secs(2)), "a new probe after the first one's deadline");
    }
}
