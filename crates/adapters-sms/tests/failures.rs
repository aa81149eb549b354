//! How both HTTP providers fail: every failure is an error that shows neither the code,
//! the number nor the provider's answer, is counted by outcome, and follows exactly one
//! request: nothing is ever sent twice.

mod common;

use std::time::{Duration, Instant};

use common::{
    Misbehaviour, PROVIDER_SAYS, RawProvider, assert_discreet, everything_said, notice, path, sender, sms, timeouts,
};
use factors_adapters_sms::{LogSender, Outcome, Provider, SmsMetrics};
use factors_application::ports::{SmsPurpose, SmsSender};
use prometheus_client::registry::Registry;
use wiremock::matchers::{method, path as path_is};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PROVIDERS: [Provider; 2] = [Provider::Twilio, Provider::Webhook];

/// A stub that answers every post to the provider's path with `answer`, and must see it
/// exactly once.
async fn stub(provider: Provider, answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path_is(path(provider))).respond_with(answer).expect(1).mount(&server).await;
    server
}

async fn requests_seen(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |requests| requests.len())
}

#[tokio::test]
async fn a_4xx_is_a_rejection_sent_once_and_worded_without_the_answer() {
    for provider in PROVIDERS {
        let answer = ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "code": 21211, "message": PROVIDER_SAYS, "status": 400
        }));
        let server = stub(provider, answer).await;
        let metrics = SmsMetrics::default();
        let sender = sender(provider, &server.uri(), timeouts(Duration::from_secs(5)), metrics.clone());

        let error = sender.send_code(&sms(SmsPurpose::OtpSmsRegistration)).await.expect_err("refused");

        assert_eq!(requests_seen(&server).await, 1, "{provider:?}");
        assert_discreet(&error);
        let said = everything_said(&error);
        assert!(said.contains("refused the SMS (HTTP 400"), "{provider:?}: {said}");
        assert_eq!(metrics.count(provider, Outcome::Rejected), 1, "{provider:?}");
        assert_eq!(metrics.count(provider, Outcome::Sent), 0, "{provider:?}");
    }
}

#[tokio::test]
async fn twilio_error_numbers_are_kept_and_its_message_is_not() {
    let answer = ResponseTemplate::new(401).set_body_json(serde_json::json!({
        "code": 20003, "message": PROVIDER_SAYS, "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401
    }));
    let server = stub(Provider::Twilio, answer).await;
    let sender = sender(Provider::Twilio, &server.uri(), timeouts(Duration::from_secs(5)), SmsMetrics::default());

    let error = sender.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("refused");

    let said = everything_said(&error);
    assert!(said.contains("Twilio refused the SMS (HTTP 401, provider error 20003)"), "{said}");
    assert!(!said.contains("twilio.com/docs"), "{said}");
    assert_discreet(&error);
}

