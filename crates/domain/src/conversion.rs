//! The conversion breaker of a region: SMS pumping sends codes that nobody types, so when
//! the share of a region's codes that are verified falls too low, sends to the region
//! pause for a while, then a few go through to see whether people read them again.
//!
//! Pure: the caller keeps one [`Conversion`] per region and passes the time.

use std::collections::VecDeque;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;

use crate::{Origin, UserId};

/// When a region's breaker opens, and how it closes again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerRule {
    /// The share of codes sent that must be verified (0.0 to 1.0).
    pub threshold: f64,
    /// Sends within the window before the share counts.
    pub min_sends: u32,
    /// How far back sends and verifications count.
    pub window: TimeDelta,
    /// How long sends pause once the breaker opens.
    pub cool_down: TimeDelta,
    /// Sends let through after the pause, whose verification closes the breaker again.
    pub probes: u32,
}

/// A region's breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerState {
    /// Sends go; the share is watched.
    Closed,
    /// Sends pause until `until`.
    Open { until: DateTime<Utc> },
    /// Since `since`, `sent` probes went out (at most the rule's `probes`), `verified` of
    /// them were verified.
    HalfOpen { since: DateTime<Utc>, sent: u32, verified: u32 },
}

/// A breaker's change of state, to log and record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerChange {
    Opened,
    HalfOpened,
    Closed,
}

/// The sends and verifications of one region within the window, and its breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    sends: VecDeque<DateTime<Utc>>,
    verifications: VecDeque<DateTime<Utc>>,
    state: BreakerState,
    /// The codes sent and verified that decided the last change of state.
    decided_by: (usize, usize),
    /// When the breaker last opened, while it is open or half-open.
    opened_at: Option<DateTime<Utc>>,
}

impl Default for Conversion {
    fn default() -> Self {
        Self {
            sends: VecDeque::new(),
            verifications: VecDeque::new(),
            state: BreakerState::Closed,
            decided_by: (0, 0),
            opened_at: None,
        }
    }
}

impl Conversion {
    pub fn state(&self) -> &BreakerState {
        &self.state
    }

    /// The codes sent and verified that decided the last change of state: an opening's
    /// within the window (the send that opened it included), a half-open breaker's probes
    /// for its closing or its opening again (the verification that closed it included), and
    /// for a closing by hand, the window's as of the last call.
    pub fn decided_by(&self) -> (usize, usize) {
        self.decided_by
    }

    /// When the breaker last opened, while it is open or half-open; `None` while closed.
    pub fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.opened_at
    }

    /// Codes sent and verified within the window, as of the last call.
    pub fn counts(&self) -> (usize, usize) {
        (self.sends.len(), self.verifications.len())
    }

    /// Codes sent and verified within the window that ends at `now`.
    pub fn counts_at(&self, rule: &BreakerRule, now: DateTime<Utc>) -> (usize, usize) {
        let start = now - rule.window;
        let within = |times: &VecDeque<DateTime<Utc>>| times.iter().filter(|t| **t > start).count();
        (within(&self.sends), within(&self.verifications))
    }

    /// Whether a code may go now; when not, how long until one may. Moves an open breaker
    /// whose pause is over to half-open, and a half-open one whose probes went unverified
    /// for a whole pause back to open.
    ///
    /// # Errors
    /// The time left to wait.
    pub fn admit(&mut self, rule: &BreakerRule, now: DateTime<Utc>) -> Result<Option<BreakerChange>, TimeDelta> {
        match self.state {
            BreakerState::Closed => Ok(None),
            BreakerState::Open { until } if now < until => Err(until - now),
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen { since: now, sent: 0, verified: 0 };
                Ok(Some(BreakerChange::HalfOpened))
            }
            BreakerState::HalfOpen { sent, .. } if sent < rule.probes => Ok(None),
            BreakerState::HalfOpen { since, .. } if now - since < rule.cool_down => Err(since + rule.cool_down - now),
            BreakerState::HalfOpen { sent, verified, .. } => {
                // The probes were not read within a pause: the region stays suspect.
                self.decided_by = (sent as usize, verified as usize);
                self.opened_at = Some(now);
                self.state = BreakerState::Open { until: now + rule.cool_down };
                Err(rule.cool_down)
            }
        }
    }

    /// A code went out at `now`. Opens the breaker when the share verified, over enough
    /// sends, has fallen below the threshold.
    pub fn sent(&mut self, rule: &BreakerRule, now: DateTime<Utc>) -> Option<BreakerChange> {
        self.forget_before(now - rule.window);
        self.sends.push_back(now);
        match &mut self.state {
            BreakerState::HalfOpen { sent, .. } => {
                *sent += 1;
                None
            }
            BreakerState::Open { .. } => None,
            BreakerState::Closed => {
                let (sends, verified) = self.counts();
                let share = verified as f64 / sends as f64;
                (sends >= rule.min_sends as usize && share < rule.threshold).then(|| {
                    self.decided_by = (sends, verified);
                    self.opened_at = Some(now);
                    self.state = BreakerState::Open { until: now + rule.cool_down };
                    BreakerChange::Opened
                })
            }
        }
    }

    /// A code of the region was verified at `now`. Closes a half-open breaker once its
    /// probes are read as often as the threshold asks, with a fresh count.
    pub fn verified(&mut self, rule: &BreakerRule, now: DateTime<Utc>) -> Option<BreakerChange> {
        self.forget_before(now - rule.window);
        self.verifications.push_back(now);
        let BreakerState::HalfOpen { sent, verified, .. } = &mut self.state else { return None };
        *verified += 1;
        let needed = (f64::from(rule.probes) * rule.threshold).ceil().max(1.0);
        let probes = (*sent as usize, *verified as usize);
        (f64::from(*verified) >= needed).then(|| {
            *self = Self { decided_by: probes, ..Self::default() };
            BreakerChange::Closed
        })
    }

    /// Closes an open or half-open breaker by hand, with a fresh count; a closed one stays
    /// as it is, its count too.
    pub fn close(&mut self) -> Option<BreakerChange> {
        if self.state == BreakerState::Closed {
            return None;
        }
        *self = Self { decided_by: self.counts(), ..Self::default() };
        Some(BreakerChange::Closed)
    }

    fn forget_before(&mut self, start: DateTime<Utc>) {
        while self.sends.front().is_some_and(|t| *t <= start) {
            self.sends.pop_front();
        }
        while self.verifications.front().is_some_and(|t| *t <= start) {
            self.verifications.pop_front();
        }
    }
}

