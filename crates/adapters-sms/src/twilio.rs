//! Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! form-encoded `To`, `Body` and `From` or `MessagingServiceSid`, with HTTP basic auth
//! (account SID, auth token). Twilio answers 201 with the message it queued.
//!
//! Codes and notices go out the same way. Twilio's Messages API takes no idempotency key,
//! so a notice handed over twice is sent twice: when factors stops between Twilio taking
//! a notice and the notice being recorded as sent, the next try delivers it again. (A
//! webhook receiver can tell the two apart by their `webhook-id`; Twilio cannot.) A second
//! "your number was removed" is a nuisance, not a risk, so notices are not held back for it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use factors_application::ports::{CodeSms, NoticeSms, SmsError, SmsSender};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::Instrument as _;

use crate::http::{self, Accepted, BuildError, Outgoing, SendFailure, Timeouts};
use crate::metrics::{Provider, SmsMetrics};
use crate::texts::SmsTexts;

/// Where Twilio's API is.
pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";

/// The most of an answer read, for the message's or the error's id; answers are small.
const ANSWER_LIMIT: usize = 64 * 1024;

/// Whom the SMS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioFrom {
    /// A Twilio number (E.164), short code or alphanumeric sender id: `From`.
    Number(String),
    /// A Messaging Service, which picks the sender: `MessagingServiceSid` (`MG…`).
    MessagingService(String),
}

/// The Twilio settings; `Debug` shows the auth token redacted.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// [`TWILIO_BASE_URL`], or a stub's in tests.
    pub base_url: String,
    /// `AC…`.
    pub account_sid: String,
    pub auth_token: SecretString,
    pub from: TwilioFrom,
    pub timeouts: Timeouts,
}

/// Sends SMS through Twilio; one request per SMS, never repeated.
pub struct TwilioSender {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    account_sid: String,
    auth_token: SecretString,
    from: TwilioFrom,
    timeouts: Timeouts,
    texts: Arc<SmsTexts>,
    metrics: SmsMetrics,
}

/// The parts of Twilio's answers read: the message's id (`SM…`) on success, Twilio's
/// error number on failure. The rest (which repeats the number and the text) is not.
#[derive(Deserialize)]
struct Answer {
    sid: Option<String>,
    code: Option<u32>,
}

impl TwilioSender {
    /// # Errors
    /// [`BuildError`] for a base URL that is not http(s), an account SID that is not
    /// letters and digits, an empty sender, or a client that cannot be built.
    pub fn new(config: TwilioConfig, texts: Arc<SmsTexts>, metrics: SmsMetrics) -> Result<Self, BuildError> {
        http::http_url(&config.base_url, "the Twilio base URL must be an http(s) URL")?;
        if config.account_sid.is_empty() || !config.account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(BuildError::Invalid("the Twilio account SID must be letters and digits (AC…)"));
        }
        if config.auth_token.expose_secret().is_empty() {
            return Err(BuildError::Invalid("the Twilio auth token is empty"));
        }
        let sender = match &config.from {
            TwilioFrom::Number(from) | TwilioFrom::MessagingService(from) => from,
        };
        if sender.trim().is_empty() {
            return Err(BuildError::Invalid("the Twilio sender (From or MessagingServiceSid) is empty"));
        }
        let endpoint = http::http_url(
            &format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.base_url.trim_end_matches('/'),
                config.account_sid
            ),
            "the Twilio base URL must be an http(s) URL",
        )?;
        Ok(Self {
            client: http::client(config.timeouts)?,
            endpoint,
            account_sid: config.account_sid,
            auth_token: config.auth_token,
            from: config.from,
            timeouts: config.timeouts,
            texts,
            metrics,
        })
    }

    async fn post(&self, sms: &Outgoing<'_>) -> Result<Accepted, SendFailure> {
        let from = match &self.from {
            TwilioFrom::Number(number) => ("From", number.as_str()),
            TwilioFrom::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let form = [("To", sms.to.as_e164()), ("Body", sms.text.as_str()), from];
        let request = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&form);
        let response = http::with_trace_context(request)
            .send()
            .await
            .map_err(|e| SendFailure::from_request(Provider::Twilio, e, self.timeouts.request))?;
        let status = response.status();
        http::record_status(status);
        // The answer is only read for ids; a body that cannot be read or parsed changes
        // nothing (on a 201 the message is queued whatever follows).
        let body = http::read_limited(response, ANSWER_LIMIT).await.unwrap_or_default();
        let answer = serde_json::from_slice::<Answer>(&body).ok();
        if status.is_success() {
            Ok(Accepted { status: status.as_u16(), message_id: answer.and_then(|a| a.sid) })
        } else {
            Err(SendFailure::from_status(Provider::Twilio, status, answer.and_then(|a| a.code)))
        }
    }
}

#[async_trait]
impl SmsSender for TwilioSender {
    async fn send_code(&self, sms: &CodeSms) -> Result<(), SmsError> {
        let started = Instant::now();
        let sms = Outgoing::code(sms, &self.texts);
        let span = http::send_span(Provider::Twilio, self.endpoint.host_str());
        let result = self.post(&sms).instrument(span).await;
        http::finish(&self.metrics, Provider::Twilio, &sms, started, result)
    }

    /// Sends the notice as an ordinary message: Twilio takes no idempotency key, so
    /// `sms.id` cannot reach it (see the module documentation for what that means).
    async fn send_notice(&self, sms: &NoticeSms) -> Result<(), SmsError> {
        let started = Instant::now();
        let sms = Outgoing::notice(sms, &self.texts);
        let span = http::send_span(Provider::Twilio, self.endpoint.host_str());
        let result = self.post(&sms).instrument(span).await;
        http::finish(&self.metrics, Provider::Twilio, &sms, started, result)
    }
}
