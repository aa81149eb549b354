//! `factors.user.v1.UserEvents` over tonic: a user's audit trail and the instance's event
//! feed, the same use cases as REST's `GET /resources/v3alpha/users/{id}/_events` and
//! `GET /resources/v3alpha/_events`.

use factors_application::ports::{FeedEvent, RecordedEvent};
use factors_application::use_cases::list_events::{FeedPage, FeedPosition, ListEventsCommand};
use factors_application::use_cases::list_user_events::{EventCursor, EventsPage, ListUserEventsCommand, PageRequest};
use factors_domain::UserId;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::status;
use crate::pb::factors::user::v1 as pb;
use crate::pb::factors::user::v1::user_events_server::UserEvents;
use crate::service::{GrpcState, authenticate};

pub struct UserEventsService {
    state: GrpcState,
}

impl UserEventsService {
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }
}

/// A payload as protobuf carries it: the JSON object the domain wrote.
fn payload(payload: &serde_json::Value) -> prost_types::Struct {
    match payload {
        serde_json::Value::Object(map) => convert::json_to_struct(map),
        _ => prost_types::Struct::default(),
    }
}

/// An event as the trail shows it.
fn event(recorded: RecordedEvent) -> pb::UserEvent {
    let payload = payload(&recorded.payload);
    pb::UserEvent {
        sequence: recorded.sequence,
        r#type: recorded.event_type,
        actor: recorded.creator,
        creation_date: Some(convert::timestamp(recorded.created_at)),
        payload: Some(payload),
    }
}

/// An event as the feed shows it.
fn instance_event(fed: FeedEvent) -> pb::InstanceEvent {
    pb::InstanceEvent {
        aggregate_type: fed.aggregate_type,
        aggregate_id: fed.aggregate_id,
        sequence: fed.event.sequence,
        r#type: fed.event.event_type,
        actor: fed.event.creator,
        creation_date: Some(convert::timestamp(fed.event.created_at)),
        payload: Some(payload(&fed.event.payload)),
        cursor: FeedPosition(fed.cursor).encode(),
    }
}

fn feed(page: FeedPage) -> pb::ListEventsResponse {
    pb::ListEventsResponse {
        events: page.events.into_iter().map(instance_event).collect(),
        next_cursor: page.next_cursor.encode(),
    }
}

fn page(page: EventsPage) -> pb::ListUserEventsResponse {
    pb::ListUserEventsResponse {
        events: page.events.into_iter().map(event).collect(),
        next_cursor: page.next_cursor.map(EventCursor::encode).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl UserEvents for UserEventsService {
    async fn list_user_events(
        &self,
        request: Request<pb::ListUserEventsRequest>,
    ) -> Result<Response<pb::ListUserEventsResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let message = request.into_inner();
        let command = ListUserEventsCommand {
            scope: convert::scope(message.instance, message.organization).map_err(status)?,
            user: UserId::new(message.id).map_err(status)?,
            page: PageRequest::parse(Some(message.page_size), Some(&message.cursor)).map_err(status)?,
        };
        let listed = self.state.use_cases.list_user_events.list_user_events(&caller, command).await.map_err(status)?;
        Ok(Response::new(page(listed)))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let message = request.into_inner();
        let command = ListEventsCommand::parse(Some(message.page_size), Some(&message.cursor)).map_err(status)?;
        let listed = self.state.use_cases.list_events.list_events(&caller, command).await.map_err(status)?;
        Ok(Response::new(feed(listed)))
    }
}
