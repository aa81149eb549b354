//! The Twilio sender against a local stub of the Messages API: the exact request.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use common::{ACCOUNT_SID, AUTH_TOKEN, REMOVAL_NOTICE, TWILIO_FROM, notice, sms, timeouts, twilio};
use factors_adapters_sms::{Outcome, Provider, SmsMetrics, TwilioFrom, TwilioSender};
use factors_application::ports::{SmsPurpose, SmsSender};
use wiremock::matchers::{basic_auth, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn created() -> ResponseTemplate {
    // What Twilio answers: the queued message, repeating the number and the text.
    ResponseTemplate::new(201).set_body_json(serde_json::json!({
        "sid": "SM0123456789abcdef0123456789abcdef",
        "status": "queued",
        "to": common::NUMBER,
        "body": "739146 is your Acme sign-in code. Don't share it.",
    }))
}

async fn twilio_stub() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;
    server
}

/// The stub, a sender from `TWILIO_FROM` pointed at it (5 s timeouts), and the metrics that
/// sender counts in.
async fn stub_and_sender_from_the_number() -> (MockServer, TwilioSender, SmsMetrics) {
    let server = twilio_stub().await;
    let metrics = SmsMetrics::default();
    let sender = twilio(
        &server.uri(),
        TwilioFrom::Number(TWILIO_FROM.into()),
        timeouts(Duration::from_secs(5)),
        metrics.clone(),
    );
    (server, sender, metrics)
}

async fn the_one_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1);
    requests.remove(0)
}

fn form(request: &Request) -> HashMap<String, String> {
    assert_eq!(
        request.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded")
    );
    let body = String::from_utf8(request.body.clone()).expect("utf-8");
    let url = reqwest::Url::parse(&format!("http://form/?{body}")).expect("a form");
    let fields: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let map: HashMap<String, String> = fields.iter().cloned().collect();
    assert_eq!(map.len(), fields.len(), "no field twice: {fields:?}");
    map
}

#[tokio::test]
async fn a_code_goes_out_as_one_form_post_from_the_number() {
    let (server, sender, metrics) = stub_and_sender_from_the_number().await;

    sender.send_code(&sms(SmsPurpose::OtpSmsRegistration)).await.expect("sent");

    let request = the_one_request(&server).await;
    assert_eq!(request.url.path(), format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"));
    let expected_auth =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}")));
    assert_eq!(request.headers.get("authorization").and_then(|v| v.to_str().ok()), Some(expected_auth.as_str()));
    assert_eq!(
        form(&request),
        HashMap::from([
            ("To".to_owned(), "+41791234567".to_owned()),
            ("Body".to_owned(), "739146 is your Acme verification code. It expires in 10 minutes.".to_owned()),
            ("From".to_owned(), TWILIO_FROM.to_owned()),
        ])
    );
    assert_eq!(metrics.count(Provider::Twilio, Outcome::Sent), 1);
}

#[tokio::test]
async fn a_removal_notice_goes_out_as_one_form_post_with_the_notice_text() {
    let (server, sender, metrics) = stub_and_sender_from_the_number().await;

    sender.send_notice(&notice("outbox-7")).await.expect("sent");

    let request = the_one_request(&server).await;
    assert_eq!(
        form(&request),
        HashMap::from([
            ("To".to_owned(), "+41791234567".to_owned()),
            ("Body".to_owned(), REMOVAL_NOTICE.to_owned()),
            ("From".to_owned(), TWILIO_FROM.to_owned()),
        ])
    );
    assert_eq!(metrics.count(Provider::Twilio, Outcome::Sent), 1);
}

#[tokio::test]
async fn a_messaging_service_replaces_the_from_number() {
    let server = twilio_stub().await;
    let sender = twilio(
        &format!("{}/", server.uri()),
        TwilioFrom::MessagingService("MG0123456789abcdef0123456789abcdef".into()),
        timeouts(Duration::from_secs(5)),
        SmsMetrics::default(),
    );

    sender.send_code(&sms(SmsPurpose::SignIn)).await.expect("sent");

    let fields = form(&the_one_request(&server).await);
    assert_eq!(fields.get("MessagingServiceSid").map(String::as_str), Some("MG0123456789abcdef0123456789abcdef"));
    assert!(!fields.contains_key("From"), "{fields:?}");
    assert_eq!(fields.get("Body").map(String::as_str), Some("739146 is your Acme sign-in code. Don't share it."));
    assert!(fields.get("Body").is_some_and(|body| body.contains("739146")));
}

#[tokio::test]
async fn bad_settings_are_refused_when_the_sender_is_built() {
    use factors_adapters_sms::TwilioConfig;
    let texts = std::sync::Arc::new(common::texts());
    let config = |base_url: &str, sid: &str, from: &str| TwilioConfig {
        base_url: base_url.to_owned(),
        account_sid: sid.to_owned(),
        auth_token: AUTH_TOKEN.to_owned().into(),
        from: TwilioFrom::Number(from.to_owned()),
        timeouts: timeouts(Duration::from_secs(1)),
    };
    for (base_url, sid, from, expected) in [
        ("ftp://api.twilio.com", ACCOUNT_SID, TWILIO_FROM, "base URL"),
        ("not a url", ACCOUNT_SID, TWILIO_FROM, "base URL"),
        ("https://api.twilio.com", "AC/../x", TWILIO_FROM, "account SID"),
        ("https://api.twilio.com", ACCOUNT_SID, " ", "sender"),
    ] {
        let refused = TwilioSender::new(config(base_url, sid, from), texts.clone(), SmsMetrics::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains(expected), "{base_url} {sid} {from}: {refused}");
    }
    let debug = format!("{:?}", config("https://api.twilio.com", ACCOUNT_SID, TWILIO_FROM));
    assert!(!debug.contains(AUTH_TOKEN), "{debug}");
}
