//! `factors.user.v1.UserEvents` over the in-process routes, with a mocked use case: a
//! tonic client for native gRPC, and a Connect JSON call for the protobuf JSON shape.

mod common;

use chrono::{TimeZone, Utc};
use factors_api_grpc::pb::factors::user::v1 as pb;
use factors_api_grpc::pb::factors::user::v1::user_events_client::UserEventsClient;
use factors_api_grpc::pb::google::rpc;
use factors_api_grpc::pb::zitadel::object::v3alpha::{Organization, organization};
use factors_api_grpc::pb::zitadel::v1::ErrorDetail;
use factors_api_grpc::{GrpcRoutes, USER_EVENTS_SERVICE};
use factors_application::ports::RecordedEvent;
use factors_application::use_cases::MockUseCases;
use factors_application::use_cases::list_user_events::{EventCursor, EventsPage, MockListUserEvents, PageRequest};
use factors_application::{OrgSelector, RequestScope};
use factors_domain::OrgId;
use prost::Message;
use serde_json::json;
use tonic::{Code, Request};

/// The routes over `events`; every other use case fails the test if it is called.
fn routes(events: MockListUserEvents) -> GrpcRoutes {
    common::routes_for(MockUseCases { list_user_events: events, ..Default::default() }.into_use_cases(), "reader")
}

fn recorded(sequence: u64) -> RecordedEvent {
    RecordedEvent {
        sequence,
        event_type: "user.human.mfa.otp.sms.removed".into(),
        creator: "admin".into(),
        created_at: Utc.timestamp_millis_opt(1_732_267_862_114).single().expect("valid"),
        payload: json!({"actor": "admin", "userId": "alice", "otpSmsId": "42", "phone": "+41******567", "n": 1}),
    }
}

/// A use case that expects one call for alice, with `page`, and answers events 3 and 4
/// with a cursor after 4.
fn answering(page: PageRequest) -> MockListUserEvents {
    let mut events = MockListUserEvents::new();
    events
        .expect_list_user_events()
        .withf(move |caller, command| {
            caller.user_id.as_str() == "reader"
                && command.user.as_str() == "alice"
                && command.page == page
                && command.scope
                    == RequestScope {
                        instance: None,
                        organization: Some(OrgSelector::Id(OrgId::new("org-a").expect("valid"))),
                    }
        })
        .times(1)
        .returning(|_, _| {
            Ok(EventsPage { events: vec![recorded(3), recorded(4)], next_cursor: Some(EventCursor::after(4)) })
        });
    events
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", "Bearer good".parse().expect("ascii"));
    request
}

fn request(page_size: u32, cursor: String) -> pb::ListUserEventsRequest {
    pb::ListUserEventsRequest {
        instance: None,
        organization: Some(Organization { property: Some(organization::Property::OrgId("org-a".into())) }),
        id: "alice".into(),
        page_size,
        cursor,
    }
}

#[tokio::test]
async fn a_page_of_the_trail_comes_back_over_grpc_with_struct_payloads_and_timestamps() {
    let routes = routes(answering(PageRequest { size: 2, cursor: Some(EventCursor::after(2)) }));

    let answer = UserEventsClient::new(routes.router.clone())
        .list_user_events(authorized(request(2, EventCursor::after(2).encode())))
        .await
        .expect("a page")
        .into_inner();

    let listed: Vec<_> = answer.events.iter().map(|e| (e.sequence, e.r#type.as_str(), e.actor.as_str())).collect();
    assert_eq!(
        listed,
        [(3, "user.human.mfa.otp.sms.removed", "admin"), (4, "user.human.mfa.otp.sms.removed", "admin")]
    );
    let first = &answer.events[0];
    assert_eq!(first.creation_date, Some(prost_types::Timestamp { seconds: 1_732_267_862, nanos: 114_000_000 }));
    let payload = factors_api_grpc::convert::struct_to_json(first.payload.as_ref().expect("a payload"));
    assert_eq!(
        payload,
        json!({"actor": "admin", "userId": "alice", "otpSmsId": "42", "phone": "+41******567", "n": 1.0})
    );
    assert_eq!(answer.next_cursor, EventCursor::after(4).encode());
}

#[tokio::test]
async fn a_malformed_cursor_is_invalid_argument_with_its_own_id_and_the_use_case_is_not_called() {
    let mut events = MockListUserEvents::new();
    events.expect_list_user_events().never();
    let routes = routes(events);

    let refused = UserEventsClient::new(routes.router.clone())
        .list_user_events(authorized(request(0, "bm90IGEgY3Vyc29y".into())))
        .await
        .expect_err("refused");

    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let details = rpc::Status::decode(refused.details()).expect("a google.rpc.Status");
    let detail = ErrorDetail::decode(details.details[0].value.as_slice()).expect("an ErrorDetail");
    assert_eq!(detail.id, "EVENTS-InvalidCursor");
}

#[tokio::test]
async fn connect_json_writes_sequences_as_strings_and_names_as_in_rest() {
    let routes = routes(answering(PageRequest { size: 100, cursor: None }));
    let body = json!({"id": "alice", "organization": {"orgId": "org-a"}});

    let (status, answer) = common::connect_json(&routes, USER_EVENTS_SERVICE, "ListUserEvents", &body).await;

    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(answer["events"][0]["sequence"], "3", "{answer}");
    assert_eq!(answer["events"][0]["type"], "user.human.mfa.otp.sms.removed", "{answer}");
    assert_eq!(answer["events"][0]["creationDate"], "2024-11-22T09:31:02.114Z", "{answer}");
    assert_eq!(answer["events"][0]["payload"]["phone"], "+41******567", "{answer}");
    assert_eq!(answer["nextCursor"], EventCursor::after(4).encode(), "{answer}");
}
