//! The request span's part in a trace, when the binary exports traces ([`enable`]): the
//! caller's W3C `traceparent`/`tracestate` as its parent, a name and attributes after
//! OpenTelemetry's semantic conventions (`http.*`, and `rpc.*` for gRPC, gRPC-web and
//! Connect, which share the port), and the trace id in the logs beside the request id.
//! Off, none of this runs: the request span is the log's alone.
//!
//! Attributes go to the trace only (`set_attribute`), never into the span's fields, so the
//! log lines stay as they are; only `otel.*` and `trace_id` are fields, and only when on.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::Request;
use axum::response::Response;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry_http::HeaderExtractor;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the trace part of request spans on, for the process (the binary calls it once
/// the trace pipeline is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// An RPC's names, from its path (`/{service}/{method}`) and content type.
struct Rpc<'a> {
    system: &'static str,
    service: &'a str,
    method: &'a str,
}

impl<'a> Rpc<'a> {
    fn of(request: &'a Request, route: &str) -> Option<Self> {
        if !route.ends_with("/{method}") {
            return None;
        }
        let (service, method) = request.uri().path().strip_prefix('/')?.split_once('/')?;
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        Some(Self { system: if grpc { "grpc" } else { "connect_rpc" }, service, method })
    }
}

/// The request span of a traced process.
pub(crate) fn request_span(request: &Request, route: &str, request_id: &str) -> Span {
    let method = request.method().as_str();
    let rpc = Rpc::of(request, route);
    let name = match &rpc {
        Some(rpc) => format!("{}/{}", rpc.service, rpc.method),
        None => format!("{method} {route}"),
    };
    let span = tracing::info_span!(
        "request",
        method,
        route,
        request_id,
        trace_id = Empty,
        otel.name = name,
        otel.kind = "server",
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    // Only fails when the span is disabled, and then there is nothing to trace.
    let _ = span.set_parent(parent);
    span.set_attribute("http.request.method", method.to_owned());
    span.set_attribute("http.route", route.to_owned());
    if let Some(rpc) = rpc {
        span.set_attribute("rpc.system", rpc.system);
        span.set_attribute("rpc.service", rpc.service.to_owned());
        span.set_attribute("rpc.method", rpc.method.to_owned());
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}

/// The answer's part: its status, and the span's error status for a server failure.
pub(crate) fn record_response(span: &Span, response: &Response) {
    let status = response.status().as_u16();
    span.set_attribute("http.response.status_code", i64::from(status));
    let grpc_status =
        response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    if let Some(code) = grpc_status {
        span.set_attribute("rpc.grpc.status_code", code);
    }
    // Server spans fail on 5xx (and gRPC's server-side codes); a 4xx is the caller's.
    let failed = status >= 500 || grpc_status.is_some_and(|c| matches!(c, 2 | 4 | 12 | 13 | 14 | 15));
    if failed {
        span.set_status(Status::error(format!("answered {status}")));
    }
}
