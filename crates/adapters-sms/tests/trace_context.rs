//! The trace context goes on to both HTTP providers: each send is a span of the trace
//! that asked for it, and its request carries that span as the W3C `traceparent` parent.

mod common;

use common::{path, sender, sms, timeouts};
use factors_adapters_sms::{Provider, SmsMetrics};
use factors_application::ports::SmsPurpose;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use wiremock::matchers::{method, path as path_is};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn twilio_and_the_webhook_get_the_senders_span_as_their_traceparent() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    for sms_provider in [Provider::Twilio, Provider::Webhook] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path_is(path(sms_provider)))
            .respond_with(ResponseTemplate::new(201))
            .mount(&server)
            .await;
        let caller = tracing::info_span!("caller");
        let trace_id = caller.context().span().span_context().trace_id();
        sender(sms_provider, &server.uri(), timeouts(std::time::Duration::from_secs(5)), SmsMetrics::default())
            .send_code(&sms(SmsPurpose::SignIn))
            .instrument(caller)
            .await
            .expect("sent");

        let received = server.received_requests().await.expect("recorded");
        let header = received[0].headers.get("traceparent").expect("a traceparent").to_str().expect("ASCII");
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!(parts[1], trace_id.to_string(), "{sms_provider:?}: the caller's trace");
        assert_ne!(parts[2], "0000000000000000", "{sms_provider:?}: a parent span");
    }
}

#[tokio::test]
async fn without_traces_nothing_is_added() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_is(path(Provider::Webhook)))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    sender(Provider::Webhook, &server.uri(), timeouts(std::time::Duration::from_secs(5)), SmsMetrics::default())
        .send_code(&sms(SmsPurpose::SignIn))
        .await
        .expect("sent");
    let received = server.received_requests().await.expect("recorded");
    assert!(received[0].headers.get("traceparent").is_none());
}
