//! ListEvents (factors' own `factors.user.v1.UserEvents`): the instance's event feed, for a
//! SIEM that reads everything that happened, oldest first, and keeps a cursor.
//!
//! Every stream is in it (users, sessions, login policies, SMS breakers), as the audit log
//! holds them: payloads were written with phone numbers masked. Only a caller holding
//! `events.read` instance-wide may read it, and that is checked before anything is read.
//! The cursor is the store's resumable order ([`AuditLog::feed_page`]): a consumer that
//! passes back the last one it got sees each event once, in order, whatever is written
//! meanwhile; an empty page gives back the cursor it was asked with, to poll with again.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use factors_domain::{AccessRefusal, Caller, Permission};

use super::list_user_events::page_size_of;
use super::{Ports, Rules};
use crate::InvalidInput;
use crate::ports::{AuditLog, FeedCursor, FeedEvent};
use crate::write_pattern::UserLookupError;

#[cfg(feature = "mocks")]
use mockall::automock;

/// Where a reader of the feed stands, as clients see it: opaque (base64url of a format
/// byte, the writing transaction and the position), passed back as given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedPosition(pub FeedCursor);

impl FeedPosition {
    /// The first byte of every cursor of this format (a user trail's cursor has another).
    const FORMAT: u8 = 2;

