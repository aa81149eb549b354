//! The SMS guard against toll fraud, as the use cases that send codes meet it: the regions
//! codes may go to (`sms.countries`), and the conversion breaker of each region
//! (`sms.breaker`), which the use cases that check codes feed. One per process, shared by
//! every use case: each replica sees its share of the traffic, and the share verified is
//! the same in each. Every send, refusal and change of a breaker is counted by region; an
//! opening and a closing are logged and recorded as events too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use factors_domain::{
    BreakerChange, BreakerEvent, BreakerRule, BreakerState, Caller, Conversion, CountryNotAllowed, Origin, PhoneNumber,
    SmsBudgets, SmsCountries, UserId,
};

use crate::ports::{Clock, PolicyStore, RegionOutcome, SecurityMetrics, Unexpected};
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

/// The guard's settings, as the operator's API shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardSettings {
    pub countries: SmsCountries,
    pub budgets: SmsBudgets,
    /// The breakers' rule and mode; `None`: no breakers.
    pub breaker: Option<(BreakerRule, BreakerMode)>,
}

/// One region's breaker as this process holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionBreaker {
    pub region: String,
    pub state: BreakerState,
    /// Codes sent and verified within the window, now.
    pub sent: usize,
    pub verified: usize,
}

/// How long recording a breaker's event may hold up the request that changed it.
const RECORD_WITHIN: Duration = Duration::from_secs(2);

/// How often a replica whose breaker holds a region back looks for a closing by hand on
/// another replica.
const LOOK_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// The regions' breakers, when `sms.breaker` is on.
struct Breakers {
    rule: BreakerRule,
    mode: BreakerMode,
    /// Held while a change is recorded, so that a region's events are numbered in the
    /// order its breaker changed (changes are rare; every other hold is a map lookup).
    regions: tokio::sync::Mutex<HashMap<String, Conversion>>,
    /// When each held-back region last looked for a closing by hand elsewhere.
    looked: std::sync::Mutex<HashMap<String, DateTime<Utc>>>,
}

/// The guard of the code SMS of one process.
pub struct SmsGuard {
    countries: SmsCountries,
    budgets: SmsBudgets,
    breakers: Option<Breakers>,
    /// Where openings and closings are recorded.
    events: Arc<dyn PolicyStore>,
    /// This process among the replicas, as its events and answers name it.
    replica: String,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn SecurityMetrics>,
}

