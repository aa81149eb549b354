//! `zitadel.session.v2.SessionService` over the in-process routes, with mocked session use
//! cases: a tonic client for native gRPC, and raw gRPC-web and Connect calls built here.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::TimeDelta;
use factors_api_grpc::pb::google::rpc;
use factors_api_grpc::pb::zitadel::session::v2 as pb;
use factors_api_grpc::pb::zitadel::session::v2::session_service_client::SessionServiceClient;
use factors_api_grpc::pb::zitadel::v1::ErrorDetail;
use factors_api_grpc::{GrpcRoutes, SESSION_SERVICE};
use factors_application::ports::{LimitScope, RateLimited, Unexpected};
use factors_application::use_cases::MockUseCases;
use factors_application::use_cases::examples::{at, session_details, session_view, session_written};
use factors_application::use_cases::sessions::{MockSessions, SessionChange, SessionError, UserCheck};
use factors_domain::UserId;
use http_body_util::BodyExt;
use prost::Message;
use serde_json::json;
use tonic::{Code, Request, Status};
use tower::ServiceExt;

/// The routes over `sessions`; every other use case fails the test if it is called.
fn routes(sessions: MockSessions) -> GrpcRoutes {
    common::routes_for(MockUseCases { sessions, ..Default::default() }.into_use_cases(), "alice")
}

/// A tonic client calling the routes in process.
fn client(routes: &GrpcRoutes) -> SessionServiceClient<axum::Router> {
    SessionServiceClient::new(routes.router.clone())
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", "Bearer good".parse().expect("ascii"));
    request
}

fn timestamp(millis: i64) -> prost_types::Timestamp {
    let at = at(millis);
    prost_types::Timestamp { seconds: at.timestamp(), nanos: i32::try_from(at.timestamp_subsec_nanos()).expect("fits") }
}

/// The error id a status carries in its `google.rpc.Status` details.
#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, id: &str) {
    let status = result.expect_err("an error status");
    assert_eq!(status.code(), code, "{status:?}");
    let details = rpc::Status::decode(status.details()).expect("grpc-status-details-bin is a google.rpc.Status");
    let any = details.details.first().expect("one detail");
    assert_eq!(any.type_url, "type.googleapis.com/zitadel.v1.ErrorDetail");
    assert_eq!(ErrorDetail::decode(any.value.as_slice()).expect("an ErrorDetail").id, id, "{status:?}");
    assert!(status.message().ends_with(&format!("({id})")), "{status:?}");
}

fn user_check(id: &str) -> pb::Checks {
    pb::Checks {
        user: Some(pb::CheckUser { search: Some(pb::check_user::Search::UserId(id.into())) }),
        ..pb::Checks::default()
    }
}

#[tokio::test]
async fn create_session_hands_the_checked_user_challenge_metadata_and_lifetime_to_the_use_case() {
    let mut sessions = MockSessions::new();
    sessions
        .expect_create_session()
        .withf(|caller, change| {
            caller.user_id.as_str() == "alice"
                && *change
                    == SessionChange {
                        check_user: Some(UserCheck::UserId(UserId::new("u1").expect("valid"))),
                        check_otp_sms: None,
                        challenge_otp_sms: Some(true),
                        metadata: BTreeMap::from([("k".to_owned(), vec![0, 255])]),
                        lifetime: Some(TimeDelta::milliseconds(1500)),
                    }
        })
        .times(1)
        .returning(|_, _| Ok(session_written(Some("123456"))));
    let routes = routes(sessions);

    let answer = client(&routes)
        .create_session(authorized(pb::CreateSessionRequest {
            checks: Some(user_check("u1")),
            metadata: HashMap::from([("k".to_owned(), vec![0, 255])]),
            challenges: Some(pb::RequestChallenges {
                otp_sms: Some(pb::request_challenges::Otpsms { return_code: true }),
                ..pb::RequestChallenges::default()
            }),
            user_agent: Some(pb::UserAgent { description: Some("ignored".into()), ..pb::UserAgent::default() }),
            lifetime: Some(prost_types::Duration { seconds: 1, nanos: 500_000_000 }),
        }))
        .await
        .expect("created")
        .into_inner();

    assert_eq!(
        answer,
        pb::CreateSessionResponse {
            details: Some(factors_api_grpc::pb::zitadel::object::v2::Details {
                sequence: 2,
                change_date: Some(timestamp(1_732_267_862_114)),
                resource_owner: "instance-1".into(),
                creation_date: Some(timestamp(1_732_267_630_426)),
            }),
            session_id: "s1".into(),
            session_token: "token-2".into(),
            challenges: Some(pb::Challenges { otp_sms: Some("123456".into()), ..pb::Challenges::default() }),
        }
    );
}

