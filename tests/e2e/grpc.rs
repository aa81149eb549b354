//! gRPC, gRPC-web and Connect on the service's one port: a tonic client for every
//! implemented RPC and the contract's error cases, raw gRPC-web and Connect calls built
//! here over HTTP/1.1, the same `details` on every protocol, reflection and health.

use super::TestApp;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use factors_api_grpc::pb::google::rpc;
use factors_api_grpc::pb::zitadel::object::v3alpha::{Instance, Organization, OwnerType, instance, organization};
use factors_api_grpc::pb::zitadel::resources::user::v3alpha as pb;
use factors_api_grpc::pb::zitadel::resources::user::v3alpha::zitadel_users_client::ZitadelUsersClient;
use factors_api_grpc::pb::zitadel::v1::ErrorDetail;
use factors_e2e::grpc::{assert_status, authorized, channel, error_id};
use factors_wire::rpc::{SERVICES, Verb};
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const SERVICE: &str = "zitadel.resources.user.v3alpha.ZITADELUsers";

async fn client(app: &TestApp) -> ZitadelUsersClient<Channel> {
    ZitadelUsersClient::new(channel(app).await)
}

fn remove_request(user: &str, otp: &str) -> pb::RemoveOtpsmsAuthenticatorRequest {
    pb::RemoveOtpsmsAuthenticatorRequest { id: user.into(), otp_sms_id: otp.into(), ..Default::default() }
}

