//! Request metrics (counts and latency by method, route and status) and the `/metrics`
//! endpoint that renders the whole registry in the Prometheus text format.

use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use factors_wire::rpc::rpc_of_path;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A request's labels: its method, its route and the status it was answered with.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Route,
    /// The HTTP status, or `grpc-<code>` when the answer carries a gRPC status.
    status: Status,
}

/// What a request's labels are known to be before it is answered: its method and route.
#[derive(Debug)]
pub(crate) struct Requested {
    method: &'static str,
    route: Route,
}

impl Requested {
    pub(crate) fn of(request: &Request) -> Self {
        let route = match request.extensions().get::<MatchedPath>() {
            Some(template) => Route::of(template, request.uri().path()),
            None => Route::Unmatched,
        };
        Self { method: method_label(request.method()), route }
    }
}

/// The route as a label, kept without copying it for most requests: the matched template
/// (which the router shares), or the path of a call of a service's RPC.
#[derive(Debug, Clone)]
enum Route {
    Template(MatchedPath),
    Rpc(Box<str>),
    Unmatched,
}

impl Route {
    /// Calls of a service's RPCs (gRPC, gRPC-web, Connect) are told apart by RPC when the
    /// RPC is one it declares; every other request is its matched template.
    fn of(template: &MatchedPath, path: &str) -> Self {
        if is_declared_rpc(template.as_str(), path) { Self::Rpc(path.into()) } else { Self::Template(template.clone()) }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Template(template) => template.as_str(),
            Self::Rpc(path) => path,
            Self::Unmatched => "unmatched",
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// The status as a label: the HTTP status, or the gRPC status the answer carries.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Status {
    Http(u16),
    Grpc(u16),
    /// A `grpc-status` that is no number (which a gRPC server never sends).
    GrpcOther,
}

impl Status {
    fn of(response: &Response) -> Self {
        match response.headers().get("grpc-status") {
            Some(code) => code.to_str().ok().and_then(|c| c.parse().ok()).map_or(Self::GrpcOther, Self::Grpc),
            None => Self::Http(response.status().as_u16()),
        }
    }
}

impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        match self {
            Self::Http(status) => write!(encoder, "{status}"),
            Self::Grpc(code) => write!(encoder, "grpc-{code}"),
            Self::GrpcOther => encoder.write_str("grpc-other"),
        }
    }
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

/// Whether `path` calls an RPC its service declares, on the route of that service's calls.
fn is_declared_rpc(template: &str, path: &str) -> bool {
    rpc_of_path(path).is_some_and(|(service, _)| is_service_route(template, service.name))
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

    /// Counts one request, answered with `response` after `latency`. Routes are the
    /// matched templates, so ids never become labels.
    pub(crate) fn record(&self, Requested { method, route }: Requested, response: &Response, latency: Duration) {
        let labels = RequestLabels { method, route, status: Status::of(response) };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(latency.as_secs_f64());
    }
}

/// The registry `/metrics` renders, complete before the server starts.
#[derive(Debug, Clone)]
pub struct MetricsRegistry(pub Arc<Registry>);

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
        let rpc = |name: &str| is_declared_rpc(template, &format!("/{USER_SERVICE}/{name}"));
        assert!(rpc("RemoveOTPSMSAuthenticator"));
        assert!(rpc("StartTOTPRegistration"));
        assert!(!rpc("MadeUp123"), "unknown names keep the template");
        let sessions = "/zitadel.session.v2.SessionService/{method}";
        assert!(is_declared_rpc(sessions, "/zitadel.session.v2.SessionService/SetSession"));
        assert!(!is_declared_rpc(sessions, "/zitadel.session.v2.SessionService/GetUser"));
        assert!(!is_declared_rpc("/resources/v3alpha/users/{id}", "/resources/v3alpha/users/42"));
        assert!(!is_declared_rpc(template, "/zitadel.session.v2.SessionService/SetSession"), "another service's RPC");
    }

    #[test]
    fn a_grpc_answer_is_counted_by_its_grpc_status_and_an_http_one_by_its_http_status() {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let answered = |grpc_status: Option<&'static str>| {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = http::StatusCode::NOT_FOUND;
            if let Some(code) = grpc_status {
                response.headers_mut().insert("grpc-status", http::HeaderValue::from_static(code));
            }
            let request = Request::post("/somewhere").body(axum::body::Body::empty()).expect("a request");
            metrics.record(Requested::of(&request), &response, Duration::from_millis(3));
        };
        answered(Some("5"));
        answered(None);
        answered(Some("five"));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for status in ["grpc-5", "404", "grpc-other"] {
            let series =
                format!(r#"factors_http_requests_total{{method="POST",route="unmatched",status="{status}"}} 1"#);
            assert!(text.contains(&series), "{series} in {text}");
        }
    }
}
