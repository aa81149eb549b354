//! Removal notices across a crash: the `factors` process is killed while it is handing a
//! notice to the SMS provider (a webhook), and the notice still goes out, once, after the
//! restart. On both stores.

use std::process::Stdio;
use std::time::Duration;

use factors_testing::{TestDatabase, TestSqliteFile};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_factors");
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The service on `database_url`, sending SMS to `webhook`, with a short notice lease.
fn factors(database_url: &str, port: u16, webhook: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("FACTORS_ENV", "test")
        .env("FACTORS__DATABASE__URL", database_url)
        .env("FACTORS__SERVER__ADDR", format!("127.0.0.1:{port}"))
        .env("FACTORS__SMS__PROVIDER", "webhook")
        .env("FACTORS__SMS__WEBHOOK__URL", format!("{webhook}/sms"))
        .env("FACTORS__SMS__WEBHOOK__SECRET", WEBHOOK_SECRET)
        .env("FACTORS__SMS__TIMEOUT", "5s")
        .env("FACTORS__NOTICES__LEASE", "6s")
        .env("FACTORS__NOTICES__POLL_INTERVAL", "300ms")
        .env("RUST_LOG", "warn")
        .env_remove("FACTORS_CONFIG_DIR")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

async fn start(database_url: &str, port: u16, webhook: &str) -> Child {
    let mut child = factors(database_url, port, webhook).spawn().expect("starts");
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.is_ok_and(|r| r.status().is_success()) {
            return child;
        }
        assert!(child.try_wait().expect("pollable").is_none(), "factors exited before it was ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("factors did not become ready");
}

async fn admin_token(database_url: &str) -> String {
    let minted = Command::new(BIN)
        .env("FACTORS_ENV", "test")
        .env("FACTORS__DATABASE__URL", database_url)
        .env_remove("FACTORS_CONFIG_DIR")
        .args(["token", "mint", "--sub", "iam", "--org", "org-admin", "--role", "IAM_OWNER"])
        .output()
        .await
        .expect("mints");
    assert!(minted.status.success(), "{}", String::from_utf8_lossy(&minted.stderr));
    String::from_utf8(minted.stdout).expect("utf-8").trim_end().to_owned()
}

async fn call(port: u16, token: &str, method: reqwest::Method, route: &str, body: Option<Value>) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("http://127.0.0.1:{port}{route}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The notices the webhook received so far.
async fn notices(webhook: &MockServer) -> Vec<Request> {
    let received = webhook.received_requests().await.unwrap_or_default();
    received.into_iter().filter(|r| String::from_utf8_lossy(&r.body).contains("sms.notice")).collect()
}

async fn until_notices(webhook: &MockServer, count: usize, within: Duration) -> Vec<Request> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let received = notices(webhook).await;
        if received.len() >= count || tokio::time::Instant::now() >= deadline {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header(request: &Request, name: &str) -> String {
    request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Removes alice's authenticator with the notice policy on, kills the service while the
/// provider holds the notice's request, restarts it, and checks the provider got the same
/// notice (same idempotency key, same body) once more and never again. Answers once the
/// outbox should be empty; the caller checks its store.
async fn a_notice_in_flight_when_the_service_is_killed_is_sent_again_under_its_key(database_url: &str) {
    let webhook = MockServer::start().await;
    // The first notice request is held (the process dies meanwhile); later ones are taken.
    Mock::given(method("POST"))
        .and(path("/sms"))
        .and(body_string_contains("sms.notice"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&webhook)
        .await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&webhook)
        .await;
    let port = free_port();
    let mut service = start(database_url, port, &webhook.uri()).await;
    let token = admin_token(database_url).await;
    let created = call(
        port,
        &token,
        reqwest::Method::POST,
        "/resources/v3alpha/users?organization.orgId=org-a",
        Some(json!({"schemaId": "human", "userId": "alice", "data": {"name": "Alice"}})),
    )
    .await;
    assert_eq!(created.0, 201, "{}", created.1);
    let added = call(
        port,
        &token,
        reqwest::Method::POST,
        "/resources/v3alpha/users/alice/otp_sms",
        Some(json!({"number": "+41791234567", "isVerified": true})),
    )
    .await;
    assert_eq!(added.0, 200, "{}", added.1);
    let otp = added.1["otpSmsId"].as_str().expect("an id").to_owned();
    let policy = call(
        port,
        &token,
        reqwest::Method::PUT,
        "/resources/v3alpha/organizations/org-a/policies/login",
        Some(json!({"notifyOnRemoval": true})),
    )
    .await;
    assert_eq!(policy.0, 200, "{}", policy.1);

    let removed =
        call(port, &token, reqwest::Method::DELETE, &format!("/resources/v3alpha/users/alice/otp_sms/{otp}"), None)
            .await;
    assert_eq!(removed.0, 200, "{}", removed.1);
    let first = until_notices(&webhook, 1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1, "the notice is on its way");

    // Killed mid-flight: the provider took the request, factors never heard back.
    service.kill().await.expect("killed");
    let mut service = start(database_url, port, &webhook.uri()).await;

    // The claim runs out (lease 6 s) and the restarted service sends the notice again.
    let sent = until_notices(&webhook, 2, Duration::from_secs(20)).await;
    assert_eq!(sent.len(), 2, "sent again after the restart");
    assert_eq!(header(&sent[0], "webhook-id"), header(&sent[1], "webhook-id"), "the same idempotency key");
    assert!(header(&sent[0], "webhook-id").starts_with("msg_"));
    let bodies: Vec<Value> = sent.iter().map(|r| serde_json::from_slice(&r.body).expect("JSON")).collect();
    assert_eq!(bodies[0], bodies[1], "the same notice");
    assert_eq!(
        (bodies[0]["to"].as_str(), bodies[0]["purpose"].as_str()),
        (Some("+41791234567"), Some("removal_notice"))
    );

    // Taken this time: never sent a third time, however long the service runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(notices(&webhook).await.len(), 2, "no third send");
    service.kill().await.expect("stopped");
}

#[tokio::test]
async fn a_notice_in_flight_at_a_kill_is_sent_once_more_on_postgres() {
    let db = TestDatabase::new().await;

    a_notice_in_flight_when_the_service_is_killed_is_sent_again_under_its_key(db.url()).await;

    let pool = db.pool().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM notice_outbox").fetch_one(&pool).await.expect("count");
    assert_eq!(left, 0, "the sent notice left the outbox, with its number");
}

#[tokio::test]
async fn a_notice_in_flight_at_a_kill_is_sent_once_more_on_sqlite() {
    let file = TestSqliteFile::new();

    a_notice_in_flight_when_the_service_is_killed_is_sent_again_under_its_key(file.url()).await;

    let pool = sqlx::SqlitePool::connect(file.url()).await.expect("the file opens");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM notice_outbox").fetch_one(&pool).await.expect("count");
    assert_eq!(left, 0, "the sent notice left the outbox, with its number");
}
