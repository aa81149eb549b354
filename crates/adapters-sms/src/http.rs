//! What the HTTP senders share: one client that never sends a request twice, the SMS as
//! they hand it over (a code's or a notice's, rendered), the failures a provider can
//! cause (worded without the number, the code or the provider's answer), and the
//! bookkeeping of every send (metrics, one log line).

use std::time::{Duration, Instant};

use factors_application::ports::{CodeSms, NoticeSms, SmsError};
use factors_domain::{PhoneNumber, UserId};
use reqwest::StatusCode;

use crate::metrics::{Outcome, Provider, SmsMetrics};
use crate::texts::SmsTexts;

/// One SMS as a provider gets it, whatever it carries, so that each sender has one
/// request to build and every send is counted and logged alike. No `Debug`: the text of
/// a code SMS holds the code.
pub(crate) struct Outgoing<'a> {
    pub to: &'a PhoneNumber,
    pub user: &'a UserId,
    /// What it is for, as logs and the webhook's body name it: `registration`,
    /// `contact_phone`, `sign_in` or `removal_notice`.
    pub purpose: &'static str,
    pub text: String,
    /// Whether the SMS carries a code or is a notice.
    pub notice: bool,
}

impl<'a> Outgoing<'a> {
    pub fn code(sms: &'a CodeSms, texts: &SmsTexts) -> Self {
        Self {
            to: &sms.to,
            user: &sms.user,
            purpose: sms.purpose.as_str(),
            text: texts.render(sms.purpose, &sms.code),
            notice: false,
        }
    }

    pub fn notice(sms: &'a NoticeSms, texts: &SmsTexts) -> Self {
        Self {
            to: &sms.to,
            user: &sms.user,
            purpose: sms.kind.as_str(),
            text: texts.render_notice(sms.kind),
            notice: true,
        }
    }
}

/// Bounds on one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole request: connecting, sending, and reading the answer. The only timeout
    /// on a send: a provider that has not answered by then fails it.
    pub request: Duration,
    /// Connecting alone (TCP and TLS), so an unreachable provider fails fast; capped by
    /// `request`.
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { request: Duration::from_secs(10), connect: Duration::from_secs(5) }
    }
}

/// Why a sender could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The HTTP client of a provider. An SMS sent twice is worse than an error (see the crate
/// documentation), so the client repeats nothing:
/// - no retries, not even reqwest's default retry of HTTP/2 protocol NACKs (and HTTP/1.1
///   only, whatever features other crates turn on, so there are none to retry);
/// - no redirects: following a 307 or 308 would post the message again, elsewhere.
///
/// The one thing the connection pool below does on its own is to open a new connection
/// when a kept-alive one turns out to be closed *before* a byte of the request was
/// written; the provider cannot have seen that request.
pub(crate) fn client(timeouts: Timeouts) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .timeout(timeouts.request)
        .connect_timeout(timeouts.connect.min(timeouts.request))
        .retry(reqwest::retry::never())
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("factors/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(BuildError::Client)
}

/// Checks that `url` is an absolute http(s) URL.
pub(crate) fn http_url(url: &str, what: &'static str) -> Result<reqwest::Url, BuildError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| BuildError::Invalid(what))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(BuildError::Invalid(what));
    }
    Ok(parsed)
}

/// Why a provider did not take an SMS. Never carries the phone number, the code, the
/// text, the provider's answer, the URL or a credential: it ends up in logs.
#[derive(Debug, thiserror::Error)]
pub enum SendFailure {
    /// A 4xx answer: the request was refused (credentials, number, sender, ...).
    #[error("{provider} refused the SMS (HTTP {status}{})", provider_code_suffix(.provider_code))]
    Rejected { provider: Provider, status: u16, provider_code: Option<u32> },
    /// A 5xx answer, or any answer that is neither 2xx nor 4xx.
    #[error("{provider} failed to take the SMS (HTTP {status}{})", provider_code_suffix(.provider_code))]
    Failed { provider: Provider, status: u16, provider_code: Option<u32> },
    /// No answer in time. The provider may still send the SMS; it is not sent again.
    #[error("{provider} did not answer within {timeout:?}")]
    Timeout { provider: Provider, timeout: Duration },
    /// The request did not get through, or the answer was not HTTP.
    #[error("the request to {provider} failed")]
    Transport {
        provider: Provider,
        /// Without its URL (which may hold a credential).
        #[source]
        source: reqwest::Error,
    },
}

