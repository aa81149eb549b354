//! The observation every route of the port gets, REST and gRPC alike ([`observe`]): a
//! request id (`x-request-id`, kept when given, sent back on the answer), a request span,
//! one `request finished` line, request metrics by method, route and status, and the
//! request's [`Origin`](factors_domain::Origin) for the events it causes.
//!
//! One layer, not one per concern: each `from_fn` layer boxes a future and clones the
//! whole stack below it for every request (bench/REPORT.md, Notes, has what the merge of
//! four such layers was worth).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::response::Response;
use tower::Service;
use tower::layer::layer_fn;
use tracing::Span;

use crate::metrics::{HttpMetrics, Requested};
use crate::{REQUEST_ID, origin, traces};

/// Wraps every route of `router` in the observation layer.
pub fn observe(router: Router, http_metrics: HttpMetrics, clients: origin::ClientAddresses) -> Router {
    let shared = Arc::new(Shared { http_metrics, clients });
    router.layer(layer_fn(move |inner| Observe { inner, shared: shared.clone() }))
}

struct Shared {
    http_metrics: HttpMetrics,
    clients: origin::ClientAddresses,
}

#[derive(Clone)]
struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = match request.headers().get(REQUEST_ID) {
            Some(given) => given.clone(),
            None => {
                let made = new_request_id();
                request.headers_mut().insert(REQUEST_ID, made.clone());
                made
            }
        };
        let requested = Requested::of(&request);
        let span = request_span(&request, &request_id);
        let future = {
            // The origin reads the span's trace id; the inner service's own spans nest in it.
            let _entered = span.enter();
            let origin = origin::of_request(&self.shared.clients, &request);
            request.extensions_mut().insert(origin);
            self.inner.call(request)
        };
        Observed {
            future,
            span,
            started,
            requested: Some(requested),
            request_id: Some(request_id),
            shared: self.shared.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request being answered, inside its span.
    struct Observed<F> {
        #[pin]
        future: F,
        span: Span,
        started: Instant,
        requested: Option<Requested>,
        request_id: Option<HeaderValue>,
        shared: Arc<Shared>,
    }
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let Ok(mut response) = ready!(this.future.poll(cx));
        let latency = this.started.elapsed();
        if let Some(request_id) = this.request_id.take() {
            response.headers_mut().entry(REQUEST_ID).or_insert(request_id);
        }
        if let Some(requested) = this.requested.take() {
            this.shared.http_metrics.record(requested, &response, latency);
        }
        finished(this.span, &response, latency);
        Poll::Ready(Ok(response))
    }
}

/// A fresh request id: a random UUID, as `x-request-id` usually is.
fn new_request_id() -> HeaderValue {
    let mut text = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

fn request_span(request: &Request, request_id: &HeaderValue) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let request_id = request_id.to_str().unwrap_or("");
    if traces::enabled() {
        return traces::request_span(request, route, request_id);
    }
    tracing::info_span!("request", method = %request.method(), route, request_id)
}

/// The request's line. Status and latency go on the event, not into the span: recording a
/// field into a span after the fact makes the JSON formatter parse and rewrite the span's
/// fields, which cost more than the rest of the line.
fn finished(span: &Span, response: &Response, latency: Duration) {
    if traces::enabled() {
        traces::record_response(span, response);
    }
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request finished"
    );
}
