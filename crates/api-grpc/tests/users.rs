//! `zitadel.resources.user.v3alpha.ZITADELUsers`' SearchUsers over the in-process routes,
//! with a mocked use case: a tonic client for native gRPC, and a Connect JSON call for the
//! protobuf JSON shape. (The other user RPCs are driven end to end in `tests/e2e`.)

mod common;

use chrono::{TimeZone, Utc};
use factors_api_grpc::pb::google::rpc;
use factors_api_grpc::pb::zitadel::resources::object::v3alpha::SearchQuery;
use factors_api_grpc::pb::zitadel::resources::user::v3alpha as pb;
use factors_api_grpc::pb::zitadel::resources::user::v3alpha::zitadel_users_client::ZitadelUsersClient;
use factors_api_grpc::pb::zitadel::v1::ErrorDetail;
use factors_api_grpc::{GrpcRoutes, SERVICE};
use factors_application::use_cases::MockUseCases;
use factors_application::use_cases::search_users::{MockSearchUsers, SearchFilter, UsersPage};
use factors_domain::{Contact, OrgId, SchemaId, User, UserData, UserId, UserSnapshot, UserState};
use prost::Message;
use serde_json::json;
use tonic::{Code, Request};

fn routes(search: MockSearchUsers) -> GrpcRoutes {
    common::routes_for(MockUseCases { search_users: search, ..Default::default() }.into_use_cases(), "reader")
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", "Bearer good".parse().expect("ascii"));
    request
}

fn bob() -> UserSnapshot {
    let created = Utc.timestamp_millis_opt(1_732_267_630_426).single().expect("valid");
    UserSnapshot {
        user: User {
            id: UserId::new("bob").expect("valid"),
            org: OrgId::new("org-a").expect("valid"),
            state: UserState::Active,
            schema_id: SchemaId::new("human").expect("valid"),
            data: UserData::default(),
            contact: Contact::default(),
            created,
            changed: created,
            sequence: 3,
        },
        otp_sms: vec![],
    }
}

/// A use case that expects one call with `filters` and answers Bob, of 21 users.
fn answering(filters: Vec<SearchFilter>) -> MockSearchUsers {
    let mut search = MockSearchUsers::new();
    search
        .expect_search_users()
        .withf(move |caller, command| {
            caller.user_id.as_str() == "reader"
                && (command.offset, command.limit, command.descending, command.sorting_column) == (20, 5, true, 3)
                && command.filters == filters
        })
        .times(1)
        .returning(|_, _| {
            Ok(UsersPage {
                users: vec![bob()],
                total: 21,
                applied_limit: 5,
                at: Utc.timestamp_millis_opt(1_732_267_862_114).single().expect("valid"),
            })
        });
    search
}

fn filter(filter: pb::search_filter::Filter) -> pb::SearchFilter {
    pb::SearchFilter { filter: Some(filter) }
}

#[tokio::test]
async fn a_search_comes_back_over_grpc_with_its_list_details() {
    let routes = routes(answering(vec![
        SearchFilter::State { state: 1 },
        SearchFilter::And(vec![SearchFilter::OrganizationId { id: "org-a".into(), method: 0 }]),
        SearchFilter::Other("phoneFilter"),
    ]));
    let request = pb::SearchUsersRequest {
        instance: None,
        query: Some(SearchQuery { offset: 20, limit: 5, desc: true }),
        sorting_column: pb::FieldName::ChangeDate.into(),
        filters: vec![
            filter(pb::search_filter::Filter::StateFilter(pb::StateFilter {
                state: pb::State::UserStateActive.into(),
            })),
            filter(pb::search_filter::Filter::AndFilter(pb::AndFilter {
                queries: vec![filter(pb::search_filter::Filter::OrganizationIdFilter(pb::OrganizationIdFilter {
                    id: "org-a".into(),
                    method: 0,
                }))],
            })),
            filter(pb::search_filter::Filter::PhoneFilter(pb::PhoneFilter::default())),
        ],
    };

    let answer =
        ZitadelUsersClient::new(routes.router.clone()).search_users(authorized(request)).await.expect("a page");

    let answer = answer.into_inner();
    let details = answer.details.expect("list details");
    assert_eq!((details.applied_limit, details.total_result), (5, 21));
    assert_eq!(details.timestamp, Some(prost_types::Timestamp { seconds: 1_732_267_862, nanos: 114_000_000 }));
    let ids: Vec<_> = answer.result.iter().map(|u| u.details.as_ref().expect("details").id.as_str()).collect();
    assert_eq!(ids, ["bob"]);
}

#[tokio::test]
async fn a_filter_that_sets_nothing_is_invalid_argument_and_the_use_case_is_not_called() {
    let mut search = MockSearchUsers::new();
    search.expect_search_users().never();
    let routes = routes(search);
    let request = pb::SearchUsersRequest { filters: vec![pb::SearchFilter { filter: None }], ..Default::default() };

    let refused =
        ZitadelUsersClient::new(routes.router.clone()).search_users(authorized(request)).await.expect_err("refused");

    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let details = rpc::Status::decode(refused.details()).expect("a google.rpc.Status");
    let detail = ErrorDetail::decode(details.details[0].value.as_slice()).expect("an ErrorDetail");
    assert_eq!(detail.id, "USER-SearchInvalid");
}

#[tokio::test]
async fn connect_json_writes_the_counts_as_strings() {
    let routes = routes(answering(vec![SearchFilter::UserId { id: "bob".into(), method: 0 }]));
    let body = json!({"query": {"offset": "20", "limit": 5, "desc": true}, "sortingColumn": "FIELD_NAME_CHANGE_DATE",
                      "filters": [{"userIdFilter": {"id": "bob"}}]});

    let (status, answer) = common::connect_json(&routes, SERVICE, "SearchUsers", &body).await;

    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(
        answer["details"],
        json!({"appliedLimit": "5", "totalResult": "21", "timestamp": "2024-11-22T09:31:02.114Z"})
    );
    assert_eq!(answer["result"][0]["details"]["id"], "bob", "{answer}");
    assert_eq!(answer["result"][0]["state"], "USER_STATE_ACTIVE", "{answer}");
}
