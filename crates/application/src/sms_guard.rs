//! The SMS guard against toll fraud, as the use cases that send codes meet it: the regions
//! codes may go to (`sms.countries`), and the conversion breaker of each region
//! (`sms.breaker`), which the use cases that check codes feed. One per process, shared by
//! every use case: each replica sees its share of the traffic, and the share verified is
//! the same in each. Every send, refusal and change of a breaker is counted by region.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use factors_domain::{BreakerRule, BreakerState, Conversion, CountryNotAllowed, PhoneNumber, SmsCountries};

use crate::ports::{Clock, RegionOutcome, SecurityMetrics};
use crate::{ErrorKind, Failure};

/// What an open breaker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerMode {
    /// Refuses the region's codes while open.
    Enforce,
    /// Only logs what it would have refused.
    Monitor,
}

/// Codes to `region` pause for `retry_after`: too few of its codes were verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("codes to numbers of region {region} are paused")]
pub struct CountryPaused {
    pub region: String,
    pub retry_after: Duration,
}

impl From<CountryPaused> for Failure {
    fn from(paused: CountryPaused) -> Self {
        Self {
            retry_after: Some(paused.retry_after),
            ..Self::new(
                ErrorKind::Unavailable,
                "SMS-CountryPaused",
                format!(
                    "codes to numbers of region {} are paused: too few of them were verified lately; try again later",
                    paused.region
                ),
            )
        }
    }
}

/// The regions' breakers, when `sms.breaker` is on.
struct Breakers {
    rule: BreakerRule,
    mode: BreakerMode,
    regions: Mutex<HashMap<String, Conversion>>,
}

/// The guard of the code SMS of one process.
pub struct SmsGuard {
    countries: SmsCountries,
    breakers: Option<Breakers>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn SecurityMetrics>,
}

impl SmsGuard {
    pub fn new(
        countries: SmsCountries,
        breaker: Option<(BreakerRule, BreakerMode)>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn SecurityMetrics>,
    ) -> Self {
        let breakers = breaker.map(|(rule, mode)| Breakers { rule, mode, regions: Mutex::new(HashMap::new()) });
        Self { countries, breakers, clock, metrics }
    }

    /// Whether codes may ever go to `phone`'s region.
    ///
    /// # Errors
    /// [`CountryNotAllowed`] (counted) when `sms.countries` keeps them from it.
    pub fn allows_region(&self, phone: &PhoneNumber) -> Result<(), CountryNotAllowed> {
        self.countries.check(phone).inspect_err(|refused| {
            self.metrics.sms_region(&refused.region, RegionOutcome::NotAllowed);
        })
    }

    /// Whether a code may go to `phone` now.
    ///
    /// # Errors
    /// [`CountryPaused`] (counted) while its region's breaker is open; never in monitor
    /// mode.
    pub fn may_send(&self, phone: &PhoneNumber) -> Result<(), CountryPaused> {
        let Some(breakers) = &self.breakers else { return Ok(()) };
        let region = phone.region();
        let now = self.clock.now();
        let admitted = self.with_region(breakers, &region, |conversion| conversion.admit(&breakers.rule, now));
        match admitted {
            Ok(_) => Ok(()),
            Err(wait) if breakers.mode == BreakerMode::Monitor => {
                tracing::info!(
                    region,
                    wait_s = wait.num_seconds(),
                    "a code the breaker would have held back went out (monitor mode)"
                );
                Ok(())
            }
            Err(wait) => {
                self.metrics.sms_region(&region, RegionOutcome::Paused);
                Err(CountryPaused { region, retry_after: wait.to_std().unwrap_or(Duration::from_secs(1)) })
            }
        }
    }

    /// A code went out to `phone`.
    pub fn sent(&self, phone: &PhoneNumber) {
        let region = phone.region();
        self.metrics.sms_region(&region, RegionOutcome::Sent);
        if let Some(breakers) = &self.breakers {
            let now = self.clock.now();
            self.with_region(breakers, &region, |conversion| conversion.sent(&breakers.rule, now));
        }
    }

