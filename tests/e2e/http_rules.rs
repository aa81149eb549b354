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

/// Sends `head` (a request line and headers, without the blank line) and then `body`, over
/// a plain TCP connection, and reads the answer within `within`: its status, its headers
/// (lower-case names) and its body. A server that answers before reading the body may
/// close the connection while `body` is still being written; that is not an error here.
async fn raw_http(
    app: &TestApp,
    head: &str,
    body: &[u8],
    within: Duration,
) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
        let (mut reader, mut writer) = stream.split();
        let request = format!("{head}\r\nHost: {address}\r\n\r\n");
        let write = async {
            let _ = writer.write_all(request.as_bytes()).await;
            for chunk in body.chunks(64 * 1024) {
                if writer.write_all(chunk).await.is_err() {
                    break;
                }
            }
        };
        let read = async {
            let mut received = Vec::new();
            let mut buffer = vec![0_u8; 16 * 1024];
            loop {
                if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    let text = String::from_utf8_lossy(&received[..end]).into_owned();
                    let mut lines = text.split("\r\n");
                    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok());
                    let headers: std::collections::HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if received.len() >= end + 4 + length {
                        let body = received[end + 4..end + 4 + length].to_vec();
                        return (status.expect("a status line"), headers, body);
                    }
                }
                let read = reader.read(&mut buffer).await.expect("reads the answer");
                assert!(
                    read > 0,
                    "the connection closed before a whole answer: {}",
                    String::from_utf8_lossy(&received)
                );
                received.extend_from_slice(&buffer[..read]);
            }
        };
        tokio::pin!(read);
        tokio::select! {
            answer = &mut read => answer,
            () = write => read.await,
        }
    };
    tokio::time::timeout(within, exchange).await.expect("answered in time")
}

#[tokio::test]
async fn a_body_announced_over_the_limit_is_refused_at_once_on_every_protocol() {
    let app = TestApp::spawn().await;
    let token = app.admin();
    let cases = [
        ("/resources/v3alpha/users?organization.orgId=org-a", "application/json", "REST"),
        ("/resources/v3alpha/users/alice/otp_sms", "application/json", "REST, another route"),
        ("/zitadel.resources.user.v3alpha.ZITADELUsers/CreateUser", "application/json", "Connect"),
        ("/zitadel.resources.user.v3alpha.ZITADELUsers/CreateUser", "application/grpc-web+proto", "gRPC-web"),
        ("/zitadel.session.v2.SessionService/CreateSession", "application/grpc-web-text", "gRPC-web text"),
    ];
    for (path, content_type, case) in cases {
        let head = format!(
            "POST {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\n\
             X-Grpc-Web: 1\r\nContent-Length: 10000000000"
        );

        let (status, headers, body) = raw_http(&app, &head, b"", Duration::from_secs(1)).await;

        if content_type.starts_with("application/grpc-web") {
            assert_eq!(
                (status, headers.get("grpc-status").map(String::as_str)),
                (200, Some("8")),
                "{case}: {headers:?}"
            );
            assert!(headers.contains_key("grpc-status-details-bin"), "{case}: the error detail: {headers:?}");
            assert!(headers.get("grpc-message").is_some_and(|m| m.ends_with("(REQ-TooLarge)")), "{case}: {headers:?}");
            continue;
        }
        let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
        if case == "Connect" {
            assert_eq!((status, body["code"].as_str()), (429, Some("resource_exhausted")), "{case}: {body}");
            assert_eq!(body["details"][0]["debug"]["id"], "REQ-TooLarge", "{case}: {body}");
        } else {
            assert_eq!(status, 413, "{case}: {body}");
            assert_eq!(
                (body["code"].as_i64(), body["details"][0]["id"].as_str()),
                (Some(8), Some("REQ-TooLarge")),
                "{case}: {body}"
            );
            assert_eq!(body["details"][0]["@type"], "type.googleapis.com/zitadel.v1.ErrorDetail");
        }
    }
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let mut json = br#"{"schemaId": "human", "data": {"filler": ""#.to_vec();
    json.resize(json.len() + factors_wire::MAX_BODY_BYTES, b'x');
    json.extend_from_slice(br#""}}"#);
    let mut chunked = Vec::new();
    for chunk in json.chunks(256 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST /resources/v3alpha/users?organization.orgId=org-a HTTP/1.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked",
        app.admin()
    );

    let (status, _, body) = raw_http(&app, &head, &chunked, Duration::from_secs(10)).await;

    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(status, 413, "{body}");
    assert_eq!((body["code"].as_i64(), body["details"][0]["id"].as_str()), (Some(8), Some("REQ-TooLarge")), "{body}");
    assert_eq!(app.events("user.human.added").await.len(), 0, "nothing was created");

    // Just under the limit is taken (axum's own default is 2 MB).
    let mut data = serde_json::Map::new();
    data.insert("filler".into(), serde_json::Value::String("x".repeat(3 * 1024 * 1024)));
    let created = app.create_user(&app.admin(), "org-a", json!({"schemaId": "human", "data": data})).await;
    assert_eq!(created.status, 201, "{}", created.body);
}
