//! One module per RPC. Each exposes a trait (what delivery calls, mockable), a command,
//! an error enum mapping into [`Failure`], and the service implementing the trait.

use std::sync::Arc;

pub mod add_otp_sms;
pub mod create_user;
pub mod delete_user;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod get_user;
pub mod list_user_events;
pub mod login_policy;
pub mod remove_otp_sms;
pub mod sessions;
pub mod verify_otp_sms;

/// Every use case, as the deliveries (REST, gRPC) receive them from the composition root.
#[derive(Clone)]
pub struct UseCases {
    pub create_user: Arc<dyn create_user::CreateUser>,
    pub get_user: Arc<dyn get_user::GetUser>,
    pub delete_user: Arc<dyn delete_user::DeleteUser>,
    pub add_otp_sms: Arc<dyn add_otp_sms::AddOtpSms>,
    pub verify_otp_sms: Arc<dyn verify_otp_sms::VerifyOtpSms>,
    pub remove_otp_sms: Arc<dyn remove_otp_sms::RemoveOtpSms>,
    pub sessions: Arc<dyn sessions::Sessions>,
    pub login_policies: Arc<dyn login_policy::LoginPolicies>,
    pub list_user_events: Arc<dyn list_user_events::ListUserEvents>,
}
