//! What every REST request passes on its way to its handler ([`Guard`]): a body
//! announced over [`MAX_BODY_BYTES`] is refused at once, with 413, before any of it is
//! read; a request running past the deadline answers DEADLINE_EXCEEDED (504); and the
//! cause of an internal failure is logged, once, inside the request's span. A panic is
//! caught outside it ([`panicked`]).
//!
//! One hand-written layer rather than a `from_fn` middleware each, for the reason
//! [`crate::observe`] gives.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use axum::response::{IntoResponse, Response};
use factors_wire::{MAX_BODY_BYTES, RequestError};
use tokio::time::Timeout;
use tower::Service;

use crate::error::{ApiError, FailureCause, too_large};

/// The REST guard around `inner`, with the deadline of a request.
#[derive(Debug, Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    deadline: Duration,
}

impl<S> Guard<S> {
    pub(crate) fn new(inner: S, deadline: Duration) -> Self {
        Self { inner, deadline }
    }
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Guarded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let announced = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Guarded::Refused { response: Some(too_large()) };
        }
        Guarded::Running { call: tokio::time::timeout(self.deadline, self.inner.call(request)) }
    }
}

pin_project_lite::pin_project! {
    /// A REST request on its way through the guard.
    #[project = GuardedProjection]
    pub(crate) enum Guarded<F> {
        Running { #[pin] call: Timeout<F> },
        Refused { response: Option<Response> },
    }
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.project() {
            GuardedProjection::Running { call } => match ready!(call.poll(cx)) {
                Ok(Ok(response)) => response,
                Err(_elapsed) => ApiError::from(RequestError::Timeout).into_response(),
            },
            GuardedProjection::Refused { response } => response.take().expect("a refusal is answered once"),
        };
        log_failure_cause(&response);
        Poll::Ready(Ok(response))
    }
}

/// Logs the cause of an internal failure, inside the request's span.
pub(crate) fn log_failure_cause<B>(response: &http::Response<B>) {
    if let Some(FailureCause(cause)) = response.extensions().get::<FailureCause>() {
        tracing::error!(error = format!("{cause:#}"), "request failed");
    }
}

/// The answer to a handler that panicked: INTERNAL, and the failure logged (the guard, which
/// the panic passed through, logs the others).
pub(crate) fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    let response = ApiError::from(RequestError::Panicked).into_response();
    log_failure_cause(&response);
    response
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use http_body_util::BodyExt;
    use tower::layer::layer_fn;
    use tower::{ServiceBuilder, ServiceExt};
    use tower_http::catch_panic::CatchPanicLayer;

    use super::*;

    /// What the guard's own failures look like: the status, and the error body's code and id.
    async fn answer(router: Router, request: Request) -> (u16, serde_json::Value) {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("a body").to_bytes();
        (status, serde_json::from_slice(&body).expect("a JSON body"))
    }

    fn guarded(router: Router, deadline: Duration) -> Router {
        router.layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panicked))
                .layer(layer_fn(move |inner| Guard::new(inner, deadline))),
        )
    }

    /// What a test's subscriber wrote.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("UTF-8")
        }
    }

    async fn never_runs() -> &'static str {
        panic!("the handler must not run")
    }

    async fn panics() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_body_announced_over_the_limit_is_refused_before_the_handler_runs() {
        let router = guarded(Router::new().route("/upload", post(never_runs)), Duration::from_secs(5));
        let request =
            Request::post("/upload").header(CONTENT_LENGTH, MAX_BODY_BYTES + 1).body(Body::empty()).expect("a request");
        let (status, body) = answer(router, request).await;
        assert_eq!(
            (status, body["code"].as_i64(), body["details"][0]["id"].as_str()),
            (413, Some(8), Some("REQ-TooLarge"))
        );
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_answers_deadline_exceeded() {
        let router =
            guarded(Router::new().route("/slow", get(std::future::pending::<&'static str>)), Duration::from_millis(20));
        let (status, body) = answer(router, Request::get("/slow").body(Body::empty()).expect("a request")).await;
        assert_eq!((status, body["code"].as_i64()), (504, Some(4)), "{body}");
    }

    #[tokio::test]
    async fn a_panic_answers_internal_and_is_logged_once() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let router = guarded(Router::new().route("/boom", get(panics)), Duration::from_secs(5));
        let (status, body) = answer(router, Request::get("/boom").body(Body::empty()).expect("a request")).await;
        assert_eq!((status, body["code"].as_i64()), (500, Some(13)), "{body}");
        let logged = lines.text();
        assert_eq!(logged.matches("request failed").count(), 1, "{logged}");
        assert!(logged.contains("a handler panicked"), "{logged}");
    }
}
