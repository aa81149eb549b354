//! A signed HTTP webhook, for any SMS gateway without an adapter of its own: one JSON
//! POST per SMS, signed the Standard Webhooks way so the receiver can tell it came from
//! factors and was not changed or replayed.
//!
//! ```text
//! POST <sms.webhook.url>
//! content-type: application/json
//! webhook-id: msg_<32 hex digits>          unique per SMS; the same on every try of a notice
//! webhook-timestamp: <unix seconds>
//! webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
//!
//! {"type":"sms.code","to":"+41791234567","text":"123456 is your …","purpose":"registration","userId":"…"}
//! {"type":"sms.notice","to":"+41791234567","text":"A phone number was removed …","purpose":"removal_notice","userId":"…"}
//! ```
//!
//! The code is only in `text`. `purpose` is `registration`, `contact_phone` or `sign_in`
//! for a code, `removal_notice` for a notice.
//!
//! A code's `webhook-id` is random: a code is sent once and never again. A notice's is
//! derived from its id in the outbox, which may hand one notice over more than once (after
//! a crash between sending and recording it); Standard Webhooks makes the id the message's
//! idempotency key, the same on every delivery of one message, so a receiver that
//! remembers the ids it has seen sends each notice once.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use factors_application::ports::{CodeSms, NoticeSms, SmsError, SmsSender};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tracing::Instrument as _;

use crate::http::{self, Accepted, BuildError, Outgoing, SendFailure, Timeouts};
use crate::metrics::{Provider, SmsMetrics};
use crate::texts::SmsTexts;

/// The prefix of secrets written the Standard Webhooks way: `whsec_<base64 of the key>`.
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest key a `whsec_` secret may decode to (what Standard Webhooks generates).
pub const MIN_ENCODED_KEY_BYTES: usize = 24;
/// The shortest secret given as plain text; its UTF-8 bytes are the key.
pub const MIN_RAW_KEY_BYTES: usize = 32;

/// The key the webhook is signed with. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

/// Why a webhook secret was refused. Never carries the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the part after whsec_ is not base64")]
    NotBase64,
    #[error("a whsec_ secret must decode to at least {MIN_ENCODED_KEY_BYTES} bytes")]
    EncodedTooShort,
    #[error("a secret must be whsec_<base64> or at least {MIN_RAW_KEY_BYTES} bytes of text")]
    RawTooShort,
}

impl WebhookSecret {
    /// `whsec_<base64>` (the key is the decoded bytes, at least 24), or any other text of at
    /// least 32 bytes (the key is its UTF-8 bytes).
    ///
    /// # Errors
    /// [`SecretError`] for bad base64 or a key too short.
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let secret = secret.trim();
        if let Some(encoded) = secret.strip_prefix(SECRET_PREFIX) {
            let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
            if key.len() < MIN_ENCODED_KEY_BYTES {
                return Err(SecretError::EncodedTooShort);
            }
            return Ok(Self(key));
        }
        if secret.len() < MIN_RAW_KEY_BYTES {
            return Err(SecretError::RawTooShort);
        }
        Ok(Self(secret.as_bytes().to_vec()))
    }

    fn tag(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        // An HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// The `webhook-signature` value of a message: `v1,<base64 of HMAC-SHA256(key,
/// "<id>.<timestamp>.<body>")>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: &str, body: &[u8]) -> String {
    format!("v1,{}", BASE64.encode(secret.tag(id, timestamp, body)))
}

/// Whether `signature` (a `webhook-signature` header: one or more space-separated
/// `v1,<base64>`) holds a valid signature of the message with this `id`, `timestamp` (the
/// `webhook-timestamp` header, as received) and raw `body`. Compares in constant time.
///
/// It does not judge the timestamp: a receiver should also refuse timestamps too far from
/// its clock (say five minutes), so that a captured message cannot be replayed, and may
/// remember the ids it has seen.
pub fn verify_signature(secret: &WebhookSecret, id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let expected = secret.tag(id, timestamp, body);
    let mut valid = false;
    for candidate in signature.split(' ') {
        let Some(("v1", encoded)) = candidate.split_once(',') else { continue };
        let Ok(given) = BASE64.decode(encoded) else { continue };
        valid |= bool::from(expected.as_slice().ct_eq(&given));
    }
    valid
}

/// The webhook settings; `Debug` shows neither the secret nor the URL.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Where to POST; http(s). It may hold a credential, so it is never logged.
    pub url: String,
    pub secret: WebhookSecret,
    pub timeouts: Timeouts,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &"<redacted>")
            .field("secret", &self.secret)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// The `webhook-id` of a notice: `msg_` and the first 32 hex digits of the SHA-256 of its