    /// A code sent to `phone` was verified.
    pub fn verified(&self, phone: &PhoneNumber) {
        let Some(breakers) = &self.breakers else { return };
        let region = phone.region();
        let now = self.clock.now();
        self.with_region(breakers, &region, |conversion| conversion.verified(&breakers.rule, now));
    }

    /// Runs `act` on the region's breaker; a change of state it makes (even one it
    /// refuses with) is logged and counted.
    fn with_region<T>(&self, breakers: &Breakers, region: &str, act: impl FnOnce(&mut Conversion) -> T) -> T {
        let mut regions = breakers.regions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let conversion = regions.entry(region.to_owned()).or_default();
        let before = conversion.state().clone();
        let outcome = act(conversion);
        let state = conversion.state();
        if *state != before {
            self.metrics.sms_breaker(region, state);
            match state {
                BreakerState::Open { .. } => {
                    tracing::warn!(
                        region,
                        "too few codes to the region were verified: its breaker opened, sends pause"
                    );
                }
                BreakerState::HalfOpen { .. } => tracing::info!(region, "the region's breaker is half-open: probes go"),
                BreakerState::Closed => tracing::warn!(region, "the region's breaker closed: codes go again"),
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::ports::MockSecurityMetrics;
    use crate::use_cases::fixtures::{at, clock};

    fn rule() -> BreakerRule {
        BreakerRule {
            threshold: 0.5,
            min_sends: 4,
            window: TimeDelta::hours(1),
            cool_down: TimeDelta::minutes(10),
            probes: 2,
        }
    }

    #[test]
    fn a_region_whose_codes_go_unread_pauses_other_regions_do_not_and_all_is_counted_by_region() {
        let mut metrics = MockSecurityMetrics::new();
        metrics.expect_sms_region().withf(|r, o| (r, *o) == ("CH", RegionOutcome::Sent)).times(4).return_const(());
        metrics.expect_sms_region().withf(|r, o| (r, *o) == ("DE", RegionOutcome::Sent)).times(4).return_const(());
        metrics.expect_sms_region().withf(|r, o| (r, *o) == ("CH", RegionOutcome::Paused)).times(1).return_const(());
        metrics
            .expect_sms_breaker()
            .withf(|r, state| r == "CH" && matches!(state, BreakerState::Open { .. }))
            .times(1)
            .return_const(());
        let guard = SmsGuard::new(
            SmsCountries::default(),
            Some((rule(), BreakerMode::Enforce)),
            clock(at(1)),
            Arc::new(metrics),
        );
        let swiss = PhoneNumber::parse("+41791234567").expect("valid");
        let german = PhoneNumber::parse("+4915123456789").expect("valid");
        for _ in 0..4 {
            guard.may_send(&swiss).expect("closed");
            guard.sent(&swiss);
            guard.sent(&german);
            guard.verified(&german);
        }
        let paused = guard.may_send(&swiss).expect_err("four sent, none verified");
        assert_eq!((paused.region.as_str(), paused.retry_after), ("CH", Duration::from_secs(600)));
        let failure = Failure::from(paused);
        let answer = (failure.kind, failure.id, failure.retry_after_seconds());
        assert_eq!(answer, (ErrorKind::Unavailable, "SMS-CountryPaused", Some(600)));
        assert!(guard.may_send(&german).is_ok());
    }

    #[test]
    fn in_monitor_mode_nothing_is_refused() {
        let mut metrics = MockSecurityMetrics::new();
        metrics.expect_sms_region().return_const(());
        metrics.expect_sms_breaker().return_const(());
        let guard = SmsGuard::new(
            SmsCountries::default(),
            Some((rule(), BreakerMode::Monitor)),
            clock(at(1)),
            Arc::new(metrics),
        );
        let swiss = PhoneNumber::parse("+41791234567").expect("valid");
        for _ in 0..5 {
            guard.sent(&swiss);
        }
        assert!(guard.may_send(&swiss).is_ok());
    }
}
