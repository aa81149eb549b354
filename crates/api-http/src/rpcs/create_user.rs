//! CreateUser (`zitadel.resources.user.v3alpha.ZITADELUsers`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use factors_application::RequestScope;
use factors_application::input::{RawContact, RawCreateUser};
use factors_application::use_cases::UseCases;
use factors_application::use_cases::create_user::CreateUserOutput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::shared::{DetailsJson, Empty, ScopeQuery, SetPhone};
use crate::error::{ApiError, CommonFailures, StatusBody};
use crate::extract::{ApiJson, ApiQuery, Authenticated};

/// CreateUser: a new user in the organization named by `organization.*` (else the caller's).
#[utoipa::path(
    post, path = "/resources/v3alpha/users", tag = "users", operation_id = "CreateUser",
    params(ScopeQuery), request_body = CreateUserBody,
    responses(
        (status = 201, description = "Created", body = CreateUserResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 403, description = "No user.write on the organization", body = StatusBody),
        (status = 404, description = "Unknown instance or organization domain", body = StatusBody),
        (status = 409, description = "The user id is taken", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn create_user(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<ScopeQuery>,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<(StatusCode, Json<CreateUserResponse>), ApiError> {
    let command = RawCreateUser::from(body).into_command(RequestScope::try_from(query)?)?;
    let output = use_cases.create_user.create_user(&caller, command).await?;
    Ok((StatusCode::CREATED, Json(output.into())))
}

/// `SendEmailVerificationCode`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendEmailCode {
    #[serde(alias = "url_template")]
    pub url_template: Option<String>,
}

/// `SetEmail`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetEmail {
    pub address: Option<String>,
    #[serde(alias = "send_code")]
    pub send_code: Option<SendEmailCode>,
    #[serde(alias = "return_code")]
    pub return_code: Option<Empty>,
    #[serde(alias = "is_verified")]
    pub is_verified: Option<bool>,
}

impl From<SetEmail> for RawContact {
    fn from(email: SetEmail) -> Self {
        Self {
            value: email.address,
            send_code: email.send_code.is_some(),
            return_code: email.return_code.is_some(),
            is_verified: email.is_verified,
        }
    }
}

/// `SetContact`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SetContact {
    pub email: Option<SetEmail>,
    pub phone: Option<SetPhone>,
}

/// `CreateUser`, the body of CreateUser.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"schemaId": "human", "data": {"givenName": "Ada"}, "contact": {"email": {"address": "ada@example.com", "returnCode": {}}}}))]
pub struct CreateUserBody {
    /// The user schema the data follows; stored as given. Required: without it the
    /// request answers INVALID_ARGUMENT.
    #[serde(alias = "schema_id")]
    #[schema(required = true, nullable = false, value_type = String)]
    pub schema_id: Option<String>,
    /// Free-form user data (a JSON object).
    #[schema(value_type = Object)]
    pub data: Option<serde_json::Value>,
    pub contact: Option<SetContact>,
    /// Usernames and passwords: not supported; anything given answers INVALID_ARGUMENT.
    #[schema(value_type = Object)]
    pub authenticators: Option<serde_json::Value>,
    /// The id to give the user; minted when absent.
    #[serde(alias = "user_id")]
    pub user_id: Option<String>,
}

/// Whether a JSON value says anything: `null`, `{}`, `[]` and objects of those do not.
fn says_something(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(members) => members.values().any(says_something),
        _ => true,
    }
}

impl From<CreateUserBody> for RawCreateUser {
    fn from(body: CreateUserBody) -> Self {
        let contact = body.contact.unwrap_or_default();
        Self {
            user_id: body.user_id,
            schema_id: body.schema_id,
            data: body.data.unwrap_or_default(),
            email: contact.email.map(RawContact::from),
            phone: contact.phone.map(RawContact::from),
            authenticators_given: body.authenticators.as_ref().is_some_and(says_something),
        }
    }
}

/// `CreateUserResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserResponse {
    pub details: DetailsJson,
    /// The e-mail code, when `returnCode` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_code: Option<String>,
    /// The phone code, when `returnCode` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_code: Option<String>,
}

impl From<CreateUserOutput> for CreateUserResponse {
    fn from(output: CreateUserOutput) -> Self {
        Self {
            details: output.details.into(),
            email_code: output.email_code.map(|c| c.expose().to_owned()),
            phone_code: output.phone_code.map(|c| c.expose().to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_authenticators_are_not_a_request_for_them() {
        assert!(!says_something(&serde_json::json!({"usernames": [], "password": null})));
        assert!(says_something(&serde_json::json!({"usernames": [{"username": "ada"}]})));
    }
}