/// outbox id. The same notice always gets the same id, so a receiver can deduplicate by
/// it; hashed because an outbox id may hold characters a header cannot, and 128 bits
/// keep two notices from ever sharing one.
fn notice_message_id(notice_id: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(notice_id.as_bytes());
    let mut id = String::with_capacity(36);
    id.push_str("msg_");
    for byte in &digest[..16] {
        // Writing to a String cannot fail.
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// The JSON body. Field order is part of what is signed, and fixed here.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    to: &'a str,
    text: &'a str,
    purpose: &'static str,
    #[serde(rename = "userId")]
    user_id: &'a str,
}

/// Sends SMS by calling a webhook; one request per SMS, never repeated.
pub struct WebhookSender {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: WebhookSecret,
    timeouts: Timeouts,
    texts: Arc<SmsTexts>,
    metrics: SmsMetrics,
}

impl WebhookSender {
    /// # Errors
    /// [`BuildError`] for a URL that is not http(s), or a client that cannot be built.
    pub fn new(config: WebhookConfig, texts: Arc<SmsTexts>, metrics: SmsMetrics) -> Result<Self, BuildError> {
        let url = http::http_url(&config.url, "the webhook URL must be an http(s) URL")?;
        Ok(Self {
            client: http::client(config.timeouts)?,
            url,
            secret: config.secret,
            timeouts: config.timeouts,
            texts,
            metrics,
        })
    }

    /// Posts `sms` as message `id` (its `webhook-id`).
    async fn post(&self, sms: &Outgoing<'_>, id: String) -> Result<Accepted, SendFailure> {
        let payload = Payload {
            kind: if sms.notice { "sms.notice" } else { "sms.code" },
            to: sms.to.as_e164(),
            text: &sms.text,
            purpose: sms.purpose,
            user_id: sms.user.as_str(),
        };
        // Serialising plain strings cannot fail; an empty body would be refused anyway.
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0).to_string();
        let signature = sign(&self.secret, &id, &timestamp, &body);
        let request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", &timestamp)
            .header("webhook-signature", signature)
            .body(body);
        let response = http::with_trace_context(request)
            .send()
            .await
            .map_err(|e| SendFailure::from_request(Provider::Webhook, e, self.timeouts.request))?;
        let status = response.status();
        http::record_status(status);
        // The answer's body means nothing here and is not read.
        drop(response);
        if status.is_success() {
            Ok(Accepted { status: status.as_u16(), message_id: Some(id) })
        } else {
            Err(SendFailure::from_status(Provider::Webhook, status, None))
        }
    }
}

#[async_trait]
impl SmsSender for WebhookSender {
    async fn send_code(&self, sms: &CodeSms) -> Result<(), SmsError> {
        let started = Instant::now();
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let sms = Outgoing::code(sms, &self.texts);
        let span = http::send_span(Provider::Webhook, self.url.host_str());
        let result = self.post(&sms, id).instrument(span).await;
        http::finish(&self.metrics, Provider::Webhook, &sms, started, result)
    }

    /// Sends the notice with a `webhook-id` derived from `sms.id`: each try of one notice
    /// carries the same id, for the receiver to deduplicate by.
    async fn send_notice(&self, sms: &NoticeSms) -> Result<(), SmsError> {
        let started = Instant::now();
        let id = notice_message_id(&sms.id);
        let sms = Outgoing::notice(sms, &self.texts);
        let span = http::send_span(Provider::Webhook, self.url.host_str());
        let result = self.post(&sms, id).instrument(span).await;
        http::finish(&self.metrics, Provider::Webhook, &sms, started, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        // The published vector: a receiver using any Standard Webhooks library accepts
        // what factors sends only if this matches byte for byte.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, &signature));
        // Several signatures (key rotation): one valid one is enough.
        let rotated = format!("v1,bm9wZQ== v2,xyz {signature}");
        assert!(verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, &rotated));
        assert!(!verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", body, &signature));
        assert!(!verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJel", "1614265330", body, &signature));
        assert!(!verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b"{}", &signature));
        assert!(!verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, "v1,bm9wZQ=="));
        assert!(!verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, ""));
    }

    #[test]
    fn a_notice_s_message_id_is_its_own_fit_for_a_header_and_the_same_on_every_try() {
        let id = notice_message_id("outbox:42 \u{e9}\n/\"x\"");
        assert_eq!(id, notice_message_id("outbox:42 \u{e9}\n/\"x\""));
        assert_ne!(id, notice_message_id("outbox:43 \u{e9}\n/\"x\""));
        assert_eq!(id.len(), 36, "{id}");
        assert!(id.starts_with("msg_") && id[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(reqwest::header::HeaderValue::from_str(&id).is_ok());
        // As documented: the first 16 bytes of the SHA-256 of the notice's id, in hex.
        let sha = Sha256::digest(b"n-1");
        let hex: Vec<String> = sha[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(notice_message_id("n-1"), format!("msg_{}", hex.concat()));
    }

    #[test]
    fn the_settings_debug_output_shows_neither_url_nor_secret() {
        let config = WebhookConfig {
            url: "https://user:pass@gateway.example/sms".into(),
            secret: WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid"),
            timeouts: Timeouts {
                request: std::time::Duration::from_secs(1),
                connect: std::time::Duration::from_secs(1),
            },
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("pass") && !shown.contains("MfKQ9r8G"), "{shown}");
    }

    #[test]
    fn secrets_are_whsec_base64_or_long_raw_text() {
        assert_eq!(WebhookSecret::parse("whsec_!!!").map(|_| ()), Err(SecretError::NotBase64));
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ=").map(|_| ()), Err(SecretError::EncodedTooShort));
        assert_eq!(WebhookSecret::parse("too short").map(|_| ()), Err(SecretError::RawTooShort));
        let raw = WebhookSecret::parse("a raw secret of at least 32 bytes!").expect("raw");
        assert_eq!(raw.0, b"a raw secret of at least 32 bytes!");
        assert_eq!(format!("{raw:?}"), "WebhookSecret([REDACTED])");
    }
}
