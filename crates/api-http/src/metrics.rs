//! Request metrics (counts and latency by method, route and status) and the `/metrics`
//! endpoint that renders the whole registry in the Prometheus text format.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use factors_wire::rpc::rpc_of_path;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    /// The HTTP status, or `grpc-<code>` when the answer carries a gRPC status.
    status: String,
}

/// Methods as labels: anything unusual is `other`, so clients cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 7] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
    ];
    KNOWN.iter().find(|(m, _)| m == method).map_or("other", |(_, label)| *label)
}

/// The route as a label: the matched template, except that calls of a service's RPCs
/// (gRPC, gRPC-web, Connect) are told apart by RPC when the RPC is one it declares.
fn route_label(template: &str, path: &str) -> String {
    match rpc_of_path(path) {
        Some((service, _)) if is_service_route(template, service.name) => path.to_owned(),
        _ => template.to_owned(),
    }
}

/// Whether a route template is the one of `service`'s calls (`/<service>/{method}`).
fn is_service_route(template: &str, service: &str) -> bool {
    template.strip_prefix('/').and_then(|t| t.strip_prefix(service)).is_some_and(|t| t.starts_with('/'))
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Handles to the request metrics.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        };
        registry.register(
            "factors_http_requests",
            "HTTP requests, by method, route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "factors_http_request_duration_seconds",
            "HTTP request latency, by method, route and status",
            metrics.latency.clone(),
        );
        metrics
    }
}

/// The registry `/metrics` renders, complete before the server starts.
#[derive(Debug, Clone)]
pub struct MetricsRegistry(pub Arc<Registry>);

/// Records one request. Routes are the matched templates, so ids never become labels.
pub async fn record(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let template = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let route = route_label(template, request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = match response.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
        Some(code) => format!("grpc-{code}"),
        None => response.status().as_u16().to_string(),
    };
    let labels = RequestLabels { method, route, status };
    metrics.requests.get_or_create(&labels).inc();
    metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

/// Prometheus metrics of this process.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Metrics in the OpenMetrics text format", content_type = "application/openmetrics-text")))]
pub async fn render(State(MetricsRegistry(registry)): State<MetricsRegistry>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => {
            ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
        }
        Err(e) => {
            crate::error::ApiError(factors_application::Failure::internal(anyhow::anyhow!("encoding metrics: {e}")))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use factors_wire::rpc::USER_SERVICE;

    #[test]
    fn labels_stay_bounded_whatever_clients_send() {
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::from_bytes(b"FOO1").expect("a method")), "other");
        let template = "/zitadel.resources.user.v3alpha.ZITADELUsers/{method}";
        let rpc = |name: &str| route_label(template, &format!("/{USER_SERVICE}/{name}"));
        assert_eq!(
            rpc("RemoveOTPSMSAuthenticator"),
            "/zitadel.resources.user.v3alpha.ZITADELUsers/RemoveOTPSMSAuthenticator"
        );
        assert_eq!(rpc("StartTOTPRegistration"), "/zitadel.resources.user.v3alpha.ZITADELUsers/StartTOTPRegistration");
        assert_eq!(rpc("MadeUp123"), template, "unknown names keep the template");
        let sessions = "/zitadel.session.v2.SessionService/{method}";
        assert_eq!(
            route_label(sessions, "/zitadel.session.v2.SessionService/SetSession"),
            "/zitadel.session.v2.SessionService/SetSession"
        );
        assert_eq!(route_label(sessions, "/zitadel.session.v2.SessionService/GetUser"), sessions);
        assert_eq!(
            route_label("/resources/v3alpha/users/{id}", "/resources/v3alpha/users/42"),
            "/resources/v3alpha/users/{id}"
        );
    }
}