#[tokio::test]
async fn every_implemented_rpc_works_over_native_grpc() {
    let app = TestApp::spawn().await;
    let mut grpc = client(&app).await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);

    let created = grpc
        .create_user(authorized(
            pb::CreateUserRequest {
                organization: Some(Organization { property: Some(organization::Property::OrgId("org-a".into())) }),
                user: Some(pb::CreateUser {
                    schema_id: "human".into(),
                    user_id: Some("alice".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("created")
        .into_inner();
    let details = created.details.expect("details");
    assert_eq!(
        (details.id.as_str(), details.owner.as_ref().map(|o| (o.r#type, o.id.as_str()))),
        ("alice", Some((OwnerType::Org as i32, "org-a")))
    );
    let search = pb::SearchUsersRequest {
        filters: vec![pb::SearchFilter {
            filter: Some(pb::search_filter::Filter::OrganizationIdFilter(pb::OrganizationIdFilter {
                id: "org-a".into(),
                method: 0,
            })),
        }],
        ..Default::default()
    };
    let found = grpc.search_users(authorized(search, &admin)).await.expect("searched").into_inner();
    let ids: Vec<_> = found.result.iter().filter_map(|u| u.details.as_ref()).map(|d| d.id.as_str()).collect();
    assert_eq!((ids, found.details.map(|d| d.total_result)), (vec!["alice"], Some(1)));

    let added = grpc
        .add_otpsms_authenticator(authorized(
            pb::AddOtpsmsAuthenticatorRequest {
                id: "alice".into(),
                phone: Some(pb::SetPhone {
                    number: "+41 79 123 45 67".into(),
                    verification: Some(pb::set_phone::Verification::ReturnCode(pb::ReturnPhoneVerificationCode {})),
                }),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("added")
        .into_inner();
    let code = added.verification_code.expect("returned");

    let verify = pb::VerifyOtpsmsRegistrationRequest {
        id: "alice".into(),
        otp_sms_id: added.otp_sms_id.clone(),
        code,
        ..Default::default()
    };
    grpc.verify_otpsms_registration(authorized(verify, &admin)).await.expect("verified");

    let user = grpc
        .get_user(authorized(pb::GetUserRequest { id: "alice".into(), ..Default::default() }, &admin))
        .await
        .expect("read")
        .into_inner()
        .user
        .expect("a user");
    let otp_sms = user.authenticators.expect("authenticators").otp_sms;
    assert_eq!(
        otp_sms,
        [pb::Otpsms { otp_sms_id: added.otp_sms_id.clone(), phone: "+41791234567".into(), is_verified: true }]
    );
    assert_eq!(user.state, pb::State::UserStateActive as i32);

    let removed = grpc
        .remove_otpsms_authenticator(authorized(remove_request("alice", &added.otp_sms_id), &admin))
        .await
        .expect("removed");
    assert_eq!(removed.into_inner().details.expect("details").id, "alice");
    assert_status(
        grpc.remove_otpsms_authenticator(authorized(remove_request("alice", &added.otp_sms_id), &admin)).await,
        Code::NotFound,
        "OTPSMS-NotFound",
    );

    let lock = pb::LockUserRequest { id: "alice".into(), ..Default::default() };
    let locked = grpc.lock_user(authorized(lock.clone(), &admin)).await.expect("locked").into_inner();
    assert_eq!(locked.details.expect("details").id, "alice");
    assert_status(grpc.lock_user(authorized(lock, &admin)).await, Code::FailedPrecondition, "USER-NotActive");
    let unlock = pb::UnlockUserRequest { id: "alice".into(), ..Default::default() };
    let unlocked = grpc.unlock_user(authorized(unlock.clone(), &admin)).await.expect("unlocked").into_inner();
    assert_eq!(unlocked.details.expect("details").id, "alice");
    assert_status(grpc.unlock_user(authorized(unlock, &admin)).await, Code::FailedPrecondition, "USER-NotLocked");
    let deactivate = pb::DeactivateUserRequest { id: "alice".into(), ..Default::default() };
    let deactivated = grpc.deactivate_user(authorized(deactivate, &admin)).await.expect("deactivated").into_inner();
    assert_eq!(deactivated.details.expect("details").id, "alice");
    let activate = pb::ActivateUserRequest { id: "alice".into(), ..Default::default() };
    let activated = grpc.activate_user(authorized(activate.clone(), &admin)).await.expect("activated").into_inner();
    assert_eq!(activated.details.expect("details").id, "alice");
    assert_status(grpc.activate_user(authorized(activate, &admin)).await, Code::FailedPrecondition, "USER-NotInactive");

    let admin_delete = app.token("admin-a", "org-a", &["ORG_OWNER"]);
    let deleted = grpc
        .delete_user(authorized(pb::DeleteUserRequest { id: "alice".into(), ..Default::default() }, &admin_delete))
        .await;
    assert_eq!(deleted.expect("deleted").into_inner().details.expect("details").id, "alice");
}

#[tokio::test]
async fn the_contracts_error_cases_answer_with_their_codes_and_error_details() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    let mut grpc = client(&app).await;

    assert_status(
        grpc.remove_otpsms_authenticator(Request::new(remove_request("alice", &otp))).await,
        Code::Unauthenticated,
        "AUTH-MissingToken",
    );
    assert_status(
        grpc.remove_otpsms_authenticator(authorized(remove_request("alice", &otp), "not-a-jwt")).await,
        Code::Unauthenticated,
        "AUTH-InvalidToken",
    );
    let cases = [
        (
            app.token("bob", "org-a", &[]),
            Code::PermissionDenied,
            "AUTHZ-PermissionDenied",
            "plain user on someone else",
        ),
        (
            app.token("reader", "org-a", &["ORG_USER_READER"]),
            Code::PermissionDenied,
            "AUTHZ-PermissionDenied",
            "read-only",
        ),
        (app.token("admin-b", "org-b", &["ORG_USER_MANAGER"]), Code::NotFound, "USER-NotFound", "admin of another org"),
    ];
    for (token, code, id, case) in cases {
        let result = grpc.remove_otpsms_authenticator(authorized(remove_request("alice", &otp), &token)).await;
        assert_eq!(result.as_ref().map_err(Status::code).err(), Some(code), "{case}");
        assert_status(result, code, id);
    }
    let admin = app.admin();
    let long = "1".repeat(201);
    assert_status(
        grpc.remove_otpsms_authenticator(authorized(remove_request("alice", &long), &admin)).await,
        Code::InvalidArgument,
        "OTPSMS-InvalidId",
    );
    let other_instance = pb::RemoveOtpsmsAuthenticatorRequest {
        instance: Some(Instance { property: Some(instance::Property::Id("another".into())) }),
        ..remove_request("alice", &otp)
    };
    assert_status(
        grpc.remove_otpsms_authenticator(authorized(other_instance, &admin)).await,
        Code::NotFound,
        "INSTANCE-NotFound",
    );
    let bad_phone = pb::AddOtpsmsAuthenticatorRequest {
        id: "alice".into(),
        phone: Some(pb::SetPhone { number: "+41 12".into(), verification: None }),
        ..Default::default()
    };
    assert_status(
        grpc.add_otpsms_authenticator(authorized(bad_phone, &admin)).await,
        Code::InvalidArgument,
        "PHONE-NotValid",
    );
    let same_phone = pb::AddOtpsmsAuthenticatorRequest {
        id: "alice".into(),
        phone: Some(pb::SetPhone {
            number: "+41791234567".into(),
            verification: Some(pb::set_phone::Verification::IsVerified(true)),
        }),
        ..Default::default()
    };
    assert_status(
        grpc.add_otpsms_authenticator(authorized(same_phone, &admin)).await,
        Code::AlreadyExists,
        "OTPSMS-AlreadyExists",
    );
    let self_return = pb::AddOtpsmsAuthenticatorRequest {
        id: "alice".into(),
        phone: Some(pb::SetPhone {
            number: "+41791234568".into(),
            verification: Some(pb::set_phone::Verification::ReturnCode(pb::ReturnPhoneVerificationCode {})),
        }),
        ..Default::default()
    };
    assert_status(
        grpc.add_otpsms_authenticator(authorized(self_return, &app.token("alice", "org-a", &[]))).await,
        Code::PermissionDenied,
        "AUTHZ-PermissionDenied",
    );
    let wrong_code = pb::VerifyOtpsmsRegistrationRequest {
        id: "alice".into(),
        otp_sms_id: otp.clone(),
        code: "12ab".into(),
        ..Default::default()
    };
    assert_status(
        grpc.verify_otpsms_registration(authorized(wrong_code, &admin)).await,
        Code::InvalidArgument,
        "OTPSMS-CodeFormat",
    );
    assert_eq!(app.otp_sms_ids("alice").await, std::slice::from_ref(&otp), "nothing changed");
}

#[tokio::test]
async fn rpcs_factors_does_not_implement_answer_unimplemented() {
    let app = TestApp::spawn().await;
    let mut grpc = client(&app).await;

    let result = grpc
        .start_totp_registration(authorized(
            pb::StartTotpRegistrationRequest { id: "alice".into(), ..Default::default() },
            &app.admin(),
        ))
        .await;

    assert_status(result, Code::Unimplemented, "RPC-Unimplemented");
}

#[tokio::test]
async fn rest_and_the_grpc_side_implement_the_same_rpcs() {
    // Each delivery knows what it implements from its own registrations; here both are
    // asked every RPC of the tables without a token: 401 where it is served, 501 where not.
    let app = TestApp::spawn().await;
    let http = reqwest::Client::builder().http1_only().build().expect("client");
    let mut implemented = 0;
    for service in SERVICES {
        for rpc in service.rpcs {
            let path: Vec<&str> =
                rpc.path.split('/').map(|segment| if segment.starts_with('{') { "x" } else { segment }).collect();
            let verb = match rpc.verb {
                Verb::Get => reqwest::Method::GET,
                Verb::Post => reqwest::Method::POST,
                Verb::Put => reqwest::Method::PUT,
                Verb::Patch => reqwest::Method::PATCH,
                Verb::Delete => reqwest::Method::DELETE,
            };
            let rest = http.request(verb, format!("{}{}", app.address, path.join("/"))).send().await.expect("REST");
            let connect = http
                .post(format!("{}/{}/{}", app.address, service.name, rpc.name))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("Connect");
            let (rest, connect) = (rest.status().as_u16(), connect.status().as_u16());
            assert!(matches!(rest, 401 | 501), "{}: REST answered {rest}", rpc.name);
            assert_eq!(connect, rest, "{}: Connect and REST disagree", rpc.name);
            implemented += usize::from(rest == 401);
        }
    }
    assert!(implemented >= 15, "the RPCs of the contract are served: {implemented}");
}

// ----- gRPC-web and Connect, by hand over HTTP/1.1 ------------------------------------------

fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// A gRPC-web answer: the message (if any) and the trailers, from the frames.
fn grpc_web_answer(body: &[u8]) -> (Option<Vec<u8>>, String) {
    let (mut message, mut trailers, mut rest) = (None, String::new(), body);
    while rest.len() >= 5 {
        let flag = rest[0];
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = &rest[5..5 + length];
        if flag & 0x80 == 0 {
            message = Some(payload.to_vec());
        } else {
            trailers = String::from_utf8_lossy(payload).into_owned();
        }
        rest = &rest[5 + length..];
    }
    (message, trailers)
}

fn trailer<'a>(trailers: &'a str, name: &str) -> Option<&'a str> {
    trailers
        .lines()
        .find_map(|line| line.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

async fn grpc_web_remove(
    app: &TestApp,
    token: &str,
    user: &str,
    otp: &str,
    text: bool,
) -> (Option<pb::RemoveOtpsmsAuthenticatorResponse>, String) {
    let body = frame(&remove_request(user, otp).encode_to_vec());
    let (content_type, body) = if text {
        ("application/grpc-web-text", STANDARD.encode(body).into_bytes())
    } else {
        ("application/grpc-web+proto", body)
    };
    let response = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .post(format!("{}/{SERVICE}/RemoveOTPSMSAuthenticator", app.address))
        .header("content-type", content_type)
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .send()
        .await
        .expect("answers over HTTP/1.1");
    assert_eq!(response.status().as_u16(), 200);
    // A trailers-only answer carries the status in the headers; otherwise it comes in the
    // trailer frame at the end of the body.
    let headers: String =
        response.headers().iter().map(|(k, v)| format!("{k}: {}\r\n", v.to_str().unwrap_or_default())).collect();
    let bytes = response.bytes().await.expect("body");
    let bytes = if text { STANDARD.decode(&bytes).expect("base64") } else { bytes.to_vec() };
    let (message, trailers) = grpc_web_answer(&bytes);
    let trailers = format!("{headers}{trailers}");
    (message.map(|m| pb::RemoveOtpsmsAuthenticatorResponse::decode(m.as_slice()).expect("a response")), trailers)
}

#[tokio::test]
async fn grpc_web_removes_and_refuses_like_grpc() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;

    let (_, denied) = grpc_web_remove(&app, &app.token("bob", "org-a", &[]), "alice", &otp, false).await;
    assert_eq!(trailer(&denied, "grpc-status"), Some("7"), "{denied}");
    let (removed, ok) = grpc_web_remove(&app, &app.admin(), "alice", &otp, false).await;
    assert_eq!(trailer(&ok, "grpc-status"), Some("0"), "{ok}");
    assert_eq!(removed.and_then(|r| r.details).map(|d| d.id), Some("alice".to_owned()));
    let (_, missing) = grpc_web_remove(&app, &app.admin(), "alice", &otp, true).await;
    // (grpc-web-text answers are base64 too)
    assert_eq!(trailer(&missing, "grpc-status"), Some("5"), "grpc-web-text too: {missing}");
    let details = trailer(&missing, "grpc-status-details-bin").expect("details");
    let status = rpc::Status::decode(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(details.trim_end_matches('='))
            .expect("base64")
            .as_slice(),
    )
    .expect("status");
    assert_eq!(ErrorDetail::decode(status.details[0].value.as_slice()).expect("detail").id, "OTPSMS-NotFound");
}

async fn connect_call(app: &TestApp, method: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .post(format!("{}/{SERVICE}/{method}", app.address))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn connect_removes_and_refuses_in_connects_own_error_form() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    let body = json!({"id": "alice", "otpSmsId": otp});

    let (status, denied) =
        connect_call(&app, "RemoveOTPSMSAuthenticator", Some(&app.token("bob", "org-a", &[])), body.clone()).await;
    assert_eq!((status, denied["code"].as_str()), (403, Some("permission_denied")), "{denied}");
    assert_eq!(denied["details"][0]["type"], "zitadel.v1.ErrorDetail");
    assert_eq!(denied["details"][0]["debug"]["id"], "AUTHZ-PermissionDenied");

    let (status, removed) = connect_call(&app, "RemoveOTPSMSAuthenticator", Some(&app.admin()), body.clone()).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["details"]["id"], "alice");
    assert_eq!(removed["details"]["owner"], json!({"type": "OWNER_TYPE_ORG", "id": "org-a"}));

    let (status, missing) = connect_call(&app, "RemoveOTPSMSAuthenticator", Some(&app.admin()), body).await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("not_found")), "{missing}");
    let value = missing["details"][0]["value"].as_str().expect("base64");
    let detail =
        ErrorDetail::decode(base64::engine::general_purpose::STANDARD_NO_PAD.decode(value).expect("base64").as_slice())
            .expect("detail");
    assert_eq!(detail.id, "OTPSMS-NotFound");

    let (status, unimplemented) =
        connect_call(&app, "StartTOTPRegistration", Some(&app.admin()), json!({"id": "alice"})).await;
    assert_eq!((status, unimplemented["code"].as_str()), (501, Some("unimplemented")));
    assert_eq!(unimplemented["details"][0]["debug"]["id"], "RPC-Unimplemented");
}

#[tokio::test]
async fn connect_takes_binary_protobuf_too() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;

    let response = reqwest::Client::new()
        .post(format!("{}/{SERVICE}/RemoveOTPSMSAuthenticator", app.address))
        .header("content-type", "application/proto")
        .header("authorization", format!("Bearer {}", app.admin()))
        .body(remove_request("alice", &otp).encode_to_vec())
        .send()
        .await
        .expect("answers");

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/proto");
    let message =
        pb::RemoveOtpsmsAuthenticatorResponse::decode(response.bytes().await.expect("body")).expect("a response");
    assert_eq!(message.details.map(|d| d.id), Some("alice".to_owned()));
}

fn rfc3339(timestamp: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).expect("positive"))
        .expect("valid")
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[tokio::test]
async fn rest_grpc_grpc_web_and_connect_give_the_same_details_for_the_same_state() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    app.given_authenticator("alice", "+41791234567").await;
    let admin = app.admin();

    let rest = app.get_user(&admin, "alice").await.body["user"]["details"].clone();
    let grpc = client(&app)
        .await
        .get_user(authorized(pb::GetUserRequest { id: "alice".into(), ..Default::default() }, &admin))
        .await
        .expect("read")
        .into_inner()
        .user
        .and_then(|u| u.details)
        .expect("details");
    let (_, connect) = connect_call(&app, "GetUser", Some(&admin), json!({"id": "alice"})).await;
    let web = {
        let response = reqwest::Client::builder()
            .http1_only()
            .build()
            .expect("client")
            .post(format!("{}/{SERVICE}/GetUser", app.address))
            .header("content-type", "application/grpc-web+proto")
            .header("authorization", format!("Bearer {admin}"))
            .body(frame(&pb::GetUserRequest { id: "alice".into(), ..Default::default() }.encode_to_vec()))
            .send()
            .await
            .expect("answers");
        let (message, _) = grpc_web_answer(&response.bytes().await.expect("body"));
        pb::GetUserResponse::decode(message.expect("a message").as_slice())
            .expect("a response")
            .user
            .and_then(|u| u.details)
            .expect("details")
    };

    let as_json = |d: &factors_api_grpc::pb::zitadel::resources::object::v3alpha::Details| {
        json!({"id": d.id, "created": rfc3339(d.created.as_ref().expect("created")), "changed": rfc3339(d.changed.as_ref().expect("changed")),
               "owner": {"type": "OWNER_TYPE_ORG", "id": d.owner.as_ref().expect("owner").id}})
    };
    assert_eq!(as_json(&grpc), rest, "gRPC");
    assert_eq!(as_json(&web), rest, "gRPC-web");
    assert_eq!(connect["user"]["details"], rest, "Connect");
}

#[tokio::test]
async fn reflection_and_health_answer() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn().await;
    let channel = channel(&app).await;

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let answer = answers.message().await.expect("a message").expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else { panic!("a service list") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&SERVICE.to_owned()), "{names:?}");

    let v1alpha = tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                SERVICE.into(),
            ),
        ),
    };
    let mut answers = v1alpha
        .clone()
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .expect("v1alpha answers")
        .into_inner();
    assert!(answers.message().await.expect("a message").is_some());

    // Health follows readiness, which a task probes from start-up on: its first report may
    // come a moment after the first request.
    let mut health = HealthClient::new(channel);
    let mut status = None;
    for _ in 0..50 {
        let answer = health.check(tonic_health::pb::HealthCheckRequest { service: SERVICE.into() }).await;
        match answer {
            Ok(answer) => {
                status = Some(answer.into_inner().status);
                break;
            }
            Err(e) if e.code() == Code::NotFound => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("health answers: {e}"),
        }
    }
    assert_eq!(status, Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32));
}

