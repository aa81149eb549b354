//! Protecting one's own account (docs/CONTRACT.md): the login policy's rules hold for every
//! way an account could weaken its own protection, whatever organization its token names
//! and whatever roles it holds. Each attack here is one a stolen, password-only token
//! could make; each is tried over REST and over gRPC.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use factors_api_grpc::pb::factors::policy::v1 as policy_pb;
use factors_api_grpc::pb::factors::policy::v1::login_policies_client::LoginPoliciesClient;
use factors_api_grpc::pb::zitadel::resources::user::v3alpha as pb;
use factors_api_grpc::pb::zitadel::resources::user::v3alpha::zitadel_users_client::ZitadelUsersClient;
use factors_e2e::Claims;
use factors_e2e::grpc::{assert_status, authorized, channel};
use reqwest::Method;
use serde_json::json;
use tonic::Code;

use super::TestApp;

const ORG_A_POLICY: &str = "/resources/v3alpha/organizations/org-a/policies/login";

/// Alice of org-a with one verified factor, and its id.
async fn alice_with_a_factor(app: &TestApp) -> String {
    app.given_user("alice", "org-a").await;
    app.given_authenticator("alice", "+41791234567").await
}

/// A token of alice's that signed in with a password just now, holding `roles`, with the
/// organization claim `org` (none when `None`).
fn password_only(app: &TestApp, org: Option<&str>, roles: &[&str]) -> String {
    let auth_time = Some(Utc::now().timestamp());
    app.token_with(Claims { amr: &["pwd"], auth_time, ..Claims::of("alice", org, roles) })
}

/// The same, signed in with a code by SMS a minute ago.
fn stepped_up(app: &TestApp, org: Option<&str>, roles: &[&str]) -> String {
    let auth_time = Some((Utc::now() - TimeDelta::minutes(1)).timestamp());
    app.token_with(Claims { amr: &["pwd", "sms"], auth_time, ..Claims::of("alice", org, roles) })
}

async fn users(app: &TestApp) -> ZitadelUsersClient<tonic::transport::Channel> {
    ZitadelUsersClient::new(channel(app).await)
}

fn remove_request(otp: &str) -> pb::RemoveOtpsmsAuthenticatorRequest {
    pb::RemoveOtpsmsAuthenticatorRequest { id: "alice".into(), otp_sms_id: otp.into(), ..Default::default() }
}

#[tokio::test]
async fn a_token_of_the_user_without_its_org_claim_cannot_remove_its_last_factor_with_a_managers_role() {
    let app = TestApp::spawn().await;
    let a1 = alice_with_a_factor(&app).await;
    app.given_login_policy(Some("org-a"), json!({"forceMfa": true})).await;
    let mut grpc = users(&app).await;

    // ZITADEL adds the organization claim only when the client asks for its scope; a role
    // granted on org-a still makes the token a user manager there.
    for (org, case) in [(None, "no org claim"), (Some("org-b"), "another org's claim")] {
        let token = password_only(&app, org, &["ORG_USER_MANAGER:org-a"]);

        let refused = app.remove_otp_sms(Some(&token), "alice", &a1).await;
        refused.assert_error(400, 9, "OTPSMS-LastFactor");
        let over_grpc = grpc.remove_otpsms_authenticator(authorized(remove_request(&a1), &token)).await;
        assert_status(over_grpc, Code::FailedPrecondition, "OTPSMS-LastFactor");
        assert_eq!(app.otp_sms_ids("alice").await, std::slice::from_ref(&a1), "{case}: nothing removed");
    }
    // An administrator acting on alice still may: lockout recovery.
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    assert_eq!(app.remove_otp_sms(Some(&admin), "alice", &a1).await.status, 200);
}

