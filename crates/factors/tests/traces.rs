//! Traces, as a collector receives them: the service set up as `factors serve` sets it up
//! (`telemetry.otlp.endpoint` pointing at an OTLP receiver run here, the collector's own
//! protobuf service through tonic), on PostgreSQL with Redis and an SMS webhook; requests
//! that carry a W3C `traceparent`; then the spans read back.
//!
//! Its own test binary: the trace pipeline is the process's global subscriber.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factors::{Application, Environment, Settings};
use factors_testing::{TestDatabase, TestRedis};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PHONE: &str = "+41791234567";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SERVICE: &str = "zitadel.resources.user.v3alpha.ZITADELUsers";

/// The receiver: every export, as sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().expect("not poisoned").push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Collector {
    async fn start(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("bound");
        let router = tonic::service::Routes::new(TraceServiceServer::new(self)).into_axum_router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}")
    }

    fn exports(&self) -> Vec<ExportTraceServiceRequest> {
        self.0.lock().expect("not poisoned").clone()
    }

    /// The spans of trace `trace_id` received so far.
    fn spans_of(&self, trace_id: &[u8]) -> Vec<Span> {
        self.exports()
            .iter()
            .flat_map(|export| &export.resource_spans)
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).map(text)
}

/// A W3C `traceparent` of a sampled remote span, with its trace and span ids.
fn traceparent(seed: u8) -> (String, Vec<u8>, Vec<u8>) {
    let trace_id: Vec<u8> = (0..16).map(|i| seed.wrapping_mul(31).wrapping_add(i * 7 + 1)).collect();
    let span_id: Vec<u8> = (0..8).map(|i| seed.wrapping_mul(17).wrapping_add(i * 3 + 2)).collect();
    (format!("00-{}-{}-01", hex(&trace_id), hex(&span_id)), trace_id, span_id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until trace `trace_id` holds a span named `name`, flushing the exporter.
async fn until_span(
    collector: &Collector,
    telemetry: &factors::telemetry::Telemetry,
    trace_id: &[u8],
    name: &str,
) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        telemetry.flush();
        let spans = collector.spans_of(trace_id);
        if spans.iter().any(|s| s.name == name) {
            return spans;
        }
        assert!(Instant::now() < deadline, "no span {name:?} in the trace within 15 s; got {:?}", names(&spans));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name:?} in {:?}", names(spans)))
}