#[tokio::test]
async fn create_session_refuses_unsupported_checks_and_bad_lifetimes_before_the_use_case() {
    let mut sessions = MockSessions::new();
    sessions.expect_create_session().never();
    let routes = routes(sessions);
    let mut grpc = client(&routes);

    let password = pb::CreateSessionRequest {
        checks: Some(pb::Checks { password: Some(pb::CheckPassword { password: "x".into() }), ..user_check("u1") }),
        ..pb::CreateSessionRequest::default()
    };
    let refused = grpc.create_session(authorized(password)).await;
    let status = refused.as_ref().expect_err("refused").clone();
    assert_status(refused, Code::InvalidArgument, "SESSION-Unsupported");
    assert!(status.message().starts_with("checks.password is not supported"), "{status:?}");

    let email_challenge = pb::CreateSessionRequest {
        challenges: Some(pb::RequestChallenges {
            otp_email: Some(pb::request_challenges::OtpEmail::default()),
            ..pb::RequestChallenges::default()
        }),
        ..pb::CreateSessionRequest::default()
    };
    let refused = grpc.create_session(authorized(email_challenge)).await;
    assert!(refused.as_ref().is_err_and(|s| s.message().starts_with("challenges.otpEmail ")), "{refused:?}");

    let bad_lifetime = pb::CreateSessionRequest {
        lifetime: Some(prost_types::Duration { seconds: 1, nanos: -1 }),
        ..pb::CreateSessionRequest::default()
    };
    assert_status(grpc.create_session(authorized(bad_lifetime)).await, Code::InvalidArgument, "REQ-InvalidProto");

    let no_member = pb::CreateSessionRequest {
        checks: Some(pb::Checks { user: Some(pb::CheckUser { search: None }), ..pb::Checks::default() }),
        ..pb::CreateSessionRequest::default()
    };
    assert_status(grpc.create_session(authorized(no_member)).await, Code::InvalidArgument, "REQ-MissingField");

    let no_token = grpc.create_session(Request::new(pb::CreateSessionRequest::default())).await;
    assert_status(no_token, Code::Unauthenticated, "AUTH-MissingToken");
}

#[tokio::test]
async fn set_session_checks_the_code_on_the_session_of_the_request() {
    let mut sessions = MockSessions::new();
    sessions
        .expect_set_session()
        .withf(|_, command| {
            command.session_id.as_str() == "s1"
                && command.change == SessionChange { check_otp_sms: Some("654321".into()), ..SessionChange::default() }
        })
        .times(1)
        .returning(|_, _| Ok(session_written(None)));
    let routes = routes(sessions);
    let mut grpc = client(&routes);

    let set = pb::SetSessionRequest {
        session_id: "s1".into(),
        checks: Some(pb::Checks { otp_sms: Some(pb::CheckOtp { code: "654321".into() }), ..pb::Checks::default() }),
        ..pb::SetSessionRequest::default()
    };
    let answer = grpc.set_session(authorized(set)).await.expect("set").into_inner();
    assert_eq!(answer.session_token, "token-2");
    assert_eq!(answer.details.map(|d| d.sequence), Some(2));
    assert_eq!(answer.challenges, None, "no challenge was asked for");

    let bad_id = pb::SetSessionRequest { session_id: "s 1".into(), ..pb::SetSessionRequest::default() };
    assert_status(grpc.set_session(authorized(bad_id)).await, Code::InvalidArgument, "SESSION-InvalidId");
}

