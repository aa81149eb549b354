//! `factors.policy.v1.LoginPolicies` over the in-process routes, with a mocked use case: a
//! tonic client for native gRPC, and Connect JSON calls for the protobuf JSON shape.

mod common;

use chrono::{TimeDelta, TimeZone, Utc};
use factors_api_grpc::pb::factors::policy::v1 as pb;
use factors_api_grpc::pb::factors::policy::v1::login_policies_client::LoginPoliciesClient;
use factors_api_grpc::pb::google::rpc;
use factors_api_grpc::pb::zitadel::object::v3alpha::OwnerType;
use factors_api_grpc::pb::zitadel::v1::ErrorDetail;
use factors_api_grpc::{GrpcRoutes, LOGIN_POLICY_SERVICE};
use factors_application::use_cases::MockUseCases;
use factors_application::use_cases::login_policy::{
    LoginPolicyError, MockLoginPolicies, PolicyOwner, PolicyVersionView, PolicyView,
};
use factors_domain::{AccessRefusal, LoginPolicy, OrgId, PolicySource, Scope};
use prost::Message;
use serde_json::json;
use tonic::{Code, Request};

/// The routes over `policies`; every other use case fails the test if it is called.
fn routes(policies: MockLoginPolicies) -> GrpcRoutes {
    common::routes_for(MockUseCases { login_policies: policies, ..Default::default() }.into_use_cases(), "owner")
}

fn strict() -> LoginPolicy {
    LoginPolicy::new(true, TimeDelta::minutes(5), true).expect("valid")
}

fn org_a() -> Scope {
    Scope::Org(OrgId::new("org-a").expect("valid"))
}

/// org-a's own policy, `policy`, at version 3.
fn own(policy: LoginPolicy) -> PolicyView {
    PolicyView {
        scope: org_a(),
        policy,
        source: PolicySource::Organization,
        stored: Some(PolicyVersionView {
            sequence: 3,
            created: Utc.timestamp_millis_opt(1_732_267_630_426).single().expect("valid"),
            changed: Utc.timestamp_millis_opt(1_732_267_862_114).single().expect("valid"),
            owner: PolicyOwner::Org(OrgId::new("org-a").expect("valid")),
        }),
    }
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", "Bearer good".parse().expect("ascii"));
    request
}

fn error_id(status: &tonic::Status) -> String {
    let details = rpc::Status::decode(status.details()).expect("a google.rpc.Status");
    ErrorDetail::decode(details.details[0].value.as_slice()).expect("an ErrorDetail").id
}

fn policy_message(seconds: i64, nanos: i32) -> pb::LoginPolicy {
    pb::LoginPolicy {
        force_mfa: true,
        self_removal_step_up_max_age: Some(prost_types::Duration { seconds, nanos }),
        notify_on_removal: true,
    }
}