fn provider_code_suffix(code: &Option<u32>) -> String {
    code.map(|code| format!(", provider error {code}")).unwrap_or_default()
}

impl SendFailure {
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Rejected { .. } => Outcome::Rejected,
            Self::Failed { .. } | Self::Transport { .. } => Outcome::Failed,
            Self::Timeout { .. } => Outcome::Timeout,
        }
    }

    /// Whether the provider certainly did not take the SMS: it refused it (4xx), failed
    /// (5xx), or the connection was never made. After a timeout, or a connection lost
    /// mid-request, it may have: another provider must not send the same code.
    pub fn certainly_unsent(&self) -> bool {
        match self {
            Self::Rejected { .. } | Self::Failed { .. } => true,
            Self::Transport { source, .. } => source.is_connect(),
            Self::Timeout { .. } => false,
        }
    }

    /// The failure of a request that got no answer.
    pub(crate) fn from_request(provider: Provider, error: reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            Self::Timeout { provider, timeout }
        } else {
            Self::Transport { provider, source: error.without_url() }
        }
    }

    /// The failure of a non-2xx answer; `provider_code` is the provider's own error
    /// number, when it has one.
    pub(crate) fn from_status(provider: Provider, status: StatusCode, provider_code: Option<u32>) -> Self {
        let status_code = status.as_u16();
        if status.is_client_error() {
            Self::Rejected { provider, status: status_code, provider_code }
        } else {
            Self::Failed { provider, status: status_code, provider_code }
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } | Self::Failed { status, .. } => Some(*status),
            Self::Timeout { .. } | Self::Transport { .. } => None,
        }
    }
}

/// The span of one send to `provider` (a client span, in the trace of whatever asked for
/// the SMS); the number and the text are never among its fields, and the purpose is the
/// log line's.
pub(crate) fn send_span(provider: Provider, server: Option<&str>) -> tracing::Span {
    tracing::debug_span!(
        "sms_send",
        otel.name = %format_args!("sms.send {}", provider.label()),
        otel.kind = "client",
        sms.provider = provider.label(),
        http.request.method = "POST",
        server.address = server,
        http.response.status_code = tracing::field::Empty,
    )
}

/// `request` with the current trace context (W3C `traceparent`/`tracestate`), so that the
/// provider's own traces join the caller's; nothing is added when traces are off.
pub(crate) fn with_trace_context(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let mut headers = reqwest::header::HeaderMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut opentelemetry_http::HeaderInjector(&mut headers));
    });
    request.headers(headers)
}

/// Notes the provider's answer on the send's span.
pub(crate) fn record_status(status: StatusCode) {
    tracing::Span::current().record("http.response.status_code", status.as_u16());
}

/// What a provider said when it took an SMS.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    pub status: u16,
    /// The provider's id of the message, for tracing it with the provider's support.
    pub message_id: Option<String>,
}

/// Counts the send, logs it (masked number, no text), and turns a failure into the
/// port's error.
pub(crate) fn finish(
    metrics: &SmsMetrics,
    provider: Provider,
    sms: &Outgoing<'_>,
    started: Instant,
    result: Result<Accepted, SendFailure>,
) -> Result<(), SmsError> {
    let took = started.elapsed();
    let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(accepted) => {
            metrics.record(provider, Outcome::Sent, took);
            tracing::info!(
                provider = provider.label(),
                to = %sms.to.masked(),
                purpose = sms.purpose,
                status = accepted.status,
                message_id = accepted.message_id.as_deref(),
                took_ms,
                "SMS handed to the provider"
            );
            Ok(())
        }
        Err(failure) => {
            let outcome = failure.outcome();
            metrics.record(provider, outcome, took);
            // A code is never sent again (see the crate's documentation); a notice may be
            // handed over again by whoever keeps it, which this sender cannot know.
            let note = if sms.notice { "SMS not sent" } else { "SMS not sent; this provider does not try it again" };
            tracing::warn!(
                provider = provider.label(),
                outcome = outcome.label(),
                to = %sms.to.masked(),
                purpose = sms.purpose,
                status = failure.status(),
                took_ms,
                error = %failure,
                "{note}"
            );
            Err(SmsError(anyhow::Error::new(failure)))
        }
    }
}

/// Reads at most `limit` bytes of an answer's body; the rest is not waited for.
pub(crate) async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}
