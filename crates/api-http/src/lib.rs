//! REST delivery of factors (axum): the grpc-gateway style JSON mappings of the ZITADEL
//! v3alpha user API and v2 session API, the contract's error bodies for every failure
//! (including routing and decoding), operations endpoints, request spans with request ids,
//! OpenAPI, and Swagger UI over it.
//!
//! [`router`] builds the whole application from use cases, so tests can drive it
//! in-process with mocks.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use factors_application::ports::{ReadinessProbe, TokenVerifier};
use factors_application::use_cases::UseCases;
use factors_wire::{MAX_BODY_BYTES, RequestError};
use tower::ServiceBuilder;
use tower::layer::layer_fn;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;

pub mod error;
pub mod extract;
mod guard;
pub mod metrics;
mod observe;
pub mod openapi;
pub mod origin;
pub mod routes;
pub mod rpcs;
pub mod swagger_ui;
pub mod traces;

use error::ApiError;
pub use observe::observe;

/// What the REST API needs: the use cases, the token verifier and the readiness probe.
/// Handlers take only the part they use (`State<Arc<UseCases>>`,
/// `State<Arc<dyn ReadinessProbe>>`).
///
/// Behind one `Arc`: axum clones the whole state for every request it routes, and then the
/// part each handler takes; each clone of a part is an atomic count that both cores touch.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

/// The parts of [`AppState`].
pub struct AppParts {
    pub tokens: Arc<dyn TokenVerifier>,
    pub readiness: Arc<dyn ReadinessProbe>,
    pub use_cases: Arc<UseCases>,
    pub http_metrics: metrics::HttpMetrics,
    pub metrics: metrics::MetricsRegistry,
}

impl AppState {
    /// The state from the use cases the composition root built.
    pub fn new(
        tokens: Arc<dyn TokenVerifier>,
        readiness: Arc<dyn ReadinessProbe>,
        use_cases: UseCases,
        http_metrics: metrics::HttpMetrics,
        metrics: metrics::MetricsRegistry,
    ) -> Self {
        Self(Arc::new(AppParts { tokens, readiness, use_cases: Arc::new(use_cases), http_metrics, metrics }))
    }
}

/// Each part a handler or a layer may take from [`AppState`].
macro_rules! parts_of_state {
    ($($field:ident: $part:ty,)*) => {$(
        impl FromRef<AppState> for $part {
            fn from_ref(state: &AppState) -> Self {
                state.0.$field.clone()
            }
        }
    )*};
}

parts_of_state! {
    tokens: Arc<dyn TokenVerifier>,
    readiness: Arc<dyn ReadinessProbe>,
    use_cases: Arc<UseCases>,
    http_metrics: metrics::HttpMetrics,
    metrics: metrics::MetricsRegistry,
}

/// Knobs of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Requests running longer answer DEADLINE_EXCEEDED (504).
    pub request_timeout: Duration,
    /// Whether `/metrics` is served on this port; off when an admin port serves it
    /// ([`admin_router`]).
    pub metrics: bool,
    /// How a request's client address is found (behind trusted proxies or not).
    pub clients: origin::ClientAddresses,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(30), metrics: true, clients: origin::ClientAddresses::default() }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The OpenAPI document, generated once.
pub static OPENAPI: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(openapi::ApiDoc::openapi);

/// The complete REST application.
pub fn router(state: AppState, options: HttpOptions) -> Router {
    let http_metrics = state.0.http_metrics.clone();
    let deadline = options.request_timeout;
    let rest = swagger_ui::routes(routes::add_unimplemented(rpcs::routes(Router::new()), rpcs::SERVED))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json));
    let rest = if options.metrics { rest.route("/metrics", get(metrics::render)) } else { rest };
    let rest = rest
        .fallback(unknown_path)
        // gRPC-gateway answers a wrong method with code 12 (UNIMPLEMENTED) but HTTP 405.
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, ApiError::from(RequestError::MethodNotAllowed))
        })
        .with_state(state)
        // One `layer` call for the whole stack, outermost first: every `Router::layer` call
        // boxes each route once more, and axum clones a route's service for every request,
        // through every box (a stack of nine boxes cost about 40 % of a `/healthz`).
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(guard::panicked))
                .layer(layer_fn(move |inner| guard::Guard::new(inner, deadline)))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        );
    observe(rest, http_metrics, options.clients)
}

/// The admin port's application: `/metrics`, `/healthz` and `/readyz`, so that they need
/// not sit on the public port.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .fallback(unknown_path)
        .with_state(state)
}

/// An unknown path: the contract's 404 for REST; for a gRPC client (an unknown service
/// or method), UNIMPLEMENTED in gRPC's own form, which is what it can read.
async fn unknown_path(request: Request) -> Response {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        let content_type = request.headers().get(http::header::CONTENT_TYPE).cloned();
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        if let Some(content_type) = content_type {
            headers.insert(http::header::CONTENT_TYPE, content_type);
        }
        headers.insert("grpc-status", http::HeaderValue::from_static("12"));
        headers.insert("grpc-message", http::HeaderValue::from_static("unknown%20service%20or%20method"));
        return response;
    }
    ApiError::from(RequestError::UnknownPath).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "The OpenAPI 3 document")))]
pub async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&OPENAPI)
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up", example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the service can do its work (Postgres answers). A degraded dependency is
/// reported but keeps the service ready.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", example = json!({"status": "ready", "dependencies": {"postgres": "up"}})),
    (status = 503, description = "Not ready", example = json!({"status": "not ready", "dependencies": {"postgres": "down"}})),
))]
pub async fn readyz(State(probe): State<Arc<dyn ReadinessProbe>>) -> (StatusCode, Json<serde_json::Value>) {
    let readiness = probe.readiness().await;
    let dependencies: serde_json::Map<String, serde_json::Value> =
        readiness.dependencies.iter().map(|(name, state)| ((*name).to_owned(), state.as_str().into())).collect();
    let (status, word) = match (readiness.is_ready(), readiness.draining) {
        (true, _) => (StatusCode::OK, "ready"),
        (false, true) => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready"),
    };
    (status, Json(serde_json::json!({"status": word, "dependencies": dependencies})))
}
