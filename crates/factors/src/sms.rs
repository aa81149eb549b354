//! The development SMS sender: logs that a code would be sent, to a masked number and
//! without the code. Use `returnCode` (as an administrator) to see codes in development.

use async_trait::async_trait;
use factors_application::ports::{SmsError, SmsPurpose, SmsSender};
use factors_domain::{PhoneNumber, VerificationCode};

#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingSmsSender;

#[async_trait]
impl SmsSender for LoggingSmsSender {
    async fn send_code(&self, to: &PhoneNumber, _code: &VerificationCode, purpose: SmsPurpose) -> Result<(), SmsError> {
        tracing::info!(to = %to.masked(), ?purpose, "SMS not sent: no SMS provider is configured (logging sender)");
        Ok(())
    }
}