#[tokio::test]
async fn browsers_of_configured_origins_may_call_grpc_web_and_connect() {
    let app = TestApp::spawn_with(|settings| settings.grpc.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}/{SERVICE}/RemoveOTPSMSAuthenticator", app.address))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,x-grpc-web")
            .send()
    };

    let allowed = preflight("https://app.example.com").await.expect("answers");
    let refused = preflight("https://evil.example.com").await.expect("answers");

    assert_eq!(
        allowed.headers().get("access-control-allow-origin").map(reqwest::header::HeaderValue::as_bytes),
        Some(&b"https://app.example.com"[..])
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"].to_str().expect("ascii").to_owned();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("x-grpc-web"), "{allowed_headers}");
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn every_bad_token_and_scope_case_of_the_contract_holds_over_grpc() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    let mut grpc = client(&app).await;
    let now = chrono::Utc::now().timestamp();
    let secret = app
        .settings
        .auth
        .hs256_secret
        .as_ref()
        .map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned())
        .expect("secret");
    let signed = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("signs")
    };
    let (iss, aud) = (app.settings.auth.issuer.clone(), app.settings.auth.audience.clone());
    let alg_none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"iss": iss, "aud": aud, "sub": "iam", "exp": now + 600}).to_string())
    );
    let tokens = [
        (signed(json!({"iss": iss, "aud": aud, "sub": "iam", "exp": now - 300})), "AUTH-TokenExpired"),
        (
            signed(json!({"iss": "https://evil.example.com", "aud": aud, "sub": "iam", "exp": now + 600})),
            "AUTH-InvalidToken",
        ),
        (signed(json!({"iss": iss, "aud": "another", "sub": "iam", "exp": now + 600})), "AUTH-InvalidToken"),
        (alg_none, "AUTH-InvalidToken"),
    ];
    for (token, id) in tokens {
        assert_status(
            grpc.remove_otpsms_authenticator(authorized(remove_request("alice", &otp), &token)).await,
            Code::Unauthenticated,
            id,
        );
    }
    let manager = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    assert_status(
        grpc.remove_otpsms_authenticator(authorized(remove_request("ghost", &otp), &manager)).await,
        Code::NotFound,
        "USER-NotFound",
    );
    let other_org = pb::RemoveOtpsmsAuthenticatorRequest {
        organization: Some(Organization { property: Some(organization::Property::OrgId("org-b".into())) }),
        ..remove_request("alice", &otp)
    };
    assert_status(
        grpc.remove_otpsms_authenticator(authorized(other_org, &app.admin())).await,
        Code::NotFound,
        "USER-NotFound",
    );
    assert_eq!(app.otp_sms_ids("alice").await, std::slice::from_ref(&otp));
}

