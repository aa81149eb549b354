//! GetLoginPolicy and SetLoginPolicy (`factors.policy.v1.LoginPolicies`, factors' own).
//!
//! One RPC each for reading and setting, mapped twice: without an organization in the path
//! for the instance default, with one for that organization. The use case decides who may.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::TimeDelta;
use factors_application::input::{RawLoginPolicy, parse_duration, policy_scope};
use factors_application::use_cases::UseCases;
use factors_application::use_cases::login_policy::{PolicyOwner, PolicyView};
use factors_domain::{LoginPolicy, PolicySource};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::shared::{Answer, OwnerJson, timestamp};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiJson, ApiPath, Authenticated};

/// GetLoginPolicy (factors' own) of the instance default.
#[utoipa::path(
    get, path = "/resources/v3alpha/policies/login", tag = "policies", operation_id = "GetLoginPolicy",
    responses(
        (status = 200, description = "The instance default: stored (POLICY_SOURCE_INSTANCE) or built in", body = LoginPolicyResponse),
        (status = 403, description = "No policy.read instance-wide", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn get_login_policy(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
) -> Answer<LoginPolicyResponse> {
    let scope = policy_scope(None)?;
    Ok(Json(use_cases.login_policies.get_login_policy(&caller, scope).await?.into()))
}

/// GetLoginPolicy (factors' own) of an organization: the policy in force for it, its own
/// or else the one it inherits.
#[utoipa::path(
    get, path = "/resources/v3alpha/organizations/{organization_id}/policies/login", tag = "policies",
    operation_id = "GetOrganizationLoginPolicy",
    params(("organization_id" = String, Path, description = "The organization's id")),
    responses(
        (status = 200, description = "The policy in force: the organization's own, else the instance default, else the built-in one", body = LoginPolicyResponse),
        (status = 400, description = "Invalid organization id", body = StatusBody),
        (status = 403, description = "No policy.read on the organization or instance-wide", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn get_organization_login_policy(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(organization_id): ApiPath<String>,
) -> Answer<LoginPolicyResponse> {
    let scope = policy_scope(Some(organization_id))?;
    Ok(Json(use_cases.login_policies.get_login_policy(&caller, scope).await?.into()))
}

/// SetLoginPolicy (factors' own) of the instance default, as a whole.
#[utoipa::path(
    put, path = "/resources/v3alpha/policies/login", tag = "policies", operation_id = "SetLoginPolicy",
    request_body = SetLoginPolicyBody,
    responses(
        (status = 200, description = "The instance default as stored now", body = LoginPolicyResponse),
        (status = 400, description = "Invalid input: a step-up age that is not whole seconds from 0s to 366 days (POLICY-InvalidStepUpAge), a body that is not the policy", body = StatusBody),
        (status = 403, description = "No policy.write instance-wide; or a loosening of the policy the caller's own account is under without a second-factor sign-in (AUTHZ-StepUpRequired)", body = StatusBody),
        (status = 409, description = "The policy kept changing concurrently (POLICY-Contended); try again", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn set_login_policy(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiJson(body): ApiJson<SetLoginPolicyBody>,
) -> Answer<LoginPolicyResponse> {
    let scope = policy_scope(None)?;
    let policy = RawLoginPolicy::from(body).into_policy()?;
    Ok(Json(use_cases.login_policies.set_login_policy(&caller, scope, policy).await?.into()))
}

/// SetLoginPolicy (factors' own) of an organization: its own policy, as a whole.
#[utoipa::path(
    put, path = "/resources/v3alpha/organizations/{organization_id}/policies/login", tag = "policies",
    operation_id = "SetOrganizationLoginPolicy",
    params(("organization_id" = String, Path, description = "The organization's id")),
    request_body = SetLoginPolicyBody,
    responses(
        (status = 200, description = "The organization's own policy as stored now (POLICY_SOURCE_ORGANIZATION)", body = LoginPolicyResponse),
        (status = 400, description = "Invalid input: an invalid organization id, a step-up age that is not whole seconds from 0s to 366 days (POLICY-InvalidStepUpAge), a body that is not the policy", body = StatusBody),
        (status = 403, description = "No policy.write on the organization or instance-wide; or a loosening of the policy the caller's own account is under without a second-factor sign-in (AUTHZ-StepUpRequired)", body = StatusBody),
        (status = 409, description = "The policy kept changing concurrently (POLICY-Contended); try again", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn set_organization_login_policy(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(organization_id): ApiPath<String>,
    ApiJson(body): ApiJson<SetLoginPolicyBody>,
) -> Answer<LoginPolicyResponse> {
    let scope = policy_scope(Some(organization_id))?;
    let policy = RawLoginPolicy::from(body).into_policy()?;
    Ok(Json(use_cases.login_policies.set_login_policy(&caller, scope, policy).await?.into()))
}

/// `LoginPolicy`, the body of SetLoginPolicy: the whole policy, absent (or `null`) fields
/// being proto3's defaults (off, `"0s"`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true}))]
pub struct SetLoginPolicyBody {
    /// Users must keep a verified second factor: a user may not remove its last one.
    #[serde(alias = "force_mfa")]
    #[schema(value_type = bool)]
    pub force_mfa: Option<bool>,
    /// How recent a second-factor sign-in a user needs to remove one of its own verified
    /// authenticators, as a protobuf JSON duration in whole seconds (`"300s"`), from
    /// `"0s"` (none asked) to 366 days. Anything else (another form, a fraction, a
    /// negative or longer age) answers INVALID_ARGUMENT `POLICY-InvalidStepUpAge`.
    #[serde(alias = "self_removal_step_up_max_age")]
    #[schema(value_type = String, example = "300s")]
    pub self_removal_step_up_max_age: Option<serde_json::Value>,
    /// Send an SMS to the number of a removed verified authenticator.
    #[serde(alias = "notify_on_removal")]
    #[schema(value_type = bool)]
    pub notify_on_removal: Option<bool>,
}

impl From<SetLoginPolicyBody> for RawLoginPolicy {
    fn from(body: SetLoginPolicyBody) -> Self {
        // Taken as any JSON value, so that a number or an object is the policy's error,
        // as a malformed string is, rather than a shape error.
        let age = match body.self_removal_step_up_max_age {
            None => Some(TimeDelta::zero()),
            Some(serde_json::Value::String(text)) => parse_duration(&text),
            Some(_) => None,
        };
        Self {
            force_mfa: body.force_mfa.unwrap_or_default(),
            self_removal_step_up_max_age: age,
            notify_on_removal: body.notify_on_removal.unwrap_or_default(),
        }
    }
}

/// `LoginPolicy` as answered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginPolicyJson {
    pub force_mfa: bool,
    /// Whole seconds, as protobuf JSON writes a duration: `"300s"`, `"0s"` when off.
    #[schema(example = "300s")]
    pub self_removal_step_up_max_age: String,
    pub notify_on_removal: bool,
}

impl From<LoginPolicy> for LoginPolicyJson {
    fn from(policy: LoginPolicy) -> Self {
        Self {
            force_mfa: policy.force_mfa,
            self_removal_step_up_max_age: format!("{}s", policy.self_removal_step_up_max_age.num_seconds()),
            notify_on_removal: policy.notify_on_removal,
        }
    }
}

/// `PolicyDetails`: the stored version of the policy shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"sequence": "3", "created": "2024-11-22T09:27:10.426Z",
    "changed": "2024-11-22T09:31:02.114Z", "owner": {"type": "OWNER_TYPE_ORG", "id": "69629023906488334"}}))]
pub struct PolicyDetailsJson {
    /// Its number among the versions of its owner's policy, a string (a 64-bit integer in
    /// protobuf JSON).
    pub sequence: String,
    /// When the owner first set a policy.
    pub created: String,
    /// When this version was set.
    pub changed: String,
    /// `OWNER_TYPE_ORG` with the organization's id for its own policy; `OWNER_TYPE_INSTANCE`
    /// with the instance's id for the instance default, also when an organization inherits it.
    pub owner: OwnerJson,
}

/// `LoginPolicyResponse`: the policy in force, where it comes from, and its stored version.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"policy": {"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true},
    "source": "POLICY_SOURCE_INSTANCE", "details": {"sequence": "2", "created": "2024-11-22T09:27:10.426Z",
    "changed": "2024-11-22T09:31:02.114Z", "owner": {"type": "OWNER_TYPE_INSTANCE", "id": "factors"}}}))]
