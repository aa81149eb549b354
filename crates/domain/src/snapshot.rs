//! A user as the rules read it, and the decisions they hand to the store.
//!
//! Every write follows one shape: read a [`UserSnapshot`] (the user with its `sequence`
//! and `changed`, and its authenticators), let a pure rule decide, and hand the store a
//! [`Decision`] holding the [`Transition`] from the version that was read to the next
//! one. The store applies a decision only while the user is still at the version read
//! (optimistic concurrency, as ZITADEL's event store pushes with an expected sequence),
//! so a decision made on a state that has moved on is refused instead of applied, and
//! the caller reads again and decides again.

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    Event, Notice, OrgId, OtpSmsAuthenticator, OtpSmsId, PendingCode, PolicyGuard, SessionTermination, User, UserId,
    UserState,
};

/// A user and its OTP SMS authenticators (oldest first), as read together at one version.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSnapshot {
    pub user: User,
    pub otp_sms: Vec<OtpSmsAuthenticator>,
}

impl UserSnapshot {
    /// The authenticator `id`, if the user holds it.
    pub fn otp_sms(&self, id: &OtpSmsId) -> Option<&OtpSmsAuthenticator> {
        self.otp_sms.iter().find(|a| &a.id == id && a.user == self.user.id)
    }

    /// The state once `decision` (made on this snapshot) is applied; `None` when the
    /// decision deletes the user.
    pub fn after(&self, decision: &Decision) -> Option<Self> {
        let mut next = self.clone();
        next.user.sequence = decision.transition.to.sequence;
        next.user.changed = decision.transition.to.changed;
        match &decision.change {
            Change::AddOtpSms { authenticator, .. } => next.otp_sms.push(authenticator.clone()),
            Change::VerifyOtpSms { authenticator } => {
                next.otp_sms.iter_mut().filter(|a| &a.id == authenticator).for_each(|a| a.verified = true);
            }
            Change::RemoveOtpSms { authenticator, .. } => next.otp_sms.retain(|a| &a.id != authenticator),
            Change::DeleteUser { .. } => return None,
            Change::SetState { state } => next.user.state = *state,
        }
        Some(next)
    }
}

/// Where a user stands: the number of its last event and when it last changed. Together
/// they name one state, even across two database histories that reach the same sequence
/// (a restore, a failover to a lagging replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub sequence: u64,
    pub changed: DateTime<Utc>,
}

impl User {
    pub fn version(&self) -> Version {
        Version { sequence: self.sequence, changed: self.changed }
    }
}

/// `changed` always moves forward: to `now`, or a microsecond past the last change when
/// the clock that decides is behind the one that decided before (a skewed replica).
pub fn next_change(last: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    now.max(last + TimeDelta::microseconds(1))
}

/// A user's move from the version a decision was made on to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub user: UserId,
    /// The organization the user was read in: the store applies the decision only to the
    /// user of this id in this organization (the access rules decided on both).
    pub org: OrgId,
    /// The version read: the store applies the decision only while the user is at it.
    pub from: Version,
    /// The version after the write; its event is numbered `to.sequence` and stamped `to.changed`.
    pub to: Version,
}

impl Transition {
    /// The next version of `user`, decided at `now`.
    pub fn next(user: &User, now: DateTime<Utc>) -> Self {
        let from = user.version();
        Self {
            user: user.id.clone(),
            org: user.org.clone(),
            from,
            to: Version { sequence: from.sequence + 1, changed: next_change(from.changed, now) },
        }
    }
}

/// What a decision changes, besides moving the user to its next version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Stores a new authenticator, with the code that is to prove its phone.
    AddOtpSms { authenticator: OtpSmsAuthenticator, pending_code: Option<PendingCode> },
    /// Uses up the pending code and marks the authenticator verified.
    VerifyOtpSms { authenticator: OtpSmsId },
    /// Deletes the authenticator and voids every code pending for it; with a `guard`, only
    /// while the login policies are at the versions decided on; with a `notice`, writes it
    /// to the outbox.
    RemoveOtpSms { authenticator: OtpSmsId, guard: Option<PolicyGuard>, notice: Option<Notice> },
    /// Deletes the user with everything it holds; with a `guard`, only while the login
    /// policies are at the versions decided on; writes each of `notices` to the outbox;
    /// ends each of `sessions` (every session the user holds, at the version read), each
    /// with its `session.terminated` event.
    DeleteUser { guard: Option<PolicyGuard>, notices: Vec<Notice>, sessions: Vec<SessionTermination> },
    /// Puts the user in `state` (locks, unlocks, deactivates or activates it).
    SetState { state: UserState },
}

/// A write the rules allow, made on one version of the user: the store applies the
/// change, moves the user and appends the event, all or nothing, and only while the user
/// is still at `transition.from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub transition: Transition,
    pub change: Change,
    /// Stamped `transition.to.changed`, so the event and the answer's `changed` agree.
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::user;
    use crate::{EventKind, PhoneNumber};
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 22, 9, 31, second).single().expect("valid time")
    }

    #[test]
    fn changed_moves_to_now_or_a_microsecond_past_the_last_change() {
        assert_eq!(next_change(at(1), at(2)), at(2));
        assert_eq!(next_change(at(2), at(1)), at(2) + TimeDelta::microseconds(1), "a clock behind");
        assert_eq!(next_change(at(2), at(2)), at(2) + TimeDelta::microseconds(1), "the same microsecond");
    }

    #[test]
    fn a_transition_moves_the_sequence_by_one_from_the_version_read() {
        let alice = user("alice", "org-a");
        let transition = Transition::next(&alice, at(5));
        assert_eq!(transition.from, alice.version());
        assert_eq!(transition.to, Version { sequence: alice.sequence + 1, changed: at(5) });
    }

    #[test]
    fn a_snapshot_after_a_decision_is_the_state_the_store_will_hold() {
        let alice = user("alice", "org-a");
        let a1 = OtpSmsAuthenticator {
            id: OtpSmsId::new("a1").expect("valid"),
            user: alice.id.clone(),
            phone: PhoneNumber::parse("+41791234567").expect("valid"),
            verified: false,
            created: at(1),
        };
        let snapshot = UserSnapshot { user: alice.clone(), otp_sms: vec![] };
        let decide = |snapshot: &UserSnapshot, change: Change| {
            let transition = Transition::next(&snapshot.user, at(9));
            let event = Event {
                user: alice.id.clone(),
                actor: alice.id.clone(),
                origin: crate::Origin::default(),
                at: at(9),
                kind: EventKind::UserRemoved,
            };
            Decision { transition, change, event }
        };

        let added = snapshot
            .after(&decide(&snapshot, Change::AddOtpSms { authenticator: a1.clone(), pending_code: None }))
            .expect("kept");
        let verified =
            added.after(&decide(&added, Change::VerifyOtpSms { authenticator: a1.id.clone() })).expect("kept");
        let removed = verified
            .after(&decide(&verified, Change::RemoveOtpSms { authenticator: a1.id.clone(), guard: None, notice: None }))
            .expect("kept");

        assert_eq!(
            (added.user.sequence, added.otp_sms.len(), added.otp_sms[0].verified),
            (alice.sequence + 1, 1, false)
        );
        assert!(verified.otp_sms[0].verified);
        assert_eq!((removed.user.sequence, removed.otp_sms.len()), (alice.sequence + 3, 0));
        assert_eq!(
            removed.after(&decide(&removed, Change::DeleteUser { guard: None, notices: vec![], sessions: vec![] })),
            None
        );
    }
}