/// Whether `span` descends from `ancestor` within `spans`.
fn descends_from(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let mut parent = span.parent_span_id.clone();
    while !parent.is_empty() {
        if parent == ancestor.span_id {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(next) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_is_one_trace_from_the_callers_span_through_the_use_case_to_the_store_and_redis_with_nothing_secret()
{
    let database = TestDatabase::new().await;
    let redis = TestRedis::new().await;
    let collector = Collector::default();
    let endpoint = collector.clone().start().await;
    let webhook = MockServer::start().await;
    Mock::given(method("POST")).and(path("/sms")).respond_with(ResponseTemplate::new(200)).mount(&webhook).await;

    let variables = std::collections::HashMap::from([
        ("FACTORS__DATABASE__URL".to_owned(), database.url().to_owned()),
        ("FACTORS__REDIS__URL".to_owned(), redis.url().to_owned()),
        ("FACTORS__REDIS__KEY_PREFIX".to_owned(), redis.prefix().to_owned()),
        // Without the in-process tier every read of a user asks Redis, as a replica
        // among several mostly does.
        ("FACTORS__CACHE__LOCAL_BYTES".to_owned(), "0".to_owned()),
        ("FACTORS__SMS__PROVIDER".to_owned(), "webhook".to_owned()),
        ("FACTORS__SMS__WEBHOOK__URL".to_owned(), format!("{}/sms", webhook.uri())),
        ("FACTORS__SMS__WEBHOOK__SECRET".to_owned(), WEBHOOK_SECRET.to_owned()),
        ("FACTORS__TELEMETRY__OTLP__ENDPOINT".to_owned(), endpoint),
        ("FACTORS__TELEMETRY__SERVICE_NAME".to_owned(), "factors-under-test".to_owned()),
        ("FACTORS__TELEMETRY__RESOURCE_ATTRIBUTES".to_owned(), "deployment.environment.name=test".to_owned()),
    ]);
    let loaded = Settings::load_with(Environment::Test, Some(variables)).expect("settings");
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    let settings = loaded.settings;
    let telemetry = factors::telemetry::init_with_traces(&settings.log, &settings.telemetry).expect("traces set up");
    assert!(telemetry.traces(), "this test's process installs the first subscriber");
    let app = Application::build(&settings).await.expect("builds");
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let admin = common::admin_token(&settings);

    // A user, and an authenticator added unverified: its code goes to the webhook.
    common::create_user(&client, &base, &admin, "traced").await;
    let (add_parent, add_trace, _) = traceparent(1);
    let added: serde_json::Value = client
        .post(format!("{base}/resources/v3alpha/users/traced/otp_sms"))
        .bearer_auth(&admin)
        .header("traceparent", &add_parent)
        .json(&serde_json::json!({"number": PHONE}))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    let otp = added["otpSmsId"].as_str().unwrap_or_else(|| panic!("an id in {added}")).to_owned();

    // The removal, in a trace the caller began.
    let (remove_parent, remove_trace, remote_span) = traceparent(2);
    let removed = client
        .delete(format!("{base}/resources/v3alpha/users/traced/otp_sms/{otp}"))
        .bearer_auth(&admin)
        .header("traceparent", &remove_parent)
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .expect("answers");
    assert_eq!(removed.status().as_u16(), 200);
    let request_id = removed.headers()["x-request-id"].to_str().expect("ASCII").to_owned();

    // GetUser over Connect, in a third trace.
    let (connect_parent, connect_trace, _) = traceparent(3);
    let got = client
        .post(format!("{base}/{SERVICE}/GetUser"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .header("traceparent", &connect_parent)
        .body(serde_json::json!({"id": "traced"}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(got.status().as_u16(), 200);

    // The removal's trace.
    let route = "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}";
    let spans = until_span(&collector, &telemetry, &remove_trace, &format!("DELETE {route}")).await;
    let request = named(&spans, &format!("DELETE {route}"));
    assert_eq!(request.parent_span_id, remote_span, "the request's parent is the caller's span");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(attribute(&request.attributes, "http.request.method").as_deref(), Some("DELETE"));
    assert_eq!(attribute(&request.attributes, "http.route").as_deref(), Some(route));
    assert_eq!(attribute(&request.attributes, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attribute(&request.attributes, "request_id").as_deref(), Some(request_id.as_str()), "the request id");
    assert_eq!(attribute(&request.attributes, "trace_id"), Some(hex(&remove_trace)), "the trace id, as logged");
    let use_case = named(&spans, "remove_otp_sms");
    assert_eq!(use_case.parent_span_id, request.span_id, "the use case runs in the request");
    let postgres: Vec<&Span> =
        spans.iter().filter(|s| attribute(&s.attributes, "db.system.name").as_deref() == Some("postgresql")).collect();
    assert!(!postgres.is_empty(), "store spans: {:?}", names(&spans));
    for span in &postgres {
        assert!(descends_from(&spans, span, use_case), "{} under the use case", span.name);
        assert_eq!(span.kind, SpanKind::Client as i32, "{}", span.name);
    }
    assert!(
        spans.iter().any(|s| attribute(&s.attributes, "db.system.name").as_deref() == Some("redis")
            && descends_from(&spans, s, use_case)),
        "a Redis span under the use case: {:?}",
        names(&spans)
    );
    assert!(spans.iter().all(|s| s.span_id == request.span_id || descends_from(&spans, s, request)), "one tree");

    // The add's trace reaches the webhook: the SMS send is a client span, and the
    // webhook's request carries it as its parent.
    let spans = until_span(&collector, &telemetry, &add_trace, "sms.send webhook").await;
    let send = named(&spans, "sms.send webhook");
    assert_eq!(send.kind, SpanKind::Client as i32);
    assert_eq!(attribute(&send.attributes, "http.response.status_code").as_deref(), Some("200"));
    assert!(descends_from(&spans, send, named(&spans, "add_otp_sms")), "the send runs in the use case");
    let delivered = webhook.received_requests().await.expect("recorded");
    let sent = delivered.last().expect("the code was sent");
    let header = sent.headers.get("traceparent").expect("the trace context goes on").to_str().expect("ASCII");
    assert_eq!(header, format!("00-{}-{}-01", hex(&add_trace), hex(&send.span_id)));
    let sms: serde_json::Value = serde_json::from_slice(&sent.body).expect("JSON");
    let sms_text = sms["text"].as_str().expect("a text").to_owned();
    let code: String = sms_text.chars().filter(char::is_ascii_digit).collect();
    assert!(code.len() >= 6, "the code in {sms_text:?}");

    // Connect: the RPC's names.
    let spans = until_span(&collector, &telemetry, &connect_trace, &format!("{SERVICE}/GetUser")).await;
    let call = named(&spans, &format!("{SERVICE}/GetUser"));
    assert_eq!(attribute(&call.attributes, "rpc.system").as_deref(), Some("connect_rpc"));
    assert_eq!(attribute(&call.attributes, "rpc.service").as_deref(), Some(SERVICE));
    assert_eq!(attribute(&call.attributes, "rpc.method").as_deref(), Some("GetUser"));
    assert!(spans.iter().any(|s| s.name == "get_user" && s.parent_span_id == call.span_id), "{:?}", names(&spans));

    // Everything received: the resource, and nothing secret anywhere.
    let exports = collector.exports();
    let roots = exports.iter().flat_map(|e| &e.resource_spans).flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
    for root in roots.filter(|s| s.parent_span_id.is_empty()) {
        assert!(root.name.contains(' ') || root.name.contains('/'), "{} begins a trace: only requests do", root.name);
    }
    let resource = exports[0].resource_spans[0].resource.as_ref().expect("a resource");
    assert_eq!(attribute(&resource.attributes, "service.name").as_deref(), Some("factors-under-test"));
    assert_eq!(attribute(&resource.attributes, "deployment.environment.name").as_deref(), Some("test"));
    let mut values = Vec::new();
    for resource_spans in exports.iter().flat_map(|e| &e.resource_spans) {
        let spans = resource_spans.scope_spans.iter().flat_map(|s| &s.spans);
        for span in spans {
            values.push(span.name.clone());
            values.extend(span.attributes.iter().filter_map(|kv| kv.value.as_ref()).map(text));
            values.extend(span.events.iter().flat_map(|e| &e.attributes).filter_map(|kv| kv.value.as_ref()).map(text));
        }
    }
    let signature = admin.rsplit('.').next().expect("a JWT");
    for value in &values {
        // "+41" catches a masked number as well as the number.
        for secret in [&admin[..], signature, "+41", "791234567", WEBHOOK_SECRET, &sms_text] {
            assert!(!value.contains(secret), "{value:?} shows a secret");
        }
        assert_ne!(value, &code, "the code");
    }

    let _ = stop.send(());
    running.await.expect("joined").expect("stopped cleanly");
    telemetry.shutdown();
}
