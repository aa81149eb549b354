//! The REST router driven in-process with mocked use cases: what goes over the wire.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{TimeZone, Utc};
use factors_api_http::metrics::{HttpMetrics, MetricsRegistry};
use factors_api_http::rpcs::SERVED;
use factors_api_http::{AppState, HttpOptions, router};
use factors_application::ports::{
    AuthError, DependencyState, MockReadinessProbe, MockTokenVerifier, Readiness, Unexpected,
};
use factors_application::use_cases::MockUseCases;
use factors_application::use_cases::add_otp_sms::AddOtpSmsOutput;
use factors_application::use_cases::create_user::CreateUserOutput;
use factors_application::use_cases::list_user_events::{EventCursor, EventsPage, ListUserEventsError, PageRequest};
use factors_application::use_cases::login_policy::{LoginPolicyError, PolicyOwner, PolicyVersionView, PolicyView};
use factors_application::use_cases::remove_otp_sms::RemoveOtpSmsError;
use factors_application::use_cases::search_users::{SearchFilter, UsersPage};
use factors_application::use_cases::user_state::UserStateError;
use factors_application::{Details, OrgSelector};
use factors_domain::{
    Caller, InstanceId, LoginPolicy, OrgId, OtpSmsId, PolicySource, Scope, StateChange, StateRefusal, UserId,
    Verification, VerificationCode,
};
use factors_wire::rpc::{SERVICES, Verb};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower::ServiceExt;

fn registry() -> (HttpMetrics, MetricsRegistry) {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    (http, MetricsRegistry(Arc::new(registry)))
}

/// Mocks for every use case (reached through `Deref`: `mocks.get_user`); a test sets
/// expectations on the ones it exercises, and any call to the others fails the test.
struct Mocks {
    use_cases: MockUseCases,
    readiness: MockReadinessProbe,
    http_metrics: HttpMetrics,
    registry: MetricsRegistry,
}

impl Default for Mocks {
    fn default() -> Self {
        let (http_metrics, registry) = registry();
        Self { use_cases: MockUseCases::default(), readiness: MockReadinessProbe::new(), http_metrics, registry }
    }
}

impl std::ops::Deref for Mocks {
    type Target = MockUseCases;

    fn deref(&self) -> &MockUseCases {
        &self.use_cases
    }
}

impl std::ops::DerefMut for Mocks {
    fn deref_mut(&mut self) -> &mut MockUseCases {
        &mut self.use_cases
    }
}

fn alice() -> Caller {
    Caller {
        user_id: UserId::new("alice").expect("valid"),
        org: None,
        grants: vec![],
        authentication: Default::default(),
        origin: Default::default(),
    }
}

fn tokens() -> MockTokenVerifier {
    let mut tokens = MockTokenVerifier::new();
    tokens.expect_verify().returning(|token| match token {
        "good" => Ok(alice()),
        "expired" => Err(AuthError::Expired),
        _ => Err(AuthError::Invalid),
    });
    tokens
}

impl Mocks {
    fn app(self) -> axum::Router {
        self.app_with(HttpOptions::default())
    }

    fn app_with(self, options: HttpOptions) -> axum::Router {
        let use_cases = self.use_cases.into_use_cases();
        let state =
            AppState::new(Arc::new(tokens()), Arc::new(self.readiness), use_cases, self.http_metrics, self.registry);
        router(state, options)
    }
}

fn details() -> Details {
    Details {
        id: UserId::new("69629012906488334").expect("valid"),
        created: Utc.timestamp_millis_opt(1_732_267_630_426).single().expect("valid"),
        changed: Utc.timestamp_millis_opt(1_732_267_862_114).single().expect("valid"),
        owner: OrgId::new("69629023906488334").expect("valid"),
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn call(app: axum::Router, request: Request<Body>) -> Answer {
    let response = app.oneshot(request).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    Answer { status, headers, body }
}

fn request(method: Method, uri: &str, token: Option<&str>, body: Option<(&str, &str)>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    match body {
        Some((content_type, body)) => builder.header("content-type", content_type).body(Body::from(body.to_owned())),
        None => builder.body(Body::empty()),
    }
    .expect("valid request")
}

fn assert_error(answer: &Answer, status: StatusCode, code: i32, id: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["code"], code, "{}", answer.body);
    assert_eq!(answer.body["details"][0]["@type"], "type.googleapis.com/zitadel.v1.ErrorDetail");
    assert_eq!(answer.body["details"][0]["id"], id, "{}", answer.body);
    let message = answer.body["message"].as_str().expect("message");
    assert!(message.ends_with(&format!("({id})")), "{message}");
}

/// Method, URI, optional (content type, body), and the error id expected.
type BadRequest<'a> = (Method, String, Option<(&'a str, &'a str)>, &'a str);

const REMOVE: &str = "/resources/v3alpha/users/69629012906488334/otp_sms/42";

#[tokio::test]
async fn removing_answers_200_with_the_details_of_the_contract() {
    let mut mocks = Mocks::default();
    mocks
        .remove_otp_sms
        .expect_remove_otp_sms()
        .withf(|caller, command| {
            caller.user_id.as_str() == "alice"
                && command.user.as_str() == "69629012906488334"
                && command.otp_sms == OtpSmsId::new("42").expect("valid")
                && command.scope.organization == Some(OrgSelector::Id(OrgId::new("69629023906488334").expect("valid")))
        })
        .times(1)
        .returning(|_, _| Ok(details()));

    let answer = call(
        mocks.app(),
        request(Method::DELETE, &format!("{REMOVE}?organization.org_id=69629023906488334"), Some("good"), None),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        json!({"details": {"id": "69629012906488334", "created": "2024-11-22T09:27:10.426Z",
               "changed": "2024-11-22T09:31:02.114Z", "owner": {"type": "OWNER_TYPE_ORG", "id": "69629023906488334"}}})
    );
}

#[tokio::test]
async fn locking_and_unlocking_answer_200_with_the_details_and_a_user_not_in_state_answers_400() {
    let mut mocks = Mocks::default();
    mocks
        .user_state
        .expect_change_user_state()
        .withf(|_, command| command.user.as_str() == "69629012906488334" && command.change == StateChange::Lock)
        .times(1)
        .returning(|_, _| Ok(details()));
    mocks
        .user_state
        .expect_change_user_state()
        .withf(|_, command| command.change == StateChange::Unlock)
        .times(1)
        .returning(|_, _| Err(UserStateError::NotInState(StateRefusal::NotLocked)));
    let app = mocks.app();

    let locked = call(
        app.clone(),
        request(Method::POST, "/resources/v3alpha/users/69629012906488334/_lock", Some("good"), None),
    )
    .await;
    let unlocked =
        call(app, request(Method::POST, "/resources/v3alpha/users/69629012906488334/_unlock", Some("good"), None))
            .await;

    assert_eq!(locked.status, StatusCode::OK, "{}", locked.body);
    assert_eq!(locked.body["details"]["changed"], "2024-11-22T09:31:02.114Z");
    assert_error(&unlocked, StatusCode::BAD_REQUEST, 9, "USER-NotLocked");
}

#[tokio::test]
async fn deactivating_and_activating_reach_the_use_case_with_their_change() {
    let mut mocks = Mocks::default();
    mocks
        .user_state
        .expect_change_user_state()
        .withf(|_, command| command.user.as_str() == "alice" && command.change == StateChange::Deactivate)
        .times(1)
        .returning(|_, _| Ok(details()));
    mocks
        .user_state
        .expect_change_user_state()
        .withf(|_, command| command.change == StateChange::Activate)
        .times(1)
        .returning(|_, _| Err(UserStateError::NotInState(StateRefusal::NotInactive)));
    let app = mocks.app();

    let deactivated =
        call(app.clone(), request(Method::POST, "/resources/v3alpha/users/alice/_deactivate", Some("good"), None))
            .await;
    let activated =
        call(app, request(Method::POST, "/resources/v3alpha/users/alice/_activate", Some("good"), None)).await;

    assert_eq!(deactivated.status, StatusCode::OK, "{}", deactivated.body);
    assert_eq!(deactivated.body["details"]["id"], "69629012906488334");
    assert_error(&activated, StatusCode::BAD_REQUEST, 9, "USER-NotInactive");
    assert_eq!(activated.body["message"], "the user is not inactive (USER-NotInactive)");
}

