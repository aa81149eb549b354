//! The webhook sender against a local receiver: the exact JSON and headers, and the
//! signature as a receiver checks it.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{REMOVAL_NOTICE, WEBHOOK_SECRET, notice, sms, timeouts, webhook, webhook_secret};
use factors_adapters_sms::{Outcome, Provider, SmsMetrics, WebhookSecret, verify_signature};
use factors_application::ports::{SmsPurpose, SmsSender};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/sms"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

fn header_of<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording")
}

#[tokio::test]
async fn a_code_goes_out_as_one_signed_json_post() {
    let server = receiver().await;
    let metrics = SmsMetrics::default();
    let sender = webhook(&format!("{}/hooks/sms", server.uri()), timeouts(Duration::from_secs(5)), metrics.clone());

    sender.send_code(&sms(SmsPurpose::ContactPhone)).await.expect("sent");

    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({
            "type": "sms.code",
            "to": "+41791234567",
            "text": "739146 is your Acme code to confirm this phone number. It expires in 10 minutes.",
            "purpose": "contact_phone",
            "userId": "user-1",
        })
    );
    let raw = String::from_utf8(request.body.clone()).expect("utf-8");
    assert_eq!(raw.matches("739146").count(), 1, "the code is in the text only: {raw}");

    let id = header_of(request, "webhook-id");
    assert!(id.starts_with("msg_") && id.len() > 20, "{id}");
    let timestamp = header_of(request, "webhook-timestamp");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let sent_at: u64 = timestamp.parse().expect("unix seconds");
    assert!(now.abs_diff(sent_at) <= 5, "{sent_at} vs {now}");
    let signature = header_of(request, "webhook-signature");

    // As documented: v1,<base64 of HMAC-SHA256(decoded whsec_ key, "id.timestamp.body")>.
    let key =
        base64::engine::general_purpose::STANDARD.decode(WEBHOOK_SECRET.trim_start_matches("whsec_")).expect("base64");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(signature, expected);

    let secret = webhook_secret();
    assert!(verify_signature(&secret, id, timestamp, &request.body, signature));
    let mut tampered = request.body.clone();
    tampered[10] ^= 1;
    assert!(!verify_signature(&secret, id, timestamp, &tampered, signature), "a tampered body");
    let later = (sent_at + 1).to_string();
    assert!(!verify_signature(&secret, id, &later, &request.body, signature), "another timestamp");
    assert!(!verify_signature(&secret, "msg_other", timestamp, &request.body, signature), "another id");
    let other = WebhookSecret::parse("another secret, long enough to be a key").expect("valid");
    assert!(!verify_signature(&other, id, timestamp, &request.body, signature), "another secret");

    assert_eq!(metrics.count(Provider::Webhook, Outcome::Sent), 1);
}

#[tokio::test]
async fn each_sms_has_its_own_id_and_names_its_purpose() {
    let server = receiver().await;
    let sender =
        webhook(&format!("{}/hooks/sms", server.uri()), timeouts(Duration::from_secs(5)), SmsMetrics::default());

    sender.send_code(&sms(SmsPurpose::OtpSmsRegistration)).await.expect("sent");
    sender.send_code(&sms(SmsPurpose::SignIn)).await.expect("sent");

    let requests = received(&server).await;
    assert_eq!(requests.len(), 2);
    assert_ne!(header_of(&requests[0], "webhook-id"), header_of(&requests[1], "webhook-id"));
    let purposes: Vec<serde_json::Value> =
        requests.iter().map(|r| r.body_json::<serde_json::Value>().expect("JSON")["purpose"].clone()).collect();
    assert_eq!(purposes, [serde_json::json!("registration"), serde_json::json!("sign_in")]);
    let sign_in: serde_json::Value = requests[1].body_json().expect("JSON");
    assert_eq!(sign_in["text"], "739146 is your Acme sign-in code. Don't share it.");
}

#[tokio::test]
async fn a_raw_secret_signs_with_its_bytes() {
    let server = receiver().await;
    let raw = "a raw secret of at least 32 bytes, no prefix";
    let config = factors_adapters_sms::WebhookConfig {
        url: format!("{}/hooks/sms", server.uri()),
        secret: WebhookSecret::parse(raw).expect("valid"),
        timeouts: timeouts(Duration::from_secs(5)),
    };
    let sender =
        factors_adapters_sms::WebhookSender::new(config, std::sync::Arc::new(common::texts()), SmsMetrics::default())
            .expect("valid");

    sender.send_code(&sms(SmsPurpose::SignIn)).await.expect("sent");

    let request = &received(&server).await[0];
    let (id, timestamp) = (header_of(request, "webhook-id"), header_of(request, "webhook-timestamp"));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(raw.as_bytes()).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(header_of(request, "webhook-signature"), expected);
}

#[tokio::test]
async fn a_removal_notice_keeps_its_webhook_id_on_every_try_and_another_notice_gets_another() {
    let server = receiver().await;
    let metrics = SmsMetrics::default();
    let sender = webhook(&format!("{}/hooks/sms", server.uri()), timeouts(Duration::from_secs(5)), metrics.clone());

    sender.send_notice(&notice("outbox-7")).await.expect("sent");
    // As the outbox does when it stopped before recording the first try.
    sender.send_notice(&notice("outbox-7")).await.expect("sent again");
    sender.send_notice(&notice("outbox-8")).await.expect("sent");
    // Outbox ids need not be fit for a header.
    sender.send_notice(&notice("queue:9 \u{e9}t\u{e9}\n\"x\"")).await.expect("sent");

    let requests = received(&server).await;
    assert_eq!(requests.len(), 4);
    let secret = webhook_secret();
    for request in &requests {
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({
                "type": "sms.notice",
                "to": "+41791234567",
                "text": REMOVAL_NOTICE,
                "purpose": "removal_notice",
                "userId": "user-1",
            })
        );
        let (id, timestamp) = (header_of(request, "webhook-id"), header_of(request, "webhook-timestamp"));
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        let signature = header_of(request, "webhook-signature");
        assert!(verify_signature(&secret, id, timestamp, &request.body, signature), "the signature verifies");
    }
    let ids: Vec<&str> = requests.iter().map(|r| header_of(r, "webhook-id")).collect();
    assert_eq!(ids[0], ids[1], "one notice, tried twice, is one message to the receiver");
    assert_ne!(ids[0], ids[2], "another notice is another message");
    assert_ne!(ids[3], ids[0]);
    assert_eq!(metrics.count(Provider::Webhook, Outcome::Sent), 4);

    sender.send_code(&sms(SmsPurpose::SignIn)).await.expect("sent");
    sender.send_code(&sms(SmsPurpose::SignIn)).await.expect("sent");
    let requests = received(&server).await;
    assert_ne!(
        header_of(&requests[4], "webhook-id"),
        header_of(&requests[5], "webhook-id"),
        "codes keep ids of their own"
    );
}