#[tokio::test]
async fn an_owner_cannot_switch_off_the_step_up_that_protects_it_and_then_remove_its_factor() {
    let app = TestApp::spawn().await;
    let a1 = alice_with_a_factor(&app).await;
    let strict = json!({"forceMfa": false, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true});
    app.given_login_policy(Some("org-a"), strict.clone()).await;
    let owner = password_only(&app, Some("org-a"), &["ORG_OWNER"]);
    app.remove_otp_sms(Some(&owner), "alice", &a1).await.assert_error(403, 7, "AUTHZ-StepUpRequired");

    // Each loosening alone is refused, and nothing changes.
    for loosened in [
        json!({}),
        json!({"selfRemovalStepUpMaxAge": "0s", "notifyOnRemoval": true}),
        json!({"selfRemovalStepUpMaxAge": "3600s", "notifyOnRemoval": true}),
        json!({"selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": false}),
    ] {
        let refused = app.send(Method::PUT, ORG_A_POLICY, Some(&owner), Some(loosened.clone())).await;
        refused.assert_error(403, 7, "AUTHZ-StepUpRequired");
    }
    let request = policy_pb::SetLoginPolicyRequest {
        organization_id: Some("org-a".into()),
        policy: Some(policy_pb::LoginPolicy::default()),
    };
    let mut policies = LoginPoliciesClient::new(channel(&app).await);
    let over_grpc = policies.set_login_policy(authorized(request, &owner)).await;
    assert_status(over_grpc, Code::PermissionDenied, "AUTHZ-StepUpRequired");
    let read = app.send(Method::GET, ORG_A_POLICY, Some(&owner), None).await;
    assert_eq!(read.body["policy"], strict, "unchanged");
    app.remove_otp_sms(Some(&owner), "alice", &a1).await.assert_error(403, 7, "AUTHZ-StepUpRequired");
    assert_eq!(app.events("org.policy.login.changed").await.len(), 0);

    // Tightening needs nothing; a stepped-up token may loosen, and the trail says what.
    let tighter = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "120s", "notifyOnRemoval": true});
    assert_eq!(app.send(Method::PUT, ORG_A_POLICY, Some(&owner), Some(tighter)).await.status, 200);
    let fresh_owner = stepped_up(&app, Some("org-a"), &["ORG_OWNER"]);
    let loosened = app.send(Method::PUT, ORG_A_POLICY, Some(&fresh_owner), Some(json!({}))).await;
    assert_eq!(loosened.status, 200, "{}", loosened.body);
    let changes = app.events("org.policy.login.changed").await;
    let last = changes.last().expect("the loosening's event");
    assert_eq!(last["actor"], "alice");
    assert_eq!(last["loosened"], json!(["forceMfa", "selfRemovalStepUpMaxAge", "notifyOnRemoval"]));
}

#[tokio::test]
async fn the_instance_default_an_account_inherits_is_protected_as_its_own_and_others_loosenings_are_audited() {
    let app = TestApp::spawn().await;
    let a1 = alice_with_a_factor(&app).await;
    app.given_login_policy(None, json!({"forceMfa": true})).await;
    // alice is an instance owner; her organization has no policy of its own.
    let iam_alice = password_only(&app, Some("org-a"), &["IAM_OWNER"]);
    let refused = app.send(Method::PUT, "/resources/v3alpha/policies/login", Some(&iam_alice), Some(json!({}))).await;
    refused.assert_error(403, 7, "AUTHZ-StepUpRequired");
    assert!(refused.body["message"].as_str().is_some_and(|m| m.contains("re-authenticate")), "{}", refused.body);
    app.remove_otp_sms(Some(&iam_alice), "alice", &a1).await.assert_error(400, 9, "OTPSMS-LastFactor");

    // Another instance owner, whose own account (with a factor) is under its organization's
    // own policy, not the default, loosens it; the event names who and what.
    app.given_user("iam-admin", "org-admin").await;
    let root = app.token("root", "org-root", &["IAM_OWNER"]);
    let verified = json!({"number": "+41791234570", "isVerified": true});
    assert_eq!(app.add_otp_sms(&root, "iam-admin", verified).await.status, 200);
    app.given_login_policy(Some("org-admin"), json!({"forceMfa": true})).await;
    let other = app.admin();
    let loosened = app.send(Method::PUT, "/resources/v3alpha/policies/login", Some(&other), Some(json!({}))).await;
    assert_eq!(loosened.status, 200, "{}", loosened.body);
    let changed = app.events("instance.policy.login.changed").await;
    assert_eq!((&changed[0]["actor"], &changed[0]["loosened"]), (&json!("iam-admin"), &json!(["forceMfa"])));
}

