//! GetUser (`zitadel.resources.user.v3alpha.ZITADELUsers`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::get_user::{GetUserCommand, UserView};
use factors_application::{Details, RequestScope};
use factors_domain::{OtpSmsAuthenticator, UserId, UserState};
use serde::Serialize;
use utoipa::ToSchema;

use super::shared::{Answer, DetailsJson, ScopeQuery};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiPath, ApiQuery, Authenticated};

/// GetUser: the user with its OTP SMS authenticators.
#[utoipa::path(
    get, path = "/resources/v3alpha/users/{id}", tag = "users", operation_id = "GetUser",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    responses(
        (status = 200, description = "The user", body = GetUserResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 403, description = "The caller holds no user permission and is not the user", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn get_user(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<GetUserResponse> {
    let command = GetUserCommand { scope: RequestScope::try_from(query)?, user: UserId::new(id)? };
    Ok(Json(use_cases.get_user.get_user(&caller, command).await?.into()))
}

/// `GetUserResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetUserResponse {
    pub user: UserJson,
}

/// `GetUser`. Unset fields are emitted as protobuf JSON does with `EmitUnpopulated`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserJson {
    pub details: DetailsJson,
    pub schema: SchemaJson,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub contact: ContactJson,
    pub authenticators: AuthenticatorsJson,
    #[schema(example = "USER_STATE_ACTIVE")]
    pub state: &'static str,
}

/// `GetSchema`: factors stores the schema's id only.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaJson {
    pub id: String,
    #[serde(rename = "type")]
    pub schema_type: String,
    pub revision: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactJson {
    pub email: Option<EmailJson>,
    pub phone: Option<PhoneJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailJson {
    pub address: String,
    pub is_verified: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneJson {
    pub number: String,
    pub is_verified: bool,
}

/// `Authenticators`: factors manages OTP SMS; the other kinds are always empty.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorsJson {
    #[schema(value_type = Vec<Object>)]
    pub usernames: Vec<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub password: Option<serde_json::Value>,
    #[serde(rename = "webAuthN")]
    #[schema(value_type = Vec<Object>)]
    pub web_auth_n: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub totps: Vec<serde_json::Value>,
    pub otp_sms: Vec<OtpSmsJson>,
    #[schema(value_type = Vec<Object>)]
    pub otp_email: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub authentication_keys: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub identity_providers: Vec<serde_json::Value>,
}

/// `OTPSMS`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtpSmsJson {
    pub otp_sms_id: String,
    /// E.164.
    pub phone: String,
    pub is_verified: bool,
}

impl From<&OtpSmsAuthenticator> for OtpSmsJson {
    fn from(a: &OtpSmsAuthenticator) -> Self {
        Self { otp_sms_id: a.id.to_string(), phone: a.phone.as_e164().to_owned(), is_verified: a.verified }
    }
}

pub fn state_name(state: UserState) -> &'static str {
    match state {
        UserState::Active => "USER_STATE_ACTIVE",
        UserState::Inactive => "USER_STATE_INACTIVE",
        UserState::Deleted => "USER_STATE_DELETED",
        UserState::Locked => "USER_STATE_LOCKED",
    }
}

impl From<UserView> for GetUserResponse {
    fn from(view: UserView) -> Self {
        let user = view.user;
        Self {
            user: UserJson {
                details: Details::of(&user).into(),
                schema: SchemaJson { id: user.schema_id.to_string(), schema_type: String::new(), revision: 0 },
                data: user.data.to_value(),
                contact: ContactJson {
                    email: user
                        .contact
                        .email
                        .map(|e| EmailJson { address: e.address.as_str().to_owned(), is_verified: e.verified }),
                    phone: user
                        .contact
                        .phone
                        .map(|p| PhoneJson { number: p.number.as_e164().to_owned(), is_verified: p.verified }),
                },
                authenticators: AuthenticatorsJson {
                    usernames: vec![],
                    password: None,
                    web_auth_n: vec![],
                    totps: vec![],
                    otp_sms: view.otp_sms.iter().map(OtpSmsJson::from).collect(),
                    otp_email: vec![],
                    authentication_keys: vec![],
                    identity_providers: vec![],
                },
                state: state_name(user.state),
            },
        }
    }
}