    /// The cursor as clients see it.
    pub fn encode(self) -> String {
        let mut bytes = [0_u8; 17];
        bytes[0] = Self::FORMAT;
        bytes[1..9].copy_from_slice(&self.0.transaction.to_be_bytes());
        bytes[9..].copy_from_slice(&self.0.position.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor as [`encode`](Self::encode) wrote it.
    ///
    /// # Errors
    /// [`InvalidInput::Cursor`] for anything else: not base64url, another length or format
    /// (a user trail's cursor, say), or numbers no store gives (above `i64::MAX`).
    pub fn decode(text: &str) -> Result<Self, InvalidInput> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidInput::Cursor)?;
        let bytes: [u8; 17] = bytes.try_into().map_err(|_| InvalidInput::Cursor)?;
        let number = |at: usize| {
            let mut word = [0_u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(word)
        };
        let (transaction, position) = (number(1), number(9));
        let stored = |n: u64| n <= i64::MAX.unsigned_abs();
        if bytes[0] == Self::FORMAT && stored(transaction) && stored(position) {
            Ok(Self(FeedCursor { transaction, position }))
        } else {
            Err(InvalidInput::Cursor)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListEventsCommand {
    /// 1 to [`MAX_PAGE_SIZE`](super::list_user_events::MAX_PAGE_SIZE).
    pub size: u32,
    /// Where to resume; the beginning of the feed when absent.
    pub after: FeedPosition,
}

impl ListEventsCommand {
    /// The page a request names, with proto3's defaults: a page size of 0 (or none) is
    /// [`DEFAULT_PAGE_SIZE`](super::list_user_events::DEFAULT_PAGE_SIZE), an empty (or no) cursor the feed's beginning.
    ///
    /// # Errors
    /// [`InvalidInput::PageSize`] above [`MAX_PAGE_SIZE`](super::list_user_events::MAX_PAGE_SIZE); [`InvalidInput::Cursor`] for a
    /// cursor this service did not give out.
    pub fn parse(page_size: Option<u32>, cursor: Option<&str>) -> Result<Self, InvalidInput> {
        let after = cursor.filter(|c| !c.is_empty()).map(FeedPosition::decode).transpose()?.unwrap_or_default();
        Ok(Self { size: page_size_of(page_size)?, after })
    }
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// Oldest first, each with the cursor that resumes after it.
    pub events: Vec<FeedEvent>,
    /// Where to resume: after the page's last event, or where the request began when the
    /// page is empty.
    pub next_cursor: FeedPosition,
}

/// ListEvents fails as a lookup does: the access rule (`events.read`), the store.
pub type ListEventsError = UserLookupError;

/// Reads the instance's event feed.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait ListEvents: Send + Sync {
    /// One page of the feed after the command's cursor.
    ///
    /// # Errors
    /// [`UserLookupError::Access`] without `events.read` instance-wide (nothing is read
    /// then), [`UserLookupError::Unexpected`] when the store fails.
    async fn list_events(&self, caller: &Caller, command: ListEventsCommand) -> Result<FeedPage, ListEventsError>;
}

pub struct ListEventsService {
    pub audit: Arc<dyn AuditLog>,
}

impl ListEventsService {
    /// The use case on `ports`.
    pub fn new(ports: &Ports, _rules: &Rules) -> Self {
        Self { audit: ports.audit.clone() }
    }
}

#[async_trait]
impl ListEvents for ListEventsService {
    #[tracing::instrument(name = "list_events", level = "debug", skip_all, fields(actor = %caller.user_id), err(level = "debug", Display))]
    async fn list_events(&self, caller: &Caller, command: ListEventsCommand) -> Result<FeedPage, ListEventsError> {
        if !caller.has_instance_wide(Permission::EventsRead) {
            return Err(AccessRefusal::PermissionDenied.into());
        }
        let events = self.audit.feed_page(command.after.0, command.size).await?;
        let next_cursor = events.last().map_or(command.after, |last| FeedPosition(last.cursor));
        Ok(FeedPage { events, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Failure;
    use crate::ports::{MockAuditLog, RecordedEvent};
    use crate::use_cases::fixtures::*;
    use crate::use_cases::list_user_events::MAX_PAGE_SIZE;

    fn reader(permission: Permission, scope: Option<&str>) -> Caller {
        caller("siem", &[(permission, scope)])
    }

    fn feed_event(transaction: u64, position: u64) -> FeedEvent {
        FeedEvent {
            cursor: FeedCursor { transaction, position },
            aggregate_type: "user".into(),
            aggregate_id: "alice".into(),
            event: RecordedEvent {
                sequence: position,
                event_type: "user.human.added".into(),
                creator: "admin".into(),
                created_at: at(1),
                payload: serde_json::json!({}),
            },
        }
    }

    #[tokio::test]
    async fn without_events_read_instance_wide_the_feed_is_refused_before_anything_is_read() {
        let callers = [
            reader(Permission::UserRead, None),
            reader(Permission::EventsRead, Some("org-a")),
            reader(Permission::PolicyRead, None),
        ];
        for caller in callers {
            let mut audit = MockAuditLog::new();
            audit.expect_feed_page().never();
            let service = ListEventsService { audit: Arc::new(audit) };
            let command = ListEventsCommand::parse(None, None).expect("valid");
            let refused = service.list_events(&caller, command).await.expect_err("refused");
            let failure = Failure::from(refused);
            assert_eq!((failure.id, failure.kind), ("AUTHZ-PermissionDenied", crate::ErrorKind::PermissionDenied));
        }
    }

    #[tokio::test]
    async fn a_page_resumes_after_the_cursor_and_hands_on_its_last_events_or_the_same_when_empty() {
        let mut audit = MockAuditLog::new();
        let after = FeedCursor { transaction: 7, position: 40 };
        audit
            .expect_feed_page()
            .withf(move |asked, size| *asked == after && *size == 2)
            .returning(|_, _| Ok(vec![feed_event(7, 41), feed_event(9, 39)]));
        audit.expect_feed_page().withf(|asked, _| asked.transaction == 9).returning(|_, _| Ok(vec![]));
        let service = ListEventsService { audit: Arc::new(audit) };
        let caller = reader(Permission::EventsRead, None);

        let cursor = FeedPosition(after).encode();
        let page = service.list_events(&caller, ListEventsCommand::parse(Some(2), Some(&cursor)).expect("valid")).await;
        let page = page.expect("read");
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.next_cursor, FeedPosition(FeedCursor { transaction: 9, position: 39 }));

        let next = page.next_cursor.encode();
        let empty = service.list_events(&caller, ListEventsCommand::parse(Some(2), Some(&next)).expect("valid")).await;
        assert_eq!(
            empty.expect("read"),
            FeedPage { events: vec![], next_cursor: page.next_cursor },
            "poll again with it"
        );
    }

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        for cursor in [FeedCursor::default(), FeedCursor { transaction: 12, position: 3 }] {
            assert_eq!(FeedPosition::decode(&FeedPosition(cursor).encode()), Ok(FeedPosition(cursor)));
        }
        let user_trail = super::super::list_user_events::EventCursor::after(3).encode();
        let too_far = {
            let mut bytes = [0_u8; 17];
            bytes[0] = 2;
            bytes[1..9].copy_from_slice(&u64::MAX.to_be_bytes());
            URL_SAFE_NO_PAD.encode(bytes)
        };
        for bad in ["", "not base64!", "AAAA", user_trail.as_str(), too_far.as_str()] {
            assert_eq!(FeedPosition::decode(bad), Err(InvalidInput::Cursor), "{bad:?}");
        }
        assert_eq!(ListEventsCommand::parse(Some(1001), None), Err(InvalidInput::PageSize(MAX_PAGE_SIZE)));
        assert_eq!(
            ListEventsCommand::parse(Some(0), Some("")).map(|c| (c.size, c.after)),
            Ok((100, FeedPosition::default()))
        );
    }
}