#[tokio::test]
async fn get_session_shows_the_factors_metadata_and_expiration() {
    let mut sessions = MockSessions::new();
    sessions
        .expect_get_session()
        .withf(|_, access| access.session_id.as_str() == "s1" && access.session_token.as_deref() == Some("t"))
        .times(1)
        .returning(|_, _| Ok(session_view()));
    sessions
        .expect_get_session()
        .withf(|_, access| access.session_id.as_str() == "gone")
        .returning(|_, _| Err(SessionError::NotFound));
    let routes = routes(sessions);
    let mut grpc = client(&routes);

    let get = pb::GetSessionRequest { session_id: "s1".into(), session_token: Some("t".into()) };
    let session = grpc.get_session(authorized(get)).await.expect("found").into_inner().session.expect("a session");
    assert_eq!(
        session,
        pb::Session {
            id: "s1".into(),
            creation_date: Some(timestamp(1_732_267_630_426)),
            change_date: Some(timestamp(1_732_267_862_114)),
            sequence: 3,
            factors: Some(pb::Factors {
                user: Some(pb::UserFactor {
                    verified_at: Some(timestamp(1_732_267_700_000)),
                    id: "alice".into(),
                    login_name: String::new(),
                    display_name: String::new(),
                    organization_id: "org-a".into(),
                }),
                otp_sms: Some(pb::OtpFactor { verified_at: Some(timestamp(1_732_267_800_000)) }),
                ..pb::Factors::default()
            }),
            metadata: HashMap::from([("device".to_owned(), b"laptop".to_vec())]),
            user_agent: None,
            expiration_date: Some(timestamp(1_732_271_230_426)),
        }
    );

    let gone = pb::GetSessionRequest { session_id: "gone".into(), session_token: None };
    assert_status(grpc.get_session(authorized(gone)).await, Code::NotFound, "SESSION-NotFound");
}

#[tokio::test]
async fn delete_session_takes_the_token_and_answers_the_details() {
    let mut sessions = MockSessions::new();
    sessions
        .expect_delete_session()
        .withf(|_, access| access.session_token.as_deref() == Some("t"))
        .times(1)
        .returning(|_, _| Ok(session_details()));
    sessions
        .expect_delete_session()
        .withf(|_, access| access.session_token.is_none())
        .returning(|_, _| Err(SessionError::PermissionDenied));
    let routes = routes(sessions);
    let mut grpc = client(&routes);

    let delete = pb::DeleteSessionRequest { session_id: "s1".into(), session_token: Some("t".into()) };
    let answer = grpc.delete_session(authorized(delete)).await.expect("deleted").into_inner();
    assert_eq!(answer.details.map(|d| (d.sequence, d.resource_owner)), Some((2, "instance-1".to_owned())));

    let without_token = pb::DeleteSessionRequest { session_id: "s1".into(), session_token: None };
    let refused = grpc.delete_session(authorized(without_token)).await;
    assert_status(refused, Code::PermissionDenied, "SESSION-PermissionDenied");
}

