//! The conversion breakers of the regions codes go to (`sms.breaker`): the use cases that
//! send a code ask first and say when it went out, and the ones that check a code say
//! when it was verified. Counted in this process: every replica sees its share of the
//! traffic, and the share verified is the same in each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use factors_domain::{BreakerChange, BreakerRule, Conversion, PhoneNumber};

use crate::ports::Clock;
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

/// The breakers of every region, or none when `sms.breaker` is off.
pub struct ConversionBreakers {
    rule: BreakerRule,
    mode: BreakerMode,
    clock: Arc<dyn Clock>,
    regions: Mutex<HashMap<String, Conversion>>,
}

impl ConversionBreakers {
    pub fn new(rule: BreakerRule, mode: BreakerMode, clock: Arc<dyn Clock>) -> Self {
        Self { rule, mode, clock, regions: Mutex::new(HashMap::new()) }
    }

    fn with_region<T>(&self, region: &str, act: impl FnOnce(&mut Conversion) -> T) -> T {
        let mut regions = self.regions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        act(regions.entry(region.to_owned()).or_default())
    }

    /// Whether a code may go to `phone` now.
    ///
    /// # Errors
    /// [`CountryPaused`] while its region's breaker is open (never in monitor mode).
    pub fn may_send(&self, phone: &PhoneNumber) -> Result<(), CountryPaused> {
        let region = phone.region();
        let now = self.clock.now();
        let admitted = self.with_region(&region, |conversion| conversion.admit(&self.rule, now));
        match admitted {
            Ok(change) => {
                log_change(&region, change);
                Ok(())
            }
            Err(wait) if self.mode == BreakerMode::Monitor => {
                tracing::info!(
                    region,
                    wait_s = wait.num_seconds(),
                    "a code the breaker would have held back went out (monitor mode)"
                );
                Ok(())
            }
            Err(wait) => Err(CountryPaused { region, retry_after: wait.to_std().unwrap_or(Duration::from_secs(1)) }),
        }
    }

    /// A code went out to `phone`.
    pub fn sent(&self, phone: &PhoneNumber) {
        let region = phone.region();
        let now = self.clock.now();
        log_change(&region, self.with_region(&region, |conversion| conversion.sent(&self.rule, now)));
    }

    /// A code sent to `phone` was verified.
    pub fn verified(&self, phone: &PhoneNumber) {
        let region = phone.region();
        let now = self.clock.now();
        log_change(&region, self.with_region(&region, |conversion| conversion.verified(&self.rule, now)));
    }
}

/// The breakers, when there are any, told of a send or a verification.
pub(crate) trait Breakers {
    fn sent(&self, phone: &PhoneNumber);
    fn verified(&self, phone: &PhoneNumber);
    fn may_send(&self, phone: &PhoneNumber) -> Result<(), CountryPaused>;
}

impl Breakers for Option<Arc<ConversionBreakers>> {
    fn sent(&self, phone: &PhoneNumber) {
        if let Some(breakers) = self {
            breakers.sent(phone);
        }
    }

    fn verified(&self, phone: &PhoneNumber) {
        if let Some(breakers) = self {
            breakers.verified(phone);
        }
    }

    fn may_send(&self, phone: &PhoneNumber) -> Result<(), CountryPaused> {
        self.as_ref().map_or(Ok(()), |breakers| breakers.may_send(phone))
    }
}

fn log_change(region: &str, change: Option<BreakerChange>) {
    match change {
        Some(BreakerChange::Opened) => {
            tracing::warn!(region, "too few codes to the region were verified: its breaker opened, sends pause");
        }
        Some(BreakerChange::HalfOpened) => tracing::info!(region, "the region's breaker is half-open: probes go"),
        Some(BreakerChange::Closed) => tracing::warn!(region, "the region's breaker closed: codes go again"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
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
    fn a_region_whose_codes_go_unread_pauses_and_other_regions_do_not() {
        let breakers = ConversionBreakers::new(rule(), BreakerMode::Enforce, clock(at(1)));
        let swiss = PhoneNumber::parse("+41791234567").expect("valid");
        let german = PhoneNumber::parse("+4915123456789").expect("valid");
        for _ in 0..4 {
            breakers.may_send(&swiss).expect("closed");
            breakers.sent(&swiss);
            breakers.sent(&german);
            breakers.verified(&german);
        }
        let paused = breakers.may_send(&swiss).expect_err("four sent, none verified");
        assert_eq!((paused.region.as_str(), paused.retry_after), ("CH", Duration::from_secs(600)));
        let failure = Failure::from(paused);
        assert_eq!(
            (failure.kind, failure.id, failure.retry_after_seconds()),
            (ErrorKind::Unavailable, "SMS-CountryPaused", Some(600))
        );
        assert!(breakers.may_send(&german).is_ok());

        let monitoring = ConversionBreakers::new(rule(), BreakerMode::Monitor, clock(at(1)));
        for _ in 0..5 {
            monitoring.sent(&swiss);
        }
        assert!(monitoring.may_send(&swiss).is_ok(), "monitor mode refuses nothing");
    }
}
