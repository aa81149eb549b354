//! The development SMS sender: logs that a code would be sent, to a masked number and
//! without the code. Use `returnCode` (as an administrator) to see codes in development.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use factors_application::ports::{CodeSms, SmsError, SmsSender};

#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingSmsSender;

#[async_trait]
impl SmsSender for LoggingSmsSender {
    async fn send_code(&self, sms: &CodeSms) -> Result<(), SmsError> {
        tracing::info!(
            to = %sms.to.masked(),
            purpose = sms.purpose.as_str(),
            "SMS not sent: no SMS provider is configured (logging sender)"
        );
        Ok(())
    }
}

/// Bounds any sender by `timeout`, so a hanging provider fails the send (and the
/// authenticator is taken back) well inside the request's own deadline.
pub struct TimeoutSmsSender {
    pub inner: Arc<dyn SmsSender>,
    pub timeout: Duration,
}

#[async_trait]
impl SmsSender for TimeoutSmsSender {
    async fn send_code(&self, sms: &CodeSms) -> Result<(), SmsError> {
        tokio::time::timeout(self.timeout, self.inner.send_code(sms)).await.unwrap_or_else(|_| {
            Err(SmsError(anyhow::anyhow!("the SMS provider did not answer within {:?}", self.timeout)))
        })
    }
}
