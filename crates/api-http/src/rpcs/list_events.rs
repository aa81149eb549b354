//! ListEvents (`factors.user.v1.UserEvents`, factors' own): the instance's event feed.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::ports::FeedEvent;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::list_events::{FeedPage, FeedPosition, ListEventsCommand};
use serde::Serialize;
use utoipa::ToSchema;

use super::list_user_events::{EventsPageQuery, UserEventJson};
use super::shared::Answer;
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiQuery, Authenticated};

/// ListEvents (factors' own): every event of the instance (users, sessions, login
/// policies), oldest first, for a SIEM that keeps the cursor and polls with it.
#[utoipa::path(
    get, path = "/resources/v3alpha/_events", tag = "events", operation_id = "ListEvents",
    params(EventsPageQuery),
    responses(
        (status = 200, description = "One page of the feed and where to resume", body = ListEventsResponse),
        (status = 400, description = "Invalid input: a page size above 1000, a cursor this service did not give out", body = StatusBody),
        (status = 403, description = "No events.read instance-wide (checked before anything is read)", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiQuery(page): ApiQuery<EventsPageQuery>,
) -> Answer<ListEventsResponse> {
    let command = ListEventsCommand::parse(page.page_size, page.cursor.as_deref())?;
    Ok(Json(use_cases.list_events.list_events(&caller, command).await?.into()))
}

/// One event of the instance's feed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"aggregateType": "user", "aggregateId": "alice", "sequence": "3",
    "type": "user.human.mfa.otp.sms.removed", "actor": "admin", "creationDate": "2024-11-22T09:31:02.114Z",
    "payload": {"actor": "admin", "userId": "alice", "otpSmsId": "153716", "phone": "+41******567",
    "at": "2024-11-22T09:31:02.114Z"}, "cursor": "AgAAAAAAAAKcAAAAAAAAAH8"}))]
pub struct InstanceEventJson {
    /// The stream: `user`, `session`, `org` or `instance` (a login policy's).
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The event, as a user's trail shows it.
    #[serde(flatten)]
    pub event: UserEventJson,
    /// Resumes the feed after this event.
    pub cursor: String,
}

/// `ListEventsResponse`: one page, oldest first, and where to resume.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListEventsResponse {
    pub events: Vec<InstanceEventJson>,
    /// After the page's last event; the cursor asked with when the page is empty.
    pub next_cursor: String,
}

impl From<FeedEvent> for InstanceEventJson {
    fn from(event: FeedEvent) -> Self {
        Self {
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            event: event.event.into(),
            cursor: FeedPosition(event.cursor).encode(),
        }
    }
}

impl From<FeedPage> for ListEventsResponse {
    fn from(page: FeedPage) -> Self {
        Self { events: page.events.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor.encode() }
    }
}