/// A session error (made anew for each call: some hold causes that cannot be cloned), its
/// gRPC code and its error id.
type ErrorCase = (fn() -> SessionError, Code, &'static str);

fn session_errors() -> Vec<ErrorCase> {
    vec![
        (|| SessionError::PermissionDenied, Code::PermissionDenied, "SESSION-PermissionDenied"),
        (|| SessionError::NotFound, Code::NotFound, "SESSION-NotFound"),
        (|| SessionError::Expired, Code::FailedPrecondition, "SESSION-Expired"),
        (|| SessionError::UserNotFound, Code::NotFound, "USER-NotFound"),
        (|| SessionError::UserInactive, Code::FailedPrecondition, "SESSION-UserInactive"),
        (|| SessionError::UserChanged, Code::FailedPrecondition, "SESSION-UserChanged"),
        (|| SessionError::LoginNameUnsupported, Code::InvalidArgument, "SESSION-LoginNameUnsupported"),
        (|| SessionError::UserNotChecked, Code::FailedPrecondition, "SESSION-UserNotChecked"),
        (|| SessionError::NoOtpSms, Code::FailedPrecondition, "SESSION-NoOtpSms"),
        (|| SessionError::NoChallenge, Code::FailedPrecondition, "SESSION-NoOtpSmsChallenge"),
        (|| SessionError::CodeFormat, Code::InvalidArgument, "SESSION-CodeInvalid"),
        (|| SessionError::CodeWrong { void: false }, Code::InvalidArgument, "SESSION-CodeWrong"),
        (|| SessionError::CodeWrong { void: true }, Code::InvalidArgument, "SESSION-CodeWrong"),
        (|| SessionError::CodeExpired, Code::InvalidArgument, "SESSION-CodeExpired"),
        (|| SessionError::CodeExhausted, Code::InvalidArgument, "SESSION-CodeExhausted"),
        (|| SessionError::LifetimeInvalid, Code::InvalidArgument, "SESSION-LifetimeInvalid"),
        (|| SessionError::MetadataInvalid, Code::InvalidArgument, "SESSION-MetadataInvalid"),
        (
            || SessionError::RateLimited(RateLimited { scope: LimitScope::User, retry_after: Duration::from_secs(30) }),
            Code::ResourceExhausted,
            "SMS-RateLimitedUser",
        ),
        (|| SessionError::SmsFailed(anyhow::anyhow!("provider down")), Code::Unavailable, "SMS-SendFailed"),
        (|| SessionError::Contended, Code::Aborted, "SESSION-Contended"),
        (|| SessionError::Unexpected(Unexpected(anyhow::anyhow!("db down"))), Code::Internal, "INTERNAL"),
    ]
}

#[tokio::test]
async fn each_session_error_answers_its_code_and_error_id() {
    for (error, code, id) in session_errors() {
        let mut sessions = MockSessions::new();
        sessions.expect_create_session().returning(move |_, _| Err(error()));
        let routes = routes(sessions);
        let answer = client(&routes).create_session(authorized(pb::CreateSessionRequest::default())).await;
        let status = answer.as_ref().expect_err("an error").clone();
        assert_status(answer, code, id);
        assert!(!status.message().contains("db down") && !status.message().contains("provider"), "{status:?}");
        if id == "SMS-RateLimitedUser" {
            assert_eq!(status.metadata().get("retry-after").and_then(|v| v.to_str().ok()), Some("30"));
        }
    }
}

#[tokio::test]
async fn list_sessions_is_unimplemented_over_grpc() {
    let routes = routes(MockSessions::new());
    let answer = client(&routes).list_sessions(authorized(pb::ListSessionsRequest::default())).await;
    let status = answer.as_ref().expect_err("unimplemented").clone();
    assert_status(answer, Code::Unimplemented, "RPC-Unimplemented");
    assert_eq!(status.message(), "ListSessions is not implemented by factors (RPC-Unimplemented)");
}

// ----- gRPC-web ------------------------------------------------------------------------------

/// A gRPC-web call over HTTP/1.1: the data frame of the answer, and its metadata as text
/// (a trailers-only answer carries the status in its headers, a full one in the trailer
/// frame at the end of the body).
async fn grpc_web(routes: &GrpcRoutes, method: &str, message: &impl Message) -> (Vec<u8>, String) {
    let payload = message.encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&payload);
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("/{SESSION_SERVICE}/{method}"))
        .header(http::header::CONTENT_TYPE, "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header(http::header::AUTHORIZATION, "Bearer good")
        .body(Body::from(framed))
        .expect("a valid request");
    let response = routes.router.clone().oneshot(request).await.expect("the router answers");
    assert_eq!(response.status(), http::StatusCode::OK);
    let mut trailers: String =
        response.headers().iter().map(|(k, v)| format!("{k}:{}\r\n", v.to_str().unwrap_or_default())).collect();
    let bytes = response.into_body().collect().await.expect("the body is read").to_bytes();
    // Frames: flag byte, length, payload; flag 0x80 marks the trailers.
    let (mut data, mut rest) = (Vec::new(), &bytes[..]);
    while rest.len() >= 5 {
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = &rest[5..5 + length];
        if rest[0] & 0x80 == 0 {
            data = frame.to_vec();
        } else {
            trailers.push_str(&String::from_utf8_lossy(frame));
        }
        rest = &rest[5 + length..];
    }
    (data, trailers)
}

#[tokio::test]
async fn grpc_web_calls_reach_the_session_service() {
    let mut sessions = MockSessions::new();
    sessions.expect_get_session().times(1).returning(|_, _| Ok(session_view()));
    let routes = routes(sessions);

    let get = pb::GetSessionRequest { session_id: "s1".into(), session_token: None };
    let (data, trailers) = grpc_web(&routes, "GetSession", &get).await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let session = pb::GetSessionResponse::decode(data.as_slice()).expect("a GetSessionResponse").session;
    assert_eq!(session.map(|s| (s.id, s.sequence)), Some(("s1".to_owned(), 3)));

    let (_, trailers) = grpc_web(&routes, "ListSessions", &pb::ListSessionsRequest::default()).await;
    assert!(trailers.contains("grpc-status:12"), "{trailers}");
}

