//! ListUserEvents (factors' own `factors.user.v1.UserEvents`): a user's audit trail, page
//! by page, oldest first.
//!
//! The trail is the events of the user's current life, as the audit log holds them: their
//! payloads were written with phone numbers masked, so nothing here masks again. Who may
//! read it is the access rules' [`Action::ReadEvents`]: `user.read` on the user's
//! organization, even for the user itself, since the trail names the users who acted on it.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use factors_domain::{Action, Caller, UserId};

use super::{Ports, Rules};
use crate::InvalidInput;
use crate::ports::{AuditLog, RecordedEvent, UserReader};
use crate::scope::{InstanceContext, RequestScope};
use crate::write_pattern::{UserLookupError, authorized_snapshot};

#[cfg(feature = "mocks")]
use mockall::automock;

/// How many events a page holds when the request does not say (or says 0).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The most events a page may hold; a larger `pageSize` is refused rather than cut down,
/// so a client never mistakes a short page for the size it asked for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Where a page starts: after the event numbered `after`. On the wire it is opaque
/// (base64url of a format byte and the number), so clients pass back what they were given
/// instead of computing numbers, and the format can change without breaking them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    after: u64,
}

impl EventCursor {
    /// The first byte of every cursor of this format.
    const FORMAT: u8 = 1;

    /// The cursor of the page after the event numbered `sequence`.
    pub fn after(sequence: u64) -> Self {
        Self { after: sequence }
    }

    /// The number of the last event before the page.
    pub fn sequence(self) -> u64 {
        self.after
    }

    /// The cursor as clients see it.
    pub fn encode(self) -> String {
        let mut bytes = [0_u8; 9];
        bytes[0] = Self::FORMAT;
        bytes[1..].copy_from_slice(&self.after.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor as [`encode`](Self::encode) wrote it.
    ///
    /// # Errors
    /// [`InvalidInput::Cursor`] for anything else: not base64url, another length or
    /// format, or a number no event can have (0, or above what the store numbers).
    pub fn decode(text: &str) -> Result<Self, InvalidInput> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidInput::Cursor)?;
        let (&format, number) = bytes.split_first().ok_or(InvalidInput::Cursor)?;
        let number: [u8; 8] = number.try_into().map_err(|_| InvalidInput::Cursor)?;
        let after = u64::from_be_bytes(number);
        let numbered = (1..=i64::MAX.unsigned_abs()).contains(&after);
        if format == Self::FORMAT && numbered { Ok(Self { after }) } else { Err(InvalidInput::Cursor) }
    }
}

/// Which page to read: its size and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1 to [`MAX_PAGE_SIZE`].
    pub size: u32,
    /// `None` for the first page.
    pub cursor: Option<EventCursor>,
}

impl PageRequest {
    /// The page a request names, with proto3's defaults: a `page_size` of 0 (or none) is
    /// [`DEFAULT_PAGE_SIZE`], an empty (or no) cursor the first page.
    ///
    /// # Errors
    /// [`InvalidInput::PageSize`] above [`MAX_PAGE_SIZE`]; [`InvalidInput::Cursor`] for a
    /// cursor this service did not give out.
    pub fn parse(page_size: Option<u32>, cursor: Option<&str>) -> Result<Self, InvalidInput> {
        let cursor = cursor.filter(|c| !c.is_empty()).map(EventCursor::decode).transpose()?;
        Ok(Self { size: page_size_of(page_size)?, cursor })
    }
}

/// A page size as a request gives it, with proto3's default: 0 (or none) is
/// [`DEFAULT_PAGE_SIZE`].
///
/// # Errors
/// [`InvalidInput::PageSize`] above [`MAX_PAGE_SIZE`].
pub(crate) fn page_size_of(page_size: Option<u32>) -> Result<u32, InvalidInput> {
    match page_size.unwrap_or(0) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        size if size > MAX_PAGE_SIZE => Err(InvalidInput::PageSize(MAX_PAGE_SIZE)),
        size => Ok(size),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUserEventsCommand {
    pub scope: RequestScope,
    pub user: UserId,
    pub page: PageRequest,
}

/// One page of a user's audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    /// Oldest first.
    pub events: Vec<RecordedEvent>,
    /// Where the next page starts; `None` when no more events followed when this page was read.
    pub next_cursor: Option<EventCursor>,
}

