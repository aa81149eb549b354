//! The implemented RPCs of the REST mapping, one module each (Get/SetLoginPolicy share
//! one): its handlers with their `#[utoipa::path]`, its JSON messages and their conversions
//! into commands, which is where input gets checked. Each handler turns wire input into a
//! command, calls its use case, and turns the answer back. JSON messages use protobuf JSON
//! names (lowerCamelCase out; lowerCamelCase or the original snake_case in; unknown fields
//! ignored); what several RPCs use is in [`shared`]. [`routes`] puts each handler at the
//! verb and path of the application's RPC tables, and [`HandlersDoc`] gives their operations
//! to the OpenAPI document, and [`SERVED`] names them for the 501s of the others: all from
//! one list (`operations!`).

use axum::Router;
use factors_wire::rpc::{
    LOGIN_POLICY_SERVICE, RpcName, SESSION_SERVICE, SMS_GUARD_SERVICE, USER_EVENTS_SERVICE, USER_SERVICE,
};

use crate::AppState;
use crate::routes::RouteRpc;

pub mod add_otp_sms;
pub mod create_session;
pub mod create_user;
pub mod delete_session;
pub mod delete_user;
pub mod get_session;
pub mod get_user;
pub mod list_events;
pub mod list_user_events;
pub mod login_policy;
pub mod remove_otp_sms;
pub mod search_users;
pub mod set_session;
pub mod shared;
pub mod sms_guard;
pub mod user_state;
pub mod verify_otp_sms;

/// The one list of the REST operations: each line names an RPC as the application's RPC
/// tables do (its service and name, and for a further REST mapping the operation id of
/// that binding) and the handler that serves it. From it come [`routes`], which puts each
/// handler at its verb and path, [`HandlersDoc`], which gives the handlers' OpenAPI
/// operations to the document, and [`SERVED`], whose complement answers 501.
macro_rules! operations {
    ($($service:ident $rpc:literal $(binding $binding:literal)? => $module:ident :: $handler:ident,)*) => {
        /// The handlers' OpenAPI operations, which the document takes in whole.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($module::$handler),*))]
        pub struct HandlersDoc;

        /// The RPCs REST implements (an RPC with further mappings is named once per
        /// mapping); every other RPC of the tables answers 501.
        pub const SERVED: &[RpcName] = &[$(($service, $rpc)),*];

        /// Routes each implemented RPC, named as in the RPC tables, to its handler.
        pub fn routes(router: Router<AppState>) -> Router<AppState> {
            router$(.route_operation($service, $rpc, None$(.or(Some($binding)))?, $module::$handler))*
        }
    };
}

operations! {
    USER_SERVICE "SearchUsers" => search_users::search_users,
    USER_SERVICE "GetUser" => get_user::get_user,
    USER_SERVICE "CreateUser" => create_user::create_user,
    USER_SERVICE "DeleteUser" => delete_user::delete_user,
    USER_SERVICE "LockUser" => user_state::lock_user,
    USER_SERVICE "UnlockUser" => user_state::unlock_user,
    USER_SERVICE "DeactivateUser" => user_state::deactivate_user,
    USER_SERVICE "ActivateUser" => user_state::activate_user,
    USER_SERVICE "AddOTPSMSAuthenticator" => add_otp_sms::add_otp_sms,
    USER_SERVICE "VerifyOTPSMSRegistration" => verify_otp_sms::verify_otp_sms,
    USER_SERVICE "RemoveOTPSMSAuthenticator" => remove_otp_sms::remove_otp_sms,
    USER_EVENTS_SERVICE "ListUserEvents" => list_user_events::list_user_events,
    USER_EVENTS_SERVICE "ListEvents" => list_events::list_events,
    LOGIN_POLICY_SERVICE "GetLoginPolicy" => login_policy::get_login_policy,
    LOGIN_POLICY_SERVICE "GetLoginPolicy" binding "GetOrganizationLoginPolicy" => login_policy::get_organization_login_policy,
    LOGIN_POLICY_SERVICE "SetLoginPolicy" => login_policy::set_login_policy,
    LOGIN_POLICY_SERVICE "SetLoginPolicy" binding "SetOrganizationLoginPolicy" => login_policy::set_organization_login_policy,
    SESSION_SERVICE "GetSession" => get_session::get_session,
    SESSION_SERVICE "CreateSession" => create_session::create_session,
    SESSION_SERVICE "SetSession" => set_session::set_session,
    SESSION_SERVICE "DeleteSession" => delete_session::delete_session,
    SMS_GUARD_SERVICE "GetSmsGuard" => sms_guard::get_sms_guard,
    SMS_GUARD_SERVICE "CloseSmsBreaker" => sms_guard::close_sms_breaker,
}

#[cfg(test)]
mod tests {
    use super::delete_session::DeleteSessionBody;
    use super::get_session::SessionTokenQuery;
    use super::set_session::SetSessionBody;

    #[test]
    fn session_bodies_never_show_a_code_or_a_token_in_debug_output() {
        let set: SetSessionBody =
            serde_json::from_str(r#"{"sessionToken":"tok-secret","checks":{"otpSms":{"code":"424242"}}}"#)
                .expect("a body");
        let delete: DeleteSessionBody = serde_json::from_str(r#"{"sessionToken":"tok-secret"}"#).expect("a body");
        let query = SessionTokenQuery { session_token: Some("tok-secret".into()) };
        let shown = format!("{set:?} {delete:?} {query:?}");
        assert!(!shown.contains("424242") && !shown.contains("tok-secret"), "{shown}");
    }
}
