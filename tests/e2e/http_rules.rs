//! The HTTP layer of the real service: unknown paths, wrong methods, unimplemented RPCs,
//! bad bodies, operations endpoints and the OpenAPI document.

use std::time::Duration;

use super::TestApp;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn routing_failures_answer_in_the_contract_format() {
    let app = TestApp::spawn().await;
    app.send(Method::GET, "/no/such/path", None, None).await.assert_error(404, 5, "REQ-UnknownPath");
    app.send(Method::PUT, "/resources/v3alpha/users/alice/otp_sms/1", None, None).await.assert_error(
        405,
        12,
        "REQ-MethodNotAllowed",
    );
    app.send(Method::POST, "/resources/v3alpha/users/alice/otp_email", Some(&app.admin()), None).await.assert_error(
        501,
        12,
        "RPC-Unimplemented",
    );
}

#[tokio::test]
async fn malformed_bodies_answer_400_with_the_status_body() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let client = reqwest::Client::new();
    let url = format!("{}/resources/v3alpha/users/alice/otp_sms", app.address);
    let cases = [("application/json", "{\"number\": ", "REQ-InvalidJson"), ("text/plain", "{}", "REQ-ContentType")];
    for (content_type, body, id) in cases {
        let response = client
            .post(&url)
            .bearer_auth(app.admin())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status().as_u16(), 400);
        let json: serde_json::Value = response.json().await.expect("a JSON status body");
        assert_eq!((json["code"].as_i64(), json["details"][0]["id"].as_str()), (Some(3), Some(id)));
    }
}

#[tokio::test]
async fn health_readiness_and_openapi_are_served() {
    let app = TestApp::spawn().await;
    let health = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!((health.status, health.body["status"].as_str()), (200, Some("ok")));
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!((ready.status, ready.body["dependencies"][app.store()].as_str()), (200, Some("up")), "{}", ready.body);
    assert!(ready.headers.contains_key("x-request-id"));
    let openapi = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(openapi.body["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    assert!(openapi.body["paths"]["/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}"]["delete"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_lets_the_request_in_flight_finish_and_refuses_new_connections() {
    let mut app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    app.sms.delay_from_now_on(Duration::from_millis(700));
    let token = app.token("alice", "org-a", &[]);
    let url = format!("{}/resources/v3alpha/users/alice/otp_sms", app.address);
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new().post(url).bearer_auth(token).json(&json!({"number": "+41791234567"})).send().await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.stop().await;

    let answer = in_flight.await.expect("task").expect("the request in flight got its answer");
    assert_eq!(answer.status().as_u16(), 200);
    let refused = reqwest::get(format!("{}/healthz", app.address)).await.expect_err("no longer accepting");
    assert!(refused.is_connect(), "the connection is refused: {refused}");
    assert_eq!(app.sms.codes_for("+41791234567").len(), 1);
}
