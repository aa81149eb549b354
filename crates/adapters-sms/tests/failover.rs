//! Providers in order (`sms.providers`): an SMS goes to the next provider only when the
//! one before certainly did not take it, a failing provider is skipped for a cool-down,
//! and one back up is used again after it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{notice, path, refused_port, sender, sms, timeouts};
use factors_adapters_sms::{FailoverConfig, FailoverSender, Outcome, Provider, SmsMetrics};
use factors_application::ports::{SmsPurpose, SmsSender};
use wiremock::matchers::{method, path as path_is};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A provider stub answering every post with `status` (Twilio's 201 carries a sid).
async fn provider(kind: Provider, status: u16) -> MockServer {
    let server = MockServer::start().await;
    let answer =
        ResponseTemplate::new(status).set_body_json(serde_json::json!({"sid": "SM0123456789abcdef0123456789abcdef"}));
    Mock::given(method("POST")).and(path_is(path(kind))).respond_with(answer).mount(&server).await;
    server
}

/// The `webhook-id` of every request `server` saw, in order.
async fn webhook_ids(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().filter_map(|r| r.headers.get("webhook-id")?.to_str().ok().map(str::to_owned)).collect()
}

/// The webhook sender alone, at `server`.
fn sender_alone(server: &MockServer) -> Arc<dyn SmsSender> {
    sender(Provider::Webhook, &server.uri(), timeouts(Duration::from_secs(5)), SmsMetrics::default())
}

async fn seen(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |requests| requests.len())
}

fn failover(first: &str, second: &str, metrics: &SmsMetrics, cool_down: Duration) -> FailoverSender {
    let twilio = sender(Provider::Twilio, first, timeouts(Duration::from_millis(500)), metrics.clone());
    let webhook = sender(Provider::Webhook, second, timeouts(Duration::from_secs(5)), metrics.clone());
    FailoverSender::new(
        vec![(Provider::Twilio, twilio), (Provider::Webhook, webhook)],
        FailoverConfig { failures: 2, cool_down },
    )
}

#[tokio::test]
async fn a_provider_that_certainly_did_not_send_hands_the_sms_to_the_next_and_is_skipped_after_its_failures() {
    let (down, backup) = (provider(Provider::Twilio, 503).await, provider(Provider::Webhook, 200).await);
    let metrics = SmsMetrics::default();
    let sender = failover(&down.uri(), &backup.uri(), &metrics, Duration::from_secs(60));

    for n in 0..4 {
        sender.send_code(&sms(SmsPurpose::SignIn)).await.unwrap_or_else(|e| panic!("send {n}: {e:#}"));
    }
    sender.send_notice(&notice("n-1")).await.expect("the notice too");

    assert_eq!(seen(&down).await, 2, "two failures open its circuit: it is skipped after");
    assert_eq!(seen(&backup).await, 5, "every SMS went out once, through the second");
    assert_eq!(metrics.count(Provider::Twilio, Outcome::Failed), 2);
    assert_eq!(metrics.count(Provider::Webhook, Outcome::Sent), 5);
    // The notice's key is the one the webhook gives that notice whoever hands it over.
    let direct = provider(Provider::Webhook, 200).await;
    sender_alone(&direct).send_notice(&notice("n-1")).await.expect("sent");
    assert_eq!(webhook_ids(&backup).await.last(), webhook_ids(&direct).await.last(), "the same idempotency key");
}

#[tokio::test]
async fn a_dead_provider_refusing_connections_is_passed_over_and_used_again_after_its_cool_down() {
    let backup = provider(Provider::Webhook, 200).await;
    let port = refused_port();
    let sender = failover(
        &format!("http://127.0.0.1:{port}"),
        &backup.uri(),
        &SmsMetrics::default(),
        Duration::from_millis(300),
    );
    for _ in 0..3 {
        sender.send_code(&sms(SmsPurpose::OtpSmsRegistration)).await.expect("through the second");
    }
    assert_eq!(seen(&backup).await, 3);

    // The first comes back on its address; after the cool-down it sends again.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
    let revived = MockServer::builder().listener(listener).start().await;
    let answer =
        ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SM0123456789abcdef0123456789abcdef"}));
    Mock::given(method("POST")).and(path_is(path(Provider::Twilio))).respond_with(answer).mount(&revived).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    sender.send_code(&sms(SmsPurpose::SignIn)).await.expect("sent");
    assert_eq!((seen(&revived).await, seen(&backup).await), (1, 3), "the first again, once it answers");
}

#[tokio::test]
async fn after_a_timeout_the_code_may_be_on_its_way_and_no_other_provider_sends_it() {
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_is(path(Provider::Twilio)))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(3)))
        .mount(&slow)
        .await;
    let backup = provider(Provider::Webhook, 200).await;
    let sender = failover(&slow.uri(), &backup.uri(), &SmsMetrics::default(), Duration::from_secs(60));

    sender.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("the first timed out");

    assert_eq!(seen(&backup).await, 0, "never a second code");
}

#[tokio::test]
async fn when_every_provider_is_skipped_they_are_still_tried_in_order() {
    let (first, second) = (provider(Provider::Twilio, 503).await, provider(Provider::Webhook, 503).await);
    let sender = failover(&first.uri(), &second.uri(), &SmsMetrics::default(), Duration::from_secs(60));
    for _ in 0..3 {
        sender.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("both down");
    }
    assert_eq!((seen(&first).await, seen(&second).await), (3, 3), "none is refused without a try");
}
