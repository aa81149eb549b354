//! `factors.policy.v1.LoginPolicies` over tonic: the login policy of an organization or the
//! instance default, the same use case as REST's `/resources/v3alpha/policies/login` and
//! `/resources/v3alpha/organizations/{organization_id}/policies/login`.

use factors_application::InvalidInput;
use factors_application::input::{RawLoginPolicy, duration, policy_scope};
use factors_application::use_cases::login_policy::{PolicyOwner, PolicyView};
use factors_domain::{LoginPolicy, PolicySource};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::status;
use crate::pb::factors::policy::v1 as pb;
use crate::pb::factors::policy::v1::login_policies_server::LoginPolicies;
use crate::pb::zitadel::object::v3alpha::{Owner, OwnerType};
use crate::service::{GrpcState, authenticate};

pub struct LoginPoliciesService {
    state: GrpcState,
}

impl LoginPoliciesService {
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }
}

/// A policy as given. An age whose fields make no duration is the policy's error, as on
/// REST, not a malformed message.
fn raw_policy(policy: pb::LoginPolicy) -> RawLoginPolicy {
    RawLoginPolicy {
        force_mfa: policy.force_mfa,
        self_removal_step_up_max_age: match policy.self_removal_step_up_max_age {
            Some(age) => duration(age.seconds, age.nanos),
            None => Some(chrono::TimeDelta::zero()),
        },
        notify_on_removal: policy.notify_on_removal,
    }
}

fn login_policy(policy: LoginPolicy) -> pb::LoginPolicy {
    pb::LoginPolicy {
        force_mfa: policy.force_mfa,
        // Ages are whole seconds: the domain refuses any other.
        self_removal_step_up_max_age: Some(prost_types::Duration {
            seconds: policy.self_removal_step_up_max_age.num_seconds(),
            nanos: 0,
        }),
        notify_on_removal: policy.notify_on_removal,
    }
}

fn source(source: PolicySource) -> pb::PolicySource {
    match source {
        PolicySource::Organization => pb::PolicySource::Organization,
        PolicySource::Instance => pb::PolicySource::Instance,
        PolicySource::BuiltIn => pb::PolicySource::BuiltIn,
    }
}

fn response(view: PolicyView) -> pb::LoginPolicyResponse {
    let details = view.stored.map(|stored| {
        let (owner_type, id) = match stored.owner {
            PolicyOwner::Instance(id) => (OwnerType::Instance, id.into_string()),
            PolicyOwner::Org(id) => (OwnerType::Org, id.into_string()),
        };
        pb::PolicyDetails {
            sequence: stored.sequence,
            created: Some(convert::timestamp(stored.created)),
            changed: Some(convert::timestamp(stored.changed)),
            owner: Some(Owner { r#type: owner_type.into(), id }),
        }
    });
    pb::LoginPolicyResponse { policy: Some(login_policy(view.policy)), source: source(view.source).into(), details }
}

#[tonic::async_trait]
impl LoginPolicies for LoginPoliciesService {
    async fn get_login_policy(
        &self,
        request: Request<pb::GetLoginPolicyRequest>,
    ) -> Result<Response<pb::LoginPolicyResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let scope = policy_scope(request.into_inner().organization_id).map_err(status)?;
        let view = self.state.use_cases.login_policies.get_login_policy(&caller, scope).await.map_err(status)?;
        Ok(Response::new(response(view)))
    }

    async fn set_login_policy(
        &self,
        request: Request<pb::SetLoginPolicyRequest>,
    ) -> Result<Response<pb::LoginPolicyResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let message = request.into_inner();
        let scope = policy_scope(message.organization_id).map_err(status)?;
        // A whole replacement: a request without its policy would turn every rule off, which
        // is too quiet a mistake to take for a wish.
        let policy = message.policy.ok_or(InvalidInput::Missing("policy")).map_err(status)?;
        let policy = raw_policy(policy).into_policy().map_err(status)?;
        let view =
            self.state.use_cases.login_policies.set_login_policy(&caller, scope, policy).await.map_err(status)?;
        Ok(Response::new(response(view)))
    }
}