#[tokio::test]
async fn use_case_errors_become_the_status_body_with_the_error_detail() {
    let cases = [
        (RemoveOtpSmsError::NotFound, StatusCode::NOT_FOUND, 5, "OTPSMS-NotFound"),
        (
            RemoveOtpSmsError::Write(factors_domain::AccessRefusal::PermissionDenied.into()),
            StatusCode::FORBIDDEN,
            7,
            "AUTHZ-PermissionDenied",
        ),
        (
            RemoveOtpSmsError::from(Unexpected(anyhow::anyhow!("password authentication failed for user \"x\""))),
            StatusCode::INTERNAL_SERVER_ERROR,
            13,
            "INTERNAL",
        ),
    ];
    for (error, status, code, id) in cases {
        let error = std::sync::Mutex::new(Some(error));
        let mut mocks = Mocks::default();
        mocks
            .remove_otp_sms
            .expect_remove_otp_sms()
            .returning(move |_, _| Err(error.lock().expect("lock").take().expect("once")));

        let answer = call(mocks.app(), request(Method::DELETE, REMOVE, Some("good"), None)).await;

        assert_error(&answer, status, code, id);
        assert!(!answer.body.to_string().contains("password"), "no driver text leaks: {}", answer.body);
    }
}

#[tokio::test]
async fn missing_or_bad_tokens_answer_401_before_any_use_case_runs() {
    let cases =
        [(None, "AUTH-MissingToken"), (Some("expired"), "AUTH-TokenExpired"), (Some("forged"), "AUTH-InvalidToken")];
    for (token, id) in cases {
        let mut mocks = Mocks::default();
        mocks.remove_otp_sms.expect_remove_otp_sms().never();
        let answer = call(mocks.app(), request(Method::DELETE, REMOVE, token, None)).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, 16, id);
    }
    let basic =
        Request::delete(REMOVE).header("authorization", "Basic YWxpY2U6c2VjcmV0").body(Body::empty()).expect("valid");
    assert_error(&call(Mocks::default().app(), basic).await, StatusCode::UNAUTHORIZED, 16, "AUTH-MissingToken");
}