impl SmsGuard {
    pub fn new(
        settings: GuardSettings,
        events: Arc<dyn PolicyStore>,
        replica: String,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn SecurityMetrics>,
    ) -> Self {
        let GuardSettings { countries, budgets, breaker } = settings;
        let breakers = breaker.map(|(rule, mode)| Breakers {
            rule,
            mode,
            regions: tokio::sync::Mutex::new(HashMap::new()),
            looked: std::sync::Mutex::new(HashMap::new()),
        });
        Self { countries, budgets, breakers, events, replica, clock, metrics }
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
    pub async fn may_send(&self, phone: &PhoneNumber) -> Result<(), CountryPaused> {
        let Some(breakers) = &self.breakers else { return Ok(()) };
        let region = phone.region();
        let now = self.clock.now();
        // A region not seen yet is closed: asking adds no entry.
        let admitted = self.with_region(breakers, &region, false, |conversion| conversion.admit(&breakers.rule, now));
        let mut admitted = admitted.await.unwrap_or(Ok(None));
        if admitted.is_err() && self.closed_elsewhere(breakers, &region, now).await {
            admitted = Ok(None);
        }
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
    pub async fn sent(&self, phone: &PhoneNumber) {
        let region = phone.region();
        self.metrics.sms_region(&region, RegionOutcome::Sent);
        if let Some(breakers) = &self.breakers {
            let now = self.clock.now();
            self.with_region(breakers, &region, true, |conversion| conversion.sent(&breakers.rule, now)).await;
        }
    }

    /// A code sent to `phone` was verified.
    pub async fn verified(&self, phone: &PhoneNumber) {
        let Some(breakers) = &self.breakers else { return };
        let region = phone.region();
        let now = self.clock.now();
        self.with_region(breakers, &region, true, |conversion| conversion.verified(&breakers.rule, now)).await;
    }

    /// The guard's settings.
    pub fn settings(&self) -> GuardSettings {
        GuardSettings {
            countries: self.countries.clone(),
            budgets: self.budgets,
            breaker: self.breakers.as_ref().map(|b| (b.rule, b.mode)),
        }
    }

    /// This process among the replicas.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The breaker of every region this process has sent a code to, or verified one of,
    /// by region code; none without breakers. An open breaker whose pause is over shows
    /// open until the region's next code asks.
    pub async fn breakers(&self) -> Vec<RegionBreaker> {
        let Some(breakers) = &self.breakers else { return Vec::new() };
        let now = self.clock.now();
        let regions = breakers.regions.lock().await;
        let mut all: Vec<RegionBreaker> =
            regions.iter().map(|(region, conversion)| view(&breakers.rule, region, conversion, now)).collect();
        all.sort_by(|a, b| a.region.cmp(&b.region));
        all
    }

    /// Closes `region`'s breaker by hand, for `caller`, with a fresh count: what an
    /// operator does once it knows the region's traffic is people's. A closed breaker (or
    /// one of a region never seen, or without breakers) stays as it is and nothing is
    /// recorded. Answers the region's breaker after.
    pub async fn close(&self, caller: &Caller, region: &str) -> RegionBreaker {
        let now = self.clock.now();
        let closed = RegionBreaker { region: region.to_owned(), state: BreakerState::Closed, sent: 0, verified: 0 };
        let Some(breakers) = &self.breakers else { return closed };
        let mut regions = breakers.regions.lock().await;
        let Some(conversion) = regions.get_mut(region) else { return closed };
        let actor = Some(caller.user_id.clone());
        self.close_by_hand(breakers, region, conversion, actor, caller.origin.clone(), now).await;
        view(&breakers.rule, region, conversion, now)
    }

    /// Closes `conversion`, the breaker of `region`, for `actor` (from `origin`): logged,
    /// counted and recorded with what the window holds now. A closed one stays as it is.
    async fn close_by_hand(
        &self,
        breakers: &Breakers,
        region: &str,
        conversion: &mut Conversion,
        actor: Option<UserId>,
        origin: Origin,
        now: DateTime<Utc>,
    ) {
        // What the window holds now, not as of the region's last code.
        let (sent, verified) = conversion.counts_at(&breakers.rule, now);
        let Some(change) = conversion.close() else { return };
        let by = actor.as_ref().map_or("", UserId::as_str);
        tracing::warn!(region, actor = by, "the region's breaker was closed by hand: codes go again");
        self.metrics.sms_breaker(region, &BreakerState::Closed);
        let event = BreakerEvent { actor, origin, sent, verified, ..self.event(breakers, region, change, None, now) };
        self.record(event).await;
    }

    /// Whether an operator closed `region`'s breaker by hand on another replica since it
    /// opened here, looked up at most every [`LOOK_EVERY`]; if so, it closes here too, and
    /// the closing is recorded for this replica in that operator's name. A store that
    /// cannot answer leaves the breaker as it is.
    async fn closed_elsewhere(&self, breakers: &Breakers, region: &str, now: DateTime<Utc>) -> bool {
        {
            let mut looked = breakers.looked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if looked.get(region).is_some_and(|at| now - *at < LOOK_EVERY) {
                return false;
            }
            looked.insert(region.to_owned(), now);
        }
        let closing = match within_bound(self.events.last_hand_closing(region)).await {
            Ok(closing) => closing,
            Err(error) => {
                tracing::warn!(region, error, "could not look for a closing by hand of the region's breaker");
                return false;
            }
        };
        let mut regions = breakers.regions.lock().await;
        let Some(conversion) = regions.get_mut(region) else { return false };
        let Some(closing) = closing.filter(|c| conversion.opened_at().is_some_and(|opened| c.at >= opened)) else {
            return false;
        };
        // The closer's name, as the store holds it: a user id.
        let actor = UserId::new(&closing.actor).ok();
        self.close_by_hand(breakers, region, conversion, actor, Origin::default(), now).await;
        true
    }

    /// Runs `act` on the region's breaker (`None` when the region has none and `add` is
    /// off); a change of state it makes (even one it refuses with) is logged and counted,
    /// and an opening or closing recorded before the region's lock is let go.
    async fn with_region<T>(
        &self,
        breakers: &Breakers,
        region: &str,
        add: bool,
        act: impl FnOnce(&mut Conversion) -> T,
    ) -> Option<T> {
        let mut regions = breakers.regions.lock().await;
        let conversion = if add { regions.entry(region.to_owned()).or_default() } else { regions.get_mut(region)? };
        let before = conversion.state().clone();
        let outcome = act(conversion);
        let state = conversion.state().clone();
        if state != before
            && let Some(event) = self.changed(breakers, region, &state, conversion.decided_by())
        {
            self.record(event).await;
        }
        Some(outcome)
    }

    /// Logs and counts a breaker's new `state`; its event when it opened or closed.
    fn changed(
        &self,
        breakers: &Breakers,
        region: &str,
        state: &BreakerState,
        (sent, verified): (usize, usize),
    ) -> Option<BreakerEvent> {
        self.metrics.sms_breaker(region, state);
        let (change, until) = match *state {
            BreakerState::Open { until } => {
                tracing::warn!(
                    region,
                    sent,
                    verified,
                    "too few codes to the region were verified: its breaker opened, sends pause"
                );
                (BreakerChange::Opened, Some(until))
            }
            BreakerState::HalfOpen { .. } => {
                tracing::info!(region, "the region's breaker is half-open: probes go");
                return None;
            }
            BreakerState::Closed => {
                tracing::warn!(region, sent, verified, "the region's breaker closed: codes go again");
                (BreakerChange::Closed, None)
            }
        };
        Some(BreakerEvent { sent, verified, ..self.event(breakers, region, change, until, self.clock.now()) })
    }

    /// The guard's own event of `change` (no actor, no origin, no counts).
    fn event(
        &self,
        breakers: &Breakers,
        region: &str,
        change: BreakerChange,
        until: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> BreakerEvent {
        BreakerEvent {
            region: region.to_owned(),
            change,
            actor: None,
            origin: Origin::default(),
            at,
            sent: 0,
            verified: 0,
            until,
            enforced: breakers.mode == BreakerMode::Enforce,
            replica: self.replica.clone(),
        }
    }

    /// Appends `event` to the audit log, waiting at most [`RECORD_WITHIN`]. The breaker has
    /// changed whatever the store answers, and the request that changed it is not the
    /// store's to fail: a lost event is logged as an error (the warning above still says
    /// what happened).
    async fn record(&self, event: BreakerEvent) {
        let Err(error) = within_bound(self.events.record_breaker(&event)).await else { return };
        tracing::error!(
            region = event.region,
            event = event.event_type(),
            error,
            "a breaker event could not be recorded"
        );
    }
}

/// A store call of the guard, bounded by [`RECORD_WITHIN`] (the request that made it
/// waits for it); its failure, or its silence, as the text the log line gives.
async fn within_bound<T>(call: impl Future<Output = Result<T, Unexpected>>) -> Result<T, String> {
    match tokio::time::timeout(RECORD_WITHIN, call).await {
        Ok(answered) => answered.map_err(|e| e.0.to_string()),
        Err(_) => Err(format!("the store did not answer within {RECORD_WITHIN:?}")),
    }
}

/// `conversion`, the breaker of `region`, as shown at `now`.
fn view(rule: &BreakerRule, region: &str, conversion: &Conversion, now: DateTime<Utc>) -> RegionBreaker {
    let (sent, verified) = conversion.counts_at(rule, now);
    RegionBreaker { region: region.to_owned(), state: conversion.state().clone(), sent, verified }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::ports::{MockPolicyStore, MockSecurityMetrics};
    use crate::use_cases::fixtures::{at, clock, no_metrics};

    fn rule() -> BreakerRule {
        BreakerRule {
            threshold: 0.5,
            min_sends: 4,
            window: TimeDelta::hours(1),
            cool_down: TimeDelta::minutes(10),
            probes: 2,
        }
    }

    fn settings(mode: BreakerMode) -> GuardSettings {
        GuardSettings { countries: SmsCountries::default(), budgets: SmsBudgets::OFF, breaker: Some((rule(), mode)) }
    }

    /// A store that records every event and expects `opened` openings of region `CH`.
    fn recording(opened: usize, enforced: bool) -> Arc<MockPolicyStore> {
        let mut events = MockPolicyStore::new();
        events
            .expect_record_breaker()
            .withf(move |e| {
                let when = (e.region.as_str(), e.change, e.enforced, e.sent, e.verified);
                let opened_until = Some(at(1) + TimeDelta::minutes(10));
                when == ("CH", BreakerChange::Opened, enforced, 4, 0)
                    && e.until == opened_until
                    && e.replica == "web-1#3"
            })
            .times(opened)
            .returning(|_| Ok(()));
        events.expect_last_hand_closing().returning(|_| Ok(None));
        Arc::new(events)
    }

    #[tokio::test]
    async fn a_region_whose_codes_go_unread_pauses_other_regions_do_not_and_all_is_counted_and_recorded() {
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
            settings(BreakerMode::Enforce),
            recording(1, true),
            "web-1#3".into(),
            clock(at(1)),
            Arc::new(metrics),
        );
        let swiss = PhoneNumber::parse("+41791234567").expect("valid");
        let german = PhoneNumber::parse("+4915123456789").expect("valid");
        for _ in 0..4 {
            guard.may_send(&swiss).await.expect("closed");
            guard.sent(&swiss).await;
            guard.sent(&german).await;
            guard.verified(&german).await;
        }
        let paused = guard.may_send(&swiss).await.expect_err("four sent, none verified");
        assert_eq!((paused.region.as_str(), paused.retry_after), ("CH", Duration::from_secs(600)));
        let failure = Failure::from(paused);
        let answer = (failure.kind, failure.id, failure.retry_after_seconds());
        assert_eq!(answer, (ErrorKind::Unavailable, "SMS-CountryPaused", Some(600)));
        assert!(guard.may_send(&german).await.is_ok());
    }

    #[tokio::test]
    async fn in_monitor_mode_nothing_is_refused_and_the_opening_is_recorded_as_monitored() {
        let mut metrics = MockSecurityMetrics::new();
        metrics.expect_sms_region().return_const(());
        metrics.expect_sms_breaker().return_const(());
        let guard = SmsGuard::new(
            settings(BreakerMode::Monitor),
            recording(1, false),
            "web-1#3".into(),
            clock(at(1)),
            Arc::new(metrics),
        );
        let swiss = PhoneNumber::parse("+41791234567").expect("valid");
        for _ in 0..5 {
            guard.sent(&swiss).await;
        }
        assert!(guard.may_send(&swiss).await.is_ok());
    }

    #[tokio::test]
    async fn a_store_that_cannot_record_the_event_costs_the_request_nothing() {
        let mut events = MockPolicyStore::new();
        events.expect_record_breaker().times(1).returning(|_| Err(Unexpected(anyhow::anyhow!("the store is away"))));
        events.expect_last_hand_closing().returning(|_| Err(Unexpected(anyhow::anyhow!("away"))));
        let guard = SmsGuard::new(
            settings(BreakerMode::Enforce),
            Arc::new(events),
            "web-1#3".into(),
            clock(at(1)),
            no_metrics(),
        );
        let swiss = PhoneNumber::parse("+41791234567").expect("valid");
        for _ in 0..4 {
            guard.sent(&swiss).await;
        }
        assert!(guard.may_send(&swiss).await.is_err(), "the breaker opened all the same");
    }

    #[tokio::test]
    async fn read_probes_close_the_breaker_and_the_closing_names_the_probes_that_decided_it() {
        let now = Arc::new(std::sync::Mutex::new(at(1)));
        let mut clock = crate::ports::MockClock::new();
        let read = now.clone();
        clock.expect_now().returning(move || *read.lock().expect("the clock"));
        let mut events = MockPolicyStore::new();
        let mut order = mockall::Sequence::new();
        for (change, decided) in [(BreakerChange::Opened, (4, 0)), (BreakerChange::Closed, (2, 1))] {
            events
                .expect_record_breaker()
                .withf(move |e| (e.change, (e.sent, e.verified), e.actor.is_none()) == (change, decided, true))
                .times(1)
                .in_sequence(&mut order)
                .returning(|_| Ok(()));
        }
        let rule = BreakerRule {
            threshold: 0.5,
            min_sends: 4,
            window: TimeDelta::hours(1),
            cool_down: TimeDelta::minutes(10),
            probes: 2,
        };
        let settings = GuardSettings {
            countries: SmsCountries::default(),
            budgets: SmsBudgets::OFF,
            breaker: Some((rule, BreakerMode::Enforce)),
        };
        let guard = SmsGuard::new(settings, Arc::new(events), "web-1#3".into(), Arc::new(clock), no_metrics());
        let swiss = PhoneNumber::parse("+41791234567").expect("valid");
        for _ in 0..4 {
            guard.sent(&swiss).await;
        }
        *now.lock().expect("the clock") = at(11);
        for _ in 0..2 {
            guard.may_send(&swiss).await.expect("a probe");
            guard.sent(&swiss).await;
        }
        guard.verified(&swiss).await;
        let [breaker] = guard.breakers().await.try_into().expect("one region");
        assert_eq!((breaker.state, breaker.sent, breaker.verified), (BreakerState::Closed, 0, 0), "a fresh count");
    }

    #[tokio::test]
    async fn a_closing_by_hand_on_another_replica_since_the_opening_closes_the_breaker_here_too() {
        let now = Arc::new(std::sync::Mutex::new(at(1)));
        let mut clock = crate::ports::MockClock::new();
        let read = now.clone();
        clock.expect_now().returning(move || *read.lock().expect("the clock"));
        let mut events = MockPolicyStore::new();
        events.expect_record_breaker().withf(|e| e.change == BreakerChange::Opened).times(1).returning(|_| Ok(()));
        events
            .expect_record_breaker()
            .withf(|e| {
                let closed = (e.change, e.actor.as_ref().map(UserId::as_str), e.replica.as_str(), e.sent);
                closed == (BreakerChange::Closed, Some("iam-owner"), "web-2#4", 4)
            })
            .times(1)
            .returning(|_| Ok(()));
        // Before the opening here (it closed an earlier pause), then after it.
        let closings = std::sync::Mutex::new(vec![at(2), at(0)]);
        events.expect_last_hand_closing().withf(|region| region == "CH").times(2).returning(move |_| {
            let at = closings.lock().expect("closings").pop().expect("two looks");
            Ok(Some(crate::ports::HandClosing { at, actor: "iam-owner".into() }))
        });
        let guard = SmsGuard::new(
            settings(BreakerMode::Enforce),
            Arc::new(events),
            "web-2#4".into(),
            Arc::new(clock),
            no_metrics(),
        );
        let swiss = PhoneNumber::parse("+41791234567").expect("valid");
        for _ in 0..4 {
            guard.sent(&swiss).await;
        }
        assert!(guard.may_send(&swiss).await.is_err(), "a closing before the opening does not count");
        assert!(guard.may_send(&swiss).await.is_err(), "no second look within two seconds");
        *now.lock().expect("the clock") = at(1) + TimeDelta::seconds(2);
        assert!(guard.may_send(&swiss).await.is_ok(), "closed by hand elsewhere since: codes go here too");
        let [breaker] = guard.breakers().await.try_into().expect("one region");
        assert_eq!(breaker.state, BreakerState::Closed);
    }
}
