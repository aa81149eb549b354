//! OTP SMS authenticators: a phone number a user proves to hold by typing back a code.

use chrono::{DateTime, Utc};

use crate::{OtpSmsId, PhoneNumber, UserId};

/// One OTP SMS authenticator of a user. A user may hold several, each on its own number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpSmsAuthenticator {
    pub id: OtpSmsId,
    pub user: UserId,
    pub phone: PhoneNumber,
    /// True once the user typed back a code sent to `phone` (or an administrator said so).
    pub verified: bool,
    pub created: DateTime<Utc>,
}