#[tokio::test]
async fn bad_requests_answer_400_in_the_contract_format_and_reach_no_use_case() {
    let long_id = "1".repeat(201);
    let cases: Vec<BadRequest<'_>> = vec![
        (
            Method::POST,
            "/resources/v3alpha/users/alice/otp_sms".into(),
            Some(("application/json", "{not json")),
            "REQ-InvalidJson",
        ),
        (Method::POST, "/resources/v3alpha/users/alice/otp_sms".into(), Some(("text/plain", "{}")), "REQ-ContentType"),
        (
            Method::POST,
            "/resources/v3alpha/users/alice/otp_sms".into(),
            Some(("application/json", r#"{"number": 41}"#)),
            "REQ-JsonShape",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users/alice/otp_sms".into(),
            Some(("application/json", "{}")),
            "REQ-MissingField",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users/alice/otp_sms".into(),
            Some(("application/json", r#"{"number": "0791234567"}"#)),
            "PHONE-NotInternational",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users/alice/otp_sms".into(),
            Some(("application/json", r#"{"number": "+41 12"}"#)),
            "PHONE-NotValid",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users/alice/otp_sms".into(),
            Some(("application/json", r#"{"number": "+41791234567", "sendCode": {}, "isVerified": true}"#)),
            "REQ-OneOf",
        ),
        (Method::DELETE, format!("/resources/v3alpha/users/{long_id}/otp_sms/1"), None, "USER-InvalidId"),
        (Method::DELETE, format!("/resources/v3alpha/users/alice/otp_sms/{long_id}"), None, "OTPSMS-InvalidId"),
        (Method::DELETE, "/resources/v3alpha/users/alice/otp_sms/%FF".into(), None, "REQ-InvalidPath"),
        (
            Method::DELETE,
            "/resources/v3alpha/users/alice/otp_sms/1?instance.id=a&instance.domain=b".into(),
            None,
            "REQ-OneOf",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users/alice/otp_sms/1/_verify".into(),
            Some(("application/json", r#""12345a""#)),
            "OTPSMS-CodeFormat",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users".into(),
            Some(("application/json", r#"{"data": {}}"#)),
            "REQ-MissingField",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users".into(),
            Some(("application/json", r#"{"schemaId": "h", "data": [1]}"#)),
            "USER-DataNotObject",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users".into(),
            Some(("application/json", r#"{"schemaId": "h", "authenticators": {"usernames": [{"username": "ada"}]}}"#)),
            "USER-AuthenticatorsNotSupported",
        ),
        (
            Method::POST,
            "/resources/v3alpha/users".into(),
            Some(("application/json", r#"{"schemaId": "h", "contact": {"email": {"address": "nope"}}}"#)),
            "EMAIL-Malformed",
        ),
    ];
    for (method, uri, body, id) in cases {
        // Every mock is left without expectations: a call to any use case fails the test.
        let answer = call(Mocks::default().app(), request(method.clone(), &uri, Some("good"), body)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, 3, id);
    }
}

#[tokio::test]
async fn phone_numbers_never_appear_in_error_answers() {
    let body = r#"{"number": "+41 79 123 45 67 89 00"}"#;
    let answer = call(
        Mocks::default().app(),
        request(Method::POST, "/resources/v3alpha/users/alice/otp_sms", Some("good"), Some(("application/json", body))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(!answer.body.to_string().contains("123"), "{}", answer.body);
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_unimplemented_rpcs_answer_in_the_contract_format() {
    let cases = [
        (Method::GET, "/nothing/here", StatusCode::NOT_FOUND, 5, "REQ-UnknownPath"),
        (Method::PUT, REMOVE, StatusCode::METHOD_NOT_ALLOWED, 12, "REQ-MethodNotAllowed"),
        (Method::POST, "/resources/v3alpha/users/alice/totp", StatusCode::NOT_IMPLEMENTED, 12, "RPC-Unimplemented"),
        (Method::PATCH, "/resources/v3alpha/users/alice", StatusCode::NOT_IMPLEMENTED, 12, "RPC-Unimplemented"),
        (Method::GET, "/resources/v3alpha/idp_intents/1", StatusCode::NOT_IMPLEMENTED, 12, "RPC-Unimplemented"),
        (Method::POST, "/v2/sessions/search", StatusCode::NOT_IMPLEMENTED, 12, "RPC-Unimplemented"),
        (Method::PUT, "/v2/sessions/s1", StatusCode::METHOD_NOT_ALLOWED, 12, "REQ-MethodNotAllowed"),
    ];
    for (method, uri, status, code, id) in cases {
        let answer = call(Mocks::default().app(), request(method, uri, None, None)).await;
        assert_error(&answer, status, code, id);
    }
    let totp =
        call(Mocks::default().app(), request(Method::POST, "/resources/v3alpha/users/alice/totp", None, None)).await;
    assert_eq!(totp.body["message"], "StartTOTPRegistration is not implemented by factors (RPC-Unimplemented)");
    let list = call(Mocks::default().app(), request(Method::POST, "/v2/sessions/search", Some("good"), None)).await;
    assert_eq!(list.body["message"], "ListSessions is not implemented by factors (RPC-Unimplemented)");
}

/// The HTTP method of a verb of the REST mapping.
fn method_of(verb: Verb) -> Method {
    match verb {
        Verb::Get => Method::GET,
        Verb::Post => Method::POST,
        Verb::Put => Method::PUT,
        Verb::Patch => Method::PATCH,
        Verb::Delete => Method::DELETE,
    }
}

/// A path template with each parameter filled in.
fn concrete(template: &str) -> String {
    let segments: Vec<&str> =
        template.split('/').map(|segment| if segment.starts_with('{') { "x" } else { segment }).collect();
    segments.join("/")
}

#[tokio::test]
async fn every_rpc_of_the_table_is_routed_at_its_verb_and_path() {
    let mappings = SERVICES
        .iter()
        .flat_map(|service| service.rpcs.iter().map(move |rpc| (service.name, rpc)))
        .flat_map(|(service, rpc)| rpc.bindings().map(move |(path, _)| (service, rpc, path)));
    for (service, rpc, path) in mappings {
        let uri = concrete(path);
        let answer = call(Mocks::default().app(), request(method_of(rpc.verb), &uri, None, None)).await;
        if SERVED.contains(&(service, rpc.name)) {
            assert_error(&answer, StatusCode::UNAUTHORIZED, 16, "AUTH-MissingToken");
        } else {
            assert_error(&answer, StatusCode::NOT_IMPLEMENTED, 12, "RPC-Unimplemented");
            let message = format!("{} is not implemented by factors (RPC-Unimplemented)", rpc.name);
            assert_eq!(answer.body["message"], message.as_str());
        }
    }
}

#[tokio::test]
async fn adding_with_return_code_answers_the_code_and_the_new_id() {
    let mut mocks = Mocks::default();
    mocks
        .add_otp_sms
        .expect_add_otp_sms()
        .withf(|_, command| {
            command.phone.as_e164() == "+41791234567" && command.verification == Verification::ReturnCode
        })
        .times(1)
        .returning(|_, _| {
            Ok(AddOtpSmsOutput {
                details: details(),
                otp_sms_id: OtpSmsId::new("77").expect("valid"),
                verification_code: Some(VerificationCode::parse("123456").expect("digits")),
            })
        });
    let body = r#"{"number": "+41 79 123 45 67", "return_code": {}}"#;

    let answer = call(
        mocks.app(),
        request(Method::POST, "/resources/v3alpha/users/alice/otp_sms", Some("good"), Some(("application/json", body))),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        (answer.body["otpSmsId"].as_str(), answer.body["verificationCode"].as_str()),
        (Some("77"), Some("123456"))
    );
}

#[tokio::test]
async fn verify_takes_the_code_as_a_json_string() {
    let mut mocks = Mocks::default();
    mocks
        .verify_otp_sms
        .expect_verify_otp_sms()
        .withf(|_, command| command.code.expose() == "123456" && command.otp_sms.as_str() == "77")
        .times(1)
        .returning(|_, _| Ok(details()));

    let answer = call(
        mocks.app(),
        request(
            Method::POST,
            "/resources/v3alpha/users/alice/otp_sms/77/_verify",
            Some("good"),
            Some(("application/json", r#""123456""#)),
        ),
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["details"]["id"], "69629012906488334");
}

#[tokio::test]
async fn creating_a_user_answers_201() {
    let mut mocks = Mocks::default();
    mocks
        .create_user
        .expect_create_user()
        .withf(|_, command| {
            command.schema_id.as_str() == "human" && command.user_id.as_ref().is_some_and(|id| id.as_str() == "ada")
        })
        .times(1)
        .returning(|_, _| Ok(CreateUserOutput { details: details(), email_code: None, phone_code: None }));

    let body = r#"{"schema_id": "human", "userId": "ada", "data": {"name": "Ada"}}"#;
    let answer = call(
        mocks.app(),
        request(
            Method::POST,
            "/resources/v3alpha/users?organization.orgId=o1",
            Some("good"),
            Some(("application/json", body)),
        ),
    )
    .await;

    assert_eq!(answer.status, StatusCode::CREATED);
    assert!(answer.body.get("emailCode").is_none(), "unset optional fields are omitted");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_keeps_a_given_one() {
    let answer = call(Mocks::default().app(), request(Method::GET, "/healthz", None, None)).await;
    assert!(answer.headers.get("x-request-id").is_some_and(|v| !v.is_empty()));

    let given = Request::get("/healthz").header("x-request-id", "trace-me").body(Body::empty()).expect("valid");
    let answer = call(Mocks::default().app(), given).await;
    assert_eq!(answer.headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-me"));
}

#[tokio::test]
async fn readyz_follows_the_dependencies() {
    let cases = [
        (vec![("postgres", DependencyState::Up)], StatusCode::OK),
        (vec![("postgres", DependencyState::Up), ("redis", DependencyState::Degraded)], StatusCode::OK),
        (vec![("postgres", DependencyState::Down)], StatusCode::SERVICE_UNAVAILABLE),
    ];
    for (dependencies, status) in cases {
        let mut mocks = Mocks::default();
        let report = Readiness { dependencies: dependencies.clone(), draining: false };
        mocks.readiness.expect_readiness().returning(move || report.clone());
        let answer = call(mocks.app(), request(Method::GET, "/readyz", None, None)).await;
        assert_eq!(answer.status, status, "{dependencies:?}");
        assert_eq!(answer.body["dependencies"]["postgres"], dependencies[0].1.as_str());
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_with_the_statuses_it_answers() {
    let answer = call(Mocks::default().app(), request(Method::GET, "/openapi.json", None, None)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let paths = &answer.body["paths"];
    let responses = |path: &str, method: &str| -> Vec<String> {
        paths[path][method]["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
    };
    assert_eq!(
        responses("/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}", "delete"),
        ["200", "400", "401", "403", "404", "500", "504"]
    );
    assert!(responses("/resources/v3alpha/users", "post").contains(&"201".to_owned()));
    assert_eq!(responses("/resources/v3alpha/users/{id}/totp", "post"), ["501"]);
    for ops in ["/healthz", "/readyz", "/openapi.json"] {
        assert!(paths[ops]["get"].is_object(), "{ops} is documented");
    }
    let verify_body =
        &paths["/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}/_verify"]["post"]["requestBody"]["content"];
    assert!(verify_body["application/json"].is_object(), "the code is sent as JSON: {verify_body}");
    assert_eq!(answer.body["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let status_schema = &answer.body["components"]["schemas"]["Status"]["properties"];
    assert!(status_schema["code"].is_object() && status_schema["details"].is_object(), "{status_schema}");
}

#[tokio::test]
async fn the_openapi_document_names_every_rpc_of_the_table_at_its_verb_and_path() {
    let doc = call(Mocks::default().app(), request(Method::GET, "/openapi.json", None, None)).await.body;
    for (service, rpc) in SERVICES.iter().flat_map(|service| service.rpcs.iter().map(move |rpc| (service.name, rpc))) {
        let verb = method_of(rpc.verb).as_str().to_ascii_lowercase();
        for (path, operation_id) in rpc.bindings() {
            let operation = &doc["paths"][path][verb.as_str()];
            assert_eq!(operation["operationId"], operation_id, "{verb} {path}");
            let unimplemented = operation["tags"].as_array().is_some_and(|tags| tags.contains(&json!("unimplemented")));
            assert_eq!(unimplemented, !SERVED.contains(&(service, rpc.name)), "{}", rpc.name);
        }
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let mut mocks = Mocks::default();
    mocks.remove_otp_sms.expect_remove_otp_sms().returning(|_, _| Err(RemoveOtpSmsError::NotFound));
    let app = mocks.app();

    let _ = call(app.clone(), request(Method::DELETE, REMOVE, Some("good"), None)).await;
    let _ = call(app.clone(), request(Method::DELETE, REMOVE, Some("good"), None)).await;
    let response = app.oneshot(request(Method::GET, "/metrics", None, None)).await.expect("answers");
    let text =
        String::from_utf8(response.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf-8");

    let series = r#"factors_http_requests_total{method="DELETE",route="/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}",status="404"} 2"#;
    assert!(text.contains(series), "{text}");
    assert!(text.contains("factors_http_request_duration_seconds_bucket"), "{text}");
    assert!(!text.contains("69629012906488334"), "ids never become labels");
}

/// A GET answered as bytes, for what is not JSON.
async fn fetch(app: axum::Router, uri: &str) -> (StatusCode, HeaderMap, String) {
    let response = app.oneshot(request(Method::GET, uri, None, None)).await.expect("the router answers");
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn content_type(headers: &HeaderMap) -> &str {
    headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn the_swagger_ui_page_and_its_files_are_served_by_the_service() {
    let app = Mocks::default().app();

    let (status, headers, page) = fetch(app.clone(), "/swagger-ui/").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(content_type(&headers).starts_with("text/html"), "{headers:?}");
    assert!(page.contains("./swagger-ui-bundle.js") && page.contains("./swagger-initializer.js"), "{page}");
    assert!(!page.contains("//cdn") && !page.contains("https://"), "the page loads nothing from elsewhere: {page}");

    for (file, kind) in [
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui-standalone-preset.js", "javascript"),
        ("swagger-ui.css", "text/css"),
    ] {
        let (status, headers, body) = fetch(app.clone(), &format!("/swagger-ui/{file}")).await;
        assert_eq!(status, StatusCode::OK, "{file}");
        assert!(content_type(&headers).contains(kind), "{file}: {headers:?}");
        assert!(body.len() > 100_000, "{file} is the real file, {} bytes", body.len());
    }
}

#[tokio::test]
async fn the_swagger_ui_shows_the_one_openapi_document_and_asks_no_validator() {
    let (status, _, initializer) = fetch(Mocks::default().app(), "/swagger-ui/swagger-initializer.js").await;

    assert_eq!(status, StatusCode::OK);
    assert!(initializer.contains(r#""url": "/openapi.json""#), "{initializer}");
    assert!(initializer.contains(r#""validatorUrl": "none""#), "{initializer}");
    assert!(!initializer.contains("{{config}}"), "{initializer}");
}

#[tokio::test]
async fn the_swagger_ui_path_without_its_slash_redirects_and_a_missing_file_is_the_contracts_404() {
    let (status, headers, _) = fetch(Mocks::default().app(), "/swagger-ui").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers.get("location").and_then(|v| v.to_str().ok()), Some("/swagger-ui/"));

    let missing = call(Mocks::default().app(), request(Method::GET, "/swagger-ui/nothing.js", None, None)).await;
    assert_error(&missing, StatusCode::NOT_FOUND, 5, "REQ-UnknownPath");
}

// ----- zitadel.session.v2.SessionService ---------------------------------------------------

mod sessions {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::TimeDelta;
    use factors_application::ports::{LimitScope, RateLimited};
    use factors_application::use_cases::examples::{session_details, session_view, session_written};
    use factors_application::use_cases::sessions::{SessionChange, SessionError, SessionView, UserCheck};

    use super::*;

    fn details_json() -> Value {
        json!({"sequence": "2", "changeDate": "2024-11-22T09:31:02.114Z", "resourceOwner": "instance-1",
               "creationDate": "2024-11-22T09:27:10.426Z"})
    }

    fn json_request(method: Method, uri: &str, body: &str) -> Request<Body> {
        request(method, uri, Some("good"), Some(("application/json", body)))
    }

    #[tokio::test]
    async fn create_session_hands_the_use_case_the_exact_change_and_answers_201() {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_create_session()
            .withf(|caller, change| {
                caller.user_id.as_str() == "alice"
                    && *change
                        == SessionChange {
                            check_user: Some(UserCheck::UserId(UserId::new("69629012906488334").expect("valid"))),
                            check_otp_sms: None,
                            challenge_otp_sms: Some(true),
                            metadata: BTreeMap::from([
                                ("device".to_owned(), b"laptop".to_vec()),
                                ("gone".to_owned(), vec![]),
                            ]),
                            lifetime: Some(TimeDelta::seconds(300)),
                        }
            })
            .times(1)
            .returning(|_, _| Ok(session_written(Some("123456"))));
        let body = r#"{"checks": {"user": {"userId": "69629012906488334"}},
            "challenges": {"otpSms": {"returnCode": true}},
            "metadata": {"device": "bGFwdG9w", "gone": ""},
            "lifetime": "300s",
            "userAgent": {"fingerprintId": "ignored"}}"#;

        let answer = call(mocks.app(), json_request(Method::POST, "/v2/sessions", body)).await;

        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(
            answer.body,
            json!({"details": details_json(), "sessionId": "s1", "sessionToken": "token-2",
                   "challenges": {"otpSms": "123456"}})
        );
    }

    #[tokio::test]
    async fn create_session_takes_snake_case_and_an_empty_body_and_answers_challenges_only_when_asked() {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_create_session()
            .withf(|_, change| {
                change.check_user == Some(UserCheck::LoginName("ada@example.com".into()))
                    && change.challenge_otp_sms == Some(false)
            })
            .times(1)
            .returning(|_, _| Ok(session_written(None)));
        mocks
            .sessions
            .expect_create_session()
            .withf(|_, change| *change == SessionChange::default())
            .times(1)
            .returning(|_, _| Ok(session_written(None)));
        let app = mocks.app();

        let body = r#"{"checks": {"user": {"login_name": "ada@example.com"}}, "challenges": {"otp_sms": {}}}"#;
        let sent = call(app.clone(), json_request(Method::POST, "/v2/sessions", body)).await;
        assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.body);
        assert_eq!(sent.body["challenges"], json!({}), "asked, and the SMS went out: no code");

        let empty = call(app, request(Method::POST, "/v2/sessions", Some("good"), None)).await;
        assert_eq!(empty.status, StatusCode::CREATED, "{}", empty.body);
        assert!(empty.body.get("challenges").is_none(), "{}", empty.body);
    }

    #[tokio::test]
    async fn set_session_changes_the_session_of_the_path() {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_set_session()
            .withf(|_, command| {
                command.session_id.as_str() == "222430354126975533"
                    && command.change
                        == SessionChange {
                            check_otp_sms: Some("654321".into()),
                            lifetime: Some(TimeDelta::milliseconds(1500)),
                            ..SessionChange::default()
                        }
            })
            .times(1)
            .returning(|_, _| Ok(session_written(None)));
        // The path's session wins over one in the body; the deprecated token is ignored.
        let body = r#"{"sessionId": "other", "sessionToken": "old", "checks": {"otp_sms": {"code": "654321"}},
            "lifetime": "1.5s"}"#;

        let answer = call(mocks.app(), json_request(Method::PATCH, "/v2/sessions/222430354126975533", body)).await;

        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body, json!({"details": details_json(), "sessionToken": "token-2"}));
    }

    #[tokio::test]
    async fn a_negative_lifetime_reaches_the_use_case_which_refuses_it() {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_set_session()
            .withf(|_, command| command.change.lifetime == Some(TimeDelta::seconds(-1)))
            .times(1)
            .returning(|_, _| Err(SessionError::LifetimeInvalid));

        let answer = call(mocks.app(), json_request(Method::PATCH, "/v2/sessions/s1", r#"{"lifetime": "-1s"}"#)).await;

        assert_error(&answer, StatusCode::BAD_REQUEST, 3, "SESSION-LifetimeInvalid");
    }

    #[tokio::test]
    async fn get_session_takes_the_token_from_the_query_and_shows_the_session() {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_get_session()
            .withf(|caller, access| {
                caller.user_id.as_str() == "alice"
                    && access.session_id.as_str() == "s1"
                    && access.session_token.as_deref() == Some("t-1")
            })
            .times(2)
            .returning(|_, _| Ok(session_view()));
        mocks.sessions.expect_get_session().withf(|_, access| access.session_token.is_none()).times(1).returning(
            |_, _| {
                Ok(SessionView {
                    user: None,
                    otp_sms_verified_at: None,
                    metadata: BTreeMap::new(),
                    expiration_date: None,
                    ..session_view()
                })
            },
        );
        let app = mocks.app();

        let answer =
            call(app.clone(), request(Method::GET, "/v2/sessions/s1?sessionToken=t-1", Some("good"), None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(
            answer.body,
            json!({"session": {
                "id": "s1",
                "creationDate": "2024-11-22T09:27:10.426Z",
                "changeDate": "2024-11-22T09:31:02.114Z",
                "sequence": "3",
                "factors": {
                    "user": {"verifiedAt": "2024-11-22T09:28:20Z", "id": "alice", "organizationId": "org-a"},
                    "otpSms": {"verifiedAt": "2024-11-22T09:30:00Z"}
                },
                "metadata": {"device": "bGFwdG9w"},
                "expirationDate": "2024-11-22T10:27:10.426Z"
            }})
        );

        let snake =
            call(app.clone(), request(Method::GET, "/v2/sessions/s1?session_token=t-1", Some("good"), None)).await;
        assert_eq!(snake.status, StatusCode::OK, "{}", snake.body);

        let bare = call(app, request(Method::GET, "/v2/sessions/s1", Some("good"), None)).await;
        assert_eq!(
            bare.body["session"],
            json!({"id": "s1", "creationDate": "2024-11-22T09:27:10.426Z", "changeDate": "2024-11-22T09:31:02.114Z",
                   "sequence": "3", "factors": {}}),
            "unset fields are left out"
        );
    }

    #[tokio::test]
    async fn delete_session_takes_the_token_from_the_body_which_may_be_absent() {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_delete_session()
            .withf(|_, access| access.session_id.as_str() == "s1" && access.session_token.as_deref() == Some("t-1"))
            .times(2)
            .returning(|_, _| Ok(session_details()));
        mocks
            .sessions
            .expect_delete_session()
            .withf(|_, access| access.session_id.as_str() == "s1" && access.session_token.is_none())
            .times(3)
            .returning(|_, _| Ok(session_details()));
        let app = mocks.app();

        for body in [r#"{"sessionToken": "t-1"}"#, r#"{"session_token": "t-1"}"#, "{}", " "] {
            let answer = call(app.clone(), json_request(Method::DELETE, "/v2/sessions/s1", body)).await;
            assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.body);
            assert_eq!(answer.body, json!({"details": details_json()}));
        }
        let no_body = call(app, request(Method::DELETE, "/v2/sessions/s1", Some("good"), None)).await;
        assert_eq!(no_body.status, StatusCode::OK, "{}", no_body.body);
    }

    #[tokio::test]
    async fn every_unsupported_check_and_challenge_answers_400_naming_it_without_calling_the_use_case() {
        let cases = [
            (r#"{"checks": {"password": {"password": "secret"}}}"#, "checks.password"),
            (r#"{"checks": {"webAuthN": {"credentialAssertionData": {}}}}"#, "checks.webAuthN"),
            (r#"{"checks": {"web_auth_n": {}}}"#, "checks.webAuthN"),
            (r#"{"checks": {"idpIntent": {"idpIntentId": "i", "idpIntentToken": "t"}}}"#, "checks.idpIntent"),
            (r#"{"checks": {"totp": {"code": "123456"}}}"#, "checks.totp"),
            (r#"{"checks": {"otpEmail": {"code": "123456"}}}"#, "checks.otpEmail"),
            (r#"{"checks": {"recoveryCode": {"code": "1"}}}"#, "checks.recoveryCode"),
            (r#"{"challenges": {"webAuthN": {"domain": "example.com"}}}"#, "challenges.webAuthN"),
            (r#"{"challenges": {"otpEmail": {"returnCode": {}}}}"#, "challenges.otpEmail"),
            (r#"{"checks": {"user": {"userId": "u1"}, "totp": {}}, "challenges": {"otpSms": {}}}"#, "checks.totp"),
        ];
        for (body, field) in cases {
            for (method, uri) in [(Method::POST, "/v2/sessions"), (Method::PATCH, "/v2/sessions/s1")] {
                // No expectations: a call to the use case fails the test.
                let answer = call(Mocks::default().app(), json_request(method.clone(), uri, body)).await;
                assert_error(&answer, StatusCode::BAD_REQUEST, 3, "SESSION-Unsupported");
                let message = answer.body["message"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with(&format!("{field} is not supported by factors")),
                    "{method} {body}: {message}"
                );
            }
        }
    }

    #[tokio::test]
    async fn malformed_session_requests_answer_400_before_the_use_case() {
        let long_id = "1".repeat(201);
        let cases: Vec<BadRequest<'_>> = vec![
            (Method::GET, format!("/v2/sessions/{long_id}"), None, "SESSION-InvalidId"),
            (Method::PATCH, format!("/v2/sessions/{long_id}"), Some(("application/json", "{}")), "SESSION-InvalidId"),
            (Method::DELETE, format!("/v2/sessions/{long_id}"), None, "SESSION-InvalidId"),
            (Method::DELETE, "/v2/sessions/a%20b".into(), None, "SESSION-InvalidId"),
            (Method::POST, "/v2/sessions".into(), Some(("application/json", r#"{"lifetime": "5m"}"#)), "REQ-JsonShape"),
            (Method::POST, "/v2/sessions".into(), Some(("application/json", r#"{"lifetime": 300}"#)), "REQ-JsonShape"),
            (
                Method::PATCH,
                "/v2/sessions/s1".into(),
                Some(("application/json", r#"{"metadata": {"k": "not base64!"}}"#)),
                "REQ-JsonShape",
            ),
            (
                Method::POST,
                "/v2/sessions".into(),
                Some(("application/json", r#"{"checks": {"user": {}}}"#)),
                "REQ-MissingField",
            ),
            (
                Method::POST,
                "/v2/sessions".into(),
                Some(("application/json", r#"{"checks": {"user": {"userId": "a", "loginName": "b"}}}"#)),
                "REQ-OneOf",
            ),
            (
                Method::POST,
                "/v2/sessions".into(),
                Some(("application/json", r#"{"checks": {"user": {"userId": ""}}}"#)),
                "USER-InvalidId",
            ),
            (Method::POST, "/v2/sessions".into(), Some(("text/plain", "{}")), "REQ-ContentType"),
            (Method::DELETE, "/v2/sessions/s1".into(), Some(("application/json", "{nope")), "REQ-InvalidJson"),
            (Method::GET, "/v2/sessions/s1?sessionToken=a&sessionToken=b".into(), None, "REQ-InvalidQuery"),
        ];
        for (method, uri, body, id) in cases {
            let answer = call(Mocks::default().app(), request(method.clone(), &uri, Some("good"), body)).await;
            assert_error(&answer, StatusCode::BAD_REQUEST, 3, id);
        }
    }

    /// A session error (made anew for each call: some hold causes that cannot be cloned),
    /// its HTTP status, gRPC code and error id.
    type ErrorCase = (fn() -> SessionError, StatusCode, i32, &'static str);

    fn session_errors() -> Vec<ErrorCase> {
        vec![
            (|| SessionError::PermissionDenied, StatusCode::FORBIDDEN, 7, "SESSION-PermissionDenied"),
            (|| SessionError::NotFound, StatusCode::NOT_FOUND, 5, "SESSION-NotFound"),
            (|| SessionError::Expired, StatusCode::BAD_REQUEST, 9, "SESSION-Expired"),
            (|| SessionError::UserNotFound, StatusCode::NOT_FOUND, 5, "USER-NotFound"),
            (|| SessionError::UserInactive, StatusCode::BAD_REQUEST, 9, "SESSION-UserInactive"),
            (|| SessionError::UserChanged, StatusCode::BAD_REQUEST, 9, "SESSION-UserChanged"),
            (|| SessionError::LoginNameUnsupported, StatusCode::BAD_REQUEST, 3, "SESSION-LoginNameUnsupported"),
            (|| SessionError::UserNotChecked, StatusCode::BAD_REQUEST, 9, "SESSION-UserNotChecked"),
            (|| SessionError::NoOtpSms, StatusCode::BAD_REQUEST, 9, "SESSION-NoOtpSms"),
            (|| SessionError::NoChallenge, StatusCode::BAD_REQUEST, 9, "SESSION-NoOtpSmsChallenge"),
            (|| SessionError::CodeFormat, StatusCode::BAD_REQUEST, 3, "SESSION-CodeInvalid"),
            (|| SessionError::CodeWrong { void: false }, StatusCode::BAD_REQUEST, 3, "SESSION-CodeWrong"),
            (|| SessionError::CodeWrong { void: true }, StatusCode::BAD_REQUEST, 3, "SESSION-CodeWrong"),
            (|| SessionError::CodeExpired, StatusCode::BAD_REQUEST, 3, "SESSION-CodeExpired"),
            (|| SessionError::CodeExhausted, StatusCode::BAD_REQUEST, 3, "SESSION-CodeExhausted"),
            (|| SessionError::LifetimeInvalid, StatusCode::BAD_REQUEST, 3, "SESSION-LifetimeInvalid"),
            (|| SessionError::MetadataInvalid, StatusCode::BAD_REQUEST, 3, "SESSION-MetadataInvalid"),
            (
                || {
                    SessionError::RateLimited(RateLimited {
                        scope: LimitScope::Phone,
                        retry_after: Duration::from_secs(30),
                    })
                },
                StatusCode::TOO_MANY_REQUESTS,
                8,
                "SMS-RateLimitedPhone",
            ),
            (
                || SessionError::SmsFailed(anyhow::anyhow!("provider down")),
                StatusCode::SERVICE_UNAVAILABLE,
                14,
                "SMS-SendFailed",
            ),
            (|| SessionError::Contended, StatusCode::CONFLICT, 10, "SESSION-Contended"),
            (
                || SessionError::Unexpected(Unexpected(anyhow::anyhow!("password authentication failed"))),
                StatusCode::INTERNAL_SERVER_ERROR,
                13,
                "INTERNAL",
            ),
        ]
    }

    #[tokio::test]
    async fn each_session_error_answers_its_status_and_error_id_on_every_rpc() {
        for (error, status, code, id) in session_errors() {
            let mut mocks = Mocks::default();
            mocks.sessions.expect_create_session().returning(move |_, _| Err(error()));
            mocks.sessions.expect_set_session().returning(move |_, _| Err(error()));
            mocks.sessions.expect_get_session().returning(move |_, _| Err(error()));
            mocks.sessions.expect_delete_session().returning(move |_, _| Err(error()));
            let app = mocks.app();
            let calls = [
                json_request(Method::POST, "/v2/sessions", "{}"),
                json_request(Method::PATCH, "/v2/sessions/s1", "{}"),
                request(Method::GET, "/v2/sessions/s1", Some("good"), None),
                request(Method::DELETE, "/v2/sessions/s1", Some("good"), None),
            ];
            for call_of_rpc in calls {
                let answer = call(app.clone(), call_of_rpc).await;
                assert_error(&answer, status, code, id);
                let text = answer.body.to_string();
                assert!(!text.contains("provider") && !text.contains("password"), "no cause leaks: {text}");
                if id == "SMS-RateLimitedPhone" {
                    assert_eq!(answer.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("30"));
                }
            }
        }
    }

    #[tokio::test]
    async fn session_rpcs_need_a_valid_token() {
        let cases = [
            request(Method::POST, "/v2/sessions", None, Some(("application/json", "{}"))),
            request(Method::GET, "/v2/sessions/s1", Some("expired"), None),
            request(Method::PATCH, "/v2/sessions/s1", Some("forged"), Some(("application/json", "{}"))),
            request(Method::DELETE, "/v2/sessions/s1", None, None),
        ];
        for unauthenticated in cases {
            // No expectations: a call to the use case fails the test.
            let answer = call(Mocks::default().app(), unauthenticated).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
            assert_eq!(answer.body["code"], 16);
        }
    }

    #[tokio::test]
    async fn the_openapi_document_describes_the_session_operations() {
        let doc = call(Mocks::default().app(), request(Method::GET, "/openapi.json", None, None)).await.body;
        let operation = |path: &str, method: &str| doc["paths"][path][method].clone();
        let responses = |path: &str, method: &str| -> Vec<String> {
            operation(path, method)["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
        };
        assert_eq!(
            responses("/v2/sessions", "post"),
            ["201", "400", "401", "403", "404", "409", "429", "500", "503", "504"]
        );
        assert_eq!(
            responses("/v2/sessions/{session_id}", "patch"),
            ["200", "400", "401", "403", "404", "409", "429", "500", "503", "504"]
        );
        assert_eq!(responses("/v2/sessions/{session_id}", "get"), ["200", "400", "401", "403", "404", "500", "504"]);
        assert_eq!(responses("/v2/sessions/{session_id}", "delete"), ["200", "400", "401", "403", "404", "500", "504"]);
        assert_eq!(responses("/v2/sessions/search", "post"), ["501"]);

        let schema_of = |path: &str, method: &str, status: &str| {
            operation(path, method)["responses"][status]["content"]["application/json"]["schema"]["$ref"].clone()
        };
        assert_eq!(schema_of("/v2/sessions", "post", "201"), "#/components/schemas/CreateSessionResponse");
        assert_eq!(schema_of("/v2/sessions/{session_id}", "get", "200"), "#/components/schemas/GetSessionResponse");
        assert_eq!(schema_of("/v2/sessions/{session_id}", "patch", "200"), "#/components/schemas/SetSessionResponse");
        assert_eq!(schema_of("/v2/sessions/{session_id}", "get", "404"), "#/components/schemas/Status");
        let body = |path: &str, method: &str| {
            operation(path, method)["requestBody"]["content"]["application/json"]["schema"]["$ref"].clone()
        };
        assert_eq!(body("/v2/sessions", "post"), "#/components/schemas/CreateSessionBody");
        assert_eq!(body("/v2/sessions/{session_id}", "patch"), "#/components/schemas/SetSessionBody");
        assert_eq!(body("/v2/sessions/{session_id}", "delete"), "#/components/schemas/DeleteSessionBody");
        let get_params: Vec<Value> = operation("/v2/sessions/{session_id}", "get")["parameters"]
            .as_array()
            .map(|params| params.iter().map(|p| p["name"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(get_params, [json!("session_id"), json!("sessionToken")]);
        let schemas = &doc["components"]["schemas"];
        for schema in ["ChecksJson", "RequestChallengesJson", "SessionJson", "SessionDetails", "FactorsJson"] {
            assert!(schemas[schema].is_object(), "{schema} is described");
        }
        assert!(schemas["ChecksJson"]["properties"]["webAuthN"].is_object(), "{}", schemas["ChecksJson"]);
        assert!(schemas["SessionDetails"]["properties"]["creationDate"].is_object());
    }
}

// ----- ListUserEvents ----------------------------------------------------------------------

const EVENTS: &str = "/resources/v3alpha/users/alice/_events";

fn recorded(sequence: u64, event_type: &str) -> factors_application::ports::RecordedEvent {
    factors_application::ports::RecordedEvent {
        sequence,
        event_type: event_type.into(),
        creator: "admin".into(),
        created_at: Utc.timestamp_millis_opt(1_732_267_862_114).single().expect("valid"),
        payload: json!({"actor": "admin", "userId": "alice", "otpSmsId": "42", "phone": "+41******567"}),
    }
}

#[tokio::test]
async fn the_audit_trail_answers_a_page_in_protobuf_json_with_the_next_cursor() {
    let cursor = EventCursor::after(2).encode();
    let mut mocks = Mocks::default();
    mocks
        .list_user_events
        .expect_list_user_events()
        .withf(|caller, command| {
            caller.user_id.as_str() == "alice"
                && command.user.as_str() == "alice"
                && command.page == PageRequest { size: 2, cursor: Some(EventCursor::after(2)) }
                && command.scope.organization == Some(OrgSelector::Id(OrgId::new("org-a").expect("valid")))
        })
        .times(1)
        .returning(|_, _| {
            Ok(EventsPage {
                events: vec![
                    recorded(3, "user.human.mfa.otp.sms.added"),
                    recorded(4, "user.human.mfa.otp.sms.removed"),
                ],
                next_cursor: Some(EventCursor::after(4)),
            })
        });

    let uri = format!("{EVENTS}?pageSize=2&cursor={cursor}&organization.orgId=org-a");
    let answer = call(mocks.app(), request(Method::GET, &uri, Some("good"), None)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let payload = json!({"actor": "admin", "userId": "alice", "otpSmsId": "42", "phone": "+41******567"});
    assert_eq!(
        answer.body,
        json!({"events": [
            {"sequence": "3", "type": "user.human.mfa.otp.sms.added", "actor": "admin",
             "creationDate": "2024-11-22T09:31:02.114Z", "payload": payload},
            {"sequence": "4", "type": "user.human.mfa.otp.sms.removed", "actor": "admin",
             "creationDate": "2024-11-22T09:31:02.114Z", "payload": payload}],
            "nextCursor": EventCursor::after(4).encode()})
    );
}

#[tokio::test]
async fn the_last_page_of_the_trail_has_no_next_cursor_and_defaults_apply() {
    let mut mocks = Mocks::default();
    mocks
        .list_user_events
        .expect_list_user_events()
        .withf(|_, command| command.page == PageRequest { size: 100, cursor: None })
        .times(1)
        .returning(|_, _| Ok(EventsPage { events: vec![], next_cursor: None }));

    let answer =
        call(mocks.app(), request(Method::GET, &format!("{EVENTS}?page_size=0&cursor="), Some("good"), None)).await;

    assert_eq!((answer.status, answer.body), (StatusCode::OK, json!({"events": []})));
}

#[tokio::test]
async fn bad_paging_answers_400_with_its_own_id_before_the_use_case() {
    let cases = [
        ("pageSize=1001", "EVENTS-InvalidPageSize"),
        ("cursor=not-a-cursor", "EVENTS-InvalidCursor"),
        ("cursor=AQAAAAAAAAAA", "EVENTS-InvalidCursor"),
        ("pageSize=-1", "REQ-InvalidQuery"),
        ("pageSize=ten", "REQ-InvalidQuery"),
    ];
    for (query, id) in cases {
        let mut mocks = Mocks::default();
        mocks.list_user_events.expect_list_user_events().never();
        let answer = call(mocks.app(), request(Method::GET, &format!("{EVENTS}?{query}"), Some("good"), None)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, 3, id);
    }
}

#[tokio::test]
async fn the_trail_refusals_are_the_access_rules_answers() {
    let cases = [
        (factors_domain::AccessRefusal::PermissionDenied, StatusCode::FORBIDDEN, 7, "AUTHZ-PermissionDenied"),
        (factors_domain::AccessRefusal::UserNotFound, StatusCode::NOT_FOUND, 5, "USER-NotFound"),
    ];
    for (refusal, status, code, id) in cases {
        let mut mocks = Mocks::default();
        mocks.list_user_events.expect_list_user_events().returning(move |_, _| Err(ListUserEventsError::from(refusal)));
        let answer = call(mocks.app(), request(Method::GET, EVENTS, Some("good"), None)).await;
        assert_error(&answer, status, code, id);
    }
}

// ----- login policies ----------------------------------------------------------------------

const INSTANCE_POLICY: &str = "/resources/v3alpha/policies/login";
const ORG_A_POLICY: &str = "/resources/v3alpha/organizations/org-a/policies/login";

fn strict() -> LoginPolicy {
    LoginPolicy::new(true, chrono::TimeDelta::minutes(5), true).expect("valid")
}

/// What the use case answers for org-a: the instance default it inherits, version 2.
fn inherited() -> PolicyView {
    PolicyView {
        scope: Scope::Org(OrgId::new("org-a").expect("valid")),
        policy: strict(),
        source: PolicySource::Instance,
        stored: Some(PolicyVersionView {
            sequence: 2,
            created: Utc.timestamp_millis_opt(1_732_267_630_426).single().expect("valid"),
            changed: Utc.timestamp_millis_opt(1_732_267_862_114).single().expect("valid"),
            owner: PolicyOwner::Instance(InstanceId::new("factors").expect("valid")),
        }),
    }
}

fn org_a() -> Scope {
    Scope::Org(OrgId::new("org-a").expect("valid"))
}

#[tokio::test]
async fn an_organization_reads_the_policy_it_inherits_with_the_instance_as_owner() {
    let mut mocks = Mocks::default();
    mocks
        .login_policies
        .expect_get_login_policy()
        .withf(|caller, scope| caller.user_id.as_str() == "alice" && *scope == org_a())
        .times(1)
        .returning(|_, _| Ok(inherited()));

    let answer = call(mocks.app(), request(Method::GET, ORG_A_POLICY, Some("good"), None)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"policy": {"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true},
               "source": "POLICY_SOURCE_INSTANCE",
               "details": {"sequence": "2", "created": "2024-11-22T09:27:10.426Z", "changed": "2024-11-22T09:31:02.114Z",
                           "owner": {"type": "OWNER_TYPE_INSTANCE", "id": "factors"}}})
    );
}

#[tokio::test]
async fn the_built_in_default_has_no_details_and_shows_zero_as_0s() {
    let mut mocks = Mocks::default();
    mocks.login_policies.expect_get_login_policy().withf(|_, scope| *scope == Scope::Instance).times(1).returning(
        |_, scope| {
            Ok(PolicyView { scope, policy: LoginPolicy::default(), source: PolicySource::BuiltIn, stored: None })
        },
    );

    let answer = call(mocks.app(), request(Method::GET, INSTANCE_POLICY, Some("good"), None)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"policy": {"forceMfa": false, "selfRemovalStepUpMaxAge": "0s", "notifyOnRemoval": false},
               "source": "POLICY_SOURCE_BUILT_IN"})
    );
}

#[tokio::test]
async fn setting_a_policy_hands_the_whole_policy_to_the_use_case_and_absent_fields_are_off() {
    let cases = [
        (
            INSTANCE_POLICY,
            r#"{"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true}"#,
            Scope::Instance,
            strict(),
        ),
        (
            ORG_A_POLICY,
            r#"{"force_mfa": true, "self_removal_step_up_max_age": "300s", "notify_on_removal": true}"#,
            org_a(),
            strict(),
        ),
        (
            ORG_A_POLICY,
            r#"{"notifyOnRemoval": true, "unknown": 1}"#,
            org_a(),
            LoginPolicy::new(false, chrono::TimeDelta::zero(), true).expect("valid"),
        ),
        (ORG_A_POLICY, r#"{"forceMfa": null, "selfRemovalStepUpMaxAge": null}"#, org_a(), LoginPolicy::default()),
        (
            INSTANCE_POLICY,
            r#"{"selfRemovalStepUpMaxAge": "31622400s"}"#,
            Scope::Instance,
            LoginPolicy::new(false, chrono::TimeDelta::days(366), false).expect("valid"),
        ),
    ];
    for (uri, body, expected_scope, expected) in cases {
        let mut mocks = Mocks::default();
        let scope = expected_scope.clone();
        mocks
            .login_policies
            .expect_set_login_policy()
            .withf(move |caller, scope, policy| {
                caller.user_id.as_str() == "alice" && *scope == expected_scope && *policy == expected
            })
            .times(1)
            .returning(move |_, _, policy| {
                Ok(PolicyView { scope: scope.clone(), policy, source: PolicySource::Organization, ..inherited() })
            });

        let answer = call(mocks.app(), request(Method::PUT, uri, Some("good"), Some(("application/json", body)))).await;

        assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.body);
        assert_eq!(answer.body["source"], "POLICY_SOURCE_ORGANIZATION", "{body}");
    }
}

#[tokio::test]
async fn a_bad_step_up_age_answers_400_with_the_policy_id_before_the_use_case() {
    let ages = [r#""5m""#, r#""1.5s""#, r#""-1s""#, r#""31622401s""#, "300", r#""""#, r#""s""#, r#"{"seconds": 300}"#];
    for age in ages {
        let mut mocks = Mocks::default();
        mocks.login_policies.expect_set_login_policy().never();
        let body = format!(r#"{{"forceMfa": true, "selfRemovalStepUpMaxAge": {age}}}"#);

        let answer =
            call(mocks.app(), request(Method::PUT, ORG_A_POLICY, Some("good"), Some(("application/json", &body))))
                .await;

        assert_error(&answer, StatusCode::BAD_REQUEST, 3, "POLICY-InvalidStepUpAge");
        assert_eq!(
            answer.body["details"][0]["message"],
            "selfRemovalStepUpMaxAge must be whole seconds from 0 (off) to 366 days",
            "{age}"
        );
    }
}

#[tokio::test]
async fn malformed_policy_requests_answer_400_with_the_ids_of_the_other_routes() {
    let too_long = format!("/resources/v3alpha/organizations/{}/policies/login", "o".repeat(201));
    let cases: Vec<BadRequest<'_>> = vec![
        (Method::GET, too_long.clone(), None, "ORG-InvalidId"),
        (Method::PUT, too_long, Some(("application/json", "{}")), "ORG-InvalidId"),
        (Method::PUT, ORG_A_POLICY.into(), Some(("text/plain", "{}")), "REQ-ContentType"),
        (Method::PUT, ORG_A_POLICY.into(), Some(("application/json", "{")), "REQ-InvalidJson"),
        (Method::PUT, INSTANCE_POLICY.into(), Some(("application/json", r#"{"forceMfa": "yes"}"#)), "REQ-JsonShape"),
    ];
    for (method, uri, body, id) in cases {
        let mut mocks = Mocks::default();
        mocks.login_policies.expect_get_login_policy().never();
        mocks.login_policies.expect_set_login_policy().never();
        let answer = call(mocks.app(), request(method, &uri, Some("good"), body)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, 3, id);
    }
}

#[tokio::test]
async fn policy_refusals_answer_as_the_use_case_decides_and_a_token_is_needed_first() {
    let cases = [
        (
            LoginPolicyError::Access(factors_domain::AccessRefusal::PermissionDenied),
            StatusCode::FORBIDDEN,
            7,
            "AUTHZ-PermissionDenied",
        ),
        (LoginPolicyError::Contended, StatusCode::CONFLICT, 10, "POLICY-Contended"),
    ];
    for (error, status, code, id) in cases {
        let mut mocks = Mocks::default();
        let error = std::sync::Mutex::new(Some(error));
        mocks
            .login_policies
            .expect_set_login_policy()
            .times(1)
            .returning(move |_, _, _| Err(error.lock().expect("lock").take().expect("once")));
        let answer =
            call(mocks.app(), request(Method::PUT, INSTANCE_POLICY, Some("good"), Some(("application/json", "{}"))))
                .await;
        assert_error(&answer, status, code, id);
    }
    for (method, uri) in [(Method::GET, INSTANCE_POLICY), (Method::PUT, ORG_A_POLICY)] {
        let answer = call(Mocks::default().app(), request(method, uri, None, Some(("application/json", "{}")))).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, 16, "AUTH-MissingToken");
    }
    let wrong_method = call(Mocks::default().app(), request(Method::POST, ORG_A_POLICY, Some("good"), None)).await;
    assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, 12, "REQ-MethodNotAllowed");
}

#[tokio::test]
async fn the_openapi_document_describes_the_policy_operations() {
    let doc = call(Mocks::default().app(), request(Method::GET, "/openapi.json", None, None)).await.body;
    let org = "/resources/v3alpha/organizations/{organization_id}/policies/login";
    let responses = |path: &str, verb: &str| -> Vec<String> {
        doc["paths"][path][verb]["responses"].as_object().expect("responses").keys().cloned().collect()
    };
    assert_eq!(responses(INSTANCE_POLICY, "get"), ["200", "401", "403", "500", "504"]);
    assert_eq!(responses(org, "get"), ["200", "400", "401", "403", "500", "504"]);
    for path in [INSTANCE_POLICY, org] {
        assert_eq!(responses(path, "put"), ["200", "400", "401", "403", "409", "500", "504"], "{path}");
        let body = &doc["paths"][path]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(body, "#/components/schemas/SetLoginPolicyBody", "{path}");
    }
    let answer = &doc["components"]["schemas"]["LoginPolicyResponse"];
    assert_eq!(answer["required"], json!(["policy", "source"]), "details is optional: {answer}");
    let policy = &doc["components"]["schemas"]["LoginPolicyJson"]["properties"];
    assert_eq!(policy["selfRemovalStepUpMaxAge"]["type"], "string", "{policy}");
}

const SEARCH: &str = "/resources/v3alpha/users/_search";

fn searched_user(id: &str) -> factors_domain::UserSnapshot {
    let created = Utc.timestamp_millis_opt(1_732_267_630_426).single().expect("valid");
    factors_domain::UserSnapshot {
        user: factors_domain::User {
            id: UserId::new(id).expect("valid"),
            org: OrgId::new("org-a").expect("valid"),
            state: factors_domain::UserState::Locked,
            schema_id: factors_domain::SchemaId::new("human").expect("valid"),
            data: factors_domain::UserData::default(),
            contact: factors_domain::Contact::default(),
            created,
            changed: created,
            sequence: 3,
        },
        otp_sms: vec![],
    }
}

#[tokio::test]
async fn searching_reads_filters_by_name_or_number_and_answers_a_page_as_protobuf_json() {
    let mut mocks = Mocks::default();
    mocks
        .search_users
        .expect_search_users()
        .withf(|caller, command| {
            caller.user_id.as_str() == "alice"
                && command.scope.organization.is_none()
                && (command.offset, command.limit, command.descending, command.sorting_column) == (20, 5, true, 2)
                && command.filters
                    == [
                        SearchFilter::State { state: 4 },
                        SearchFilter::And(vec![SearchFilter::UserId { id: "bob".into(), method: 0 }]),
                        SearchFilter::OrganizationId { id: "org-a".into(), method: 2 },
                        SearchFilter::Other("emailFilter"),
                    ]
        })
        .times(1)
        .returning(|_, _| {
            Ok(UsersPage {
                users: vec![searched_user("bob")],
                total: 21,
                applied_limit: 5,
                at: Utc.timestamp_millis_opt(1_732_267_862_114).single().expect("valid"),
            })
        });
    let body = r#"{"query": {"offset": "20", "limit": 5, "desc": true}, "sorting_column": "FIELD_NAME_CREATION_DATE",
        "filters": [{"stateFilter": {"state": "USER_STATE_LOCKED"}},
                    {"andFilter": {"queries": [{"user_id_filter": {"id": "bob"}}]}},
                    {"organizationIdFilter": {"id": "org-a", "method": 2}},
                    {"emailFilter": {"address": "bob@example.com"}}]}"#;

    let answer = call(mocks.app(), request(Method::POST, SEARCH, Some("good"), Some(("application/json", body)))).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body["details"],
        json!({"appliedLimit": "5", "totalResult": "21", "timestamp": "2024-11-22T09:31:02.114Z"})
    );
    let users = answer.body["result"].as_array().expect("a list");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["details"]["id"], "bob");
    assert_eq!(users[0]["details"]["owner"], json!({"type": "OWNER_TYPE_ORG", "id": "org-a"}));
    assert_eq!(users[0]["state"], "USER_STATE_LOCKED");
    assert_eq!(users[0]["authenticators"]["otpSms"], json!([]));
}

#[tokio::test]
async fn searching_with_no_body_asks_for_the_first_page_by_id() {
    let mut mocks = Mocks::default();
    mocks
        .search_users
        .expect_search_users()
        .withf(|_, command| {
            (command.offset, command.limit, command.descending, command.sorting_column) == (0, 0, false, 0)
                && command.filters.is_empty()
        })
        .times(1)
        .returning(|_, _| Ok(UsersPage { users: vec![], total: 0, applied_limit: 100, at: Utc::now() }));

    let answer = call(mocks.app(), request(Method::POST, SEARCH, Some("good"), None)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!((&answer.body["result"], &answer.body["details"]["totalResult"]), (&json!([]), &json!("0")));
}

#[tokio::test]
async fn searches_the_body_cannot_name_answer_400_before_the_use_case() {
    let cases = [
        (r#"{"sortingColumn": "FIELD_NAME_AGE"}"#, "USER-SearchInvalid"),
        (r#"{"filters": [{"stateFilter": {"state": "USER_STATE_ASLEEP"}}]}"#, "USER-SearchInvalid"),
        (r#"{"query": {"offset": "-1"}}"#, "USER-SearchInvalid"),
        (r#"{"filters": [{"ageFilter": {"age": 3}}]}"#, "REQ-JsonShape"),
    ];
    for (body, id) in cases {
        let answer =
            call(Mocks::default().app(), request(Method::POST, SEARCH, Some("good"), Some(("application/json", body))))
                .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, 3, id);
    }
}

const SMS_GUARD: &str = "/resources/v3alpha/sms_guard";

fn guard_view() -> factors_application::use_cases::sms_guard::GuardView {
    use factors_application::sms_guard::{BreakerMode, GuardSettings, RegionBreaker};
    use factors_domain::{BreakerRule, BreakerState, SmsBudgets, SmsCountries};
    let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().expect("valid");
    let rule = BreakerRule {
        threshold: 0.2,
        min_sends: 50,
        window: chrono::TimeDelta::hours(1),
        cool_down: chrono::TimeDelta::minutes(15),
        probes: 5,
    };
    factors_application::use_cases::sms_guard::GuardView {
        settings: GuardSettings {
            countries: SmsCountries::new(&[], &["KP".into(), "CU".into()]).expect("valid"),
            budgets: SmsBudgets {
                per_country: 1000,
                per_prefix: 50,
                prefix_digits: 6,
                window: std::time::Duration::from_secs(3600),
            },
            breaker: Some((rule, BreakerMode::Enforce)),
        },
        breakers: vec![
            RegionBreaker { region: "CH".into(), state: BreakerState::Closed, sent: 12, verified: 11 },
            RegionBreaker {
                region: "GN".into(),
                state: BreakerState::Open { until: at(1_732_268_530_000) },
                sent: 52,
                verified: 3,
            },
            RegionBreaker {
                region: "SL".into(),
                state: BreakerState::HalfOpen { since: at(1_732_267_630_000), sent: 2, verified: 1 },
                sent: 0,
                verified: 1,
            },
        ],
        replica: "web-1#3".into(),
    }
}

#[tokio::test]
async fn the_sms_guard_shows_its_settings_and_each_breaker_in_protobuf_json() {
    let mut mocks = Mocks::default();
    mocks
        .sms_guard
        .expect_get_sms_guard()
        .withf(|caller| caller.user_id.as_str() == "alice")
        .times(1)
        .returning(|_| Ok(guard_view()));

    let answer = call(mocks.app(), request(Method::GET, SMS_GUARD, Some("good"), None)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "settings": {
                "allowedRegions": [], "deniedRegions": ["CU", "KP"],
                "budgets": {"perCountry": 1000, "perPrefix": 50, "prefixDigits": 6, "window": "3600s"},
                "breaker": {"mode": "BREAKER_MODE_ENFORCE", "threshold": 0.2, "minSends": 50, "window": "3600s",
                            "coolDown": "900s", "probes": 5}
            },
            "breakers": [
                {"region": "CH", "state": "BREAKER_STATE_CLOSED", "sent": "12", "verified": "11"},
                {"region": "GN", "state": "BREAKER_STATE_OPEN", "sent": "52", "verified": "3",
                 "until": "2024-11-22T09:42:10Z"},
                {"region": "SL", "state": "BREAKER_STATE_HALF_OPEN", "sent": "0", "verified": "1",
                 "since": "2024-11-22T09:27:10Z", "probesSent": 2, "probesVerified": 1}
            ],
            "replica": "web-1#3"
        })
    );
}

#[tokio::test]
async fn closing_a_breaker_hands_the_region_to_the_use_case_and_its_refusals_answer_in_the_contract_form() {
    use factors_application::sms_guard::RegionBreaker;
    use factors_application::use_cases::sms_guard::{ClosedBreaker, SmsGuardError};
    let mut mocks = Mocks::default();
    mocks.sms_guard.expect_close_sms_breaker().withf(|_, region| region == "gn").times(1).returning(|_, _| {
        let breaker =
            RegionBreaker { region: "GN".into(), state: factors_domain::BreakerState::Closed, sent: 0, verified: 0 };
        Ok(ClosedBreaker { breaker, replica: "web-1#3".into() })
    });
    let close = |region: &str| format!("{SMS_GUARD}/breakers/{region}/_close");
    let answer = call(mocks.app(), request(Method::POST, &close("gn"), Some("good"), None)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"breaker": {"region": "GN", "state": "BREAKER_STATE_CLOSED", "sent": "0", "verified": "0"}, "replica": "web-1#3"})
    );

    let refusals = [
        (
            SmsGuardError::Access(factors_domain::AccessRefusal::PermissionDenied),
            StatusCode::FORBIDDEN,
            7,
            "AUTHZ-PermissionDenied",
        ),
        (SmsGuardError::InvalidRegion("XX".into()), StatusCode::BAD_REQUEST, 3, "SMS-InvalidRegion"),
    ];
    for (error, status, code, id) in refusals {
        let mut mocks = Mocks::default();
        let error = std::sync::Mutex::new(Some(error));
        mocks
            .sms_guard
            .expect_close_sms_breaker()
            .times(1)
            .returning(move |_, _| Err(error.lock().expect("lock").take().expect("once")));
        assert_error(
            &call(mocks.app(), request(Method::POST, &close("XX"), Some("good"), None)).await,
            status,
            code,
            id,
        );
    }
    for (method, uri) in [(Method::GET, SMS_GUARD.to_owned()), (Method::POST, close("GN"))] {
        let answer = call(Mocks::default().app(), request(method, &uri, None, None)).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, 16, "AUTH-MissingToken");
    }
}