#[tokio::test]
async fn the_sms_limit_answers_resource_exhausted_with_retry_after_on_every_protocol() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let alice = app.token("alice", "org-a", &[]);
    for n in 0..5 {
        assert_eq!(app.add_otp_sms(&alice, "alice", json!({"number": format!("+4179123456{n}")})).await.status, 200);
    }
    let add = pb::AddOtpsmsAuthenticatorRequest {
        id: "alice".into(),
        phone: Some(pb::SetPhone { number: "+41791234569".into(), verification: None }),
        ..Default::default()
    };

    let status =
        client(&app).await.add_otpsms_authenticator(authorized(add.clone(), &alice)).await.expect_err("limited");
    assert_eq!((status.code(), error_id(&status).as_str()), (Code::ResourceExhausted, "SMS-RateLimitedUser"));
    assert!(status.metadata().get("retry-after").is_some(), "{status:?}");

    let (code, connect) = {
        let response = reqwest::Client::new()
            .post(format!("{}/{SERVICE}/AddOTPSMSAuthenticator", app.address))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {alice}"))
            .body(json!({"id": "alice", "phone": {"number": "+41791234569"}}).to_string())
            .send()
            .await
            .expect("answers");
        assert!(
            response.headers().contains_key("retry-after"),
            "Connect carries Retry-After: {:?}",
            response.headers()
        );
        (response.status().as_u16(), response.json::<Value>().await.expect("JSON"))
    };
    assert_eq!((code, connect["code"].as_str()), (429, Some("resource_exhausted")));

    let web = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .post(format!("{}/{SERVICE}/AddOTPSMSAuthenticator", app.address))
        .header("content-type", "application/grpc-web+proto")
        .header("authorization", format!("Bearer {alice}"))
        .body(frame(&add.encode_to_vec()))
        .send()
        .await
        .expect("answers");
    assert_eq!(web.headers().get("grpc-status").map(reqwest::header::HeaderValue::as_bytes), Some(&b"8"[..]));
    assert!(web.headers().contains_key("retry-after"));
    assert_eq!(app.sms.count(), 5, "no sixth SMS on any protocol");
}