/// ListUserEvents fails only as a lookup does: the selectors, the access rules, the store.
pub type ListUserEventsError = UserLookupError;

/// Reads a user's audit trail.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait ListUserEvents: Send + Sync {
    /// One page of the audit trail of a user that exists now.
    ///
    /// # Errors
    /// [`UserLookupError`] for the scope and access rules (a user that does not exist now
    /// answers as one the caller may not see), and when the store fails.
    async fn list_user_events(
        &self,
        caller: &Caller,
        command: ListUserEventsCommand,
    ) -> Result<EventsPage, ListUserEventsError>;
}

pub struct ListUserEventsService {
    pub context: Arc<InstanceContext>,
    /// The store: the user is read to apply the access rules, never from a cache.
    pub users: Arc<dyn UserReader>,
    pub audit: Arc<dyn AuditLog>,
}

impl ListUserEventsService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules) -> Self {
        Self { context: rules.context.clone(), users: ports.users.clone(), audit: ports.audit.clone() }
    }
}

#[async_trait]
impl ListUserEvents for ListUserEventsService {
    #[tracing::instrument(name = "list_user_events", level = "debug", skip_all, fields(actor = %caller.user_id, user_id = %command.user), err(level = "debug", Display))]
    async fn list_user_events(
        &self,
        caller: &Caller,
        command: ListUserEventsCommand,
    ) -> Result<EventsPage, ListUserEventsError> {
        let snapshot = authorized_snapshot(
            &self.context,
            self.users.as_ref(),
            caller,
            &command.scope,
            &command.user,
            Action::ReadEvents,
        )
        .await?;
        let size = command.page.size;
        let after = command.page.cursor.map_or(0, EventCursor::sequence);
        // One more than the page holds, to know whether another page follows.
        let mut events = self.audit.events_page(&command.user, after, size.saturating_add(1)).await?;
        // The trail as of the user's version the rules were applied to: an event written
        // since (by a delete and re-create in another organization, say) waits for a later
        // read, and one of the next life never shows to a caller allowed on this one.
        events.retain(|event| event.sequence <= snapshot.user.sequence);
        let more = events.len() > usize::try_from(size).unwrap_or(usize::MAX);
        events.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next_cursor = if more { events.last().map(|last| EventCursor::after(last.sequence)) } else { None };
        Ok(EventsPage { events, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::Failure;
    use crate::ports::MockAuditLog;
    use crate::use_cases::fixtures::*;
    use factors_domain::{Contact, ContactPhone, Event, EventKind, OtpSmsId, Permission, UserSnapshot};

    /// Alice of org-a at sequence `last`, with a contact phone and an authenticator on
    /// `phone()`.
    fn alice_at(last: u64) -> UserSnapshot {
        let mut alice = alice_holding(vec![authenticator("a1", "alice")]);
        alice.user.sequence = last;
        alice.user.contact = Contact { email: None, phone: Some(ContactPhone { number: phone(), verified: true }) };
        alice
    }

    /// Event `n` of alice's trail, as the domain writes it: alternately an add and a
    /// removal of authenticator a1, by the admin, at minute `n`.
    fn event(n: u64) -> RecordedEvent {
        let minute = u32::try_from(n).expect("small");
        let authenticator = OtpSmsId::new("a1").expect("valid");
        let masked_phone = phone().masked();
        let kind = if n % 2 == 1 {
            EventKind::OtpSmsAdded { authenticator, masked_phone, verified: true }
        } else {
            EventKind::OtpSmsRemoved { authenticator, masked_phone, last_factor: false }
        };
        let written = Event {
            user: user_id("alice"),
            actor: user_id("admin"),
            origin: factors_domain::Origin::default(),
            at: at(minute),
            kind,
        };
        RecordedEvent {
            sequence: n,
            event_type: written.event_type().to_owned(),
            creator: "admin".into(),
            created_at: written.at,
            payload: written.payload(),
        }
    }

    /// An audit log holding events 1 to `last` of alice, answering pages as the stores do.
    fn audit(last: u64) -> Arc<MockAuditLog> {
        let mut audit = MockAuditLog::new();
        audit.expect_events_page().returning(move |user, after, limit| {
            assert_eq!(user.as_str(), "alice");
            Ok(((after + 1)..=last).take(usize::try_from(limit).expect("fits")).map(event).collect())
        });
        Arc::new(audit)
    }

    fn service(user_at: u64, log_holds: u64) -> ListUserEventsService {
        ListUserEventsService { context: context(), users: users(vec![alice_at(user_at)]), audit: audit(log_holds) }
    }

    fn reader() -> Caller {
        caller("reader", &[(Permission::UserRead, Some("org-a"))])
    }

    fn command(id: &str, size: Option<u32>, cursor: Option<&str>) -> ListUserEventsCommand {
        let page = PageRequest::parse(size, cursor).expect("a valid page");
        ListUserEventsCommand { scope: RequestScope::default(), user: user_id(id), page }
    }

    fn sequences(page: &EventsPage) -> Vec<u64> {
        page.events.iter().map(|e| e.sequence).collect()
    }

    #[tokio::test]
    async fn pages_follow_each_other_oldest_first_and_the_last_has_no_cursor() {
        let service = service(5, 5);

        let first = service.list_user_events(&reader(), command("alice", Some(2), None)).await.expect("a page");
        let cursor = first.next_cursor.expect("more follow").encode();
        let second = service.list_user_events(&reader(), command("alice", Some(2), Some(&cursor))).await.expect("ok");
        let cursor = second.next_cursor.expect("more follow").encode();
        let third = service.list_user_events(&reader(), command("alice", Some(2), Some(&cursor))).await.expect("ok");

        assert_eq!([sequences(&first), sequences(&second), sequences(&third)], [vec![1, 2], vec![3, 4], vec![5]]);
        assert_eq!(third.next_cursor, None, "nothing follows the last page");
        assert_eq!(first.events[1].event_type, "user.human.mfa.otp.sms.removed");
        assert_eq!(first.events[1].creator, "admin");
    }

    #[tokio::test]
    async fn a_page_that_ends_with_the_trail_has_no_cursor() {
        let page = service(4, 4).list_user_events(&reader(), command("alice", Some(4), None)).await.expect("ok");

        assert_eq!((sequences(&page), page.next_cursor), (vec![1, 2, 3, 4], None));
    }

    #[tokio::test]
    async fn events_written_after_the_user_was_read_wait_for_the_next_read() {
        // The user was read at sequence 3; events 4 and 5 landed before the trail was read.
        let page = service(3, 5).list_user_events(&reader(), command("alice", Some(3), None)).await.expect("ok");

        assert_eq!((sequences(&page), page.next_cursor), (vec![1, 2, 3], None));
    }

    #[tokio::test]
    async fn a_full_phone_number_shows_nowhere_in_the_trail() {
        let page = service(4, 4).list_user_events(&reader(), command("alice", None, None)).await.expect("ok");

        let shown = format!("{page:?}");
        assert!(!shown.contains(phone().as_e164()) && !shown.contains("791234567"), "{shown}");
        assert!(page.events.iter().all(|e| e.payload["phone"] == phone().masked().as_str()), "{shown}");
    }

    #[tokio::test]
    async fn only_callers_with_user_read_on_the_users_org_read_the_trail() {
        let cases = [
            (reader(), None, "org reader"),
            (caller("iam", &[(Permission::UserRead, None)]), None, "instance-wide reader"),
            (caller("alice", &[]), Some("AUTHZ-PermissionDenied"), "the user itself without user.read"),
            (org_admin(), None, "org admin holding user.read"),
            (
                caller("writer", &[(Permission::UserWrite, Some("org-a"))]),
                Some("AUTHZ-PermissionDenied"),
                "writer without user.read",
            ),
            (
                caller("reader-b", &[(Permission::UserRead, Some("org-b"))]),
                Some("USER-NotFound"),
                "reader of another org",
            ),
        ];
        for (who, expected, case) in cases {
            let result = service(2, 2).list_user_events(&who, command("alice", None, None)).await;
            assert_eq!(result.err().map(|e| Failure::from(e).id), expected, "{case}");
        }
    }

    #[tokio::test]
    async fn a_missing_user_is_not_found_to_readers_and_denied_to_others_and_the_log_is_not_read() {
        let mut audit = MockAuditLog::new();
        audit.expect_events_page().never();
        let service = ListUserEventsService { context: context(), users: users(vec![]), audit: Arc::new(audit) };

        let to_reader = service.list_user_events(&reader(), command("ghost", None, None)).await;
        let to_stranger = service.list_user_events(&caller("bob", &[]), command("ghost", None, None)).await;

        let failure = Failure::from(to_reader.expect_err("refused"));
        assert_eq!((failure.kind, failure.id), (ErrorKind::NotFound, "USER-NotFound"));
        let failure = Failure::from(to_stranger.expect_err("refused"));
        assert_eq!((failure.kind, failure.id), (ErrorKind::PermissionDenied, "AUTHZ-PermissionDenied"));
    }

    #[tokio::test]
    async fn a_caller_without_user_permissions_is_refused_before_anything_is_read() {
        let mut audit = MockAuditLog::new();
        audit.expect_events_page().never();
        let service = ListUserEventsService { context: context(), users: no_lookup(), audit: Arc::new(audit) };

        let refused = service.list_user_events(&caller("bob", &[]), command("alice", None, None)).await;

        assert_eq!(Failure::from(refused.expect_err("refused")).id, "AUTHZ-PermissionDenied");
    }

    #[test]
    fn page_sizes_default_to_100_and_stop_at_1000() {
        let size = |given| PageRequest::parse(given, None).map(|p| p.size).map_err(|e| Failure::from(e).id);
        assert_eq!([size(None), size(Some(0)), size(Some(1)), size(Some(1000))], [Ok(100), Ok(100), Ok(1), Ok(1000)]);
        assert_eq!(size(Some(1001)), Err("EVENTS-InvalidPageSize"));
    }

    #[test]
    fn cursors_come_back_as_given_and_anything_else_is_refused() {
        for sequence in [1, 2, 1_000_000, i64::MAX.unsigned_abs()] {
            let cursor = EventCursor::after(sequence);
            assert_eq!(EventCursor::decode(&cursor.encode()), Ok(cursor), "{sequence}");
        }
        let foreign_format = URL_SAFE_NO_PAD.encode([2, 0, 0, 0, 0, 0, 0, 0, 7]);
        let beyond_the_store = EventCursor::after(u64::MAX).encode();
        let zero = EventCursor::after(0).encode();
        let padded = format!("{}=", EventCursor::after(7).encode());
        for bad in ["x", "not base64!", "AQ", "AQAAAAAAAAAHAA", &foreign_format, &beyond_the_store, &zero, &padded] {
            let refused = PageRequest::parse(None, Some(bad)).map_err(|e| Failure::from(e).id);
            assert_eq!(refused, Err("EVENTS-InvalidCursor"), "{bad:?}");
        }
        assert_eq!(PageRequest::parse(None, Some("")).map(|p| p.cursor), Ok(None), "empty is the first page");
    }
}
