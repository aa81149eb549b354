//! Creating and deleting users.

use chrono::{DateTime, Utc};

use crate::access::{Action, authorize};
use crate::{AccessRefusal, Caller, Change, Decision, Event, EventKind, Transition, User, UserId, UserSnapshot};

/// A new user with its first event. Its id may have lived before (created, deleted):
/// the new life continues that id's event numbering, so the audit log of one id never
/// holds two events with the same number.
#[derive(Debug, Clone, PartialEq)]
pub struct Creation {
    pub user: User,
    pub event: Event,
}

impl Creation {
    /// Numbers `user` after `last_sequence`, the last event of its id (0 when it never
    /// lived), and stamps it and its event `at`.
    pub fn new(mut user: User, actor: &UserId, last_sequence: u64, at: DateTime<Utc>) -> Self {
        user.sequence = last_sequence + 1;
        user.created = at;
        user.changed = at;
        let event = Event {
            user: user.id.clone(),
            actor: actor.clone(),
            at,
            kind: EventKind::UserAdded { org: user.org.clone(), schema_id: user.schema_id.clone() },
        };
        Self { user, event }
    }
}

/// Decides whether `caller` may delete user `target_user` (as read in `snapshot`).
///
/// # Errors
/// [`AccessRefusal`] by the access rules (deleting needs `user.delete`).
pub fn plan_deletion(
    caller: &Caller,
    target_user: &UserId,
    snapshot: Option<&UserSnapshot>,
    now: DateTime<Utc>,
) -> Result<Decision, AccessRefusal> {
    let user = authorize(caller, target_user, snapshot.map(|s| &s.user), Action::Delete)?;
    let transition = Transition::next(user, now);
    Ok(Decision {
        event: Event {
            user: user.id.clone(),
            actor: caller.user_id.clone(),
            at: transition.to.changed,
            kind: EventKind::UserRemoved,
        },
        change: Change::DeleteUser,
        transition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Permission;
    use crate::access::tests::{caller, user};
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 22, 9, minute, 0).single().expect("valid time")
    }

    #[test]
    fn a_recreated_id_continues_the_numbering_of_its_earlier_life() {
        let admin = UserId::new("admin").expect("valid");
        let first = Creation::new(user("alice", "org-a"), &admin, 0, at(1));
        let again = Creation::new(user("alice", "org-a"), &admin, 4, at(2));

        assert_eq!((first.user.sequence, first.user.created, first.user.changed), (1, at(1), at(1)));
        assert_eq!(again.user.sequence, 5);
        assert_eq!((again.event.event_type(), again.event.at), ("user.human.added", at(2)));
    }

    #[test]
    fn deleting_needs_user_delete_and_is_decided_on_the_version_read() {
        let snapshot = UserSnapshot { user: user("alice", "org-a"), otp_sms: vec![] };
        let deleter = caller("admin", &[(Permission::UserDelete, Some("org-a"))]);
        let writer = caller("admin", &[(Permission::UserWrite, Some("org-a"))]);

        let decision = plan_deletion(&deleter, &snapshot.user.id, Some(&snapshot), at(9)).expect("allowed");

        assert_eq!(decision.transition, Transition::next(&snapshot.user, at(9)));
        assert_eq!((decision.change, decision.event.event_type()), (Change::DeleteUser, "user.removed"));
        assert_eq!(
            plan_deletion(&writer, &snapshot.user.id, Some(&snapshot), at(9)),
            Err(AccessRefusal::PermissionDenied)
        );
    }
}