// ----- Connect -------------------------------------------------------------------------------

#[tokio::test]
async fn connect_json_speaks_protobuf_json_both_ways() {
    let mut sessions = MockSessions::new();
    sessions
        .expect_create_session()
        .withf(|_, change| {
            change.check_user == Some(UserCheck::UserId(UserId::new("u1").expect("valid")))
                && change.challenge_otp_sms == Some(true)
                && change.metadata == BTreeMap::from([("k".to_owned(), b"hi".to_vec())])
                && change.lifetime == Some(TimeDelta::seconds(300))
        })
        .times(1)
        .returning(|_, _| Ok(session_written(Some("123456"))));
    sessions.expect_get_session().times(1).returning(|_, _| Ok(session_view()));
    let routes = routes(sessions);

    let body = json!({
        "checks": {"user": {"user_id": "u1"}},
        "challenges": {"otpSms": {"returnCode": true}},
        "metadata": {"k": STANDARD.encode(b"hi")},
        "lifetime": "300s",
        "userAgent": {"description": "ignored"}
    });
    let (status, created) = common::connect_json(&routes, SESSION_SERVICE, "CreateSession", &body).await;
    assert_eq!(status, http::StatusCode::OK, "{created}");
    assert_eq!(
        created,
        json!({
            "details": {"sequence": "2", "changeDate": "2024-11-22T09:31:02.114Z", "resourceOwner": "instance-1",
                        "creationDate": "2024-11-22T09:27:10.426Z"},
            "sessionId": "s1",
            "sessionToken": "token-2",
            "challenges": {"otpSms": "123456"}
        })
    );

    let (_, got) = common::connect_json(&routes, SESSION_SERVICE, "GetSession", &json!({"sessionId": "s1"})).await;
    assert_eq!(got["session"]["metadata"]["device"], STANDARD.encode(b"laptop"));
    assert_eq!(got["session"]["factors"]["user"]["organizationId"], "org-a");
    assert_eq!(got["session"]["expirationDate"], "2024-11-22T10:27:10.426Z");

    let (status, refused) = common::connect_json(
        &routes,
        SESSION_SERVICE,
        "CreateSession",
        &json!({"checks": {"webAuthN": {"credentialAssertionData": {}}}}),
    )
    .await;
    assert_eq!((status, refused["code"].as_str()), (http::StatusCode::BAD_REQUEST, Some("invalid_argument")));
    assert_eq!(refused["details"][0]["debug"]["id"], "SESSION-Unsupported");

    let (status, refused) =
        common::connect_json(&routes, SESSION_SERVICE, "CreateSession", &json!({"lifetime": "5 minutes"})).await;
    assert_eq!(
        (status, refused["details"][0]["debug"]["id"].as_str()),
        (http::StatusCode::BAD_REQUEST, Some("REQ-InvalidJson"))
    );

    let (status, unimplemented) = common::connect_json(&routes, SESSION_SERVICE, "ListSessions", &json!({})).await;
    assert_eq!((status, unimplemented["code"].as_str()), (http::StatusCode::NOT_IMPLEMENTED, Some("unimplemented")));
}

// ----- reflection and health ---------------------------------------------------------------

#[tokio::test]
async fn reflection_lists_the_session_service_and_health_knows_it() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let routes = routes(MockSessions::new());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(routes.router.clone())
        .server_reflection_info(tonic::codegen::tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let answer = answers.message().await.expect("an answer").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a list of services: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == SESSION_SERVICE), "{names:?}");
    assert!(names.iter().any(|n| n == factors_api_grpc::SERVICE), "{names:?}");

    let health = tonic_health::pb::health_client::HealthClient::new(routes.router.clone());
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let mut status = None;
    for _ in 0..50 {
        let check = tonic_health::pb::HealthCheckRequest { service: SESSION_SERVICE.into() };
        status = health.clone().check(check).await.ok().map(|answer| answer.into_inner().status);
        if status == Some(serving) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, Some(serving));
}
