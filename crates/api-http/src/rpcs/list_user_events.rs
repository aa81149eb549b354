//! ListUserEvents (`factors.user.v1.UserEvents`, factors' own).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::RequestScope;
use factors_application::ports::RecordedEvent;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::list_user_events::{EventCursor, EventsPage, ListUserEventsCommand, PageRequest};
use factors_domain::UserId;
use serde::{Deserialize, Serialize};
// `IntoParams` is named by its path below: imported, it makes the handler's `params(...)`
// expansion trip `unused_qualifications`.
use utoipa::ToSchema;

use super::shared::{Answer, ScopeQuery, timestamp};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiPath, ApiQuery, Authenticated};

/// ListUserEvents (factors' own): the audit trail of a user that exists now, oldest first,
/// page by page.
#[utoipa::path(
    get, path = "/resources/v3alpha/users/{id}/_events", tag = "events", operation_id = "ListUserEvents",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery, EventsPageQuery),
    responses(
        (status = 200, description = "One page of the trail", body = ListUserEventsResponse),
        (status = 400, description = "Invalid input: a page size above 1000, a cursor this service did not give out", body = StatusBody),
        (status = 403, description = "No user.read on the user's organization (the user itself needs it too)", body = StatusBody),
        (status = 404, description = "No such user visible to the caller (also: deleted)", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn list_user_events(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(scope): ApiQuery<ScopeQuery>,
    ApiQuery(page): ApiQuery<EventsPageQuery>,
) -> Answer<ListUserEventsResponse> {
    let command = ListUserEventsCommand {
        scope: RequestScope::try_from(scope)?,
        user: UserId::new(id)?,
        page: PageRequest::parse(page.page_size, page.cursor.as_deref())?,
    };
    Ok(Json(use_cases.list_user_events.list_user_events(&caller, command).await?.into()))
}

/// The paging of ListUserEvents, as query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsPageQuery {
    /// Events per page (also `page_size`): 0 or absent means 100; at most 1000, more
    /// answers INVALID_ARGUMENT.
    #[serde(rename = "pageSize", alias = "page_size")]
    #[param(rename = "pageSize", maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `nextCursor` of the previous page; absent or empty for the first page. One this
    /// service did not give out answers INVALID_ARGUMENT.
    pub cursor: Option<String>,
}

/// One event of a user's audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"sequence": "3", "type": "user.human.mfa.otp.sms.removed", "actor": "admin",
    "creationDate": "2024-11-22T09:31:02.114Z", "payload": {"actor": "admin", "userId": "alice",
    "otpSmsId": "153716", "phone": "+41******567", "at": "2024-11-22T09:31:02.114Z"}}))]
pub struct UserEventJson {
    /// Its number among the events of the user id, a string (a 64-bit integer in protobuf JSON).
    pub sequence: String,
    /// ZITADEL's event type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The user id of the caller that did it.
    pub actor: String,
    pub creation_date: String,
    /// Self-contained; phone numbers masked; never codes or tokens.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// `ListUserEventsResponse`: one page, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListUserEventsResponse {
    pub events: Vec<UserEventJson>,
    /// Where the next page starts; present only when more events may follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<RecordedEvent> for UserEventJson {
    fn from(event: RecordedEvent) -> Self {
        Self {
            sequence: event.sequence.to_string(),
            event_type: event.event_type,
            actor: event.creator,
            creation_date: timestamp(event.created_at),
            payload: event.payload,
        }
    }
}

impl From<EventsPage> for ListUserEventsResponse {
    fn from(page: EventsPage) -> Self {
        Self {
            events: page.events.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(EventCursor::encode),
        }
    }
}