#[tokio::test]
async fn one_refusal_carries_the_same_error_detail_on_every_protocol() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let bob = app.token("bob", "org-a", &[]);

    let rest = app.remove_otp_sms(Some(&bob), "alice", "1").await;
    let grpc = client(&app)
        .await
        .remove_otpsms_authenticator(authorized(remove_request("alice", "1"), &bob))
        .await
        .expect_err("denied");
    let (web, _) = grpc_web_remove(&app, &bob, "alice", "1", false).await;
    let (_, connect) =
        connect_call(&app, "RemoveOTPSMSAuthenticator", Some(&bob), json!({"id": "alice", "otpSmsId": "1"})).await;

    let expected = (
        rest.body["details"][0]["id"].as_str().expect("id").to_owned(),
        rest.body["message"].as_str().expect("message").to_owned(),
    );
    assert_eq!(expected.0, "AUTHZ-PermissionDenied");
    assert_eq!((error_id(&grpc), grpc.message().to_owned()), expected, "gRPC");
    assert!(web.is_none(), "no message on an error");
    assert_eq!(
        (
            connect["details"][0]["debug"]["id"].as_str().map(str::to_owned),
            connect["message"].as_str().map(str::to_owned)
        ),
        (Some(expected.0.clone()), Some(expected.1.clone())),
        "Connect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_kept_and_the_add_still_finishes_behind_them() {
    let app =
        TestApp::spawn_with(|settings| settings.server.request_timeout = std::time::Duration::from_millis(300)).await;
    app.given_user("alice", "org-a").await;
    app.sms.delay_from_now_on(std::time::Duration::from_millis(600));
    let alice = app.token("alice", "org-a", &[]);

    let request = authorized(
        pb::AddOtpsmsAuthenticatorRequest {
            id: "alice".into(),
            phone: Some(pb::SetPhone { number: "+41791234567".into(), verification: None }),
            ..Default::default()
        },
        &alice,
    );
    // No deadline from the client: the server's own (server.request_timeout) applies.
    let status = client(&app).await.add_otpsms_authenticator(request).await.expect_err("too slow");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    let response = reqwest::Client::new()
        .post(format!("{}/{SERVICE}/AddOTPSMSAuthenticator", app.address))
        .header("content-type", "application/json")
        // A client deadline shorter than the server's wins.
        .header("connect-timeout-ms", "100")
        .header("authorization", format!("Bearer {alice}"))
        .body(json!({"id": "alice", "phone": {"number": "+41791234568"}}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 504);

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.sms.count(), 2, "both adds went on to send their SMS");
    assert_eq!(app.otp_sms_ids("alice").await.len(), 2);
}

