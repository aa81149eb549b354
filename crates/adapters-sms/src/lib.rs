//! SMS providers for factors, behind the `SmsSender` port: Twilio's Messages API, a
//! signed HTTP webhook for any other gateway, and the development logging sender.
//!
//! Every sender renders the text of the SMS from [`SmsTexts`] (one template per purpose,
//! one per notice kind), makes exactly one request per SMS and never repeats it: a
//! duplicate SMS is worse than an error. A failure is the caller's to handle: the new authenticator is taken back and
//! the user may try again, knowingly, for a fresh code that the SMS limits count. A resend
//! cannot know whether the first SMS went out (after a timeout it usually has), so it
//! would deliver it twice, be paid twice, and slip past the per-phone limit. Failures are
//! worded without the phone number, the code, or the provider's answer; logs show the
//! masked number only. Each send is counted in [`SmsMetrics`] by provider and outcome.
//!
//! Notices (an SMS without a code, such as "a number was removed from your account") are
//! handed over by an outbox that may hand one over again after a crash; the webhook
//! gives every try of one notice the same `webhook-id`, so its receiver can send it once.
//! Twilio takes no such key (see [`TwilioSender`]).

mod failover;
mod http;
mod log;
mod metrics;
mod texts;
mod twilio;
mod webhook;

use std::sync::Arc;

use factors_application::ports::SmsSender;

pub use failover::{FailoverConfig, FailoverSender};
pub use http::{BuildError, SendFailure, Timeouts};
pub use log::LogSender;
pub use metrics::{Outcome, Provider, SmsMetrics};
pub use texts::{
    DEFAULT_CONTACT_PHONE, DEFAULT_REGISTRATION, DEFAULT_REMOVAL_NOTICE, DEFAULT_SIGN_IN, SmsTexts, TextConfig,
    TextError, TextKind,
};
pub use twilio::{TWILIO_BASE_URL, TwilioConfig, TwilioFrom, TwilioSender};
pub use webhook::{
    MIN_ENCODED_KEY_BYTES, MIN_RAW_KEY_BYTES, SECRET_PREFIX, SecretError, WebhookConfig, WebhookSecret, WebhookSender,
    sign, verify_signature,
};

/// Which provider sends, with its settings.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    Log,
    Twilio(TwilioConfig),
    Webhook(WebhookConfig),
}

impl ProviderConfig {
    pub fn provider(&self) -> Provider {
        match self {
            Self::Log => Provider::Log,
            Self::Twilio(_) => Provider::Twilio,
            Self::Webhook(_) => Provider::Webhook,
        }
    }
}

/// The sender for `config`.
///
/// # Errors
/// [`BuildError`] when the provider's settings are invalid or its client cannot be built.
pub fn sender(config: ProviderConfig, texts: SmsTexts, metrics: SmsMetrics) -> Result<Arc<dyn SmsSender>, BuildError> {
    let texts = Arc::new(texts);
    metrics.initialize(config.provider());
    Ok(match config {
        ProviderConfig::Log => Arc::new(LogSender::new(metrics)),
        ProviderConfig::Twilio(config) => Arc::new(TwilioSender::new(config, texts, metrics)?),
        ProviderConfig::Webhook(config) => Arc::new(WebhookSender::new(config, texts, metrics)?),
    })
}