/// A breaker's opening or closing, as the audit log keeps it: on the stream of its region
/// (aggregate `sms_breaker`, id the region's code), in the instance's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerEvent {
    pub region: String,
    /// [`BreakerChange::Opened`] or [`BreakerChange::Closed`]; half-opening is no event.
    pub change: BreakerChange,
    /// Who closed it by hand; `None`: the guard itself, on the region's traffic.
    pub actor: Option<UserId>,
    /// Where the closing by hand came from; empty for the guard's own changes.
    pub origin: Origin,
    pub at: DateTime<Utc>,
    /// Codes sent and verified within the window when it changed.
    pub sent: usize,
    pub verified: usize,
    /// An opening's end of the pause.
    pub until: Option<DateTime<Utc>>,
    /// Whether the breaker refuses while open (`enforce`), or only logs (`monitor`).
    pub enforced: bool,
    /// The replica whose breaker it is (breakers count per replica).
    pub replica: String,
}

impl BreakerEvent {
    /// The aggregate a region's breaker events are numbered under, the region being its id.
    pub const AGGREGATE_TYPE: &'static str = "sms_breaker";
    /// The creator of the guard's own events: no user made them.
    pub const SYSTEM: &'static str = "SYSTEM";
    /// The type of a closing's event.
    pub const CLOSED_TYPE: &'static str = "sms.breaker.closed";