mod sessions {
    //! `zitadel.session.v2.SessionService` over native gRPC against the real service:
    //! a sign-in, and every status of its four RPCs.

    use super::{TestApp, assert_status, authorized, channel};
    use factors_api_grpc::pb::zitadel::session::v2 as pb;
    use factors_api_grpc::pb::zitadel::session::v2::session_service_client::SessionServiceClient;
    use tonic::Code;
    use tonic::transport::Channel;

    async fn client(app: &TestApp) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(channel(app).await)
    }

    fn check_user(user: &str) -> Option<pb::Checks> {
        Some(pb::Checks {
            user: Some(pb::CheckUser { search: Some(pb::check_user::Search::UserId(user.into())) }),
            ..Default::default()
        })
    }

    fn challenge(return_code: bool) -> Option<pb::RequestChallenges> {
        Some(pb::RequestChallenges {
            otp_sms: Some(pb::request_challenges::Otpsms { return_code }),
            ..Default::default()
        })
    }

    fn check_code(session: &str, code: &str) -> pb::SetSessionRequest {
        pb::SetSessionRequest {
            session_id: session.into(),
            checks: Some(pb::Checks { otp_sms: Some(pb::CheckOtp { code: code.into() }), ..Default::default() }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_sign_in_and_every_status_of_the_session_rpcs_over_grpc() {
        let app = TestApp::spawn().await;
        app.given_user("alice", "org-a").await;
        app.given_user("bob", "org-a").await;
        let otp = app.given_authenticator("alice", "+41791234567").await;
        let mut grpc = client(&app).await;
        let ui = app.login_ui();
        let nobody = app.token("nobody", "org-x", &[]);
        let create = |checks, challenges| pb::CreateSessionRequest { checks, challenges, ..Default::default() };

        // CreateSession: 201's gRPC twin, and each refusal.
        let created = grpc
            .create_session(authorized(create(check_user("alice"), challenge(true)), &ui))
            .await
            .expect("created")
            .into_inner();
        let code = created.challenges.and_then(|c| c.otp_sms).expect("the code is returned");
        let details = created.details.expect("details");
        assert_eq!((details.sequence, details.resource_owner.as_str()), (4, app.settings.instance.id.as_str()));
        let session = created.session_id;
        assert_status(
            grpc.create_session(tonic::Request::new(create(check_user("alice"), None))).await,
            Code::Unauthenticated,
            "AUTH-MissingToken",
        );
        assert_status(
            grpc.create_session(authorized(create(check_user("alice"), None), &nobody)).await,
            Code::PermissionDenied,
            "SESSION-PermissionDenied",
        );
        assert_status(
            grpc.create_session(authorized(create(check_user("ghost"), None), &ui)).await,
            Code::NotFound,
            "USER-NotFound",
        );
        assert_status(
            grpc.create_session(authorized(create(check_user("bob"), challenge(true)), &ui)).await,
            Code::FailedPrecondition,
            "SESSION-NoOtpSms",
        );
        let password =
            Some(pb::Checks { password: Some(pb::CheckPassword { password: "x".into() }), ..Default::default() });
        assert_status(
            grpc.create_session(authorized(create(password, None), &ui)).await,
            Code::InvalidArgument,
            "SESSION-Unsupported",
        );

        // SetSession: a wrong code, the right one, then no challenge left.
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert_status(
            grpc.set_session(authorized(check_code(&session, wrong), &ui)).await,
            Code::InvalidArgument,
            "SESSION-CodeWrong",
        );
        assert_status(
            grpc.set_session(authorized(check_code("no-such-session", &code), &ui)).await,
            Code::NotFound,
            "SESSION-NotFound",
        );
        assert_status(
            grpc.set_session(authorized(check_code(&session, &code), &nobody)).await,
            Code::PermissionDenied,
            "SESSION-PermissionDenied",
        );
        let checked = grpc.set_session(authorized(check_code(&session, &code), &ui)).await.expect("checked");
        let token = checked.into_inner().session_token;
        assert_status(
            grpc.set_session(authorized(check_code(&session, &code), &ui)).await,
            Code::FailedPrecondition,
            "SESSION-NoOtpSmsChallenge",
        );

        // GetSession: with the token, with session.read, and without either.
        let get = |id: &str, token: Option<&str>| pb::GetSessionRequest {
            session_id: id.into(),
            session_token: token.map(str::to_owned),
        };
        let shown = grpc.get_session(authorized(get(&session, Some(&token)), &nobody)).await.expect("read");
        let factors = shown.into_inner().session.and_then(|s| s.factors).expect("factors");
        assert_eq!(factors.user.map(|u| u.id), Some("alice".to_owned()));
        assert!(factors.otp_sms.and_then(|f| f.verified_at).is_some());
        assert_status(
            grpc.get_session(authorized(get(&session, Some("forged")), &nobody)).await,
            Code::PermissionDenied,
            "SESSION-PermissionDenied",
        );
        assert_status(
            grpc.get_session(authorized(get("no-such-session", None), &ui)).await,
            Code::NotFound,
            "SESSION-NotFound",
        );

        // A removal: the next challenge fails.
        assert_eq!(app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await.status, 200);
        let rechallenge =
            pb::SetSessionRequest { session_id: session.clone(), challenges: challenge(true), ..Default::default() };
        assert_status(
            grpc.set_session(authorized(rechallenge, &ui)).await,
            Code::FailedPrecondition,
            "SESSION-NoOtpSms",
        );

        // DeleteSession: refused without the current token, then ended with it.
        let current = grpc.get_session(authorized(get(&session, None), &ui)).await.expect("read");
        assert!(current.into_inner().session.is_some());
        let delete = |token: &str| pb::DeleteSessionRequest {
            session_id: session.clone(),
            session_token: Some(token.to_owned()),
        };
        assert_status(
            grpc.delete_session(authorized(delete("forged"), &nobody)).await,
            Code::PermissionDenied,
            "SESSION-PermissionDenied",
        );
        // The check handed out `token`; the failed challenge changed nothing, so it holds.
        grpc.delete_session(authorized(delete(&token), &nobody)).await.expect("ended");
        assert_status(grpc.delete_session(authorized(delete(&token), &ui)).await, Code::NotFound, "SESSION-NotFound");
    }
}

#[tokio::test]
async fn selectors_answer_only_callers_that_hold_user_permissions_over_grpc_and_connect() {
    let app = TestApp::spawn_with(|settings| {
        settings.instance.id = "inst-7c1d".into();
        settings.instance.organizations = vec![factors::settings::OrganizationSettings {
            id: "org-a".into(),
            domains: vec!["acme.example.com".into()],
        }];
    })
    .await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    let mut grpc = client(&app).await;
    let bob = app.token("bob", "org-a", &[]);
    let manager = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let guessed_instance = || pb::RemoveOtpsmsAuthenticatorRequest {
        instance: Some(Instance { property: Some(instance::Property::Id("guess".into())) }),
        ..remove_request("alice", &otp)
    };
    let unknown_domain = || pb::RemoveOtpsmsAuthenticatorRequest {
        organization: Some(Organization {
            property: Some(organization::Property::OrgDomain("nope.example.com".into())),
        }),
        ..remove_request("alice", &otp)
    };

    for request in [guessed_instance(), unknown_domain()] {
        assert_status(
            grpc.remove_otpsms_authenticator(authorized(request, &bob)).await,
            Code::PermissionDenied,
            "AUTHZ-PermissionDenied",
        );
    }
    assert_status(
        grpc.remove_otpsms_authenticator(authorized(guessed_instance(), &manager)).await,
        Code::NotFound,
        "INSTANCE-NotFound",
    );
    assert_status(
        grpc.remove_otpsms_authenticator(authorized(unknown_domain(), &manager)).await,
        Code::NotFound,
        "ORG-NotFound",
    );

    let connect = |token: String, selector: Value| {
        let mut body = json!({"id": "alice", "otpSmsId": otp});
        body.as_object_mut().expect("an object").extend(selector.as_object().expect("an object").clone());
        let app = &app;
        async move { connect_call(app, "RemoveOTPSMSAuthenticator", Some(&token), body).await }
    };
    for selector in [json!({"instance": {"id": "guess"}}), json!({"organization": {"orgDomain": "nope.example.com"}})] {
        let (status, denied) = connect(bob.clone(), selector).await;
        assert_eq!(
            (status, denied["details"][0]["debug"]["id"].as_str()),
            (403, Some("AUTHZ-PermissionDenied")),
            "{denied}"
        );
    }
    let (status, missing) = connect(manager.clone(), json!({"instance": {"id": "guess"}})).await;
    assert_eq!((status, missing["details"][0]["debug"]["id"].as_str()), (404, Some("INSTANCE-NotFound")), "{missing}");
    assert_eq!(app.otp_sms_ids("alice").await, std::slice::from_ref(&otp), "nothing was removed");
}

#[tokio::test]
async fn malformed_grpc_web_input_answers_invalid_argument_with_the_error_detail() {
    let app = TestApp::spawn().await;
    let not_protobuf = frame(&[0x0a, 0xff, 0xff, 0x01]);
    let mut cut_short = frame(&[0; 10]);
    cut_short.truncate(8);
    for (body, case) in [(not_protobuf, "bytes that are not the message"), (cut_short, "a frame cut short")] {
        let response = reqwest::Client::builder()
            .http1_only()
            .build()
            .expect("client")
            .post(format!("{}/{SERVICE}/RemoveOTPSMSAuthenticator", app.address))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("authorization", format!("Bearer {}", app.admin()))
            .body(body)
            .send()
            .await
            .expect("answers");
        let headers = response.headers().clone();
        let (_, trailers) = grpc_web_answer(&response.bytes().await.expect("body"));
        let status = Status::from_header_map(&headers)
            .or_else(|| {
                let mut map = reqwest::header::HeaderMap::new();
                for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                    if let Some(value) = trailer(&trailers, name) {
                        map.insert(name, value.parse().expect("a header value"));
                    }
                }
                Status::from_header_map(&map)
            })
            .expect("a gRPC status");
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert_eq!(error_id(&status), "REQ-InvalidProto", "{case}");
    }
}