pub struct LoginPolicyResponse {
    pub policy: LoginPolicyJson,
    /// `POLICY_SOURCE_ORGANIZATION` (the organization's own), `POLICY_SOURCE_INSTANCE` (the
    /// instance default) or `POLICY_SOURCE_BUILT_IN` (nothing stored: everything off).
    #[schema(example = "POLICY_SOURCE_ORGANIZATION")]
    pub source: &'static str,
    /// Absent for the built-in default, which is not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<PolicyDetailsJson>,
}

impl From<PolicyView> for LoginPolicyResponse {
    fn from(view: PolicyView) -> Self {
        let source = match view.source {
            PolicySource::Organization => "POLICY_SOURCE_ORGANIZATION",
            PolicySource::Instance => "POLICY_SOURCE_INSTANCE",
            PolicySource::BuiltIn => "POLICY_SOURCE_BUILT_IN",
        };
        let details = view.stored.map(|stored| {
            let (owner_type, id) = match stored.owner {
                PolicyOwner::Instance(id) => ("OWNER_TYPE_INSTANCE", id.into_string()),
                PolicyOwner::Org(id) => ("OWNER_TYPE_ORG", id.into_string()),
            };
            PolicyDetailsJson {
                sequence: stored.sequence.to_string(),
                created: timestamp(stored.created),
                changed: timestamp(stored.changed),
                owner: OwnerJson { owner_type, id },
            }
        });
        Self { policy: view.policy.into(), source, details }
    }
}