#[tokio::test]
async fn a_5xx_is_a_failure_sent_once() {
    for provider in PROVIDERS {
        let server = stub(provider, ResponseTemplate::new(503).set_body_string(PROVIDER_SAYS)).await;
        let metrics = SmsMetrics::default();
        let sender = sender(provider, &server.uri(), timeouts(Duration::from_secs(5)), metrics.clone());

        let error = sender.send_code(&sms(SmsPurpose::ContactPhone)).await.expect_err("failed");

        assert_eq!(requests_seen(&server).await, 1, "{provider:?}");
        assert_discreet(&error);
        assert!(everything_said(&error).contains("failed to take the SMS (HTTP 503)"), "{provider:?}");
        assert_eq!(metrics.count(provider, Outcome::Failed), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn a_notice_fails_as_a_code_does_after_one_request() {
    for provider in PROVIDERS {
        let cases = [
            (
                ResponseTemplate::new(400).set_body_string(PROVIDER_SAYS),
                Outcome::Rejected,
                "refused the SMS (HTTP 400)",
            ),
            (
                ResponseTemplate::new(503).set_body_string(PROVIDER_SAYS),
                Outcome::Failed,
                "failed to take the SMS (HTTP 503)",
            ),
        ];
        for (answer, outcome, said) in cases {
            let server = stub(provider, answer).await;
            let metrics = SmsMetrics::default();
            let sender = sender(provider, &server.uri(), timeouts(Duration::from_secs(5)), metrics.clone());

            let error = sender.send_notice(&notice("outbox-7")).await.expect_err("not taken");

            assert_eq!(requests_seen(&server).await, 1, "{provider:?}: the sender does not try again");
            assert!(everything_said(&error).contains(said), "{provider:?}: {}", everything_said(&error));
            assert_discreet(&error);
            assert_eq!(metrics.count(provider, outcome), 1, "{provider:?}");
        }

        let metrics = SmsMetrics::default();
        let base = format!("http://127.0.0.1:{}", common::refused_port());
        let error = sender(provider, &base, timeouts(Duration::from_secs(5)), metrics.clone())
            .send_notice(&notice("outbox-7"))
            .await
            .expect_err("nobody listens");
        assert!(everything_said(&error).contains("the request to"), "{provider:?}");
        assert_discreet(&error);
        assert_eq!(metrics.count(provider, Outcome::Failed), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    for provider in PROVIDERS {
        let server = MockServer::start().await;
        let elsewhere = format!("{}/elsewhere", server.uri());
        Mock::given(method("POST"))
            .and(path_is(path(provider)))
            .respond_with(ResponseTemplate::new(307).insert_header("location", elsewhere.as_str()))
            .expect(1)
            .mount(&server)
            .await;
        let metrics = SmsMetrics::default();
        let sender = sender(provider, &server.uri(), timeouts(Duration::from_secs(5)), metrics.clone());

        let error = sender.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("not followed");

        assert_eq!(requests_seen(&server).await, 1, "{provider:?}: the message was posted once, not again elsewhere");
        assert!(everything_said(&error).contains("HTTP 307"), "{provider:?}");
        assert_eq!(metrics.count(provider, Outcome::Failed), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn a_slow_provider_times_out_in_about_the_timeout_and_is_not_asked_again() {
    for provider in PROVIDERS {
        let slow = ResponseTemplate::new(201)
            .set_body_json(serde_json::json!({"sid": "SM1"}))
            .set_delay(Duration::from_secs(5));
        let server = stub(provider, slow).await;
        let metrics = SmsMetrics::default();
        let timeout = Duration::from_millis(400);
        let sender = sender(provider, &server.uri(), timeouts(timeout), metrics.clone());

        let started = Instant::now();
        let error = sender.send_code(&sms(SmsPurpose::OtpSmsRegistration)).await.expect_err("too slow");
        let took = started.elapsed();

        assert!(took >= Duration::from_millis(350) && took < Duration::from_millis(1500), "{provider:?}: {took:?}");
        let said = everything_said(&error);
        assert!(said.contains("did not answer within 400ms"), "{provider:?}: {said}");
        assert_discreet(&error);
        assert_eq!(metrics.count(provider, Outcome::Timeout), 1, "{provider:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(requests_seen(&server).await, 1, "{provider:?}: no second try after the timeout");
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_failure() {
    for provider in PROVIDERS {
        let metrics = SmsMetrics::default();
        let base = format!("http://127.0.0.1:{}", common::refused_port());
        let sender = sender(provider, &base, timeouts(Duration::from_secs(5)), metrics.clone());

        let started = Instant::now();
        let error = sender.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("refused");

        assert!(started.elapsed() < Duration::from_secs(2), "{provider:?}");
        let said = everything_said(&error);
        assert!(said.contains("the request to"), "{provider:?}: {said}");
        // The address connected to may show; the URL (its path may hold a credential) not.
        assert!(!said.contains(&path(provider)), "{provider:?}: the URL stays out of errors: {said}");
        assert_discreet(&error);
        assert_eq!(metrics.count(provider, Outcome::Failed), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn a_connection_closed_before_the_answer_or_a_garbled_answer_fails_after_one_request() {
    for provider in PROVIDERS {
        for misbehaviour in [|_| Misbehaviour::Close, |_| Misbehaviour::Garbage] as [fn(usize) -> Misbehaviour; 2] {
            let raw = RawProvider::start(misbehaviour).await;
            let metrics = SmsMetrics::default();
            let sender = sender(provider, &raw.base, timeouts(Duration::from_secs(5)), metrics.clone());

            let error = sender.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("no answer");

            tokio::time::sleep(Duration::from_millis(200)).await;
            let what = misbehaviour(0);
            assert_eq!((raw.requests(), raw.connections()), (1, 1), "{provider:?}, {what:?}");
            assert_discreet(&error);
            assert_eq!(metrics.count(provider, Outcome::Failed), 1, "{provider:?}, {what:?}");
        }
    }
}

#[tokio::test]
async fn a_kept_alive_connection_closed_after_the_request_is_not_asked_again() {
    // The first SMS goes through and its connection is kept; the provider reads the
    // second request on it and hangs up. The connection pool may only open a new
    // connection for a request that was never written; this one was.
    for provider in PROVIDERS {
        let raw = RawProvider::start(|n| if n == 0 { Misbehaviour::Accept } else { Misbehaviour::Close }).await;
        let sender = sender(provider, &raw.base, timeouts(Duration::from_secs(5)), SmsMetrics::default());

        sender.send_code(&sms(SmsPurpose::SignIn)).await.expect("the first goes through");
        sender.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("the second gets no answer");

        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(raw.requests(), 2, "{provider:?}: each SMS was posted once");
        assert_eq!(raw.connections(), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn every_outcome_is_counted_in_the_registry() {
    let mut registry = Registry::default();
    let metrics = SmsMetrics::register(&mut registry);
    let accepted = stub(Provider::Webhook, ResponseTemplate::new(204)).await;
    let refused = stub(Provider::Webhook, ResponseTemplate::new(403)).await;
    let broken = stub(Provider::Twilio, ResponseTemplate::new(500)).await;
    let ok = sender(Provider::Webhook, &accepted.uri(), timeouts(Duration::from_secs(5)), metrics.clone());
    let no = sender(Provider::Webhook, &refused.uri(), timeouts(Duration::from_secs(5)), metrics.clone());
    let down = sender(Provider::Twilio, &broken.uri(), timeouts(Duration::from_secs(5)), metrics.clone());

    ok.send_code(&sms(SmsPurpose::SignIn)).await.expect("sent");
    no.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("refused");
    down.send_code(&sms(SmsPurpose::SignIn)).await.expect_err("failed");
    LogSender::new(metrics.clone()).send_code(&sms(SmsPurpose::SignIn)).await.expect("logged");

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    for line in [
        r#"factors_sms_sent_total{provider="webhook",outcome="sent"} 1"#,
        r#"factors_sms_sent_total{provider="webhook",outcome="rejected"} 1"#,
        r#"factors_sms_sent_total{provider="twilio",outcome="failed"} 1"#,
        r#"factors_sms_sent_total{provider="log",outcome="sent"} 1"#,
        r#"factors_sms_send_duration_seconds_count{provider="webhook",outcome="sent"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

/// Collects what the senders log.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_show_the_masked_number_and_never_the_code_the_number_or_a_credential() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    for provider in PROVIDERS {
        let accepted = stub(provider, ResponseTemplate::new(201).set_body_string(PROVIDER_SAYS)).await;
        let refused = stub(provider, ResponseTemplate::new(400).set_body_string(PROVIDER_SAYS)).await;
        let metrics = SmsMetrics::default();
        let five = timeouts(Duration::from_secs(5));
        sender(provider, &accepted.uri(), five, metrics.clone())
            .send_code(&sms(SmsPurpose::SignIn))
            .await
            .expect("sent");
        sender(provider, &refused.uri(), five, metrics).send_code(&sms(SmsPurpose::SignIn)).await.expect_err("refused");
    }
    LogSender::default().send_code(&sms(SmsPurpose::SignIn)).await.expect("logged");
    let codes_logged = captured.0.lock().expect("lock").len();
    for provider in PROVIDERS {
        let accepted = stub(provider, ResponseTemplate::new(201).set_body_string(PROVIDER_SAYS)).await;
        let refused = stub(provider, ResponseTemplate::new(400).set_body_string(PROVIDER_SAYS)).await;
        let five = timeouts(Duration::from_secs(5));
        sender(provider, &accepted.uri(), five, SmsMetrics::default())
            .send_notice(&notice("outbox-7"))
            .await
            .expect("sent");
        sender(provider, &refused.uri(), five, SmsMetrics::default())
            .send_notice(&notice("outbox-7"))
            .await
            .expect_err("refused");
    }
    LogSender::default().send_notice(&notice("outbox-7")).await.expect("logged");

    let logged = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logged.contains("+41******567"), "{logged}");
    assert!(logged.contains("SMS handed to the provider") && logged.contains("SMS not sent"), "{logged}");
    let notices_logged = &logged[codes_logged..];
    assert_eq!(notices_logged.matches("removal_notice").count(), 5, "each notice names its purpose: {notices_logged}");
    assert!(notices_logged.contains("notice SMS not sent: no SMS provider is configured"), "{notices_logged}");
    assert!(!logged.contains("A phone number was removed"), "the text stays out of the log: {logged}");
    for secret in
        ["739146", common::NUMBER, "791234567", "PROVIDER-SAYS", common::AUTH_TOKEN, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    {
        assert!(!logged.contains(secret), "the log shows {secret:?}:\n{logged}");
    }
}