    pub fn event_type(&self) -> &'static str {
        match self.change {
            BreakerChange::Opened => "sms.breaker.opened",
            BreakerChange::HalfOpened => "sms.breaker.half_opened",
            BreakerChange::Closed => Self::CLOSED_TYPE,
        }
    }

    /// Who made it: the user who closed the breaker by hand, else [`Self::SYSTEM`].
    pub fn creator(&self) -> &str {
        self.actor.as_ref().map_or(Self::SYSTEM, UserId::as_str)
    }

    /// The payload, self-contained like every event's.
    pub fn payload(&self) -> serde_json::Value {
        let payload = BreakerPayload {
            actor: self.creator(),
            region: &self.region,
            at: self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            origin: &self.origin,
            sent: self.sent,
            verified: self.verified,
            until: self.until.map(|until| until.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            mode: if self.enforced { "enforce" } else { "monitor" },
            by_hand: self.actor.is_some(),
            replica: &self.replica,
        };
        // Strings, numbers and booleans under string keys: serializing cannot fail.
        serde_json::to_value(payload).expect("an event payload is a JSON object")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BreakerPayload<'a> {
    actor: &'a str,
    region: &'a str,
    at: String,
    #[serde(skip_serializing_if = "Origin::is_empty")]
    origin: &'a Origin,
    sent: usize,
    verified: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    mode: &'static str,
    by_hand: bool,
    replica: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> BreakerRule {
        BreakerRule {
            threshold: 0.5,
            min_sends: 10,
            window: TimeDelta::hours(1),
            cool_down: TimeDelta::minutes(15),
            probes: 4,
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid")
    }

    #[test]
    fn a_region_whose_codes_are_read_stays_closed() {
        let mut region = Conversion::default();
        for n in 0..100 {
            assert_eq!(region.admit(&rule(), at(n)), Ok(None));
            assert_eq!(region.sent(&rule(), at(n)), None);
            if n % 3 != 0 {
                region.verified(&rule(), at(n));
            }
        }
        assert_eq!(region.state(), &BreakerState::Closed, "two in three verified");
    }

    #[test]
    fn unread_codes_open_the_breaker_after_the_minimum_then_probes_close_it_when_read() {
        let mut region = Conversion::default();
        for n in 0..9 {
            assert_eq!(region.sent(&rule(), at(n)), None, "below the minimum, send {n}");
        }
        assert_eq!(region.sent(&rule(), at(9)), Some(BreakerChange::Opened), "ten sent, none verified");
        assert_eq!(region.decided_by(), (10, 0));
        assert_eq!(region.opened_at(), Some(at(9)));
        assert_eq!(region.admit(&rule(), at(10)), Err(TimeDelta::seconds(15 * 60 - 1)));
        // After the pause: four probes, then a wait for them.
        let after = at(9 + 15 * 60);
        assert_eq!(region.admit(&rule(), after), Ok(Some(BreakerChange::HalfOpened)));
        for probe in 0..4 {
            assert_eq!(region.admit(&rule(), after), Ok(None), "probe {probe}");
            region.sent(&rule(), after);
        }
        assert!(region.admit(&rule(), after).is_err(), "only four probes");
        assert_eq!(region.verified(&rule(), after), None);
        assert_eq!(region.verified(&rule(), after), Some(BreakerChange::Closed), "two of four read: half");
        assert_eq!(region.decided_by(), (4, 2), "closed by its probes: four sent, two read");
        assert_eq!(region.opened_at(), None);
        assert_eq!(region.admit(&rule(), after), Ok(None));
        assert_eq!(region.counts(), (0, 0), "a fresh count");
    }

    #[test]
    fn probes_left_unread_for_a_whole_pause_open_the_breaker_again() {
        let mut region = Conversion::default();
        for n in 0..10 {
            region.sent(&rule(), at(n));
        }
        let half_open = at(10 + 15 * 60);
        assert_eq!(region.admit(&rule(), half_open), Ok(Some(BreakerChange::HalfOpened)));
        for _ in 0..4 {
            region.sent(&rule(), half_open);
        }
        let later = half_open + TimeDelta::minutes(15);
        assert_eq!(region.admit(&rule(), later), Err(TimeDelta::minutes(15)));
        assert_eq!(region.state(), &BreakerState::Open { until: later + TimeDelta::minutes(15) });
        assert_eq!(region.decided_by(), (4, 0), "opened again by four unread probes");
        assert_eq!(region.opened_at(), Some(later), "opened again: a pause of its own");
        assert_eq!(region.close(), Some(BreakerChange::Closed), "by hand");
        assert_eq!(region.admit(&rule(), later), Ok(None));
        region.sent(&rule(), later);
        assert_eq!(region.close(), None, "a closed breaker stays as it is");
        assert_eq!(region.counts(), (1, 0), "its count too");
    }

    #[test]
    fn old_sends_leave_the_window() {
        let mut region = Conversion::default();
        for n in 0..9 {
            region.sent(&rule(), at(n));
        }
        assert_eq!(region.sent(&rule(), at(3600 + 5)), None, "sends 0 to 5 left the window: below the minimum");
        assert_eq!(region.counts(), (4, 0));
    }

    #[test]
    fn an_event_names_the_region_its_counts_and_who_closed_it() {
        let opened = BreakerEvent {
            region: "GN".into(),
            change: BreakerChange::Opened,
            actor: None,
            origin: Origin::default(),
            at: at(9),
            sent: 10,
            verified: 1,
            until: Some(at(9 + 900)),
            enforced: true,
            replica: "web-1#3".into(),
        };
        assert_eq!((opened.event_type(), opened.creator()), ("sms.breaker.opened", "SYSTEM"));
        assert_eq!(
            opened.payload(),
            serde_json::json!({"actor": "SYSTEM", "region": "GN", "at": "2027-01-15T08:00:09Z", "sent": 10,
                "verified": 1, "until": "2027-01-15T08:15:09Z", "mode": "enforce", "byHand": false,
                "replica": "web-1#3"})
        );
        let closed = BreakerEvent {
            change: BreakerChange::Closed,
            actor: Some(UserId::new("iam-owner").expect("valid")),
            until: None,
            enforced: false,
            ..opened
        };
        assert_eq!((closed.event_type(), closed.creator()), ("sms.breaker.closed", "iam-owner"));
        assert_eq!(closed.payload()["byHand"], true);
        assert_eq!(closed.payload()["mode"], "monitor");
        assert!(closed.payload().get("until").is_none());
    }

    #[test]
    fn counts_at_a_time_leave_out_what_left_the_window_without_changing_the_breaker() {
        let mut region = Conversion::default();
        for n in 0..5 {
            region.sent(&rule(), at(n));
        }
        region.verified(&rule(), at(4));
        assert_eq!(region.counts_at(&rule(), at(3600 + 2)), (2, 1));
        assert_eq!(region.counts(), (5, 1), "nothing forgotten by a look");
    }
}