#[tokio::test]
async fn a_user_manager_cannot_delete_itself_to_shed_its_factors() {
    let app = TestApp::spawn().await;
    alice_with_a_factor(&app).await;
    app.given_login_policy(Some("org-a"), json!({"forceMfa": true})).await;
    let manager = password_only(&app, None, &["ORG_USER_MANAGER:org-a"]);
    let mut grpc = users(&app).await;

    app.delete_user(&manager, "alice").await.assert_error(400, 9, "OTPSMS-LastFactor");
    let delete = pb::DeleteUserRequest { id: "alice".into(), ..Default::default() };
    assert_status(grpc.delete_user(authorized(delete, &manager)).await, Code::FailedPrecondition, "OTPSMS-LastFactor");
    let kept = app.get_user(&app.admin(), "alice").await;
    assert_eq!(kept.body["user"]["authenticators"]["otpSms"].as_array().map(Vec::len), Some(1), "{}", kept.body);

    // Under a step-up, a fresh second factor may; an administrator always may.
    app.given_login_policy(Some("org-a"), json!({"selfRemovalStepUpMaxAge": "300s"})).await;
    app.delete_user(&manager, "alice").await.assert_error(403, 7, "AUTHZ-StepUpRequired");
    let fresh = stepped_up(&app, None, &["ORG_USER_MANAGER:org-a"]);
    assert_eq!(app.delete_user(&fresh, "alice").await.status, 200);
}

#[tokio::test]
async fn a_deletion_under_notify_on_removal_texts_every_verified_number_it_removes() {
    let app = TestApp::spawn().await;
    alice_with_a_factor(&app).await;
    app.given_authenticator("alice", "+41791234568").await;
    app.given_pending_authenticator("alice", "+41791234569").await;
    app.given_login_policy(Some("org-a"), json!({"notifyOnRemoval": true})).await;

    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    assert_eq!(app.delete_user(&admin, "alice").await.status, 200);

    let mut sent = Vec::new();
    for _ in 0..100 {
        sent = app.sms.notices().into_iter().map(|(_, to)| to).collect::<Vec<_>>();
        if sent.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sent.sort();
    assert_eq!(sent, ["+41791234567", "+41791234568"], "the unproven number gets none");
}

#[tokio::test]
async fn enrolling_another_phone_while_holding_a_verified_factor_needs_the_step_up() {
    let app = TestApp::spawn().await;
    alice_with_a_factor(&app).await;
    app.given_login_policy(Some("org-a"), json!({"selfRemovalStepUpMaxAge": "300s"})).await;
    let thiefs_phone = json!({"number": "+41791234599"});
    let mut grpc = users(&app).await;
    let add = |token: &str| {
        let request = pb::AddOtpsmsAuthenticatorRequest {
            id: "alice".into(),
            phone: Some(pb::SetPhone { number: "+41791234599".into(), verification: None }),
            ..Default::default()
        };
        authorized(request, token)
    };

    for token in [password_only(&app, Some("org-a"), &[]), password_only(&app, None, &["ORG_USER_MANAGER:org-a"])] {
        let refused = app.add_otp_sms(&token, "alice", thiefs_phone.clone()).await;
        refused.assert_error(403, 7, "AUTHZ-StepUpRequired");
        assert_status(grpc.add_otpsms_authenticator(add(&token)).await, Code::PermissionDenied, "AUTHZ-StepUpRequired");
    }
    assert_eq!(app.sms.count(), 0, "no code went to the thief's phone");
    assert_eq!(app.otp_sms_ids("alice").await.len(), 1, "nothing stored");

    let fresh = stepped_up(&app, Some("org-a"), &[]);
    assert_eq!(app.add_otp_sms(&fresh, "alice", thiefs_phone).await.status, 200);
    // A user's first factor needs no step-up: it has none to prove.
    app.given_user("bob", "org-a").await;
    let bob = app.token_with(Claims { amr: &["pwd"], ..Claims::of("bob", Some("org-a"), &[]) });
    assert_eq!(app.add_otp_sms(&bob, "bob", json!({"number": "+41791234570"})).await.status, 200);
}
