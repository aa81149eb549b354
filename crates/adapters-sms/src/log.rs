//! The development sender: logs that a code or a notice would be sent, to a masked number
//! and without the text. Use `returnCode` (as an administrator) to see codes in
//! development. Refused in production by the settings.

use std::time::Instant;

use async_trait::async_trait;
use factors_application::ports::{CodeSms, NoticeSms, SmsError, SmsSender};

use crate::metrics::{Outcome, Provider, SmsMetrics};

#[derive(Debug, Clone, Default)]
pub struct LogSender {
    metrics: SmsMetrics,
}

impl LogSender {
    pub fn new(metrics: SmsMetrics) -> Self {
        Self { metrics }
    }
}

#[async_trait]
impl SmsSender for LogSender {
    async fn send_code(&self, sms: &CodeSms) -> Result<(), SmsError> {
        let started = Instant::now();
        tracing::info!(
            to = %sms.to.masked(),
            purpose = sms.purpose.as_str(),
            "SMS not sent: no SMS provider is configured (logging sender)"
        );
        self.metrics.record(Provider::Log, Outcome::Sent, started.elapsed());
        Ok(())
    }

    /// Logs the notice's kind (as `purpose`, like the HTTP senders) and the masked
    /// number; the text is the configured one, and says nothing a developer needs.
    async fn send_notice(&self, sms: &NoticeSms) -> Result<(), SmsError> {
        let started = Instant::now();
        tracing::info!(
            to = %sms.to.masked(),
            purpose = sms.kind.as_str(),
            "notice SMS not sent: no SMS provider is configured (logging sender)"
        );
        self.metrics.record(Provider::Log, Outcome::Sent, started.elapsed());
        Ok(())
    }
}