#[tokio::test]
async fn setting_an_organizations_policy_over_grpc_answers_it_with_its_version_and_owner() {
    let mut policies = MockLoginPolicies::new();
    policies
        .expect_set_login_policy()
        .withf(|caller, scope, policy| caller.user_id.as_str() == "owner" && *scope == org_a() && *policy == strict())
        .times(1)
        .returning(|_, _, policy| Ok(own(policy)));
    let routes = routes(policies);

    let answer = LoginPoliciesClient::new(routes.router.clone())
        .set_login_policy(authorized(pb::SetLoginPolicyRequest {
            organization_id: Some("org-a".into()),
            policy: Some(policy_message(300, 0)),
        }))
        .await
        .expect("set")
        .into_inner();

    assert_eq!(answer.policy, Some(policy_message(300, 0)));
    assert_eq!(answer.source(), pb::PolicySource::Organization);
    let details = answer.details.expect("stored");
    assert_eq!(details.sequence, 3);
    assert_eq!(details.changed, Some(prost_types::Timestamp { seconds: 1_732_267_862, nanos: 114_000_000 }));
    let owner = details.owner.expect("an owner");
    assert_eq!((owner.r#type(), owner.id.as_str()), (OwnerType::Org, "org-a"));
}

#[tokio::test]
async fn without_an_organization_the_instance_default_is_read_and_the_built_in_one_has_no_details() {
    let mut policies = MockLoginPolicies::new();
    policies.expect_get_login_policy().withf(|_, scope| *scope == Scope::Instance).times(1).returning(|_, scope| {
        Ok(PolicyView { scope, policy: LoginPolicy::default(), source: PolicySource::BuiltIn, stored: None })
    });
    let routes = routes(policies);

    let answer = LoginPoliciesClient::new(routes.router.clone())
        .get_login_policy(authorized(pb::GetLoginPolicyRequest { organization_id: None }))
        .await
        .expect("read")
        .into_inner();

    assert_eq!(answer.source(), pb::PolicySource::BuiltIn);
    assert_eq!(answer.details, None);
    assert_eq!(answer.policy.and_then(|p| p.self_removal_step_up_max_age), Some(prost_types::Duration::default()));
}

#[tokio::test]
async fn bad_input_is_invalid_argument_with_its_id_and_the_use_case_is_not_called() {
    let cases = [
        (Some("org-a"), Some(policy_message(1, 500_000_000)), "POLICY-InvalidStepUpAge"),
        (Some("org-a"), Some(policy_message(-300, 0)), "POLICY-InvalidStepUpAge"),
        (Some("org-a"), Some(policy_message(366 * 86_400 + 1, 0)), "POLICY-InvalidStepUpAge"),
        (Some("org-a"), Some(policy_message(1, -5)), "POLICY-InvalidStepUpAge"),
        (Some("org-a"), None, "REQ-MissingField"),
        (Some(""), Some(policy_message(300, 0)), "ORG-InvalidId"),
    ];
    for (organization, policy, id) in cases {
        let mut policies = MockLoginPolicies::new();
        policies.expect_set_login_policy().never();
        let routes = routes(policies);
        let request = pb::SetLoginPolicyRequest { organization_id: organization.map(str::to_owned), policy };

        let refused = LoginPoliciesClient::new(routes.router.clone())
            .set_login_policy(authorized(request))
            .await
            .expect_err("refused");

        assert_eq!((refused.code(), error_id(&refused).as_str()), (Code::InvalidArgument, id), "{refused:?}");
    }
}

#[tokio::test]
async fn a_refusal_of_the_use_case_is_permission_denied_and_a_token_is_needed_first() {
    let mut policies = MockLoginPolicies::new();
    policies
        .expect_get_login_policy()
        .times(1)
        .returning(|_, _| Err(LoginPolicyError::Access(AccessRefusal::PermissionDenied)));
    let routes = routes(policies);
    let mut client = LoginPoliciesClient::new(routes.router.clone());

    let refused = client
        .get_login_policy(authorized(pb::GetLoginPolicyRequest { organization_id: Some("org-b".into()) }))
        .await
        .expect_err("denied");
    assert_eq!((refused.code(), error_id(&refused).as_str()), (Code::PermissionDenied, "AUTHZ-PermissionDenied"));

    let anonymous =
        client.get_login_policy(Request::new(pb::GetLoginPolicyRequest::default())).await.expect_err("no token");
    assert_eq!((anonymous.code(), error_id(&anonymous).as_str()), (Code::Unauthenticated, "AUTH-MissingToken"));
}

#[tokio::test]
async fn connect_json_takes_and_gives_the_policy_as_rest_does() {
    let mut policies = MockLoginPolicies::new();
    policies
        .expect_set_login_policy()
        .withf(|_, scope, policy| *scope == org_a() && *policy == strict())
        .times(1)
        .returning(|_, _, policy| Ok(own(policy)));
    let routes = routes(policies);
    let policy = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true});

    let (status, answer) = common::connect_json(
        &routes,
        LOGIN_POLICY_SERVICE,
        "SetLoginPolicy",
        &json!({"organizationId": "org-a", "policy": policy}),
    )
    .await;

    assert_eq!(status, http::StatusCode::OK, "{answer}");
    assert_eq!(answer["policy"], policy);
    assert_eq!(answer["source"], "POLICY_SOURCE_ORGANIZATION");
    assert_eq!(
        answer["details"],
        json!({"sequence": "3", "created": "2024-11-22T09:27:10.426Z", "changed": "2024-11-22T09:31:02.114Z",
               "owner": {"type": "OWNER_TYPE_ORG", "id": "org-a"}})
    );
}

#[tokio::test]
async fn connect_json_refuses_a_fractional_age_with_the_policy_id() {
    let mut policies = MockLoginPolicies::new();
    policies.expect_set_login_policy().never();
    let routes = routes(policies);

    let body = json!({"policy": {"forceMfa": true, "selfRemovalStepUpMaxAge": "1.5s"}});
    let (status, answer) = common::connect_json(&routes, LOGIN_POLICY_SERVICE, "SetLoginPolicy", &body).await;

    assert_eq!((status, answer["code"].as_str()), (http::StatusCode::BAD_REQUEST, Some("invalid_argument")));
    assert_eq!(answer["details"][0]["debug"]["id"], "POLICY-InvalidStepUpAge", "{answer}");
}
